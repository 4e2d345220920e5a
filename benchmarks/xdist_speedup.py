"""Wall time of certifying N decoder specs with ``pytest -n 0`` versus ``pytest -n <workers>``.

The measurement behind the README's multi-GPU figure: on a machine with G GPUs, certify
G copies of a CUDA spec (the published Wan 2.1 decoder in bfloat16 by default) once in a
single pytest process and once under pytest-xdist with G workers, where each worker takes
its own GPU (``conformance.workers``). Both runs use the same seed and profile, so they
do exactly the same checks; the ratio of wall times is the speed-up.

Run from the repository root, on the multi-GPU machine::

    python benchmarks/xdist_speedup.py                                  # G specs, G workers, default profile
    python benchmarks/xdist_speedup.py --specs 8 --workers 8 --profile quick
    python benchmarks/xdist_speedup.py --dry-run                        # print the two commands only

and CPU-only (a smoke run of this script, not a measurement worth reporting)::

    python benchmarks/xdist_speedup.py --base reference_decoders.toy:toy_spec --specs 2 --workers 2 \\
        --profile quick --check forward_accepts_keyword_call

Needs pytest-xdist. The kit need not be pip-installed: without its ``pytest11`` entry
point the runs load the plugin with ``-p conformance.plugin``.

Each pytest run happens in an empty temporary folder (so only the conformance checks
are collected, not this repository's tests), with this repository on ``PYTHONPATH`` and
JUnit XML written there: the script reads how many checks passed/failed and which
device (``conformance_device``) ran each check from it. Results go to
``benchmarks/results/xdist_speedup.json`` (``--out``) and a summary line to stdout.

The spec copies come from :func:`specs`, a target the pytest runs load as
``xdist_speedup:specs``; environment variables carry the base target and the count.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent
DEFAULT_BASE = "reference_decoders.wan.specs:full_cuda"
BASE_VARIABLE = "XDIST_SPEEDUP_BASE"
COUNT_VARIABLE = "XDIST_SPEEDUP_SPECS"


def specs() -> list[Any]:
    """``$XDIST_SPEEDUP_SPECS`` copies of the first spec of ``$XDIST_SPEEDUP_BASE``, named
    ``<name>#0``, ``<name>#1``, ...: independent decoders, as a multi-decoder repository has."""
    from conformance import load_target

    base = load_target(os.environ.get(BASE_VARIABLE, DEFAULT_BASE))[0]
    count = int(os.environ.get(COUNT_VARIABLE, "1"))
    return [dataclasses.replace(base, name=f"{base.name}#{i}") for i in range(count)]


def gpu_names() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def pytest_command(workers: int, args: argparse.Namespace, junit: Path) -> list[str]:
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--conformance-decoder=xdist_speedup:specs",
        f"--conformance-profile={args.profile}", f"--conformance-seed={args.seed}",
        f"--junitxml={junit}", "-n", str(workers),
    ]
    if workers and args.dist:
        command += ["--dist", args.dist]
    if args.check:
        command += ["-k", " or ".join(args.check)]
    if not plugin_installed():
        # A bare checkout (the kit not pip-installed): load the plugin by module name.
        command += ["-p", "conformance.plugin"]
    return command


def plugin_installed() -> bool:
    """Whether pytest loads the kit's plugin by itself (its ``pytest11`` entry point)."""
    from importlib import metadata

    return any(entry.value == "conformance.plugin" for entry in metadata.entry_points(group="pytest11"))


def read_junit(path: Path) -> dict[str, Any]:
    outcomes: collections.Counter[str] = collections.Counter()
    devices: collections.Counter[str] = collections.Counter()
    for case in ET.parse(path).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = next((tag for tag in ("failure", "error", "skipped") if case.find(tag) is not None), "passed")
        outcomes[outcome] += 1
        devices[properties.get("conformance_device", "?")] += 1
    return {"outcomes": dict(outcomes), "checks_per_device": dict(sorted(devices.items()))}


def measure(workers: int, args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="xdist-speedup-") as folder:
        work = Path(folder)
        (work / "pytest.ini").write_text("[pytest]\n")  # nothing from this repository's config
        junit = work / "junit.xml"
        command = pytest_command(workers, args, junit)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
            BASE_VARIABLE: args.base,
            COUNT_VARIABLE: str(args.specs),
        }
        started = time.perf_counter()
        run = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=args.timeout)
        wall = time.perf_counter() - started
        summary = (run.stdout.strip().splitlines() or [""])[-1]
        result: dict[str, Any] = {
            "workers": workers,
            "wall_s": round(wall, 2),
            "exit_status": run.returncode,
            "pytest_summary": summary,
            "command": shlex.join(command),
        }
        if junit.exists():
            result.update(read_junit(junit))
        if run.returncode not in (0, 1):  # 1: some check failed, still a valid timing
            result["output_tail"] = (run.stdout + run.stderr)[-4000:]
        return result


def main(argv: list[str] | None = None) -> int:
    gpus = gpu_names()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"target of the spec to copy (default {DEFAULT_BASE})")
    parser.add_argument("--specs", type=int, default=max(1, len(gpus)), help="copies to certify (default: GPUs)")
    parser.add_argument("--workers", type=int, default=max(1, len(gpus)), help="xdist workers (default: GPUs)")
    parser.add_argument(
        "--dist",
        default="loadscope",
        help="pytest-xdist distribution mode for the parallel run (default loadscope: each "
        "decoder's checks stay on one worker, so a worker builds only its own decoders; "
        "'load' spreads single checks)",
    )
    parser.add_argument("--profile", default="default", choices=["quick", "default", "thorough"])
    parser.add_argument("--seed", type=int, default=20240611)
    parser.add_argument("--check", action="append", default=[], help="only this check id (repeatable)")
    parser.add_argument("--timeout", type=float, default=3000, help="seconds per pytest run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "xdist_speedup.json")
    parser.add_argument("--dry-run", action="store_true", help="print the two pytest commands and exit")
    args = parser.parse_args(argv)

    if args.dry_run:
        for workers in (0, args.workers):
            print(shlex.join(pytest_command(workers, args, Path("junit.xml"))))
        return 0
    import torch

    report: dict[str, Any] = {
        "what": f"certify {args.specs} copies of {args.base} with pytest -n 0 vs -n {args.workers} --dist {args.dist}",
        "base": args.base,
        "specs": args.specs,
        "workers": args.workers,
        "profile": args.profile,
        "seed": args.seed,
        "checks": args.check or "all",
        "gpus": gpus,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "runs": [],
        "speedup": None,
    }

    def save() -> None:  # after each run, so a run cut short still leaves the first timing
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")

    serial = measure(0, args)
    report["runs"].append(serial)
    save()
    print(f"-n 0: {serial['wall_s']:.1f} s ({serial['pytest_summary']})", flush=True)
    parallel = measure(args.workers, args)
    report["runs"].append(parallel)
    report["speedup"] = round(serial["wall_s"] / parallel["wall_s"], 2) if parallel["wall_s"] else None
    save()
    print(f"-n {args.workers}: {parallel['wall_s']:.1f} s ({parallel['pytest_summary']})", flush=True)
    print(
        f"speed-up {report['speedup']}x: {args.specs} specs of {args.base}, profile {args.profile}, "
        f"{len(gpus)} GPU(s) {sorted(set(gpus))}; -n 0 {serial['wall_s']:.1f} s, "
        f"-n {args.workers} {parallel['wall_s']:.1f} s; checks per device {parallel.get('checks_per_device')}"
    )
    print(f"wrote {args.out}")
    ok = all(run["exit_status"] in (0, 1) for run in report["runs"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

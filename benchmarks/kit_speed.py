"""How long the kit takes to give its verdict: the speed targets of issue 20, measured.

Each case is one ``python -m conformance certify`` command, run as a user runs it (a
fresh process, the default profile unless the case says otherwise), timed by wall clock
from start to exit, several times; the median is reported, the first run (which warms
the file cache) excluded. The verdict, exit code and per-status counts of every run
are recorded too, so a faster kit that reaches a different verdict shows up here
rather than passing unnoticed.

Cases (``--cases``, comma separated; ``cpu`` and ``gpu`` name groups):

- ``bundled``: the default target (``reference_decoders.wan.specs:default``: the small
  Wan decoder on a CPU-only machine, the full-size Wan 2.1 on a GPU one);
- ``crash``: a decoder that segfaults on every call (``tests.zoo.process:forward_segfaults``);
- ``hang``: a decoder whose every call sleeps forever (``tests.zoo.process:forward_sleeps_forever``,
  declared ``check_timeout_s=3``: the target is two stall limits plus 10 s);
- ``wan21_cuda`` / ``wan22_cuda``: the full-size bfloat16 Wan 2.1 / Wan 2.2 decoders.

``--busy N`` starts N CPU-bound processes (pure Python spinning, each in a session of its
own) for the duration of the timed runs, the "busy machine" condition of the targets.
"Idle" means nothing else runs: on a shared machine, measure when it is quiet.

Run from the repository root::

    python benchmarks/kit_speed.py                          # cpu group, 5 runs each
    python benchmarks/kit_speed.py --busy 4 --cases bundled
    python benchmarks/kit_speed.py --cases gpu --repeats 3  # on a GPU machine

Writes ``benchmarks/results/kit_speed_<label>.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    """One timed command and the target it must meet."""

    name: str
    target: str
    #: The issue's bound on the median wall time, in seconds (``None``: measured only).
    bound_s: float | None
    #: What the bound is, in words.
    bound_text: str
    #: The verdict the run must reach: certified (exit 0) or not (exit 1).
    certified: bool
    busy_bound_s: float | None = None


CASES = {
    "bundled": Case(
        "bundled", "reference_decoders.wan.specs:default", 8.0, "<= 8 s idle (CPU)", True, busy_bound_s=30.0
    ),
    "crash": Case("crash", "tests.zoo.process:forward_segfaults", 10.0, "<= 10 s", False),
    "hang": Case(
        "hang", "tests.zoo.process:forward_sleeps_forever", 2 * 3.0 + 10.0, "<= 2 x 3 s stall limit + 10 s", False
    ),
    "wan21_cuda": Case("wan21_cuda", "reference_decoders.wan.specs:full_cuda", 15.0, "<= 15 s (H100/H200)", True),
    "wan22_cuda": Case(
        "wan22_cuda", "reference_decoders.wan.specs:wan22_full_cuda", 30.0, "<= 30 s (H100/H200)", True
    ),
}
GROUPS = {"cpu": ["bundled", "crash", "hang"], "gpu": ["wan21_cuda", "wan22_cuda"]}


def start_busy_processes(count: int) -> list[subprocess.Popen[bytes]]:
    """``count`` CPU-bound processes, each in a session of its own: where the kernel groups
    processes by session for scheduling (autogroup), each competes as another job would,
    rather than sharing one slice with this script."""
    return [
        subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
        for _ in range(count)
    ]


def timed_certify(case: Case, *, profile: str, seed: int, extra: list[str]) -> dict[str, Any]:
    """Run one certification of ``case`` in a fresh process: wall time, exit code, statuses."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [
            sys.executable, "-m", "conformance", "certify", case.target,
            "--profile", profile, "--seed", str(seed), "--report", str(report), *extra,
        ]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        start = time.perf_counter()
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        statuses: dict[str, int] = {}
        check_s: dict[str, float] = {}
        reported_wall = None
        if report.exists():
            data = json.loads(report.read_text())
            for decoder in data.get("decoders", []):
                reported_wall = decoder.get("wall_s", reported_wall)
                for result in decoder.get("checks", []):
                    statuses[result["status"]] = statuses.get(result["status"], 0) + 1
                    check_s[result["id"]] = round(result.get("duration_s") or 0.0, 3)
    return {
        "wall_s": round(wall, 3),
        "reported_wall_s": reported_wall,
        # Where the time went: each check's own duration (the rest of the reported wall
        # time is worker start, decoder builds and waiting; the rest of the process's wall
        # time is start-up and the report).
        "check_s": check_s,
        "sum_of_check_s": round(sum(check_s.values()), 3),
        "exit_code": completed.returncode,
        "statuses": statuses,
        "last_line": completed.stdout.strip().splitlines()[-1:] or completed.stderr.strip().splitlines()[-1:],
    }


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def machine() -> dict[str, Any]:
    """What ran the benchmark: CPU count, load, and the GPU with torch/cuDNN versions if any."""
    probe = (
        "import json, torch; c = torch.cuda.is_available(); print(json.dumps({'torch': torch.__version__, "
        "'cudnn': torch.backends.cudnn.version() if c else None, "
        "'gpu': torch.cuda.get_device_name(0) if c else None}))"
    )
    info = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "sched_autogroup": _read("/proc/sys/kernel/sched_autogroup_enabled"),
        **info,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="cpu", help="comma-separated case names or groups (cpu, gpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case, after one warm-up run")
    parser.add_argument("--busy", type=int, default=0, help="CPU-bound processes kept running during the runs")
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--label", default=None, help="name of the results file (default: machine-derived)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    names: list[str] = []
    for item in args.cases.split(","):
        names.extend(GROUPS.get(item, [item]))
    unknown = [name for name in names if name not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {sorted(CASES)} or groups {sorted(GROUPS)}")

    info = machine()
    spinners = start_busy_processes(args.busy)
    rows = []
    try:
        for name in names:
            case = CASES[name]
            warmup = timed_certify(case, profile=args.profile, seed=args.seed, extra=[])
            runs = [timed_certify(case, profile=args.profile, seed=args.seed, extra=[]) for _ in range(args.repeats)]
            walls = [run["wall_s"] for run in runs]
            bound = case.busy_bound_s if args.busy else case.bound_s
            median = statistics.median(walls)
            verdicts = {run["exit_code"] for run in [warmup, *runs]}
            rows.append(
                {
                    "case": name,
                    "target": case.target,
                    "median_s": round(median, 2),
                    "min_s": min(walls),
                    "max_s": max(walls),
                    "bound_s": bound,
                    "bound": ("<= 30 s with busy processes" if args.busy and case.busy_bound_s else case.bound_text),
                    "meets_bound": None if bound is None else median <= bound,
                    "expected_exit": 0 if case.certified else 1,
                    "exit_codes": sorted(verdicts),
                    "verdict_as_expected": verdicts == {0 if case.certified else 1},
                    "warmup": warmup,
                    "runs": runs,
                }
            )
            print(
                f"{name:12s} median {median:6.2f} s  (min {min(walls):.2f}, max {max(walls):.2f}; "
                f"bound {bound}; exit {sorted(verdicts)})",
                flush=True,
            )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    label = args.label or (info.get("gpu") or f"cpu{info['cpus']}").replace(" ", "_").lower()
    out = args.out or REPO_ROOT / "benchmarks" / "results" / f"kit_speed_{label}{'_busy' if args.busy else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "profile": args.profile, "seed": args.seed, "busy": args.busy, "cases": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"Wrote {out}")
    return 0 if all(row["verdict_as_expected"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The suite under pytest-xdist: workers share one seed, every check is reported, and
JUnit XML carries each check's record (the same facts as the Markdown certificate).

On a machine with several CUDA devices, each worker takes its own GPU; that test
skips elsewhere (the lead runs it on a multi-GPU machine, see
``benchmarks/xdist_speedup.py``).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conformance.checks.suite import ALL_CHECKS
from tests.support.installed import GOOD_MODULE, BROKEN_IMPORT_MODULE, install_fake_distribution, require_empty_registry

pytest_plugins = ["pytester"]

INPUT_EDITING = '''
from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder, toy_spec


class InputEditing(ToyVideoDecoder):
    def forward(self, input, autoregressive_index=0, cache=None):
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        input.mul_(0.5)
        return output


def spec():
    return toy_spec(name="input-editing", factory=lambda: InputEditing(ToyDecoderConfig()))
'''


def plugin_installed() -> bool:
    """Whether pytest loads the kit's plugin by itself (its ``pytest11`` entry point)."""
    from importlib import metadata

    return any(entry.value == "conformance.frontends.pytest_plugin" for entry in metadata.entry_points(group="pytest11"))


def junit_cases(path: Path) -> dict[str, dict[str, object]]:
    """``{name: {"properties": {...}, "outcome": ...}}`` for every test case."""
    cases = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        properties = {p.get("name"): p.get("value") for p in case.iter("property")}
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = tag
        cases[f"{case.get('classname')}::{case.get('name')}"] = {"properties": properties, "outcome": outcome}
    return cases


def test_xdist_run_of_installed_decoders_shares_the_seed_and_records_every_check(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    require_empty_registry()
    site = tmp_path / "site"
    install_fake_distribution(site, "good-decoders", {"good-toy": "good_decoders:spec"}, {"good_decoders": GOOD_MODULE})
    install_fake_distribution(site, "input-editing", {"editing": "input_editing:spec"}, {"input_editing": INPUT_EDITING})
    install_fake_distribution(
        site, "broken-decoders", {"needs-kernels": "broken_decoders:spec"}, {"broken_decoders": BROKEN_IMPORT_MODULE}
    )
    monkeypatch.syspath_prepend(str(site))  # the controller
    # xdist workers start from the controller's sys.path as it was when xdist was
    # imported (not PYTHONPATH); pytest's own pythonpath setting reaches them.
    pytester.makeini(f"[pytest]\npythonpath = {site}\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    junit = tmp_path / "junit.xml"
    chosen = ["input_is_not_modified", "forward_accepts_keyword_call", "ratios_are_positive_constant_ints",
              "output_layout_dtype_device", "cache_init_accepts_context"]

    result = pytester.runpytest(
        "--conformance-installed", "--conformance-profile=quick", "-n", "2", "-v",
        "-k", " or ".join(["load", *chosen]), f"--junitxml={junit}",
        "-p", "no:cacheprovider", "-p", "no:benchmark",
    )

    # Every check of both loadable decoders ran, on both workers; the bug is caught.
    result.assert_outcomes(passed=2 * len(chosen) - 1, failed=2)
    workers = set(re.findall(r"\[(gw\d)\]", result.stdout.str()))
    assert workers == {"gw0", "gw1"}, result.stdout.str()
    header = re.search(r"conformance: profile 'quick', seed (\d+)", result.stdout.str())
    assert header, result.stdout.str()
    seed = header.group(1)

    # The controller gathers the workers' replay commands into one section.
    result.stdout.fnmatch_lines(
        [
            "*conformance replay*",
            f"1 conformance check(s) failed with seed {seed}, profile 'quick'*",
            "input_editing:spec::input-editing::input_is_not_modified",
            f"  pytest --conformance-decoder=input_editing:spec --conformance-seed={seed} "
            "--conformance-profile=quick -m conformance -k input_is_not_modified",
            f"  python -m conformance certify input_editing:spec --check input_is_not_modified "
            f"--seed {seed} --profile quick",
        ]
    )

    cases = junit_cases(junit)
    checks = {name: case for name, case in cases.items() if "conformance_check" in case["properties"]}
    assert len(checks) == 2 * len(chosen)
    for name, case in checks.items():
        properties = case["properties"]
        # The seed each worker used is the one the controller printed: one command replays all.
        assert properties["conformance_seed"] == seed, name
        assert properties["conformance_profile"] == "quick"
        assert properties["conformance_decoder"] in {"registered-toy", "input-editing"}
        assert properties["conformance_target"] in {"good_decoders:spec", "input_editing:spec"}
        assert properties["conformance_check"] in chosen
        category = {check.id: check.category for check in ALL_CHECKS}[properties["conformance_check"]]
        assert properties["conformance_category"] == category
        assert properties["conformance_status"] == case["outcome"].replace("failure", "failed")
        assert int(properties["conformance_examples"]) >= (1 if case["outcome"] == "passed" else 0)
        assert int(properties["conformance_decoder_calls"]) >= 0
        assert float(properties["conformance_duration_s"]) >= 0
        assert properties["conformance_device"] == "cpu" and properties["conformance_dtype"] == "float32"
        assert properties["conformance_kit_version"] and properties["conformance_torch"]
    failed = [case for case in checks.values() if case["outcome"] == "failure"]
    assert [case["properties"]["conformance_check"] for case in failed] == ["input_is_not_modified"]
    assert f"--conformance-seed={seed}" in failed[0]["properties"]["conformance_replay"]
    assert f"--seed {seed} --profile quick" in failed[0]["properties"]["conformance_replay"]
    unloadable = [case for name, case in cases.items() if name.endswith("::load")]
    assert len(unloadable) == 1 and unloadable[0]["outcome"] == "failure"
    assert unloadable[0]["properties"]["conformance_status"] == "unloadable"


GPU_PROBE = '''
import os

import torch

from reference_decoders.toy import ToyDecoderConfig, toy_spec

LOG = os.environ["GPU_PROBE_LOG"]


def _build():
    decoder = ToyDecoderConfig(device="cuda").setup()
    with open(LOG, "a") as log:
        log.write(f"{os.environ['PYTEST_XDIST_WORKER']} {torch.cuda.current_device()} "
                  f"{next(decoder.parameters()).device}\\n")
    return decoder


def spec():
    return toy_spec(name="toy-cuda", factory=_build, device="cuda")
'''


@pytest.mark.cuda
def test_each_xdist_worker_takes_its_own_gpu(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("xdist")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs at least two CUDA devices")
    pytester.makepyfile(gpu_probe=GPU_PROBE)
    pytester.makeini("[pytest]\npythonpath = .\n")
    log = tmp_path / "devices.log"
    monkeypatch.setenv("GPU_PROBE_LOG", str(log))

    # On a machine where the kit is not pip-installed, load the plugin by name.
    plugin = [] if plugin_installed() else ["-p", "conformance.frontends.pytest_plugin"]

    result = pytester.runpytest(
        "--conformance-decoder=gpu_probe:spec", "--conformance-profile=quick", "-n", "2",
        "-p", "no:cacheprovider", f"--junitxml={tmp_path / 'junit.xml'}", *plugin,
    )

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    seen = {tuple(line.split()) for line in log.read_text().splitlines()}
    assert {(worker, index) for worker, index, _ in seen} == {("gw0", "0"), ("gw1", "1")}
    assert all(device == f"cuda:{index}" for _, index, device in seen)
    devices = {
        case["properties"]["conformance_device"] for case in junit_cases(tmp_path / "junit.xml").values()
    }
    assert devices == {"cuda:0", "cuda:1"}


TWO_TOYS = '''
from reference_decoders.toy import toy_spec


def specs():
    return [toy_spec(name="toy-a"), toy_spec(name="toy-b")]
'''


def test_loadscope_keeps_each_decoders_checks_on_one_worker(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``--dist loadscope`` a worker builds only the decoders whose checks it runs:
    the plugin's ids put each decoder in its own scope (``<target>::<decoder>::<check>``),
    which is what makes several GPUs pay off for expensive decoders (each worker
    compiles its own only)."""
    pytest.importorskip("xdist")
    pytester.makepyfile(two_toys=TWO_TOYS)
    pytester.makeini(f"[pytest]\npythonpath = {pytester.path}\n")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    chosen = ["ratios_are_positive_constant_ints", "forward_accepts_keyword_call", "cache_init_accepts_context"]
    plugin = [] if plugin_installed() else ["-p", "conformance.frontends.pytest_plugin"]

    result = pytester.runpytest(
        "--conformance-decoder=two_toys:specs", "--conformance-profile=quick", "-n", "2",
        "--dist", "loadscope", "-v", "-k", " or ".join(chosen), "-p", "no:cacheprovider", *plugin,
    )

    result.assert_outcomes(passed=2 * len(chosen))
    ran_on: dict[str, set[str]] = {}
    for worker, nodeid in re.findall(r"\[(gw\d)\] \[ *\d+%\] PASSED (\S+)", result.stdout.str()):
        decoder = nodeid.split("::")[1]
        ran_on.setdefault(decoder, set()).add(worker)
    assert set(ran_on) == {"toy-a", "toy-b"}, result.stdout.str()
    assert all(len(workers) == 1 for workers in ran_on.values()), ran_on

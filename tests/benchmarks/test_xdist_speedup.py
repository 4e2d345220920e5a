"""``benchmarks/xdist_speedup.py`` builds the commands and specs it promises.

The measurement itself needs a multi-GPU machine and minutes of device time; these
checks keep the script from breaking before someone spends them. (A CPU smoke run,
``python benchmarks/xdist_speedup.py --base reference_decoders.toy:toy_spec --specs 2
--workers 2 --profile quick --check forward_accepts_keyword_call``, takes ~20 s here.)
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from tests.support import REPO_ROOT

BENCHMARKS = REPO_ROOT / "benchmarks"


@pytest.fixture
def speedup(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("xdist_speedup", None)
    return importlib.import_module("xdist_speedup")


def test_specs_are_independent_copies_of_the_base(speedup, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from conformance import load_target

    monkeypatch.setenv(speedup.BASE_VARIABLE, "reference_decoders.toy:toy_spec")
    monkeypatch.setenv(speedup.COUNT_VARIABLE, "3")

    specs = load_target("xdist_speedup:specs")  # what the pytest runs load

    assert [spec.name for spec in specs] == ["toy-causal#0", "toy-causal#1", "toy-causal#2"]
    assert len({id(spec) for spec in specs}) == 3
    assert {spec.device for spec in specs} == {"cpu"}


def test_the_default_base_is_the_published_decoder_on_cuda(speedup) -> None:  # type: ignore[no-untyped-def]
    from conformance import load_target

    (spec,) = load_target(speedup.DEFAULT_BASE)  # building the spec does not touch a GPU
    assert spec.device == "cuda"


def test_both_runs_do_the_same_checks_with_the_same_seed(speedup, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert speedup.main(["--dry-run", "--workers", "8", "--profile", "quick", "--check", "chunked_decode_matches_full_decode"]) == 0

    serial, parallel = capsys.readouterr().out.strip().splitlines()
    assert " -n 0" in serial
    # The same command but for the workers (and how xdist distributes the checks to them).
    assert serial.replace("-n 0", "-n 8 --dist loadscope") == parallel
    for flag in ("--conformance-decoder=xdist_speedup:specs", "--conformance-profile=quick",
                 "--conformance-seed=", "-k chunked_decode_matches_full_decode"):
        assert flag in serial


def test_junit_is_summarised_by_outcome_and_device(speedup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junit = tmp_path / "junit.xml"
    junit.write_text(
        '<testsuites><testsuite>'
        '<testcase name="a"><properties><property name="conformance_device" value="cuda:0"/></properties></testcase>'
        '<testcase name="b"><properties><property name="conformance_device" value="cuda:1"/></properties>'
        '<failure message="x"/></testcase>'
        '<testcase name="c"><properties><property name="conformance_device" value="cuda:1"/></properties></testcase>'
        '</testsuite></testsuites>'
    )

    assert speedup.read_junit(junit) == {
        "outcomes": {"passed": 2, "failure": 1},
        "checks_per_device": {"cuda:0": 1, "cuda:1": 2},
    }

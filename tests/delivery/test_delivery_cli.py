"""Tests of ``python -m conformance certify``: exit codes, summary text, JSON report, replay.

The exit-code contract is tested through a real ``python -m conformance`` subprocess,
as CI and people call it; finer points go through ``conformance.cli.main`` in-process
(same code path after argument parsing, without paying a torch import per test).
Broken decoders are the toy decoder with one bug, written into the test's directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import conformance
from conformance.checks import ALL_CHECKS
from conformance.cli import main

TOY = "reference_decoders.toy:toy_spec"
CHECK_IDS = [check.id for check in ALL_CHECKS]
STATUSES = {"passed", "failed", "xfailed", "skipped", "error"}
# A cheap mix for failure runs: the check the seam bug breaks, and two it must not.
SOME_CHECK_IDS = ["ratios_are_positive_constant_ints", "chunked_decode_matches_full_decode", "input_is_not_modified"]
SOME_CHECKS = [arg for check_id in SOME_CHECK_IDS for arg in ("--check", check_id)]

BROKEN_DECODERS = '''
from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder, toy_spec


class SeamDroppingDecoder(ToyVideoDecoder):
    """Forgets the causal history at every call, so chunk seams decode differently."""

    def forward(self, input, autoregressive_index=0, cache=None):
        if cache is not None:
            cache.latent_history = None
            cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


def seam_dropping():
    return toy_spec(name="seam-dropping", factory=lambda: SeamDroppingDecoder(ToyDecoderConfig()))


def two_specs():
    return [toy_spec(name="toy-a"), toy_spec(name="toy-b", expected_failures={"bad_id": "typo"})]


not_a_spec = "toy"
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cwd holding a ``broken_cli_decoders`` module that targets can name."""
    (tmp_path / "broken_cli_decoders.py").write_text(BROKEN_DECODERS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def certify(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real command line in ``workdir`` (``python -m`` puts the cwd on sys.path)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # tiny decoders: threads only add overhead
    return subprocess.run(
        [sys.executable, "-m", "conformance", "certify", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def read_report(path: Path) -> dict:
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------
# Exit codes, through the real command


def test_certified_decoder_exits_0_prints_every_check_and_writes_the_report(workdir: Path) -> None:
    run = certify(workdir, TOY, "--profile", "quick", "--seed", "11")

    assert run.returncode == 0, run.stdout + run.stderr
    for check_id in CHECK_IDS:
        assert check_id in run.stdout
    assert "toy-causal: CERTIFIED" in run.stdout
    assert f"python -m conformance certify {TOY} --seed 11 --profile quick" in run.stdout
    assert "Report: conformance-report.json" in run.stdout
    # The report follows the schema documented in conformance.report.
    report = read_report(workdir / "conformance-report.json")
    assert report["schema_version"] == 1
    assert isinstance(report["kit_version"], str) and report["kit_version"]
    assert report["certified"] is True
    assert report["decoders"][0]["decoder"] == report["decoder"] == "toy-causal"
    assert report["seed"] == 11
    assert report["profile"] == "quick"
    assert report["target"] == TOY
    environment = report["environment"]
    for key in ("python", "torch", "device", "dtype"):
        assert environment.get(key), key
    assert any(key.startswith("kit") for key in environment)
    assert environment["device"] == "cpu" and "float32" in environment["dtype"]
    assert [check["id"] for check in report["checks"]] == CHECK_IDS
    assert sum(report["summary"].values()) == len(CHECK_IDS)
    for check in report["checks"]:
        assert set(check) >= {"id", "category", "status", "message", "duration_s", "evidence"}
        assert check["status"] in STATUSES
        assert isinstance(check["message"], str)
        assert check["duration_s"] >= 0
        assert isinstance(check["evidence"], dict)
    chunked = next(c for c in report["checks"] if c["id"] == "chunked_decode_matches_full_decode")
    # The issue asks for the largest error seen and its margin to the tolerance.
    assert "max_abs_error" in chunked["evidence"]
    assert "tolerance_margin" in chunked["evidence"]


def test_broken_decoder_exits_1_and_reports_the_failing_check(workdir: Path) -> None:
    target = "broken_cli_decoders:seam_dropping"
    run = certify(workdir, target, "--profile", "quick", "--seed", "5", "--report", "out/r.json", *SOME_CHECKS)

    assert run.returncode == 1, run.stdout + run.stderr
    assert "seam-dropping: NOT CERTIFIED" in run.stdout
    assert "FAIL   chunked_decode_matches_full_decode" in run.stdout
    assert (
        f"python -m conformance certify {target} --check chunked_decode_matches_full_decode "
        "--seed 5 --profile quick" in run.stdout
    )
    report = read_report(workdir / "out" / "r.json")
    statuses = {check["id"]: check["status"] for check in report["checks"]}
    assert report["certified"] is False
    assert sorted(statuses) == sorted(SOME_CHECK_IDS)  # one failure never hides the others
    assert statuses["chunked_decode_matches_full_decode"] == "failed"
    assert statuses["ratios_are_positive_constant_ints"] == "passed"
    assert statuses["input_is_not_modified"] == "passed"
    chunked = next(c for c in report["checks"] if c["id"] == "chunked_decode_matches_full_decode")
    assert "chunk" in chunked["message"]
    assert chunked["message"].splitlines()[0] in run.stdout  # failures are printed in full


def test_unloadable_target_exits_2_with_a_clear_message(workdir: Path) -> None:
    run = certify(workdir, "no_such_module_xyz:spec")

    assert run.returncode == 2, run.stdout + run.stderr
    assert "cannot certify 'no_such_module_xyz:spec'" in run.stderr
    assert "No module named 'no_such_module_xyz'" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (workdir / "conformance-report.json").exists()  # nothing ran


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["broken_cli_decoders:nothing_here"], "no attribute 'nothing_here'"),
        (["broken_cli_decoders:not_a_spec"], "expected a"),
        (["broken_cli_decoders:two_specs"], "bad_id"),
        (["not-a-target"], "MODULE:ATTR"),
        ([TOY, "--check", "no_such_check"], "no_such_check"),
        ([TOY, "--profile", "fastest"], "invalid choice: 'fastest'"),
        ([TOY, "--seed", "many"], "invalid int value: 'many'"),
    ],
    ids=["no-attribute", "not-a-spec", "unknown-expected-failure", "bad-syntax", "unknown-check", "bad-profile", "bad-seed"],
)
def test_bad_target_spec_or_arguments_exit_2_before_running_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    try:
        code = main(["certify", *args])
    except SystemExit as exit:  # argparse rejects bad option values itself
        code = exit.code

    assert code == 2
    err = capsys.readouterr().err
    assert says in err
    assert "Traceback" not in err
    assert not (workdir / "conformance-report.json").exists()


# ---------------------------------------------------------------------------------
# Details, in-process


def test_no_target_certifies_the_default_decoder(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["certify", "--profile", "quick", "--check", "ratios_are_positive_constant_ints", "--no-report"])

    out = capsys.readouterr().out
    assert code == 0
    assert f"({conformance.DEFAULT_TARGET})" in out
    assert not (workdir / "conformance-report.json").exists()


def test_several_targets_share_one_report_and_any_failure_fails_the_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = ["--check", "chunked_decode_matches_full_decode", "--check", "ratios_are_positive_constant_ints"]
    code = main(["certify", TOY, "broken_cli_decoders:seam_dropping", "--profile", "quick", "--seed", "3", *checks])

    out = capsys.readouterr().out
    assert code == 1
    assert "Verdict: NOT CERTIFIED (toy-causal certified, seam-dropping NOT certified)" in out
    assert (
        f"python -m conformance certify {TOY} broken_cli_decoders:seam_dropping "
        "--check chunked_decode_matches_full_decode --check ratios_are_positive_constant_ints "
        "--seed 3 --profile quick"
    ) in out
    report = read_report(workdir / "conformance-report.json")
    assert report["certified"] is False
    assert [entry["decoder"] for entry in report["decoders"]] == ["toy-causal", "seam-dropping"]
    assert [entry["certified"] for entry in report["decoders"]] == [True, False]
    assert [entry["target"] for entry in report["decoders"]] == [TOY, "broken_cli_decoders:seam_dropping"]
    assert "decoder" not in report and "checks" not in report  # only for a single decoder
    for entry in report["decoders"]:
        assert {check["id"] for check in entry["checks"]} == {
            "ratios_are_positive_constant_ints",
            "chunked_decode_matches_full_decode",
        }


def test_report_path_gets_its_parent_folders(workdir: Path) -> None:
    code = main(["certify", TOY, "--profile", "quick", "--check", "forward_accepts_keyword_call", "--report", "a/b/r.json"])

    assert code == 0
    assert read_report(workdir / "a" / "b" / "r.json")["checks"][0]["id"] == "forward_accepts_keyword_call"
    assert not (workdir / "conformance-report.json").exists()


def test_same_seed_replays_the_same_failure(workdir: Path) -> None:
    target = "broken_cli_decoders:seam_dropping"
    args = [target, "--check", "chunked_decode_matches_full_decode", "--profile", "quick", "--seed", "424242"]

    first = main(["certify", *args, "--report", "first.json"])
    second = main(["certify", *args, "--report", "second.json"])

    assert first == second == 1
    one, two = (read_report(workdir / name)["checks"] for name in ("first.json", "second.json"))
    assert [c["id"] for c in one] == ["chunked_decode_matches_full_decode"]
    assert one[0]["status"] == two[0]["status"] == "failed"
    assert one[0]["message"] == two[0]["message"]
    drop = {"duration_s"}
    assert {k: v for k, v in one[0]["evidence"].items() if k not in drop} == {
        k: v for k, v in two[0]["evidence"].items() if k not in drop
    }


def test_list_checks_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["certify", "--list-checks"]) == 0

    out = capsys.readouterr().out
    for check in ALL_CHECKS:
        assert check.id in out

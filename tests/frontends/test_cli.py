"""Tests of ``python -m conformance certify``: exit codes, summary text, JSON report, replay.

The exit-code contract is tested through a real ``python -m conformance`` subprocess,
as CI and people call it; finer points go through ``conformance.frontends.cli.main`` in-process
(same code path after argument parsing, without paying a torch import per test).
Broken decoders are the toy decoder with one bug, written into the test's directory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import conformance
from conformance.checks.suite import ALL_CHECKS
from conformance.frontends.cli import main

TOY = "reference_decoders.toy:toy_spec"
CHECK_IDS = [check.id for check in ALL_CHECKS]
STATUSES = {"passed", "failed", "xfailed", "skipped", "inconclusive", "not_run", "error"}
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


def on_cuda():
    return toy_spec(name="toy-cuda", device="cuda")


class SelfKillingDecoder(ToyVideoDecoder):
    """Kills its own process at the first decode (as the OOM killer would)."""

    def forward(self, input, autoregressive_index=0, cache=None):
        import os
        import signal

        os.kill(os.getpid(), signal.SIGKILL)


def self_killing():
    return toy_spec(name="self-killing", factory=lambda: SelfKillingDecoder(ToyDecoderConfig()))
'''


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


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


def assert_nothing_certified(workdir: Path) -> None:
    """A refused run writes no report, or one that says it was refused: never a certified one."""
    path = workdir / "conformance-report.json"
    if path.exists():
        report = read_report(path)
        assert report["certified"] is False and report["checks" if "checks" in report else "decoders"] == []


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
    assert report["schema_version"] == 2
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
    run = certify(workdir, target, "--profile", "quick", "--seed", "5", "--report", "out/r.json", "--create-dirs", *SOME_CHECKS)

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
    # Failures are printed in full (long lines wrapped).
    assert " ".join(chunked["message"].splitlines()[0].split()) in " ".join(run.stdout.split())


def test_unloadable_target_exits_2_with_a_clear_message(workdir: Path) -> None:
    run = certify(workdir, "no_such_module_xyz:spec")

    assert run.returncode == 2, run.stdout + run.stderr
    assert "cannot certify 'no_such_module_xyz:spec'" in run.stderr
    assert "No module named 'no_such_module_xyz'" in run.stderr
    assert "Traceback" not in run.stderr
    assert_nothing_certified(workdir)  # nothing ran


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["broken_cli_decoders:nothing_here"], "no attribute 'nothing_here'"),
        (["broken_cli_decoders:not_a_spec"], "expected a"),
        (["broken_cli_decoders:two_specs"], "bad_id"),
        (["not-a-target"], "MODULE:ATTR"),
        ([TOY, "--check", "no_such_check"], "no_such_check"),
        ([TOY, "--profile", "fastest"], "unknown profile 'fastest'"),
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
    assert_nothing_certified(workdir)


# ---------------------------------------------------------------------------------
# Details, in-process


def test_no_target_certifies_the_default_decoder_and_a_subset_never_certifies(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["certify", "--profile", "quick", "--check", "ratios_are_positive_constant_ints", "--no-report"])

    out = capsys.readouterr().out
    assert code == 1  # the check passed, but a --check subset never certifies
    assert f"({conformance.DEFAULT_TARGET})" in out
    assert "PASS   ratios_are_positive_constant_ints" in out
    assert "NOT CERTIFIED (1 passed)" in out and "a subset never certifies" in out
    assert not (workdir / "conformance-report.json").exists()


def test_several_targets_share_one_report_and_any_failure_fails_the_run(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = ["--check", "chunked_decode_matches_full_decode", "--check", "ratios_are_positive_constant_ints"]
    code = main(["certify", TOY, "broken_cli_decoders:seam_dropping", "--profile", "quick", "--seed", "3", *checks])

    out = capsys.readouterr().out
    assert code == 1
    # A --check subset certifies nobody; the verdict still names each decoder.
    assert "Verdict: NOT CERTIFIED (toy-causal NOT certified, seam-dropping NOT certified)" in out
    assert (
        f"python -m conformance certify {TOY} broken_cli_decoders:seam_dropping "
        "--check ratios_are_positive_constant_ints --check chunked_decode_matches_full_decode "
        "--seed 3 --profile quick"
    ) in out
    report = read_report(workdir / "conformance-report.json")
    assert report["certified"] is False
    assert [entry["decoder"] for entry in report["decoders"]] == ["toy-causal", "seam-dropping"]
    assert [entry["certified"] for entry in report["decoders"]] == [False, False]
    assert [entry["summary"]["failed"] for entry in report["decoders"]] == [0, 1]
    assert [entry["target"] for entry in report["decoders"]] == [TOY, "broken_cli_decoders:seam_dropping"]
    assert "decoder" not in report and "checks" not in report  # only for a single decoder
    for entry in report["decoders"]:
        assert {check["id"] for check in entry["checks"]} == {
            "ratios_are_positive_constant_ints",
            "chunked_decode_matches_full_decode",
        }


def test_report_folders_are_created_only_with_create_dirs(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["certify", TOY, "--profile", "quick", "--check", "forward_accepts_keyword_call", "--report", "a/b/r.json"]

    assert main(args) == 2
    assert "folder 'a/b' does not exist" in capsys.readouterr().err
    assert not (workdir / "a").exists()  # nothing created silently

    assert main([*args, "--create-dirs"]) == 1  # a subset: reported, not certified
    report = read_report(workdir / "a" / "b" / "r.json")
    assert report["checks"][0]["id"] == "forward_accepts_keyword_call"
    assert (report["certified"], report["subset"], report["complete"]) == (False, True, False)
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
    for line in out.splitlines():  # plain text, not reStructuredText
        assert "``" not in line and ":func:" not in line and ":class:" not in line, line


# ---------------------------------------------------------------------------------
# Arguments and preconditions: one message, exit 2, before anything runs


@pytest.mark.parametrize("argv", [["--version"], ["certify", "--version"]])
def test_version_prints_the_kit_version(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit:
        main(argv)

    assert exit.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m conformance {conformance.__version__} (flashdreams-conformance)"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--check", "chunked"], "--check: unknown check or category 'chunked'; did you mean 'chunking' or 'chunked_decode_matches_full_decode'?"),
        (["--check", "input_is_not_modifed"], "did you mean 'input_is_not_modified'?"),
        (["--profile", "quik"], "unknown profile 'quik'; did you mean 'quick'?"),
        (["--check", "input_is_not_modified", "--check", "input_is_not_modified"], "--check input_is_not_modified given twice"),
        (["--report", "a.json", "--report", "b.json"], "--report given twice"),
        (["--seed", "1", "--seed", "2"], "--seed given twice"),
        (["--report", "a.json", "--no-report"], "--report and --no-report contradict each other"),
        (["--report", "same.md", "--markdown", "same.md"], "name the same file"),
        (["--report", "/proc/conformance-report.json"], "cannot be written"),
        (["--markdown", "."], "is a folder"),
        (["--chek", "input_is_not_modified"], "(--chek: did you mean '--check'?)"),
    ],
    ids=["check", "check-typo", "profile", "repeated-check", "repeated-report", "repeated-seed",
         "report-and-no-report", "same-file", "proc", "folder", "unknown-option"],
)
def test_bad_options_are_one_message_and_exit_2_before_loading_anything(
    workdir: Path, capsys: pytest.CaptureFixture[str], args: list[str], says: str
) -> None:
    (workdir / "loud_target.py").write_text("print('TARGET IMPORTED')\nfrom reference_decoders.toy import toy_spec as spec\n")
    try:
        code = main(["certify", "loud_target:spec", *args])
    except SystemExit as exit:  # argparse rejects option values itself
        code = exit.code

    captured = capsys.readouterr()
    assert code == 2
    assert says in captured.err
    assert len(captured.err.strip().splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err
    assert "TARGET IMPORTED" not in captured.out  # refused before the target was even loaded
    assert not (workdir / "conformance-report.json").exists()


def test_help_documents_every_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.core.exit_codes import EXIT_CODES

    with pytest.raises(SystemExit):
        main(["certify", "--help"])

    out = capsys.readouterr().out
    assert set(EXIT_CODES) == {0, 1, 2, 3, 4, 130, 143}
    for code in EXIT_CODES:
        assert re.search(rf"^  {code}\s+\S", out, re.M), code
    readme = (Path(conformance.__file__).parents[1] / "README.md").read_text()
    for code in EXIT_CODES:
        assert f"| {code} |" in readme, code


def test_list_checks_stays_quiet_when_the_reader_goes_away(workdir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "conformance", "certify", "--list-checks"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # like `| head -1` exiting before the listing is written
    err = process.stderr.read().decode()
    process.wait(timeout=120)

    assert process.returncode == 0, err
    assert "BrokenPipeError" not in err and "Traceback" not in err and "Exception ignored" not in err


def test_numpy_start_up_warning_is_silenced() -> None:
    import warnings

    from conformance.frontends.cli import silence_startup_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence_startup_warnings()
        warnings.warn("Failed to initialize NumPy: _ARRAY_API not found", UserWarning, stacklevel=1)
        warnings.warn("an unrelated warning", UserWarning, stacklevel=1)

    assert [str(w.message) for w in caught] == ["an unrelated warning"]


def test_precondition_problems_name_a_device_the_machine_lacks() -> None:
    from conformance.engine.preconditions import precondition_problems

    no_gpu = {"cuda_available": False, "torch": "2.13.0+cpu", "cuda": None}
    two_gpus = {"cuda_available": True, "cuda_device_count": 2}

    [problem] = precondition_problems({"name": "big", "device": "cuda"}, no_gpu)
    assert "'big'" in problem and "'cuda'" in problem and "CUDA is not available" in problem
    [problem] = precondition_problems({"name": "big", "device": "cuda:3"}, two_gpus)
    assert "2 CUDA device(s)" in problem
    assert precondition_problems({"name": "big", "device": "cuda:1"}, two_gpus) == []
    assert precondition_problems({"name": "small", "device": "cpu"}, no_gpu) == []
    assert "meta" in precondition_problems({"name": "m", "device": "meta"}, no_gpu)[0]


@pytest.mark.skipif(torch_cuda_available(), reason="needs a machine without CUDA")
def test_a_cuda_spec_without_a_gpu_is_one_message_and_exit_2(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["certify", "broken_cli_decoders:on_cuda", "--profile", "quick"])

    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "CUDA is not available" in err
    assert_nothing_certified(workdir)


def test_a_killed_run_never_leaves_an_older_certified_report(workdir: Path) -> None:
    from conformance.reports.json_report import json_text
    from conformance.reports.outputs import atomic_write
    from conformance.core.results import Certification, CheckResult, DecoderRun

    old = Certification("self-killing", [CheckResult(c, "passed", "", 0.0, {}) for c in CHECK_IDS], seed=1, profile="quick")
    atomic_write(workdir / "conformance-report.json", json_text([DecoderRun(old)]))
    assert read_report(workdir / "conformance-report.json")["certified"] is True

    run = certify(workdir, "broken_cli_decoders:self_killing", "--profile", "quick", "--check", "input_is_not_modified")

    assert run.returncode != 0
    report = read_report(workdir / "conformance-report.json")
    assert report["certified"] is False
    assert report["run_state"] in {"running", "finished"}  # killed: the placeholder; supervised: its own verdict
    if report["run_state"] == "running":
        assert report["partial"] is True and "killed" in report["note"]


def test_github_actions_get_annotations_and_the_job_summary(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = workdir / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    code = main(["certify", "broken_cli_decoders:seam_dropping", "--profile", "quick", "--seed", "5",
                 "--check", "chunked_decode_matches_full_decode", "--no-report"])

    out = capsys.readouterr().out
    assert code == 1
    [annotation] = [line for line in out.splitlines() if line.startswith("::")]
    assert annotation.startswith(
        "::error title=conformance%3A seam-dropping failed chunked_decode_matches_full_decode::chunked decode differs"
    )
    text = summary.read_text()
    assert text.startswith("# Conformance certificate") and "chunked_decode_matches_full_decode" in text

"""Whatever a decoder does to its process, the verdict, the report and the exit code hold.

Each hostile decoder of ``tests/zoo/process.py`` runs in supervised workers. The check in
flight must fail (kind ``crash`` or ``timeout``, never ``error``), with a message naming
what happened; the next check must still run, in a fresh worker; a full CLI run must exit
1 with a complete report that certifies nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.engine.loop import certify_targets
from conformance.engine.plan import RunOptions
from tests.support import REPO_ROOT as ROOT
from tests.support.cli import run_kit
from tests.zoo import process

#: A check that decodes at AR >= 1 (where the hostile call sits), then (in the catalog's
#: order) one that decodes at AR 0 only, to show the run carries on in a fresh worker.
HIT, AFTER = "input_is_not_modified", "cache_init_accepts_context"


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return run_kit("certify", *args, timeout=timeout)


@pytest.mark.parametrize("case", sorted(process.CASES))
def test_hostile_decoder_fails_the_check_in_flight_and_the_run_goes_on(case: str) -> None:
    outcome = certify_targets(  # one worker at a time: the next check needs a fresh one
        [f"tests.zoo.process:{case}"], RunOptions(profile="quick", seed=3, check_ids=[HIT, AFTER], jobs=1)
    )
    assert not outcome.unloadable
    (run,) = outcome.runs
    assert run.supervised
    hit, after = run.certification.results
    assert hit.status == "failed", hit.message
    assert hit.kind in ("crash", "timeout")
    for word in process.CASES[case]:
        assert word in hit.message, hit.message
    assert "forward at AR" in hit.message  # the call in progress, with its AR index
    assert hit.replay is not None and f"--check {HIT}" in hit.replay
    assert after.status == "passed", after.message
    assert any("fresh worker" in note for note in run.notes)
    assert not run.certification.certified


@pytest.mark.parametrize("case", process.CORRECT_CASES)
def test_decoders_that_only_misbehave_towards_the_process_certify(case: str, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = _cli(f"tests.zoo.process:{case}", "--profile", "quick", "--seed", "5", "--report", str(report))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(report.read_text())["certified"] is True


def test_output_at_import_shaped_like_a_kit_message_changes_nothing(tmp_path: Path) -> None:
    done = _cli("tests.zoo.targets.prints_at_import:spec", "--profile", "quick", "--seed", "5",
                "--report", str(tmp_path / "r.json"))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("tests.zoo.targets.exits_at_import:spec", ("sys.exit(0)",)),
        ("tests.zoo.targets.os_exit_at_import:spec", ("exited with status 0", "no GPU found")),
        ("sys:exit", ("sys.exit",)),
    ],
)
def test_a_target_that_exits_while_loading_is_exit_2_naming_it(
    target: str, words: tuple[str, ...], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"certified": True}))  # a stale report from an earlier run
    done = _cli(target, "--report", str(report))
    assert done.returncode == 2, done.stdout + done.stderr
    assert target in done.stderr
    for word in words:
        assert word in done.stderr + done.stdout
    assert json.loads(report.read_text()).get("certified") is not True


def test_a_decoder_that_crashes_on_every_call_gets_its_verdict_after_two_crashes(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"certified": True}))
    done = _cli("tests.zoo.process:forward_segfaults", "--profile", "quick", "--seed", "1",
                "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["certified"] is False
    (decoder,) = data["decoders"]
    statuses = {check["id"]: check["status"] for check in decoder["checks"]}
    assert "error" not in statuses.values()
    crashed = [check for check in decoder["checks"] if check["kind"] == "crash"]
    assert len(crashed) >= 2 and all("SIGSEGV" in check["message"] for check in crashed)
    stopped = [check for check in decoder["checks"] if check["status"] == "not_run"]
    assert stopped and all("stopped after 2 checks whose worker process crashed" in c["message"] for c in stopped)
    assert any("stopped after 2 checks" in note for note in decoder["notes"])
    assert "SIGSEGV" in done.stdout


@pytest.mark.slow
def test_with_max_crashes_0_every_check_of_a_crashing_decoder_runs(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = _cli("tests.zoo.process:forward_segfaults", "--profile", "quick", "--seed", "1",
                "--max-crashes", "0", "--report", str(report))
    assert done.returncode == 1, done.stdout + done.stderr
    (decoder,) = json.loads(report.read_text())["decoders"]
    statuses = {check["id"]: check["status"] for check in decoder["checks"]}
    assert "error" not in statuses.values() and "not_run" not in statuses.values()
    assert statuses["temporal_mappers_round_trip"] == "passed"
    assert "failed" in statuses.values()


@pytest.mark.parametrize(
    ("stop", "code", "words"),
    [(signal.SIGINT, 130, "Interrupted (Ctrl-C)"), (signal.SIGTERM, 143, "Stopped by SIGTERM"),
     (signal.SIGHUP, 143, "Stopped by SIGHUP")],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_a_stopped_run_writes_a_partial_report_and_says_how_it_stopped(
    tmp_path: Path, stop: signal.Signals, code: int, words: str
) -> None:
    report = tmp_path / "r.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "conformance", "certify", "tests.zoo.process:forward_sleeps_forever",
         "--profile", "quick", "--seed", "1", "--report", str(report), "--jobs", "1", "--max-crashes", "0"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A CI job started in the background inherits SIGINT ignored (and Python then never
        # raises KeyboardInterrupt); give the command a terminal user's default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 120
        for line in child.stdout:  # wait until some checks have finished
            if "PASS" in line or "FAIL" in line or time.monotonic() > deadline:
                break
        child.send_signal(stop)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == code, out + err
    assert words in out
    data = json.loads(report.read_text())
    assert data["certified"] is False and data["run_state"] == "interrupted"
    statuses = [check["status"] for decoder in data["decoders"] for check in decoder["checks"]]
    assert "not_run" in statuses and ("passed" in statuses or "failed" in statuses)
    assert "Traceback" not in err and "terminate called" not in err


def test_slow_but_steady_is_inconclusive_not_failed(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = _cli("tests.zoo.process:slow_but_steady", "--profile", "quick", "--seed", "2",
                "--check", "chunked_decode_matches_full_decode", "--report", str(report))
    (decoder,) = json.loads(report.read_text())["decoders"]
    (check,) = decoder["checks"]
    assert check["status"] == "inconclusive", check
    assert "no sign of a fault" in check["message"]
    assert done.returncode == 1  # a --check subset never certifies, whatever its checks did


def test_inconclusive_alone_exits_4() -> None:
    from conformance.core.exit_codes import EXIT_INCONCLUSIVE
    from conformance.core.results import Certification, CheckResult, DecoderRun
    from conformance.engine.loop import RunOutcome, exit_code

    results = [CheckResult("a", "passed", "", 0.1), CheckResult("b", "inconclusive", "slow", 9.0)]
    outcome = RunOutcome(runs=[DecoderRun(Certification("d", results, 0, "quick"))])
    assert exit_code(outcome) == EXIT_INCONCLUSIVE
    results.append(CheckResult("c", "failed", "wrong", 0.1))
    assert exit_code(outcome) == 1


def test_installed_decoder_that_exits_at_import_does_not_stop_the_others(tmp_path: Path) -> None:
    info = tmp_path / "hostile_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hostile-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[flashdreams.conformance.decoders]\n"
        "exits = tests.zoo.targets.os_exit_at_import:spec\n"
        "toy = reference_decoders.toy:toy_spec\n"
    )
    report = tmp_path / "r.json"
    done = run_kit("certify", "--installed", "--profile", "quick", "--seed", "4", "--report", str(report),
                   pythonpath=[tmp_path])
    assert done.returncode == 2, done.stdout + done.stderr
    data = json.loads(report.read_text())
    assert data["certified"] is False
    names = [decoder["decoder"] for decoder in data["decoders"]]
    assert "toy-causal" in names
    assert "os_exit_at_import" in json.dumps(data.get("unloadable"))


@pytest.mark.parametrize("mode", [(), ("--in-process",)])
def test_a_factory_that_cannot_build_is_one_message_and_every_check_not_run(
    mode: tuple[str, ...], tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    done = _cli("tests.zoo.robustness:factory_raises", "--profile", "quick", "--seed", "1",
                "--report", str(report), *mode)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.count("decoder.safetensors") == 1, done.stdout
    (decoder,) = json.loads(report.read_text())["decoders"]
    assert {check["status"] for check in decoder["checks"]} == {"not_run"}
    assert "decoder.safetensors" in json.dumps(decoder)


def test_in_process_runs_leave_with_their_verdict_despite_lingering_threads(tmp_path: Path) -> None:
    # The decoder starts a non-daemon thread that never ends: an ordinary interpreter exit
    # would wait for it forever. An in-process run leaves with its verdict once the report
    # is written.
    done = _cli("tests.zoo.process:lingering_thread", "--in-process", "--profile", "quick",
                "--seed", "1", "--check", "forward_accepts_keyword_call",
                "--report", str(tmp_path / "r.json"), timeout=120)
    assert done.returncode == 1  # a subset never certifies; what matters is that it returned
    assert json.loads((tmp_path / "r.json").read_text())["decoders"][0]["checks"][0]["status"] == "passed"

"""Several lanes give the verdicts of one; stop rules stop starting checks, and say why.

A decoder's checks run over several worker processes at once (``--jobs``, one per core
by default). Each check's seed comes from the run seed and its id, never from the order
or the lane, so a parallel run must reach exactly the verdicts of a serial one. The stop
rules (``--max-crashes``, ``--maxfail``) end a hopeless run early: the checks not yet
started become ``not_run`` with the reason, and the decoder is not certified.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.checks.catalog import CHECK_IDS
from conformance.engine.loop import RunOutcome, certify_targets
from conformance.engine.plan import RunOptions
from tests.support.cli import run_kit


def _verdicts(outcome: RunOutcome) -> list[tuple[str, str, object, str, object]]:
    (run,) = outcome.runs
    return [
        (r.check_id, r.status, r.kind, r.message, r.evidence.get("examples"))
        for r in run.certification.results
    ]


@pytest.mark.parametrize(
    "target",
    ["tests.zoo.chunking:history_dropped_at_seams", "tests.zoo.correct:sliding_window_toy"],
)
def test_lanes_reach_exactly_the_verdicts_of_a_serial_run(target: str) -> None:
    serial = certify_targets([target], RunOptions(profile="quick", seed=11, jobs=1))
    parallel = certify_targets([target], RunOptions(profile="quick", seed=11, jobs=3))

    assert [check_id for check_id, *_ in _verdicts(serial)] == list(CHECK_IDS)
    assert _verdicts(parallel) == _verdicts(serial)


def test_maxfail_stops_starting_checks_after_that_many_failures(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_kit(
        "certify", "tests.zoo.robustness:forward_always_raises", "--profile", "quick", "--seed", "1",
        "--jobs", "1", "--maxfail", "2", "--report", str(report),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (decoder,) = json.loads(report.read_text())["decoders"]
    statuses = [check["status"] for check in decoder["checks"]]
    assert statuses.count("failed") == 2, statuses
    stopped = [check for check in decoder["checks"] if check["status"] == "not_run"]
    assert stopped, "the checks after the second failure were run anyway"
    assert all("stopped after 2 failed checks (--maxfail 2)" in check["message"] for check in stopped)
    assert decoder["certified"] is False


def test_a_decoder_that_hangs_on_every_call_stops_after_two_lost_workers(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    done = run_kit(
        "certify", "tests.zoo.process:forward_sleeps_forever", "--profile", "quick", "--seed", "1",
        "--report", str(report),
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (decoder,) = json.loads(report.read_text())["decoders"]
    timed_out = [check for check in decoder["checks"] if check["kind"] == "timeout"]
    # Two lost workers stop the run: the checks in flight then are stopped too, not waited for.
    assert len(timed_out) == 2 and all("nothing progressed for" in c["message"] for c in timed_out)
    stopped = [check for check in decoder["checks"] if check["status"] == "not_run"]
    assert len(stopped) == len(CHECK_IDS) - 2
    assert all("stopped after 2 checks whose worker process crashed or hung" in c["message"] for c in stopped)
    assert "error" not in {check["status"] for check in decoder["checks"]}

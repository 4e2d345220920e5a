"""Every broken decoder in the zoo is caught by the check meant for it.

Table-driven from ``BROKEN``: for each (decoder, check) pair the targeted check must
report ``failed`` -- not ``error`` (a kit bug), not ``skipped`` -- with a message that
points at the problem. A few decoders also get a full certification, to prove that
every check still runs and one failure never hides another.
"""

from __future__ import annotations

import pytest

from conformance import ALL_CHECKS, certify, run_check

from . import BROKEN, BrokenCase, cache_isolation, long_horizons, resources, robustness
from .conftest import PROFILE, SEED, mentions_any

ALL_IDS = [check.id for check in ALL_CHECKS]


def _targeted_pairs() -> list[object]:
    return [
        pytest.param(case, check_id, id=f"{case.name}::{check_id}")
        for case in BROKEN
        for check_id in sorted(case.must_fail)
    ]


def _explain(case: BrokenCase, check_id: str, status: str, message: str) -> str:
    return (
        f"{case.name} ({case.bug})\n"
        f"expected {check_id} to fail, it reported {status!r}: {message or '<no message>'}"
    )


@pytest.mark.parametrize(("case", "check_id"), _targeted_pairs())
def test_check_catches_the_bug_it_is_meant_for(case: BrokenCase, check_id: str) -> None:
    result = run_check(case(), check_id, profile=case.profile or PROFILE, seed=SEED)
    if result.status != "failed" and check_id in case.kit_gaps:
        pytest.xfail(f"{case.kit_gaps[check_id]} [{check_id} reported {result.status}]")
    assert result.status == "failed", _explain(case, check_id, result.status, result.message)
    assert result.message.strip(), f"{case.name}: {check_id} failed without saying why"
    assert mentions_any(result.message, case.hints), (
        f"{case.name}: the {check_id} failure message mentions none of {case.hints}:\n"
        f"{result.message}"
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [case for case in BROKEN if case is not robustness.forward_never_returns],
    ids=lambda case: case.name,
)
def test_full_run_reports_every_check_and_never_a_kit_error(case: BrokenCase) -> None:
    """Whatever the decoder does, every check runs and none ends in ``error``, which the
    contract reserves for bugs inside the kit; the targeted checks fail here too."""
    certification = certify(case(), profile=case.profile or PROFILE, seed=SEED)
    assert [result.check_id for result in certification.results] == ALL_IDS
    if certification.certified and case.must_fail and case.must_fail <= set(case.kit_gaps):
        # Every check meant to catch this bug is a documented gap of the kit: say so, do
        # not pass (a certified broken decoder is the gap itself).
        pytest.xfail("certified: " + "; ".join(sorted({case.kit_gaps[c] for c in case.must_fail})))
    assert not certification.certified
    if case.unbuildable:
        assert {result.status for result in certification.results} == {"not_run"}
        return
    wrong = {
        result.check_id: f"{result.check_id}: {result.status}: {result.message[:400]}"
        for result in certification.results
        if result.status == "error"
        or (result.check_id in case.must_fail and result.status != "failed")
    }
    known = {check_id: case.kit_gaps[check_id] for check_id in wrong if check_id in case.kit_gaps}
    unexplained = [text for check_id, text in wrong.items() if check_id not in known]
    assert not unexplained, f"{case.name} ({case.bug}):\n" + "\n".join(unexplained)
    if known:
        pytest.xfail("; ".join(sorted(set(known.values()))))


# Decoders whose single bug breaks exactly the checks listed for them: a full run must
# fail those and pass (or legitimately skip) all the others.
EXACTLY_BROKEN = [
    cache_isolation.running_stats_buffer,
    resources.cache_keeps_all_latents,
    long_horizons.ring_buffer_misread_at_wrap,  # only the long-horizon check reaches its wrap
]


@pytest.mark.parametrize("case", EXACTLY_BROKEN, ids=lambda case: case.name)
def test_one_failure_hides_nothing(case: BrokenCase) -> None:
    spec = case()
    certification = certify(spec, profile=PROFILE, seed=SEED)
    statuses = {result.check_id: result.status for result in certification.results}

    assert [result.check_id for result in certification.results] == ALL_IDS
    assert not certification.certified
    failed = {check_id for check_id, status in statuses.items() if status == "failed"}
    assert failed == case.must_fail, statuses
    allowed_skips = {"batch_elements_are_independent"} if spec.batch_size == 1 else set()
    others = {check_id: s for check_id, s in statuses.items() if check_id not in case.must_fail}
    assert all(s == "passed" or (s == "skipped" and c in allowed_skips) for c, s in others.items()), (
        others
    )


@pytest.mark.parametrize("case", [case for case in BROKEN if case.unbuildable], ids=lambda case: case.name)
def test_a_decoder_that_cannot_be_built_runs_no_check_and_says_why(case: BrokenCase) -> None:
    certification = certify(case(), profile=PROFILE, seed=SEED)

    assert [result.check_id for result in certification.results] == ALL_IDS
    assert not certification.certified
    for result in certification.results:
        assert result.status == "not_run", (result.check_id, result.status, result.message)
        assert mentions_any(result.message, case.hints), (result.check_id, result.message)


def test_decoder_that_always_raises_is_failed_not_crashed() -> None:
    """Every check runs; decoding checks fail with the decoder's error, mapper checks pass."""
    case = robustness.forward_always_raises
    certification = certify(case(), profile=PROFILE, seed=SEED)
    statuses = {result.check_id: result.status for result in certification.results}

    assert [result.check_id for result in certification.results] == ALL_IDS
    assert "error" not in statuses.values(), statuses
    for check_id in case.must_fail:
        assert statuses[check_id] == "failed"
        assert mentions_any(certification.result(check_id).message, case.hints)
    for check_id in (
        "ratios_are_positive_constant_ints",
        "temporal_mappers_round_trip",
        "temporal_mappers_monotone_and_steady",
    ):
        assert statuses[check_id] == "passed", (check_id, certification.result(check_id).message)

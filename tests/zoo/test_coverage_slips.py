"""Issue 9's coverage slips, beyond the table-driven proof: pinned expected failures.

The broken decoders of ``tests/zoo/coverage.py`` are proven caught by the table-driven
tests (``test_broken_decoders_are_caught.py``, each in the default profile). Here: a
pinned declaration that matches what the check sees still holds (``xfailed``), a plain
string declaration keeps working and tells how to pin it, and a pinned declaration
rejects a wider failure with a message showing both fingerprints.
"""

from __future__ import annotations

from typing import Any

import pytest

from conformance import ExpectedFailure, run_check

from . import coverage
from ._base import toy_spec_factory
from .conftest import SEED

SEAM = "chunked_decode_matches_full_decode"
MONOTONE = "temporal_mappers_monotone_and_steady"


def _spec(cls: type, **fields: Any) -> Any:
    return toy_spec_factory(f"pinned-{cls.__name__}", cls, **fields)()


@pytest.mark.parametrize(
    ("cls", "check_id", "declaration"),
    [
        (coverage.SeamBugAtThirdOneFrameStep, SEAM, coverage._seam_declaration),
        (coverage.NegativeSizeForZeroAtStepZero, MONOTONE, coverage._mapper_declaration),
    ],
)
def test_pinned_declaration_of_the_bug_seen_holds(cls: type, check_id: str, declaration: Any) -> None:
    result = run_check(_spec(cls, expected_failures=declaration()), check_id, profile="default", seed=SEED)
    assert result.status == "xfailed", result.message
    assert "fingerprint matches" in result.message


@pytest.mark.parametrize(
    ("cls", "check_id", "declaration", "new"),
    [
        (coverage.SeamBugWidened, SEAM, coverage._seam_declaration, "'[2, 2, 2]'"),
        (coverage.NegativeSizeAndLateStepsWrong, MONOTONE, coverage._mapper_declaration, "AR 999"),
    ],
)
def test_pinned_declaration_rejects_a_wider_failure(cls: type, check_id: str, declaration: Any, new: str) -> None:
    for seed in (SEED, SEED + 1):
        result = run_check(_spec(cls, expected_failures=declaration()), check_id, profile="default", seed=seed)
        assert result.status == "failed", result.message
        assert "declared fingerprint" in result.message and "seen fingerprint" in result.message
        seen_only = result.message.split("seen but not declared")[1].split("\n")[0]
        assert new in seen_only or new.replace("999", "1000") in seen_only, result.message


def test_plain_string_declaration_still_covers_any_failure_and_offers_the_fingerprint() -> None:
    spec = _spec(coverage.SeamBugWidened, expected_failures={SEAM: "seams flicker (bug 17)"})
    result = run_check(spec, SEAM, profile="default", seed=SEED)
    assert result.status == "xfailed", result.message
    assert "ExpectedFailure('seams flicker (bug 17)', fingerprint=[" in result.message
    assert "'[2, 2, 2]'" in result.message


def test_pin_on_a_check_without_fingerprints_is_refused_clearly() -> None:
    spec = _spec(
        coverage.OutputFinishedLate,
        expected_failures={"outputs_survive_later_steps": ExpectedFailure("late writes", fingerprint="x")},
    )
    with pytest.raises(ValueError, match="record no fingerprint"):
        run_check(spec, "outputs_survive_later_steps", profile="quick", seed=SEED)


def test_expected_failure_is_a_string_and_validates_its_fingerprint() -> None:
    pinned = ExpectedFailure("bug 3", fingerprint=["a", "b"])
    assert pinned == "bug 3" and pinned.reason == "bug 3" and pinned.fingerprint == ("a", "b")
    assert ExpectedFailure("bug 3").fingerprint is None
    with pytest.raises(ValueError, match="fingerprint"):
        ExpectedFailure("bug 3", fingerprint=[1])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="reason"):
        ExpectedFailure("  ")

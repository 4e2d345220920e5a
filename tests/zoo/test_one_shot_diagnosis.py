"""``cache_none_matches_fresh_cache`` blames a one-shot call only for what it did.

Its control rollout (the same rollout without the one-shot call) separates a decoder
whose seams are wrong anyway from one whose one-shot call changes state outside itself:
the first keeps the one-shot promise and must pass, with the seam bug noted in the
evidence, never a claim that the one-shot call disturbed the rollout; the second must
fail with exactly that diagnosis.
"""

from __future__ import annotations

from conformance import run_check

from . import pipeline_habits
from .conftest import PROFILE, SEED

ONE_SHOT = "cache_none_matches_fresh_cache"
DISTURBED = "changed state outside its own call"


def test_a_seam_bug_is_not_blamed_on_one_shot_calls() -> None:
    case = pipeline_habits.seam_bug_accepts_one_shot_calls
    result = run_check(case(), ONE_SHOT, profile=PROFILE, seed=SEED)

    assert result.status == "passed", result.message
    assert DISTURBED not in result.message
    assert "chunk-seam bug" in str(result.evidence.get("seam_bug_seen", "")), result.evidence
    chunks = run_check(case(), "chunked_decode_matches_full_decode", profile=PROFILE, seed=SEED)
    assert chunks.status == "failed", "the seam bug itself must still be caught, by the chunk check"


def test_a_one_shot_call_that_disturbs_a_rollout_is_diagnosed_as_such() -> None:
    case = pipeline_habits.one_shot_borrows_last_rollout_cache
    result = run_check(case(), ONE_SHOT, profile=PROFILE, seed=SEED)

    assert result.status == "failed", result.message
    assert DISTURBED in result.message
    assert "seam_bug_seen" not in result.evidence

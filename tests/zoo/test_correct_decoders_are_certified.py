"""Correct decoders, including unusual ones, are certified: no false alarms.

Every check must pass, except the ones that legitimately cannot apply, which must be
*skipped with a reason* (a vacuous pass would hide that nothing was tested): forking
for a cache that cannot be deep-copied, batch independence for a batch of one.
"""

from __future__ import annotations

import importlib

import pytest

from conformance import ALL_CHECKS, DecoderSpec, certify

from . import CORRECT, CorrectCase
from .conftest import PROFILE, SEED

ALL_IDS = [check.id for check in ALL_CHECKS]
BATCH_CHECK = "batch_elements_are_independent"


def _wan_small_case() -> object:
    """The bundled Wan decoder's small CPU config, once it exists."""

    def build() -> DecoderSpec:
        try:
            specs = importlib.import_module("reference_decoders.wan.specs")
        except ImportError as err:
            pytest.skip(f"reference_decoders.wan.specs is not importable: {err}")
        if not hasattr(specs, "small_cpu"):
            pytest.skip("reference_decoders.wan.specs has no small_cpu spec")
        spec = specs.small_cpu()
        assert isinstance(spec, DecoderSpec), f"small_cpu() returned {spec!r}"
        return spec

    return pytest.param(
        CorrectCase(name="wan-small-cpu", spec_factory=build, why="The bundled Wan 2.1 decoder, small config."),
        id="wan-small-cpu",
    )


def _expected_skips(case: CorrectCase, batch_size: int) -> set[str]:
    return set(case.must_skip) | ({BATCH_CHECK} if batch_size == 1 else set())


@pytest.mark.parametrize("case", [*CORRECT, _wan_small_case()], ids=lambda case: case.name)
def test_correct_decoder_is_certified(case: CorrectCase) -> None:
    spec = case()
    certification = certify(spec, profile=PROFILE, seed=SEED)
    expected_skips = _expected_skips(case, spec.batch_size)

    assert [result.check_id for result in certification.results] == ALL_IDS
    wrong = {
        result.check_id: f"{result.check_id}: {result.status} (expected "
        f"{'skipped' if result.check_id in expected_skips else 'passed'}): {result.message}"
        for result in certification.results
        if result.status != ("skipped" if result.check_id in expected_skips else "passed")
    }
    known = {check_id: case.kit_gaps[check_id] for check_id in wrong if check_id in case.kit_gaps}
    unexplained = [text for check_id, text in wrong.items() if check_id not in known]
    assert not unexplained, f"{case.name} ({case.why}):\n" + "\n".join(unexplained)
    for result in certification.results:
        if result.status == "skipped":
            assert result.message.strip(), f"{result.check_id} skipped without a reason"
    if known:
        pytest.xfail("; ".join(f"{reason} [{wrong[check_id]}]" for check_id, reason in known.items()))
    assert certification.certified


def test_one_frame_per_call_is_skipped_not_vacuously_passed() -> None:
    """With ``max_chunk_frames=1`` the seam checks have nothing to compare: each says so."""
    from .correct import one_frame_per_call_toy

    certification = certify(one_frame_per_call_toy(), profile=PROFILE, seed=SEED)
    for check_id in ("chunked_decode_matches_full_decode", "long_rollouts_match_full_decode"):
        result = certification.result(check_id)
        assert result.status == "skipped" and "max_chunk_frames is 1" in result.message, result.message

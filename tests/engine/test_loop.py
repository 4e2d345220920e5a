"""Correct decoders are certified by every check; failures say what, where and by how much."""

from __future__ import annotations

import re

import pytest
import torch

from conformance import ALL_CHECKS, PROFILES, certify, run_check
from reference_decoders.toy import toy_spec

from tests.support.decoders import (
    CacheReferencesModuleToy,
    DropsHistoryAtSeams,
    NoCausalFrameToy,
    StatelessFrameDecoder,
    spec_for,
)


def _assert_certified(spec, profile: str = "quick", allowed_skips: set[str] = frozenset()) -> None:  # type: ignore[no-untyped-def, assignment]
    certification = certify(spec, profile=profile, seed=1234)
    problems = {
        r.check_id: (r.status, r.message)
        for r in certification.results
        if r.status not in ("passed", "skipped") or (r.status == "skipped" and r.check_id not in allowed_skips)
    }
    assert not problems, problems
    assert certification.certified
    assert [r.check_id for r in certification.results] == [c.id for c in ALL_CHECKS]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_toy_decoder_is_certified_by_every_check(profile: str) -> None:
    _assert_certified(toy_spec(), profile, allowed_skips={"batch_elements_are_independent"})


def test_toy_decoder_with_a_batch_passes_batch_independence_too() -> None:
    certification = certify(toy_spec(batch_size=3), profile="quick", seed=5)
    assert {r.status for r in certification.results} == {"passed"}


@pytest.mark.parametrize(
    ("cls", "name"),
    [
        (NoCausalFrameToy, "no-causal-first-frame"),
        (CacheReferencesModuleToy, "cache-references-module"),
        (StatelessFrameDecoder, "stateless-per-frame"),
    ],
)
def test_legal_unusual_decoders_are_certified(cls: type, name: str) -> None:
    _assert_certified(spec_for(cls, name), allowed_skips={"batch_elements_are_independent"})


def test_max_chunk_frames_is_respected() -> None:
    seen: list[int] = []
    spec = toy_spec(max_chunk_frames=2)
    inner = spec.factory

    def factory():  # type: ignore[no-untyped-def]
        decoder = inner()
        original = decoder.forward

        def forward(input, autoregressive_index=0, cache=None):  # type: ignore[no-untyped-def]
            seen.append(input.shape[2])
            return original(input, autoregressive_index, cache)

        decoder.forward = forward  # type: ignore[method-assign]
        return decoder

    certification = certify(toy_spec(max_chunk_frames=2, factory=factory), profile="quick", seed=2)
    assert certification.certified, [(r.check_id, r.message) for r in certification.results if not r.ok]
    assert seen and max(seen) == 2


def test_evidence_records_what_was_exercised_and_the_margin() -> None:
    result = run_check(toy_spec(), "chunked_decode_matches_full_decode", profile="quick", seed=9)
    evidence = result.evidence
    assert result.status == "passed"
    assert evidence["examples"] >= PROFILES["quick"].chunk_examples
    assert evidence["decoder_calls"] > evidence["full_decodes"] > 0
    # Chunked and one-call decodes run the toy's einsums on different shapes, and the CPU
    # GEMM picks its kernel (and so its summation order) by shape: with torch 2.13.0+cpu
    # (MKL 2024.2) on an AVX-512 machine the first pixel frame of a one-frame call is one
    # float32 ulp (5.96e-08) from the same frame of a longer call, with 1 or 2 threads
    # alike; elsewhere the two can be bitwise equal. So the margin is measured, not 1.0:
    # a few ulps of an order-one output, a thousandth of the float32 tolerance at most.
    assert 0.0 <= evidence["max_abs_error"] <= 4 * 2.0**-24
    assert evidence["tolerance_margin"] > 0.999 and evidence["frame_rms_margin"] > 0.999
    assert evidence["tolerance"]["source"] == "float32 default"


def test_chunking_failure_names_plan_ar_frame_error_tolerance_and_minimal_example() -> None:
    result = run_check(
        spec_for(DropsHistoryAtSeams, "drops-history"),
        "chunked_decode_matches_full_decode",
        profile="quick",
        seed=3,
    )
    assert result.status == "failed"
    message = result.message
    # Shrunk to the smallest seam: two one-frame chunks.
    assert "chunk plan [1, 1]" in message and "plan=(1, 1)" in message
    assert re.search(r"first mismatching pixel frame \d+", message)
    assert "decoded at AR 1" in message
    assert "largest error" in message and "atol" in message and "x the tolerance" in message
    # The kit's own header, then Hypothesis's rendering of the shrunk call (its wording,
    # "Falsifying example:" or "Failing test case:", varies across Hypothesis versions).
    assert "Minimal failing example (Hypothesis, shrunk):" in message and "--seed 3" in result.replay
    assert "check_case(" in message
    assert result.evidence["max_error_to_tolerance"] > 1


def test_state_machine_failure_reports_the_program() -> None:
    result = run_check(spec_for(DropsHistoryAtSeams, "drops-history"), "rollout_state_machine", profile="quick", seed=3)
    assert result.status == "failed"
    assert "r0 = start()" in result.message and "step(r0, frames=" in result.message
    assert "AR 1" in result.message


def test_bfloat16_toy_is_certified_with_the_derived_tolerance() -> None:
    spec = toy_spec(factory=lambda: __import__("reference_decoders.toy", fromlist=["x"]).ToyDecoderConfig(dtype=torch.bfloat16).setup(), dtype=torch.bfloat16)
    _assert_certified(spec, allowed_skips={"batch_elements_are_independent"})

"""Strict semantics of certification: expected failures hide nothing else, and no check
passes vacuously.

The decoders here are zoo-style: the bundled toy decoder with one bug each, modelled on
a real failure mode.

- ``EmitsNothing``: a look-ahead decoder whose flush was never written; every call
  returns an empty clip. Before the kit required checks to exercise their promise, it
  passed chunking, interleaving, forking, determinism, output survival, batch
  independence and the state machine: every comparison compared two empty tensors and
  reported "max error 0".
- ``ForkCrashes`` / ``ForkHangs``: a decoder with a *declared* known bug in forking
  that regressed: a deep-copied cache now makes forward raise, or block. Before strict
  expectations, the crash and the hang were reported as the expected failure.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from hypothesis import strategies as st

import conformance.engine.inprocess as inprocess
from conformance import certify, run_check
from conformance.checks.registry import Check
from conformance.core.outcomes import CheckFailed, DecoderError
from conformance.checks.harness.search import run_property
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder, toy_spec

RELEASE = threading.Event()


@pytest.fixture(scope="module", autouse=True)
def _release_blocked_decoders() -> Iterator[None]:
    yield
    RELEASE.set()


def release_abandoned_check(event: threading.Event, check_id: str) -> None:
    """Unblock a check the runner gave up on and let its thread finish now, rather than
    during interpreter shutdown (where a thread inside torch aborts the process)."""
    event.set()
    for thread in threading.enumerate():
        if thread.name == f"conformance-{check_id}":
            thread.join(timeout=10)


class EmitsNothing(ToyVideoDecoder):
    """Buffers frames for look-ahead and never flushes them: every output is empty.

    Real bug: a decoder that delays output until it has future context, with the flush
    path left as a TODO; its mappers were "fixed" to say 0 so that sizes agree.
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError("need at least one latent frame")
        return 0

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        raise ValueError("no pixel frame count can be produced yet")

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        frames = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return frames[:, :, :0]


class _CopiedCache(ToyDecoderCache):
    copied: bool = False

    def __deepcopy__(self, memo: dict[int, Any]) -> _CopiedCache:
        fork = _CopiedCache(
            latent_history=copy.deepcopy(self.latent_history, memo),
            pixel_history=copy.deepcopy(self.pixel_history, memo),
            next_index=self.next_index,
        )
        fork.copied = True
        return fork


class ForkCrashes(ToyVideoDecoder):
    """Forward raises on a deep-copied cache (a stream handle that does not survive a copy)."""

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _CopiedCache()

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if getattr(cache, "copied", False):
            raise RuntimeError("CUDA stream handle invalid after copy")
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class ForkHangs(ForkCrashes):
    """Forward blocks forever on a deep-copied cache (waits on a handle nobody signals)."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if getattr(cache, "copied", False):
            RELEASE.wait(timeout=60)
            raise RuntimeError("released by the test session")
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


def spec(cls: type[ToyVideoDecoder], name: str, **fields: Any) -> Any:
    return toy_spec(name=name, factory=lambda: cls(ToyDecoderConfig()), **fields)


FORK = "forked_cache_continues_identically"
VACUOUS_IF_EMPTY = [
    "interleaved_rollouts_are_independent",
    "forked_cache_continues_identically",
    "chunked_decode_matches_full_decode",
    "outputs_survive_later_steps",
    "decoding_is_deterministic",
    "batch_elements_are_independent",
    "rollout_state_machine",
    "long_rollouts_match_full_decode",
    "outputs_ignore_time_and_global_state",
    "caller_owns_returned_outputs",
]
#: Promises about calls, caches and memory, not about output values: an empty output
#: does not make them vacuous, so they must not raise a false alarm.
MEANINGFUL_IF_EMPTY = [
    "ratios_are_positive_constant_ints",
    "decoded_sizes_match_mappers",
    "caches_are_fresh_and_unshared",
    "forward_leaves_module_state_unchanged",
    "forward_accepts_keyword_call",
    "output_layout_dtype_device",
    "input_is_not_modified",
    "cache_init_accepts_context",
    "cache_memory_is_bounded",
    "finished_rollouts_leave_nothing_behind",
]


# ---------------------------------------------------------------------------------
# No vacuous passes


def test_checks_that_compare_outputs_fail_when_there_is_no_output_to_compare() -> None:
    certification = certify(spec(EmitsNothing, "emits-nothing", batch_size=2), profile="quick", seed=5)

    for check_id in VACUOUS_IF_EMPTY:
        result = certification.result(check_id)
        assert result.status == "failed", (check_id, result.message)
        assert f"{check_id} returned without exercising its promise" in result.message
        assert "the decoder returned no pixel frames in any of its" in result.message
        # No fake agreement in the evidence either.
        assert "max_abs_error" not in result.evidence and result.evidence["compared_frames"] == 0
    for check_id in MEANINGFUL_IF_EMPTY:
        assert certification.result(check_id).status == "passed", check_id


def test_every_check_states_what_it_must_exercise() -> None:
    from conformance.checks.suite import ALL_CHECKS
    from conformance.checks.registry import EXERCISE_COUNTERS

    for check in ALL_CHECKS:
        assert check.exercises and set(check.exercises) <= set(EXERCISE_COUNTERS), check.id
    assert {c.id for c in ALL_CHECKS if "compared_frames" in c.exercises} | {"outputs_survive_later_steps"} == set(
        VACUOUS_IF_EMPTY
    )


def test_a_correct_decoder_exercises_every_check() -> None:
    certification = certify(toy_spec(batch_size=2), profile="quick", seed=5)

    assert certification.certified, [(r.check_id, r.message) for r in certification.results if not r.ok]
    assert all(result.status == "passed" for result in certification.results)
    for check_id in VACUOUS_IF_EMPTY:
        evidence = certification.result(check_id).evidence
        if check_id != "outputs_survive_later_steps":
            assert evidence["compared_frames"] > 0, check_id
        assert evidence["pixel_frames"] > 0, check_id


# ---------------------------------------------------------------------------------
# A different failure never hides behind an expected one


def test_an_expected_failure_still_absorbs_the_broken_promise_it_declares() -> None:
    from tests.support.seams import seam_dropping_spec

    result = run_check(
        seam_dropping_spec(expected_failures={"chunked_decode_matches_full_decode": "seams flicker (bug 3)"}),
        "chunked_decode_matches_full_decode", profile="quick", seed=5,
    )

    assert result.status == "xfailed"
    assert result.message.startswith("expected failure (seams flicker (bug 3)): chunked decode differs")


def test_a_crash_is_not_covered_by_an_expected_failure() -> None:
    declared = spec(ForkCrashes, "fork-crashes", expected_failures={FORK: "fork shares its ring buffer (bug 7)"})

    result = run_check(declared, FORK, profile="quick", seed=5)

    assert result.status == "failed"
    assert f"{FORK} is declared as an expected failure (fork shares its ring buffer (bug 7)), but it failed in another way" in result.message
    assert "the decoder raised" in result.message
    assert "RuntimeError: CUDA stream handle invalid after copy" in result.message


def test_a_hang_is_not_covered_by_an_expected_failure() -> None:
    declared = spec(ForkHangs, "fork-hangs", expected_failures={FORK: "known"}, check_timeout_s=0.5)

    try:
        result = run_check(declared, FORK, profile="quick", seed=5)
    finally:
        release_abandoned_check(RELEASE, FORK)

    assert result.status == "failed"
    assert "failed in another way" in result.message and "did not finish in time" in result.message
    assert f"{FORK} did not return within 0.5 s" in result.message


def test_a_vacuous_pass_is_not_covered_by_an_expected_failure() -> None:
    check_id = "chunked_decode_matches_full_decode"
    declared = spec(EmitsNothing, "emits-nothing", expected_failures={check_id: "seams flicker"})

    result = run_check(declared, check_id, profile="quick", seed=5)

    assert result.status == "failed"
    assert "failed in another way" in result.message and "exercised nothing" in result.message


@pytest.mark.parametrize(("raised", "status"), [(CheckFailed, "xfailed"), (DecoderError, "failed")])
def test_a_failure_found_before_a_timeout_keeps_its_kind(
    monkeypatch: pytest.MonkeyPatch, raised: type[CheckFailed], status: str
) -> None:
    """A search that found a bug but could not finish shrinking it in time: the bug found
    decides whether the declaration covers it (a broken promise yes, a crash no)."""
    release = threading.Event()

    def search_that_cannot_finish_shrinking(ctx: Any) -> None:
        calls: list[int] = []

        def prop(x: int) -> None:
            ctx.evidence.examples += 1
            calls.append(x)
            if len(calls) > 1:
                release.wait(timeout=30)
            raise raised(f"example {x} is wrong")

        run_property(ctx, prop, max_examples=10, x=st.integers())

    fake = Check(id="decoding_is_deterministic", category="forward_contract",
                 function=search_that_cannot_finish_shrinking, exercises=("examples",))
    monkeypatch.setattr(inprocess, "get_check", lambda check_id: fake)
    declared = toy_spec(check_timeout_s=1.0, expected_failures={fake.id: "known"})
    try:
        result = run_check(declared, fake.id, seed=0)
    finally:
        release_abandoned_check(release, fake.id)

    assert result.status == status, result.message
    assert "is wrong" in result.message


# ---------------------------------------------------------------------------------
# Pinning: the declaration to paste is shown where users read, and it pins


PINNABLE = '''
from dataclasses import replace

from conformance import DecoderSpec, ExpectedFailure
from tests.zoo.size_mappers import negative_frames_for_zero_latents


def unpinned() -> DecoderSpec:
    spec = negative_frames_for_zero_latents()
    return replace(spec, expected_failures={{"temporal_mappers_monotone_and_steady": "AR 0 maps 0 to -3 (ISSUE-41)"}})


def pinned() -> DecoderSpec:
    spec = negative_frames_for_zero_latents()
    return replace(spec, expected_failures={{"temporal_mappers_monotone_and_steady": {declaration}}})
'''


def test_the_declaration_to_paste_is_printed_and_pins_exactly_what_was_seen(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from tests.support.cli import run_kit

    check = ["--check", "temporal_mappers_monotone_and_steady", "--profile", "quick", "--seed", "1"]
    (tmp_path / "pins.py").write_text(PINNABLE.format(declaration="None"))
    first = run_kit("certify", "pins:unpinned", *check, "--report", str(tmp_path / "r.json"),
                    "--markdown", str(tmp_path / "c.md"), pythonpath=[tmp_path])
    (result,) = json.loads((tmp_path / "r.json").read_text())["checks"]
    assert result["status"] == "xfailed", result["message"]
    declaration = result["evidence"]["pin_with"]
    fingerprint = result["evidence"]["failure_fingerprint"]
    assert declaration == f"ExpectedFailure('AR 0 maps 0 to -3 (ISSUE-41)', fingerprint={fingerprint!r})"
    assert f"pin with: {declaration}" in first.stdout  # the terminal, not only the JSON
    assert f"pin it to what was seen: `{declaration}`" in (tmp_path / "c.md").read_text()

    (tmp_path / "pins.py").write_text(PINNABLE.format(declaration=declaration))
    run_kit("certify", "pins:pinned", *check, "--report", str(tmp_path / "r2.json"), pythonpath=[tmp_path])
    (again,) = json.loads((tmp_path / "r2.json").read_text())["checks"]
    assert again["status"] == "xfailed" and "fingerprint matches the declaration" in again["message"]
    assert "pin_with" not in again["evidence"]  # pinned already: nothing to paste

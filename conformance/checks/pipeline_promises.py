"""Promises real pipelines rely on about ``cache=None`` and the autoregressive index.

The rule these checks enforce, derived from the interface's docstrings
(``flashdreams.infra.decoder.base``):

- ``forward(self, input, autoregressive_index=0, cache=None)`` is the call shape, so a
  call without a cache at index 0 is a **one-shot decode**: it must give what a call
  with a fresh cache gives, and leave nothing behind. A decoder may refuse it
  explicitly (``ValueError``, ``AssertionError`` or ``NotImplementedError`` saying a
  cache is required); it may not crash on it or silently decode something else.
- **The cache alone carries a rollout's state.** The autoregressive index only selects
  first-chunk behaviour (index 0: causal first-frame padding, a fresh history) versus
  steady-state behaviour (every index >= 1 alike: ``temporal_compression_ratio`` is "in
  steady state (AR >= 1)", a single steady state); the size mappers follow the same
  split (checked by ``temporal_mappers_monotone_and_steady``). So, given the same cache
  and the same latents, two indices >= 1 must give the same output. A decoder may
  validate the index against its cache and refuse an index out of order (``ValueError``
  or ``AssertionError``); it may not use the index's value to find its state (a
  ping-pong buffer chosen by index parity, a history slot per index, a frame offset of
  ``index * chunk``).
"""

from __future__ import annotations

from typing import Any

import torch

from conformance.checks.registry import promise
from conformance.checks.harness.context import CheckContext, Step
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed, DecoderError

__all__ = ["autoregressive_index_only_selects_first_chunk", "cache_none_matches_fresh_cache"]

#: Exceptions that say "refused", as opposed to a crash (``AttributeError: 'NoneType'
#: object has no attribute ...``, ``TypeError: 'NoneType' object is not subscriptable``).
REFUSALS: tuple[type[BaseException], ...] = (ValueError, AssertionError, NotImplementedError)
#: Index refusals: the same, minus "not implemented" (every index >= 1 is steady state).
INDEX_REFUSALS: tuple[type[BaseException], ...] = (ValueError, AssertionError)
#: How far past the natural index the index check jumps: odd and even, small and large.
INDEX_JUMPS = (1, 2, 997)


class _Refused(Exception):
    """The decoder refused ``cache=None`` explicitly (allowed by the rule)."""


def _refusal(err: DecoderError, allowed: tuple[type[BaseException], ...]) -> BaseException | None:
    cause = err.__cause__
    return cause if isinstance(cause, allowed) else None


@promise(exercises=("decoder_calls",))
def cache_none_matches_fresh_cache(ctx: CheckContext) -> None:
    """``decoder(input=x, autoregressive_index=0, cache=None)`` (a one-shot decode) gives
    what the same call with a fresh cache gives, every time, without disturbing rollouts.

    Why: ``cache=None`` is the default of the interface's call shape, and pipelines use
    it for one-shot decodes (previews, a whole clip at once, tests). Decoders that build
    a "default cache" once and keep it on the module make the second one-shot call
    continue from the first (and leak into concurrent rollouts); decoders whose
    ``cache=None`` path was written for the captured steady-state step decode the chunk
    as a later chunk, without the causal first frame.

    What: decodes a few latent frames with a fresh cache (the reference), then twice with
    ``cache=None``, then once more inside a rollout: the rollout's first chunk, a
    one-shot call on other latents, the rollout's second chunk. Every one-shot output
    must equal the reference within the tolerance, and the rollout must equal the same
    rollout made without the one-shot call (the control: a chunk-seam bug shows in both
    and is not blamed on the one-shot call; the evidence notes it). A decoder that refuses ``cache=None`` with ``ValueError``,
    ``AssertionError`` or ``NotImplementedError`` honours the rule (pipelines get a clear
    error instead of wrong video) and passes; any other exception fails the check.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    n = ctx.chunk_limit(3)
    sequence = LatentSequence.of(0, n)
    reference = ctx.full_decode(decoder, sequence)
    latents = ctx.latents(sequence)

    def one_shot(when: str) -> Step:
        try:
            return ctx.forward(decoder, latents, 0, None)
        except DecoderError as err:
            refused = _refusal(err, REFUSALS)
            if refused is not None and when == "first":
                raise _Refused(str(err)) from err
            raise CheckFailed(
                f"the one-shot call decoder(input=..., autoregressive_index=0, cache=None) "
                f"({when} call) failed: {err}. cache=None is the interface's default: decode "
                "the chunk as with a fresh cache (build one inside forward), or refuse it with "
                "a ValueError saying a cache is required"
            ) from err

    def judge(step: Step, when: str) -> None:
        comparison = ctx.compare(reference, step.output)
        if not comparison.ok:
            raise CheckFailed(
                f"the one-shot call (cache=None at AR 0, {n} latent frame(s), {when}) differs "
                f"from the same call with a fresh cache: {comparison.describe()}. With "
                "cache=None, decode as a first chunk with a fresh cache made for this call "
                "alone: not a cache kept on the module, not the steady-state path"
            )

    try:
        judge(one_shot("first"), "first call")
    except _Refused:
        # An explicit refusal honours the rule: pipelines get a clear error, not bad video.
        ctx.evidence.examples += 1
        return
    ctx.evidence.examples += 1
    judge(one_shot("second"), "second call, after another one-shot call")
    ctx.evidence.examples += 1

    # A one-shot call in the middle of a rollout must not disturb it. The same rollout
    # without the one-shot call is the control: a difference between the two is the
    # one-shot call's doing; a difference both show against the one-call decode is a
    # chunk-seam bug (chunked_decode_matches_full_decode's to report), not this promise.
    if n >= 2:
        rollout = LatentSequence.of(1, n)
        rollout_latents = ctx.latents(rollout)
        control = _first_two_steps(ctx, decoder, rollout_latents)
        cache = ctx.new_cache(decoder)
        first = ctx.forward(decoder, rollout_latents[:, :, :1], 0, cache)
        judge(one_shot("between"), "between two steps of a rollout")
        second = ctx.forward(decoder, rollout_latents[:, :, 1:], 1, cache)
        ctx.evidence.rollouts += 1
        comparison = ctx.compare(control, _concatenated(first, second))
        if not comparison.ok:
            raise CheckFailed(
                "a rollout with a one-shot call (cache=None) made between its AR 0 and AR 1 "
                "steps differs from the same rollout without it (same latents, same chunks): "
                f"{comparison.describe()}; the one-shot call changed state outside its own call "
                "(module state, a shared buffer)"
            )
        expected = ctx.full_decode(decoder, rollout)
        if not ctx.compare(expected, control).ok:
            ctx.evidence.note(
                "seam_bug_seen",
                "the rollout differs from its one-call decode with or without the one-shot "
                "call: a chunk-seam bug, not the one-shot call's doing (see "
                "chunked_decode_matches_full_decode)",
            )
        ctx.evidence.examples += 1


def _first_two_steps(ctx: CheckContext, decoder: Any, latents: torch.Tensor) -> torch.Tensor:
    """The rollout's first chunk (one latent frame) and second chunk (the rest) on a fresh
    cache, concatenated: what a rollout undisturbed by a one-shot call decodes."""
    cache = ctx.new_cache(decoder)
    first = ctx.forward(decoder, latents[:, :, :1], 0, cache)
    second = ctx.forward(decoder, latents[:, :, 1:], 1, cache)
    ctx.evidence.rollouts += 1
    return _concatenated(first, second)


def _concatenated(*steps: Step) -> torch.Tensor:
    """The steps' canonical outputs concatenated along time."""
    return torch.cat([step.output for step in steps], dim=2)


@promise(exercises=("decoder_calls",))
def autoregressive_index_only_selects_first_chunk(ctx: CheckContext) -> None:
    """Given the same cache and latents, every autoregressive index >= 1 gives the same
    output (or is refused): the index selects first-chunk versus steady-state behaviour,
    and the cache alone carries the rollout's state.

    Why: the interface defines one steady state (``temporal_compression_ratio`` holds for
    every AR >= 1) and puts rollout state in the cache. Decoders that instead find their
    state through the index (ping-pong buffers chosen by index parity, a history slot per
    index, a frame offset of ``index * chunk``) decode correctly only while the index is
    exactly what they assumed; a pipeline that numbers steps differently (restarts a
    rollout from a forked cache, skips a step, counts globally) gets silently wrong video.

    What: decodes two steps of a rollout (AR 0, AR 1), then the next chunk at the natural
    index 2 and, in identical rollouts, at indices ``2 + j`` for j in 1, 2 and 997. Each
    must equal the natural step's output within the tolerance, or be refused with
    ``ValueError`` / ``AssertionError`` (validating the index against the cache is
    allowed). Any other exception fails. The mappers' side of the rule (AR >= 1 is
    ``n * ratio``) is ``temporal_mappers_monotone_and_steady``'s.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    first, later = ctx.chunk_limit(2), ctx.chunk_limit(2)
    sequence = LatentSequence.of(0, first + 1 + later)
    latents = ctx.latents(sequence)
    prefix = ((0, first), (first, first + 1))
    chunk = latents[:, :, first + 1 :]

    def continue_at(index: int) -> Step:
        cache = ctx.new_cache(decoder)
        for ar, (begin, end) in enumerate(prefix):
            ctx.forward(decoder, latents[:, :, begin:end], ar, cache)
        ctx.evidence.rollouts += 1
        return ctx.forward(decoder, chunk, index, cache)

    natural = continue_at(2)
    for jump in INDEX_JUMPS:
        index = 2 + jump
        try:
            step = continue_at(index)
        except DecoderError as err:
            if _refusal(err, INDEX_REFUSALS) is not None:
                ctx.evidence.examples += 1  # validated against the cache: allowed
                continue
            raise CheckFailed(
                f"after two steps (AR 0, 1), calling the next chunk at AR {index} instead of 2 "
                f"failed: {err}. Every AR >= 1 is the same steady state; validate the index "
                "against the cache with a ValueError if you must, never crash"
            ) from err
        comparison = ctx.compare(natural.output, step.output)
        ctx.evidence.examples += 1
        if not comparison.ok:
            raise CheckFailed(
                f"after two steps (AR 0, 1), the same cache state and the same {later} latent "
                f"frame(s) decoded at AR {index} differ from AR 2: {comparison.describe()}. The "
                "decoder finds its state through the index's value (e.g. ping-pong buffers by "
                "index parity, a history slot per index); keep rollout state in the cache and "
                "use the index only to tell the first chunk (0) from later ones"
            )

"""Decoded pixels are numbers: no NaN or infinity, however long the rollout runs."""

from __future__ import annotations

from conformance.checks.harness.common import plan_text
from conformance.checks.registry import promise
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed

__all__ = ["FINITE_ROLLOUT_MIN_FRAMES", "finite_rollout_plan", "outputs_are_finite"]

#: Fewest latent frames the long rollout of ``outputs_are_finite`` decodes. Decoders go
#: non-finite late when something grows with the rollout (an unnormalized running sum in
#: the cache, a position counter fed to an exponential, a float16 accumulator); 48 frames
#: is three times the chunk check's long rollout in the default profile, and far past the
#: 30 frames a real broken decoder needed.
FINITE_ROLLOUT_MIN_FRAMES = 48

#: Chunk lengths after the first chunk, cycled: one-frame steps and multi-frame ones.
_LATER_CHUNKS = (1, 2, 1, 3)


def finite_rollout_plan(ctx: CheckContext) -> tuple[int, ...]:
    """The long rollout's plan: a three-frame first chunk, then 1, 2, 1, 3, ... frames
    (capped by ``max_chunk_frames``), at least ``FINITE_ROLLOUT_MIN_FRAMES`` latent frames
    in all and three times the profile's long rollout when that is longer."""
    total = max(FINITE_ROLLOUT_MIN_FRAMES, 3 * ctx.profile.long_sequence_frames)
    plan = [ctx.chunk_limit(3)]
    while sum(plan) < total:
        plan.append(min(ctx.chunk_limit(_LATER_CHUNKS[(len(plan) - 1) % len(_LATER_CHUNKS)]), total - sum(plan)))
    return tuple(plan)


@promise(exercises=("pixel_frames",))
def outputs_are_finite(ctx: CheckContext) -> None:
    """Every output holds finite numbers only: no NaN, no +Inf or -Inf, at any step of a
    long rollout.

    Why: a NaN or an infinity is not a pixel, and it compares as nothing: before this
    check an all-NaN decoder agreed with itself everywhere ("max error 0"). Decoders go
    non-finite in ways short tests miss: only at the first frame (a division by the
    causal padding's zero norm), or only after tens of steps (an accumulator in the cache
    that overflows float16, an unnormalized running sum).

    What: every output the kit sees, in every check, must be finite; a non-finite one
    fails that check naming the call (AR index, latent frames), the pixel frames and how
    many values. This check adds one long rollout of at least ``FINITE_ROLLOUT_MIN_FRAMES``
    latent frames (48; a three-frame first chunk, then chunks of 1, 2, 1, 3, ... frames)
    on one cache, so that decoders that go non-finite late are caught too.
    """
    decoder = ctx.decoder()
    plan = finite_rollout_plan(ctx)
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    try:
        ctx.decode_plan(decoder, latents, plan)  # every output is checked as it comes back
    except CheckFailed as err:
        seen = ctx.evidence.latent_frames
        raise CheckFailed(
            f"{err}\n(in the long rollout of {sum(plan)} latent frames, chunk plan "
            f"{plan_text(plan)}; the {seen} latent frames before that call decoded to finite "
            "pixels)"
        ) from err
    ctx.evidence.examples += len(plan)
    ctx.evidence.note("finite_rollout_latent_frames", sum(plan))
    ctx.evidence.note("finite_rollout_plan", plan_text(plan[:8]) + (" ..." if len(plan) > 8 else ""))

"""The central streaming promise: chunked decoding equals decoding everything at once."""

from __future__ import annotations

from conformance.checks._common import describe_mismatch, plan_text
from conformance.checks.registry import promise
from conformance.harness import CheckContext
from conformance.latents import LatentSequence
from conformance.outcomes import CheckFailed
from conformance.properties import run_property
from conformance.strategies import ChunkCase, chunk_cases, required_chunk_plans

__all__ = ["chunked_decode_matches_full_decode"]


@promise("chunking", exercises=("compared_frames",))
def chunked_decode_matches_full_decode(ctx: CheckContext) -> None:
    """For any latent sequence and any chunk plan, decoding chunk k at AR index k with one
    cache and concatenating the outputs along time equals decoding the whole sequence in
    one call at AR 0, within the dtype's tolerance.

    Why: this is what makes streaming a drop-in for offline decoding. Seam bugs (history
    dropped or duplicated at a chunk boundary, causal padding re-applied at AR >= 1, the
    first frame trimmed twice) produce plausible-looking video with flicker or drift at
    every seam; nothing crashes.

    What: Hypothesis draws sequence lengths up to the profile's bound and partitions of
    them into chunks (a failure is shrunk to the fewest frames and seams); then plans
    with a multi-frame first chunk followed by one-frame chunks, all one-frame chunks,
    alternating sizes and long-then-short are always tried explicitly, and one long
    rollout of one-frame steps (bugs that need many steps: ring buffers that wrap,
    position counters). Each sequence's one-call decode is computed once and compared
    with every plan drawn for it. Failures report the plan, the first mismatching pixel
    frame with its chunk and AR index, the largest error and the tolerance.
    """
    decoder = ctx.decoder()
    max_frames = ctx.chunk_limit(ctx.profile.max_sequence_frames)
    max_chunk = ctx.spec.max_chunk_frames

    def check_case(case: ChunkCase) -> None:
        ctx.evidence.examples += 1
        sequence = LatentSequence.of(case.variant, case.length)
        full = ctx.full_decode(decoder, sequence)
        decoded = ctx.decode_plan(decoder, ctx.latents(sequence), case.plan)
        chunked = decoded.video()
        where = (
            f"chunk plan {plan_text(case.plan)} (latent frames per call; chunk k decoded at AR k "
            f"with one cache) vs one call of {case.length} latent frames at AR 0; latent "
            f"variant {case.variant}, batch {ctx.spec.batch_size}, {ctx.spec.dtype}, "
            f"{ctx.spec.device}"
        )
        if chunked.shape[2] != full.shape[2]:
            raise CheckFailed(
                f"chunked decode has the wrong length: {where}: the chunks produced {chunked.shape[2]} pixel frames in total "
                f"({[s.frames for s in decoded.steps]} per chunk) but the one-call decode "
                f"produced {full.shape[2]}"
            )
        comparison = ctx.compare(full, chunked)
        if not comparison.ok:
            raise CheckFailed(
                f"chunked decode differs from full decode: {where}: "
                f"{describe_mismatch(comparison, decoded)}"
            )

    # Random search first, so a failure it finds is shrunk to a minimal plan; then the
    # plans every certification must try, whatever the search drew.
    run_property(
        ctx,
        check_case,
        max_examples=ctx.profile.chunk_examples,
        case=chunk_cases(max_frames, variants=ctx.profile.latent_variants, max_chunk=max_chunk),
    )
    for plan in required_chunk_plans(max_frames, max_chunk=max_chunk):
        try:
            check_case(ChunkCase(variant=0, plan=plan))
        except CheckFailed as err:
            raise type(err)(
                f"{err}\n(found by one of the chunk plans every certification tries explicitly; "
                f"the random search of {ctx.profile.chunk_examples} examples did not hit a failure)"
            ) from err
    long_frames = ctx.chunk_limit(ctx.profile.long_sequence_frames)
    if long_frames > max_frames:
        long_plan = (ctx.chunk_limit(2),) + (1,) * (long_frames - ctx.chunk_limit(2))
        try:
            check_case(ChunkCase(variant=0, plan=long_plan))
        except CheckFailed as err:
            raise type(err)(
                f"{err}\n(found by the long rollout of one-frame steps; shorter sequences "
                "passed, so the decoder goes wrong only after many steps)"
            ) from err
        ctx.evidence.note("long_sequence_frames", long_frames)
    ctx.evidence.note("max_sequence_frames", max_frames)
    ctx.evidence.note("full_decodes", ctx.full_decode_count)
    ctx.evidence.note("explicit_plans", [list(p) for p in required_chunk_plans(max_frames, max_chunk=max_chunk)])

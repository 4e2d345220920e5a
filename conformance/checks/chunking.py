"""The central streaming promise: chunked decoding equals decoding everything at once."""

from __future__ import annotations

from hypothesis import example, given

from conformance.checks._common import describe_mismatch, plan_text
from conformance.checks.registry import promise
from conformance.harness import CheckContext
from conformance.latents import LatentSequence
from conformance.outcomes import CheckFailed
from conformance.properties import run_property
from conformance.strategies import ChunkCase, chunk_cases, required_chunk_plans

__all__ = ["chunked_decode_matches_full_decode"]


@promise("chunking")
def chunked_decode_matches_full_decode(ctx: CheckContext) -> None:
    """For any latent sequence and any chunk plan, decoding chunk k at AR index k with one
    cache and concatenating the outputs along time equals decoding the whole sequence in
    one call at AR 0, within the dtype's tolerance.

    Why: this is what makes streaming a drop-in for offline decoding. Seam bugs (history
    dropped or duplicated at a chunk boundary, causal padding re-applied at AR >= 1, the
    first frame trimmed twice) produce plausible-looking video with flicker or drift at
    every seam; nothing crashes.

    What: Hypothesis draws sequence lengths up to the profile's bound and partitions of
    them into chunks; plans with a multi-frame first chunk followed by one-frame chunks,
    all one-frame chunks and alternating sizes are always tried explicitly. Each
    sequence's one-call decode is computed once and compared with every plan drawn for
    it. Failures report the plan, the first mismatching pixel frame with its chunk and AR
    index, the largest error and the tolerance.
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
                f"{where}: the chunks produced {chunked.shape[2]} pixel frames in total "
                f"({[s.frames for s in decoded.steps]} per chunk) but the one-call decode "
                f"produced {full.shape[2]}"
            )
        comparison = ctx.compare(full, chunked)
        if not comparison.ok:
            raise CheckFailed(
                f"chunked decode differs from full decode: {where}: "
                f"{describe_mismatch(comparison, decoded)}"
            )

    test = given(case=chunk_cases(max_frames, variants=ctx.profile.latent_variants, max_chunk=max_chunk))(
        check_case
    )
    for plan in required_chunk_plans(max_frames, max_chunk=max_chunk):
        test = example(case=ChunkCase(variant=0, plan=plan))(test)
    run_property(ctx, test, max_examples=ctx.profile.chunk_examples)
    ctx.evidence.note("max_sequence_frames", max_frames)
    ctx.evidence.note("full_decodes", ctx.full_decode_count)
    ctx.evidence.note("explicit_plans", [list(p) for p in required_chunk_plans(max_frames, max_chunk=max_chunk)])

"""The central streaming promise: chunked decoding equals decoding everything at once."""

from __future__ import annotations

import time

import torch

from conformance.checks.harness.common import describe_mismatch, plan_text
from conformance.checks.registry import promise
from conformance.checks.harness.context import CheckContext, Decoded
from conformance.checks.harness.fingerprints import seam_fingerprint
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed, CheckSkipped, DecoderError
from conformance.checks.harness.search import run_property
from conformance.strategies import ChunkCase, chunk_cases, long_chunk_plans, required_chunk_plans
from conformance.checks.harness.tolerances import (
    NOISE_FACTOR,
    Tolerance,
    compare,
    frame_rms_errors,
    noise_tolerance,
)

__all__ = ["chunked_decode_matches_full_decode", "long_rollouts_match_full_decode"]

#: Chunk sizes the irregular long plan cycles through: seams at every residue of small
#: periods, call counts and frame counts apart (a bug keyed to one of them shows).
IRREGULAR_SIZES = (1, 2, 3, 5, 7, 4, 6)


@promise(exercises=("compared_frames",), fingerprinted=True)
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
    frame with its chunk and AR index, the largest error and the tolerance. A failure
    records the plans of a fixed battery that fail (``failure_fingerprint``), which an
    expected failure can pin.
    """
    if ctx.spec.max_chunk_frames == 1:
        # Every plan is then one-frame steps, and so is the reference (the decoder takes no
        # longer call): comparing the program with itself would be a vacuous pass.
        raise CheckSkipped(
            "DecoderSpec.max_chunk_frames is 1: a sequence can be decoded only one way (one "
            "latent frame per call), so there is no other decode to compare it with; "
            "rollout_state_machine still compares interleaved and forked rollouts with it"
        )
    started = time.monotonic()
    try:
        _chunked_vs_full(ctx)
    except DecoderError:
        raise
    except CheckFailed:
        # Leave the failure time to be reported: fingerprint within 80% of the timeout.
        budget = 0.8 * (ctx.spec.check_timeout_s or ctx.profile.check_timeout_s)
        try:
            fingerprint = seam_fingerprint(ctx, ctx.decoder(), deadline=started + budget)
            ctx.evidence.note("failure_fingerprint", fingerprint)
        except CheckFailed as err:  # the decoder broke while fingerprinting: no fingerprint
            ctx.evidence.note("failure_fingerprint_error", str(err))
        raise


def _chunked_vs_full(ctx: CheckContext) -> None:
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    max_frames = ctx.chunk_limit(ctx.profile.max_sequence_frames)
    max_chunk = ctx.spec.max_chunk_frames
    twin = _NoiseReference(ctx) if ctx.spec.reference_dtype is not None else None

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
        if twin is not None:
            twin.check(sequence, full, decoded, chunked, where)

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
    for plan in ctx.spec.chunk_plans:  # the pipeline's own plans, as given
        try:
            check_case(ChunkCase(variant=0, plan=plan))
        except CheckFailed as err:
            raise type(err)(f"{err}\n(found by one of DecoderSpec.chunk_plans, the pipeline's own plans)") from err
    long_frames = ctx.chunk_limit(ctx.profile.long_sequence_frames)
    if long_frames > max_frames:
        for long_plan in long_chunk_plans(long_frames, max_chunk=max_chunk):
            try:
                check_case(ChunkCase(variant=0, plan=long_plan))
            except CheckFailed as err:
                raise type(err)(
                    f"{err}\n(found by a long rollout, {plan_text(long_plan)}: one-frame steps, "
                    "or long later chunks; shorter sequences passed, so the decoder goes wrong "
                    "only after many steps or with long calls)"
                ) from err
        ctx.evidence.note("long_sequence_frames", long_frames)
    if twin is not None:
        twin.record()
    ctx.evidence.note("max_sequence_frames", max_frames)
    ctx.evidence.note("full_decodes", ctx.full_decode_count)
    ctx.evidence.note("explicit_plans", [list(p) for p in required_chunk_plans(max_frames, max_chunk=max_chunk)])


class _NoiseReference:
    """The measured-noise criterion, for specs that declare ``reference_dtype``.

    For each latent sequence: ``sigma``, the worst frame RMS of the one-call decode
    against the wider twin's one-call decode (the decoder's own rounding noise), and the
    bound :func:`conformance.checks.harness.tolerances.noise_tolerance` derives from it; then every
    chunked decode of that sequence must be within the bound of the twin's decode, frame
    by frame. A twin that agrees bitwise with the decoder measured no noise: the dtype
    bounds alone apply, and the evidence says why.
    """

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.bounds: dict[LatentSequence, Tolerance | None] = {}
        self.sigma: dict[LatentSequence, float] = {}
        self.worst_ratio = 0.0
        self.unusable: str | None = None

    def bound(self, sequence: LatentSequence, full: torch.Tensor) -> Tolerance | None:
        if sequence in self.bounds:
            return self.bounds[sequence]
        ctx, spec = self.ctx, self.ctx.spec
        reference = ctx.reference_full_decode(sequence)
        if reference.shape != full.shape:
            raise CheckFailed(
                f"the reference decoder (DecoderSpec.reference_dtype={spec.reference_dtype}) "
                f"decodes {sequence.length} latent frames to shape {list(reference.shape)} "
                f"(B, C, T, H, W) where the decoder gives {list(full.shape)}; the reference "
                "must be the same decoder computing in the wider dtype"
            )
        sigma = float(frame_rms_errors(reference, full).max().item())
        tolerance: Tolerance | None = None
        if sigma > 0:
            scale = float(reference.double().square().mean().sqrt().item())
            tolerance = noise_tolerance(
                sigma,
                output_scale=scale,
                dtype=spec.resolved_output_dtype,
                reference_dtype=spec.reference_dtype or reference.dtype,
            )
            self.sigma[sequence] = sigma
        else:
            self.unusable = (
                "the reference decoder's one-call decode equals the decoder's bitwise, so it "
                "measured no rounding noise; the dtype bounds alone applied"
            )
        self.bounds[sequence] = tolerance
        return tolerance

    def check(
        self,
        sequence: LatentSequence,
        full: torch.Tensor,
        decoded: Decoded,
        chunked: torch.Tensor,
        where: str,
    ) -> None:
        tolerance = self.bound(sequence, full)
        if tolerance is None:
            return
        reference = self.ctx.reference_full_decode(sequence)
        comparison = compare(reference, chunked, tolerance)
        self.worst_ratio = max(self.worst_ratio, comparison.rms_ratio)
        if comparison.ok:
            return
        frame = comparison.first_bad_frame or 0
        k, local = decoded.chunk_of_frame(frame)
        sigma = self.sigma[sequence]
        raise CheckFailed(
            f"chunked decode differs from full decode by more than the decoder's own rounding "
            f"noise: {where}: from pixel frame {frame} (pixel frame {local} of chunk {k}, "
            f"decoded at AR {decoded.first_index + k} from {decoded.plan[k]} latent frame(s)) "
            f"the chunked decode is {comparison.rms_error:.3g} RMS (worst frame "
            f"{comparison.rms_frame}) from the {self.ctx.spec.reference_dtype} reference "
            f"decode of the same latents, {comparison.rms_error / sigma:.3g}x the decoder's own "
            f"rounding noise ({sigma:.3g}: its one-call decode against the reference, worst "
            f"frame) where {tolerance.rms:.3g} RMS ({NOISE_FACTOR}x, or one unit roundoff of the "
            f"output's scale if that is more) is allowed. A correct chunked decode is "
            f"another rounding of the same function and lands as close to the reference as "
            f"the one-call decode does; an error this size, structured across a frame, comes "
            f"from the seam ({tolerance})"
        )

    def record(self) -> None:
        evidence = self.ctx.evidence
        if self.sigma:
            evidence.note("reference_noise_rms", max(self.sigma.values()))
            evidence.note("max_frame_rms_to_noise_bound", self.worst_ratio)
            evidence.note("noise_bound_margin", 1.0 - self.worst_ratio)
        if self.unusable:
            evidence.note("reference_noise_unusable", self.unusable)


@promise(exercises=("compared_frames",))
def long_rollouts_match_full_decode(ctx: CheckContext) -> None:
    """Over a long rollout -- hundreds of latent frames -- decoding chunk by chunk still
    equals one decode of everything at once, at every position.

    Why: world models stream for minutes. State that depends on how far a rollout has
    come -- a ring buffer that wraps, a history compacted every N frames, a keyframe or
    reset every N chunks, a position counter in a narrow dtype, a cache that switches
    strategy once full -- passes every short test and corrupts the video a minute in.

    What: ``H`` latent frames (the profile's ``horizon_frames``: 64 quick, 256 default,
    1024 thorough; ``DecoderSpec.horizon_frames`` asks for more) decoded in one call at
    AR 0 (the reference), then with one cache each in: one-frame steps after a two-frame
    first chunk; chunks cycling through 1, 2, 3, 5, 7, 4, 6 frames (call and frame counts
    apart, seams at every small residue); and every plan in ``DecoderSpec.chunk_plans``,
    repeated to cover ``H``. Each must equal the reference frame by frame, within the
    dtype's tolerance; a failure names the first bad pixel frame, its chunk, AR index and
    how far into the rollout it is. A decoder that takes at most ``max_chunk_frames``
    latent frames per call is compared against its decode in chunks of that size
    instead (it cannot decode everything at once), which the evidence says; with
    ``max_chunk_frames=1`` a rollout can be decoded only one way, and the check skips.
    """
    decoder = ctx.decoder()
    horizon = max(ctx.profile.horizon_frames, ctx.spec.horizon_frames or 0)
    limit = ctx.spec.max_chunk_frames
    if limit == 1:
        raise CheckSkipped(
            "DecoderSpec.max_chunk_frames is 1: every rollout is decoded in one-frame steps, so a "
            "long rollout has nothing to be compared with (chunked_decode_matches_full_decode "
            "and the state machine cover its steps)"
        )
    ctx.seek_signal(decoder)
    sequence = LatentSequence.of(5, horizon)
    latents = ctx.latents(sequence)
    if limit is None:
        reference_plan: tuple[int, ...] = (horizon,)
        reference = ctx.full_decode(decoder, sequence)
    else:
        reference_plan = _repeated((limit,), horizon)
        reference = ctx.decode_plan(decoder, latents, reference_plan).video()
        ctx.evidence.note(
            "reference", f"chunks of max_chunk_frames={limit} (the decoder takes no longer calls)"
        )
    plans = [_repeated((min(2, horizon),) + (1,) * horizon, horizon), _repeated(IRREGULAR_SIZES, horizon, limit)]
    plans += [_repeated(plan, horizon) for plan in ctx.spec.chunk_plans]
    for plan in dict.fromkeys(plans):
        if plan == reference_plan:
            continue
        decoded = ctx.decode_plan(decoder, latents, plan)
        chunked = decoded.video()
        where = (
            f"a rollout of {horizon} latent frames decoded in {len(plan)} chunks "
            f"({_plan_summary(plan)}) vs "
            + (f"one call of all {horizon} at AR 0" if limit is None else f"chunks of {limit}")
        )
        if chunked.shape[2] != reference.shape[2]:
            raise CheckFailed(
                f"a long rollout decodes to the wrong length: {where}: {chunked.shape[2]} pixel "
                f"frames against {reference.shape[2]}"
            )
        comparison = ctx.compare(reference, chunked)
        if not comparison.ok:
            frame = comparison.first_bad_frame or 0
            k, _ = decoded.chunk_of_frame(frame)
            into = sum(plan[:k])
            raise CheckFailed(
                f"a long rollout goes wrong far from its start: {where}: "
                f"{describe_mismatch(comparison, decoded)}. The chunk starts {into} latent frames "
                "into the rollout: state that depends on how far a rollout has come (a buffer "
                "that wraps or compacts, a periodic reset, a counter) decodes differently there"
            )
        ctx.evidence.examples += 1
    ctx.evidence.note("horizon_frames", horizon)
    ctx.evidence.note("plans", [_plan_summary(plan) for plan in dict.fromkeys(plans)])


def _repeated(pattern: tuple[int, ...], total: int, limit: int | None = None) -> tuple[int, ...]:
    """``pattern`` repeated (and the last chunk cut) to cover exactly ``total`` frames;
    chunks above ``limit`` split."""
    plan: list[int] = []
    covered = 0
    while covered < total:
        for n in pattern:
            n = min(n, limit) if limit is not None else n
            n = min(n, total - covered)
            if n <= 0:
                break
            plan.append(n)
            covered += n
    return tuple(plan)


def _plan_summary(plan: tuple[int, ...]) -> str:
    """A long plan in words: its first chunks and its length."""
    head = ", ".join(str(n) for n in plan[:9])
    return f"[{head}{', ...' if len(plan) > 9 else ''}] ({len(plan)} calls)"

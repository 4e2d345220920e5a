"""Checks of the size contract: compression ratios and the temporal size mappers.

Pipelines size their buffers from these numbers before decoding anything. A mapper that is
off by the causal first frame, or a ratio that is a float, does not crash the decoder; it
makes the pipeline allocate, trim or stitch the wrong number of frames, silently.
"""

from __future__ import annotations

from typing import Any

from conformance.checks.registry import promise
from conformance.harness import CheckContext, describe_exception
from conformance.latents import LatentSequence
from conformance.outcomes import CheckFailed, DecoderError

__all__ = [
    "decoded_sizes_match_mappers",
    "ratios_are_positive_constant_ints",
    "temporal_mappers_monotone_and_steady",
    "temporal_mappers_round_trip",
]


def mapper_indices(ctx: CheckContext) -> list[int]:
    """AR indices whose mappers are checked: every one below the profile's bound, plus two
    far ones (a long rollout must map like step 1)."""
    n = ctx.profile.mapper_indices
    return list(range(n)) + [2 * n + 1, 1000]


def read_ratio(ctx: CheckContext, decoder: Any, name: str) -> int:
    """Read a compression ratio property; it must be a positive int."""
    raw = ctx.call_decoder(name, getattr, decoder, name)
    try:
        value = ctx.as_int(raw, name)  # ints and int-likes (numpy ints); not bool, float, tensor
    except CheckFailed:
        raise CheckFailed(
            f"{name} is {raw!r} of type {type(raw).__name__}; expected a positive int "
            "(pipelines use it to size tensors)"
        ) from None
    if value < 1:
        raise CheckFailed(f"{name} is {value}; expected a positive int")
    return value


@promise("size_mappers", exercises=("mapper_queries",))
def ratios_are_positive_constant_ints(ctx: CheckContext) -> None:
    """Both compression ratios are positive ints and do not change.

    Why: pipelines compute buffer shapes from ``spatial_compression_ratio`` and
    ``temporal_compression_ratio`` once. A float ratio (``4.0``) or one that depends on
    state (computed from the last input's shape) breaks that sizing without any error.

    What: reads both properties on a fresh decoder, after creating a cache, and after a
    two-step rollout; each read must be the same positive ``int`` (``bool`` is rejected).
    If the cache or forward fails, only the reads before that are compared (those
    failures belong to other checks).
    """
    decoder = ctx.decoder()
    readings: list[tuple[str, int, int]] = []

    def read(moment: str) -> None:
        spatial = read_ratio(ctx, decoder, "spatial_compression_ratio")
        temporal = read_ratio(ctx, decoder, "temporal_compression_ratio")
        ctx.evidence.mapper_queries += 2
        readings.append((moment, spatial, temporal))

    read("on a fresh decoder")
    # Reading again after using the decoder shows the ratios are constants, not state. A
    # decoder whose cache or forward fails is caught by the checks for those promises;
    # here it only limits how much constancy can be observed.
    try:
        cache = ctx.new_cache(decoder)
    except DecoderError as err:
        ctx.evidence.note("not_observed_after_cache", str(err))
    else:
        read("after initialize_autoregressive_cache")
        try:
            ctx.decode_plan(decoder, ctx.latents(LatentSequence.of(0, 2)), (1, 1), cache=cache)
        except DecoderError as err:
            ctx.evidence.note("not_observed_after_forward", str(err))
        else:
            read("after a two-step rollout")
    ctx.evidence.examples += len(readings)
    first = readings[0]
    for moment, spatial, temporal in readings[1:]:
        if (spatial, temporal) != first[1:]:
            raise CheckFailed(
                f"compression ratios changed: (spatial, temporal) = {first[1:]} {first[0]}, "
                f"but {(spatial, temporal)} {moment}; they must be constants of the architecture"
            )
    ctx.evidence.note("spatial_compression_ratio", first[1])
    ctx.evidence.note("temporal_compression_ratio", first[2])


@promise("size_mappers", exercises=("mapper_queries",))
def temporal_mappers_round_trip(ctx: CheckContext) -> None:
    """``get_input_temporal_size`` inverts ``get_output_temporal_size``, and rejects the rest.

    Why: a pipeline that wants ``m`` pixel frames asks ``get_input_temporal_size`` how many
    latent frames to produce. If the two mappers disagree (the classic: one forgets the
    causal first frame at AR 0) it feeds the wrong number of latents and the video comes
    out a few frames short or long, or misaligned with audio and conditioning.

    What: for each checked AR index and every ``n`` from 1 up to the profile's bound,
    ``get_input(ar, get_output(ar, n)) == n``; for every pixel count ``m`` up to the largest
    such output, ``get_output(ar, get_input(ar, m)) == m`` when ``m`` is achievable, and
    ``get_input(ar, m)`` raises ``ValueError`` or ``AssertionError`` when it is not.
    """
    decoder = ctx.decoder()
    for ar in mapper_indices(ctx):
        produced: dict[int, int] = {}
        for n in range(1, ctx.profile.mapper_frames + 1):
            out = ctx.query_mapper(decoder, "output", ar, n)
            if out.rejected:
                raise CheckFailed(
                    f"get_output_temporal_size({ar}, {n}) raised {describe_exception(out.error)}; "
                    f"every latent frame count n >= 1 must be decodable at AR {ar}"
                )
            assert out.value is not None
            back = ctx.query_mapper(decoder, "input", ar, out.value)
            if back.rejected:
                raise CheckFailed(
                    f"get_input_temporal_size({ar}, {out.value}) raised "
                    f"{describe_exception(back.error)}, but get_output_temporal_size({ar}, {n}) = "
                    f"{out.value} says {out.value} pixel frames are produced from {n} latent frames"
                )
            if back.value != n:
                raise CheckFailed(
                    f"mappers disagree at AR {ar}: get_output_temporal_size({ar}, {n}) = {out.value} "
                    f"but get_input_temporal_size({ar}, {out.value}) = {back.value}, expected {n}"
                )
            produced[out.value] = n
        ctx.evidence.examples += 1
        for m in range(1, max(produced, default=0) + 1):
            answer = ctx.query_mapper(decoder, "input", ar, m)
            if m in produced:
                continue  # its round trip was checked above
            if not answer.rejected:
                raise CheckFailed(
                    f"get_input_temporal_size({ar}, {m}) returned {answer.value}, but {m} pixel "
                    f"frames cannot be produced at AR {ar} (achievable counts up to "
                    f"{max(produced)}: {sorted(produced)[:12]}...); it must raise ValueError or "
                    "AssertionError instead of rounding"
                )
    ctx.evidence.note("ar_indices", mapper_indices(ctx))
    ctx.evidence.note("max_latent_frames", ctx.profile.mapper_frames)


@promise("size_mappers", exercises=("mapper_queries",))
def temporal_mappers_monotone_and_steady(ctx: CheckContext) -> None:
    """Outputs grow strictly with the input, every step after the first maps like steady
    state (``n * temporal_compression_ratio``), and step 0 never yields more.

    Why: the documented meaning of ``temporal_compression_ratio`` is the steady-state
    frames per latent frame; pipelines precompute total video length from it. A mapper
    that treats AR 1 like AR 0 (causal padding applied twice), or whose count shrinks or
    goes negative, yields truncated or mis-sized videos without an error.

    What: for each checked AR index, ``get_output_temporal_size(ar, n)`` for n = 1..N is
    never negative and strictly increasing; for n = 0 and -1 it raises ``ValueError`` /
    ``AssertionError`` or returns 0; for AR >= 1 it equals ``n * ratio`` exactly; for AR 0
    it is at most ``n * ratio``.
    """
    decoder = ctx.decoder()
    ratio = read_ratio(ctx, decoder, "temporal_compression_ratio")
    for ar in mapper_indices(ctx):
        previous: tuple[int, int] | None = None
        for n in range(1, ctx.profile.mapper_frames + 1):
            out = ctx.query_mapper(decoder, "output", ar, n)
            if out.rejected:
                raise CheckFailed(
                    f"get_output_temporal_size({ar}, {n}) raised {describe_exception(out.error)}; "
                    f"every n >= 1 must be decodable"
                )
            value = out.value
            assert value is not None
            if value < 0:
                raise CheckFailed(f"get_output_temporal_size({ar}, {n}) = {value} is negative")
            if previous is not None and value <= previous[1]:
                raise CheckFailed(
                    f"get_output_temporal_size is not strictly increasing at AR {ar}: n={previous[0]} "
                    f"gives {previous[1]} pixel frames, n={n} gives {value}"
                )
            previous = (n, value)
            steady = n * ratio
            if ar >= 1 and value != steady:
                raise CheckFailed(
                    f"get_output_temporal_size({ar}, {n}) = {value}, expected {steady} = {n} * "
                    f"temporal_compression_ratio ({ratio}): every step after the first must map "
                    "like steady state"
                )
            if ar == 0 and value > steady:
                raise CheckFailed(
                    f"get_output_temporal_size(0, {n}) = {value} exceeds the steady-state {steady} "
                    f"= {n} * temporal_compression_ratio ({ratio}); step 0 may yield fewer frames "
                    "(causal first frame), never more"
                )
        for n in (0, -1):
            out = ctx.query_mapper(decoder, "output", ar, n)
            if not out.rejected and out.value != 0:
                raise CheckFailed(
                    f"get_output_temporal_size({ar}, {n}) = {out.value}; for n < 1 it must raise "
                    "ValueError / AssertionError or return 0"
                )
        ctx.evidence.examples += 1
    ctx.evidence.note("ar_indices", mapper_indices(ctx))


def size_probe_plans(ctx: CheckContext) -> list[tuple[int, ...]]:
    """Rollouts whose every step is measured: one-frame and multi-frame first chunks, then
    one-frame and multi-frame later chunks."""
    plans = [(1, 1, 2), (3, 1, 1), (2, 3)]
    out = []
    for plan in plans:
        capped = tuple(ctx.chunk_limit(n) for n in plan)
        if capped not in out:
            out.append(capped)
    return out


@promise("size_mappers", exercises=("decoder_calls",))
def decoded_sizes_match_mappers(ctx: CheckContext) -> None:
    """Decoding ``n`` latent frames at AR ``i`` yields exactly ``get_output_temporal_size(i, n)``
    frames, and the latent size times ``spatial_compression_ratio`` in height and width.

    Why: the mappers are promises about what forward does. When they drift apart (the
    mapper was updated, the causal trim was not), every pipeline that trusts them writes
    frames to the wrong place.

    What: decodes several rollouts (one- and multi-frame first chunks, one- and
    multi-frame later chunks) and compares every step's output time, height and width
    with the mappers' and ratio's prediction.
    """
    decoder = ctx.decoder()
    spatial = read_ratio(ctx, decoder, "spatial_compression_ratio")
    h, w = ctx.spec.latent_size
    for variant, plan in enumerate(size_probe_plans(ctx)):
        latents = ctx.latents(LatentSequence.of(variant, sum(plan)))
        decoded = ctx.decode_plan(decoder, latents, plan)
        for step in decoded.steps:
            ar, n = step.autoregressive_index, step.latent_frames
            expected = ctx.query_mapper(decoder, "output", ar, n)
            if expected.rejected:
                raise CheckFailed(
                    f"get_output_temporal_size({ar}, {n}) raised {describe_exception(expected.error)} "
                    f"although forward decoded {n} latent frames at AR {ar}"
                )
            _, _, t, height, width = step.output.shape
            where = f"at AR {ar}, {n} latent frame(s) (chunk plan {list(plan)})"
            if t != expected.value:
                raise CheckFailed(
                    f"{where}: forward returned {t} pixel frames but get_output_temporal_size({ar}, "
                    f"{n}) = {expected.value}"
                )
            if (height, width) != (h * spatial, w * spatial):
                raise CheckFailed(
                    f"{where}: output height x width is {height} x {width}, expected "
                    f"{h * spatial} x {w * spatial} = latent {h} x {w} times "
                    f"spatial_compression_ratio {spatial} (output layout "
                    f"{ctx.spec.resolved_output_layout})"
                )
        ctx.evidence.examples += 1
    ctx.evidence.note("chunk_plans", [list(p) for p in size_probe_plans(ctx)])


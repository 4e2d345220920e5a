"""Checks of the size contract: compression ratios and the temporal size mappers.

Pipelines size their buffers from these numbers before decoding anything. A mapper that is
off by the causal first frame, or a ratio that is a float, does not crash the decoder; it
makes the pipeline allocate, trim or stitch the wrong number of frames, silently.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from conformance.checks.registry import promise
from conformance.checks.harness.calls import as_int, describe_exception
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed, DecoderError

__all__ = [
    "DENSE_FRAMES",
    "DENSE_INDICES",
    "FAR_FRAMES",
    "FAR_INDEX",
    "STEADY_FRAMES",
    "decoded_sizes_match_mappers",
    "ratios_are_positive_constant_ints",
    "temporal_mappers_monotone_and_steady",
    "temporal_mappers_round_trip",
]

# The size-mapper queries, the same in every profile (they cost a second or less, and a
# pinned expected failure's fingerprint must not depend on the profile):

#: AR indices checked one by one: 0 .. DENSE_INDICES - 1.
DENSE_INDICES = 8
#: Largest AR index landmark: an int32 step counter's last value (a live stream at ten
#: steps a second passes AR 10^6 in a day; a counter that overflows or a table that ends
#: must show).
FAR_INDEX = 2**31 - 1
#: Latent counts checked one by one at every checked AR index: 1 .. DENSE_FRAMES.
DENSE_FRAMES = 64
#: Latent counts checked one by one at AR 0 and AR 1 (the first step and steady state):
#: 1 .. STEADY_FRAMES, so a mapper wrong for a stretch of counts has no sample points to
#: slip between. A mapper too slow for that (over :data:`SLOW_MAPPER_S` of CPU time a
#: call, or a sweep over its share of the check's timeout) is checked this densely up to
#: where the time allows, and the evidence says where.
STEADY_FRAMES = 2**16
#: Largest latent count landmark: an int32's last value.
FAR_FRAMES = 2**31 - 1
#: Seconds of CPU time (the checking thread's: the mapper's own work and the kit's per
#: query) per mapper call above which the dense sweep stops early. CPU time, not wall
#: time: a busy machine deschedules the check, and what the sweep covers (so the
#: verdict) must not depend on the machine's load.
SLOW_MAPPER_S = 20e-6
#: Share of the check's timeout the dense sweep of one AR index may take in wall time,
#: whatever the CPU time says (a mapper that blocks: I/O, a sleep), so that the two dense
#: sweeps never run a check into its timeout.
DENSE_SWEEP_TIMEOUT_SHARE = 1 / 8


def _landmarks(limit: int, start: int) -> list[int]:
    """Powers of two and of ten from ``start`` to ``limit`` with their neighbours, and a
    geometric grid (ratio 1.25 up to 10^5, then 2) between them: the sizes where table
    lookups end, integer types overflow and off-by-one comparisons flip, plus everything
    in between. Deterministic, so a failure's fingerprint does not depend on the seed."""
    points: set[int] = set()
    for base in (2, 10):
        p = 1
        while p <= limit + 1:
            if p >= start:
                points.update((p - 1, p, p + 1))
            p *= base
    x = float(start)
    while x <= limit:
        points.add(int(round(x)))
        x *= 1.25 if x < 1e5 else 2.0
    points.add(limit)
    return sorted(q for q in points if start <= q <= limit)


def mapper_indices(ctx: CheckContext) -> list[int]:
    """AR indices whose mappers are checked: every one below :data:`DENSE_INDICES`, then
    landmarks up to :data:`FAR_INDEX` (a long rollout must map like step 1 however far it
    has come)."""
    return sorted(set(range(DENSE_INDICES)) | set(_landmarks(FAR_INDEX, DENSE_INDICES)))


def mapper_counts(ctx: CheckContext, ar: int | None = None) -> list[int]:
    """Latent frame counts queried at AR ``ar``: every one up to :data:`DENSE_FRAMES`
    (:data:`STEADY_FRAMES` at AR 0 and 1), then landmarks up to :data:`FAR_FRAMES`."""
    dense = STEADY_FRAMES if ar in (0, 1) else DENSE_FRAMES
    return sorted(set(range(1, dense + 1)) | set(_landmarks(FAR_FRAMES, dense + 1)))


class _Sweep:
    """Stops a dense sweep of latent counts early when the mapper is slow (see
    :data:`SLOW_MAPPER_S`) or the sweep has used its share of the check's time (see
    :data:`DENSE_SWEEP_TIMEOUT_SHARE`); records where and why in the evidence."""

    def __init__(self, ctx: CheckContext) -> None:
        self.ctx = ctx
        self.started = time.perf_counter()
        self.cpu_started = time.thread_time()
        self.queries_at_start = ctx.evidence.mapper_queries
        self.stopped_at: int | None = None
        timeout = ctx.spec.check_timeout_s or ctx.profile.check_timeout_s
        self.wall_budget = DENSE_SWEEP_TIMEOUT_SHARE * timeout

    def keep_going(self, n: int) -> bool:
        if n <= DENSE_FRAMES or n > STEADY_FRAMES or self.stopped_at is not None:
            return self.stopped_at is None or n > STEADY_FRAMES
        if n % 1024 == 0:
            queries = self.ctx.evidence.mapper_queries - self.queries_at_start
            per_call = (time.thread_time() - self.cpu_started) / max(1, queries)
            wall = time.perf_counter() - self.started
            if per_call > SLOW_MAPPER_S:
                why = f"the mapper takes {per_call * 1e6:.0f} us of CPU time a call"
            elif wall > self.wall_budget:
                why = (
                    f"the sweep of this AR index took {wall:.1f} s, its share of the check's "
                    f"timeout ({self.wall_budget:.1f} s)"
                )
            else:
                return True
            self.stopped_at = n
            self.ctx.evidence.note("dense_mapper_sweep_stopped_at", f"n = {n}: {why}; beyond that, landmarks only")
            return False
        return True


def ranges_text(values: list[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1..3, 7, 9..10"``."""
    pieces: list[str] = []
    ordered = sorted(set(values))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        pieces.append(str(ordered[i]) if i == j else f"{ordered[i]}..{ordered[j]}")
        i = j + 1
    return ", ".join(pieces)


def _compact(values: list[int], universe: list[int] | None, what: str) -> str:
    """Readable summary of a set of queried values: ``"every queried AR index"`` when it is
    all of them, else ranges, shortened in the middle when there are many."""
    if universe is not None and set(values) >= set(universe):
        return f"every queried {what}"
    text = ranges_text(values)
    pieces = text.split(", ")
    if len(pieces) > 10:
        text = ", ".join(pieces[:6]) + ", ..., " + ", ".join(pieces[-2:]) + f" ({len(values)} values)"
    return text


class MapperViolations:
    """Every broken mapper promise a check sees, grouped for a compact message.

    A violation is ``(kind, AR index, n, example)``; the message groups the AR indices
    that fail for the same set of ``n`` under one line, with one concrete example each,
    and the fingerprint (see ``ExpectedFailure``) is one line per group: the kind, a
    readable summary of the indices and counts, and a digest of their exact sets, so it
    depends only on the mappers and the queried sizes (the same in every profile), never
    on the seed.
    """

    def __init__(self, indices: list[int], counts: list[int]) -> None:
        self._found: dict[str, dict[int, dict[int, str]]] = {}
        self._indices = indices
        self._counts = counts

    def add(self, kind: str, ar: int, n: int, example: str) -> None:
        self._found.setdefault(kind, {}).setdefault(ar, {}).setdefault(n, example)

    def __bool__(self) -> bool:
        return bool(self._found)

    @property
    def count(self) -> int:
        return sum(len(ns) for by_ar in self._found.values() for ns in by_ar.values())

    def _groups(self) -> list[tuple[str, list[int], list[int], str]]:
        groups: list[tuple[str, list[int], list[int], str]] = []
        for kind, by_ar in self._found.items():
            by_ns: dict[tuple[int, ...], list[int]] = {}
            for ar, ns in by_ar.items():
                by_ns.setdefault(tuple(sorted(ns)), []).append(ar)
            for ns_key, ars in by_ns.items():
                # The example a pipeline would meet first: the count nearest zero (n = 0
                # latent frames, not n = -1; the smallest count >= 1 otherwise).
                example = by_ar[ars[0]][min(ns_key, key=abs)]
                groups.append((kind, sorted(ars), list(ns_key), example))
        return sorted(groups, key=lambda g: (g[0], g[1][0], g[2][0]))

    def _where(self, kind: str, ars: list[int], ns: list[int]) -> str:
        pixel = kind.startswith("get_input_temporal_size accepts")
        counts = None if pixel else self._counts
        label = "pixel count m" if pixel else "latent count n"
        return (
            f"AR {_compact(ars, self._indices, 'AR index')}, {label} "
            f"{_compact(ns, counts, 'latent count')}"
        )

    def fingerprint(self) -> list[str]:
        out = []
        for kind, ars, ns, _ in self._groups():
            digest = hashlib.sha256(f"{kind}|{ars}|{ns}".encode()).hexdigest()[:10]
            out.append(f"{kind} at {self._where(kind, ars, ns)} #{digest}")
        return out

    def message(self, queried: str, limit: int = 12) -> str:
        groups = self._groups()
        lines = [
            f"- {kind} at {self._where(kind, ars, ns)}; e.g. {example}"
            for kind, ars, ns, example in groups[:limit]
        ]
        if len(groups) > limit:
            lines.append(f"- ... and {len(groups) - limit} more groups (all in the report's failure_fingerprint)")
        return (
            f"{self.count} mapper violation(s) in {len(groups)} group(s), all listed "
            f"({queried}):\n" + "\n".join(lines)
        )

    def raise_if_any(self, ctx: CheckContext, queried: str) -> None:
        if not self:
            return
        ctx.evidence.note("failure_fingerprint", self.fingerprint())
        raise CheckFailed(self.message(queried))


def _queried(ctx: CheckContext) -> str:
    indices = mapper_indices(ctx)
    return (
        f"queried {len(indices)} AR indices: 0..{DENSE_INDICES - 1} and landmarks up to "
        f"{indices[-1]}; latent frame counts 1..{STEADY_FRAMES} at AR 0 and 1, 1..{DENSE_FRAMES} "
        f"at every other index, and landmarks up to {FAR_FRAMES}"
    )


def read_ratio(ctx: CheckContext, decoder: Any, name: str) -> int:
    """Read a compression ratio property; it must be a positive int."""
    raw = ctx.call_decoder(name, getattr, decoder, name)
    try:
        value = as_int(raw, name)  # ints and int-likes (numpy ints); not bool, float, tensor
    except CheckFailed:
        raise CheckFailed(
            f"{name} is {raw!r} of type {type(raw).__name__}; expected a positive int "
            "(pipelines use it to size tensors)"
        ) from None
    if value < 1:
        raise CheckFailed(f"{name} is {value}; expected a positive int")
    return value


@promise(exercises=("mapper_queries",))
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


@promise(exercises=("mapper_queries",), fingerprinted=True)
def temporal_mappers_round_trip(ctx: CheckContext) -> None:
    """``get_input_temporal_size`` inverts ``get_output_temporal_size``, and rejects the rest.

    Why: a pipeline that wants ``m`` pixel frames asks ``get_input_temporal_size`` how many
    latent frames to produce. If the two mappers disagree (the classic: one forgets the
    causal first frame at AR 0) it feeds the wrong number of latents and the video comes
    out a few frames short or long, or misaligned with audio and conditioning.

    What: for each checked AR index (every one below 8, then landmarks up to AR 2^31 - 1:
    powers of two and ten, their neighbours, a geometric grid) and each latent count
    ``n`` (every one up to 65536 at AR 0 and 1, up to 64 at the other indices, then
    landmarks up to 2^31 - 1), ``get_input(ar, get_output(ar, n)) == n``; for every pixel count
    ``m`` up to the largest dense output and next to every sparse one that is not
    produced, ``get_input(ar, m)`` must raise ``ValueError`` or ``AssertionError``, or
    return a ``k`` with ``get_output(ar, k) == m``. Every violation is collected and
    reported, grouped by kind and by the indices that fail for the same counts.
    """
    decoder = ctx.decoder()
    found = MapperViolations(mapper_indices(ctx), mapper_counts(ctx))
    for ar in mapper_indices(ctx):
        produced: dict[int, int] = {}
        probes: set[int] = set()
        sweep = _Sweep(ctx)
        for n in mapper_counts(ctx, ar):
            if not sweep.keep_going(n):
                continue
            out = ctx.query_mapper(decoder, "output", ar, n)
            if out.rejected:
                found.add(
                    "get_output_temporal_size rejects n >= 1", ar, n,
                    f"get_output_temporal_size({ar}, {n}) raised {describe_exception(out.error)}",
                )
                continue
            assert out.value is not None
            produced[out.value] = n
            back = ctx.query_mapper(decoder, "input", ar, out.value)
            if back.rejected:
                found.add(
                    "get_input_temporal_size rejects a count get_output_temporal_size produces", ar, n,
                    f"get_output_temporal_size({ar}, {n}) = {out.value} but get_input_temporal_size"
                    f"({ar}, {out.value}) raised {describe_exception(back.error)}",
                )
            elif back.value != n:
                found.add(
                    "mappers disagree (get_input(get_output(n)) != n)", ar, n,
                    f"get_output_temporal_size({ar}, {n}) = {out.value} but "
                    f"get_input_temporal_size({ar}, {out.value}) = {back.value}",
                )
            if n <= DENSE_FRAMES or n > STEADY_FRAMES:  # the dense sweep's own neighbours are queried
                probes.update((out.value - 1, out.value + 1))
        dense_top = max((m for m, n in produced.items() if n <= DENSE_FRAMES), default=0)
        probes.update(range(1, dense_top + 1))
        ctx.evidence.examples += 1
        for m in sorted(p for p in probes if p >= 1 and p not in produced):
            answer = ctx.query_mapper(decoder, "input", ar, m)
            if answer.rejected:
                continue
            assert answer.value is not None
            again = ctx.query_mapper(decoder, "output", ar, answer.value) if answer.value >= 1 else None
            if again is None or again.rejected or again.value != m:
                got = "is not >= 1" if again is None else (
                    f"raised {describe_exception(again.error)}" if again.rejected else f"= {again.value}"
                )
                found.add(
                    "get_input_temporal_size accepts a count that cannot be produced", ar, m,
                    f"get_input_temporal_size({ar}, {m}) = {answer.value} but "
                    f"get_output_temporal_size({ar}, {answer.value}) {got}; it must raise "
                    "ValueError or AssertionError instead of rounding",
                )
    ctx.evidence.note("ar_indices", ranges_text(mapper_indices(ctx)))
    ctx.evidence.note("latent_frame_counts", _queried(ctx))
    found.raise_if_any(ctx, _queried(ctx))


@promise(exercises=("mapper_queries",), fingerprinted=True)
def temporal_mappers_monotone_and_steady(ctx: CheckContext) -> None:
    """Outputs grow strictly with the input, every step after the first maps like steady
    state (``n * temporal_compression_ratio``), and step 0 never yields more.

    Why: the documented meaning of ``temporal_compression_ratio`` is the steady-state
    frames per latent frame; pipelines precompute total video length from it. A mapper
    that treats AR 1 like AR 0 (causal padding applied twice), or whose count shrinks or
    goes negative, yields truncated or mis-sized videos without an error.

    What: for each checked AR index and latent count (the same dense-then-landmark sets
    as ``temporal_mappers_round_trip``, up to AR and n = 2^31 - 1),
    ``get_output_temporal_size(ar, n)`` is never negative and strictly increasing in n;
    for n = 0 and -1 it raises ``ValueError`` / ``AssertionError`` or returns 0; for AR >= 1
    it equals ``n * ratio`` exactly; for AR 0 it is at most ``n * ratio``. Every violation
    is collected and reported, grouped.
    """
    decoder = ctx.decoder()
    ratio = read_ratio(ctx, decoder, "temporal_compression_ratio")
    found = MapperViolations(mapper_indices(ctx), mapper_counts(ctx))
    for ar in mapper_indices(ctx):
        previous: tuple[int, int] | None = None
        sweep = _Sweep(ctx)
        for n in mapper_counts(ctx, ar):
            if not sweep.keep_going(n):
                continue
            out = ctx.query_mapper(decoder, "output", ar, n)
            if out.rejected:
                found.add(
                    "get_output_temporal_size rejects n >= 1", ar, n,
                    f"get_output_temporal_size({ar}, {n}) raised {describe_exception(out.error)}",
                )
                continue
            value = out.value
            assert value is not None
            if value < 0:
                found.add("negative output size", ar, n, f"get_output_temporal_size({ar}, {n}) = {value}")
            if previous is not None and value <= previous[1]:
                found.add(
                    "not strictly increasing in n", ar, n,
                    f"n={previous[0]} gives {previous[1]} pixel frames, n={n} gives {value}",
                )
            previous = (n, value)
            steady = n * ratio
            if ar >= 1 and value != steady:
                found.add(
                    "AR >= 1 not steady state (n * temporal_compression_ratio)", ar, n,
                    f"get_output_temporal_size({ar}, {n}) = {value}, expected {steady} = {n} * {ratio}",
                )
            if ar == 0 and value > steady:
                found.add(
                    "AR 0 yields more than steady state", ar, n,
                    f"get_output_temporal_size(0, {n}) = {value} > {steady} = {n} * {ratio} (the "
                    "causal first frame may yield fewer frames, never more)",
                )
        for n in (0, -1):
            out = ctx.query_mapper(decoder, "output", ar, n)
            if not out.rejected and out.value != 0:
                found.add(
                    "n < 1 neither rejected nor 0", ar, n,
                    f"get_output_temporal_size({ar}, {n}) = {out.value}; for n < 1 it must raise "
                    "ValueError / AssertionError or return 0",
                )
        ctx.evidence.examples += 1
    ctx.evidence.note("ar_indices", ranges_text(mapper_indices(ctx)))
    ctx.evidence.note("latent_frame_counts", _queried(ctx))
    found.raise_if_any(ctx, _queried(ctx))


def size_probe_plans(ctx: CheckContext) -> list[tuple[int, ...]]:
    """Rollouts whose every step is measured: one-frame and multi-frame first chunks, then
    one-frame and multi-frame later chunks; one call of ``profile.long_call_frames``
    (20 in the default profile, longer than any other call the kit makes), and a rollout
    whose later chunks are six and more frames long. All capped by max_chunk_frames."""
    long = ctx.profile.long_call_frames
    plans = [(1, 1, 2), (3, 1, 1), (2, 3), (long,), (2, 6, max(1, long - 8))]
    out = []
    for plan in plans:
        capped = tuple(ctx.chunk_limit(n) for n in plan)
        if capped not in out:
            out.append(capped)
    return out


@promise(exercises=("decoder_calls",))
def decoded_sizes_match_mappers(ctx: CheckContext) -> None:
    """Decoding ``n`` latent frames at AR ``i`` yields exactly ``get_output_temporal_size(i, n)``
    frames, and the latent size times ``spatial_compression_ratio`` in height and width.

    Why: the mappers are promises about what forward does. When they drift apart (the
    mapper was updated, the causal trim was not), every pipeline that trusts them writes
    frames to the wrong place.

    What: decodes several rollouts (one- and multi-frame first chunks, one- and
    multi-frame later chunks, one call of 20 latent frames and later chunks of 6 and 12
    frames in the default profile, all within ``max_chunk_frames``) and compares every
    step's output time, height and width with the mappers' and ratio's prediction.
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


"""Promises that hold for minutes of video (issue 19): decoders that are right for the
first seconds of a rollout, or for the first rollouts of a process, and wrong later.

Each broken decoder is the plain toy with one bug that needs a long horizon to show:
state keyed to how far a rollout has come (a context switch after 21 latent frames, a
ring buffer's wrap, a periodic compaction or keyframe, a position taken from the call
count, a clock in a narrow dtype), memory that starts growing late or grows only across
rollouts, size mappers wrong only for large counts or indices, and outputs that change
dtype or shape only late. The correct decoders do such things right: a ring buffer
preallocated at cache init, a buffer that doubles up to a cap, an absolute position
embedding under the pipeline's own chunk plans, a bounded memo.

Every broken decoder here is caught in the quick profile (the zoo's default) and in the
default profile, except ``zoo-request-records-kept-forever``: a leak too small for the
memory checks' allowance (kit finding F8, recorded as a kit gap).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import LATENT_SIZE, PlainToy, broken, correct, filled

LONG = "long_rollouts_match_full_decode"
CHUNKED = "chunked_decode_matches_full_decode"
MEMORY = "cache_memory_is_bounded"
FINISHED = "finished_rollouts_leave_nothing_behind"
ROUND_TRIP = "temporal_mappers_round_trip"
STEADY = "temporal_mappers_monotone_and_steady"

LONG_HINTS = ("long rollout", "into the rollout")
MEMORY_HINTS = ("grow", "memory")
MAPPER_HINTS = ("mapper",)


# --- a toy that knows how far its rollout has come -------------------------------------


@dataclass(kw_only=True)
class RolloutCache(ToyDecoderCache):
    """The toy's cache plus the rollout's progress: latent frames decoded, calls made."""

    frames_seen: int = 0
    calls: int = 0
    #: Progress marker a decoder may keep (the last keyframe, whether it switched, ...).
    marker: int = 0


class _Progressing(PlainToy):
    """The toy around hooks that see the rollout's progress: :meth:`before` may adjust the
    cache (and the latents) before the toy decodes, :meth:`after` the output after it."""

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return RolloutCache()

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        return latents

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return output

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, RolloutCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        latents = self.before(cache, input.to(self.config.dtype))
        output = super().forward(latents, autoregressive_index=autoregressive_index, cache=cache)
        output = self.after(cache, latents, output)
        cache.frames_seen += int(input.shape[2])
        cache.calls += 1
        return output


def _forget_history(cache: ToyDecoderCache) -> None:
    cache.latent_history = cache.pixel_history = None


# --- state keyed to how far the rollout has come ---------------------------------------


class ContextSwitchAfterTwentyOneFrames(_Progressing):
    """After 21 latent frames the cache switches to steady-state buffers that start empty.

    Real bug: a cache with a warm-up phase (a growing context for the first 21 latent
    frames, then fixed-size buffers) whose switch forgets to carry the context over; the
    first chunk after the switch decodes as if the rollout had just begun: a hard cut five
    seconds into every stream. Short tests never get there (the chunk check's long
    rollout stops at 12 latent frames in quick, 20 in default). Caught by
    ``long_rollouts_match_full_decode``.
    """

    SWITCH_AT = 21

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        if cache.frames_seen >= self.SWITCH_AT and not cache.marker:
            cache.marker = 1
            _forget_history(cache)
        return latents


@dataclass(kw_only=True)
class RingCache(RolloutCache):
    """A rollout cache whose latent history lives in a ring of slots."""

    ring: torch.Tensor | None = None


def _ring_slots(written: int, capacity: int, count: int) -> list[int]:
    """Slots of the ``count`` newest of ``written`` frames in a ring of ``capacity``."""
    return [(written - count + i) % capacity for i in range(count)]


class RingBufferMisreadAtWrap(_Progressing):
    """Latent history in a 48-slot ring whose read is wrong right after the write pointer wraps.

    Real bug: a preallocated ring written at ``frame % capacity`` and read as the slice
    ``ring[end - 2 : end]``, with a special case for the wrap that copies the ring's last
    two slots, forgetting that one of the two frames it needs has already wrapped to slot
    0. Exact for 47 latent frames, then wrong once every 48 (a one-frame glitch every
    twelve seconds). Caught by ``long_rollouts_match_full_decode`` (one-frame steps land
    on every position).
    """

    CAPACITY = 48

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return RingCache()

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, RingCache)
        if cache.ring is None:
            b, c, _, h, w = latents.shape
            cache.ring = latents.new_zeros(b, c, self.CAPACITY, h, w)
        end = (cache.frames_seen + self.LATENT_HISTORY) % self.CAPACITY  # after two zero frames
        if end >= self.LATENT_HISTORY:
            history = cache.ring[:, :, end - self.LATENT_HISTORY : end]
        else:
            history = cache.ring[:, :, -self.LATENT_HISTORY :]  # the bug: right only for end == 0
        cache.latent_history = history.clone()
        return latents

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, RingCache) and cache.ring is not None
        frames = latents.shape[2]
        written = cache.frames_seen + self.LATENT_HISTORY + frames
        for slot, frame in zip(_ring_slots(written, self.CAPACITY, frames), latents.unbind(2)):
            cache.ring[:, :, slot] = frame  # in order: a later frame overwrites an earlier one
        return output


@dataclass(kw_only=True)
class LogCache(RolloutCache):
    """A rollout cache that logs latent frames, one tensor each."""

    log: list[torch.Tensor] = field(default_factory=list)


class CompactionDropsNewestFrame(_Progressing):
    """Every 32 latent frames the history log is compacted, keeping the wrong two frames.

    Real bug: the decoder reads its history from a log of latent frames and compacts the
    log when it reaches 32 entries, keeping ``log[-3:-1]`` where it needs ``log[-2:]`` (an
    off-by-one in the slice); the chunk after each compaction sees history shifted by a
    frame. Caught by ``long_rollouts_match_full_decode``.
    """

    COMPACT_AT = 32

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return LogCache()

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, LogCache)
        if cache.log:
            recent = cache.log[-self.LATENT_HISTORY :]
            padding = [torch.zeros_like(recent[0])] * (self.LATENT_HISTORY - len(recent))
            cache.latent_history = torch.stack(padding + recent, dim=2)
        return latents

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, LogCache)
        cache.log.extend(frame.clone() for frame in latents.unbind(2))
        if len(cache.log) >= self.COMPACT_AT:
            cache.log = cache.log[-3:-1]  # the bug: the two newest are log[-2:]
        return output


class KeyframeResetEveryFortyFrames(_Progressing):
    """Every 40 latent frames the decoder starts a "keyframe": it drops its history.

    Real bug: a group-of-pictures idea borrowed from video codecs, "so that drift cannot
    accumulate": the first chunk after every 40 latent frames is decoded from an empty
    history, a visible cut every ten seconds, which a one-call decode of the same latents
    does not have. Caught by ``long_rollouts_match_full_decode``.
    """

    PERIOD = 40

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        keyframe = cache.frames_seen // self.PERIOD
        if keyframe > cache.marker:
            cache.marker = keyframe
            _forget_history(cache)
        return latents


@dataclass(kw_only=True)
class PositionCache(RolloutCache):
    """A rollout cache that remembers its first two chunk lengths."""

    first_chunk: int = 0
    second_chunk: int = 0


class PositionEmbeddingToy(_Progressing):
    """The toy with an absolute temporal position embedding added to every latent frame,
    decoded with the pipeline's own chunk plans: a five-frame first chunk, then four.

    Correct and unusual: the output depends on each frame's position in the rollout, so
    the cache must carry the position (here: the frames seen) and a long rollout must
    decode like one call; its spec declares ``chunk_plans=((5, 4, 4, 4), (3, 1, 2))``, a
    multi-frame first chunk, which the long-rollout check repeats over its horizon.
    """

    GAIN = 0.5
    FREQUENCY = 0.37

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return PositionCache()

    def first_position(self, cache: PositionCache, frames: int) -> int:
        return cache.frames_seen

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, PositionCache)
        frames = latents.shape[2]
        start = self.first_position(cache, frames)
        if cache.calls == 0:
            cache.first_chunk = frames
        elif cache.calls == 1:
            cache.second_chunk = frames
        position = torch.arange(start, start + frames, dtype=torch.float64)
        phase = 1.3 * torch.arange(latents.shape[1], dtype=torch.float64)
        embedding = torch.sin(self.FREQUENCY * position[None, :] + phase[:, None])
        return latents + (self.GAIN * embedding).to(latents.dtype)[None, :, :, None, None]


class PositionFromCallCount(PositionEmbeddingToy):
    """The position embedding's start is computed from the call count and the chunk size.

    Real bug: ``start = first_chunk + (calls - 1) * chunk`` with ``chunk`` the length of
    the second call, which is exact for a pipeline that always decodes a first chunk and
    then equal chunks, and wrong for any other plan (a pipeline that adapts its chunk
    length to the denoiser's speed). Caught by ``long_rollouts_match_full_decode`` (its
    irregular plan), in every profile and for every seed. ``chunked_decode_matches_full_decode``
    needs four uneven chunks to see it: its alternating plan over six frames does in the
    default profile; in quick (five frames) only a lucky random draw does.
    """

    def first_position(self, cache: PositionCache, frames: int) -> int:
        if cache.calls == 0:
            return 0
        chunk = cache.second_chunk if cache.calls > 1 else frames
        return cache.first_chunk + (cache.calls - 1) * chunk


@dataclass(kw_only=True)
class ClockCache(RolloutCache):
    """A rollout cache with a pixel clock kept as a tensor (as CUDA graphs want state)."""

    pixel_clock: torch.Tensor


class _GrainOnPixelClock(_Progressing):
    """The toy plus a temporal grain pattern ``sin(0.7 t)`` keyed to each pixel frame's
    timestamp ``t``, read from the rollout's pixel clock (a tensor: see :meth:`advance`)."""

    AMPLITUDE = 0.1

    def start_clock(self) -> torch.Tensor:
        raise NotImplementedError

    def advance(self, clock: torch.Tensor, frames: int) -> torch.Tensor:
        raise NotImplementedError

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return ClockCache(pixel_clock=self.start_clock())

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, ClockCache)
        frames = output.shape[2]
        t = cache.pixel_clock.double() + torch.arange(frames, dtype=torch.float64)
        cache.pixel_clock = self.advance(cache.pixel_clock, frames)
        grain = torch.sin(0.7 * t).to(output.dtype)[None, None, :, None, None]
        return (1 - self.AMPLITUDE) * output + self.AMPLITUDE * grain


class PixelClockInInt8(_GrainOnPixelClock):
    """A temporal grain pattern keyed to each pixel frame's timestamp, whose clock is an int8.

    Real bug: the rollout's pixel-frame clock kept in a ``torch.int8`` tensor (scalar state
    a captured CUDA graph can update in place; the dtype copied from a flag buffer). Frame
    ``t`` gets the pattern ``sin(0.7 t)``; after 127 pixel frames (about 32 latent frames,
    eight seconds) the clock wraps to -128 and the pattern jumps. Caught by
    ``long_rollouts_match_full_decode``.
    """

    def start_clock(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.int8)

    def advance(self, clock: torch.Tensor, frames: int) -> torch.Tensor:
        return (clock.long() + frames).to(torch.int8)  # the bug: wraps at 128


class PixelClockInFloat16(_GrainOnPixelClock):
    """The same grain pattern with a float16 pixel clock that counts frame by frame, which
    stops at 2048 pixel frames.

    Real bug: the clock kept in the model's half precision (``clock += 1`` per pixel frame
    in float16), exact up to 2048, where ``2048 + 1`` rounds back to 2048: after 512
    latent frames (two minutes at 16 fps) every frame gets the same pattern. Only a
    rollout that long shows it: its spec declares the stream length the pipeline runs,
    ``horizon_frames=640``, as an author would. Caught by
    ``long_rollouts_match_full_decode``.
    """

    def start_clock(self) -> torch.Tensor:
        return torch.zeros((), dtype=torch.float16)

    def advance(self, clock: torch.Tensor, frames: int) -> torch.Tensor:
        for _ in range(frames):
            clock = clock + 1  # the bug: float16 stops counting at 2048
        return clock


# --- outputs that drift late -----------------------------------------------------------


class Float64AfterFiftySteps(_Progressing):
    """From the 51st call of a rollout on, returns float64 pixels from a float32 decoder.

    Real bug: exposure compensation that switches to a float64 accumulator once the
    rollout's running statistics get long ("for precision") and returns its result
    without casting back. Every short test sees float32. Caught by
    ``long_rollouts_match_full_decode``, whose long rollouts make the 51st call (every call
    of every check is validated).
    """

    SWITCH_AT = 50

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        return output.double() if cache.calls >= self.SWITCH_AT else output


@dataclass(kw_only=True)
class NumberedCache(RolloutCache):
    """A rollout cache that knows how many rollouts its decoder had begun before it."""

    number: int = 0


class AlphaChannelFromSecondRollout(_Progressing):
    """Every rollout after the first returns four channels (RGBA) where three are declared.

    Real bug: a lazily initialised compositor, set up by the decoder's first rollout,
    after which every new rollout also gets an alpha channel; the first rollout of a
    process, the only one a short test makes, is right. Caught by whichever check starts
    a second rollout (``chunked_decode_matches_full_decode`` here: every call of every
    check is validated), while ``output_layout_dtype_device``, with its one rollout,
    passes.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.rollouts_begun = 0

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        self.rollouts_begun += 1
        return NumberedCache(number=self.rollouts_begun)

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, NumberedCache)
        if cache.number < 2:
            return output
        return torch.cat([output, torch.ones_like(output[:, :1])], dim=1)


# --- memory that grows late, or across rollouts ----------------------------------------


@dataclass(kw_only=True)
class KeepingCache(RolloutCache):
    """A rollout cache with a list for things the decoder decides to keep."""

    kept: list[Any] = field(default_factory=list)


class RecordsFramesAfterThirtySteps(_Progressing):
    """Once a rollout is past its 30th step, every decoded chunk is also kept in the cache.

    Real bug: a "highlights" recorder that switches on after a warm-up period (so that
    the first seconds of a stream, mostly noise, are not recorded) and is never trimmed;
    a memory check over 30 steps sees a flat line. Caught by ``cache_memory_is_bounded``
    (growth after the first half of its rollout, continued to make sure).
    """

    START_AT = 30

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return KeepingCache()

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, KeepingCache)
        if cache.calls >= self.START_AT:
            cache.kept.append(output.clone())
        return output


class KeepsAKeyframeEveryEighthStep(_Progressing):
    """Every eighth step the decoder keeps its pixel history as a "keyframe", forever.

    Real bug: periodic snapshots for seeking back in the stream, with no limit on how many
    are kept; memory grows in steps every two seconds instead of every call. Caught by
    ``cache_memory_is_bounded``.
    """

    EVERY = 8

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return KeepingCache()

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, KeepingCache)
        if cache.calls % self.EVERY == self.EVERY - 1:
            cache.kept.append(filled(cache.pixel_history).clone())
        return output


@dataclass(kw_only=True)
class StatsCache(RolloutCache):
    """A rollout cache with a NumPy array of statistics."""

    pixels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))


class NumpyPixelLogInCache(_Progressing):
    """Appends every decoded pixel to a NumPy array in the cache, for a quality report.

    Real bug: ``cache.pixels = np.concatenate([cache.pixels, frames.ravel()])`` for a
    histogram at the end of the stream. A NumPy array is no tensor, so a census of
    tensors never sees it; Python's heap (tracemalloc) does. Caught by
    ``cache_memory_is_bounded``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return StatsCache()

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, StatsCache)
        frames = output.detach().to("cpu", torch.float32).numpy().ravel()
        cache.pixels = np.concatenate([cache.pixels, frames])
        return output


#: Module-level state of :class:`PreviewsInModuleGlobal`: one preview per rollout.
PREVIEWS: list[torch.Tensor] = []


class PreviewsInModuleGlobal(_Progressing):
    """Keeps the first pixel frame of every rollout in a module-level list of previews.

    Real bug: a thumbnail gallery for a dashboard, kept in a global so every request can
    add to it, never pruned. A single rollout holds one frame: only a process serving
    rollout after rollout shows it. Caught by ``finished_rollouts_leave_nothing_behind``.
    """

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        if cache.calls == 0:
            PREVIEWS.append(output[:, :, :1].clone())
        return output


class LiveRolloutsInClassDict(PlainToy):
    """Registers every cache in a class attribute dict keyed by ``id(cache)``, never removed.

    Real bug: a registry of live rollouts (``_live[id(cache)] = cache``) behind a status
    endpoint; the interface has no "rollout ended" call, so finished rollouts stay, with
    every tensor of their caches. Caught by ``finished_rollouts_leave_nothing_behind``.
    """

    live: ClassVar[dict[int, ToyDecoderCache]] = {}

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        cache = ToyDecoderCache()
        type(self).live[id(cache)] = cache
        return cache


@dataclass(kw_only=True)
class PooledCache(ToyDecoderCache):
    """A cache whose latent history lives in a buffer lent by the decoder's pool."""

    buffer: torch.Tensor | None = None


class HistoryPoolNeverRefilled(PlainToy):
    """History buffers come from a pool on the decoder and go back only on an explicit release.

    Real bug: a buffer pool (no allocation in the steady state) whose buffers return via
    ``decoder.release(cache)``, which no pipeline calls: the interface has no end of
    rollout. Every finished rollout leaves its buffer lent. Caught by
    ``finished_rollouts_leave_nothing_behind``.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.free: list[torch.Tensor] = []
        self.lent: list[torch.Tensor] = []

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return PooledCache()

    def release(self, cache: PooledCache) -> None:
        """Give a finished rollout's buffer back (pipelines never call this)."""
        if cache.buffer is not None:
            self.lent = [b for b in self.lent if b is not cache.buffer]
            self.free.append(cache.buffer)
            cache.buffer = None

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, PooledCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        history = filled(cache.latent_history)
        if cache.buffer is None:
            fits = [b for b in self.free if b.shape == history.shape]
            cache.buffer = fits[0] if fits else torch.empty_like(history)
            self.free = [b for b in self.free if b is not cache.buffer]
            self.lent.append(cache.buffer)
        cache.buffer.copy_(history)
        cache.latent_history = cache.buffer
        return output


#: Module-level state of :class:`SessionLogOfBytes`: one serialized chunk per rollout.
SESSION_LOG: list[dict[str, Any]] = []


class SessionLogOfBytes(_Progressing):
    """Logs each rollout's first chunk, serialized to ``bytes``, in a module-level list.

    Real bug: a session log for replaying requests (``log.append({"frames":
    out.numpy().tobytes(), ...})``), a global that only grows. No tensor stays alive:
    only Python's heap (tracemalloc) shows it. Caught by
    ``finished_rollouts_leave_nothing_behind``.
    """

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        if cache.calls == 0:
            frames = output.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
            SESSION_LOG.append({"frames": frames, "shape": tuple(output.shape)})
        return output


#: Module-level state of :class:`RequestRecordsKeptForever`: a small record per rollout.
REQUEST_RECORDS: dict[int, dict[str, Any]] = {}


class RequestRecordsKeptForever(PlainToy):
    """Keeps a record of a few hundred bytes per rollout in a module-level dict, never pruned.

    Real bug: request bookkeeping "for metrics" (a start time, a digest of the request,
    counters) in a global dict; a few hundred bytes per rollout is nothing in a test and
    hundreds of megabytes a day on a server decoding a million rollouts. Far below the
    Python-heap allowance of ``finished_rollouts_leave_nothing_behind`` (32 KiB), which
    catches it by its objects instead: one more dict alive for every finished rollout,
    allocated on one line (kit finding F8, fixed).
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        number = len(REQUEST_RECORDS)
        digest = f"{number:064x}"  # as a hex digest of the request would be
        REQUEST_RECORDS[number] = {"digest": digest, "context": dict(context), "frames": 0}
        return super().initialize_autoregressive_cache(**context)


#: Module-level state of :class:`RollTimesInAGlobalList`: one float per finished rollout.
ROLL_TIMES: list[float] = []


class RollTimesInAGlobalList(PlainToy):
    """Appends one float per rollout (how long its first call took) to a module-level list.

    Real bug: latency statistics kept "for the dashboard" in a global list that nothing
    trims: 32 bytes a rollout, 32 MB after a million. Meant for
    ``finished_rollouts_leave_nothing_behind``, which misses it (kit finding F8, still
    open for this shape): floats are not objects the garbage collector tracks, so the
    per-line object count does not see them, and the bytes stay under the heap
    allowance.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        ROLL_TIMES.append(float(len(ROLL_TIMES)) * 1e-3 + 0.5)
        return super().initialize_autoregressive_cache(**context)


# --- size mappers wrong only for large counts or indices --------------------------------


class MapperTableEndsAt4096(PlainToy):
    """Output sizes at AR 0 come from a table of 4096 entries; past it, ``n * r`` (no causal frame).

    Real bug: a size table precomputed for every count the author imagined (4096 latent
    frames: four minutes of video) with a steady-state fallback; a pipeline that decodes
    a long clip in one call gets a size the inverse mapper rejects. Caught by
    ``temporal_mappers_round_trip`` (every count up to 2^16 at AR 0 and 1).
    """

    TABLE_SIZE = 4096

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        r = config.temporal_ratio
        self.first_sizes = [0] + [1 + r * (n - 1) for n in range(1, self.TABLE_SIZE)]

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if autoregressive_index == 0 and 1 <= input_temporal_size < self.TABLE_SIZE:
            return self.first_sizes[input_temporal_size]
        if autoregressive_index == 0 and input_temporal_size >= self.TABLE_SIZE:
            return self.config.temporal_ratio * input_temporal_size  # the bug
        return super().get_output_temporal_size(autoregressive_index, input_temporal_size)


class MapperTypoForCountsNearFiveThousand(PlainToy):
    """The output mapper is one latent frame's worth too long for 5000 <= n < 5003 (a table typo).

    Real bug: a hand-edited table of preset clip lengths with three rows shifted; only
    those counts are wrong, and nothing near them. Caught by
    ``temporal_mappers_monotone_and_steady`` and ``temporal_mappers_round_trip`` (every
    count up to 2^16 at AR 0 and 1, so no stretch slips between sample points).
    """

    STRETCH = range(5000, 5003)

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        value = super().get_output_temporal_size(autoregressive_index, input_temporal_size)
        return value + self.config.temporal_ratio if input_temporal_size in self.STRETCH else value


class MapperIndexModuloHundredThousand(PlainToy):
    """The mappers see the AR index modulo 100000: AR 100000, 200000, ... map like AR 0.

    Real bug: the step index stored in a five-digit field of a request id, so after
    100000 steps (under three hours at ten steps a second) the mapper applies the causal
    first frame again. Caught by ``temporal_mappers_monotone_and_steady`` (AR landmarks
    up to 2^31 - 1).
    """

    WRAP = 100_000

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return super().get_output_temporal_size(autoregressive_index % self.WRAP, input_temporal_size)

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return super().get_input_temporal_size(autoregressive_index % self.WRAP, output_temporal_size)


class MapperSizesInInt32(PlainToy):
    """The output mapper computes in a NumPy ``int32`` array, which wraps past 2^31 pixel frames.

    Real bug: the mapper shares the vectorised size code of the batch path
    (``np.asarray(counts, dtype=np.int32) * r``), which is exact for every clip anyone
    tests; ``r * n`` overflows for ``n >= 2^29`` and, array arithmetic being silent, the
    mapper returns negative sizes. Caught by ``temporal_mappers_monotone_and_steady`` and
    ``temporal_mappers_round_trip`` (landmarks up to 2^31 - 1 latent frames).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        n = np.asarray([input_temporal_size], dtype=np.int32)
        r = self.config.temporal_ratio
        sizes = 1 + r * (n - 1) if autoregressive_index == 0 else r * n
        return int(sizes[0])


# --- correct decoders that do long-horizon things right --------------------------------


class RingBufferPreallocatedToy(_Progressing):
    """Latent history in a 48-slot ring preallocated whole at cache init, read in ring
    order, for a batch of two.

    Correct and unusual: ``initialize_autoregressive_cache(batch_size=..., latent_size=...)``
    allocates the ring before any frame arrives (the cache's memory is constant from its
    first byte), the write pointer wraps every 48 frames, and two batch elements share the
    ring's tensor.
    """

    CAPACITY = 48

    def initialize_autoregressive_cache(  # type: ignore[override]
        self, *, batch_size: int, latent_size: tuple[int, int], **context: Any
    ) -> ToyDecoderCache:
        h, w = latent_size
        shape = (batch_size, self.config.latent_channels, self.CAPACITY, h, w)
        return RingCache(ring=torch.zeros(shape, dtype=self.config.dtype, device=self.config.device))

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, RingCache) and cache.ring is not None
        if cache.ring.shape[0] != latents.shape[0] or cache.ring.shape[-2:] != latents.shape[-2:]:
            raise ValueError(
                f"this cache was made for latents {tuple(cache.ring.shape)}, got {tuple(latents.shape)}"
            )
        written = cache.frames_seen + self.LATENT_HISTORY  # after two zero frames
        slots = _ring_slots(written, self.CAPACITY, self.LATENT_HISTORY)
        cache.latent_history = cache.ring[:, :, slots]  # advanced indexing: a copy
        return latents

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, RingCache) and cache.ring is not None
        kept = latents[:, :, -self.CAPACITY :]  # a longer call's older frames would be overwritten
        written = cache.frames_seen + self.LATENT_HISTORY + latents.shape[2]
        for slot, frame in zip(_ring_slots(written, self.CAPACITY, kept.shape[2]), kept.unbind(2)):
            cache.ring[:, :, slot] = frame
        return output


@dataclass(kw_only=True)
class GrowingCache(RolloutCache):
    """A rollout cache whose window buffer grows by doubling."""

    window: torch.Tensor | None = None
    filled_frames: int = 0


class WindowDoublesToCapToy(_Progressing):
    """A 16-frame latent window kept in a buffer that doubles (2, 4, 8, 16 frames) and then stays.

    Correct and unusual: the latent convolution reads 16 frames of history (zeros before
    the rollout's start), stored as the frames seen so far in a buffer that grows by
    doubling, as ``std::vector`` does, up to its cap: memory grows in steps for eight
    steps, then never again. A memory check must see a plateau, not periodic growth.
    """

    LATENT_HISTORY = 16

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return GrowingCache()

    def before(self, cache: RolloutCache, latents: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, GrowingCache)
        if cache.window is not None:
            seen = cache.window[:, :, : cache.filled_frames]
            missing = self.LATENT_HISTORY - cache.filled_frames
            pad = seen.new_zeros(*seen.shape[:2], missing, *seen.shape[3:])
            cache.latent_history = torch.cat([pad, seen], dim=2)
        return latents

    def after(self, cache: RolloutCache, latents: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        assert isinstance(cache, GrowingCache)
        previous = latents[:, :, :0] if cache.window is None else cache.window[:, :, : cache.filled_frames]
        recent = torch.cat([previous, latents], dim=2)[:, :, -self.LATENT_HISTORY :]
        needed = recent.shape[2]
        if cache.window is None or cache.window.shape[2] < needed:
            capacity = 2
            while capacity < needed:
                capacity *= 2
            capacity = min(capacity, self.LATENT_HISTORY)
            window = recent.new_zeros(*recent.shape[:2], capacity, *recent.shape[3:])
            window[:, :, :needed] = recent
            cache.window = window
        else:
            cache.window[:, :, :needed] = recent.clone()
        cache.filled_frames = needed
        return output


@dataclass(frozen=True)
class _Memo:
    output: torch.Tensor
    latent_history: torch.Tensor
    pixel_history: torch.Tensor


def _key_bytes(tensor: torch.Tensor | None) -> bytes:
    if tensor is None:
        return b"-"
    described = repr((tensor.dtype, tuple(tensor.shape))).encode()
    return described + tensor.detach().to("cpu").contiguous().numpy().tobytes()


class MemoisedToy(PlainToy):
    """A bounded LRU memo of whole calls, keyed on everything a call depends on, returning clones.

    Correct and unusual: the key is the input's bytes, shape and dtype, whether the call
    is a first chunk, and the cache's history bytes; a hit restores the cache's next
    state and returns a clone. Its memo (at most 12 calls) fills and then stays, and its outputs are never
    shared: a memory check must see a plateau, and sharing and determinism checks must
    see nothing odd.
    """

    CAPACITY = 12

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.memo: OrderedDict[bytes, _Memo] = OrderedDict()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, ToyDecoderCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        key = b"|".join(
            [
                b"first" if autoregressive_index == 0 else b"later",
                _key_bytes(input),
                _key_bytes(cache.latent_history),
                _key_bytes(cache.pixel_history),
            ]
        )
        hit = self.memo.get(key)
        if hit is not None:
            self.memo.move_to_end(key)
            cache.latent_history = hit.latent_history.clone()
            cache.pixel_history = hit.pixel_history.clone()
            cache.next_index = autoregressive_index + 1
            return hit.output.clone()
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        self.memo[key] = _Memo(
            output.clone(), filled(cache.latent_history).clone(), filled(cache.pixel_history).clone()
        )
        while len(self.memo) > self.CAPACITY:
            self.memo.popitem(last=False)
        return output


# --- registry ---------------------------------------------------------------------------

context_switch_after_twenty_one_frames = broken(
    ContextSwitchAfterTwentyOneFrames, must_fail={LONG}, hints=LONG_HINTS
)
ring_buffer_misread_at_wrap = broken(RingBufferMisreadAtWrap, must_fail={LONG}, hints=LONG_HINTS)
compaction_drops_newest_frame = broken(CompactionDropsNewestFrame, must_fail={LONG}, hints=LONG_HINTS)
keyframe_reset_every_forty_frames = broken(
    KeyframeResetEveryFortyFrames, must_fail={LONG}, hints=LONG_HINTS
)
position_from_call_count = broken(PositionFromCallCount, must_fail={LONG}, hints=LONG_HINTS)
pixel_clock_in_int8 = broken(PixelClockInInt8, must_fail={LONG}, hints=LONG_HINTS)
pixel_clock_in_float16 = broken(PixelClockInFloat16, must_fail={LONG}, hints=LONG_HINTS, horizon_frames=640)
float64_after_fifty_steps = broken(Float64AfterFiftySteps, must_fail={LONG}, hints=("dtype",))
alpha_channel_from_second_rollout = broken(
    AlphaChannelFromSecondRollout, must_fail={CHUNKED}, hints=("channels",)
)
records_frames_after_thirty_steps = broken(
    RecordsFramesAfterThirtySteps, must_fail={MEMORY}, hints=MEMORY_HINTS
)
keeps_a_keyframe_every_eighth_step = broken(
    KeepsAKeyframeEveryEighthStep, must_fail={MEMORY}, hints=MEMORY_HINTS
)
numpy_pixel_log_in_cache = broken(NumpyPixelLogInCache, must_fail={MEMORY}, hints=("long_horizons.py",))
previews_in_module_global = broken(PreviewsInModuleGlobal, must_fail={FINISHED}, hints=("module global",))
live_rollouts_in_class_dict = broken(
    LiveRolloutsInClassDict, must_fail={FINISHED}, hints=("class attribute",)
)
history_pool_never_refilled = broken(HistoryPoolNeverRefilled, must_fail={FINISHED}, hints=("decoder.lent",))
session_log_of_bytes = broken(SessionLogOfBytes, must_fail={FINISHED}, hints=("long_horizons.py",))
request_records_kept_forever = broken(
    RequestRecordsKeptForever,
    must_fail={FINISHED},
    hints=("long_horizons.py:", "dict"),
)
roll_times_in_a_global_list = broken(
    RollTimesInAGlobalList,
    must_fail={FINISHED},
    hints=("long_horizons.py",),
    kit_gaps={
        FINISHED: "kit finding F8 (open for this shape): floats, strings and other objects the "
        "garbage collector does not track, kept a few per rollout, stay under the Python-heap "
        "allowance (32 KiB) and outside the per-line object count"
    },
)
mapper_table_ends_at_4096 = broken(MapperTableEndsAt4096, must_fail={ROUND_TRIP}, hints=MAPPER_HINTS)
mapper_typo_for_counts_near_five_thousand = broken(
    MapperTypoForCountsNearFiveThousand, must_fail={STEADY, ROUND_TRIP}, hints=("5000..5002",)
)
mapper_index_modulo_hundred_thousand = broken(
    MapperIndexModuloHundredThousand, must_fail={STEADY}, hints=("100000",)
)
mapper_sizes_in_int32 = broken(MapperSizesInInt32, must_fail={STEADY, ROUND_TRIP}, hints=MAPPER_HINTS)

ring_buffer_preallocated_toy = correct(
    RingBufferPreallocatedToy,
    batch_size=2,
    cache_context={"batch_size": 2, "latent_size": LATENT_SIZE},
)
window_doubles_to_cap_toy = correct(WindowDoublesToCapToy)
position_embedding_toy = correct(PositionEmbeddingToy, chunk_plans=((5, 4, 4, 4), (3, 1, 2)))
memoised_toy = correct(MemoisedToy)

CASES = [
    context_switch_after_twenty_one_frames,
    ring_buffer_misread_at_wrap,
    compaction_drops_newest_frame,
    keyframe_reset_every_forty_frames,
    position_from_call_count,
    pixel_clock_in_int8,
    pixel_clock_in_float16,
    float64_after_fifty_steps,
    alpha_channel_from_second_rollout,
    records_frames_after_thirty_steps,
    keeps_a_keyframe_every_eighth_step,
    numpy_pixel_log_in_cache,
    previews_in_module_global,
    live_rollouts_in_class_dict,
    history_pool_never_refilled,
    session_log_of_bytes,
    request_records_kept_forever,
    roll_times_in_a_global_list,
    mapper_table_ends_at_4096,
    mapper_typo_for_counts_near_five_thousand,
    mapper_index_modulo_hundred_thousand,
    mapper_sizes_in_int32,
]
CORRECT_CASES = [
    ring_buffer_preallocated_toy,
    window_doubles_to_cap_toy,
    position_embedding_toy,
    memoised_toy,
]

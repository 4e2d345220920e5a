"""What real pipelines do around a decoder (issue 19), and decoders that depend on it.

A pipeline pauses between a rollout's calls, runs while clocks jump, reseeds the global
random generators per request, edits the frames it gets back in place and holds them for
a while, and hands over latents as slices of larger (often channels-last) tensors or as
broadcast views. Each broken decoder is the plain toy with one bug that only such a
pipeline meets; the correct ones are unusual in ways the same checks must tolerate.
Also here: a seam bug that ``cache_none_matches_fresh_cache`` must not misdiagnose, and
a one-shot call that really does disturb a rollout.
"""

from __future__ import annotations

import random
import threading
import time
import warnings
from dataclasses import dataclass
from time import perf_counter as _perf_counter  # bound at import, as ``from time import`` does
from typing import Any

import numpy as np
import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import PlainToy, broken, correct, filled

TIME = "outputs_ignore_time_and_global_state"
DETERMINISTIC = "decoding_is_deterministic"
CALLER = "caller_owns_returned_outputs"
SURVIVE = "outputs_survive_later_steps"
CHUNKED = "chunked_decode_matches_full_decode"
ONE_SHOT = "cache_none_matches_fresh_cache"

TIME_HINTS = ("reseeded", "clocks", "paused")
GLOBAL_RNG_HINTS = TIME_HINTS + ("not deterministic", "repeatable")


def _require_cache(cache: Any, kind: type = ToyDecoderCache) -> Any:
    if not isinstance(cache, kind):
        raise ValueError("a cache from initialize_autoregressive_cache() is required")
    return cache


# --- time and global state -------------------------------------------------------------


@dataclass(kw_only=True)
class TimedCache(ToyDecoderCache):
    """The toy's cache plus when the rollout's last call ended, and its last output frame."""

    last_call: float | None = None
    last_frame: torch.Tensor | None = None


class StallFadesHistory(PlainToy):
    """After more than five seconds without a call (by ``time.monotonic()``) the decoder
    halves its history, taking the stream for stalled.

    Real bug: an idle timeout on the carried context ("after a stall the old context is
    stale"). Pipelines pause between calls while the denoiser runs, for seconds on a busy
    GPU, and clocks jump (suspend, NTP), so the same latents decode differently in
    production. Caught by ``outputs_ignore_time_and_global_state`` (its clocks jump an
    hour before every call).
    """

    IDLE_S = 5.0

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return TimedCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        cache = _require_cache(cache, TimedCache)
        now = time.monotonic()
        if cache.last_call is not None and now - cache.last_call > self.IDLE_S:
            if cache.latent_history is not None:
                cache.latent_history = cache.latent_history * 0.5
        cache.last_call = now
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class LateCallsBlendTowardLastFrame(PlainToy):
    """When a call comes more than 0.1 s after the previous one, the decoder blends the
    chunk's first frame toward the previous chunk's last frame, by how late it is.

    Real bug: frame-rate adaptation ("a late call means frames were dropped: smooth over
    the gap"), timed with ``from time import perf_counter``, a clock bound at import that
    no test can move: only a real pause shows it. Caught by
    ``outputs_ignore_time_and_global_state`` (a real pause of ``pause_s`` between two
    calls: 0.25 s in quick).
    """

    LATE_S = 0.1

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return TimedCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        cache = _require_cache(cache, TimedCache)
        late = 0.0 if cache.last_call is None else _perf_counter() - cache.last_call - self.LATE_S
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if late > 0 and cache.last_frame is not None:
            weight = min(0.5, late)
            output[:, :, :1] = (1 - weight) * output[:, :, :1] + weight * cache.last_frame
        cache.last_frame = output[:, :, -1:].clone()
        cache.last_call = _perf_counter()
        return output


class _Dithered(PlainToy):
    """The toy plus noise of scale :attr:`SCALE` from :meth:`noise` added to its output."""

    SCALE = 2.0**-9

    def noise(self, shape: torch.Size, cache: Any) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return output + self.SCALE * self.noise(output.shape, cache).to(output.dtype)


class DitherFromGlobalTorchGenerator(_Dithered):
    """Dithers its output with noise from torch's global generator (``torch.randn``).

    Real bug: anti-banding dither drawn from the global generator, which every pipeline
    reseeds per request (and whose other users move on between calls), so two requests
    with the same latents get different video. Caught by
    ``outputs_ignore_time_and_global_state`` and ``decoding_is_deterministic``.
    """

    def noise(self, shape: torch.Size, cache: Any) -> torch.Tensor:
        return torch.randn(shape)


class DitherFromNumpyGlobalGenerator(_Dithered):
    """Dithers its output with noise from NumPy's global generator (``np.random``).

    Real bug: the same dither written with NumPy, whose legacy global state pipelines
    reseed with ``np.random.seed`` per request. Caught by
    ``outputs_ignore_time_and_global_state`` and ``decoding_is_deterministic``.
    """

    def noise(self, shape: torch.Size, cache: Any) -> torch.Tensor:
        return torch.from_numpy(np.random.standard_normal(tuple(shape)))


class GrainFromRandomModule(_Dithered):
    """Scales a film-grain pattern by a strength drawn from Python's ``random`` module per call.

    Real bug: "natural-looking" grain whose per-chunk strength comes from ``random.uniform``,
    the generator every Python program shares and reseeds. Caught by
    ``outputs_ignore_time_and_global_state`` and ``decoding_is_deterministic``.
    """

    def noise(self, shape: torch.Size, cache: Any) -> torch.Tensor:
        strength = random.uniform(0.5, 1.5)
        pattern = torch.sin(torch.arange(int(np.prod(shape)), dtype=torch.float64)).reshape(tuple(shape))
        return strength * pattern


class ReseedsTheGlobalGenerator(PlainToy):
    """Calls ``torch.manual_seed(0)`` in every forward "for reproducible decoding".

    Real bug: a decoder that makes itself deterministic by reseeding the process-wide
    generator. Its own output never changes, but every request of the pipeline that
    samples its next noise after a decode now draws the same noise. Caught by
    ``outputs_ignore_time_and_global_state`` (the generator's state after the call).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        torch.manual_seed(0)
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class DrawsFromRandomModuleForNothing(PlainToy):
    """Draws a "cache-busting" token from Python's ``random`` on every call and never uses it.

    Real bug: randomness whose result does not reach the pixels but whose draw advances
    the generator the pipeline shares, so the pipeline's own ``random`` samples depend on
    how many chunks were decoded. Caught by ``outputs_ignore_time_and_global_state``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        self._token = random.getrandbits(32)
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


# --- outputs belong to the caller ------------------------------------------------------


@dataclass(kw_only=True)
class DeflickerCache(ToyDecoderCache):
    """The toy's cache plus the last output frame, the state of a temporal smoothing."""

    previous: torch.Tensor | None = None


class DeflickerStateIsReturnedFrame(PlainToy):
    """A deflicker (an exponential moving average over output frames) keeps its state as a
    view of the frame it returned.

    Real bug: ``cache.previous = out[:, :, -1:]`` without ``.clone()``: the smoothing state
    is the caller's frame, so a pipeline that converts frames in place
    (``frames.mul_(255)``) changes the next chunk. A test that only reads outputs sees a
    perfect decoder. Caught by ``caller_owns_returned_outputs``.
    """

    KEEP = 0.25  # weight of the previous output frame

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return DeflickerCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        cache = _require_cache(cache, DeflickerCache)
        frames = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        output = torch.empty_like(frames)
        previous = cache.previous if cache.previous is not None else torch.zeros_like(frames[:, :, :1])
        for t in range(frames.shape[2]):
            previous = (1 - self.KEEP) * frames[:, :, t : t + 1] + self.KEEP * previous
            output[:, :, t : t + 1] = previous
        cache.previous = output[:, :, -1:]  # the bug: a view of what the caller gets
        return output


class ForwardUnderInferenceMode(PlainToy):
    """``forward`` is decorated with ``@torch.inference_mode()`` while pipelines call it
    under plain ``no_grad``: every output is an inference tensor.

    Real bug: the decorator added "for speed" in a decoder whose spec (correctly) says its
    pipelines run outside inference mode; their in-place post-processing
    (``frames.mul_(255)``) then raises ``RuntimeError: Inplace update to inference tensor
    outside InferenceMode``. Caught by ``caller_owns_returned_outputs``.
    """

    @torch.inference_mode()
    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class OutputBuffersRecycledInPairs(PlainToy):
    """Returns one of two preallocated output buffers per shape, alternating call by call.

    Real bug: double buffering ("the caller is done with a frame by the time we come back
    to its buffer"), which holds only for a pipeline that consumes every chunk before
    asking for the next but one. Caught by ``outputs_survive_later_steps`` (outputs held
    across later calls) and ``caller_owns_returned_outputs`` (the output is the decoder's
    memory).
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.output_pool: dict[tuple[tuple[int, ...], int], torch.Tensor] = {}
        self.calls = 0

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        frames = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        key = (tuple(frames.shape), self.calls % 2)
        self.calls += 1
        if key not in self.output_pool:
            self.output_pool[key] = torch.empty_like(frames)
        return self.output_pool[key].copy_(frames)


class FramesRetouchedByThreadLater(PlainToy):
    """A worker thread retouches every returned output half a second after ``forward`` returned.

    Real bug: colour grading handed to a thread pool that writes into the returned
    tensor when it gets round to it ("the caller only reads frames later anyway"). The
    frames change under a pipeline that encodes or displays them at once. Caught by
    ``outputs_survive_later_steps`` (outputs held and re-verified for ``output_hold_s``:
    1 s in quick, 3 s in default; for the whole run in a full certification).
    """

    DELAY_S = 0.5

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        grade = threading.Timer(self.DELAY_S, output.mul_, args=(0.9,))
        grade.daemon = True
        grade.start()
        return output


# --- inputs as pipelines pass them -----------------------------------------------------


class ChannelsLastFastPathIgnoresOffset(PlainToy):
    """A fast path for channels-last inputs reads their storage as dense, from offset 0.

    Real bug: ``if x.stride(1) == 1:`` hand the raw storage to a channels-last kernel
    (``torch.as_strided(x, x.shape, dense_channels_last_strides, 0)``), which is right for a
    freshly converted ``channels_last_3d`` tensor and reads the wrong memory for a chunk cut
    out of a larger channels-last latent tensor (offset and strides of the whole). Caught
    by ``chunked_decode_matches_full_decode`` (inputs rotate through pipeline layouts,
    including a channels-last slice at an offset).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if input.dim() == 5 and input.stride(1) == 1:
            _, c, t, h, w = input.shape
            dense = (t * h * w * c, 1, h * w * c, w * c, c)
            input = torch.as_strided(input, input.shape, dense, 0)  # the bug: offset 0, dense
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class MicroBatchesByBatchStride(PlainToy):
    """Splits a contiguous input into per-sample micro-batches of ``input.stride(0)`` values.

    Real bug: per-sample processing written as ``x.reshape(-1).split(x.stride(0))``,
    assuming the batch stride is the sample's size; a batch of one broadcast with
    ``expand`` (stride 0, and still "contiguous") makes it raise. Caught by
    ``chunked_decode_matches_full_decode`` (inputs include expanded views).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        x = input if input.is_contiguous() else input.contiguous()
        samples = x.reshape(-1).split(x.stride(0))  # the bug: stride 0 for an expanded batch
        batch = torch.stack([sample.view(x.shape[1:]) for sample in samples])
        return super().forward(batch, autoregressive_index=autoregressive_index, cache=cache)


# --- one-shot calls: a misdiagnosis to avoid, and a real leak --------------------------


class SeamBugAcceptsOneShotCalls(PlainToy):
    """Pads every chunk's latent convolution with zeros, as for a rollout's first chunk;
    decodes ``cache=None`` calls with a fresh cache of their own, and keeps no state
    anywhere else.

    Real bug: causal padding re-applied at every seam (the carried latent history is
    thrown away), in a decoder that honours one-shot calls. Its one-shot calls are right
    and leave nothing behind, so ``cache_none_matches_fresh_cache`` must pass and must not
    blame the seams on them (its control rollout shows the same seams without a one-shot
    call; the evidence notes a seam bug). Caught by ``chunked_decode_matches_full_decode``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is None:
            cache = ToyDecoderCache()  # a one-shot decode: a cache for this call alone
        cache.latent_history = None  # the bug: zero padding at every seam
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class OneShotBorrowsLastRolloutCache(PlainToy):
    """``cache=None`` borrows the cache of the decoder's last rollout, cleared for the call.

    Real bug: "reuse the buffers we already have" for one-shot decodes: the one-shot call
    decodes correctly (it clears what it borrowed), and the rollout that owned the cache
    continues from the one-shot call's history. Caught by
    ``cache_none_matches_fresh_cache``, which must say the one-shot call changed state
    outside its own call.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is None:
            cache = self.__dict__.get("last_cache") or ToyDecoderCache()
            cache.latent_history = cache.pixel_history = None
        else:
            self.__dict__["last_cache"] = cache
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


# --- correct decoders that pipelines meet -----------------------------------------------


class PermutedHaloOutputToy(PlainToy):
    """Returns its pixels as a permuted view of the interior of a larger, time-major,
    channels-last buffer with a one-pixel halo.

    Correct and unusual: the output is non-contiguous, starts at a storage offset and
    shares its storage with the (zero) halo no one else holds, as decoders that compute
    in ``[T, H, W, B, C]`` with padding for their filters return it; values are what
    count, and the caller may edit it in place.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        frames = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        b, c, t, h, w = frames.shape
        buffer = frames.new_zeros(t, h + 2, w + 2, b, c)
        buffer[:, 1:-1, 1:-1] = frames.permute(2, 3, 4, 0, 1)
        return buffer[:, 1:-1, 1:-1].permute(3, 4, 0, 1, 2)


class Float16Toy(PlainToy):
    """The toy in float16 on the CPU: inputs, weights, cache and pixels all half precision.

    Correct and unusual: CPU kernels for float16 round differently from GPU ones and the
    tolerance must follow the declared dtype; caches, clones and censuses of half tensors
    must work like any other.
    """


class SlowPythonToy(PlainToy):
    """Spends milliseconds of pure Python per call: a checksum of its input, 6,400 steps.

    Correct and unusual: many decoders validate, log or schedule in Python around a fast
    kernel; here that is 1-3 ms a call (ten times the toy's own compute, and far more
    while the memory checks trace Python's heap, which makes every allocation slower).
    Slow calls must not become a failure, nor the interpreter's transient allocations a
    leak.
    """

    VALUES = 64
    ROUNDS = 100

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        values = input.detach().to("cpu", torch.float64).flatten()[: self.VALUES].tolist()
        checksum = 0
        for _ in range(self.ROUNDS):
            for value in values:
                checksum = (checksum * 31 + int(value * 1000)) % 1_000_000_007
        self.last_checksum = checksum
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


@dataclass(kw_only=True)
class SeededCache(ToyDecoderCache):
    """The toy's cache plus a random generator of the rollout's own."""

    generator: torch.Generator


class DitherFromCacheGeneratorToy(_Dithered):
    """Dithers its output with noise from a generator the cache owns, seeded at cache init.

    Correct and unusual: the documented way to add noise. Its output is random-looking
    and changes from call to call, but a rollout is a function of its latents and its
    cache alone: reseeded global generators, clock jumps and pauses change nothing, a
    repeated rollout repeats bitwise, and a forked cache (its generator deep-copied)
    continues identically. The noise differs between a chunked and a one-call decode, so
    it is kept far below the tolerance (2^-20, a tenth of float32's).
    """

    SCALE = 2.0**-20
    SEED = 1234

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return SeededCache(generator=torch.Generator().manual_seed(self.SEED))

    def noise(self, shape: torch.Size, cache: Any) -> torch.Tensor:
        return torch.randn(shape, generator=_require_cache(cache, SeededCache).generator)


class ChattyToy(PlainToy):
    """Prints a line and issues a ``UserWarning`` on every call.

    Correct and unusual: research decoders log loudly; the output streams and the
    warnings machinery (which keeps a registry per call site) must not be mistaken for
    the decoder's memory or its output.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        print(f"ChattyToy: decoding {input.shape[2]} latent frame(s) at AR {autoregressive_index}")
        warnings.warn("ChattyToy: using the reference code path", UserWarning, stacklevel=2)
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


@dataclass(kw_only=True)
class PreallocatedCache(ToyDecoderCache):
    """Histories preallocated once and written in place."""

    latent_buffer: torch.Tensor | None = None
    pixel_buffer: torch.Tensor | None = None


class InferenceModeCacheToy(PlainToy):
    """Keeps its history in tensors created under ``torch.inference_mode()``, updated in place
    there, while it is called under plain ``no_grad``.

    Correct and unusual: inference tensors skip autograd's version counting (cheaper in
    place updates) and may be read outside inference mode, but not written there; the
    decoder writes them only inside ``torch.inference_mode()`` and returns ordinary
    tensors. Forking, censuses and sharing checks must handle inference tensors.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return PreallocatedCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        cache = _require_cache(cache, PreallocatedCache)
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        latent, pixel = filled(cache.latent_history), filled(cache.pixel_history)
        with torch.inference_mode():
            if cache.latent_buffer is None or cache.pixel_buffer is None:
                cache.latent_buffer = torch.empty_like(latent)
                cache.pixel_buffer = torch.empty_like(pixel)
            cache.latent_buffer.copy_(latent)
            cache.pixel_buffer.copy_(pixel)
        cache.latent_history, cache.pixel_history = cache.latent_buffer, cache.pixel_buffer
        return output


# --- registry ---------------------------------------------------------------------------

stall_fades_history = broken(StallFadesHistory, must_fail={TIME}, hints=TIME_HINTS)
late_calls_blend_toward_last_frame = broken(LateCallsBlendTowardLastFrame, must_fail={TIME}, hints=TIME_HINTS)
dither_from_global_torch_generator = broken(
    DitherFromGlobalTorchGenerator, must_fail={TIME, DETERMINISTIC}, hints=GLOBAL_RNG_HINTS
)
dither_from_numpy_global_generator = broken(
    DitherFromNumpyGlobalGenerator, must_fail={TIME, DETERMINISTIC}, hints=GLOBAL_RNG_HINTS
)
grain_from_random_module = broken(
    GrainFromRandomModule, must_fail={TIME, DETERMINISTIC}, hints=GLOBAL_RNG_HINTS
)
reseeds_the_global_generator = broken(
    ReseedsTheGlobalGenerator, must_fail={TIME}, hints=("reseeded the global", "torch")
)
draws_from_random_module_for_nothing = broken(
    DrawsFromRandomModuleForNothing, must_fail={TIME}, hints=("drew from", "random")
)
deflicker_state_is_returned_frame = broken(
    DeflickerStateIsReturnedFrame, must_fail={CALLER}, hints=("shares memory with the cache",)
)
forward_under_inference_mode = broken(
    ForwardUnderInferenceMode, must_fail={CALLER}, hints=("inference tensor",)
)
output_buffers_recycled_in_pairs = broken(
    OutputBuffersRecycledInPairs, must_fail={CALLER, SURVIVE}, hints=("shares memory", "changed")
)
frames_retouched_by_thread_later = broken(
    FramesRetouchedByThreadLater, must_fail={SURVIVE}, hints=("after it was returned",)
)
channels_last_fast_path_ignores_offset = broken(
    ChannelsLastFastPathIgnoresOffset, must_fail={CHUNKED}, hints=("slice of a larger tensor",)
)
micro_batches_by_batch_stride = broken(MicroBatchesByBatchStride, must_fail={CHUNKED}, hints=("split",))
seam_bug_accepts_one_shot_calls = broken(
    SeamBugAcceptsOneShotCalls, must_fail={CHUNKED}, hints=("chunk", "seam")
)
one_shot_borrows_last_rollout_cache = broken(
    OneShotBorrowsLastRolloutCache, must_fail={ONE_SHOT}, hints=("changed state outside its own call",)
)

permuted_halo_output_toy = correct(PermutedHaloOutputToy)
float16_toy = correct(Float16Toy, name="zoo-ok-toy-float16", config={"dtype": torch.float16})
slow_python_toy = correct(SlowPythonToy)
chatty_toy = correct(ChattyToy)
dither_from_cache_generator_toy = correct(DitherFromCacheGeneratorToy)
inference_mode_cache_toy = correct(InferenceModeCacheToy)

CASES = [
    stall_fades_history,
    late_calls_blend_toward_last_frame,
    dither_from_global_torch_generator,
    dither_from_numpy_global_generator,
    grain_from_random_module,
    reseeds_the_global_generator,
    draws_from_random_module_for_nothing,
    deflicker_state_is_returned_frame,
    forward_under_inference_mode,
    output_buffers_recycled_in_pairs,
    frames_retouched_by_thread_later,
    channels_last_fast_path_ignores_offset,
    micro_batches_by_batch_stride,
    seam_bug_accepts_one_shot_calls,
    one_shot_borrows_last_rollout_cache,
]
CORRECT_CASES = [
    permuted_halo_output_toy,
    float16_toy,
    slow_python_toy,
    chatty_toy,
    inference_mode_cache_toy,
    dither_from_cache_generator_toy,
]

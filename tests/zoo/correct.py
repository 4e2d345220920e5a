"""Correct decoders, several of them unusual, that the kit must certify.

A false alarm on a correct decoder is as bad as a missed bug: the kit is run on
decoders that are not in this repository, and an author whose correct decoder fails
learns to ignore the kit. Each decoder here is correct but differs from the toy in a
way a check written against the toy alone could trip over: no causal first frame and
an empty cache, time-major layout, a longer history that grows before it plateaus,
nested containers in the cache, a cache that cannot be deep-copied, other dtypes and
ratios, a batch of two.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from conformance.bases import DecoderConfig, StreamingDecoderCache, StreamingVideoDecoder
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, toy_spec

from ._base import LATENT_SIZE, CorrectCase, PlainToy, correct, filled, toy_spec_factory


# --- a stateless decoder ------------------------------------------------------------


@dataclass(kw_only=True)
class PerFrameDecoderConfig(DecoderConfig):
    """Shape and seed of a :class:`StatelessPerFrameDecoder`."""

    _target: type = field(default_factory=lambda: StatelessPerFrameDecoder)
    latent_channels: int = 4
    output_channels: int = 3
    temporal_ratio: int = 2
    spatial_ratio: int = 4
    seed: int = 3


class StatelessPerFrameDecoder(StreamingVideoDecoder[StreamingDecoderCache]):
    """Each latent frame becomes ``r`` pixel frames on its own: no history, no causal frame.

    Correct and unusual: AR 0 is already steady state (``n * r`` frames), the cache is
    the empty base class, ``get_output_temporal_size`` returns 0 for ``n < 1`` instead of
    raising, and ``get_input_temporal_size`` rejects impossible sizes with
    ``AssertionError`` rather than ``ValueError``; the contract allows all of these.
    """

    def __init__(self, config: PerFrameDecoderConfig) -> None:
        super().__init__(config)
        self.config: PerFrameDecoderConfig = config
        generator = torch.Generator().manual_seed(config.seed)
        rows = config.output_channels * config.temporal_ratio
        self.project = nn.Parameter(
            torch.randn(rows, config.latent_channels, generator=generator) / config.latent_channels**0.5
        )

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_ratio

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_ratio

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return max(input_temporal_size, 0) * self.config.temporal_ratio

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        assert output_temporal_size >= 1 and output_temporal_size % r == 0, (
            f"{output_temporal_size} pixel frames cannot be produced: expected a positive "
            f"multiple of {r}"
        )
        return output_temporal_size // r

    def initialize_autoregressive_cache(self, **context: Any) -> StreamingDecoderCache:
        return StreamingDecoderCache()

    def forward(
        self,
        input: torch.Tensor,
        autoregressive_index: int = 0,
        cache: StreamingDecoderCache | None = None,
    ) -> torch.Tensor:
        b, _, t, h, w = input.shape
        c, r, s = self.config.output_channels, self.config.temporal_ratio, self.config.spatial_ratio
        frames = torch.einsum("oc,bcthw->bothw", self.project, input)
        frames = frames.reshape(b, c, r, t, h, w).transpose(2, 3).reshape(b, c, t * r, h, w)
        frames = frames.repeat_interleave(s, dim=3).repeat_interleave(s, dim=4)
        return torch.tanh(frames)


def _per_frame_spec() -> Any:
    from conformance import DecoderSpec

    config = PerFrameDecoderConfig()
    return DecoderSpec(
        name="zoo-ok-stateless-per-frame",
        factory=lambda: StatelessPerFrameDecoder(PerFrameDecoderConfig()),
        latent_channels=config.latent_channels,
        latent_size=LATENT_SIZE,
        output_channels=config.output_channels,
    )


# --- toy variants -------------------------------------------------------------------


class TimeMajorToy(PlainToy):
    """The toy with time-major input and output, ``[B, T, C, H, W]`` (the Wan layout).

    Correct and unusual: declared ``layout="BTCHW"``; its output is a non-contiguous
    transposed view, which a check must not mistake for a layout or aliasing bug.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(
            input.transpose(1, 2), autoregressive_index=autoregressive_index, cache=cache
        )
        return output.transpose(1, 2)


@dataclass(kw_only=True)
class _WindowCache(ToyDecoderCache):
    latent_frames_seen: int = 0


class SlidingWindowToy(PlainToy):
    """A five-frame latent window and three-frame pixel history; the cache grows, then plateaus.

    Correct and unusual: its latent history holds only the frames seen so far, up to
    five, so the cache grows for the first steps of a rollout and is constant after,
    which a memory check must tell apart from unbounded growth; seams must carry five
    frames, not two.
    """

    LATENT_HISTORY = 5
    PIXEL_HISTORY = 3

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _WindowCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _WindowCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        history = cache.latent_history
        if history is not None and history.shape[2] < self.LATENT_HISTORY:
            # Stored trimmed to the frames seen; the kernel reads zeros before the start.
            missing = self.LATENT_HISTORY - history.shape[2]
            pad = history.new_zeros(*history.shape[:2], missing, *history.shape[3:])
            cache.latent_history = torch.cat([pad, history], dim=2)
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        cache.latent_frames_seen += input.shape[2]
        keep = min(cache.latent_frames_seen, self.LATENT_HISTORY)
        cache.latent_history = filled(cache.latent_history)[:, :, -keep:].clone()
        return output


class LongWindowToy(SlidingWindowToy):
    """A twelve-frame latent window: the cache grows for twelve steps, then stays constant.

    Correct and unusual: temporal-attention decoders keep windows of a dozen latent
    frames or more. A memory check must tell "grows, then plateaus" from "grows
    forever" however late the plateau comes.
    """

    LATENT_HISTORY = 12


@dataclass(kw_only=True)
class _BackReferenceCache(ToyDecoderCache):
    decoder: nn.Module | None = None


class CacheWithBackReference(PlainToy):
    """The cache keeps a reference to the decoder that made it.

    Correct and unusual: a back-reference (for validation or convenience) makes the
    module's parameters reachable from the cache; they are not rollout state, so
    neither the sharing check nor the memory check may count them against the cache.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _BackReferenceCache(decoder=self)


class ContextRequiringToy(PlainToy):
    """``initialize_autoregressive_cache(self, *, batch_size, **context)``: needs one key.

    Correct and unusual: the cache needs the batch size up front (to preallocate) and
    ignores any other context; the spec supplies ``batch_size`` in ``cache_context``,
    so every check that makes a cache must pass it along.
    """

    def initialize_autoregressive_cache(  # type: ignore[override]
        self, *, batch_size: int, **context: Any
    ) -> ToyDecoderCache:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        return ToyDecoderCache()


class TwoFramesPerCallToy(PlainToy):
    """Accepts at most two latent frames per call (declared ``max_chunk_frames=2``).

    Correct and unusual: many streaming decoders only take small chunks (the public Wan
    implementations decode one latent frame at a time). A kit that calls it with longer
    chunks, including for its own one-call reference decodes, raises a false alarm.
    """

    MAX_FRAMES = 2

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if input.shape[2] > self.MAX_FRAMES:
            raise ValueError(
                f"at most {self.MAX_FRAMES} latent frames per call, got {input.shape[2]}"
            )
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class OneFramePerCallToy(TwoFramesPerCallToy):
    """Accepts exactly one latent frame per call (declared ``max_chunk_frames=1``).

    Correct and unusual: the frame-by-frame decoder, the extreme of a chunk limit.
    """

    MAX_FRAMES = 1


class SlowFirstCallToy(PlainToy):
    """The first call on each decoder instance takes a quarter of a second (warm-up).

    Correct and unusual: real decoders compile kernels, autotune or allocate on their
    first call (``torch.compile``, cuDNN benchmark, CUDA context). The issue rules out
    timing deadlines that such a warm-up would trip, like Hypothesis's default 200 ms
    per example.
    """

    WARM_UP_S = 0.25

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._warm = False

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not self._warm:
            time.sleep(self.WARM_UP_S)
            self._warm = True
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


@dataclass(kw_only=True)
class _ArenaCache(ToyDecoderCache):
    arena: torch.Tensor | None = None


class ArenaCacheToy(PlainToy):
    """All of a rollout's history lives in one flat tensor per cache, as views, written in place.

    Correct and unusual: one allocation per rollout, histories as ``arena[a:b].view(...)``
    updated with ``copy_``. Views of one storage *within* a cache are fine (only sharing
    *between* caches, or with the module, is a bug), the storage counts once for memory,
    and ``copy.deepcopy`` must give the fork its own arena.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _ArenaCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _ArenaCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        latent, pixel = cache.latent_history, cache.pixel_history
        assert latent is not None and pixel is not None
        if cache.arena is None:
            cache.arena = latent.new_empty(latent.numel() + pixel.numel())
        latent_view = cache.arena[: latent.numel()].view(latent.shape)
        pixel_view = cache.arena[latent.numel() :].view(pixel.shape)
        latent_view.copy_(latent)
        pixel_view.copy_(pixel)
        cache.latent_history, cache.pixel_history = latent_view, pixel_view
        return output


class BatchNormInEvalToy(PlainToy):
    """Latents pass through an ``nn.BatchNorm3d`` in eval mode (running statistics as buffers).

    Correct and unusual: the module has buffers that a train-mode forward would update;
    in eval mode they are read, never written, so the module-state check must stay quiet.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.norm = nn.BatchNorm3d(config.latent_channels).to(config.dtype)
        assert self.norm.running_mean is not None and self.norm.running_var is not None
        with torch.no_grad():
            self.norm.running_mean.uniform_(-0.1, 0.1, generator=torch.Generator().manual_seed(5))
            self.norm.running_var.uniform_(0.9, 1.1, generator=torch.Generator().manual_seed(6))
        self.eval()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(self.norm(input), autoregressive_index=autoregressive_index, cache=cache)


class ChannelsLastOutputToy(PlainToy):
    """Returns its pixels in ``channels_last_3d`` memory format (non-standard strides).

    Correct and unusual: same values and shape, different memory layout (what a
    cuDNN-friendly decoder returns); comparisons must be by value, not by stride.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return output.contiguous(memory_format=torch.channels_last_3d)


@dataclass(kw_only=True)
class _NestedCache(StreamingDecoderCache):
    state: dict[str, Any] = field(
        default_factory=lambda: {"latent": [], "pixel": {"frames": []}, "steps": 0}
    )


def _stack(frames: list[torch.Tensor]) -> torch.Tensor | None:
    return torch.stack(frames, dim=2) if frames else None


class NestedCacheToy(PlainToy):
    """The toy with its history as lists of frames inside nested dicts, plus constant buffers.

    Correct and unusual: the cache is ``{"latent": [frame, frame], "pixel": {"frames":
    [frame]}, "steps": n}``, so checks must walk containers to find tensors (and the
    integer step count grows without the memory growing); the module registers latent
    mean/std buffers, as real VAEs do, which ``forward`` reads but never writes.
    """

    latents_mean: torch.Tensor
    latents_std: torch.Tensor

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.register_buffer("latents_mean", torch.zeros(config.latent_channels, dtype=config.dtype))
        self.register_buffer("latents_std", torch.ones(config.latent_channels, dtype=config.dtype))

    def initialize_autoregressive_cache(self, **context: Any) -> _NestedCache:  # type: ignore[override]
        return _NestedCache()

    def forward(  # type: ignore[override]
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: _NestedCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _NestedCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        inner = ToyDecoderCache(
            latent_history=_stack(cache.state["latent"]),
            pixel_history=_stack(cache.state["pixel"]["frames"]),
        )
        shape = (1, -1, 1, 1, 1)
        latents = input * self.latents_std.view(shape) + self.latents_mean.view(shape)
        output = super().forward(latents, autoregressive_index=autoregressive_index, cache=inner)
        cache.state["latent"] = [f.clone() for f in filled(inner.latent_history).unbind(2)]
        cache.state["pixel"]["frames"] = [f.clone() for f in filled(inner.pixel_history).unbind(2)]
        cache.state["steps"] += 1
        return output


@dataclass(kw_only=True)
class _LockedCache(ToyDecoderCache):
    lock: Any = field(default_factory=threading.Lock)


class UncopyableCacheToy(PlainToy):
    """The toy with a lock in its cache, so ``copy.deepcopy(cache)`` raises TypeError.

    Correct and unusual: a cache guarded for multi-threaded serving cannot be forked.
    The contract says forking is then *skipped* with the reason, neither passed nor
    failed; everything else must pass.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _LockedCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _LockedCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        with cache.lock:
            return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class HookRemembersItsOwnerToy(PlainToy):
    """A debugging hook records the shapes each call saw on the decoder that owns it.

    Correct: the hook keeps a list on its own decoder, outside any rollout, and nothing
    reads it. But the hook is a closure over the decoder, so a deep copy of the decoder
    keeps calling the *original's* hook: copies would not be isolated. The kit proves
    that and builds every check's decoders with the factory instead.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.seen_shapes: list[tuple[int, ...]] = []
        owner = self

        def remember(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            latents = kwargs.get("input", args[0] if args else None)
            if isinstance(latents, torch.Tensor) and len(owner.seen_shapes) < 1000:
                owner.seen_shapes.append(tuple(latents.shape))

        self.register_forward_pre_hook(remember, with_kwargs=True)


class HoldsALockToy(PlainToy):
    """Keeps a ``threading.Lock`` to serialise calls from a pipeline's threads.

    Correct, and common in serving code; a lock cannot be deep-copied, so the kit builds
    every check's decoders with the factory instead of copying one build.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._lock = threading.Lock()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        with self._lock:
            return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)



def _toy_case(name: str, why: str, **overrides: Any) -> CorrectCase:
    full_name = f"zoo-ok-{name}"
    return CorrectCase(
        name=full_name, spec_factory=lambda: toy_spec(name=full_name, **overrides), why=why
    )


def _toy_config_case(name: str, why: str, **config: Any) -> CorrectCase:
    case = correct(PlainToy, name=f"zoo-ok-{name}", config=config)
    return CorrectCase(name=case.name, spec_factory=case.spec_factory, why=why)


toy_reference = CorrectCase(
    name="toy-causal",
    spec_factory=toy_spec,
    why="The bundled toy decoder exactly as its authors ship it.",
)
plain_toy = correct(PlainToy, name="zoo-ok-plain-toy")
stateless_per_frame = CorrectCase(
    name="zoo-ok-stateless-per-frame",
    spec_factory=_per_frame_spec,
    why=StatelessPerFrameDecoder.__doc__.split("\n\n")[0].replace("\n", " ").strip(),  # type: ignore[union-attr]
)
time_major_toy = correct(TimeMajorToy, layout="BTCHW")
sliding_window_toy = correct(SlidingWindowToy)
long_window_toy = correct(LongWindowToy)
cache_with_back_reference = correct(CacheWithBackReference)
slow_first_call_toy = correct(SlowFirstCallToy)
arena_cache_toy = correct(ArenaCacheToy)
batch_norm_in_eval_toy = correct(BatchNormInEvalToy)
channels_last_output_toy = correct(ChannelsLastOutputToy)
two_frames_per_call_toy = correct(TwoFramesPerCallToy, max_chunk_frames=2)
hook_remembers_its_owner_toy = correct(HookRemembersItsOwnerToy)
holds_a_lock_toy = correct(HoldsALockToy)
one_frame_per_call_toy = correct(
    OneFramePerCallToy,
    max_chunk_frames=1,
    must_skip={"chunked_decode_matches_full_decode", "long_rollouts_match_full_decode"},
)
context_requiring_toy = correct(ContextRequiringToy, cache_context={"batch_size": 1})
nested_cache_toy = correct(NestedCacheToy)
uncopyable_cache_toy = correct(
    UncopyableCacheToy, must_skip={"forked_cache_continues_identically"}
)
toy_batch_of_two = _toy_case(
    "toy-batch-2", "The toy decoding a batch of two: batch independence must pass.", batch_size=2
)
toy_float64 = _toy_config_case(
    "toy-float64", "The toy in float64: tolerances must follow the declared dtype.", dtype=torch.float64
)
toy_bfloat16 = _toy_config_case(
    "toy-bfloat16",
    "The toy in bfloat16 on CPU: reassociation error is large in bf16 and must be tolerated.",
    dtype=torch.bfloat16,
)
toy_bfloat16_in_float32_out = CorrectCase(
    name="zoo-ok-toy-bf16-in-fp32-out",
    spec_factory=toy_spec_factory(
        "zoo-ok-toy-bf16-in-fp32-out",
        PlainToy,
        dtype=torch.bfloat16,
        output_dtype=torch.float32,
    ),
    why="bfloat16 latents in, float32 compute and pixels out (declared output_dtype).",
)
toy_nonsquare_latents = CorrectCase(
    name="zoo-ok-toy-nonsquare-latents",
    spec_factory=toy_spec_factory("zoo-ok-toy-nonsquare-latents", PlainToy, latent_size=(3, 5)),
    why="Odd, non-square latents (3 x 5): height and width must not be confused anywhere.",
)
toy_identity_ratios = _toy_config_case(
    "toy-identity-ratios",
    "Temporal and spatial ratios of 1: the causal first frame trims nothing.",
    temporal_ratio=1,
    spatial_ratio=1,
)

CASES = [
    toy_reference,
    plain_toy,
    stateless_per_frame,
    time_major_toy,
    sliding_window_toy,
    long_window_toy,
    cache_with_back_reference,
    context_requiring_toy,
    slow_first_call_toy,
    arena_cache_toy,
    batch_norm_in_eval_toy,
    channels_last_output_toy,
    two_frames_per_call_toy,
    one_frame_per_call_toy,
    nested_cache_toy,
    uncopyable_cache_toy,
    hook_remembers_its_owner_toy,
    holds_a_lock_toy,
    toy_batch_of_two,
    toy_float64,
    toy_bfloat16,
    toy_bfloat16_in_float32_out,
    toy_nonsquare_latents,
    toy_identity_ratios,
]

"""A streaming video decoder built the way decoder frameworks build theirs.

- It subclasses the framework's own copy of the interface
  (``flashdreams.infra.decoder`` from this stand-in distribution, not the kit's).
- Its network is built on the meta device and filled from a checkpoint
  (``checkpoint_path``: a ``torch.save`` state dict, loaded with ``weights_only=True``);
  without one the weights stay on the meta device, and a spec fills them with
  ``conformance.helpers.materialize_random``.
- It returns a :class:`VideoFrames` object (``video_output=True``), not a tensor.
- With ``graph_capture=True`` the steady-state step (AR >= 1, one graph per chunk
  length) is captured once and replayed: a ``torch.cuda.CUDAGraph`` on CUDA, an
  emulation with the same static-tensor contract elsewhere (see :mod:`standin_video.graph`).

Architecture: latents ``[B, C, T, h, w]``; a causal temporal upsampler (temporal
convolution of kernel 3 over latent frames, so two latent frames of history, then
``temporal_ratio`` pixel frames per latent frame; the rollout's very first latent frame
keeps only its last pixel frame); then a 1x1 projection and a pixel shuffle by
``spatial_ratio``. So step 0 turns ``n`` latent frames into ``1 + r (n - 1)`` pixel
frames and later steps into ``r n``.

Seeded bugs (all off by default), each modelled on a bug found in real decoders:

- ``bug_upsampler_keeps_last_chunk``: the upsampler's history keeps only the frames of
  the last chunk, so a one-frame chunk leaves one frame of history instead of two
  (plans like ``[2, 1, 1]`` break, ``[2, 2, 2]`` passes);
- ``bug_shared_graph_replay``: the graph-replay wrapper, shared by all rollouts, keeps
  the rollout state in the graph's static tensor and the cache only points at it, so a
  rollout replays whatever state another rollout left there (sequential use passes;
  interleaved and forked rollouts break);
- ``bug_negative_zero_frames``: ``get_output_temporal_size(0, 0)`` returns ``1 - r``
  instead of rejecting 0 latent frames;
- ``bug_cache_init_takes_no_context``: ``initialize_autoregressive_cache`` narrowed to
  take no keyword context.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from flashdreams.infra.decoder import DecoderConfig, StreamingDecoderCache, StreamingVideoDecoder

from standin_video.graph import StepGraph, capture_step

__all__ = [
    "StandinCache",
    "StandinDecoderConfig",
    "StandinNetwork",
    "StandinVideoDecoder",
    "VideoFrames",
]

HISTORY = 2  # latent frames of history the upsampler's temporal convolution (kernel 3) needs


@dataclass
class VideoFrames:
    """What the framework's pipeline consumes: frames ``[B, T, C, H, W]`` in (-1, 1)."""

    frames: torch.Tensor
    fps: float = 16.0


@dataclass(kw_only=True)
class StandinDecoderConfig(DecoderConfig):
    """Sizes, checkpoint, output form, graph capture and seeded bugs."""

    _target: type = field(default_factory=lambda: StandinVideoDecoder)
    latent_channels: int = 4
    hidden_channels: int = 8
    out_channels: int = 3
    temporal_ratio: int = 2
    spatial_ratio: int = 2
    checkpoint_path: str | None = None
    device: str = "cpu"
    dtype: torch.dtype = torch.float32
    video_output: bool = True
    graph_capture: bool = False
    bug_upsampler_keeps_last_chunk: bool = False
    bug_shared_graph_replay: bool = False
    bug_negative_zero_frames: bool = False
    bug_cache_init_takes_no_context: bool = False


@dataclass(kw_only=True)
class StandinCache(StreamingDecoderCache):
    """One rollout's state: the upsampler's last ``HISTORY`` latent frames (after the
    input projection), and the index the next call must carry."""

    history: torch.Tensor | None = None
    next_index: int = 0


class StandinNetwork(nn.Module):
    """The weights: input projection, temporal upsampler, pixel projection."""

    def __init__(self, config: StandinDecoderConfig) -> None:
        super().__init__()
        c, hidden, r, s = (
            config.latent_channels,
            config.hidden_channels,
            config.temporal_ratio,
            config.spatial_ratio,
        )
        self.project_in = nn.Conv3d(c, hidden, kernel_size=1)
        self.upsample = nn.Conv3d(hidden, hidden * r, kernel_size=(HISTORY + 1, 1, 1))
        self.norm = nn.GroupNorm(1, hidden)
        self.to_pixels = nn.Conv2d(hidden, config.out_channels * s * s, kernel_size=1)


class StandinVideoDecoder(StreamingVideoDecoder[StandinCache]):
    """Latents ``[B, C, T, h, w]`` to :class:`VideoFrames` (or a ``BCTHW`` tensor)."""

    def __init__(self, config: StandinDecoderConfig) -> None:
        super().__init__(config)
        self.config: StandinDecoderConfig = config
        with torch.device("meta"):
            self.network = StandinNetwork(config)
        if config.checkpoint_path is not None:
            self.load_checkpoint(config.checkpoint_path)
        self._graphs: dict[int, StepGraph] = {}
        self._static_history: torch.Tensor | None = None
        if config.bug_cache_init_takes_no_context:
            # The seeded bug: a narrowed override, as found in a real decoder.
            self.initialize_autoregressive_cache = self._cache_without_context  # type: ignore[method-assign]

    def load_checkpoint(self, path: str | Path) -> None:
        """Fill the meta-built network from a state dict saved with ``torch.save``."""
        state = torch.load(Path(path), map_location=self.config.device, weights_only=True)
        self.network.load_state_dict(state, assign=True)
        self.network.to(device=self.config.device, dtype=self.config.dtype)

    # ------------------------------------------------------------------ the interface

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_ratio

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_ratio

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        zero_slips_through = self.config.bug_negative_zero_frames and input_temporal_size == 0
        if input_temporal_size < 1 and not zero_slips_through:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        if autoregressive_index == 0:
            return 1 + r * (input_temporal_size - 1)
        return r * input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        frames = output_temporal_size + (r - 1 if autoregressive_index == 0 else 0)
        if output_temporal_size < 1 or frames % r:
            raise ValueError(
                f"{output_temporal_size} pixel frames cannot be produced at autoregressive index "
                f"{autoregressive_index}: expected {'1 + %d*n' % r if autoregressive_index == 0 else '%d*n' % r}"
                " with n >= 1"
            )
        return frames // r

    def initialize_autoregressive_cache(self, **context: Any) -> StandinCache:
        return StandinCache()

    def _cache_without_context(self) -> StandinCache:
        return StandinCache()

    def forward(
        self,
        input: torch.Tensor,
        autoregressive_index: int = 0,
        cache: StandinCache | None = None,
    ) -> VideoFrames | torch.Tensor:
        if cache is None:
            if autoregressive_index != 0:
                raise ValueError(
                    f"autoregressive_index {autoregressive_index} needs its rollout's cache; "
                    "cache=None is only a one-shot decode at index 0"
                )
            cache = StandinCache()
        if autoregressive_index != cache.next_index:
            raise ValueError(
                f"autoregressive_index {autoregressive_index} out of order: this cache expects "
                f"{cache.next_index}"
            )
        latents = input.to(self.config.dtype)
        features = self.network.project_in(latents)
        if cache.history is None:
            batch, hidden, _, h, w = features.shape
            cache.history = features.new_zeros(batch, hidden, HISTORY, h, w)
        if self.config.graph_capture and autoregressive_index >= 1:
            pixels = self._replay(features, cache)
        else:
            pixels, history = self._step(features, cache.history)
            cache.history = self._keep(history, features)
        if autoregressive_index == 0:
            pixels = pixels[:, :, self.config.temporal_ratio - 1 :]
        cache.next_index = autoregressive_index + 1
        if self.config.video_output:
            return VideoFrames(frames=pixels.permute(0, 2, 1, 3, 4))
        return pixels

    # ------------------------------------------------------------------ internals

    def _step(self, features: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk: pixels ``[B, C, r T, H, W]`` and ``history ++ features``."""
        padded = torch.cat([history, features], dim=2)
        hidden = torch.tanh(self.network.upsample(padded))
        batch, _, frames, h, w = hidden.shape
        r, s = self.config.temporal_ratio, self.config.spatial_ratio
        hidden = hidden.reshape(batch, -1, r, frames, h, w).permute(0, 1, 3, 2, 4, 5)
        hidden = hidden.reshape(batch, -1, frames * r, h, w)
        per_frame = hidden.permute(0, 2, 1, 3, 4).reshape(batch * frames * r, -1, h, w)
        pixels = F.pixel_shuffle(self.network.to_pixels(self.network.norm(per_frame)), s)
        pixels = pixels.reshape(batch, frames * r, -1, h * s, w * s).permute(0, 2, 1, 3, 4)
        return torch.tanh(pixels), padded

    def _keep(self, padded: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """The history the next chunk needs: the last ``HISTORY`` frames seen so far."""
        if self.config.bug_upsampler_keeps_last_chunk:
            kept = features[:, :, -HISTORY:]  # the seeded bug: this chunk's frames only
            missing = HISTORY - kept.shape[2]
            return F.pad(kept, (0, 0, 0, 0, missing, 0)).clone() if missing else kept.clone()
        return padded[:, :, -HISTORY:].clone()

    def _replay(self, features: torch.Tensor, cache: StandinCache) -> torch.Tensor:
        """The steady-state step through a captured graph (one per chunk length)."""
        assert cache.history is not None
        frames = int(features.shape[2])
        if self._static_history is None or self._static_history.shape != cache.history.shape:
            # One static state tensor, read by the graphs of every chunk length.
            self._static_history = cache.history.clone()
            self._graphs.clear()
        static_history = self._static_history
        graph = self._graphs.get(frames)
        if graph is None:

            def step(features: torch.Tensor, history: torch.Tensor) -> dict[str, torch.Tensor]:
                pixels, padded = self._step(features, history)
                return {"pixels": pixels, "history": self._keep(padded, features)}

            graph = capture_step(step, {"features": features.clone(), "history": static_history})
            self._graphs[frames] = graph
        graph.inputs["features"].copy_(features)
        if self.config.bug_shared_graph_replay:
            # The seeded bug: the rollout state lives in the wrapper's static tensor, shared
            # by every rollout; a cache only points at it, so another rollout's replay (or a
            # forked copy's) silently continues from whatever state was left there.
            if cache.history is not static_history:
                if cache.next_index == 1:  # the rollout's first replay adopts its state
                    static_history.copy_(cache.history)
                cache.history = static_history
            graph.replay()
            static_history.copy_(graph.outputs["history"])
            return graph.outputs["pixels"].clone()
        static_history.copy_(cache.history)
        graph.replay()
        cache.history = graph.outputs["history"].clone()
        return graph.outputs["pixels"].clone()

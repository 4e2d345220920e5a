"""A small streaming video decoder, written the way a downstream package would write one.

Latents ``[B, T, C, h, w]`` (time-major) become pixels ``[B, T', 3, h*s, w*s]``:

1. every latent frame is projected to ``r`` pixel frames at ``s`` times the resolution
   (a 1x1 convolution followed by a pixel shuffle);
2. the rollout's very first latent frame keeps only its last pixel frame (the causal
   first frame), so step 0 turns ``n`` latent frames into ``1 + r * (n - 1)`` pixel
   frames and every later step into ``r * n``;
3. pixel frames are smoothed over time, ``y_t = a * y_(t-1) + (1 - a) * x_t``, which
   needs the previous output frame: that is the per-rollout state kept in the cache.

Decoding chunk by chunk with one cache gives what decoding everything at once gives,
because the only state crossing a chunk seam is the previous smoothed frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from conformance.bases import DecoderConfig, StreamingDecoderCache, StreamingVideoDecoder

__all__ = ["AcmeCache", "AcmeCausalDecoder", "AcmeDecoderConfig", "AcmeFastDecoder"]


@dataclass(kw_only=True)
class AcmeDecoderConfig(DecoderConfig):
    """Sizes, smoothing and seed of an :class:`AcmeCausalDecoder`."""

    _target: type = field(default_factory=lambda: AcmeCausalDecoder)
    latent_channels: int = 4
    out_channels: int = 3
    temporal_upsample: int = 2
    spatial_upsample: int = 2
    smoothing: float = 0.5
    seed: int = 0


@dataclass(kw_only=True)
class AcmeCache(StreamingDecoderCache):
    """One rollout's state: the last smoothed pixel frame (``None`` before the first step)."""

    previous: torch.Tensor | None = None


class AcmeCausalDecoder(StreamingVideoDecoder[AcmeCache]):
    """Latents ``[B, T, C, h, w]`` to pixels ``[B, T', out_channels, h*s, w*s]`` in (-1, 1)."""

    def __init__(self, config: AcmeDecoderConfig) -> None:
        super().__init__(config)
        self.config: AcmeDecoderConfig = config
        r, s = config.temporal_upsample, config.spatial_upsample
        self.project = nn.Conv2d(config.latent_channels, config.out_channels * r * s * s, kernel_size=1)
        generator = torch.Generator().manual_seed(config.seed)
        with torch.no_grad():
            for parameter in self.project.parameters():
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
        self.eval()

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_upsample

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_upsample

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError(f"at least one latent frame is needed, got {input_temporal_size}")
        r = self.config.temporal_upsample
        if autoregressive_index == 0:
            return 1 + r * (input_temporal_size - 1)
        return r * input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        r = self.config.temporal_upsample
        extra = r - 1 if autoregressive_index == 0 else 0  # step 0 drops r - 1 frames
        if output_temporal_size < 1 or (output_temporal_size + extra) % r:
            raise ValueError(
                f"{output_temporal_size} pixel frames cannot be produced at step "
                f"{autoregressive_index}; possible: "
                + (f"1 + {r}*n" if autoregressive_index == 0 else f"{r}*n")
                + " for n >= 1"
            )
        return (output_temporal_size + extra) // r

    def initialize_autoregressive_cache(self, **context: Any) -> AcmeCache:
        return AcmeCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: AcmeCache | None = None
    ) -> torch.Tensor:
        if cache is None:
            raise ValueError("pass the rollout's cache (initialize_autoregressive_cache())")
        batch, frames, channels, h, w = input.shape
        r, s = self.config.temporal_upsample, self.config.spatial_upsample
        out_channels = self.config.out_channels

        projected = self.project(input.reshape(batch * frames, channels, h, w))
        pixels = F.pixel_shuffle(projected, s)  # [B*T, out*r, h*s, w*s]
        pixels = pixels.reshape(batch, frames, r, out_channels, h * s, w * s)
        pixels = pixels.reshape(batch, frames * r, out_channels, h * s, w * s)
        if autoregressive_index == 0:
            pixels = pixels[:, r - 1 :]  # the causal first frame

        a = self.config.smoothing
        previous = cache.previous
        smoothed = []
        for t in range(pixels.shape[1]):
            current = pixels[:, t] if previous is None else a * previous + (1 - a) * pixels[:, t]
            smoothed.append(current)
            previous = current
        cache.previous = None if previous is None else previous.clone()
        return torch.tanh(torch.stack(smoothed, dim=1))


class AcmeFastDecoder(AcmeCausalDecoder):
    """:class:`AcmeCausalDecoder` writing its output into a buffer it reuses every call.

    Saves an allocation per step (the pattern of CUDA-graph replay), and is a known bug:
    a caller that keeps the output of step k finds it overwritten by step k + 1. The
    spec declares it as an expected failure of ``outputs_survive_later_steps`` and
    ``caller_owns_returned_outputs``.
    """

    def __init__(self, config: AcmeDecoderConfig) -> None:
        super().__init__(config)
        self._reused_outputs: dict[tuple[int, ...], torch.Tensor] = {}

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: AcmeCache | None = None
    ) -> torch.Tensor:
        frames = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        buffer = self._reused_outputs.get(tuple(frames.shape))
        if buffer is None:
            buffer = self._reused_outputs[tuple(frames.shape)] = torch.empty_like(frames)
        return buffer.copy_(frames)

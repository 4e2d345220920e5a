"""A tiny causal video decoder with the streaming shape of a real video VAE.

It exists so the conformance kit has a correct decoder that is cheap enough to run
thousands of property-based examples on a CPU, and so the kit's own tests can derive
deliberately broken variants from a known-good original. Despite its size it has every
streaming feature that breaks real decoders:

- a causal first frame: at autoregressive step 0 the first latent frame yields one
  pixel frame, every other latent frame yields ``temporal_ratio`` frames;
- causal temporal convolution in latent space (two frames of history) and in pixel
  space (one frame of history), so a chunk seam that drops history changes the output;
- spatial upsampling by ``spatial_ratio``.

Decoding chunk by chunk with one cache equals decoding the whole sequence at once
(up to floating-point reassociation), for any chunk plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from conformance.bases import DecoderConfig, StreamingDecoderCache, StreamingVideoDecoder

__all__ = ["ToyDecoderCache", "ToyDecoderConfig", "ToyVideoDecoder"]


@dataclass(kw_only=True)
class ToyDecoderConfig(DecoderConfig):
    """Shape and seed of a :class:`ToyVideoDecoder`."""

    _target: type = field(default_factory=lambda: ToyVideoDecoder)
    latent_channels: int = 4
    hidden_channels: int = 8
    output_channels: int = 3
    temporal_ratio: int = 4
    spatial_ratio: int = 2
    seed: int = 0
    dtype: torch.dtype = torch.float32
    device: str = "cpu"


@dataclass(kw_only=True)
class ToyDecoderCache(StreamingDecoderCache):
    """One rollout's state: the causal history of both temporal convolutions.

    ``latent_history`` holds the last two latent frames, ``pixel_history`` the last
    hidden pixel frame; both are ``None`` until the first step, when the spatial size
    becomes known. ``next_index`` is the autoregressive index the next call must use.
    """

    latent_history: torch.Tensor | None = None
    pixel_history: torch.Tensor | None = None
    next_index: int = 0


class ToyVideoDecoder(StreamingVideoDecoder[ToyDecoderCache]):
    """Latents ``[B, C, T, h, w]`` to pixels ``[B, 3, T', h*s, w*s]`` in (-1, 1)."""

    LATENT_HISTORY = 2  # frames of history the latent causal conv (kernel 3) needs
    PIXEL_HISTORY = 1  # frames of history the pixel causal conv (kernel 2) needs

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.config: ToyDecoderConfig = config
        generator = torch.Generator().manual_seed(config.seed)

        def weight(*shape: int) -> nn.Parameter:
            fan_in = max(1, shape[1] * (shape[2] if len(shape) > 2 else 1))
            values = torch.randn(*shape, generator=generator) / fan_in**0.5
            return nn.Parameter(values.to(device=config.device, dtype=config.dtype))

        c, hidden, r = config.latent_channels, config.hidden_channels, config.temporal_ratio
        self.latent_conv = weight(hidden, c, self.LATENT_HISTORY + 1)
        self.to_frames = weight(hidden * r, hidden)
        self.pixel_conv = weight(hidden, hidden, self.PIXEL_HISTORY + 1)
        self.to_rgb = weight(config.output_channels, hidden)

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_ratio

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_ratio

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        r = self.config.temporal_ratio
        if autoregressive_index == 0:
            return 1 + r * (input_temporal_size - 1)
        return r * input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        padding = 1 - r if autoregressive_index == 0 else 0  # step 0 loses r - 1 frames
        frames = output_temporal_size - padding
        if output_temporal_size < 1 or frames % r:
            raise ValueError(
                f"{output_temporal_size} pixel frames cannot be produced at autoregressive "
                f"index {autoregressive_index}: expected "
                + ("1 + %d*n" % r if autoregressive_index == 0 else "%d*n" % r)
                + " with n >= 1"
            )
        return frames // r

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return ToyDecoderCache()

    def forward(
        self,
        input: torch.Tensor,
        autoregressive_index: int = 0,
        cache: ToyDecoderCache | None = None,
    ) -> torch.Tensor:
        cache = self._check_call(input, autoregressive_index, cache)
        batch, _, frames, height, width = input.shape
        latents = input.to(self.config.dtype)

        if cache.latent_history is None:
            cache.latent_history = latents.new_zeros(
                batch, latents.shape[1], self.LATENT_HISTORY, height, width
            )
        hidden = self._causal_conv(latents, cache.latent_history, self.latent_conv)
        cache.latent_history = torch.cat([cache.latent_history, latents], dim=2)[
            :, :, -self.LATENT_HISTORY :
        ].clone()
        hidden = torch.tanh(hidden)

        # Each latent frame becomes r pixel frames; the rollout's very first latent
        # frame keeps only its last one (the causal first frame).
        r = self.config.temporal_ratio
        expanded = torch.einsum("oc,bcthw->bothw", self.to_frames, hidden)
        expanded = expanded.reshape(batch, r, -1, frames, height, width)
        expanded = expanded.permute(0, 2, 3, 1, 4, 5).reshape(batch, -1, frames * r, height, width)
        if autoregressive_index == 0:
            expanded = expanded[:, :, r - 1 :]

        if cache.pixel_history is None:
            cache.pixel_history = expanded.new_zeros(
                batch, expanded.shape[1], self.PIXEL_HISTORY, height, width
            )
        mixed = self._causal_conv(expanded, cache.pixel_history, self.pixel_conv)
        cache.pixel_history = torch.cat([cache.pixel_history, expanded], dim=2)[
            :, :, -self.PIXEL_HISTORY :
        ].clone()

        rgb = torch.einsum("oc,bcthw->bothw", self.to_rgb, torch.tanh(mixed))
        s = self.config.spatial_ratio
        rgb = rgb.repeat_interleave(s, dim=3).repeat_interleave(s, dim=4)
        cache.next_index = autoregressive_index + 1
        return torch.tanh(rgb)

    @staticmethod
    def _causal_conv(x: torch.Tensor, history: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """Temporal convolution over ``history ++ x`` that emits one frame per frame of ``x``."""
        padded = torch.cat([history, x], dim=2)
        return F.conv3d(padded, kernel[:, :, :, None, None])

    def _check_call(
        self, input: torch.Tensor, autoregressive_index: int, cache: ToyDecoderCache | None
    ) -> ToyDecoderCache:
        if cache is None:
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        if not isinstance(input, torch.Tensor) or input.dim() != 5:
            raise ValueError(f"expected latents [B, C, T, h, w], got {getattr(input, 'shape', input)!r}")
        if input.shape[1] != self.config.latent_channels:
            raise ValueError(
                f"expected {self.config.latent_channels} latent channels, got {input.shape[1]}"
            )
        if autoregressive_index != cache.next_index:
            raise ValueError(
                f"autoregressive_index {autoregressive_index} out of order: this cache expects "
                f"{cache.next_index}"
            )
        if cache.latent_history is not None and cache.latent_history.shape[-2:] != input.shape[-2:]:
            raise ValueError(
                f"spatial size changed mid-rollout: cache holds {tuple(cache.latent_history.shape[-2:])},"
                f" got {tuple(input.shape[-2:])}"
            )
        return cache


def toy_spec(**overrides: Any) -> Any:
    """Conformance spec for the default toy decoder (fp32, CPU, 4x4 latents)."""
    from conformance import DecoderSpec

    config = ToyDecoderConfig()
    fields: dict[str, Any] = dict(
        name="toy-causal",
        factory=config.setup,
        latent_channels=config.latent_channels,
        latent_size=(4, 4),
    )
    fields.update(overrides)
    return DecoderSpec(**fields)

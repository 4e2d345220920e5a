"""Small decoders for the engine's own tests: legal-but-unusual ones and failure modes.

Each is the bundled toy decoder with one change, so a difference in the kit's verdict is
caused by that change alone.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import torch

from conformance import DecoderSpec
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder

RELEASE_HUNG = threading.Event()


def spec_for(cls: type[ToyVideoDecoder], name: str, **overrides: Any) -> DecoderSpec:
    def factory() -> ToyVideoDecoder:
        return cls(ToyDecoderConfig())

    fields: dict[str, Any] = dict(name=name, factory=factory, latent_channels=4, latent_size=(3, 2))
    fields.update(overrides)
    return DecoderSpec(**fields)


class NoCausalFrameToy(ToyVideoDecoder):
    """Legal: step 0 maps like steady state (no causal first frame); mappers reject with
    AssertionError and map n < 1 to 0."""

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return max(0, self.config.temporal_ratio * input_temporal_size)

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        assert output_temporal_size >= 1 and output_temporal_size % self.config.temporal_ratio == 0
        return output_temporal_size // self.config.temporal_ratio

    def _check_call(self, input: torch.Tensor, autoregressive_index: int, cache: Any) -> Any:
        if cache is None:
            raise ValueError("a cache is required")
        return cache

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        # The toy trims the causal first frame only at index 0: decode every step as a later one.
        return super().forward(input, autoregressive_index + 1, cache)


@dataclass(kw_only=True)
class _SelfReferentialCache(ToyDecoderCache):
    owner: Any = None
    myself: Any = None
    extras: Any = None


class CacheReferencesModuleToy(ToyVideoDecoder):
    """Legal: the cache points back at the decoder module and at itself (a cycle)."""

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        cache = _SelfReferentialCache(owner=self)
        cache.myself = cache
        cache.extras = {"history": [cache], "name": "x"}
        return cache


class FactoryRaises(ToyVideoDecoder):
    def __init__(self, config: ToyDecoderConfig) -> None:
        raise FileNotFoundError("weights.safetensors not found")


class ForwardRaises(ToyVideoDecoder):
    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        raise RuntimeError("out of cheese")


class ForwardReturnsTuple(ToyVideoDecoder):
    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> Any:
        return (super().forward(input, autoregressive_index, cache),)


class ForwardHangs(ToyVideoDecoder):
    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        RELEASE_HUNG.wait(timeout=60)
        raise RuntimeError("released by the test session")


class StatelessFrameDecoder(ToyVideoDecoder):
    """Legal: temporal ratio 1, no temporal mixing at all, an empty cache."""

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(ToyDecoderConfig(temporal_ratio=1))

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError("need a frame")
        return input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        if output_temporal_size < 1:
            raise ValueError("need a frame")
        return output_temporal_size

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return ToyDecoderCache()

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        hidden = torch.einsum("oc,bcthw->bothw", self.latent_conv[:, :, -1], input)
        rgb = torch.einsum("oc,bcthw->bothw", self.to_rgb, torch.tanh(hidden))
        return torch.tanh(rgb).repeat_interleave(2, dim=3).repeat_interleave(2, dim=4)


class DropsHistoryAtSeams(ToyVideoDecoder):
    """Broken: forgets the convolution history between calls (a seam bug)."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if cache is not None:
            cache.latent_history = None
            cache.pixel_history = None
        return super().forward(input, autoregressive_index, cache)

"""A seam-dropping toy decoder (a broken promise of chunked decoding), shared by tests."""

from __future__ import annotations

from typing import Any

import torch

from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder, toy_spec


class SeamDropping(ToyVideoDecoder):
    """Forgets the causal history at every call, so chunk seams decode differently."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


def seam_dropping_spec(**fields: Any) -> Any:
    return toy_spec(name="seam-dropping", factory=lambda: SeamDropping(ToyDecoderConfig()), **fields)

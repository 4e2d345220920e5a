"""Seeded random weights for a Wan VAE state dict (either checkpoint layout's decoder side).

Tests and benchmarks cannot download trained weights. Default initialisation would do
for timing, but leaves every RMS-norm scale at 1 and every bias at 0, so a scale or bias
loaded into the wrong place would change nothing. These weights make every parameter
matter and keep activations of order one through the whole network, so parity and bf16
agreement figures mean something.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["randomize_decoder_weights_"]

#: Key prefixes of the decoder side in diffusers' layout; the encoder is left alone.
DECODER_PREFIXES = ("decoder.", "post_quant_conv.")


def randomize_decoder_weights_(module: nn.Module, seed: int) -> None:
    """Overwrite, in place, the decoder-side weights of ``module`` (an ``AutoencoderKLWan``):
    RMS-norm scales ``1 + 0.2 N(0, 1)``, biases ``0.1 N(0, 1)``, conv weights variance
    preserving (std ``1 / sqrt(fan_in)``), drawn in float32 from ``seed``. The benchmark's
    published figures were measured with exactly these weights.
    """
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in module.state_dict().items():
        if not key.startswith(DECODER_PREFIXES):
            continue
        noise = torch.randn(value.shape, generator=generator, dtype=torch.float32)
        if key.endswith(".gamma"):
            state[key] = 1.0 + 0.2 * noise
        elif key.endswith(".bias"):
            state[key] = 0.1 * noise
        else:  # conv weight [out, in, *kernel]
            state[key] = noise / math.sqrt(value[0].numel())
    module.load_state_dict(state, strict=False)

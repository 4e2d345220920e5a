"""diffusers' ``AutoencoderKLWan`` with seeded random weights: the independent reference
that the tests and the benchmark compare our decoders with (one builder for both).

Tests and benchmarks cannot download trained weights. Default initialisation would do
for timing, but leaves every RMS-norm scale at 1 and every bias at 0, so a scale or bias
loaded into the wrong place would change nothing. These weights make every parameter
matter and keep activations of order one through the whole network, so parity and bf16
agreement figures mean something. diffusers is a test and benchmark extra: it is
imported only when a model is built.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from reference_decoders.wan.config import WAN22_LATENTS_MEAN, WAN22_LATENTS_STD

__all__ = ["diffusers_arguments", "diffusers_vae", "randomize_decoder_weights_"]

#: Key prefixes of the decoder side in diffusers' layout; the encoder is left alone.
DECODER_PREFIXES = ("decoder.", "post_quant_conv.")

#: The published Wan 2.2 (TI2V-5B) VAE's encoder width (diffusers' ``base_dim``).
WAN22_ENCODER_BASE_DIM = 160


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


def diffusers_arguments(
    model: str = "wan2.1", *, encoder_base_dim: int | None = None, **decoder: Any
) -> dict[str, Any]:
    """``AutoencoderKLWan`` arguments for the decoder our config builds with the fields
    ``decoder`` (``base_dim``, ``num_res_blocks``; the rest at their published values).

    Wan 2.1: the fields are diffusers' own (one ``base_dim`` for encoder and decoder).
    Wan 2.2: written from the published TI2V-5B diffusers config (``is_residual``,
    ``patch_size`` 2, ``z_dim`` 48, 12 pixel-patch channels in and out, the 48 latent
    statistics), not from our config; our ``base_dim`` is its ``decoder_base_dim``, and
    the encoder, which the decoder ignores, is ``encoder_base_dim`` wide (published 160).
    """
    if model == "wan2.1":
        return dict(decoder)
    if model != "wan2.2":
        raise ValueError(f"model must be 'wan2.1' or 'wan2.2', got {model!r}")
    unknown = set(decoder) - {"base_dim", "num_res_blocks"}
    if unknown:
        raise ValueError(f"no diffusers argument for Wan 2.2 decoder fields {sorted(unknown)}")
    return dict(
        base_dim=WAN22_ENCODER_BASE_DIM if encoder_base_dim is None else encoder_base_dim,
        decoder_base_dim=decoder.get("base_dim", 256),
        z_dim=48,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=decoder.get("num_res_blocks", 2),
        temperal_downsample=[False, True, True],
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_temporal=4,
        scale_factor_spatial=16,
        latents_mean=list(WAN22_LATENTS_MEAN),
        latents_std=list(WAN22_LATENTS_STD),
    )


def diffusers_vae(
    model: str = "wan2.1",
    *,
    seed: int,
    weight_seed: int | None = None,
    encoder_base_dim: int | None = None,
    **decoder: Any,
) -> nn.Module:
    """diffusers' ``AutoencoderKLWan`` (eval mode, CPU, float32) for the decoder our config
    builds with the fields ``decoder`` (see :func:`diffusers_arguments`), its own init
    drawn under ``seed`` without touching the caller's random state, then the decoder
    side randomized by :func:`randomize_decoder_weights_` from ``weight_seed``
    (default ``seed``)."""
    from diffusers import AutoencoderKLWan

    arguments = diffusers_arguments(model, encoder_base_dim=encoder_base_dim, **decoder)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKLWan(**arguments).eval()
    randomize_decoder_weights_(vae, seed if weight_seed is None else weight_seed)
    return vae

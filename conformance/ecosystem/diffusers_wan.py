"""Specs for diffusers' ``AutoencoderKLWan`` decoded chunk by chunk through its feature cache.

diffusers decodes Wan latents frame by frame inside ``AutoencoderKLWan.decode()``; world
models that stream reuse its decoder with the feature-cache convention instead (see
:mod:`conformance.ecosystem.wan_feat_cache`). These specs certify that convention on
diffusers' own modules, with seeded random weights
(:func:`conformance.helpers.materialize_random`; no download), float32:

- ``wan21_small_cpu``, ``wan22_small_cpu``: the Wan 2.1 and Wan 2.2 (TI2V-5B)
  configurations at small widths on the CPU, through the adapter as intended (the first
  latent frame of a rollout decoded alone, as diffusers' own ``decode()`` does);
- ``wan21_first_chunk_as_is_small_cpu``, ``wan22_first_chunk_as_is_small_cpu``: the same
  decoders with every chunk handed over as it comes, as repositories that copy the
  convention often do. NOT CERTIFIED: a first chunk of several latent frames decodes to
  one pixel frame per latent frame instead of ``4 n - 3`` (Wan 2.1, silently) or raises
  (Wan 2.2), because the convention's first call is meant for one latent frame
  (``docs/ecosystem/diffusers.md``). No expected failures are declared for them: the
  Wan 2.2 failures are exceptions, which a declaration never covers, and a spec with
  ``max_chunk_frames=1`` would certify only one-frame calls;
- :func:`spec` for other widths and devices (``width="published"``: the released
  configurations, 96 wide for Wan 2.1 and 256 for the Wan 2.2 decoder).

diffusers is imported only when a decoder is built (``pip install diffusers``; the kit's
``test`` extra installs it).
"""

from __future__ import annotations

import importlib
from typing import Any

import torch
from torch import nn

from conformance.core.spec import DecoderSpec
from conformance.ecosystem.wan_feat_cache import WanFeatCacheDecoder, wrap
from conformance.helpers import materialize_random

__all__ = [
    "WEIGHT_SEED",
    "build",
    "diffusers_arguments",
    "spec",
    "wan21_first_chunk_as_is_small_cpu",
    "wan21_small_cpu",
    "wan22_first_chunk_as_is_small_cpu",
    "wan22_small_cpu",
]

WEIGHT_SEED = 2026
MODELS = ("wan2.1", "wan2.2")
#: Small decoder: base width 8 (stage widths 32, 32, 16, 8 for Wan 2.1; 32, 32, 32, 16, 8
#: for Wan 2.2) and one residual block per stage less than published.
SMALL = {"base_dim": 8, "num_res_blocks": 1}


def diffusers_arguments(model: str, width: str = "small") -> dict[str, Any]:
    """``AutoencoderKLWan`` keyword arguments: diffusers' defaults for Wan 2.1, the
    published TI2V-5B VAE configuration for Wan 2.2 (48 latent channels, residual up
    stages, 2x2 patches, 16x spatial), narrowed for ``width="small"``."""
    if width not in ("small", "published"):
        raise ValueError(f"width must be 'small' or 'published', got {width!r}")
    small = width == "small"
    if model == "wan2.1":
        return dict(SMALL) if small else {}
    if model != "wan2.2":
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    return dict(
        base_dim=SMALL["base_dim"] if small else 160,
        decoder_base_dim=SMALL["base_dim"] if small else 256,
        num_res_blocks=SMALL["num_res_blocks"] if small else 2,
        z_dim=48,
        is_residual=True,
        in_channels=12,
        out_channels=12,
        patch_size=2,
        scale_factor_spatial=16,
        # Pipelines normalize with these; decoding does not read them.
        latents_mean=[0.0] * 48,
        latents_std=[1.0] * 48,
    )


def build(
    model: str, *, width: str = "small", device: str = "cpu", dtype: torch.dtype = torch.float32,
    split_first_chunk: bool = True, layout: str = "BCTHW", seed: int = WEIGHT_SEED,
) -> WanFeatCacheDecoder:
    """diffusers' ``AutoencoderKLWan`` with seeded random weights, wrapped by the adapter."""
    # diffusers is optional: imported when a decoder is built, never at import.
    diffusers = importlib.import_module("diffusers")
    with torch.device("meta"):
        vae: nn.Module = diffusers.AutoencoderKLWan(**diffusers_arguments(model, width))
    materialize_random(vae, seed=seed, device=device, dtype=dtype)
    return wrap(
        vae.eval(),
        latent_channels=48 if model == "wan2.2" else 16,
        layout=layout,
        split_first_chunk=split_first_chunk,
    ).eval()


def spec(
    model: str, *, width: str = "small", device: str = "cpu", split_first_chunk: bool = True
) -> DecoderSpec:
    """The spec of diffusers' Wan decoder through the adapter (float32 on ``device``)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {model!r}")
    name = f"diffusers-{model}-vae-feat-cache-{width}-{device}"
    if not split_first_chunk:
        name += "-first-chunk-as-is"
    side = 2 if model == "wan2.2" else 4
    return DecoderSpec(
        name=name,
        factory=lambda: build(model, width=width, device=device, split_first_chunk=split_first_chunk),
        latent_channels=48 if model == "wan2.2" else 16,
        latent_size=(side, side),
        layout="BCTHW",
        output_channels=3,
        dtype=torch.float32,
        device=device,
    )


def wan21_small_cpu() -> DecoderSpec:
    return spec("wan2.1")


def wan22_small_cpu() -> DecoderSpec:
    return spec("wan2.2")


def wan21_first_chunk_as_is_small_cpu() -> DecoderSpec:
    return spec("wan2.1", split_first_chunk=False)


def wan22_first_chunk_as_is_small_cpu() -> DecoderSpec:
    return spec("wan2.2", split_first_chunk=False)

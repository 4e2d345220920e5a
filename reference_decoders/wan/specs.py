"""Conformance-kit specs for the bundled Wan VAE decoders (Wan 2.1 and Wan 2.2).

- :func:`small_cpu`: a narrow Wan 2.1 decoder with the full structure (both temporal
  upsamplers, the spatial-only one, attention, width-changing shortcuts), fp32 on the
  CPU, cheap enough for CI: a six-latent-frame decode at 4x4 takes a few tens of
  milliseconds on two cores.
- :func:`full_cuda`: the published Wan 2.1 architecture in bfloat16 on CUDA.
- :func:`wan22_small_cpu`, :func:`wan22_full_cuda`: the same two for Wan 2.2 (48
  latent channels, residual up stages, 2x2 output patches, 16x spatial).
- :func:`default`: what ``python -m conformance certify`` runs with no target.

Both use seeded random weights: conformance is about streaming behaviour, which does
not depend on trained weights, and none can be downloaded where the kit runs.
``DecoderSpec`` is imported inside the functions so this module imports without the kit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from reference_decoders.wan.config import Wan22VAEDecoderConfig, WanVAEDecoderConfig

if TYPE_CHECKING:
    from conformance import DecoderSpec

__all__ = [
    "default",
    "full_cuda",
    "small_cpu",
    "small_cpu_config",
    "spec_for",
    "wan22_full_cuda",
    "wan22_small_cpu",
    "wan22_small_cpu_config",
]


def small_cpu_config() -> WanVAEDecoderConfig:
    """The CI decoder: base width 8 (stage widths 32, 32, 16, 8) and two residual blocks
    per up stage instead of three; otherwise the published layout."""
    return WanVAEDecoderConfig(base_dim=8, num_res_blocks=1, device="cpu", dtype=torch.float32)


def spec_for(config: WanVAEDecoderConfig, *, name: str, latent_size: tuple[int, int]) -> DecoderSpec:
    """The kit's description of a Wan decoder built from ``config``.

    The layout is the streaming pipelines' ``[B, T, C, H, W]`` in and out; dtype and
    device are the ones the config resolves to, so a spec cannot disagree with the
    decoder it builds.
    """
    from conformance import DecoderSpec

    return DecoderSpec(
        name=name,
        factory=config.setup,
        latent_channels=config.latent_channels,
        latent_size=latent_size,
        layout="BTCHW",
        output_layout="BTCHW",
        output_channels=config.out_channels,
        dtype=config.resolved_dtype(),
        device=str(config.resolved_device()),
    )


def small_cpu() -> DecoderSpec:
    """Small-knob Wan decoder, float32 on the CPU, 2x2 latents (16x16 pixels): every stage,
    the attention block and every seam are exercised at a third of the cost of 4x4 (the
    calls are small enough that the cost follows the pixels), which lets the kit's long
    horizons run in a CPU certification of seconds."""
    return spec_for(small_cpu_config(), name="wan2.1-vae-small-cpu", latent_size=(2, 2))


def full_cuda() -> DecoderSpec:
    """The published Wan 2.1 decoder, bfloat16 on CUDA, 8x8 latents (64x64 pixels)."""
    config = WanVAEDecoderConfig(device="cuda", dtype=torch.bfloat16)
    return spec_for(config, name="wan2.1-vae-full-cuda-bf16", latent_size=(8, 8))


def wan22_small_cpu_config() -> Wan22VAEDecoderConfig:
    """The Wan 2.2 CI decoder: base width 8 (stage widths 32, 32, 32, 16, 8), two residual
    blocks per up stage instead of three, the published 48 latent channels and 2x2 patch."""
    return Wan22VAEDecoderConfig(base_dim=8, num_res_blocks=1, device="cpu", dtype=torch.float32)


def wan22_small_cpu() -> DecoderSpec:
    """Small-knob Wan 2.2 decoder, float32 on the CPU, 2x2 latents (32x32 pixels)."""
    return spec_for(wan22_small_cpu_config(), name="wan2.2-vae-small-cpu", latent_size=(2, 2))


def wan22_full_cuda() -> DecoderSpec:
    """The published Wan 2.2 (TI2V-5B) decoder, bfloat16 on CUDA, 4x4 latents (64x64 pixels)."""
    config = Wan22VAEDecoderConfig(device="cuda", dtype=torch.bfloat16)
    return spec_for(config, name="wan2.2-vae-full-cuda-bf16", latent_size=(4, 4))


def default() -> DecoderSpec:
    """:func:`full_cuda` where a GPU is available, :func:`small_cpu` otherwise."""
    return full_cuda() if torch.cuda.is_available() else small_cpu()

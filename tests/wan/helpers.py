"""Shared by the Wan decoder tests: chunked decoding, the diffusers reference, checkpoints.

The reference semantics is diffusers' ``AutoencoderKLWan`` decoding one latent frame at a
time (its ``decode`` does exactly that). The tests write seeded random weights into a
diffusers model, save them in both published layouts, and load them through the decoder's
own loader, so no downloaded weights are needed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from reference_decoders.wan import Wan22VAEDecoderConfig, WanVAEDecoder, WanVAEDecoderConfig
from reference_decoders.wan.random_weights import diffusers_arguments


#: Small but complete: both temporal upsamplers, the spatial-only one, attention,
#: width-changing shortcuts. Two residual blocks per up stage (the kit's CI config).
SMALL: dict[str, Any] = dict(base_dim=8, num_res_blocks=1)
#: Same, with the published three residual blocks per up stage: the official layout's
#: flat block indices depend on that count.
SMALL_PUBLISHED_BLOCKS: dict[str, Any] = dict(base_dim=8, num_res_blocks=2)

#: Wan 2.2 (fields of Wan22VAEDecoderConfig): stage widths 32, 32, 32, 16, 8 with the
#: published 48 latent channels, residual stages (equal-width and halving shortcuts,
#: with and without time), 2x2 patches; two residual blocks per up stage.
WAN22_SMALL: dict[str, Any] = dict(base_dim=8, num_res_blocks=1)
#: Same with the published three blocks per stage (the official nested indices).
WAN22_SMALL_PUBLISHED_BLOCKS: dict[str, Any] = dict(base_dim=8, num_res_blocks=2)


@dataclass(frozen=True)
class Version:
    """What the tests need to know about one published decoder (Wan 2.1 or Wan 2.2)."""

    name: str  # "wan2.1" / "wan2.2", also the test id
    config: type[WanVAEDecoderConfig]
    small: dict[str, Any]  # fields of ``config`` for the small CI decoder
    published_blocks: dict[str, Any]  # the same with three residual blocks per stage
    latent_channels: int
    spatial_ratio: int

    def decoder(self, **fields: Any) -> WanVAEDecoder:
        """The small decoder (``fields`` override), seeded random weights, CPU."""
        return self.config(**{"device": "cpu", **self.small, **fields}).setup()

    def diffusers_arguments(self, **architecture: Any) -> dict[str, Any]:
        """``AutoencoderKLWan`` arguments for our decoder with these fields (a narrow
        encoder for Wan 2.2: the decoder ignores it)."""
        return diffusers_arguments(self.name, encoder_base_dim=8, **architecture)

    def to_official(self, state: dict[str, torch.Tensor], num_res_blocks: int) -> dict[str, torch.Tensor]:
        """A diffusers state dict renamed to this version's official ``.pth`` layout."""
        if self.name == "wan2.2":
            return to_official_wan22_layout(state, num_res_blocks)
        return to_official_layout(state, num_res_blocks)

    def latents(self, *shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Normalized latents ``[B, T, C, h, w]`` ~ N(0, 1) with this version's C (give
        ``B, T, h, w``), drawn in float64 so every dtype sees the same values."""
        b, t, h, w = shape
        generator = torch.Generator().manual_seed(seed)
        return torch.randn(
            b, t, self.latent_channels, h, w, generator=generator, dtype=torch.float64
        ).to(dtype)

    def __str__(self) -> str:
        return self.name


WAN21 = Version("wan2.1", WanVAEDecoderConfig, SMALL, SMALL_PUBLISHED_BLOCKS, 16, 8)
WAN22 = Version("wan2.2", Wan22VAEDecoderConfig, WAN22_SMALL, WAN22_SMALL_PUBLISHED_BLOCKS, 48, 16)
#: Parametrize a test over both: ``@pytest.mark.parametrize("version", VERSIONS, ids=str)``.
VERSIONS = (WAN21, WAN22)


def decode_in_chunks(
    decoder: WanVAEDecoder, latents: torch.Tensor, plan: Sequence[int]
) -> torch.Tensor:
    """Decode ``latents`` ``[B, T, C, h, w]`` as one rollout cut into ``plan`` chunks."""
    assert sum(plan) == latents.shape[1], (plan, latents.shape)
    cache = decoder.initialize_autoregressive_cache()
    outputs, start = [], 0
    for index, length in enumerate(plan):
        chunk = latents[:, start : start + length]
        outputs.append(decoder(input=chunk, autoregressive_index=index, cache=cache))
        start += length
    return torch.cat(outputs, dim=1)


def compositions(total: int) -> Iterator[list[int]]:
    """Every chunk plan of ``total`` frames (2 ** (total - 1) of them)."""
    for cuts in range(2 ** (total - 1)):
        plan, length = [], 1
        for bit in range(total - 1):
            if cuts >> bit & 1:
                plan.append(length)
                length = 1
            else:
                length += 1
        yield plan + [length]


def random_plans(total: int, count: int, seed: int) -> list[list[int]]:
    """``count`` seeded random chunk plans of ``total`` frames."""
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        plan, left = [], total
        while left:
            length = rng.randint(1, left)
            plan.append(length)
            left -= length
        plans.append(plan)
    return plans


def diffusers_frame_by_frame(vae: Any, latents: torch.Tensor) -> torch.Tensor:
    """diffusers' reference decode of normalized latents ``[B, T, C, h, w]``, as ``[B, T', 3, H, W]``.

    Written out rather than calling ``vae.decode`` so the reference semantics is explicit:
    de-normalize with the published statistics (``z * std + mean``, what diffusers'
    pipelines do before ``decode``), the post-quant conv, then the decoder one latent
    frame at a time with ``first_chunk`` on the first, diffusers' own ``unpatchify``
    where the config has a ``patch_size`` (Wan 2.2), then the clamp to [-1, 1].
    """
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    dtype = next(vae.parameters()).dtype
    mean = torch.tensor(vae.config.latents_mean, dtype=dtype).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, dtype=dtype).view(1, -1, 1, 1, 1)
    z = latents.to(dtype).transpose(1, 2) * std + mean
    with torch.no_grad():
        vae.clear_cache()
        x = vae.post_quant_conv(z)
        frames = []
        for i in range(x.shape[2]):
            frames.append(
                vae.decoder(
                    x[:, :, i : i + 1],
                    feat_cache=vae._feat_map,
                    feat_idx=[0],
                    first_chunk=i == 0,
                )
            )
        vae.clear_cache()
    video = torch.cat(frames, dim=2)
    if vae.config.patch_size is not None:
        video = unpatchify(video, patch_size=vae.config.patch_size)
    return video.clamp(-1.0, 1.0).transpose(1, 2)


_OFFICIAL_RESNET_PARTS = {
    "norm1": "residual.0",
    "conv1": "residual.2",
    "norm2": "residual.3",
    "conv2": "residual.6",
    "conv_shortcut": "shortcut",
}


def _official_shared_names(key: str) -> str:
    """The renames Wan 2.1 and Wan 2.2 share (residual block parts, the 1x1 quant convs,
    the decoder's first conv and middle); each layout adds its own up-stage rules."""
    new = re.sub(
        r"\.resnets\.(\d+)\.(norm1|conv1|norm2|conv2|conv_shortcut)\.",
        lambda m: f".resnets.{m[1]}.{_OFFICIAL_RESNET_PARTS[m[2]]}.",
        key,
    )
    new = re.sub(r"^quant_conv\.", "conv1.", new)
    new = re.sub(r"^post_quant_conv\.", "conv2.", new)
    new = re.sub(r"^decoder\.conv_in\.", "decoder.conv1.", new)
    new = re.sub(r"^decoder\.mid_block\.resnets\.0\.", "decoder.middle.0.", new)
    new = re.sub(r"^decoder\.mid_block\.attentions\.0\.", "decoder.middle.1.", new)
    return re.sub(r"^decoder\.mid_block\.resnets\.1\.", "decoder.middle.2.", new)


def to_official_layout(
    state: dict[str, torch.Tensor], num_res_blocks: int
) -> dict[str, torch.Tensor]:
    """Rename a diffusers ``AutoencoderKLWan`` state dict to the ``Wan2.1_VAE.pth`` layout.

    Independent of the loader under test (it maps from the loader's own module names):
    written from the official module structure, where the decoder's up stages are one
    flat ``upsamples`` list of ``num_res_blocks + 1`` residual blocks and an upsampler
    per stage, residual blocks are ``nn.Sequential``s, the middle is ``[res, attn, res]``
    and the head is ``[norm, SiLU, conv]``. Encoder keys are kept (renamed only where
    shared rules apply); the loader ignores them.
    """
    per_stage = num_res_blocks + 2
    official = {}
    for key, value in state.items():
        new = _official_shared_names(key)
        new = re.sub(
            r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.",
            lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + int(m[2])}.",
            new,
        )
        new = re.sub(
            r"^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.",
            lambda m: f"decoder.upsamples.{int(m[1]) * per_stage + num_res_blocks + 1}.",
            new,
        )
        new = re.sub(r"^decoder\.norm_out\.", "decoder.head.0.", new)
        new = re.sub(r"^decoder\.conv_out\.", "decoder.head.2.", new)
        assert new not in official, f"two keys renamed to {new}"
        official[new] = value
    return official


def to_official_wan22_layout(
    state: dict[str, torch.Tensor], num_res_blocks: int
) -> dict[str, torch.Tensor]:
    """Rename a diffusers Wan 2.2 ``AutoencoderKLWan`` state dict to the ``Wan2.2_VAE.pth`` layout.

    Written from the official ``wan/modules/vae2_2.py`` structure, independent of the
    loader: ``Decoder3d.upsamples`` holds one ``Up_ResidualBlock`` per stage, whose own
    ``upsamples`` list is its ``num_res_blocks + 1`` residual blocks then its
    ``Resample``; the shortcut (``avg_shortcut``) has no weights. Residual blocks,
    middle and head are as in Wan 2.1. Encoder keys are kept (the loader ignores them).
    """
    official = {}
    for key, value in state.items():
        new = _official_shared_names(key)
        new = re.sub(
            r"^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.", r"decoder.upsamples.\1.upsamples.\2.", new
        )
        new = re.sub(
            r"^decoder\.up_blocks\.(\d+)\.upsampler\.",
            lambda m: f"decoder.upsamples.{m[1]}.upsamples.{num_res_blocks + 1}.",
            new,
        )
        new = re.sub(r"^decoder\.norm_out\.", "decoder.head.0.", new)
        new = re.sub(r"^decoder\.conv_out\.", "decoder.head.2.", new)
        assert new not in official, f"two keys renamed to {new}"
        official[new] = value
    return official

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
from typing import Any

import torch

from reference_decoders.wan import WanVAEDecoder


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


def diffusers_wan22_architecture(
    base_dim: int = 256, num_res_blocks: int = 2, encoder_base_dim: int = 8
) -> dict[str, Any]:
    """``AutoencoderKLWan`` arguments of the Wan 2.2 (TI2V-5B) VAE with our decoder's
    ``base_dim`` (their ``decoder_base_dim``) and block count.

    Written from the published diffusers config (``is_residual``, ``patch_size`` 2,
    ``z_dim`` 48, 12 pixel-patch channels in and out, the 48 latent statistics), not
    from our config. The encoder is kept narrow (``base_dim`` 8): the decoder ignores it.
    """
    from reference_decoders.wan.config import WAN22_LATENTS_MEAN, WAN22_LATENTS_STD

    return dict(
        base_dim=encoder_base_dim,
        decoder_base_dim=base_dim,
        z_dim=48,
        dim_mult=[1, 2, 4, 4],
        num_res_blocks=num_res_blocks,
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

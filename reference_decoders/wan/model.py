"""The Wan 2.1 video VAE decoder network, written for streaming.

Read top to bottom: the stream state, the building blocks (causal convolution, RMS norm,
residual block, spatial attention, upsampler), then the assembled network.

The published decoders (Wan-Video/Wan2.1 ``wan/modules/vae.py``; diffusers'
``AutoencoderKLWan``) decode one latent frame at a time, with a per-layer feature
cache; that frame-by-frame decode defines the output. This module computes the same
function for chunks of any length:

- Every temporal causal convolution (kernel 3 in time) sees its input stream with two
  zero frames in front. Feeding it chunk by chunk with the last two input frames
  carried over is the same convolution, so each such conv keeps exactly two frames of
  history in :class:`StreamState`.
- A temporal upsampler lets the first frame of the rollout through unchanged (no time
  doubling) and doubles every later frame with a causal ``time_conv`` whose history
  starts *after* that first frame. Over a whole rollout its output is
  ``[x0] + interleave(time_conv(zero_pad(x[1:])))``. The published code implements this
  by marking its first call; run on a first chunk of several frames it would skip time
  doubling for all of them. Here the rule is applied per frame, so the first chunk may
  have any length.
- Everything else (norms, activations, the attention, spatial upsampling) acts on one
  frame at a time, so it does not care how frames are grouped into chunks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from reference_decoders.wan.config import WanVAEDecoderConfig

__all__ = [
    "CausalConv3d",
    "MidBlock",
    "RMSNorm",
    "ResidualBlock",
    "SpatialAttention",
    "StreamState",
    "UpStage",
    "Upsampler",
    "WanVAEDecoderNetwork",
]

# Frames of history a kernel-3 temporal causal convolution needs.
HISTORY_FRAMES = 2


@dataclass
class StreamState:
    """What the network reads and replaces while decoding one chunk.

    ``history[slot]`` is the last ``HISTORY_FRAMES`` frames of the input of the causal
    convolution numbered ``slot``, or ``None`` before that convolution has seen a frame
    (it then pads with zeros, which is what the published decoder does at rollout
    start). Entries are replaced by new tensors, never written into, so a tensor handed
    out earlier (or held by a copy of the cache) is never changed.

    ``first_chunk`` is true for the first chunk of a rollout: its first frame is the
    causal first frame that temporal upsamplers pass through without doubling.
    """

    history: list[torch.Tensor | None]
    first_chunk: bool


class CausalConv3d(nn.Conv3d):
    """3-D convolution, causal in time, "same"-padded in space.

    The temporal padding of ``kernel_t - 1`` frames sits entirely in the past and comes
    from the stream history (zeros at rollout start), so each input frame yields one
    output frame and never sees a future frame.

    The network numbers its history-carrying convolutions after construction
    (``slot``); the slot indexes :attr:`StreamState.history`.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: tuple[int, int, int]
    ) -> None:
        kernel_t, kernel_h, kernel_w = kernel_size
        if kernel_t - 1 != HISTORY_FRAMES:
            raise ValueError(f"temporal kernel must be {HISTORY_FRAMES + 1}, got {kernel_t}")
        super().__init__(
            in_channels, out_channels, kernel_size, padding=(0, kernel_h // 2, kernel_w // 2)
        )
        self.slot = -1

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:  # type: ignore[override]
        past = state.history[self.slot]
        if past is None:
            padded = F.pad(x, (0, 0, 0, 0, HISTORY_FRAMES, 0))
        else:
            padded = torch.cat([past, x], dim=2)
        # clone: a view would pin the whole chunk in memory for the next call.
        state.history[self.slot] = padded[:, :, -HISTORY_FRAMES:].clone()
        return super().forward(padded)


class RMSNorm(nn.Module):
    """RMS norm over channels (dim 1), learned scale, no bias.

    ``gamma`` keeps the published shape (``[C, 1, 1, 1]`` for video tensors,
    ``[C, 1, 1]`` for per-frame images) so checkpoints load as they are. Low-precision
    inputs are normalized in float32, as diffusers does, and cast back.
    """

    def __init__(self, channels: int, spatial_dims: int) -> None:
        super().__init__()
        self.scale = channels**0.5
        self.gamma = nn.Parameter(torch.ones(channels, *([1] * spatial_dims)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low_precision = x.dtype in (torch.float16, torch.bfloat16)
        x32 = x.float() if low_precision else x
        # F.normalize(x, dim=1), spelled out: its vector_norm over a non-innermost dim
        # is orders of magnitude slower on CPU; this differs only in summation order.
        norm = x32.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        return (x32 / norm).to(x.dtype) * self.scale * self.gamma


class ResidualBlock(nn.Module):
    """RMS norm, SiLU, causal 3x3x3 conv, twice, plus a 1x1x1 shortcut if widths differ."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm1 = RMSNorm(in_channels, spatial_dims=3)
        self.conv1 = CausalConv3d(in_channels, out_channels, (3, 3, 3))
        self.norm2 = RMSNorm(out_channels, spatial_dims=3)
        self.conv2 = CausalConv3d(out_channels, out_channels, (3, 3, 3))
        self.shortcut: nn.Module = (
            nn.Conv3d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        )

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        residual = self.shortcut(x)
        x = self.conv1(F.silu(self.norm1(x)), state)
        x = self.conv2(F.silu(self.norm2(x)), state)
        return x + residual


def _frames(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B*T, C, H, W]``, for layers that act on single frames."""
    b, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(b * t, c, h, w)


def _video(frames: torch.Tensor, batch: int) -> torch.Tensor:
    """Inverse of :func:`_frames`."""
    bt, c, h, w = frames.shape
    return frames.view(batch, bt // batch, c, h, w).transpose(1, 2).contiguous()


class SpatialAttention(nn.Module):
    """Single-head self-attention over the pixels of each frame (not across frames)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = RMSNorm(channels, spatial_dims=2)
        self.to_qkv = nn.Conv2d(channels, channels * 3, 1)
        self.proj = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, _, height, width = x.shape
        frames = self.to_qkv(self.norm(_frames(x)))  # [B*T, 3C, H, W]
        tokens = frames.flatten(2).transpose(1, 2).unsqueeze(1).contiguous()  # [B*T, 1, HW, 3C]
        q, k, v = tokens.chunk(3, dim=-1)
        attended = F.scaled_dot_product_attention(q, k, v)  # [B*T, 1, HW, C]
        attended = attended.squeeze(1).transpose(1, 2).reshape(-1, channels, height, width)
        return x + _video(self.proj(attended), batch)


class Upsampler(nn.Module):
    """2x spatial upsampling (nearest, then a 3x3 conv halving channels), 2x in time if asked.

    Time doubling: ``time_conv`` maps each frame to two frames' worth of channels, which
    are interleaved into consecutive frames. The rollout's first frame is exempt (see the
    module docstring), which is why the first chunk yields ``1 + 2(n - 1)`` frames.
    """

    def __init__(self, channels: int, temporal: bool) -> None:
        super().__init__()
        self.time_conv = CausalConv3d(channels, channels * 2, (3, 1, 1)) if temporal else None
        self.conv = nn.Conv2d(channels, channels // 2, 3, padding=1)

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        if self.time_conv is not None:
            x = _double_frames(self.time_conv, x, state)
        frames = F.interpolate(_frames(x), scale_factor=2.0, mode="nearest-exact")
        return _video(self.conv(frames), x.shape[0])


def _double_frames(time_conv: CausalConv3d, x: torch.Tensor, state: StreamState) -> torch.Tensor:
    """Each frame -> two frames, except the rollout's first frame, which passes as it is."""
    first = None
    if state.first_chunk:
        first, x = x[:, :, :1], x[:, :, 1:]
        if x.shape[2] == 0:
            return first
    doubled = time_conv(x, state)  # [B, 2C, T, H, W], first C = earlier frame
    b, c2, t, h, w = doubled.shape
    doubled = doubled.view(b, 2, c2 // 2, t, h, w).permute(0, 2, 3, 1, 4, 5)
    doubled = doubled.reshape(b, c2 // 2, t * 2, h, w)
    return doubled if first is None else torch.cat([first, doubled], dim=2)


class UpStage(nn.Module):
    """Residual blocks at one resolution, then (except in the last stage) an upsampler."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        upsample: Literal["2d", "3d"] | None,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_blocks
        self.resnets = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(widths, widths[1:]))
        self.upsampler = (
            Upsampler(out_channels, temporal=upsample == "3d") if upsample is not None else None
        )

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        for block in self.resnets:
            x = block(x, state)
        if self.upsampler is not None:
            x = self.upsampler(x, state)
        return x


class MidBlock(nn.Module):
    """Residual block, spatial attention, residual block, at the latent resolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.resnets = nn.ModuleList([ResidualBlock(channels, channels) for _ in range(2)])
        self.attention = SpatialAttention(channels)

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        x = self.resnets[0](x, state)
        x = self.attention(x)
        return self.resnets[1](x, state)


class WanVAEDecoderNetwork(nn.Module):
    """Normalized latents ``[B, C, T, h, w]`` to pixels ``[B, 3, T', 8h, 8w]`` in [-1, 1].

    De-normalize latents, 1x1x1 post-quant conv, causal conv in, mid block, up stages,
    RMS norm + SiLU + causal conv out, clamp. With the default config this is the
    published Wan 2.1 decoder (widths 384 -> 384 -> 192 -> 96).
    """

    latents_mean: torch.Tensor
    latents_std: torch.Tensor

    def __init__(self, config: WanVAEDecoderConfig) -> None:
        super().__init__()
        config.validate()
        mults = tuple(reversed(config.dim_mult))
        widths = [config.base_dim * m for m in (mults[0], *mults)]

        mean = torch.tensor(config.latents_mean, dtype=torch.float64).view(1, -1, 1, 1, 1)
        std = torch.tensor(config.latents_std, dtype=torch.float64).view(1, -1, 1, 1, 1)
        # Constants of the architecture, not weights: kept out of the state dict. Held in
        # float64 so that casting to the compute dtype rounds the published values once,
        # as building them in that dtype would.
        self.register_buffer("latents_mean", mean, persistent=False)
        self.register_buffer("latents_std", std, persistent=False)

        z = config.latent_channels
        self.post_quant_conv = nn.Conv3d(z, z, 1)
        self.conv_in = CausalConv3d(z, widths[0], (3, 3, 3))
        self.mid = MidBlock(widths[0])

        stages = []
        for i in range(len(mults)):
            # Every upsampler halves the width, so later stages start at half the width.
            in_channels = widths[i] if i == 0 else widths[i] // 2
            upsample: Literal["2d", "3d"] | None = None
            if i < config.num_upsamplers:
                upsample = "3d" if config.temporal_upsample[i] else "2d"
            stages.append(UpStage(in_channels, widths[i + 1], config.num_res_blocks + 1, upsample))
        self.up_stages = nn.ModuleList(stages)

        self.norm_out = RMSNorm(widths[-1], spatial_dims=3)
        self.conv_out = CausalConv3d(widths[-1], config.out_channels, (3, 3, 3))

        causal_convs = [m for m in self.modules() if isinstance(m, CausalConv3d)]
        for slot, conv in enumerate(causal_convs):
            conv.slot = slot
        self.num_history_slots = len(causal_convs)

    def forward(self, latents: torch.Tensor, state: StreamState) -> torch.Tensor:
        dtype = latents.dtype
        z = latents * self.latents_std.to(dtype) + self.latents_mean.to(dtype)
        x = self.post_quant_conv(z)
        x = self.conv_in(x, state)
        x = self.mid(x, state)
        for stage in self.up_stages:
            x = stage(x, state)
        x = self.conv_out(F.silu(self.norm_out(x)), state)
        return x.clamp(-1.0, 1.0)

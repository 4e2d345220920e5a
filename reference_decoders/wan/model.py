"""The Wan video VAE decoder network (Wan 2.1 and Wan 2.2), written for streaming.

Read top to bottom: the stream state, the building blocks (causal convolution, RMS norm,
residual block, spatial attention, upsampler, the Wan 2.2 stage shortcut), then the
assembled network.

The published decoders (Wan-Video/Wan2.1 ``wan/modules/vae.py``, Wan-Video/Wan2.2
``wan/modules/vae2_2.py``; diffusers' ``AutoencoderKLWan``) decode one latent frame at a
time, with a per-layer feature cache; that frame-by-frame decode defines the output.
This module computes the same function for chunks of any length:

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
- Wan 2.2's stage shortcut (:class:`SpreadShortcut`) turns each input frame into two
  frames where its stage doubles time, and keeps only the second for the rollout's
  first frame. That too is applied to the first frame, not to the first call.
- Everything else (norms, activations, the attention, spatial upsampling, the output
  patch) acts on one frame at a time, so it does not care how frames are grouped into
  chunks.

The two versions differ only in the up stages and the head (see
:class:`~reference_decoders.wan.config.WanVAEDecoderConfig`): Wan 2.2's upsamplers keep
the width and add :class:`SpreadShortcut` around each stage, and its last convolution
emits 2x2 pixel patches.
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
    "SpreadShortcut",
    "StreamState",
    "UpStage",
    "Upsampler",
    "WanVAEDecoderNetwork",
    "unpatchify",
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
    """2x spatial upsampling (nearest, then a 3x3 conv to ``out_channels``), 2x in time if asked.

    Wan 2.1's upsamplers halve the channels, Wan 2.2's keep them. Time doubling:
    ``time_conv`` maps each frame to two frames' worth of channels, which are
    interleaved into consecutive frames. The rollout's first frame is exempt (see the
    module docstring), which is why the first chunk yields ``1 + 2(n - 1)`` frames.
    """

    def __init__(self, channels: int, temporal: bool, out_channels: int) -> None:
        super().__init__()
        self.time_conv = CausalConv3d(channels, channels * 2, (3, 1, 1)) if temporal else None
        self.conv = nn.Conv2d(channels, out_channels, 3, padding=1)

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


class SpreadShortcut(nn.Module):
    """Wan 2.2's parameter-free stage shortcut: the stage's input, upsampled by spreading
    channels over the new positions (diffusers' and the official ``DupUp3D``).

    Each input pixel becomes a ``2 x 2`` block of pixels, and, where the stage doubles
    time, each frame two frames: ``positions`` (4 or 8) new values per old one. Output
    channel ``o`` at position ``p`` (time, row, column, in that order of significance)
    reads input channel ``(o * positions + p) // repeats``, where ``repeats = out *
    positions / in``: with equal widths every position copies the same channel; with
    half the width, rows (or frames) come from neighbouring channels, as in a pixel
    shuffle. For the rollout's first frame only its second time position is kept,
    matching the upsampler, which passes that frame through once.
    """

    def __init__(self, in_channels: int, out_channels: int, temporal: bool) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.time_factor = 2 if temporal else 1
        positions = self.time_factor * 4
        if (out_channels * positions) % in_channels:
            raise ValueError(
                f"cannot spread {in_channels} channels over {out_channels} x {positions} positions"
            )
        self.repeats = out_channels * positions // in_channels

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        b, _, t, h, w = x.shape
        ft = self.time_factor
        spread = x.repeat_interleave(self.repeats, dim=1)
        # channel (o, time, row, col) -> output frame t*ft + time, pixel (2h + row, 2w + col)
        spread = spread.view(b, self.out_channels, ft, 2, 2, t, h, w)
        spread = spread.permute(0, 1, 5, 2, 6, 3, 7, 4)
        spread = spread.reshape(b, self.out_channels, t * ft, 2 * h, 2 * w)
        if state.first_chunk and ft > 1:
            spread = spread[:, :, ft - 1 :]  # the rollout's first frame: its last copy only
        return spread


class UpStage(nn.Module):
    """Residual blocks at one resolution, then (except in the last stage) an upsampler.

    Wan 2.2 (``residual``): the upsampler keeps the width, and a :class:`SpreadShortcut`
    of the stage's input is added to the stage's output.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        num_blocks: int,
        upsample: Literal["2d", "3d"] | None,
        residual: bool = False,
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * num_blocks
        self.resnets = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(widths, widths[1:]))
        self.upsampler = None
        self.shortcut = None
        if upsample is not None:
            temporal = upsample == "3d"
            upsampled_width = out_channels if residual else out_channels // 2
            self.upsampler = Upsampler(out_channels, temporal, upsampled_width)
            if residual:
                self.shortcut = SpreadShortcut(in_channels, out_channels, temporal)

    def forward(self, x: torch.Tensor, state: StreamState) -> torch.Tensor:
        shortcut = self.shortcut(x, state) if self.shortcut is not None else None
        for block in self.resnets:
            x = block(x, state)
        if self.upsampler is not None:
            x = self.upsampler(x, state)
        return x if shortcut is None else x + shortcut


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


def unpatchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C * p * p, T, H, W]`` -> ``[B, C, T, p * H, p * W]``: each group of ``p * p``
    channels becomes a ``p x p`` patch of pixels.

    Channel ``c * p * p + column * p + row`` of a group goes to pixel row ``p * y + row``,
    column ``p * x + column``: the published Wan 2.2 order (einops ``b (c r q) f h w ->
    b c f (h q) (w r)``), where the column index varies slower than the row index.
    """
    if patch_size == 1:
        return x
    b, channels, t, h, w = x.shape
    p = patch_size
    x = x.view(b, channels // (p * p), p, p, t, h, w)  # (c, column, row)
    return x.permute(0, 1, 4, 5, 3, 6, 2).reshape(b, channels // (p * p), t, h * p, w * p)


class WanVAEDecoderNetwork(nn.Module):
    """Normalized latents ``[B, C, T, h, w]`` to pixels ``[B, 3, T', s*h, s*w]`` in [-1, 1].

    De-normalize latents, 1x1x1 post-quant conv, causal conv in, mid block, up stages,
    RMS norm + SiLU + causal conv out, unpatchify, clamp. ``s`` is the config's
    ``spatial_compression_ratio``. With the default config this is the published Wan 2.1
    decoder (widths 384 -> 384 -> 192 -> 96, s = 8); with
    :class:`~reference_decoders.wan.config.Wan22VAEDecoderConfig` the Wan 2.2 one
    (widths 1024 -> 1024 -> 1024 -> 512 -> 256, 2x2 patches, s = 16).
    """

    latents_mean: torch.Tensor
    latents_std: torch.Tensor

    def __init__(self, config: WanVAEDecoderConfig) -> None:
        super().__init__()
        config.validate()
        mults = tuple(reversed(config.dim_mult))
        widths = [config.base_dim * m for m in (mults[0], *mults)]
        self.patch_size = config.patch_size

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
            # A Wan 2.1 upsampler halves the width, so later stages start at half the
            # width; a Wan 2.2 one keeps it.
            in_channels = widths[i] if i == 0 or config.residual_up_stages else widths[i] // 2
            upsample: Literal["2d", "3d"] | None = None
            if i < config.num_upsamplers:
                upsample = "3d" if config.temporal_upsample[i] else "2d"
            stages.append(
                UpStage(
                    in_channels,
                    widths[i + 1],
                    config.num_res_blocks + 1,
                    upsample,
                    residual=config.residual_up_stages,
                )
            )
        self.up_stages = nn.ModuleList(stages)

        self.norm_out = RMSNorm(widths[-1], spatial_dims=3)
        self.conv_out = CausalConv3d(
            widths[-1], config.out_channels * config.patch_size**2, (3, 3, 3)
        )

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
        return unpatchify(x, self.patch_size).clamp(-1.0, 1.0)

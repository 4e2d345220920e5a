"""The Wan decoder network's function, executed the fast way on CUDA.

:class:`FastWanNetwork` computes what
:class:`~reference_decoders.wan.model.WanVAEDecoderNetwork` computes, with that
network's own weights (read from it on every call, so loading new weights just works),
up to rounding: fused kernels round once where the eager modules round after every op.
It is a separate executor rather than a mode of the modules so that ``model.py`` stays
the plain statement of the architecture. What it changes, and why (measurements in
``benchmarks/NOTES.md``):

- Channels-last everywhere: one batch element's activation is ``[F, H, W, C]`` dense,
  which is the layout cuDNN's fast kernels want (no NCHW<->NHWC transposes) and makes
  the channel norm a row reduction.
- A causal conv's input buffer is its two history frames followed by the chunk
  (``[T + 2, H, W, C]``), or those frames stacked three at a time along channels
  (``[T, H, W, 3C]``), the input of the equivalent 2-D conv, which cuDNN runs up to 2x
  faster for some widths (:mod:`.layout`). The fused norm kernel writes the chunk
  straight into that buffer: no ``torch.cat([history, x])``.
- Conv biases are folded into the next fused kernel (norm or residual add).
- The upsamplers' nearest-2x + 3x3 conv runs as one 2x2 conv with four output phases on
  the low-resolution input (:func:`.weights.subpixel_weight`), then a gather.
- A chunk is decoded in tiles of ``tile_latent_frames`` latent frames carrying the
  history, which gives the same frames (the network is chunk-invariant) with memory
  bounded by the tile instead of the chunk.
- Optionally (``implicit``, the config's ``triton_convs``) a 3x3x3 conv runs as the
  Triton implicit GEMM of :mod:`.implicit_gemm`, which reads history and chunk where
  they are and adds bias and residual itself; cuDNN is the default because it measured
  faster on every shape (:func:`.layout.use_implicit_gemm`).
- Wan 2.2: the residual stages' shortcut is the same channel spreading on
  channels-last frames (one ``repeat_interleave`` and a permute), added in place after
  the upsampler; the output patches are unpatchified on the way into the output.

History tensors keep the eager cache's logical shape ``[B, C, 2, H, W]`` (in
``channels_last_3d`` memory), so caches made by either path are interchangeable. They
are new tensors every conv run, never written once made: a failed call leaves the cache
as it was, and a history tensor a forked cache shares is never changed under it. The next
tile reads its predecessor's tensor directly (cuDNN convs copy it into their input
buffer; the implicit GEMM reads it in place). With one batch element the cache's tensor
is a view of that per-element tensor; with several, each element's is copied in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from reference_decoders.wan.fast import implicit_gemm, kernels
from reference_decoders.wan.fast.layout import use_implicit_gemm, use_stacked_conv
from reference_decoders.wan.fast.weights import (
    pointwise_weight,
    stacked_conv_weight,
    subpixel_weight,
    time_conv_weight,
)
from reference_decoders.wan.model import (
    HISTORY_FRAMES,
    CausalConv3d,
    ResidualBlock,
    RMSNorm,
    SpatialAttention,
    SpreadShortcut,
    Upsampler,
    UpStage,
    WanVAEDecoderNetwork,
    unpatchify,
)

__all__ = ["FastWanNetwork"]


def _frames_of(nchw: torch.Tensor) -> torch.Tensor:
    """``[N, C, H, W]`` -> ``[N, H, W, C]`` dense (free when it is channels-last)."""
    return nchw.permute(0, 2, 3, 1).contiguous()


@dataclass
class _Tile:
    """History bookkeeping of one batch element through one call's tiles.

    ``read[slot]`` is the dense ``[2, H, W, C]`` history the next use of a conv reads
    (None: zeros, the rollout's start): first the cache's, then the fresh tensor each
    conv run replaces it with. Fresh tensors are never written after they are set, so a
    cache's tensors are never modified and a tile can read the history its predecessor
    wrote without a copy.
    """

    first: bool  # this tile holds the rollout's causal first frame
    read: list[torch.Tensor | None]

    def history(self, slot: int) -> torch.Tensor | None:
        return self.read[slot]

    def set_history(self, slot: int, frames: torch.Tensor) -> None:
        self.read[slot] = frames


def _element_history(history: torch.Tensor | None, index: int) -> torch.Tensor | None:
    """Batch element ``index`` of a cache history ``[B, C, 2, H, W]`` as dense
    ``[2, H, W, C]`` (a view when the cache's tensor is channels_last_3d)."""
    if history is None:
        return None
    return history[index].permute(1, 2, 3, 0).contiguous()


def _store_history(
    written: torch.Tensor | None, frames: torch.Tensor, index: int, batch: int
) -> torch.Tensor:
    """Put batch element ``index``'s new history ``[2, H, W, C]`` into the call's
    ``[B, C, 2, H, W]`` (channels_last_3d) history tensor; with one element, the
    tensor is a view of ``frames`` itself."""
    if batch == 1:
        return frames.unsqueeze(0).permute(0, 4, 1, 2, 3)
    if written is None:
        _, h, w, c = frames.shape
        written = frames.new_empty(batch, HISTORY_FRAMES, h, w, c).permute(0, 4, 1, 2, 3)
    written[index].permute(1, 2, 3, 0).copy_(frames)
    return written


@functools.cache
def _use_implicit_gemm_on(device: torch.device, dtype: torch.dtype) -> bool:
    """The implicit-GEMM conv runs in half precision on Hopper GPUs, where it was tuned
    (asked once per conv run, so cached)."""
    if device.type != "cuda" or dtype not in (torch.bfloat16, torch.float16):
        return False
    return torch.cuda.get_device_capability(device)[0] == 9


class FastWanNetwork:
    """Decodes chunks with a :class:`WanVAEDecoderNetwork`'s weights, fast (see module doc).

    Args:
        network: the eager network; its parameters are read, never modified.
        tile_latent_frames: at most this many latent frames go through the network at
            once; longer chunks are decoded tile by tile.
        stacked: ``(in_channels, frames) -> bool``, whether a cuDNN 3x3x3 conv runs as
            a time-stacked 2-D conv; :func:`.layout.use_stacked_conv` by default.
        implicit: ``(in_channels, out_channels, frames) -> bool``, whether a 3x3x3 conv
            runs as the Triton implicit GEMM (:mod:`.implicit_gemm`) instead of cuDNN. By
            default :func:`.layout.use_implicit_gemm`, in half precision on Hopper GPUs
            only; a rule given here applies everywhere (tests run it in the interpreter).
    """

    def __init__(
        self,
        network: WanVAEDecoderNetwork,
        tile_latent_frames: int = 1,
        stacked: Callable[[int, int], bool] | None = None,
        implicit: Callable[[int, int, int], bool] | None = None,
    ) -> None:
        if tile_latent_frames < 1:
            raise ValueError(f"tile_latent_frames must be >= 1, got {tile_latent_frames}")
        self.network = network
        self.tile_latent_frames = tile_latent_frames
        self.stacked = stacked or use_stacked_conv
        self.implicit = implicit
        self._packed: dict[tuple[int, str], torch.Tensor] = {}
        self._packed_for: tuple[tuple[int, int], ...] = ()

    def _stages(self) -> list[UpStage]:
        return cast(list[UpStage], list(self.network.up_stages))

    # ----------------------------------------------------------------------- weights

    def _refresh_weights(self) -> None:
        """Forget repacked weights once any parameter was replaced or changed in place."""
        key = tuple((p.data_ptr(), p._version) for p in self.network.parameters())
        if key != self._packed_for:
            self._packed.clear()
            self._packed_for = key

    def _packed_weight(self, module: nn.Module, form: str) -> torch.Tensor:
        """``module``'s weight rearranged for one way of running it (cached)."""
        key = (id(module), form)
        packed = self._packed.get(key)
        if packed is not None:
            return packed
        if isinstance(module, RMSNorm):  # the norm's scale, flat
            packed = module.gamma.detach().reshape(-1).contiguous()
        else:
            w = cast(torch.Tensor, module.weight).detach()
            if form == "conv3d":
                packed = w.contiguous(memory_format=torch.channels_last_3d)
            elif form == "stacked":
                packed = stacked_conv_weight(w)
            elif form == "time":
                packed = time_conv_weight(w)
            elif form == "pointwise":
                packed = pointwise_weight(w)
            elif form == "implicit":
                packed = implicit_gemm.pack_weight(w)
            elif form == "subpixel":
                packed = subpixel_weight(w)
            else:  # pragma: no cover - a typo in this module
                raise ValueError(f"unknown weight form {form!r}")
        self._packed[key] = packed
        return packed

    # ----------------------------------------------------------------------- decoding

    @torch.no_grad()
    def decode(
        self, latents: torch.Tensor, history: list[torch.Tensor | None], first_chunk: bool
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Normalized latents ``[B, T, C, h, w]`` (the network's dtype and device) ->
        pixels ``[B, T', 3, H, W]`` in [-1, 1], and the new history (one entry per slot;
        ``history`` itself is not modified)."""
        self._refresh_weights()
        net = self.network
        batch, frames = latents.shape[:2]
        stages = [s.upsampler for s in self._stages() if s.upsampler is not None]
        ratio_s = 2 ** len(stages) * net.patch_size
        ratio_t = 2 ** sum(up.time_conv is not None for up in stages)
        out_frames = 1 + ratio_t * (frames - 1) if first_chunk else ratio_t * frames
        height, width = latents.shape[3] * ratio_s, latents.shape[4] * ratio_s
        channels = net.conv_out.out_channels // net.patch_size**2
        out = latents.new_empty(batch, out_frames, channels, height, width)
        written: list[torch.Tensor | None] = [None] * len(history)
        for b in range(batch):
            before = [_element_history(h, b) for h in history]
            tile = _Tile(first=first_chunk, read=list(before))
            produced = 0
            for start in range(0, frames, self.tile_latent_frames):
                chunk = latents[b, start : start + self.tile_latent_frames]
                chunk = chunk.permute(0, 2, 3, 1).contiguous()  # [t, h, w, C]
                produced += self._decode_tile(chunk, tile, out[b, produced:])
                tile.first = False
            if produced != out_frames:  # pragma: no cover - would be a bug here
                raise RuntimeError(f"decoded {produced} frames, expected {out_frames}")
            for slot, (new, old) in enumerate(zip(tile.read, before)):
                if new is None or new is old:
                    continue  # a conv this call never ran (a lone first frame skips the time convs)
                written[slot] = _store_history(written[slot], new, b, batch)
        return out, [new if new is not None else old for new, old in zip(written, history)]

    def _decode_tile(
        self, latents: torch.Tensor, tile: _Tile, out: torch.Tensor
    ) -> int:
        """Decode ``latents [t, h, w, C]`` into the first frames of ``out [T', 3, H, W]``;
        returns how many frames it wrote."""
        net = self.network
        dtype = latents.dtype
        z = latents * net.latents_std.reshape(-1).to(dtype) + net.latents_mean.reshape(-1).to(dtype)
        post_quant = self._packed_weight(net.post_quant_conv, "pointwise")
        x = F.linear(z, post_quant, net.post_quant_conv.bias)
        x = self._causal_conv(x, net.conv_in, tile, bias=net.conv_in.bias)
        mid_blocks = cast(list[ResidualBlock], list(net.mid.resnets))
        x = self._residual_block(x, mid_blocks[0], tile)
        x = self._attention(x, net.mid.attention)
        x = self._residual_block(x, mid_blocks[1], tile)
        for stage in self._stages():
            shortcut = None
            if stage.shortcut is not None:
                shortcut = self._spread(x, stage.shortcut, tile)
            for block in cast(list[ResidualBlock], list(stage.resnets)):
                x = self._residual_block(x, block, tile)
            if stage.upsampler is not None:
                x = self._upsample(x, stage.upsampler, tile)
            if shortcut is not None:
                x = x.add_(shortcut)
        frames = x.shape[0]
        gamma = self._packed_weight(net.norm_out, "gamma")
        padded = self._conv_input(
            x, net.conv_out, tile, gamma=gamma, silu=True, stacked=False
        )
        video = F.conv3d(
            padded.permute(3, 0, 1, 2).unsqueeze(0),
            self._packed_weight(net.conv_out, "conv3d"),
            net.conv_out.bias,
            padding=(0, 1, 1),
        )  # [1, 3 * p * p, t, H / p, W / p]
        video = unpatchify(video, net.patch_size)  # [1, 3, t, H, W]
        torch.clamp(video[0].transpose(0, 1), -1.0, 1.0, out=out[:frames])
        return frames

    # ----------------------------------------------------------------------- layers

    def _conv_input(
        self,
        x: torch.Tensor,
        conv: CausalConv3d,
        tile: _Tile,
        *,
        stacked: bool,
        gamma: torch.Tensor | None = None,
        pre_bias: torch.Tensor | None = None,
        silu: bool = False,
    ) -> torch.Tensor:
        """Build a causal conv's input from its history and ``x [T, H, W, C]`` (normalized
        on the way if ``gamma``), and record its new history (the last two input frames).
        Returns ``[T + 2, H, W, C]``, or ``[T, H, W, 3C]`` if ``stacked``."""
        t, h, w, c = x.shape
        past = tile.history(conv.slot)
        if past is None:  # rollout start: the published decoder pads with zeros
            past = x.new_zeros(HISTORY_FRAMES, h, w, c)
        buffer = x.new_empty(t, h * w, 3 * c) if stacked else x.new_empty(t + 2, h * w, c)
        kernels.norm_into(past.view(2, h * w, c), buffer, first=0)
        kernels.norm_into(
            x.view(t, h * w, c), buffer, first=2, gamma=gamma, bias=pre_bias, silu=silu
        )
        if stacked:
            # The last stacked frame holds padded frames t-1, t, t+1: the history is the last two.
            new = buffer[t - 1].view(h * w, 3, c)[:, 1:].transpose(0, 1).contiguous()
            tile.set_history(conv.slot, new.view(2, h, w, c))
            return buffer.view(t, h, w, 3 * c)
        tile.set_history(conv.slot, buffer[t:].view(2, h, w, c).clone())
        return buffer.view(t + 2, h, w, c)

    def _conv_segments(
        self,
        x: torch.Tensor,
        conv: CausalConv3d,
        tile: _Tile,
        *,
        gamma: torch.Tensor | None,
        pre_bias: torch.Tensor | None,
        silu: bool,
    ) -> list[torch.Tensor]:
        """The implicit-GEMM conv's input as segments read in place: the history, the
        chunk's frames but the last two, and the new history (those two frames, or the
        old history's last frame and the chunk's only one), normalized once on the way.
        No frame is copied but a lone frame's one history frame."""
        t, h, w, c = x.shape
        past = tile.history(conv.slot)
        if past is None:
            past = x.new_zeros(HISTORY_FRAMES, h, w, c)
        new = x.new_empty(HISTORY_FRAMES, h, w, c)

        def normalize(frames: torch.Tensor, into: torch.Tensor, first: int) -> None:
            kernels.norm_into(
                frames.view(-1, h * w, c), into.view(-1, h * w, c),
                first=first, gamma=gamma, bias=pre_bias, silu=silu,
            )  # fmt: skip

        if t >= HISTORY_FRAMES:
            segments = [past]
            if t > HISTORY_FRAMES:
                body = x.new_empty(t - HISTORY_FRAMES, h, w, c)
                normalize(x[: t - HISTORY_FRAMES], body, first=0)
                segments.append(body)
            normalize(x[t - HISTORY_FRAMES :], new, first=0)
        else:
            new[0].copy_(past[1])
            normalize(x, new, first=1)
            segments = [past[:1]]
        segments.append(new)
        tile.set_history(conv.slot, new)
        return segments

    def _causal_conv(
        self,
        x: torch.Tensor,
        conv: CausalConv3d,
        tile: _Tile,
        *,
        gamma: torch.Tensor | None = None,
        pre_bias: torch.Tensor | None = None,
        silu: bool = False,
        bias: torch.Tensor | None = None,
        residual: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """3x3x3 causal conv ``[T, H, W, C] -> [T, H, W, Co]``, plus ``bias`` and
        ``residual`` if given (the input normalized first if ``gamma``)."""
        t, c = x.shape[0], x.shape[3]
        if self._implicit_gemm(x, conv):
            segments = self._conv_segments(
                x, conv, tile, gamma=gamma, pre_bias=pre_bias, silu=silu
            )
            weight = self._packed_weight(conv, "implicit")
            return implicit_gemm.causal_conv(
                segments, weight, (3, 3, 3), bias=bias, residual=residual
            )
        stacked = self.stacked(c, t)
        buffer = self._conv_input(
            x, conv, tile, stacked=stacked, gamma=gamma, pre_bias=pre_bias, silu=silu
        )
        conv_bias = bias if residual is None else None
        if stacked:
            weight = self._packed_weight(conv, "stacked")
            y = _frames_of(F.conv2d(buffer.permute(0, 3, 1, 2), weight, conv_bias, padding=1))
        else:
            weight = self._packed_weight(conv, "conv3d")
            y = F.conv3d(
                buffer.permute(3, 0, 1, 2).unsqueeze(0), weight, conv_bias, padding=(0, 1, 1)
            )
            y = y[0].permute(1, 2, 3, 0).contiguous()
        if residual is not None:
            kernels.add_bias_residual_(y, residual, bias)
        return y

    def _implicit_gemm(self, x: torch.Tensor, conv: CausalConv3d) -> bool:
        """Whether this conv runs as the Triton implicit GEMM (else cuDNN)."""
        if self.implicit is None:
            if not _use_implicit_gemm_on(x.device, x.dtype):
                return False
            rule = use_implicit_gemm
        else:
            rule = self.implicit
        return rule(x.shape[3], conv.out_channels, x.shape[0])

    def _residual_block(self, x: torch.Tensor, block: ResidualBlock, tile: _Tile) -> torch.Tensor:
        """Norm, SiLU, conv, twice, plus the shortcut; conv1's bias enters norm2's kernel,
        conv2's (and the shortcut's) the residual add."""
        bias = block.conv2.bias
        if isinstance(block.shortcut, nn.Conv3d):
            residual = F.linear(x, self._packed_weight(block.shortcut, "pointwise"))
            if block.shortcut.bias is not None:
                bias = block.shortcut.bias if bias is None else bias + block.shortcut.bias
        else:
            residual = x
        gamma1 = self._packed_weight(block.norm1, "gamma")
        y = self._causal_conv(x, block.conv1, tile, gamma=gamma1, silu=True)
        return self._causal_conv(
            y,
            block.conv2,
            tile,
            gamma=self._packed_weight(block.norm2, "gamma"),
            pre_bias=block.conv1.bias,
            silu=True,
            bias=bias,
            residual=residual,
        )

    def _attention(self, x: torch.Tensor, attention: SpatialAttention) -> torch.Tensor:
        """Single-head attention over each frame's pixels, plus the input."""
        t, h, w, c = x.shape
        normed = torch.empty_like(x)
        gamma = self._packed_weight(attention.norm, "gamma")
        kernels.norm_into(x.view(t, h * w, c), normed.view(t, h * w, c), first=0, gamma=gamma)
        qkv_weight = self._packed_weight(attention.to_qkv, "pointwise")
        qkv = F.linear(normed.view(t, h * w, c), qkv_weight, attention.to_qkv.bias)
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)  # [t, 1, hw, c] each
        attended = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        proj_weight = self._packed_weight(attention.proj, "pointwise")
        y = F.linear(attended, proj_weight, attention.proj.bias)
        return y.view(t, h, w, c).add_(x)

    def _upsample(self, x: torch.Tensor, up: Upsampler, tile: _Tile) -> torch.Tensor:
        """Time doubling (if any), then nearest 2x + 3x3 conv as a sub-pixel conv."""
        if up.time_conv is not None:
            x = self._double_frames(x, up.time_conv, tile)
        padded = F.pad(x, (0, 0, 1, 1, 1, 1))  # [n, h + 2, w + 2, c], zero border
        phases = F.conv2d(padded.permute(0, 3, 1, 2), self._packed_weight(up.conv, "subpixel"))
        return kernels.subpixel_gather(_frames_of(phases), up.conv.bias)

    def _spread(self, x: torch.Tensor, shortcut: SpreadShortcut, tile: _Tile) -> torch.Tensor:
        """Wan 2.2's stage shortcut on ``x [T, H, W, C]`` -> ``[T', 2H, 2W, Co]``: the
        channel placement of :class:`~reference_decoders.wan.model.SpreadShortcut`
        (channel ``(o, time, row, column)`` of the repeated input), channels last."""
        t, h, w, _ = x.shape
        ft, co = shortcut.time_factor, shortcut.out_channels
        spread = x.repeat_interleave(shortcut.repeats, dim=3).view(t, h, w, co, ft, 2, 2)
        spread = spread.permute(0, 4, 1, 5, 2, 6, 3).reshape(t * ft, 2 * h, 2 * w, co)
        if tile.first and ft > 1:
            spread = spread[ft - 1 :]  # the rollout's first frame: its last copy only
        return spread

    def _double_frames(
        self, x: torch.Tensor, time_conv: CausalConv3d, tile: _Tile
    ) -> torch.Tensor:
        """The rollout's first frame passes as it is; every other frame becomes two
        (``time_conv`` gives 2C channels: the earlier frame's C, then the later one's)."""
        t, h, w, c = x.shape
        head = 1 if tile.first else 0
        out = x.new_empty(head + 2 * (t - head), h, w, c)
        if head:
            out[0].copy_(x[0])
        if t > head:
            stacked = self._conv_input(x[head:], time_conv, tile, stacked=True)
            doubled = F.linear(stacked, self._packed_weight(time_conv, "time"), time_conv.bias)
            pairs = doubled.view(t - head, h, w, 2, c).permute(0, 3, 1, 2, 4)
            out[head:].view(t - head, 2, h, w, c).copy_(pairs)
        return out

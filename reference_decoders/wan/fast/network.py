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
- cuDNN runs every convolution, each in its fastest form (:mod:`.layout`): a causal
  3x3x3 conv reads a buffer of its two history frames followed by the chunk
  (``[T + 2, H, W, C]``), or those frames stacked three at a time along channels
  (``[T, H, W, 3C]``, the input of the equivalent 2-D conv, up to 2x faster for some
  widths). One kernel (:func:`.kernels.conv_input`) writes that whole buffer: history
  copied in, the chunk normalized (RMS norm + SiLU) on the way, and the last two
  frames once more into the new history tensor. No ``torch.cat``, no history copied
  out of the buffer afterwards.
- Conv biases and residual adds are folded into the next fused kernel: conv1's bias
  into norm2, and a residual block's sum (conv2 + bias + shortcut) into the next
  block's (or the output head's) norm, which stores the sum once for the next residual.
  Where the next layer is not a conv (attention, upsampler) one add kernel runs.
- The upsamplers' nearest-2x + 3x3 conv runs as one 2x2 conv with four output phases on
  the low-resolution input (:func:`.weights.subpixel_weight`; cuDNN pads the border
  itself), then a gather that interleaves the phases, adds the bias and, for Wan 2.2,
  the stage's spread shortcut read from the stage's input. A time upsampler's
  ``time_conv`` writes each output frame straight into the upsampler's input (one
  matrix product per frame), so frames are never interleaved by a copy.
- A chunk is decoded in tiles of ``tile_latent_frames`` latent frames carrying the
  history, which gives the same frames (the network is chunk-invariant) with memory
  bounded by the tile instead of the chunk. With one-latent-frame tiles (the default)
  every tile runs the same kernels on the same shapes whatever the chunk plan, so a
  streamed decode equals the one-call decode bit for bit.

History tensors keep the eager cache's logical shape ``[B, C, 2, H, W]`` (in
``channels_last_3d`` memory), so caches made by either path are interchangeable. They
are new tensors every conv run, never written once made: a failed call leaves the cache
as it was, and a history tensor a forked cache shares is never changed under it. The next
tile reads its predecessor's tensor directly. With one batch element the cache's tensor
is a view of that per-element tensor; with several, each element's is copied in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from reference_decoders.wan.fast import kernels
from reference_decoders.wan.fast.layout import use_stacked_conv
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


class _Sum:
    """A residual block's output not yet added up: ``conv + residual + bias``.

    The next conv's input kernel adds it on the way (:func:`.kernels.conv_input`);
    other consumers call :meth:`FastWanNetwork._materialize`. Whoever consumes it
    :meth:`take` s the tensors, so they are freed as soon as they are used even while a
    caller still holds this object (peak memory as without the fusion).
    """

    def __init__(self, conv: torch.Tensor, residual: torch.Tensor, bias: torch.Tensor | None):
        self._parts: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = (
            conv, residual, bias,
        )  # fmt: skip
        self.shape = conv.shape  # [T, H, W, C]

    def take(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(conv, residual, bias)``, once."""
        if self._parts is None:  # pragma: no cover - would be a bug in this module
            raise RuntimeError("a pending residual sum was consumed twice")
        parts, self._parts = self._parts, None
        return parts


_Activation = torch.Tensor | _Sum


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


class FastWanNetwork:
    """Decodes chunks with a :class:`WanVAEDecoderNetwork`'s weights, fast (see module doc).

    Args:
        network: the eager network; its parameters are read, never modified.
        tile_latent_frames: at most this many latent frames go through the network at
            once; longer chunks are decoded tile by tile.
        stacked: ``(in_channels, frames, pixels) -> bool``, whether a 3x3x3 conv runs
            as a time-stacked 2-D conv (else conv3d); :func:`.layout.use_stacked_conv`
            by default.
    """

    def __init__(
        self,
        network: WanVAEDecoderNetwork,
        tile_latent_frames: int = 1,
        stacked: Callable[[int, int, int], bool] | None = None,
    ) -> None:
        if tile_latent_frames < 1:
            raise ValueError(f"tile_latent_frames must be >= 1, got {tile_latent_frames}")
        self.network = network
        self.tile_latent_frames = tile_latent_frames
        self.stacked = stacked or use_stacked_conv
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

    def _decode_tile(self, latents: torch.Tensor, tile: _Tile, out: torch.Tensor) -> int:
        """Decode ``latents [t, h, w, C]`` into the first frames of ``out [T', 3, H, W]``;
        returns how many frames it wrote."""
        net = self.network
        dtype = latents.dtype
        z = latents * net.latents_std.reshape(-1).to(dtype) + net.latents_mean.reshape(-1).to(dtype)
        post_quant = self._packed_weight(net.post_quant_conv, "pointwise")
        x: _Activation = F.linear(z, post_quant, net.post_quant_conv.bias)
        x = self._causal_conv(x, net.conv_in, tile, bias=net.conv_in.bias)
        mid_blocks = cast(list[ResidualBlock], list(net.mid.resnets))
        x, _ = self._residual_block(x, mid_blocks[0], tile)
        x = self._attention(self._materialize(x), net.mid.attention)
        x, _ = self._residual_block(x, mid_blocks[1], tile)
        for stage in self._stages():
            shortcut: torch.Tensor | None = None  # Wan 2.2: the stage's input, spread later
            for i, block in enumerate(cast(list[ResidualBlock], list(stage.resnets))):
                x, block_input = self._residual_block(x, block, tile)
                if i == 0 and stage.shortcut is not None:
                    shortcut = block_input
                del block_input
            if stage.upsampler is not None:
                x = self._upsample(self._materialize(x), stage.upsampler, tile, shortcut)
            del shortcut
        # norm_out + SiLU + conv_out, the last block's sum added on the way in.
        video = self._causal_conv(
            x,
            net.conv_out,
            tile,
            gamma=self._packed_weight(net.norm_out, "gamma"),
            silu=True,
            bias=net.conv_out.bias,
            form="conv3d",
        )  # [t, H / p, W / p, 3 * p * p]
        frames = video.shape[0]
        video = unpatchify(video.permute(3, 0, 1, 2).unsqueeze(0), net.patch_size)
        torch.clamp(video[0].transpose(0, 1), -1.0, 1.0, out=out[:frames])
        return frames

    # ----------------------------------------------------------------------- layers

    def _materialize(self, x: _Activation) -> torch.Tensor:
        """The activation as a tensor: a pending residual sum is added up in place."""
        if isinstance(x, torch.Tensor):
            return x
        conv, residual, bias = x.take()
        return kernels.add_bias_residual_(conv, residual, bias)

    def _conv_input(
        self,
        x: _Activation,
        conv: CausalConv3d,
        tile: _Tile,
        *,
        stacked: bool,
        gamma: torch.Tensor | None = None,
        pre_bias: torch.Tensor | None = None,
        silu: bool = False,
        keep_sum: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Build a causal conv's input from its history and ``x [T, H, W, C]`` (a pending
        sum added up, then normalized on the way if ``gamma``) and record its new
        history. Returns the buffer ``[T + 2, H, W, C]``, or ``[T, H, W, 3C]`` if
        ``stacked``, and, with ``keep_sum``, ``x`` added up (else None)."""
        t, h, w, c = x.shape
        past = tile.read[conv.slot]
        total: torch.Tensor | None = None
        if isinstance(x, _Sum):
            if pre_bias is not None:  # pragma: no cover - no layer of the network has both
                raise ValueError("a pending residual sum and a pre-norm bias")
            chunk, residual, bias = x.take()
            buffer, history = self._input_buffers(chunk, stacked)
            # The sum is written over the conv output it adds to (each element is read
            # before it is written, by the same program): no extra activation alive.
            total = chunk if keep_sum else None
            kernels.conv_input(
                chunk.view(t, h * w, c),
                None if past is None else past.view(HISTORY_FRAMES, h * w, c),
                buffer,
                history.view(HISTORY_FRAMES, h * w, c),
                gamma=gamma,
                bias=bias,
                silu=silu,
                residual=residual.view(t, h * w, c),
                sum_out=None if total is None else chunk.view(t, h * w, c),
            )
            del chunk, residual
        else:
            chunk = x
            buffer, history = self._input_buffers(chunk, stacked)
            total = x if keep_sum else None
            kernels.conv_input(
                chunk.view(t, h * w, c),
                None if past is None else past.view(HISTORY_FRAMES, h * w, c),
                buffer,
                history.view(HISTORY_FRAMES, h * w, c),
                gamma=gamma,
                bias=pre_bias,
                silu=silu,
            )
        tile.read[conv.slot] = history
        shape = (t, h, w, 3 * c) if stacked else (t + 2, h, w, c)
        return buffer.view(shape), total

    @staticmethod
    def _input_buffers(chunk: torch.Tensor, stacked: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """An input buffer for a conv over ``chunk [T, H, W, C]`` (``[T + 2, HW, C]``, or
        ``[T, HW, 3C]`` stacked) and a new history tensor ``[2, H, W, C]``."""
        t, h, w, c = chunk.shape
        buffer = chunk.new_empty(t, h * w, 3 * c) if stacked else chunk.new_empty(t + 2, h * w, c)
        return buffer, chunk.new_empty(HISTORY_FRAMES, h, w, c)

    def _causal_conv(
        self,
        x: _Activation,
        conv: CausalConv3d,
        tile: _Tile,
        *,
        gamma: torch.Tensor | None = None,
        pre_bias: torch.Tensor | None = None,
        silu: bool = False,
        bias: torch.Tensor | None = None,
        keep_sum: bool = False,
        form: str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None] | torch.Tensor:
        """3x3x3 causal conv ``[T, H, W, C] -> [T, H, W, Co]`` plus ``bias`` (the input,
        or a pending sum added up, normalized first if ``gamma``). With ``keep_sum``
        returns ``(output, input added up)``."""
        t, h, w, c = x.shape
        stacked = self.stacked(c, t, h * w) if form is None else form == "stacked"
        buffer, total = self._conv_input(
            x, conv, tile, stacked=stacked, gamma=gamma, pre_bias=pre_bias, silu=silu,
            keep_sum=keep_sum,
        )  # fmt: skip
        if stacked:
            weight = self._packed_weight(conv, "stacked")
            y = _frames_of(F.conv2d(buffer.permute(0, 3, 1, 2), weight, bias, padding=1))
        else:
            weight = self._packed_weight(conv, "conv3d")
            y = F.conv3d(buffer.permute(3, 0, 1, 2).unsqueeze(0), weight, bias, padding=(0, 1, 1))
            y = y[0].permute(1, 2, 3, 0).contiguous()
        return (y, total) if keep_sum else y

    def _residual_block(
        self, x: _Activation, block: ResidualBlock, tile: _Tile
    ) -> tuple[_Sum, torch.Tensor]:
        """Norm, SiLU, conv, twice, plus the shortcut. Returns the block's output as a
        pending sum (conv2 + shortcut + biases: the next kernel adds it up) and its input
        as a tensor (added up by norm1's kernel if it was pending)."""
        gamma1 = self._packed_weight(block.norm1, "gamma")
        y, x_in = cast(
            tuple[torch.Tensor, torch.Tensor],
            self._causal_conv(x, block.conv1, tile, gamma=gamma1, silu=True, keep_sum=True),
        )
        del x
        bias = block.conv2.bias
        if isinstance(block.shortcut, nn.Conv3d):
            residual = F.linear(x_in, self._packed_weight(block.shortcut, "pointwise"))
            if block.shortcut.bias is not None:
                bias = block.shortcut.bias if bias is None else bias + block.shortcut.bias
        else:
            residual = x_in
        y = cast(
            torch.Tensor,
            self._causal_conv(
                y,
                block.conv2,
                tile,
                gamma=self._packed_weight(block.norm2, "gamma"),
                pre_bias=block.conv1.bias,
                silu=True,
            ),
        )
        return _Sum(y, residual, bias), x_in

    def _attention(self, x: torch.Tensor, attention: SpatialAttention) -> torch.Tensor:
        """Single-head attention over each frame's pixels, plus the input."""
        t, h, w, c = x.shape
        normed = torch.empty_like(x)
        gamma = self._packed_weight(attention.norm, "gamma")
        kernels.norm_into(x.view(t, h * w, c), normed.view(t, h * w, c), gamma=gamma)
        qkv_weight = self._packed_weight(attention.to_qkv, "pointwise")
        qkv = F.linear(normed.view(t, h * w, c), qkv_weight, attention.to_qkv.bias)
        del normed
        q, k, v = qkv.unsqueeze(1).chunk(3, dim=-1)  # [t, 1, hw, c] each
        attended = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        del qkv, q, k, v
        proj_weight = self._packed_weight(attention.proj, "pointwise")
        y = F.linear(attended, proj_weight, attention.proj.bias)
        return y.view(t, h, w, c).add_(x)

    def _upsample(
        self, x: torch.Tensor, up: Upsampler, tile: _Tile, shortcut: torch.Tensor | None
    ) -> torch.Tensor:
        """Time doubling (if any), then nearest 2x + 3x3 conv as a sub-pixel conv, plus
        the stage's spread ``shortcut`` (its input) where there is one."""
        time_factor = 1
        if up.time_conv is not None:
            x = self._double_frames(x, up.time_conv, tile)
            time_factor = 2
        phases = F.conv2d(
            x.permute(0, 3, 1, 2), self._packed_weight(up.conv, "subpixel"), padding=1
        )  # [n, 4Co, h + 1, w + 1]: the 2x2 conv over the zero-padded frames
        del x
        shift = time_factor - 1 if tile.first else 0
        return kernels.subpixel_gather(
            _frames_of(phases), up.conv.bias, shortcut, time_factor=time_factor, frame_shift=shift
        )

    def _double_frames(
        self, x: torch.Tensor, time_conv: CausalConv3d, tile: _Tile
    ) -> torch.Tensor:
        """The rollout's first frame passes as it is; every other frame becomes two
        (``time_conv`` gives 2C channels: the earlier frame's C, then the later one's),
        each computed straight into its place in the output."""
        t, h, w, c = x.shape
        head = 1 if tile.first else 0
        out = x.new_empty(head + 2 * (t - head), h, w, c)
        if head:
            out[0].copy_(x[0])
        if t > head:
            stacked, _ = self._conv_input(x[head:], time_conv, tile, stacked=True)
            weight = self._packed_weight(time_conv, "time")  # [2C, 3C]
            bias = time_conv.bias
            for i in range(t - head):
                frame = stacked[i].view(h * w, 3 * c)
                for half in range(2):
                    rows = slice(half * c, (half + 1) * c)
                    target = out[head + 2 * i + half].view(h * w, c)
                    if bias is None:
                        torch.mm(frame, weight[rows].t(), out=target)
                    else:
                        torch.addmm(bias[rows], frame, weight[rows].t(), out=target)
        return out

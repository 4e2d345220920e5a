"""Triton kernels of the fast Wan decoder path, on channels-last activations.

The fast path stores one batch element's activation as frames ``[F, H, W, C]``, densely,
so a pixel's channels form one contiguous row and an activation is a ``[rows, C]``
matrix. cuDNN runs the convolutions; these kernels do the memory-bound work around
them in single passes:

- :func:`norm_into`: RMS norm over channels (optionally after adding a bias, optionally
  followed by SiLU) written into the input buffer of the next convolution: a plain frame
  buffer, or the *time-stacked* buffer of a causal 3-tap temporal conv run as a 2-D conv
  (input frame ``f`` goes to output frame ``f + first - j`` at channel block ``j`` for
  ``j = 0, 1, 2``). The activation is read once and the conv input written once; the
  eager path instead normalizes in five float32 passes and concatenates history.
  Without a norm it is the same scatter as a copy (inputs that are not normalized).
- :func:`add_bias_residual_`: ``out += residual + bias`` in one pass: the second conv's
  bias (and the shortcut's) folded into the residual add.
- :func:`subpixel_gather`: the last step of the upsamplers' "nearest 2x then 3x3 conv",
  computed as one 2x2 conv with four output phases on the low-resolution input
  (4/9 of the FLOPs, and no 4x larger upsampled tensor): interleaves the phases into the
  2x larger frame and adds the conv bias.

Every kernel computes in float32 and rounds once on store. Triton is imported here
only, and this module is imported only when the fast path is in use.
"""

from __future__ import annotations

import torch
import triton  # type: ignore[import-not-found, unused-ignore]
import triton.language as tl  # type: ignore[import-not-found, unused-ignore]

__all__ = ["add_bias_residual_", "norm_into", "subpixel_gather"]

# Elements one program handles: rows per program = _TILE_ELEMENTS // padded channels.
_TILE_ELEMENTS = 4096


def _channel_block(channels: int) -> int:
    return max(16, triton.next_power_of_2(channels))


@triton.jit
def _norm_rows_kernel(
    x_ptr, bias_ptr, gamma_ptr, y_ptr,
    rows, C, scale, rows_per_frame,
    y_frame_stride, y_row_stride, first, out_frames,
    CP: tl.constexpr, BLOCK_M: tl.constexpr,
    HAS_BIAS: tl.constexpr, NORM: tl.constexpr, SILU: tl.constexpr, SLOTS: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    r = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.arange(0, CP)
    rmask = r < rows
    cmask = c < C
    mask = rmask[:, None] & cmask[None, :]
    x = tl.load(x_ptr + r[:, None] * C + c[None, :], mask=mask, other=0.0)
    x = x.to(tl.float32)
    if HAS_BIAS:
        x += tl.load(bias_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    if NORM:
        norm = tl.sqrt(tl.sum(x * x, axis=1))
        g = tl.load(gamma_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        x = x * (scale / tl.maximum(norm, 1e-12))[:, None] * g[None, :]
    if SILU:
        x = x * tl.sigmoid(x)
    y = x.to(y_ptr.dtype.element_ty)
    frame = r // rows_per_frame
    pixel = r % rows_per_frame
    for j in tl.static_range(SLOTS):
        o = frame + first - j
        ok = rmask & (o >= 0) & (o < out_frames)
        offs = o * y_frame_stride + pixel * y_row_stride + j * C
        tl.store(y_ptr + offs[:, None] + c[None, :], y, mask=ok[:, None] & cmask[None, :])


def norm_into(
    x: torch.Tensor,
    out: torch.Tensor,
    *,
    first: int,
    gamma: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    silu: bool = False,
) -> None:
    """Write ``silu?(rms_norm?(x + bias?))`` of frames ``x [F, P, C]`` into ``out``.

    ``out`` is ``[T, P, C]`` (frame ``f`` goes to ``f + first``) or ``[T, P, 3C]``
    (stacked: frame ``f`` goes to frame ``f + first - j``, channels ``j*C:(j+1)*C``);
    frames that land outside ``out`` are dropped. The norm is ``x / ||x|| * sqrt(C) *
    gamma`` over channels (the model's RMSNorm), applied when ``gamma`` is given.
    """
    frames, pixels, channels = x.shape
    slots = out.shape[-1] // channels
    if slots not in (1, 3) or out.shape[-1] != slots * channels or out.shape[1] != pixels:
        raise ValueError(f"norm_into: cannot write {tuple(x.shape)} into {tuple(out.shape)}")
    if not (x.is_contiguous() and out.is_contiguous()):
        raise ValueError("norm_into: input and output must be contiguous")
    rows = frames * pixels
    if rows == 0:
        return
    cp = _channel_block(channels)
    block_m = max(1, _TILE_ELEMENTS // cp)
    _norm_rows_kernel[(triton.cdiv(rows, block_m),)](
        x, bias if bias is not None else x, gamma if gamma is not None else x, out,
        rows, channels, float(channels) ** 0.5, pixels,
        pixels * slots * channels, slots * channels, first, out.shape[0],
        CP=cp, BLOCK_M=block_m, HAS_BIAS=bias is not None, NORM=gamma is not None,
        SILU=silu, SLOTS=slots, num_warps=4,
    )  # fmt: skip


@triton.jit
def _add_bias_residual_kernel(
    out_ptr, res_ptr, bias_ptr, rows, C,
    CP: tl.constexpr, BLOCK_M: tl.constexpr, HAS_BIAS: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    r = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.arange(0, CP)
    mask = (r < rows)[:, None] & (c < C)[None, :]
    offs = r[:, None] * C + c[None, :]
    acc = tl.load(out_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    acc += tl.load(res_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c, mask=c < C, other=0.0).to(tl.float32)[None, :]
    tl.store(out_ptr + offs, acc.to(out_ptr.dtype.element_ty), mask=mask)


def add_bias_residual_(
    out: torch.Tensor, residual: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """``out += residual + bias`` over rows of ``C = out.shape[-1]`` channels, in place."""
    if out.shape != residual.shape or not (out.is_contiguous() and residual.is_contiguous()):
        raise ValueError(
            f"add_bias_residual_: need two contiguous tensors of one shape, got "
            f"{tuple(out.shape)} and {tuple(residual.shape)}"
        )
    channels = out.shape[-1]
    rows = out.numel() // channels
    if rows == 0:
        return out
    cp = _channel_block(channels)
    block_m = max(1, _TILE_ELEMENTS // cp)
    _add_bias_residual_kernel[(triton.cdiv(rows, block_m),)](
        out, residual, bias if bias is not None else out, rows, channels,
        CP=cp, BLOCK_M=block_m, HAS_BIAS=bias is not None, num_warps=4,
    )  # fmt: skip
    return out


@triton.jit
def _subpixel_gather_kernel(
    z_ptr, bias_ptr, y_ptr, rows, H, W, C,
    CP: tl.constexpr, BLOCK_M: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    r = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)  # output pixel [n, y, x]
    c = tl.arange(0, CP)
    rmask = r < rows
    cmask = c < C
    x = r % (2 * W)
    t = r // (2 * W)
    y = t % (2 * H)
    n = t // (2 * H)
    a = y % 2
    b = x % 2
    src = ((n * (H + 1) + y // 2 + a) * (W + 1) + x // 2 + b) * (4 * C) + (a * 2 + b) * C
    mask = rmask[:, None] & cmask[None, :]
    v = tl.load(z_ptr + src[:, None] + c[None, :], mask=mask, other=0.0).to(tl.float32)
    v += tl.load(bias_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + r[:, None] * C + c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def subpixel_gather(phases: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``[N, H + 1, W + 1, 4C]`` phase outputs -> ``[N, 2H, 2W, C]`` frames (+ bias).

    Output pixel ``(2i + a, 2j + b)`` is phase ``2a + b`` at ``(i + a, j + b)``: see
    :func:`reference_decoders.wan.fast.network.subpixel_weight`.
    """
    n, h1, w1, c4 = phases.shape
    if c4 % 4 or not phases.is_contiguous():
        raise ValueError(
            f"subpixel_gather: need contiguous [N, H+1, W+1, 4C], got {tuple(phases.shape)}"
        )
    h, w, c = h1 - 1, w1 - 1, c4 // 4
    out = phases.new_empty(n, 2 * h, 2 * w, c)
    rows = out.numel() // c
    if rows == 0:
        return out
    cp = _channel_block(c)
    block_m = max(1, _TILE_ELEMENTS // cp)
    _subpixel_gather_kernel[(triton.cdiv(rows, block_m),)](
        phases, bias if bias is not None else phases.new_zeros(c), out, rows, h, w, c,
        CP=cp, BLOCK_M=block_m, num_warps=4,
    )  # fmt: skip
    return out

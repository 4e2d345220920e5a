"""Experiment 1 prototype kernel (RMS norm + SiLU into a time-stacked buffer); the decoder uses reference_decoders/wan/fast/kernels.py."""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rms_norm_silu_rows(
    x_ptr, g_ptr, y_ptr,
    rows, C, scale, rows_per_frame,
    y_frame_stride, y_row_stride, y_col_offset,
    slots_first, out_frames,
    CP: tl.constexpr, BLOCK_M: tl.constexpr, SILU: tl.constexpr, SLOTS: tl.constexpr,
):
    """Rows of C contiguous channels: y = silu(x / ||x|| * sqrt(C) * gamma), in fp32.

    Input row r belongs to frame f = r // rows_per_frame (pixel p = r % rows_per_frame).
    It is stored in output frame f - j + slots_first at column block j (j < SLOTS) when
    that output frame exists: SLOTS = 1 is a plain write (y_frame_stride = frame size),
    SLOTS = 3 writes the time-stacked input of a conv2d that replaces a 3-tap temporal conv.
    """
    pid = tl.program_id(0)
    r = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    c = tl.arange(0, CP)
    rmask = r < rows
    cmask = c < C
    mask = rmask[:, None] & cmask[None, :]
    r64 = r.to(tl.int64)
    x = tl.load(x_ptr + r64[:, None] * C + c[None, :], mask=mask, other=0.0).to(tl.float32)
    ss = tl.sum(x * x, axis=1)
    inv = scale / tl.maximum(tl.sqrt(ss), 1e-12)
    g = tl.load(g_ptr + c, mask=cmask, other=0.0).to(tl.float32)
    y = x * inv[:, None] * g[None, :]
    if SILU:
        y = y * tl.sigmoid(y)
    y = y.to(y_ptr.dtype.element_ty)
    f = r64 // rows_per_frame
    p = r64 % rows_per_frame
    for j in tl.static_range(SLOTS):
        o = f - j + slots_first
        ok = rmask & (o >= 0) & (o < out_frames)
        offs = o * y_frame_stride + p * y_row_stride + y_col_offset + j * C
        tl.store(y_ptr + offs[:, None] + c[None, :], y, mask=ok[:, None] & cmask[None, :])


def _cp(c: int) -> int:
    return max(16, triton.next_power_of_2(c))


def rms_norm_silu(x_rows: torch.Tensor, gamma: torch.Tensor, silu: bool = True, out: torch.Tensor | None = None) -> torch.Tensor:
    """x_rows: [rows, C] contiguous (a channels-last activation viewed as rows)."""
    rows, c = x_rows.shape
    y = torch.empty_like(x_rows) if out is None else out
    cp = _cp(c)
    block_m = max(1, 4096 // cp)
    grid = (triton.cdiv(rows, block_m),)
    _rms_norm_silu_rows[grid](
        x_rows, gamma, y, rows, c, float(c) ** 0.5, rows, rows * c, c, 0, 0, 1,
        CP=cp, BLOCK_M=block_m, SILU=silu, SLOTS=1, num_warps=4,
    )
    return y


def rms_norm_silu_stacked(x_frames: torch.Tensor, gamma: torch.Tensor, stacked: torch.Tensor, first_out: int) -> None:
    """x_frames: [F, P, C] contiguous; stacked: [T_out, P, 3C] contiguous. Input frame f goes to
    stacked[f - j + first_out, :, j*C:(j+1)*C] for j in 0..2."""
    f, p, c = x_frames.shape
    rows = f * p
    cp = _cp(c)
    block_m = max(1, 4096 // cp)
    grid = (triton.cdiv(rows, block_m),)
    _rms_norm_silu_rows[grid](
        x_frames, gamma, stacked, rows, c, float(c) ** 0.5, p, p * 3 * c, 3 * c, 0, first_out, stacked.shape[0],
        CP=cp, BLOCK_M=block_m, SILU=True, SLOTS=3, num_warps=4,
    )

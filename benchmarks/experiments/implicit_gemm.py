"""Experiment 3 (issue 13): a causal 3-D convolution as one implicit GEMM in Triton,
history read in place. Moved out of the decoder's fast path (it was the opt-in
``triton_convs``): cuDNN measured faster on every Wan conv shape (benchmarks/NOTES.md).

cuDNN runs a 3x3x3 conv over a buffer that already holds the two history frames followed
by the chunk, so the fast path copied the history in before every conv (and the stacked
2-D form, which cuDNN runs faster for some widths, writes every frame three times). This
kernel removes both: it reads the conv's input frames from up to three separate tensors
("segments": the cache's history, then the chunk, then the tensor that becomes the new
history), so no buffer joins them, and it adds the conv bias and a residual in its
epilogue, so the separate bias + residual pass goes too.

The GEMM: output pixels are rows (``M = T * H * W``), output channels columns
(``N = Co``), and the reduction runs over ``K = taps * C`` in one flat loop (tap-major,
``BLOCK_K`` channels at a time) so Triton software-pipelines it end to end. The A tile of
iteration ``(tap, k0)`` is the block of input rows each output pixel reads at that tap,
shifted in time, height and width, with rows that fall into the spatial zero padding
masked to zero; B is the weight packed ``[taps * C, Co]`` (:func:`pack_weight`).

Why the input is not normalized in the prologue (the issue asked for it): every input
element is read by ``taps`` = 27 (tile, tap) pairs, so a norm + SiLU in the prologue is
recomputed 27 times on CUDA cores, whose float32 rate is ~1/15 of the tensor cores'
bf16 rate; at ~10 flops per element against 2 * BLOCK_N = 256 MMA flops it would cost
more than half the MMA time. The fused norm kernel writes the normalized chunk once
instead (``reference_decoders.wan.fast.kernels.conv_input``), straight into the
segment this kernel reads.

Tile shapes are chosen per conv shape by measurement on an H200
(``benchmarks/experiments/conv_kernels.py``, table in ``benchmarks/NOTES.md``); cuDNN was
faster on every shape, which is why the decoder does not use this kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import torch
import triton  # type: ignore[import-not-found, unused-ignore]
import triton.language as tl  # type: ignore[import-not-found, unused-ignore]

__all__ = ["TileConfig", "causal_conv", "default_config", "pack_weight"]

MAX_SEGMENTS = 3


@dataclass(frozen=True)
class TileConfig:
    """Block sizes and schedule of one launch (Triton needs powers of two)."""

    block_m: int = 128
    block_n: int = 128
    block_k: int = 64
    num_warps: int = 8
    num_stages: int = 3
    group_m: int = 8
    #: With ``block_w``, the TMA variant: a tile is ``block_m // block_w`` image rows of
    #: ``block_w`` pixels, loaded by the tensor-memory accelerator, whose zero fill of
    #: out-of-range coordinates is the spatial padding (Hopper only).
    block_w: int = 0


def default_config(
    in_channels: int, out_channels: int, width: int, *, tma: bool = True, element_size: int = 2
) -> TileConfig:
    """The fastest correct tile measured for a conv (H200, bf16, Triton 3.6;
    ``benchmarks/results/conv_kernels_t1_h200.json``): one image row of 128 pixels
    with 64-channel blocks, except the widths where several rows with 32-channel blocks
    and 256 output columns won (192, 512, 1024; 64-byte channel blocks, so 16 channels
    in float32). Without TMA (``tma=False``: GPUs before Hopper), the pointer-load tile."""
    block_k = next((k for k in (64, 32, 16) if in_channels % k == 0), 16)
    block_n = 128 if out_channels >= 128 else max(16, triton.next_power_of_2(out_channels))
    if not tma:
        return TileConfig(block_m=128, block_n=block_n, block_k=block_k)
    if in_channels in (192, 512, 1024):
        rows_w = next((b for b in (64, 32, 16, 8) if width % b == 0), 64)
        rows_k = min(block_k, 64 // element_size)
        return TileConfig(128, 256 if out_channels > 128 else block_n, rows_k, 8, 3, block_w=rows_w)
    return TileConfig(128, block_n, block_k, 8, 3, block_w=128)


def _has_tma(device: torch.device) -> bool:
    """Hopper or later (the tensor-memory accelerator), or the CPU interpreter."""
    if device.type != "cuda":
        return True
    return torch.cuda.get_device_capability(device)[0] >= 9


def pack_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, C, kt, kh, kw]`` -> ``[kt * kh * kw * C, Co]``: row ``tap * C + c`` with
    ``tap = (dt * kh + dh) * kw + dw``, the B matrix of the implicit GEMM."""
    co, c = weight.shape[:2]
    return weight.permute(2, 3, 4, 1, 0).reshape(-1, co).contiguous()


@triton.jit
def _grouped_tile(grid_m, grid_n, GROUP_M: tl.constexpr):
    """(row block, column block) of this program in grouped launch order: ``GROUP_M``
    consecutive row blocks visit each column block together, sharing its weights in L2."""
    pid = tl.program_id(0)
    in_group = GROUP_M * grid_n
    first_m = (pid // in_group) * GROUP_M
    size_m = tl.minimum(grid_m - first_m, GROUP_M)
    return first_m + (pid % in_group) % size_m, (pid % in_group) // size_m


@triton.jit
def _causal_conv_kernel(
    s0_ptr, s1_ptr, s2_ptr, w_ptr, bias_ptr, res_ptr, y_ptr,
    end0, end1, M, H, W, C, Co, chunks, iters,
    KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_RES: tl.constexpr,
    PRECISION: tl.constexpr,
):  # fmt: skip
    pid_m, pid_n = _grouped_tile(tl.cdiv(M, BLOCK_M), tl.cdiv(Co, BLOCK_N), GROUP_M)

    m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    k = tl.arange(0, BLOCK_K)
    m_ok = m < M
    n_ok = n < Co
    col = m % W
    row = (m // W) % H
    frame = m // (W * H)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for it in range(iters):
        tap = it // chunks
        k0 = (it % chunks) * BLOCK_K
        dt = tap // (KH * KW)
        dh = (tap // KW) % KH - KH // 2
        dw = tap % KW - KW // 2
        src_row = row + dh
        src_col = col + dw
        ok = m_ok & (src_row >= 0) & (src_row < H) & (src_col >= 0) & (src_col < W)
        t = frame + dt  # input frame: segment 0 holds [0, end0), 1 [end0, end1), 2 the rest
        pixel = (src_row * W + src_col).to(tl.int64)
        off0 = (t.to(tl.int64) * H * W + pixel) * C
        off1 = ((t - end0).to(tl.int64) * H * W + pixel) * C
        off2 = ((t - end1).to(tl.int64) * H * W + pixel) * C
        base = tl.where(t < end0, s0_ptr + off0, tl.where(t < end1, s1_ptr + off1, s2_ptr + off2))
        a = tl.load(base[:, None] + (k0 + k)[None, :], mask=ok[:, None], other=0.0)
        w_rows = (tap * C + k0 + k).to(tl.int64)
        b = tl.load(w_ptr + w_rows[:, None] * Co + n[None, :], mask=n_ok[None, :], other=0.0)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)

    if HAS_BIAS:
        acc += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    out_offs = m.to(tl.int64)[:, None] * Co + n[None, :]
    out_mask = m_ok[:, None] & n_ok[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + out_offs, mask=out_mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + out_offs, acc.to(y_ptr.dtype.element_ty), mask=out_mask)


@triton.jit
def _tma_segment_loop(
    desc, w_desc, acc, frame0, dt_lo, dt_hi, row0, col0, n0, C, chunks,
    KH: tl.constexpr, KW: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    # Temporal taps [dt_lo, dt_hi) all read one segment, whose first frame is `frame0`
    # frames before the tile's first input frame.
    per_dt = KH * KW * chunks
    for it in range(dt_lo * per_dt, dt_hi * per_dt):
        tap = it // chunks
        k0 = (it % chunks) * BLOCK_K
        dt = tap // (KH * KW)
        dh = (tap // KW) % KH - KH // 2
        dw = tap % KW - KW // 2
        a = desc.load([frame0 + dt, row0 + dh, col0 + dw, k0]).reshape(BLOCK_M, BLOCK_K)
        b = w_desc.load([tap * C + k0, n0])
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    return acc


@triton.jit
def _causal_conv_tma_kernel(
    d0, d1, d2, w_desc, bias_ptr, res_ptr, y_ptr,
    end0, end1, T, H, W, C, Co, chunks,
    KT: tl.constexpr, KH: tl.constexpr, KW: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr, HAS_BIAS: tl.constexpr,
    HAS_RES: tl.constexpr, PRECISION: tl.constexpr,
):  # fmt: skip
    BLOCK_M: tl.constexpr = BLOCK_H * BLOCK_W
    tiles_h = tl.cdiv(H, BLOCK_H)
    tiles_w = tl.cdiv(W, BLOCK_W)
    pid_m, pid_n = _grouped_tile(T * tiles_h * tiles_w, tl.cdiv(Co, BLOCK_N), GROUP_M)
    col0 = (pid_m % tiles_w) * BLOCK_W
    row0 = ((pid_m // tiles_w) % tiles_h) * BLOCK_H
    t = pid_m // (tiles_w * tiles_h)
    n0 = pid_n * BLOCK_N

    # Input frames t .. t + KT - 1; segment s holds [start_s, end_s).
    lo1 = tl.minimum(tl.maximum(end0 - t, 0), KT)
    lo2 = tl.minimum(tl.maximum(end1 - t, 0), KT)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc = _tma_segment_loop(d0, w_desc, acc, t, 0, lo1, row0, col0, n0, C, chunks,
                            KH, KW, BLOCK_M, BLOCK_K, BLOCK_H, BLOCK_W, PRECISION)
    acc = _tma_segment_loop(d1, w_desc, acc, t - end0, lo1, lo2, row0, col0, n0, C, chunks,
                            KH, KW, BLOCK_M, BLOCK_K, BLOCK_H, BLOCK_W, PRECISION)
    acc = _tma_segment_loop(d2, w_desc, acc, t - end1, lo2, KT, row0, col0, n0, C, chunks,
                            KH, KW, BLOCK_M, BLOCK_K, BLOCK_H, BLOCK_W, PRECISION)

    i = tl.arange(0, BLOCK_M)
    row = row0 + i // BLOCK_W
    col = col0 + i % BLOCK_W
    n = n0 + tl.arange(0, BLOCK_N)
    n_ok = n < Co
    m_ok = (row < H) & (col < W)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    m = ((t * H + row) * W + col).to(tl.int64)
    out_offs = m[:, None] * Co + n[None, :]
    out_mask = m_ok[:, None] & n_ok[None, :]
    if HAS_RES:
        acc += tl.load(res_ptr + out_offs, mask=out_mask, other=0.0).to(tl.float32)
    tl.store(y_ptr + out_offs, acc.to(y_ptr.dtype.element_ty), mask=out_mask)


def causal_conv(
    segments: Sequence[torch.Tensor],
    weight: torch.Tensor,
    kernel_size: tuple[int, int, int],
    *,
    bias: torch.Tensor | None = None,
    residual: torch.Tensor | None = None,
    config: TileConfig | None = None,
) -> torch.Tensor:
    """Valid-in-time, same-in-space conv over the frames of ``segments`` joined in order.

    Args:
        segments: one to three dense ``[F_i, H, W, C]`` tensors whose frames, in order,
            are the conv's input (history first); frames total ``T + kt - 1``.
        weight: :func:`pack_weight` of the ``[Co, C, kt, kh, kw]`` weight.
        kernel_size: ``(kt, kh, kw)``, ``kh`` and ``kw`` odd (zero padding ``k // 2``).
        bias: ``[Co]`` added in the epilogue.
        residual: ``[T, H, W, Co]`` added in the epilogue.

    Returns ``[T, H, W, Co]`` dense, in the segments' dtype, accumulated in float32
    (float32 inputs multiply in full precision, never TF32).
    """
    kt, kh, kw = kernel_size
    if not 1 <= len(segments) <= MAX_SEGMENTS:
        raise ValueError(f"causal_conv: 1 to {MAX_SEGMENTS} segments, got {len(segments)}")
    first = segments[0]
    _, h, w, c = first.shape
    for s in segments:
        if s.shape[1:] != first.shape[1:] or s.dtype != first.dtype or not s.is_contiguous():
            raise ValueError(
                "causal_conv: segments must be dense [F, H, W, C] of one pixel shape and dtype, "
                f"got {[tuple(s.shape) for s in segments]}"
            )
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"causal_conv: spatial kernel must be odd, got {kernel_size}")
    taps = kt * kh * kw
    if weight.shape[0] != taps * c or not weight.is_contiguous():
        raise ValueError(
            f"causal_conv: packed weight must be [{taps * c}, Co] dense, got {tuple(weight.shape)}"
        )
    co = weight.shape[1]
    frames_in = sum(s.shape[0] for s in segments)
    t = frames_in - kt + 1
    if t < 1:
        raise ValueError(f"causal_conv: {frames_in} input frames for a {kt}-frame kernel")
    cfg = config or default_config(
        c, co, w, tma=_has_tma(first.device), element_size=first.element_size()
    )
    if c % cfg.block_k:
        raise ValueError(f"causal_conv: {c} channels is not a multiple of block_k {cfg.block_k}")
    if cfg.block_w and cfg.block_w != cfg.block_m and cfg.block_k * first.element_size() >= 128:
        # Measured on an H200 with Triton 3.6: pipelined TMA tiles of several image rows
        # whose channel block spans 128 bytes (128-byte swizzle) compute wrong values
        # (errors up to 28 % of the output's range); one-row tiles, unpipelined ones and
        # 64-byte channel blocks are exact (benchmarks/experiments/exp3_tma_probe.py).
        raise ValueError(
            f"causal_conv: TMA tile of {cfg.block_m // cfg.block_w} rows with {cfg.block_k} "
            f"channels of {first.element_size()} bytes is miscompiled by Triton; use one-row "
            "tiles (block_w == block_m) or block_k * element size < 128 bytes"
        )
    out = first.new_empty(t, h, w, co)
    if residual is not None and (residual.shape != out.shape or not residual.is_contiguous()):
        raise ValueError(
            f"causal_conv: residual must be dense {tuple(out.shape)}, got {tuple(residual.shape)}"
        )
    # Frame index where segments 0 and 1 end (the last segment ends at frames_in).
    ends = list(accumulate(s.shape[0] for s in segments))[: MAX_SEGMENTS - 1]
    ends += [frames_in] * (MAX_SEGMENTS - 1 - len(ends))
    precision = "ieee" if first.dtype == torch.float32 else "tf32"
    padded = list(segments) + [first] * (MAX_SEGMENTS - len(segments))
    if cfg.block_w:
        _launch_tma(padded, weight, bias, residual, out, ends, (kt, kh, kw), cfg, precision)
        return out
    m = t * h * w
    grid = (triton.cdiv(m, cfg.block_m) * triton.cdiv(co, cfg.block_n),)
    _causal_conv_kernel[grid](
        padded[0], padded[1], padded[2], weight,
        bias if bias is not None else weight, residual if residual is not None else out, out,
        ends[0], ends[1], m, h, w, c, co, c // cfg.block_k, taps * (c // cfg.block_k),
        KT=kt, KH=kh, KW=kw,
        BLOCK_M=cfg.block_m, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        HAS_BIAS=bias is not None, HAS_RES=residual is not None,
        PRECISION=precision, num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip
    return out


def _launch_tma(
    segments: list[torch.Tensor],
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    residual: torch.Tensor | None,
    out: torch.Tensor,
    ends: list[int],
    kernel_size: tuple[int, int, int],
    cfg: TileConfig,
    precision: str,
) -> None:
    from triton.tools.tensor_descriptor import TensorDescriptor  # type: ignore[import-not-found, unused-ignore]

    kt, kh, kw = kernel_size
    t, h, w, co = out.shape
    c = segments[0].shape[3]
    block_h = cfg.block_m // cfg.block_w
    descs = [
        TensorDescriptor.from_tensor(s, [1, block_h, cfg.block_w, cfg.block_k]) for s in segments
    ]
    w_desc = TensorDescriptor.from_tensor(weight, [cfg.block_k, cfg.block_n])
    tiles = t * triton.cdiv(h, block_h) * triton.cdiv(w, cfg.block_w)
    grid = (tiles * triton.cdiv(co, cfg.block_n),)
    _causal_conv_tma_kernel[grid](
        descs[0], descs[1], descs[2], w_desc,
        bias if bias is not None else weight, residual if residual is not None else out, out,
        ends[0], ends[1], t, h, w, c, co, c // cfg.block_k,
        KT=kt, KH=kh, KW=kw, BLOCK_H=block_h, BLOCK_W=cfg.block_w, BLOCK_N=cfg.block_n,
        BLOCK_K=cfg.block_k, GROUP_M=cfg.group_m,
        HAS_BIAS=bias is not None, HAS_RES=residual is not None, PRECISION=precision,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages,
    )  # fmt: skip

"""Triton kernels of the fast Wan decoder path, on channels-last activations.

The fast path stores one batch element's activation as frames ``[F, H, W, C]``, densely,
so a pixel's channels form one contiguous row and an activation is a ``[rows, C]``
matrix. cuDNN runs the convolutions; these kernels do the memory-bound work around
them, each in one pass that writes straight into the buffer its consumer reads:

- :func:`conv_input`: the input of a causal conv in one launch: the two history frames
  (copied) followed by the chunk (optionally plus a residual and a bias, optionally
  RMS-normalized, optionally through SiLU), written into the conv's input buffer, a
  plain frame buffer ``[T + 2, P, C]`` or the *time-stacked* buffer ``[T, P, 3C]`` of
  the conv run as a 2-D conv (sequence frame ``p`` goes to buffer frame ``p - j`` at
  channel block ``j``), and its last two frames written once more into the new history
  tensor, so nothing is copied out of the buffer afterwards. With a residual, the sum
  ``x + residual + bias`` is rounded to the storage dtype first (and can be stored: it
  is the next block's residual), so the norm sees what an unfused add would have left.
- :func:`norm_into`: the same kernel without history: the attention's RMS norm.
- :func:`add_bias_residual_`: ``out += residual + bias`` in one pass, where the sum
  feeds a layer that cannot take it fused (attention, upsampler).
- :func:`subpixel_gather`: the last step of the upsamplers' "nearest 2x then 3x3 conv",
  computed as one 2x2 conv with four output phases on the low-resolution input (4/9 of
  the FLOPs, no 4x larger upsampled tensor): interleaves the phases into the 2x larger
  frame, adds the conv bias and, for Wan 2.2, the stage's spread shortcut read straight
  from the stage's input (the spread tensor, 4-8x that input, is never made).

Every kernel computes in float32 and rounds once on store. Triton is imported here
only, and this module is imported only when the fast path is in use.
"""

from __future__ import annotations

import torch
import triton  # type: ignore[import-not-found, unused-ignore]
import triton.language as tl  # type: ignore[import-not-found, unused-ignore]

__all__ = ["add_bias_residual_", "conv_input", "norm_into", "subpixel_gather"]

#: Launch shape of the row kernels: elements one program handles (rows per program =
#: this // padded channels) and its warps. ``benchmarks/kernel_configs.py`` measures
#: the choices on the decoders' own shapes; see benchmarks/NOTES.md.
TILE_ELEMENTS = 4096
NUM_WARPS = 4


def _channel_block(channels: int) -> int:
    return max(16, triton.next_power_of_2(channels))


def _rows_per_program(channels: int) -> int:
    return max(1, TILE_ELEMENTS // _channel_block(channels))


@triton.jit
def _conv_input_kernel(
    x_ptr, past_ptr, res_ptr, bias_ptr, gamma_ptr, out_ptr, hist_ptr, sum_ptr,
    rows, C, scale, P, head, hist_first,
    out_frame_stride, out_row_stride, out_frames,
    CP: tl.constexpr, BLOCK_M: tl.constexpr,
    HAS_PAST: tl.constexpr, HAS_RES: tl.constexpr, HAS_BIAS: tl.constexpr,
    NORM: tl.constexpr, SILU: tl.constexpr, SLOTS: tl.constexpr,
    HAS_HIST: tl.constexpr, WRITE_SUM: tl.constexpr,
):  # fmt: skip
    # Rows of the sequence [head frames of history, then the chunk's frames], P pixels
    # per frame; row r is pixel r % P of sequence frame r // P.
    pid = tl.program_id(0)
    r = (pid * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    c = tl.arange(0, CP)
    rmask = r < rows
    cmask = c < C
    frame = r // P
    pixel = r % P
    is_x = frame >= head
    xrow = r - head * P  # row of the chunk (negative for history rows)
    xmask = (rmask & is_x)[:, None] & cmask[None, :]
    xoffs = xrow[:, None] * C + c[None, :]
    v = tl.load(x_ptr + xoffs, mask=xmask, other=0.0).to(tl.float32)
    if HAS_RES:
        v += tl.load(res_ptr + xoffs, mask=xmask, other=0.0).to(tl.float32)
    if HAS_BIAS:
        v += tl.load(bias_ptr + c, mask=cmask, other=0.0).to(tl.float32)[None, :]
    if HAS_RES:
        # The sum as an unfused add would have stored it.
        stored = v.to(out_ptr.dtype.element_ty)
        if WRITE_SUM:
            tl.store(sum_ptr + xoffs, stored, mask=xmask)
        v = stored.to(tl.float32)
    if NORM:
        norm = tl.sqrt(tl.sum(v * v, axis=1))
        g = tl.load(gamma_ptr + c, mask=cmask, other=0.0).to(tl.float32)
        v = v * (scale / tl.maximum(norm, 1e-12))[:, None] * g[None, :]
    if SILU:
        v = v * tl.sigmoid(v)
    if HAS_PAST:
        pmask = (rmask & (frame < head))[:, None] & cmask[None, :]
        past = tl.load(past_ptr + r[:, None] * C + c[None, :], mask=pmask, other=0.0)
        v = tl.where(is_x[:, None], v, past.to(tl.float32))
    else:
        v = tl.where(is_x[:, None], v, 0.0)  # rollout start: zero history
    y = v.to(out_ptr.dtype.element_ty)
    for j in tl.static_range(SLOTS):
        o = frame - j
        ok = rmask & (o >= 0) & (o < out_frames)
        offs = o * out_frame_stride + pixel * out_row_stride + j * C
        tl.store(out_ptr + offs[:, None] + c[None, :], y, mask=ok[:, None] & cmask[None, :])
    if HAS_HIST:
        slot = frame - hist_first
        ok = rmask & (slot >= 0)
        offs = (slot * P + pixel) * C
        tl.store(hist_ptr + offs[:, None] + c[None, :], y, mask=ok[:, None] & cmask[None, :])


def conv_input(
    x: torch.Tensor,
    past: torch.Tensor | None,
    out: torch.Tensor,
    history: torch.Tensor | None,
    *,
    gamma: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    silu: bool = False,
    residual: torch.Tensor | None = None,
    sum_out: torch.Tensor | None = None,
) -> None:
    """Write a causal conv's input, in one launch.

    The sequence is ``past [2, P, C]`` (None: zeros) followed by ``f(x)`` for the chunk
    ``x [T, P, C]``, where ``f(v) = silu?(rms_norm?(round(v + residual?) + bias?))``:
    with a ``residual``, ``v + residual + bias`` is rounded to ``out``'s dtype (and
    stored into ``sum_out [T, P, C]`` if given) before the norm; without one, ``bias``
    is added in float32 and not rounded. The norm is ``v / ||v|| * sqrt(C) * gamma``
    over channels (the model's RMSNorm), applied when ``gamma`` is given. History
    frames are copied as they are.

    ``sum_out`` may be ``x`` itself: each element is read before it is written, by the
    same program, so the sum can replace the conv output it adds to.

    ``out`` is ``[T + 2, P, C]`` (sequence frame ``p`` at frame ``p``) or ``[T, P, 3C]``
    (stacked: frame ``p`` at frames ``p - j``, channels ``j*C:(j+1)*C``, for j < 3).
    ``history [2, P, C]``, if given, receives the sequence's last two frames.
    """
    frames, pixels, channels = x.shape
    _check_rows("conv_input", x, out, channels, pixels)
    slots = out.shape[-1] // channels
    if slots == 1 and out.shape[0] != frames + 2 or slots == 3 and out.shape[0] != frames:
        raise ValueError(f"conv_input: {tuple(out.shape)} is no input buffer of {frames} frames")
    for name, t, shape in (
        ("past", past, (2, pixels, channels)),
        ("history", history, (2, pixels, channels)),
        ("residual", residual, tuple(x.shape)),
        ("sum_out", sum_out, tuple(x.shape)),
    ):
        if t is not None and (tuple(t.shape) != shape or not t.is_contiguous()):
            raise ValueError(f"conv_input: {name} must be contiguous {shape}, got {tuple(t.shape)}")
    if sum_out is not None and residual is None:
        raise ValueError("conv_input: sum_out needs a residual")
    _launch(
        x, past, residual, bias, gamma, out, history, sum_out,
        frames=frames, head=2, slots=slots, silu=silu,
    )  # fmt: skip


def norm_into(
    x: torch.Tensor, out: torch.Tensor, *, gamma: torch.Tensor, bias: torch.Tensor | None = None
) -> None:
    """``out [T, P, C] = rms_norm(x [T, P, C] + bias?)`` (the attention's norm)."""
    frames, pixels, channels = x.shape
    _check_rows("norm_into", x, out, channels, pixels)
    if tuple(out.shape) != tuple(x.shape):
        raise ValueError(f"norm_into: cannot write {tuple(x.shape)} into {tuple(out.shape)}")
    _launch(
        x, None, None, bias, gamma, out, None, None, frames=frames, head=0, slots=1, silu=False
    )


def _check_rows(name: str, x: torch.Tensor, out: torch.Tensor, channels: int, pixels: int) -> None:
    slots = out.shape[-1] // channels
    if slots not in (1, 3) or out.shape[-1] != slots * channels or out.shape[1] != pixels:
        raise ValueError(f"{name}: cannot write {tuple(x.shape)} into {tuple(out.shape)}")
    if not (x.is_contiguous() and out.is_contiguous()):
        raise ValueError(f"{name}: input and output must be contiguous")


def _launch(
    x: torch.Tensor,
    past: torch.Tensor | None,
    residual: torch.Tensor | None,
    bias: torch.Tensor | None,
    gamma: torch.Tensor | None,
    out: torch.Tensor,
    history: torch.Tensor | None,
    sum_out: torch.Tensor | None,
    *,
    frames: int,
    head: int,
    slots: int,
    silu: bool,
) -> None:
    pixels, channels = x.shape[1], x.shape[2]
    rows = (head + frames) * pixels
    if rows == 0:
        return
    block_m = _rows_per_program(channels)
    _conv_input_kernel[(triton.cdiv(rows, block_m),)](
        x, past if past is not None else x, residual if residual is not None else x,
        bias if bias is not None else x, gamma if gamma is not None else x, out,
        history if history is not None else out, sum_out if sum_out is not None else x,
        rows, channels, float(channels) ** 0.5, pixels, head, head + frames - 2,
        pixels * slots * channels, slots * channels, out.shape[0],
        CP=_channel_block(channels), BLOCK_M=block_m,
        HAS_PAST=past is not None, HAS_RES=residual is not None, HAS_BIAS=bias is not None,
        NORM=gamma is not None, SILU=silu, SLOTS=slots, HAS_HIST=history is not None,
        WRITE_SUM=sum_out is not None, num_warps=NUM_WARPS,
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
    block_m = _rows_per_program(channels)
    _add_bias_residual_kernel[(triton.cdiv(rows, block_m),)](
        out, residual, bias if bias is not None else out, rows, channels,
        CP=_channel_block(channels), BLOCK_M=block_m, HAS_BIAS=bias is not None,
        num_warps=NUM_WARPS,
    )  # fmt: skip
    return out


@triton.jit
def _subpixel_gather_kernel(
    z_ptr, bias_ptr, s_ptr, y_ptr, rows, H, W, C,
    s_channels, time_factor, frame_shift, positions, repeats,
    CP: tl.constexpr, BLOCK_M: tl.constexpr, SHORTCUT: tl.constexpr, STRIDE: tl.constexpr,
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
    if SHORTCUT:
        # Spread frame s = n + shift comes from input frame s // time_factor, time
        # position s % time_factor; output channel o at position (time, row, column)
        # reads input channel (o * positions + position) // repeats.
        s = n + frame_shift
        position = (s % time_factor) * 4 + a * 2 + b
        s_row = ((s // time_factor) * H + y // 2) * W + x // 2
        if STRIDE > 0:  # repeats divides positions: no division per element
            channel = c[None, :] * STRIDE + (position // repeats)[:, None]
        else:
            channel = (c[None, :] * positions + position[:, None]) // repeats
        v += tl.load(s_ptr + s_row[:, None] * s_channels + channel, mask=mask, other=0.0).to(
            tl.float32
        )
    tl.store(y_ptr + r[:, None] * C + c[None, :], v.to(y_ptr.dtype.element_ty), mask=mask)


def subpixel_gather(
    phases: torch.Tensor,
    bias: torch.Tensor | None,
    shortcut: torch.Tensor | None = None,
    *,
    time_factor: int = 1,
    frame_shift: int = 0,
) -> torch.Tensor:
    """``[N, H + 1, W + 1, 4C]`` phase outputs -> ``[N, 2H, 2W, C]`` frames (+ bias).

    Output pixel ``(2i + a, 2j + b)`` is phase ``2a + b`` at ``(i + a, j + b)``: see
    :func:`reference_decoders.wan.fast.weights.subpixel_weight`.

    With ``shortcut`` (a stage's input ``[T, H, W, Cs]``), adds Wan 2.2's spread
    shortcut (:class:`~reference_decoders.wan.model.SpreadShortcut`): output frame
    ``n`` is spread frame ``n + frame_shift`` (the rollout's first frame keeps only its
    last copy: shift ``time_factor - 1`` in the tile that holds it), which is input frame
    ``s // time_factor`` at time position ``s % time_factor``.
    """
    n, h1, w1, c4 = phases.shape
    if c4 % 4 or not phases.is_contiguous():
        raise ValueError(
            f"subpixel_gather: need contiguous [N, H+1, W+1, 4C], got {tuple(phases.shape)}"
        )
    h, w, c = h1 - 1, w1 - 1, c4 // 4
    positions, repeats, s_channels = 1, 1, 1
    if shortcut is not None:
        frames, sh, sw, s_channels = shortcut.shape
        positions = 4 * time_factor
        if (
            (sh, sw) != (h, w)
            or not shortcut.is_contiguous()
            or (c * positions) % s_channels
            or (n + frame_shift + time_factor - 1) // time_factor != frames
        ):
            raise ValueError(
                f"subpixel_gather: shortcut {tuple(shortcut.shape)} does not spread onto "
                f"{n} frames of {2 * h}x{2 * w}x{c} (time factor {time_factor}, shift {frame_shift})"
            )
        repeats = c * positions // s_channels
    out = phases.new_empty(n, 2 * h, 2 * w, c)
    rows = out.numel() // c
    if rows == 0:
        return out
    block_m = _rows_per_program(c)
    _subpixel_gather_kernel[(triton.cdiv(rows, block_m),)](
        phases, bias if bias is not None else phases.new_zeros(c),
        shortcut if shortcut is not None else phases, out, rows, h, w, c,
        s_channels, time_factor, frame_shift, positions, repeats,
        CP=_channel_block(c), BLOCK_M=block_m, SHORTCUT=shortcut is not None,
        STRIDE=positions // repeats if positions % repeats == 0 else 0, num_warps=NUM_WARPS,
    )  # fmt: skip
    return out

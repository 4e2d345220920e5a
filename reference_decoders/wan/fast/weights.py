"""The model's conv weights rearranged for the forms the fast path runs them in.

Each function takes a weight as the eager module holds it and returns the weight of an
equivalent operation on channels-last frames ``[N, H, W, C]``. Plain torch, no Triton,
so the identities can be tested anywhere (``tests/wan/test_fast_weights.py``).
"""

from __future__ import annotations

import torch

__all__ = ["pointwise_weight", "stacked_conv_weight", "subpixel_weight", "time_conv_weight"]


def stacked_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, C, 3, kh, kw]`` causal conv -> ``[Co, 3C, kh, kw]`` 2-D conv over frames
    ``t, t+1, t+2`` stacked along channels (channel block ``j`` is frame ``t + j``, the
    temporal tap ``j``), in channels_last."""
    co, c, taps = weight.shape[:3]
    stacked = weight.permute(0, 2, 1, 3, 4).reshape(co, taps * c, *weight.shape[3:])
    return stacked.contiguous(memory_format=torch.channels_last)


def time_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """``[Co, C, 3, 1, 1]`` temporal-only conv -> ``[Co, 3C]`` matmul weight over the
    stacked frames (same block order as :func:`stacked_conv_weight`)."""
    co, c, taps = weight.shape[:3]
    return weight[:, :, :, 0, 0].permute(0, 2, 1).reshape(co, taps * c).contiguous()


def pointwise_weight(weight: torch.Tensor) -> torch.Tensor:
    """1x1 or 1x1x1 conv ``[Co, C, 1, ...]`` -> ``[Co, C]`` matmul weight."""
    return weight.reshape(weight.shape[0], weight.shape[1]).contiguous()


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """The ``[Co, C, 3, 3]`` conv that follows a nearest 2x upsample, as a ``[4Co, C, 2, 2]``
    conv over the low-resolution input zero-padded by one pixel (channels_last).

    Output pixel ``(2i + a, 2j + b)`` of upsample-then-conv reads upsampled rows
    ``2i + a - 1 .. 2i + a + 1``, which are low-resolution rows ``i - 1, i, i`` (a = 0) or
    ``i, i, i + 1`` (a = 1): two distinct rows, so the 3 kernel rows collapse to 2 by
    summing those that read the same row; likewise columns. Phase ``(a, b)`` is thus a
    2x2 conv whose output at padded position ``(i + a, j + b)`` is that pixel, and the
    four phases are the output-channel blocks ``2a + b``. The upsampled image's zero
    padding maps to the padded border, so borders are exact too. 4 taps instead of 9 per
    output pixel, and the 4x larger upsampled tensor is never made. Summed in float64,
    rounded once to the weight's dtype.
    """
    co, c = weight.shape[:2]
    w = weight.detach().to(torch.float64)
    # collapse[a, r, d] = 1 when kernel row d of phase a reads padded low-res row i + a + r.
    collapse = w.new_tensor([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]])
    phases = torch.einsum("ard,bse,ocde->abocrs", collapse, collapse, w)
    phases = phases.reshape(4 * co, c, 2, 2).to(weight.dtype)
    return phases.contiguous(memory_format=torch.channels_last)

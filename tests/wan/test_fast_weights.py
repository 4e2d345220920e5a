"""The fast path's weight rearrangements compute the same operations (plain torch, CPU).

Each test runs the eager operation (as ``model.py`` does it) and the rearranged one on
random float64 data and weights; only summation order differs, so they must agree to
float64 rounding (``<= 1e-12`` on values of order one). A wrong tap order, a swapped
phase or a mis-collapsed kernel row gives errors of order one.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reference_decoders.wan.fast.weights import (
    pointwise_weight,
    stacked_conv_weight,
    subpixel_weight,
    time_conv_weight,
)

ATOL = 1e-12


def _randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _stack_frames(padded: torch.Tensor) -> torch.Tensor:
    """``[C, T + 2, H, W]`` -> ``[T, 3C, H, W]``: frames ``t, t+1, t+2`` along channels."""
    t = padded.shape[1] - 2
    return torch.cat([padded[:, j : j + t] for j in range(3)], dim=0).transpose(0, 1)


def test_stacked_conv_equals_causal_conv3d() -> None:
    padded = _randn(1, 6, 5, 7, 9, seed=0)  # history (2) + 3 frames
    weight = _randn(4, 6, 3, 3, 3, seed=1)
    expected = F.conv3d(padded, weight, padding=(0, 1, 1))[0].transpose(0, 1)  # [T, Co, H, W]
    actual = F.conv2d(_stack_frames(padded[0]), stacked_conv_weight(weight), padding=1)
    assert (actual - expected).abs().max() <= ATOL


def test_time_conv_weight_equals_temporal_conv() -> None:
    padded = _randn(1, 6, 5, 4, 3, seed=2)
    weight = _randn(12, 6, 3, 1, 1, seed=3)
    expected = F.conv3d(padded, weight)[0].permute(1, 2, 3, 0)  # [T, H, W, Co]
    stacked = _stack_frames(padded[0]).permute(0, 2, 3, 1)  # [T, H, W, 3C]
    actual = stacked @ time_conv_weight(weight).T
    assert (actual - expected).abs().max() <= ATOL


def test_pointwise_weight_equals_1x1x1_conv() -> None:
    x = _randn(1, 6, 2, 3, 4, seed=4)
    weight = _randn(5, 6, 1, 1, 1, seed=5)
    expected = F.conv3d(x, weight)[0].permute(1, 2, 3, 0)
    actual = x[0].permute(1, 2, 3, 0) @ pointwise_weight(weight).T
    assert (actual - expected).abs().max() <= ATOL


def _gather_phases(phases: torch.Tensor) -> torch.Tensor:
    """Reference interleave of ``[N, 4C, H + 1, W + 1]`` phases into ``[N, C, 2H, 2W]``,
    written from the rule in ``subpixel_weight``'s docstring."""
    n, c4, h1, w1 = phases.shape
    c, h, w = c4 // 4, h1 - 1, w1 - 1
    out = phases.new_empty(n, c, 2 * h, 2 * w)
    for a in (0, 1):
        for b in (0, 1):
            block = phases[:, (2 * a + b) * c : (2 * a + b + 1) * c]
            out[:, :, a::2, b::2] = block[:, :, a : a + h, b : b + w]
    return out


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (6, 4)])
def test_subpixel_conv_equals_nearest_upsample_then_conv(size: tuple[int, int]) -> None:
    h, w = size
    x = _randn(2, 6, h, w, seed=6)
    weight = _randn(4, 6, 3, 3, seed=7)
    expected = F.conv2d(F.interpolate(x, scale_factor=2.0, mode="nearest-exact"), weight, padding=1)
    phases = F.conv2d(F.pad(x, (1, 1, 1, 1)), subpixel_weight(weight))
    actual = _gather_phases(phases)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max() <= ATOL


def test_subpixel_weight_rounds_once_in_low_precision() -> None:
    """Collapsed taps are summed in float64 and rounded once, not summed in bf16."""
    weight = _randn(4, 6, 3, 3, seed=8).to(torch.bfloat16)
    rounded_once = subpixel_weight(weight.to(torch.float64)).to(torch.bfloat16)
    assert torch.equal(subpixel_weight(weight), rounded_once)

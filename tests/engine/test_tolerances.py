"""Tolerance derivation and the elementwise comparison."""

from __future__ import annotations

import math

import pytest
import torch

from conformance.tolerances import (
    ACCUMULATION_FACTOR,
    STORAGE_FACTOR,
    Tolerance,
    compare,
    default_tolerance,
    tolerance_for,
    unit_roundoff,
)
from reference_decoders.toy import toy_spec


@pytest.mark.parametrize(
    ("dtype", "u", "u_acc"),
    [
        (torch.float64, 2.0**-53, 2.0**-53),
        (torch.float32, 2.0**-24, 2.0**-24),
        (torch.float16, 2.0**-11, 2.0**-24),
        (torch.bfloat16, 2.0**-8, 2.0**-24),
    ],
)
def test_default_follows_the_documented_formula(dtype: torch.dtype, u: float, u_acc: float) -> None:
    assert unit_roundoff(dtype) == u
    tolerance = default_tolerance(dtype)
    expected = STORAGE_FACTOR * u + ACCUMULATION_FACTOR * u_acc
    assert tolerance.atol == pytest.approx(expected) and tolerance.rtol == pytest.approx(expected)


def test_lower_precision_is_never_tighter() -> None:
    taus = [default_tolerance(d).atol for d in (torch.float64, torch.float32, torch.float16, torch.bfloat16)]
    assert taus == sorted(taus)
    # Orders of magnitude that matter: fp32 catches a 1e-3 seam error; bf16 stays well
    # below the O(1) errors of a dropped or duplicated history frame.
    assert 1e-4 < default_tolerance(torch.float32).atol < 1e-3
    assert 1e-2 < default_tolerance(torch.float16).atol < 2e-2
    assert 0.1 < default_tolerance(torch.bfloat16).atol < 0.2


def test_integer_outputs_allow_one_quantization_step() -> None:
    tolerance = default_tolerance(torch.uint8)
    assert (tolerance.atol, tolerance.rtol) == (1.0, 0.0)


def test_spec_overrides_each_bound_independently() -> None:
    assert tolerance_for(toy_spec()).source == "float32 default"
    both = tolerance_for(toy_spec(atol=1e-3, rtol=0.0))
    assert (both.atol, both.rtol) == (1e-3, 0.0)
    only_atol = tolerance_for(toy_spec(atol=1e-2))
    assert only_atol.atol == 1e-2 and only_atol.rtol == default_tolerance(torch.float32).rtol
    mixed = tolerance_for(toy_spec(dtype=torch.bfloat16, output_dtype=torch.float32))
    assert mixed.atol == default_tolerance(torch.bfloat16).atol


def test_reassociation_noise_of_a_real_op_is_within_the_float32_default() -> None:
    """The same causal convolution over a sequence, in one call and frame by frame."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 64, 12, 8, 8, generator=generator)
    kernel = torch.randn(64, 64, 3, 3, 3, generator=generator) / (64 * 27) ** 0.5
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1, 2, 0))
    full = torch.nn.functional.conv3d(padded, kernel)
    pieces = [torch.nn.functional.conv3d(padded[:, :, t : t + 3], kernel) for t in range(12)]
    chunked = torch.cat(pieces, dim=2)
    comparison = compare(full, chunked, default_tolerance(torch.float32))
    assert comparison.ok, comparison.describe()
    assert comparison.ratio < 0.1  # room to spare for deeper networks


def test_compare_locates_the_first_bad_frame_and_reports_the_margin() -> None:
    tolerance = Tolerance(atol=1e-3, rtol=0.0, source="test")
    expected = torch.zeros(1, 3, 6, 4, 4)
    actual = expected.clone()
    actual[0, 1, 2, 0, 0] = 5e-4  # within
    actual[0, 2, 4, 3, 1] = 2e-3  # out
    actual[0, 0, 5, 0, 0] = 4e-3  # worst
    comparison = compare(expected, actual, tolerance)
    assert not comparison.ok
    assert comparison.first_bad_frame == 4
    assert comparison.worst == (0, 0, 5, 0, 0)
    assert comparison.max_abs_error == pytest.approx(4e-3)
    assert comparison.ratio == pytest.approx(4.0)
    assert comparison.margin == pytest.approx(-3.0)
    text = comparison.describe(frame_offset=10)
    assert "first mismatching pixel frame 14" in text and "frame 15" in text


def test_compare_within_tolerance_and_exact() -> None:
    tolerance = Tolerance(atol=1e-3, rtol=1e-3, source="test")
    expected = torch.ones(1, 1, 2, 2, 2)
    comparison = compare(expected, expected + 1e-3, tolerance)
    assert comparison.ok and comparison.ratio == pytest.approx(0.5, rel=1e-3)  # float32 input
    exact = compare(expected, expected.clone(), Tolerance(0.0, 0.0, "exact"))
    assert exact.ok and exact.max_abs_error == 0.0


def test_compare_reports_shape_and_nan_problems() -> None:
    tolerance = default_tolerance(torch.float32)
    shape = compare(torch.zeros(1, 3, 4, 2, 2), torch.zeros(1, 3, 5, 2, 2), tolerance)
    assert not shape.ok and "shapes differ" in shape.describe()
    expected = torch.zeros(1, 1, 3, 1, 1)
    nan_both = expected.clone()
    nan_both[0, 0, 1] = math.nan
    assert compare(nan_both, nan_both.clone(), tolerance).ok
    nan_one = compare(expected, nan_both, tolerance)
    assert not nan_one.ok and nan_one.first_bad_frame == 1 and math.isinf(nan_one.max_abs_error)
    inf = torch.full((1, 1, 1, 1, 1), math.inf)
    assert compare(inf, inf.clone(), tolerance).ok

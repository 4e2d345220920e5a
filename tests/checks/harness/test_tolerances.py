"""Tolerance derivation and the comparison: elementwise, and the RMS of every pixel frame."""

from __future__ import annotations

import math

import pytest
import torch

from conformance.checks.harness.evidence import Evidence
from conformance.checks.harness.tolerances import (
    ACCUMULATION_FACTOR,
    NOISE_FACTOR,
    STORAGE_FACTOR,
    STORAGE_RMS_FACTOR,
    Tolerance,
    compare,
    default_tolerance,
    frame_rms_errors,
    noise_tolerance,
    saturation_bounds,
    signal_mask,
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
    assert tolerance.rms == pytest.approx(STORAGE_RMS_FACTOR * u + ACCUMULATION_FACTOR * u_acc)
    assert tolerance.rms <= tolerance.atol  # an RMS never exceeds the maximum it summarizes


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
    assert (tolerance.atol, tolerance.rtol, tolerance.rms) == (1.0, 0.0, 1.0)


def test_spec_overrides_each_bound_independently() -> None:
    assert tolerance_for(toy_spec()).source == "float32 default"
    both = tolerance_for(toy_spec(atol=1e-3, rtol=0.0))
    assert (both.atol, both.rtol) == (1e-3, 0.0)
    only_atol = tolerance_for(toy_spec(atol=1e-2))
    assert only_atol.atol == 1e-2 and only_atol.rtol == default_tolerance(torch.float32).rtol
    mixed = tolerance_for(toy_spec(dtype=torch.bfloat16, output_dtype=torch.float32))
    assert mixed.atol == default_tolerance(torch.bfloat16).atol
    assert mixed.rms == default_tolerance(torch.bfloat16).rms


def test_rms_bound_override_and_scaling_with_an_atol_override() -> None:
    default = default_tolerance(torch.float32)
    assert tolerance_for(toy_spec()).rms == default.rms
    only_rms = tolerance_for(toy_spec(rms_tol=1e-3))
    assert only_rms.rms == 1e-3 and (only_rms.atol, only_rms.rtol) == (default.atol, default.rtol)
    # atol states the output scale (pixels in [0, 255], say): the RMS bound follows it...
    scaled = tolerance_for(toy_spec(atol=255 * default.atol))
    assert scaled.rms == pytest.approx(255 * default.rms)
    # ... unless rms_tol says otherwise; rtol alone says nothing about the scale.
    assert tolerance_for(toy_spec(atol=1.0, rms_tol=0.5)).rms == 0.5
    assert tolerance_for(toy_spec(rtol=0.5)).rms == default.rms
    with pytest.raises(ValueError, match="rms_tol"):
        toy_spec(rms_tol=-1.0)


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
    nan_one = compare(expected, nan_both, tolerance)
    assert not nan_one.ok and nan_one.first_bad_frame == 1 and math.isinf(nan_one.max_abs_error)
    # Non-finite values never agree, not even with the same non-finite value: an all-NaN
    # decoder compared with itself must not pass as "max error 0".
    same_nan = compare(nan_both, nan_both.clone(), tolerance)
    assert not same_nan.ok and same_nan.first_bad_frame == 1 and same_nan.non_finite == 1
    for value in (math.inf, -math.inf, math.nan):
        bad = torch.full((1, 1, 2, 1, 1), value)
        same = compare(bad, bad.clone(), tolerance)
        assert not same.ok and same.first_bad_frame == 0 and math.isinf(same.max_abs_error)


def _with_rounding_noise(
    exact: torch.Tensor, dtype: torch.dtype, ulps_sd: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``exact`` rounded to ``dtype``, and the same values moved by a random whole number of
    ``dtype`` ulps per element (normal with ``ulps_sd`` standard deviation, rounded):
    rounding noise of the kind two correct decodes differ by, independent per element."""
    expected = exact.to(dtype)
    ulp = torch.finfo(dtype).eps * torch.exp2(torch.floor(torch.log2(expected.float().abs().clamp_min(1e-30))))
    steps = torch.round(torch.randn(exact.shape, generator=generator) * ulps_sd)
    actual = (expected.float() + steps * ulp).to(dtype)
    return expected, actual


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_elementwise_rounding_noise_passes_both_criteria(dtype: torch.dtype) -> None:
    """Noise of the modelled size (about 1.5 ulps RMS, several ulps at most) averages out
    over a frame: both criteria hold, the frame RMS one with room to spare."""
    generator = torch.Generator().manual_seed(0)
    exact = torch.rand(1, 3, 8, 64, 64, generator=generator) * 2 - 1
    expected, actual = _with_rounding_noise(exact, dtype, ulps_sd=1.5, generator=generator)
    comparison = compare(expected, actual, default_tolerance(dtype))
    u = unit_roundoff(dtype)
    assert comparison.max_abs_error >= 6 * u  # several ulps somewhere: not a vacuous test
    assert comparison.ok, comparison.describe()
    assert comparison.rms_ratio < 0.75 and comparison.ratio < 0.5
    assert comparison.failed_criteria == ()


@pytest.mark.parametrize(("dtype", "scale_error"), [(torch.float16, 0.015), (torch.bfloat16, 0.06)])
def test_a_structured_frame_wide_error_fails_the_frame_rms_criterion(
    dtype: torch.dtype, scale_error: float
) -> None:
    """One frame scaled by a few percent (history scaled at a seam), a little below the
    elementwise bound of the dtype (1.6% in float16, 12.5% in bfloat16), on top of the
    rounding noise: not noise, and the frame RMS criterion says so."""
    generator = torch.Generator().manual_seed(1)
    exact = torch.rand(1, 3, 8, 64, 64, generator=generator) * 2 - 1
    expected, actual = _with_rounding_noise(exact, dtype, ulps_sd=1.5, generator=generator)
    actual[:, :, 5] = (actual[:, :, 5].float() * (1 + scale_error)).to(dtype)
    comparison = compare(expected, actual, default_tolerance(dtype))
    assert not comparison.ok
    assert comparison.failed_criteria == ("frame RMS",)  # the elementwise bound lets it pass
    assert comparison.first_bad_frame == comparison.first_bad_rms_frame == comparison.rms_frame == 5
    assert comparison.rms_ratio > 2 and comparison.rms_margin < -1 and comparison.ratio < 1
    text = comparison.describe(frame_offset=10)
    assert "frame RMS criterion failed from pixel frame 15" in text
    assert "elementwise criterion holds" in text
    assert f"{comparison.rms_error:.3g}" in text and f"{default_tolerance(dtype).rms:.3g}" in text


def test_frame_rms_is_per_frame_and_absent_from_hand_made_tolerances() -> None:
    expected = torch.zeros(2, 3, 4, 4, 4)
    actual = expected.clone()
    actual[:, :, 2] = 0.01  # every element of frame 2 off by 0.01: RMS 0.01
    comparison = compare(expected, actual, Tolerance(atol=0.1, rtol=0.0, source="test", rms=0.005))
    assert comparison.failed_criteria == ("frame RMS",)
    assert comparison.rms_error == pytest.approx(0.01) and comparison.rms_ratio == pytest.approx(2.0)
    assert comparison.rms_frame == 2 and comparison.first_bad_frame == 2
    assert compare(expected, actual, Tolerance(atol=0.1, rtol=0.0, source="test")).ok
    # One element alone in a big frame is an elementwise matter, not a frame RMS one.
    varied = torch.rand(2, 3, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    single = varied.clone()
    single[0, 0, 1, 0, 0] += 0.04  # frame RMS 0.04 / sqrt(96) = 0.0041
    assert compare(varied, single, Tolerance(atol=0.1, rtol=0.0, source="test", rms=0.005)).ok


# --- signal: clamp bounds from the data, constant frames, non-finite values -----------


def test_clamp_bounds_are_read_from_the_data_not_assumed() -> None:
    generator = torch.Generator().manual_seed(2)
    raw = torch.randn(1, 3, 4, 8, 8, generator=generator)
    clamped = raw.clamp(-0.5, 2.0)  # an unusual range: nothing may assume [-1, 1]
    assert saturation_bounds(clamped) == (-0.5, 2.0)
    assert saturation_bounds(raw) == (None, None)  # a continuous output reaches its extremes once
    only_high = raw.clamp(max=0.25)
    assert saturation_bounds(only_high) == (None, 0.25)


def test_a_seam_error_in_a_mostly_clamped_frame_fails_the_frame_rms_criterion() -> None:
    """Seven rows in eight sit on the clamp bound in both outputs; the eighth carries a 4%
    structured error. Over the signal it is several times the bfloat16 RMS bound; averaged
    with the clamped pixels (as before issue 9) it would have passed."""
    generator = torch.Generator().manual_seed(3)
    expected = (torch.rand(1, 3, 6, 32, 32, generator=generator) * 1.6 - 0.8).to(torch.bfloat16)
    pinned = (torch.arange(32) % 8 != 0).view(1, 1, 1, -1, 1)
    expected = torch.where(pinned, torch.ones_like(expected), expected)
    actual = expected.clone()
    actual[:, :, 3:] = torch.where(pinned, actual[:, :, 3:], actual[:, :, 3:] * 1.04)
    tolerance = default_tolerance(torch.bfloat16)
    comparison = compare(expected, actual, tolerance)
    assert comparison.failed_criteria == ("frame RMS",) and comparison.first_bad_frame == 3
    assert comparison.signal_fraction == pytest.approx(1 / 8, abs=0.01)
    assert comparison.signal_frames == 6
    diluted = (actual.double() - expected.double()).square().mean(dim=(0, 1, 3, 4)).sqrt().max()
    assert float(diluted) < tolerance.rms < comparison.rms_error  # the slip this closes


def test_constant_regions_of_a_correct_decoder_are_left_out_not_held_against_it() -> None:
    generator = torch.Generator().manual_seed(4)
    exact = torch.rand(1, 3, 8, 64, 64, generator=generator) * 1.8 - 0.9
    exact[:, :, :, :16] = -1.0  # letterbox bars on the lower clamp bound
    exact[:, :, :, 48:] = -1.0
    exact[:, :, 5] = 0.25  # one frame constant (a fade to grey)
    expected, actual = _with_rounding_noise(exact, torch.bfloat16, ulps_sd=1.5, generator=generator)
    actual = torch.where(exact == -1.0, expected, actual)
    actual[:, :, 5] = expected[:, :, 5]
    comparison = compare(expected, actual, default_tolerance(torch.bfloat16))
    assert comparison.ok, comparison.describe()
    assert comparison.signal_frames == 7  # the constant frame carries no signal
    assert 0.40 < comparison.signal_fraction < 0.45  # 7/8 of the frames, half of each


def test_outputs_without_signal_are_not_evidence() -> None:
    clamped = torch.ones(1, 3, 4, 8, 8)
    clamped[:, :, :, ::2] = -1.0
    comparison = compare(clamped, clamped.clone(), default_tolerance(torch.float32))
    assert comparison.ok and comparison.signal_elements == 0 and comparison.signal_frames == 0
    evidence = Evidence()
    evidence.record_comparison(comparison, frames=4)
    assert evidence.unexercised(("compared_frames",)) == ["signal"]
    assert "too little signal" in evidence.why_unexercised(["signal"])
    assert evidence.as_dict()["signal_frames"] == 0


def test_signal_mask_never_hides_a_non_finite_value() -> None:
    expected = torch.ones(1, 1, 2, 2, 2)
    actual = expected.clone()
    actual[0, 0, 1, 0, 0] = math.inf  # on the "bound" side, but not a number
    mask = signal_mask(expected, actual)
    assert bool(mask[0, 0, 1, 0, 0])
    assert not compare(expected, actual, default_tolerance(torch.float32)).ok


# --- measured noise -------------------------------------------------------------------


def test_noise_tolerance_is_three_times_the_measured_noise_with_a_floor() -> None:
    tolerance = noise_tolerance(
        0.002, output_scale=0.4, dtype=torch.bfloat16, reference_dtype=torch.float32
    )
    assert tolerance.rms == pytest.approx(NOISE_FACTOR * 0.002) and NOISE_FACTOR == 3
    assert math.isinf(tolerance.atol) and tolerance.as_dict()["atol"] is None
    assert "rounding noise" in str(tolerance) and "float32 twin" in str(tolerance)
    floored = noise_tolerance(1e-6, output_scale=0.4, dtype=torch.bfloat16, reference_dtype=torch.float32)
    assert floored.rms == pytest.approx(unit_roundoff(torch.bfloat16) * 0.4)
    # No elementwise part: a single large element is the dtype bound's business.
    expected = torch.zeros(1, 3, 2, 16, 16)
    actual = expected.clone()
    actual[0, 0, 1, 0, 0] = 0.01
    assert compare(expected, actual, tolerance).ok


def test_noise_criterion_separates_rounding_from_a_structured_error() -> None:
    """Two independent roundings of one function are equally far from the exact values;
    a 3% structured error on top of one of them is several times that distance."""
    generator = torch.Generator().manual_seed(5)
    exact = torch.rand(1, 3, 6, 32, 32, generator=generator, dtype=torch.float64) * 1.6 - 0.8
    full, chunked = (
        _with_rounding_noise(exact.float(), torch.bfloat16, ulps_sd=1.0, generator=generator)[1]
        for _ in range(2)
    )
    sigma = float(frame_rms_errors(exact, full).max())
    tolerance = noise_tolerance(
        sigma, output_scale=float(exact.square().mean().sqrt()), dtype=torch.bfloat16,
        reference_dtype=torch.float64,
    )
    assert compare(exact, chunked, tolerance).rms_ratio < 1 / 2  # about 1/3
    seam = chunked.clone()
    seam[:, :, 4:] = (seam[:, :, 4:].float() * 1.03).to(torch.bfloat16)
    broken = compare(exact, seam, tolerance)
    assert not broken.ok and broken.first_bad_frame == 4
    # The dtype-derived bound lets the same seam error through.
    assert compare(full, seam, default_tolerance(torch.bfloat16)).ok


def test_reference_dtype_must_be_wider_and_a_reference_factory_needs_it() -> None:
    spec = toy_spec(dtype=torch.bfloat16, reference_dtype=torch.float32)
    assert spec.reference_dtype is torch.float32
    with pytest.raises(ValueError, match="more precise"):
        toy_spec(reference_dtype=torch.float32)
    with pytest.raises(ValueError, match="more precise"):
        toy_spec(dtype=torch.bfloat16, reference_dtype=torch.float16)
    with pytest.raises(ValueError, match="needs reference_dtype"):
        toy_spec(dtype=torch.bfloat16, reference_factory=lambda: None)


def test_small_wan_in_bfloat16_passes_against_its_own_noise() -> None:
    """The bundled small Wan decoder in bfloat16 on the CPU, its float32 twin made by
    ``.to(torch.float32)``: no false alarm, and the criterion really ran."""
    import dataclasses

    from conformance import run_check
    from reference_decoders.wan.specs import small_cpu_config, spec_for

    config = dataclasses.replace(small_cpu_config(), dtype=torch.bfloat16)
    spec = dataclasses.replace(
        spec_for(config, name="wan-small-bf16", latent_size=(4, 4)), reference_dtype=torch.float32
    )
    result = run_check(spec, "chunked_decode_matches_full_decode", profile="quick", seed=11)
    assert result.status == "passed", result.message
    assert result.evidence["reference_noise_rms"] > 0
    assert result.evidence["max_frame_rms_to_noise_bound"] < 0.5  # measured 1/3: chunk-invariant


def test_a_non_finite_output_fails_naming_the_call_the_frames_and_the_count() -> None:
    """Every output the kit sees must be finite: the failure names the AR index, the
    pixel frames and how many values, in whichever check meets it first."""
    from conformance import run_check
    from reference_decoders.toy import ToyVideoDecoder

    class TurnsNaNAtStepTwo(ToyVideoDecoder):
        def forward(self, input, autoregressive_index=0, cache=None):  # type: ignore[no-untyped-def]
            output = super().forward(input, autoregressive_index, cache)
            if autoregressive_index == 2:
                output[:, 1, -1] = float("nan")  # one channel of the call's last frame
                output[0, 0, 0, 0, 0] = -math.inf
            return output

    spec = toy_spec(factory=lambda: TurnsNaNAtStepTwo(__import__("reference_decoders.toy", fromlist=["x"]).ToyDecoderConfig()))
    result = run_check(spec, "outputs_are_finite", profile="quick", seed=3)
    assert result.status == "failed"
    message = result.message
    assert "forward at AR 2 with 2 latent frames" in message  # the plan is [3, 1, 2, ...]
    assert "65 non-finite value(s) out of 1536 (64 NaN, 0 +Inf, 1 -Inf)" in message
    assert "in 2 of its 8 pixel frame(s), first in pixel frame 0 of that output" in message
    assert "the 4 latent frames before that call decoded to finite pixels" in message

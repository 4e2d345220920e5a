"""Dtype-aware tolerances for comparing two decodes that should agree, and the comparison.

Why two correct decodes differ at all
-------------------------------------
Decoding a sequence chunk by chunk and decoding it in one call compute the same
mathematical function, but not the same floating-point program: reductions see their
terms in a different order, and the backend picks kernels by shape (an im2col GEMM for
one chunk length, a direct or Winograd convolution for another; on CUDA, split-K and
atomics). A correct decoder's two outputs therefore differ by rounding only, and the
bound below is for rounding only. Anything a seam bug, a dropped history frame or a
leaked cache produces is orders of magnitude larger.

The model
---------
With unit roundoff ``u = eps / 2`` of a floating dtype:

* **Accumulation.** A dot product of length ``n`` computed in two orders differs by about
  ``sqrt(n) * u`` relative to the sum of magnitudes (probabilistic rounding analysis,
  Higham & Mary 2019; the worst case ``n * u`` is never approached by real kernels). A
  decoder stacks ``L`` such layers, and the difference made in one layer is carried
  through the later ones, so the output differs by about ``L * sqrt(n) * u_acc``. We take
  a video VAE decoder as the sizing case: ``L ~ 32`` layers and reductions of
  ``n ~ 3*3*3*512 ~ 2**14``, so ``L * sqrt(n) ~ 2**5 * 2**7 = 2**12``:
  ``ACCUMULATION_FACTOR = 4096``. ``u_acc`` is the accumulator's roundoff: float32's for
  float16/bfloat16 (CPU and GPU kernels accumulate those in float32) and the dtype's own
  for float32/float64.
* **Storage.** With a 16-bit dtype every layer rounds its output to 16 bits. When the
  accumulators differ slightly, some stored values round to the neighbouring 16-bit
  number: one-ulp flips (about ``u`` relative to the activation scale) that the later
  layers carry to the output. Flips of independent sign from ``L ~ 32`` layers add up
  like a random walk, ``sqrt(L) * u ~ 6 u`` per element; the comparison takes the
  *largest* error over all output elements (``10**5`` to ``10**7`` of them), about
  five of those standard deviations: ``~ 30 u``. ``STORAGE_FACTOR = 32``. (Measured on
  the bundled Wan decoder, small configuration, float16 on CPU, chunked against full:
  root-mean-square 1.3 ``u``, largest 9.5 ``u`` over 64512 elements.)

So ``tau(dtype) = STORAGE_FACTOR * u(dtype) + ACCUMULATION_FACTOR * u_acc(dtype)`` and
elements agree when ``|actual - expected| <= atol + rtol * |expected|`` with
``atol = rtol = tau``. ``atol = tau`` assumes outputs of order one (pixels in [-1, 1] or
[0, 1]); a decoder with another output scale sets ``DecoderSpec.atol``.

=========  ===========  ==========
dtype      u            tau
=========  ===========  ==========
float64    1.1e-16      4.6e-13
float32    6.0e-8       2.4e-4
float16    4.9e-4       1.6e-2
bfloat16   3.9e-3       1.3e-1
=========  ===========  ==========

Integer outputs (say uint8 pixels) compare with ``atol = 1, rtol = 0``: the final rounding
of a value that differs by rounding can move it one step.

``DecoderSpec.atol`` / ``rtol`` replace the defaults (each independently). Tolerances are
for *numerical* comparisons only; the kit compares bitwise where rounding cannot enter
(the input is not modified, module parameters are unchanged, a returned output does not
change later).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from conformance.spec import DecoderSpec

__all__ = [
    "ACCUMULATION_FACTOR",
    "STORAGE_FACTOR",
    "Comparison",
    "Tolerance",
    "compare",
    "default_tolerance",
    "tolerance_for",
    "unit_roundoff",
]

STORAGE_FACTOR = 32
ACCUMULATION_FACTOR = 2**12


def unit_roundoff(dtype: torch.dtype) -> float:
    """``eps / 2`` of a floating dtype: the largest relative error of one rounding."""
    return torch.finfo(dtype).eps / 2


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|actual - expected| <= atol + rtol * |expected|``."""

    atol: float
    rtol: float
    source: str  # how it was chosen, for reports: "float32 default" or "spec override"

    def allowed(self, expected: torch.Tensor) -> torch.Tensor:
        return self.atol + self.rtol * expected.abs()

    def as_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "rtol": self.rtol, "source": self.source}

    def __str__(self) -> str:
        return f"atol {self.atol:.2g} + rtol {self.rtol:.2g} * |expected| ({self.source})"


def default_tolerance(dtype: torch.dtype) -> Tolerance:
    """The derived default for outputs computed in ``dtype`` (see the module docstring)."""
    if not dtype.is_floating_point:
        if dtype.is_complex:
            raise ValueError(f"no default tolerance for complex dtype {dtype}")
        return Tolerance(atol=1.0, rtol=0.0, source=f"{dtype} default (one quantization step)")
    u = unit_roundoff(dtype)
    u_acc = u if torch.finfo(dtype).bits >= 32 else unit_roundoff(torch.float32)
    tau = STORAGE_FACTOR * u + ACCUMULATION_FACTOR * u_acc
    return Tolerance(atol=tau, rtol=tau, source=f"{str(dtype).removeprefix('torch.')} default")


def tolerance_for(spec: DecoderSpec) -> Tolerance:
    """The tolerance the checks use for ``spec``: the loosest default of its compute and
    output dtypes, with ``spec.atol`` / ``spec.rtol`` taking precedence."""
    defaults = [default_tolerance(spec.dtype)]
    if spec.resolved_output_dtype != spec.dtype:
        defaults.append(default_tolerance(spec.resolved_output_dtype))
    base = max(defaults, key=lambda t: (t.atol, t.rtol))
    if spec.atol is None and spec.rtol is None:
        return base
    return Tolerance(
        atol=float(spec.atol) if spec.atol is not None else base.atol,
        rtol=float(spec.rtol) if spec.rtol is not None else base.rtol,
        source="spec override" + ("" if spec.atol is not None and spec.rtol is not None else f" / {base.source}"),
    )


@dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``expected`` (both canonical ``BCTHW``).

    ``ratio`` is the largest ``error / allowed`` over all elements: ``<= 1`` means within
    tolerance, and ``1 - ratio`` is the margin left. ``worst`` is the (b, c, t, h, w) index
    of that element. ``first_bad_frame`` is the first pixel frame (time index) holding an
    element out of tolerance. ``shape_problem`` is set instead when shapes differ.
    """

    ok: bool
    max_abs_error: float
    ratio: float
    worst: tuple[int, ...] | None
    allowed_at_worst: float
    error_at_worst: float
    first_bad_frame: int | None
    tolerance: Tolerance
    shape_problem: str | None = None

    @property
    def margin(self) -> float:
        """Fraction of the tolerance left unused at the worst element (negative: exceeded)."""
        return 1.0 - self.ratio

    def describe(self, frame_offset: int = 0) -> str:
        """One human sentence: where it first goes wrong and by how much."""
        if self.shape_problem:
            return self.shape_problem
        if self.ok:
            return (
                f"within tolerance: largest error {self.max_abs_error:.3g}, "
                f"{self.ratio:.1%} of the tolerance ({self.tolerance})"
            )
        b, c, t, h, w = self.worst or (0, 0, 0, 0, 0)
        first = (self.first_bad_frame or 0) + frame_offset
        return (
            f"first mismatching pixel frame {first}; largest error {self.max_abs_error:.3g}; "
            f"worst element (batch {b}, channel {c}, frame {t + frame_offset}, y {h}, x {w}) is "
            f"off by {self.error_at_worst:.3g} where {self.allowed_at_worst:.3g} is allowed "
            f"({self.ratio:.3g}x the tolerance; {self.tolerance})"
        )


def compare(expected: torch.Tensor, actual: torch.Tensor, tolerance: Tolerance) -> Comparison:
    """Compare two canonical ``BCTHW`` tensors elementwise under ``tolerance``.

    Computed in float64 so the comparison adds no rounding of its own. A NaN where the
    other side has a number counts as an infinite error; NaNs in the same places agree.
    """
    if tuple(expected.shape) != tuple(actual.shape):
        return Comparison(
            ok=False,
            max_abs_error=math.inf,
            ratio=math.inf,
            worst=None,
            allowed_at_worst=0.0,
            error_at_worst=math.inf,
            first_bad_frame=None,
            tolerance=tolerance,
            shape_problem=(
                f"shapes differ: expected {tuple(expected.shape)} (B, C, T, H, W), got "
                f"{tuple(actual.shape)}"
            ),
        )
    if expected.numel() == 0:
        return Comparison(True, 0.0, 0.0, None, 0.0, 0.0, None, tolerance)
    e = expected.detach().to(device=actual.device, dtype=torch.float64)
    a = actual.detach().to(torch.float64)
    error = (a - e).abs()
    nan_e, nan_a = torch.isnan(e), torch.isnan(a)
    error = torch.where(nan_e & nan_a, torch.zeros_like(error), error)
    error = torch.where(nan_e ^ nan_a, torch.full_like(error, math.inf), error)
    # Same infinities agree (inf - inf is nan otherwise).
    error = torch.where(torch.isinf(e) & (e == a), torch.zeros_like(error), error)
    allowed = tolerance.allowed(torch.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0))
    with torch.no_grad():
        ratio = torch.where(
            allowed > 0,
            error / allowed.clamp_min(torch.finfo(torch.float64).tiny),
            torch.where(error > 0, torch.full_like(error, math.inf), torch.zeros_like(error)),
        )
    flat = int(torch.argmax(ratio).item())
    worst = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(ratio.shape)))
    worst_ratio = float(ratio.reshape(-1)[flat].item())
    bad = ratio > 1
    ok = not bool(bad.any().item())
    first_bad = None
    if not ok:
        per_frame = bad.any(dim=(0, 1, 3, 4))
        first_bad = int(torch.nonzero(per_frame)[0].item())
    return Comparison(
        ok=ok,
        max_abs_error=float(error.max().item()),
        ratio=worst_ratio,
        worst=worst,
        allowed_at_worst=float(allowed.reshape(-1)[flat].item()),
        error_at_worst=float(error.reshape(-1)[flat].item()),
        first_bad_frame=first_bad,
        tolerance=tolerance,
    )

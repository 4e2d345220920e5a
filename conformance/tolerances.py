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

The aggregate criterion: frame RMS
----------------------------------
The elementwise bound has to admit the *largest* rounding error over up to ``10**7``
elements, about five standard deviations of the noise. A seam bug is different in kind:
it is structured, and it moves whole frames (every element after a seam that read the
carried history), so its root-mean-square over a frame is close to its maximum, while
rounding noise, near-independent per element, has an RMS several times below its
maximum. In bfloat16, where ``tau ~ 0.125``, a seam bug of a few percent hides under the
elementwise bound; it does not hide under a bound on the RMS. So each pixel frame (all
batch, channel and spatial elements of one time index of the canonical output) must also
satisfy ``rms(actual - expected) <= tau_rms``, with ``tau_rms`` from the same model:

* **Storage, as an RMS.** Two computations of one 16-bit layer output whose accumulators
  already differ by carried noise round independently: the difference of two roundings
  has RMS ``ulp / sqrt(6)``. Over the mantissas of a float (log-uniformly distributed)
  the RMS of ``ulp / |x|`` is ``2u * sqrt(3 / (8 ln 2)) ~ 1.47 u``, so each layer adds
  noise of RMS ``~ 0.60 u``, and ``L ~ 32`` layers of it, carried to the output, add up
  to ``sqrt(32) * 0.60 u ~ 3.4 u``. This assumes every layer's roundings are fully
  decorrelated (the saturated case; the first layers after a kernel change flip only a
  few elements) and unit gain through later layers. Rounded up to a power of two like
  the other factors: ``STORAGE_RMS_FACTOR = 4``. The ratio to the elementwise factor,
  ``32 / 4 = 8``, is the modelled maximum-to-RMS ratio of the noise.
* **Accumulation** keeps its elementwise term ``ACCUMULATION_FACTOR * u_acc``: that
  estimate is already a typical size (``sqrt(n)``), not a maximum, and an RMS never
  exceeds the maximum.
* **Measured** on the bundled Wan decoder, small configuration, on CPU, chunk plans
  against one call (6 latent frames, 4x4 latents, 3072 elements per frame): float16
  RMS 1.3 ``u`` over the whole output and 2.0-2.2 ``u`` in its worst frame (max 9.5
  ``u``; the kit's quick profile, all chunk plans: 0.49 of the bound); float32 worst
  frame 9.9 ``u`` (accumulation-dominated; the bound there is ~4100 ``u``); bfloat16
  bitwise equal (CPU kernels happen to be chunk-invariant). The model's 4 ``u`` is about
  twice the worst float16 frame measured.
* **Small frames.** The bound is on the RMS of each frame, so a frame of a handful of
  elements can reach the elementwise maximum; frames of real decoders hold thousands of
  elements (the toy, the smallest in this repository, 192), where the sampling spread
  of an RMS is a few percent.

So ``tau_rms(dtype) = STORAGE_RMS_FACTOR * u(dtype) + ACCUMULATION_FACTOR * u_acc(dtype)``:

=========  ==========  ==========
dtype      tau         tau_rms
=========  ==========  ==========
float64    4.6e-13     4.6e-13
float32    2.4e-4      2.4e-4
float16    1.6e-2      2.2e-3
bfloat16   1.3e-1      1.6e-2
=========  ==========  ==========

A comparison passes only if both criteria hold. What the RMS bound does not reliably
catch: a seam error whose frame RMS is near or below ``tau_rms``, about 1.6% of an
order-one output in bfloat16. Carried history rounded to float8 in the shallow toy
decoder is such a case: its worst frame RMS, 3.6-4.8 ``u`` over seeds, straddles the
bound, because it is the size this model allows a correct 32-layer bf16 decoder. A 20%
error in the carried state is caught at 3-6 times the bound.

Like ``atol``, ``tau_rms`` assumes outputs of order one. ``DecoderSpec.rms_tol`` replaces
it; a spec that overrides ``atol`` (its output scale) but not ``rms_tol`` gets ``tau_rms``
scaled by the same factor, ``spec.atol / tau``, which keeps the model's ratio of the two.

Integer outputs (say uint8 pixels) compare with ``atol = 1, rtol = 0``: the final rounding
of a value that differs by rounding can move it one step. Their frame RMS bound is also
one step: how many elements move depends on the float noise before the final rounding,
which the integer dtype says nothing about.

``DecoderSpec.atol`` / ``rtol`` / ``rms_tol`` replace the defaults (each independently). Tolerances are
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
    "STORAGE_RMS_FACTOR",
    "Comparison",
    "Tolerance",
    "compare",
    "default_tolerance",
    "tolerance_for",
    "unit_roundoff",
]

STORAGE_FACTOR = 32
STORAGE_RMS_FACTOR = 4
ACCUMULATION_FACTOR = 2**12


def unit_roundoff(dtype: torch.dtype) -> float:
    """``eps / 2`` of a floating dtype: the largest relative error of one rounding."""
    return torch.finfo(dtype).eps / 2


@dataclass(frozen=True)
class Tolerance:
    """Elementwise bound ``|actual - expected| <= atol + rtol * |expected|``, and the
    aggregate bound ``rms(actual - expected) <= rms`` on every pixel frame.

    ``rms`` defaults to infinity (no aggregate criterion) so a hand-made elementwise
    tolerance keeps meaning what it says; the derived defaults always set it.
    """

    atol: float
    rtol: float
    source: str  # how it was chosen, for reports: "float32 default" or "spec override"
    rms: float = math.inf

    def allowed(self, expected: torch.Tensor) -> torch.Tensor:
        return self.atol + self.rtol * expected.abs()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"atol": self.atol, "rtol": self.rtol, "source": self.source}
        out["rms"] = self.rms if math.isfinite(self.rms) else None
        return out

    def __str__(self) -> str:
        text = f"atol {self.atol:.2g} + rtol {self.rtol:.2g} * |expected|"
        if math.isfinite(self.rms):
            text += f", frame RMS {self.rms:.2g}"
        return f"{text} ({self.source})"


def default_tolerance(dtype: torch.dtype) -> Tolerance:
    """The derived default for outputs computed in ``dtype`` (see the module docstring)."""
    if not dtype.is_floating_point:
        if dtype.is_complex:
            raise ValueError(f"no default tolerance for complex dtype {dtype}")
        return Tolerance(
            atol=1.0, rtol=0.0, source=f"{dtype} default (one quantization step)", rms=1.0
        )
    u = unit_roundoff(dtype)
    u_acc = u if torch.finfo(dtype).bits >= 32 else unit_roundoff(torch.float32)
    tau = STORAGE_FACTOR * u + ACCUMULATION_FACTOR * u_acc
    tau_rms = STORAGE_RMS_FACTOR * u + ACCUMULATION_FACTOR * u_acc
    return Tolerance(
        atol=tau, rtol=tau, source=f"{str(dtype).removeprefix('torch.')} default", rms=tau_rms
    )


def tolerance_for(spec: DecoderSpec) -> Tolerance:
    """The tolerance the checks use for ``spec``: the loosest default of its compute and
    output dtypes, with ``spec.atol`` / ``spec.rtol`` / ``spec.rms_tol`` taking precedence.

    An ``atol`` override without an ``rms_tol`` one scales the default frame RMS bound by
    ``spec.atol / default atol``: ``atol`` states the output scale, and the RMS bound is
    the same noise model at the same scale.
    """
    defaults = [default_tolerance(spec.dtype)]
    if spec.resolved_output_dtype != spec.dtype:
        defaults.append(default_tolerance(spec.resolved_output_dtype))
    base = max(defaults, key=lambda t: (t.atol, t.rtol, t.rms))
    rms_tol = spec.rms_tol
    if spec.atol is None and spec.rtol is None and rms_tol is None:
        return base
    if rms_tol is not None:
        rms = float(rms_tol)
    elif spec.atol is not None:
        rms = base.rms * float(spec.atol) / base.atol
    else:
        rms = base.rms
    overridden = [v is not None for v in (spec.atol, spec.rtol, rms_tol)]
    return Tolerance(
        atol=float(spec.atol) if spec.atol is not None else base.atol,
        rtol=float(spec.rtol) if spec.rtol is not None else base.rtol,
        source="spec override" + ("" if all(overridden) else f" / {base.source}"),
        rms=rms,
    )


@dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``expected`` (both canonical ``BCTHW``), by both criteria.

    Elementwise: ``ratio`` is the largest ``error / allowed`` over all elements: ``<= 1``
    means within tolerance, and ``1 - ratio`` is the margin left. ``worst`` is the
    (b, c, t, h, w) index of that element.

    Frame RMS: ``rms_error`` is the largest root-mean-square error of one pixel frame
    (over batch, channels, height and width), found in frame ``rms_frame``;
    ``rms_ratio = rms_error / tolerance.rms`` and ``rms_margin = 1 - rms_ratio``.

    ``first_bad_frame`` is the first pixel frame (time index) failing either criterion.
    ``shape_problem`` is set instead when shapes differ.
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
    rms_error: float = 0.0
    rms_ratio: float = 0.0
    rms_frame: int | None = None
    first_bad_element_frame: int | None = None
    first_bad_rms_frame: int | None = None

    @property
    def margin(self) -> float:
        """Fraction of the elementwise tolerance left unused at the worst element (negative:
        exceeded)."""
        return 1.0 - self.ratio

    @property
    def rms_margin(self) -> float:
        """Fraction of the frame RMS bound left unused in the worst frame (negative: exceeded)."""
        return 1.0 - self.rms_ratio

    @property
    def failed_criteria(self) -> tuple[str, ...]:
        """``"elementwise"`` and/or ``"frame RMS"``: which criteria this comparison fails."""
        if self.shape_problem:
            return ("shape",)
        failed = []
        if self.first_bad_element_frame is not None:
            failed.append("elementwise")
        if self.first_bad_rms_frame is not None:
            failed.append("frame RMS")
        return tuple(failed)

    def describe(self, frame_offset: int = 0) -> str:
        """One human sentence: which criterion fails, where it first goes wrong, by how much."""
        if self.shape_problem:
            return self.shape_problem
        if self.ok:
            return (
                f"within tolerance: largest error {self.max_abs_error:.3g}, "
                f"{self.ratio:.1%} of the elementwise tolerance; largest frame RMS error "
                f"{self.rms_error:.3g}, {self.rms_ratio:.1%} of the frame RMS bound "
                f"({self.tolerance})"
            )
        first = (self.first_bad_frame or 0) + frame_offset
        parts = [
            f"first mismatching pixel frame {first} "
            f"(failed: {' and '.join(f'{c} criterion' for c in self.failed_criteria)})"
        ]
        if self.first_bad_element_frame is not None:
            b, c, t, h, w = self.worst or (0, 0, 0, 0, 0)
            parts.append(
                f"elementwise criterion failed from pixel frame "
                f"{self.first_bad_element_frame + frame_offset}: largest error "
                f"{self.max_abs_error:.3g}; worst element (batch {b}, channel {c}, frame "
                f"{t + frame_offset}, y {h}, x {w}) is off by {self.error_at_worst:.3g} where "
                f"{self.allowed_at_worst:.3g} is allowed ({self.ratio:.3g}x the tolerance, "
                f"margin {self.margin:.3g})"
            )
        else:
            parts.append(
                f"elementwise criterion holds: largest error {self.max_abs_error:.3g}, "
                f"{self.ratio:.3g}x the tolerance (margin {self.margin:.3g})"
            )
        if self.first_bad_rms_frame is not None:
            parts.append(
                f"frame RMS criterion failed from pixel frame "
                f"{self.first_bad_rms_frame + frame_offset}: worst frame "
                f"{(self.rms_frame or 0) + frame_offset} has RMS error {self.rms_error:.3g} "
                f"where {self.tolerance.rms:.3g} is allowed ({self.rms_ratio:.3g}x the bound, "
                f"margin {self.rms_margin:.3g}); rounding noise averages out over a frame, "
                f"an error this size across a frame is structured"
            )
        else:
            parts.append(
                f"frame RMS criterion holds: worst frame RMS error {self.rms_error:.3g}, "
                f"{self.rms_ratio:.3g}x the bound (margin {self.rms_margin:.3g})"
            )
        return "; ".join(parts) + f" ({self.tolerance})"


def compare(expected: torch.Tensor, actual: torch.Tensor, tolerance: Tolerance) -> Comparison:
    """Compare two canonical ``BCTHW`` tensors under ``tolerance``: elementwise, and the
    RMS error of every pixel frame (time index).

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
            rms_error=math.inf,
            rms_ratio=math.inf,
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
        # Per pixel frame: mean over batch, channels, height and width of the squared error.
        frame_rms = error.square().mean(dim=(0, 1, 3, 4)).sqrt()
        if math.isinf(tolerance.rms):  # no aggregate criterion
            frame_rms_ratio = torch.zeros_like(frame_rms)
        elif tolerance.rms > 0:
            frame_rms_ratio = frame_rms / tolerance.rms
        else:
            frame_rms_ratio = torch.where(
                frame_rms > 0, torch.full_like(frame_rms, math.inf), torch.zeros_like(frame_rms)
            )
    flat = int(torch.argmax(ratio).item())
    worst = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(ratio.shape)))
    worst_ratio = float(ratio.reshape(-1)[flat].item())
    first_bad_element = _first_true(ratio.gt(1).any(dim=(0, 1, 3, 4)))
    rms_frame = int(torch.argmax(frame_rms_ratio).item())
    first_bad_rms = _first_true(frame_rms_ratio.gt(1))
    bad_frames = [f for f in (first_bad_element, first_bad_rms) if f is not None]
    return Comparison(
        ok=not bad_frames,
        max_abs_error=float(error.max().item()),
        ratio=worst_ratio,
        worst=worst,
        allowed_at_worst=float(allowed.reshape(-1)[flat].item()),
        error_at_worst=float(error.reshape(-1)[flat].item()),
        first_bad_frame=min(bad_frames) if bad_frames else None,
        tolerance=tolerance,
        rms_error=float(frame_rms[rms_frame].item()),
        rms_ratio=float(frame_rms_ratio[rms_frame].item()),
        rms_frame=rms_frame,
        first_bad_element_frame=first_bad_element,
        first_bad_rms_frame=first_bad_rms,
    )


def _first_true(flags: torch.Tensor) -> int | None:
    """Index of the first ``True`` in a 1-D boolean tensor, or ``None``."""
    hits = torch.nonzero(flags)
    return int(hits[0].item()) if hits.numel() else None

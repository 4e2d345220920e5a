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
error in the carried state is caught at 3-6 times the bound. The measured-noise
criterion below closes that gap where the decoder has a wider-dtype twin.

Which elements count: signal
----------------------------
Non-finite values never agree: a NaN or an infinity on either side is an infinite error,
even against the same value (an all-NaN decoder used to compare equal to itself).
Elements that carry no signal are left out of the frame RMS: those on a clamp bound in
*both* outputs, and those of a frame that is one constant value in both. A clamp bound
is read from the data, never assumed: the smallest (largest) value over both outputs,
when at least two elements of one output sit exactly on it (a clamped output piles
values on its bounds, whatever they are; a continuous one reaches its extreme once).
Such elements agree exactly whatever the decoder does, so dropping them never hides an
error; keeping them would average a seam error confined to the unclamped part of a
frame with zeros (a frame 7/8 clamped divides its RMS by ``sqrt(8)``). A frame's sum of
squared errors is divided by at least ``RMS_MIN_ELEMENTS = (32 / 4)**2 = 64`` elements:
one element at the elementwise bound (``32 u``) then just reaches the RMS bound
(``4 u``), so a handful of noisy signal elements cannot fail a frame on their own. A
compared frame counts as evidence (``signal_frames``) with at least
``min(64, elements / 16)`` signal elements, and a check passes only if at least half its
compared frames do (:data:`conformance.checks.harness.evidence.SIGNAL_FRAME_SHARE`); before that, the
numeric checks rescale their latents until a probe decode is at least half unsaturated
(:meth:`conformance.checks.harness.context.CheckContext.seek_signal`). Interior plateaus (a constant
region at a value inside the range) are kept: without varying the input they cannot be
told from data, and keeping them only dilutes the RMS (the elementwise bound is
unaffected), never raises a false alarm.

Measured noise: judging a decoder by its own rounding
-----------------------------------------------------
The dtype bounds must admit the noise of the deepest plausible decoder; a shallow
bfloat16 decoder makes far less, so a seam error a few times *its* noise passes them.
When the spec declares ``reference_dtype`` (a twin of the same weights computing in a
wider dtype, built by ``reference_factory`` or ``factory().to(reference_dtype)``), the
chunk check measures that noise in the same run. For each latent sequence, with ``F``
the decoder's one-call decode, ``C`` a chunked decode and ``H`` the twin's one-call
decode (same latents, cast exactly), ``sigma = max_t rms_t(F - H)`` (frame RMS over
signal elements, worst frame) and every chunked decode must satisfy
``rms_t(C - H) <= NOISE_FACTOR * sigma`` in every frame, ``NOISE_FACTOR = 3``.

* **Why against H, not F.** ``C - H`` and ``F - H`` are two roundings of the same
  function, so for a correct decoder they have the same distribution and their worst
  frame RMS over thousands of elements agrees within a few percent; a structured seam
  error ``e`` adds in quadrature, ``sqrt(sigma**2 + e**2)``, and fails once
  ``e > sqrt(3**2 - 1) sigma ~ 2.8 sigma``. Against ``F`` the noise of both sides would
  add (``sqrt(2) sigma``) and the same ``e`` would need to reach ``4 sigma``.
* **Why 3.** The chunked path may round more than the one-call path (shape-dependent
  kernels: split-K with reduced-precision reductions, another convolution algorithm);
  each extra independent rounding per layer multiplies the noise RMS by at most about
  ``sqrt(2)``. Measured (CPU, torch 2.13.0): the bfloat16 toy and the small Wan decoder
  in bfloat16 and float16 are chunk-invariant, 1.00 ``sigma``; a toy whose one-frame
  calls sum three bfloat16 products rounding after each term, 1.29 ``sigma`` over 10
  seeds (bound 3: margin 57%). Carried history rounded to float8 is 3.7-6.6 ``sigma``
  (worst plan per check, 10 seeds), history decayed by 5% at seams 7.7-9.9 ``sigma``.
  (``sigma`` itself: 0.45-0.55 ``u`` for the toy, about 2 ``u`` for small Wan.) On an
  NVIDIA H200 (torch 2.11.0+cu130) the full-size Wan decoder in bfloat16 on its fast
  path, against an eager float32 twin of the same weights: ``sigma`` 1.29-1.33 ``u``,
  chunked decodes of 24 random plans 1.00 ``sigma`` from the twin (the fast path is
  chunk-invariant there too), repeats bitwise equal.
* **Floor.** The bound is never below ``u * rms(H)``: the final rounding to the output
  dtype alone costs about ``0.4 u`` relative RMS, so a smaller ``sigma`` measured only
  sparse differences (an output quantized to a coarse grid in both), too few to be a
  stable yardstick. A twin bitwise equal to the decoder measured nothing: the dtype
  bounds alone apply and the evidence says so.
* **What it needs.** The twin must compute *everything* in the wider dtype (no
  autocast, no dtype taken from a config it did not update): a twin that is partly
  narrow measures too little noise. It is opt-in for that reason, and without it the
  dtype-derived bounds above are the criterion.

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

from conformance.core.ratios import share

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = [
    "ACCUMULATION_FACTOR",
    "STORAGE_FACTOR",
    "STORAGE_RMS_FACTOR",
    "NOISE_FACTOR",
    "RMS_MIN_ELEMENTS",
    "Comparison",
    "Tolerance",
    "compare",
    "default_tolerance",
    "frame_rms_errors",
    "noise_tolerance",
    "saturation_bounds",
    "signal_mask",
    "tolerance_for",
    "unit_roundoff",
]

STORAGE_FACTOR = 32
STORAGE_RMS_FACTOR = 4
ACCUMULATION_FACTOR = 2**12
#: How many times its own measured rounding noise a chunked decode may be from the
#: wider-dtype twin's decode (see "Measured noise" in the module docstring).
NOISE_FACTOR = 3
#: ``(STORAGE_FACTOR / STORAGE_RMS_FACTOR) ** 2``: see :func:`min_rms_elements`.
RMS_MIN_ELEMENTS = (STORAGE_FACTOR // STORAGE_RMS_FACTOR) ** 2


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
        out: dict[str, Any] = {
            "atol": self.atol if math.isfinite(self.atol) else None,
            "rtol": self.rtol,
            "source": self.source,
        }
        out["rms"] = self.rms if math.isfinite(self.rms) else None
        return out

    def __str__(self) -> str:
        parts = []
        if math.isfinite(self.atol):
            parts.append(f"atol {self.atol:.2g} + rtol {self.rtol:.2g} * |expected|")
        if math.isfinite(self.rms):
            parts.append(f"frame RMS {self.rms:.2g}")
        return f"{', '.join(parts) or 'no bound'} ({self.source})"


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
    elements: int = 0
    signal_elements: int = 0
    signal_frames: int = 0
    non_finite: int = 0

    @property
    def signal_fraction(self) -> float:
        """Fraction of the compared elements that carry signal (1.0 for an empty comparison)."""
        return self.signal_elements / self.elements if self.elements else 1.0

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
                f"{self.allowed_at_worst:.3g} is allowed (error is {share(self.ratio, 'the tolerance')})"
            )
        else:
            parts.append(
                f"elementwise criterion holds: largest error {self.max_abs_error:.3g}, "
                f"error is {share(self.ratio, 'the tolerance')}"
            )
        if self.first_bad_rms_frame is not None:
            parts.append(
                f"frame RMS criterion failed from pixel frame "
                f"{self.first_bad_rms_frame + frame_offset}: worst frame "
                f"{(self.rms_frame or 0) + frame_offset} has RMS error {self.rms_error:.3g} "
                f"where {self.tolerance.rms:.3g} is allowed ({share(self.rms_ratio, 'its bound')}); "
                f"rounding noise averages out over a frame, "
                f"an error this size across a frame is structured"
            )
        else:
            parts.append(
                f"frame RMS criterion holds: worst frame RMS error {self.rms_error:.3g}, "
                f"{share(self.rms_ratio, 'its bound')}"
            )
        return "; ".join(parts) + f" ({self.tolerance})"


def saturation_bounds(*tensors: torch.Tensor) -> tuple[float | None, float | None]:
    """The clamp bounds ``tensors`` show, read from the data: ``(low, high)``.

    A bound is the smallest (largest) finite value over all of ``tensors`` when it is a
    plateau: at least two elements of one tensor sit exactly on it. A clamped output has
    many elements exactly at its bounds, whatever the bounds are ([-1, 1], [0, 1],
    [0, 255]); a continuous output reaches its exact extreme once. ``None`` where the
    extreme is not a plateau. Nothing assumes a range: an output clamped to [-0.5, 2]
    has those bounds, one never clamped has none.
    """
    present = [t.detach() for t in tensors if t.numel()]
    finite = [t if bool(torch.isfinite(t).all()) else t[torch.isfinite(t)] for t in present]
    finite = [t for t in finite if t.numel()]
    if not finite:
        return None, None
    low = min(float(t.min().item()) for t in finite)
    high = max(float(t.max().item()) for t in finite)

    def plateau(value: float) -> bool:
        return any(int((t == value).sum().item()) >= 2 for t in finite)

    return (low if plateau(low) else None), (high if plateau(high) else None)


def signal_mask(expected: torch.Tensor, actual: torch.Tensor) -> torch.Tensor:
    """Elements of two same-shape ``BCTHW`` outputs that carry signal.

    An element carries no signal when *both* outputs sit exactly on the same clamp bound
    there (:func:`saturation_bounds`), or when it lies in a pixel frame that is one
    constant value in both outputs: there, any input (and any seam bug) gives the same
    value, so agreement says nothing. Such elements always agree exactly, so leaving them
    out never hides an error; it keeps them from diluting the frame RMS of one (a seam
    error confined to the 5% of a frame that is not clamped would otherwise be averaged
    with 95% zeros), and lets the kit tell a comparison that measured something from one
    that did not. Non-finite values always count as signal (they are failures).
    """
    low, high = saturation_bounds(expected, actual)
    flat = torch.zeros_like(expected, dtype=torch.bool)
    for bound in (low, high):
        if bound is not None:
            flat |= (expected == bound) & (actual == bound)
    if expected.dim() == 5 and expected.numel():
        dims = (0, 1, 3, 4)
        e_low, e_high = expected.amin(dim=dims), expected.amax(dim=dims)
        a_low, a_high = actual.amin(dim=dims), actual.amax(dim=dims)
        constant = (e_low == e_high) & (a_low == a_high) & (e_low == a_low)
        flat |= constant.view(1, 1, -1, 1, 1)
    finite = torch.isfinite(expected) & torch.isfinite(actual)
    return ~(flat & finite)


def min_rms_elements(frame_elements: int) -> int:
    """Fewest elements a frame RMS is averaged over: ``RMS_MIN_ELEMENTS``, or the frame.

    With fewer signal elements than this in a frame, the sum of squared errors is divided
    by this number instead (as if the rest agreed exactly): one element at the elementwise
    bound (``STORAGE_FACTOR`` u) then reaches exactly the RMS bound (``STORAGE_RMS_FACTOR``
    u), so a handful of noisy elements can never fail the RMS criterion on their own.
    """
    return min(RMS_MIN_ELEMENTS, frame_elements)


def signal_frame_threshold(frame_elements: int) -> int:
    """Signal elements a pixel frame needs to count as compared: ``RMS_MIN_ELEMENTS``, or
    a sixteenth of a frame smaller than ``16 * RMS_MIN_ELEMENTS`` elements (at least one)."""
    return max(1, min(RMS_MIN_ELEMENTS, -(-frame_elements // 16)))


def frame_rms_errors(
    expected: torch.Tensor, actual: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """RMS of ``actual - expected`` in every pixel frame, over its signal elements (float64).

    Both canonical ``BCTHW`` and finite. ``mask`` defaults to :func:`signal_mask`; a
    frame's sum of squares is divided by ``max(signal elements, min_rms_elements)``.
    """
    e = expected.detach().to(device=actual.device, dtype=torch.float64)
    a = actual.detach().to(torch.float64)
    mask = signal_mask(e, a) if mask is None else mask
    squares = torch.where(mask, (a - e).square(), torch.zeros_like(e))
    frame_elements = e.numel() // max(1, e.shape[2])
    counts = mask.sum(dim=(0, 1, 3, 4)).clamp_min(min_rms_elements(frame_elements))
    return (squares.sum(dim=(0, 1, 3, 4)) / counts).sqrt()


def compare(expected: torch.Tensor, actual: torch.Tensor, tolerance: Tolerance) -> Comparison:
    """Compare two canonical ``BCTHW`` tensors under ``tolerance``: elementwise, and the
    RMS error of every pixel frame (time index) over its signal elements.

    Computed in float64 so the comparison adds no rounding of its own. A non-finite value
    (NaN, +Inf or -Inf) on either side is an infinite error, even where both sides hold
    the same one: a decoded pixel must be a number, and two NaNs agreeing would certify
    a decoder that outputs nothing but NaN. The frame RMS is taken over the elements that
    carry signal (:func:`signal_mask`); ``signal_frames`` counts the frames with enough of
    them (:func:`signal_frame_threshold`) to be evidence.
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
    finite = torch.isfinite(e) & torch.isfinite(a)
    error = torch.where(finite, (a - e).abs(), torch.full_like(e, math.inf))
    mask = signal_mask(e, a)
    allowed = tolerance.allowed(torch.nan_to_num(e, nan=0.0, posinf=0.0, neginf=0.0))
    frames = e.shape[2] if e.dim() == 5 else 1
    frame_elements = e.numel() // max(1, frames)
    with torch.no_grad():
        ratio = torch.where(
            allowed > 0,
            error / allowed.clamp_min(torch.finfo(torch.float64).tiny),
            torch.where(error > 0, torch.full_like(error, math.inf), torch.zeros_like(error)),
        )
        ratio = torch.where(finite, ratio, torch.full_like(ratio, math.inf))
        if e.dim() == 5:
            # Per pixel frame: mean over batch, channels, height and width of the squared
            # error, over the elements that carry signal.
            squares = torch.where(mask, error.square(), torch.zeros_like(error))
            signal_counts = mask.sum(dim=(0, 1, 3, 4))
            frame_rms = (
                squares.sum(dim=(0, 1, 3, 4))
                / signal_counts.clamp_min(min_rms_elements(frame_elements))
            ).sqrt()
            frame_rms = torch.where(
                finite.all(dim=(0, 1, 3, 4)), frame_rms, torch.full_like(frame_rms, math.inf)
            )
        else:
            signal_counts = mask.sum().reshape(1)
            frame_rms = torch.zeros(1, dtype=torch.float64, device=error.device)
        if math.isinf(tolerance.rms):  # no aggregate criterion
            frame_rms_ratio = torch.where(
                torch.isinf(frame_rms), frame_rms, torch.zeros_like(frame_rms)
            )
        elif tolerance.rms > 0:
            frame_rms_ratio = frame_rms / tolerance.rms
        else:
            frame_rms_ratio = torch.where(
                frame_rms > 0, torch.full_like(frame_rms, math.inf), torch.zeros_like(frame_rms)
            )
    flat = int(torch.argmax(ratio).item())
    worst = _unravel(flat, tuple(ratio.shape))
    worst_ratio = float(ratio.reshape(-1)[flat].item())
    bad_elements = ratio.gt(1)
    first_bad_element = _first_true(
        bad_elements.any(dim=(0, 1, 3, 4)) if e.dim() == 5 else bad_elements.any().reshape(1)
    )
    rms_frame = int(torch.argmax(frame_rms_ratio).item())
    first_bad_rms = _first_true(frame_rms_ratio.gt(1))
    bad_frames = [f for f in (first_bad_element, first_bad_rms) if f is not None]
    threshold = signal_frame_threshold(frame_elements)
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
        elements=int(e.numel()),
        signal_elements=int(mask.sum().item()),
        signal_frames=int(signal_counts.ge(threshold).sum().item()),
        non_finite=int((~finite).sum().item()),
    )


def noise_tolerance(
    sigma: float, *, output_scale: float, dtype: torch.dtype, reference_dtype: torch.dtype
) -> Tolerance:
    """The frame RMS bound measured on the decoder itself: ``NOISE_FACTOR * sigma``.

    ``sigma`` is the decoder's own rounding noise: the worst frame RMS of its one-call
    decode against its ``reference_dtype`` twin's (same weights, same latents). A correct
    chunked decode is another rounding of the same function, so its distance to the
    twin's decode is noise of the same size. The bound is floored at one unit roundoff of
    the output dtype times ``output_scale`` (the RMS of the twin's output): the final
    rounding to the output dtype alone costs about ``0.4 u`` relative RMS, so a ``sigma``
    below that measured only a few sparse differences and is no stable yardstick.
    There is no elementwise part (``atol`` is infinite); the dtype default keeps that role.
    """
    floor = unit_roundoff(dtype) * output_scale if dtype.is_floating_point else 0.0
    bound = max(NOISE_FACTOR * sigma, floor)
    name = str(dtype).removeprefix("torch.")
    wide = str(reference_dtype).removeprefix("torch.")
    return Tolerance(
        atol=math.inf,
        rtol=0.0,
        source=(
            f"{NOISE_FACTOR} x the decoder's own {name} rounding noise (worst frame RMS "
            f"{sigma:.3g} of its one-call decode against its {wide} twin)"
        ),
        rms=bound,
    )


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The index of element ``flat`` of a C-ordered tensor of ``shape``. (Not
    ``torch.unravel_index``: its first call imports sympy, a second of a verdict.)"""
    index = []
    for size in reversed(shape):
        flat, position = divmod(flat, size)
        index.append(position)
    return tuple(reversed(index))


def _first_true(flags: torch.Tensor) -> int | None:
    """Index of the first ``True`` in a 1-D boolean tensor, or ``None``."""
    hits = torch.nonzero(flags)
    return int(hits[0].item()) if hits.numel() else None

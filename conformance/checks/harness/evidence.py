"""What a check exercised, recorded as it runs, so a pass can be told from a vacuous one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from conformance.checks.harness.tolerances import Comparison, Tolerance

__all__ = ["SIGNAL_FRAME_SHARE", "Evidence"]

#: Share of a check's compared pixel frames that must carry signal for its comparisons to
#: count as evidence. Half: a correct decoder whose frames are clamped or constant in
#: places still has signal in most frames; one clamped everywhere has it in none.
SIGNAL_FRAME_SHARE = 0.5


@dataclass
class Evidence:
    """Counters a check (and the harness, for every decoder call) bumps as it goes.

    ``examples`` counts property examples or scenarios, ``rollouts`` caches driven through
    at least one step, ``decoder_calls`` forward calls, ``latent_frames`` / ``pixel_frames``
    the frames fed and received, ``mapper_queries`` size-mapper calls, ``comparisons``
    output comparisons and ``compared_frames`` the pixel frames those comparisons covered
    (a comparison of two empty outputs compares nothing). ``max_abs_error`` and ``max_error_ratio`` (largest error divided by
    the tolerance at that element) summarize the elementwise criterion over every numerical
    comparison the check made; ``max_frame_rms_error`` and ``max_frame_rms_ratio`` (largest
    RMS error of one pixel frame, and divided by the frame RMS bound) the aggregate one.
    """

    examples: int = 0
    rollouts: int = 0
    decoder_calls: int = 0
    latent_frames: int = 0
    pixel_frames: int = 0
    mapper_queries: int = 0
    comparisons: int = 0
    compared_frames: int = 0
    max_abs_error: float | None = None
    max_error_ratio: float | None = None
    max_frame_rms_error: float | None = None
    max_frame_rms_ratio: float | None = None
    #: Pixel frames, among ``compared_frames``, with enough elements carrying signal (not
    #: on a clamp bound in both outputs, not a constant frame) to be evidence; see
    #: :func:`conformance.checks.harness.tolerances.signal_mask`.
    signal_frames: int = 0
    compared_elements: int = 0
    signal_elements: int = 0
    tolerance: Tolerance | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def record_comparison(self, comparison: Comparison, *, frames: int = 0) -> None:
        """Count a comparison of ``frames`` pixel frames and keep its largest errors.

        A comparison of no frames (two empty outputs) is counted but leaves the largest
        errors alone: "max error 0" would claim agreement that was never measured.
        """
        self.comparisons += 1
        self.tolerance = comparison.tolerance
        if comparison.shape_problem or frames == 0:
            return
        self.compared_frames += frames
        self.signal_frames += min(frames, comparison.signal_frames)
        self.compared_elements += comparison.elements
        self.signal_elements += comparison.signal_elements
        if self.max_abs_error is None or comparison.max_abs_error > self.max_abs_error:
            self.max_abs_error = comparison.max_abs_error
        if self.max_error_ratio is None or comparison.ratio > self.max_error_ratio:
            self.max_error_ratio = comparison.ratio
        if self.max_frame_rms_ratio is None or comparison.rms_ratio > self.max_frame_rms_ratio:
            self.max_frame_rms_ratio = comparison.rms_ratio
        if self.max_frame_rms_error is None or comparison.rms_error > self.max_frame_rms_error:
            self.max_frame_rms_error = comparison.rms_error

    def note(self, key: str, value: Any) -> None:
        """Record a check-specific fact (``deepcopy_supported``, ``cache_bytes``, ...)."""
        self.extra[key] = value

    @property
    def exercised(self) -> bool:
        """Whether the check did anything at all: an example, a decoder call or a mapper query."""
        return any((self.examples, self.decoder_calls, self.mapper_queries, self.comparisons))

    def unexercised(self, required: tuple[str, ...]) -> list[str]:
        """The counters in ``required`` that are still zero (all of them must be positive for
        a pass to mean something); with nothing required, any activity at all will do."""
        if not required:
            return [] if self.exercised else ["anything"]
        missing = [name for name in required if not getattr(self, name)]
        if "compared_frames" in required and self.compared_frames and not self.has_signal:
            missing.append("signal")
        return missing

    @property
    def has_signal(self) -> bool:
        """Whether the comparisons measured something: at least ``SIGNAL_FRAME_SHARE`` of
        the compared pixel frames carried signal. A comparison of outputs clamped
        everywhere agrees whatever the decoder does, so it is no evidence."""
        return self.signal_frames >= SIGNAL_FRAME_SHARE * self.compared_frames

    def why_unexercised(self, missing: list[str]) -> str:
        """Why a check exercised nothing, from what it did do, in words a decoder author acts on."""
        calls = f"{self.decoder_calls} decoder call{'' if self.decoder_calls == 1 else 's'}"
        reasons = []
        for name in missing:
            if name in ("compared_frames", "pixel_frames") and self.decoder_calls and not self.pixel_frames:
                reasons.append(
                    f"the decoder returned no pixel frames in any of its {calls} "
                    f"({self.latent_frames} latent frames in), so there was no output to check"
                )
            elif name == "compared_frames" and self.decoder_calls:
                reasons.append(
                    f"none of its {self.comparisons} comparisons covered a pixel frame "
                    f"({calls}, {self.pixel_frames} pixel frames returned)"
                )
            elif name in ("compared_frames", "pixel_frames", "decoder_calls"):
                reasons.append("it made no decoder call")
            elif name == "anything":
                reasons.append("it exercised nothing (no example, decoder call, mapper query or comparison)")
            elif name == "signal":
                share = self.signal_elements / self.compared_elements if self.compared_elements else 0.0
                scale = self.extra.get("latent_scale")
                tried = self.extra.get("latent_scales_tried")
                reasons.append(
                    f"its comparisons carried too little signal: only {self.signal_frames} of "
                    f"{self.compared_frames} compared pixel frames ({share:.1%} of the compared "
                    "elements) were neither on the output's clamp bounds in both outputs nor "
                    "constant, so agreement there says nothing about the decoder"
                    + (f" (latents scaled by {scale:g})" if scale is not None else "")
                    + (
                        f"; the latent scales tried, {', '.join(f'{t:g}' for t in tried)}, "
                        "found none with more signal"
                        if tried
                        else ""
                    )
                    + ". Certify the decoder with weights for which its output is not "
                    "clamped or constant everywhere (trained weights, or random weights of a "
                    "smaller scale)"
                )
            elif name == "mapper_queries":
                reasons.append("it queried no size mapper or compression ratio")
            else:
                reasons.append(f"its {name} count is 0")
        return "; ".join(dict.fromkeys(reasons))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: counters, the largest error, its ratio and margin, the same for the
        largest frame RMS error, the tolerance."""
        out: dict[str, Any] = {
            "examples": self.examples,
            "rollouts": self.rollouts,
            "decoder_calls": self.decoder_calls,
            "latent_frames": self.latent_frames,
            "pixel_frames": self.pixel_frames,
            "mapper_queries": self.mapper_queries,
            "comparisons": self.comparisons,
            "compared_frames": self.compared_frames,
        }
        if self.comparisons:
            out["signal_frames"] = self.signal_frames
            out["signal_fraction"] = (
                self.signal_elements / self.compared_elements if self.compared_elements else None
            )
        if self.max_abs_error is not None:
            out["max_abs_error"] = _finite(self.max_abs_error)
            out["max_error_to_tolerance"] = _finite(self.max_error_ratio)
            out["tolerance_margin"] = (
                None if self.max_error_ratio is None else _finite(1.0 - self.max_error_ratio)
            )
        if self.max_frame_rms_error is not None:
            out["max_frame_rms_error"] = _finite(self.max_frame_rms_error)
            out["max_frame_rms_to_tolerance"] = _finite(self.max_frame_rms_ratio)
            out["frame_rms_margin"] = (
                None if self.max_frame_rms_ratio is None else _finite(1.0 - self.max_frame_rms_ratio)
            )
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance.as_dict()
        out.update(self.extra)
        return out


def _finite(value: float | None) -> float | str | None:
    """JSON has no infinity or NaN; spell them out."""
    if value is None or math.isfinite(value):
        return value
    return str(value)

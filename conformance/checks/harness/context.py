"""The :class:`CheckContext`: everything a check needs to drive a decoder, and nothing else.

It is the :class:`~conformance.checks.harness.driver.DecoderDriver` (guarded, validated,
pipeline-style calls) plus what the checks compare with: chunk plans decoded on one
cache, the one-call reference decode (memoized by latent description, so many plans
share one), the decoder's wider-dtype twin, comparisons under the check's tolerance, and
the search for a latent scale at which the output carries signal. One context serves
one run of one check.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch

from conformance.bases import StreamingVideoDecoder
from conformance.checks.harness.calls import callable_name
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.driver import DecoderDriver, Step
from conformance.checks.harness.latents import LatentSequence
from conformance.checks.harness.tolerances import Comparison, Tolerance, compare, signal_mask, tolerance_for
from conformance.checks.harness.validation import require_decoder
from conformance.core.outcomes import CheckFailed, DecoderError
from conformance.core.profiles import Profile
from conformance.core.spec import DecoderSpec

__all__ = ["CheckContext", "Decoded", "Step"]

#: Share of output elements carrying signal that :meth:`CheckContext.seek_signal` aims for.
SIGNAL_TARGET = 0.5

#: Smallest latent scale :meth:`CheckContext.seek_signal` tries: a random-weight decoder
#: with a gain of a million in front of its clamp still shows signal above it.
SIGNAL_MIN_SCALE = 2.0**-24


class _ProbeFailed(Exception):
    """A signal probe decode failed; :meth:`CheckContext.seek_signal` stops searching."""


@dataclass
class Decoded:
    """A rollout decoded with a chunk plan: chunk k went in at AR ``first_index + k``."""

    plan: tuple[int, ...]
    steps: list[Step] = field(default_factory=list)
    first_index: int = 0

    @property
    def outputs(self) -> list[torch.Tensor]:
        return [step.output for step in self.steps]

    def frame_starts(self) -> list[int]:
        """Pixel frame at which each chunk's output starts in the concatenated video."""
        starts, total = [], 0
        for step in self.steps:
            starts.append(total)
            total += step.frames
        return starts

    def chunk_of_frame(self, frame: int) -> tuple[int, int]:
        """(chunk k, frame within chunk k's output) for a pixel frame of the video."""
        for k, start in reversed(list(enumerate(self.frame_starts()))):
            if frame >= start:
                return k, frame - start
        return 0, frame

    def video(self) -> torch.Tensor:
        """The chunk outputs concatenated along time; ``CheckFailed`` if they cannot be."""
        shapes = [tuple(o.shape) for o in self.outputs]
        other = {(s[0], s[1], s[3], s[4]) for s in shapes}
        if len(other) > 1:
            raise CheckFailed(
                f"chunk outputs cannot be concatenated along time: their (B, C, T, H, W) shapes "
                f"are {shapes} for chunk plan {list(self.plan)}"
            )
        return torch.cat(self.outputs, dim=2)


class CheckContext(DecoderDriver):
    """Per-check state: the driver, plus reference decodes, comparisons and signal seeking."""

    def __init__(
        self,
        spec: DecoderSpec,
        profile: Profile,
        *,
        check_id: str,
        seed: int,
        run_seed: int,
        control: RunControl | None = None,
    ) -> None:
        super().__init__(spec, profile, check_id=check_id, seed=seed, run_seed=run_seed, control=control)
        self.tolerance: Tolerance = tolerance_for(spec)
        self._full_decodes: dict[tuple[int, LatentSequence, int], torch.Tensor] = {}
        self._signal_sought = False
        self._reference: StreamingVideoDecoder[Any] | None = None
        self._reference_decodes: dict[tuple[LatentSequence, int], torch.Tensor] = {}

    # ----------------------------------------------------------------- decodes

    def decode_plan(
        self,
        decoder: StreamingVideoDecoder[Any],
        latents: torch.Tensor,
        plan: Sequence[int],
        *,
        cache: Any = None,
        first_index: int = 0,
    ) -> Decoded:
        """Decode ``latents`` chunk by chunk: chunk k at AR ``first_index + k``, one cache."""
        if sum(plan) != latents.shape[2]:
            raise AssertionError(f"kit bug: plan {list(plan)} does not cover {latents.shape[2]} frames")
        cache = self.new_cache(decoder) if cache is None else cache
        decoded = Decoded(plan=tuple(plan), first_index=first_index)
        begin = 0
        for k, n in enumerate(plan):
            decoded.steps.append(
                self.forward(decoder, latents[:, :, begin : begin + n], first_index + k, cache)
            )
            begin += n
        if first_index == 0:
            self.evidence.rollouts += 1
        return decoded

    def full_decode(self, decoder: StreamingVideoDecoder[Any], sequence: LatentSequence) -> torch.Tensor:
        """The reference: all of ``sequence`` in one call at AR 0 with a fresh cache.

        Memoized per decoder and sequence, so many chunk plans share one reference.
        """
        key = (id(decoder), sequence, self.spec.batch_size)
        if key not in self._full_decodes:
            step = self.forward(decoder, self.latents(sequence), 0, self.new_cache(decoder))
            self.evidence.rollouts += 1
            self._full_decodes[key] = step.output
        return self._full_decodes[key]

    @property
    def full_decode_count(self) -> int:
        """How many distinct one-call reference decodes this check computed."""
        return len(self._full_decodes)

    def compare(
        self, expected: torch.Tensor, actual: torch.Tensor, tolerance: Tolerance | None = None
    ) -> Comparison:
        """Compare two canonical outputs under the check's tolerance (or ``tolerance``),
        recording the result and how much of it carried signal."""
        comparison = compare(expected, actual, tolerance or self.tolerance)
        empty = expected.numel() == 0 or actual.numel() == 0
        frames = 0 if empty or expected.dim() != 5 else int(expected.shape[2])
        self.evidence.record_comparison(comparison, frames=frames)
        return comparison

    def seek_signal(self, decoder: StreamingVideoDecoder[Any]) -> float:
        """Choose the latent scale this check decodes at, so its comparisons see signal.

        A decoder whose output is clamped almost everywhere at unit-variance latents (a
        random-weight decoder with a large gain, say) agrees with anything there: chunked
        and one-call decodes both give the clamp bound. So before its first decode a
        numeric check probes a short rollout (a multi-frame first chunk, then one-frame
        chunks) and measures the share of output elements that carry signal (not on a
        clamp bound read from the data, not in a constant frame; see
        :func:`conformance.checks.harness.tolerances.signal_mask`). Below ``SIGNAL_TARGET`` it halves the
        latent scale (quartering it while under 1% carries signal, down to
        ``SIGNAL_MIN_SCALE = 2**-24``; once 10% does, it stops after three halvings in a
        row that do not beat the best share), then tries doubling it (up to 8) if nothing
        below 1 helped, and keeps the scale with the most signal, the nearest to 1 on
        ties. The scale (and the scales tried) go into the evidence; a check that still
        compares too little signal fails saying so. A probe that fails
        (the decoder raises, or returns non-finite values) ends the search and leaves the
        failure to the check's own decodes, which report it with their context.
        """
        if self._signal_sought:
            return self.latent_scale
        self._signal_sought = True
        plan = (self.chunk_limit(2), 1, 1)
        sequence = LatentSequence.of(0, sum(plan))
        tried: list[float] = []
        shares: dict[float, float] = {}

        def probe(scale: float) -> float:
            self.latent_scale = scale
            try:
                video = self.decode_plan(decoder, self.latents(sequence), plan).video()
            except (CheckFailed, DecoderError) as err:
                # The check's own decodes will meet this failure and report it in their
                # terms (with a shrunk example); the probe only gives up searching.
                self.evidence.note("signal_probe_failed", f"at latent scale {scale:g}: {err}")
                raise _ProbeFailed from err
            share = float(signal_mask(video, video).double().mean().item()) if video.numel() else 0.0
            tried.append(scale)
            shares[scale] = share
            return share

        def search(factor: float, limit: float) -> None:
            # Steps by ``factor`` (by its square while under 1% of the elements carry
            # signal, so an output clamped everywhere is crossed quickly) until ``limit``;
            # stops at the target, or, once at least 10% carry signal, after three steps in
            # a row that did not beat the best share so far (a decoder whose constant
            # regions no scale changes; probes are short, so shares are noisy).
            scale, stale, share = 1.0, 0, shares[1.0]
            while True:
                scale *= factor if share >= 0.01 else factor * factor
                if (scale < limit) if factor < 1 else (scale > limit):
                    return
                best_so_far = max(shares.values())
                share = probe(scale)
                if share >= SIGNAL_TARGET:
                    return
                stale = stale + 1 if best_so_far >= 0.1 and share <= best_so_far else 0
                if stale >= 3:
                    return

        try:
            if probe(1.0) < SIGNAL_TARGET:
                search(0.5, SIGNAL_MIN_SCALE)
                if max(shares.values()) < SIGNAL_TARGET and max(shares.values()) <= shares[1.0]:
                    search(2.0, 8.0)  # nothing below 1 helped: up to 8
        except _ProbeFailed:
            pass
        if not shares:
            self.latent_scale = 1.0
            return 1.0
        best = max(shares, key=lambda k: (shares[k], -abs(math.log2(k))))
        self.latent_scale = best
        self.evidence.note("latent_scale", best)
        self.evidence.note("probe_signal_fraction", round(shares[best], 4))
        if len(tried) > 1:
            self.evidence.note("latent_scales_tried", tried)
        return best

    # ----------------------------------------------------------------- wider-dtype twin

    def reference_decoder(self) -> StreamingVideoDecoder[Any] | None:
        """The decoder's wider-dtype twin (``DecoderSpec.reference_dtype``), or ``None``.

        Built once per check by ``spec.reference_factory`` or, without one, as
        ``factory().to(reference_dtype)``; building or converting it may fail like any
        decoder call (``DecoderError``).
        """
        spec = self.spec
        if spec.reference_dtype is None:
            return None
        if self._reference is None:
            if spec.reference_factory is not None:
                what = f"reference_factory {callable_name(spec.reference_factory)}()"
                built: torch.nn.Module = self.call_decoder(what, spec.reference_factory)
            else:
                what = f"factory {callable_name(spec.factory)}().to({spec.reference_dtype})"
                fresh = self.call_decoder(f"factory {callable_name(spec.factory)}()", spec.factory)
                built = self.call_decoder(what, fresh.to, spec.reference_dtype)
            require_decoder(built, what)
            self._reference = cast("StreamingVideoDecoder[Any]", built)  # structurally one
        return self._reference

    def reference_full_decode(self, sequence: LatentSequence) -> torch.Tensor:
        """The one-call decode of ``sequence`` by the wider-dtype twin (same latents, cast
        exactly to ``reference_dtype``), memoized like :meth:`full_decode`."""
        twin = self.reference_decoder()
        if twin is None:
            raise AssertionError("kit bug: no reference_dtype declared")
        key = (sequence, self.spec.batch_size)
        if key not in self._reference_decodes:
            latents = self.latents(sequence).to(self.spec.reference_dtype)
            try:
                step = self.forward(twin, latents, 0, self.new_cache(twin), dtype=self.spec.reference_dtype)
            except DecoderError as err:
                how = (
                    "built by DecoderSpec.reference_factory"
                    if self.spec.reference_factory is not None
                    else f"built as factory().to({self.spec.reference_dtype}); declare a "
                    "reference_factory if the decoder does not compute in its parameters' dtype"
                )
                raise DecoderError(
                    f"the reference decoder (DecoderSpec.reference_dtype="
                    f"{self.spec.reference_dtype}, {how}) failed: {err}"
                ) from err
            self._reference_decodes[key] = step.output
        return self._reference_decodes[key]

    # ----------------------------------------------------------------- Hypothesis

    @contextlib.contextmanager
    def capture_hypothesis_reports(self) -> Iterator[list[str]]:
        """Collect what Hypothesis reports (the falsifying example or program) in this thread."""
        from hypothesis.reporting import with_reporter

        lines: list[str] = []
        with with_reporter(lambda value: lines.append(str(value))):
            yield lines

"""The :class:`CheckContext`: everything a check needs to drive a decoder, and nothing else.

Checks never call the decoder directly. Going through the context guarantees that:

- every call is made the way pipelines make it (``decoder(input=..., autoregressive_index=i,
  cache=c)``, keywords only), on a fresh copy of the input in the spec's layout, under
  ``torch.no_grad()``;
- a call that raises, or returns something the contract does not allow, becomes a
  :class:`~conformance.core.outcomes.DecoderError` naming the call (``factory``,
  ``initialize_autoregressive_cache``, ``forward at AR 3 with 1 latent frame`` ...);
- outputs come back in canonical ``BCTHW`` as private copies, so a decoder that later
  overwrites its output buffer cannot corrupt the kit's references (the check for that
  looks at the raw output on purpose);
- every call is counted in the check's :class:`~conformance.checks.evidence.Evidence`;
- a check abandoned after its timeout stops at its next decoder call.
"""

from __future__ import annotations

import contextlib
import math
import operator
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import torch

from conformance.bases import StreamingVideoDecoder
from conformance.checks.evidence import Evidence
from conformance.core.interface import (
    cache_problems,
    decoder_problems,
    describe_cache_problems,
    describe_decoder_problems,
)
from conformance.checks.latents import (
    INPUT_STYLES,
    LatentSequence,
    frame_generator_seed,
    make_frames,
    styled_input,
)
from conformance.core.outcomes import CheckCancelled, CheckFailed, DecoderError, SpecFault
from conformance.core.profiles import Profile
from conformance.core.spec import AXES, DecoderSpec
from conformance.checks.tolerances import Comparison, Tolerance, compare, signal_mask, tolerance_for

__all__ = ["CheckContext", "Decoded", "MapperAnswer", "Step", "describe_exception"]

T = TypeVar("T")

#: Share of output elements carrying signal that :meth:`CheckContext.seek_signal` aims for.
SIGNAL_TARGET = 0.5

#: Smallest latent scale :meth:`CheckContext.seek_signal` tries: a random-weight decoder
#: with a gain of a million in front of its clamp still shows signal above it.
SIGNAL_MIN_SCALE = 2.0**-24


class _ProbeFailed(Exception):
    """A signal probe decode failed; :meth:`CheckContext.seek_signal` stops searching."""

#: Exceptions a size mapper may raise to say "this size cannot be produced".
MAPPER_REJECTIONS: tuple[type[BaseException], ...] = (ValueError, AssertionError)


def describe_exception(err: BaseException | None) -> str:
    """``"TypeName: first line of the message"``, for one-line failure messages."""
    if err is None:
        return "no exception"
    try:
        text = str(err).strip().splitlines()
    except Exception:  # noqa: BLE001 - a decoder's exception may not even format
        return f"{type(err).__name__} (its message could not be formatted)"
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def _permutation(source: str, target: str) -> tuple[int, ...]:
    """Axes of ``source`` in the order ``target`` lists them (for ``Tensor.permute``)."""
    return tuple(source.index(axis) for axis in target)


@dataclass
class Step:
    """One forward call: the canonical private copy of the output, plus the raw objects."""

    output: torch.Tensor  # BCTHW, detached clone
    raw_output: torch.Tensor  # exactly what the decoder returned
    raw_input: torch.Tensor  # exactly what the decoder was given
    autoregressive_index: int
    latent_frames: int

    @property
    def frames(self) -> int:
        return int(self.output.shape[2])


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


@dataclass(frozen=True)
class MapperAnswer:
    """What a size mapper did: returned ``value``, or raised ``error``."""

    value: int | None
    error: BaseException | None

    @property
    def rejected(self) -> bool:
        return self.error is not None


class CheckContext:
    """Per-check state: the spec, the profile, the seed, the evidence and the call helpers.

    One context serves one run of one check. It builds the decoder once (lazily), and
    memoizes one-call reference decodes by latent description.
    """

    def __init__(
        self,
        spec: DecoderSpec,
        profile: Profile,
        *,
        check_id: str,
        seed: int,
        run_seed: int,
        target: str | None = None,
    ) -> None:
        self.spec = spec
        self.profile = profile
        self.check_id = check_id
        #: Seed for this check's randomness (derived from the run seed and the check id, so
        #: a check run alone replays exactly what it did inside a full certification).
        self.seed = seed
        self.run_seed = run_seed
        self.target = target
        self.evidence = Evidence()
        self.tolerance: Tolerance = tolerance_for(spec)
        self.device = spec.torch_device
        self._decoder: StreamingVideoDecoder[Any] | None = None
        self._full_decodes: dict[tuple[int, LatentSequence, int], torch.Tensor] = {}
        self._frames: dict[tuple[int, int], torch.Tensor] = {}
        #: Factor applied to every latent :meth:`latents` returns; :meth:`seek_signal`
        #: lowers it for decoders whose output is clamped at unit-variance latents.
        self.latent_scale = 1.0
        self._signal_sought = False
        self._reference: StreamingVideoDecoder[Any] | None = None
        self._reference_decodes: dict[tuple[LatentSequence, int], torch.Tensor] = {}
        self._cancelled = threading.Event()
        self._current_call: tuple[str, float] | None = None
        #: The first failure seen inside a Hypothesis search, kept so that a search whose
        #: shrinking outlives the check's timeout still reports the bug, not just the timeout.
        self.first_failure: str | None = None
        #: Called with the description of every decoder call just before it is made (a
        #: supervised worker reports it, so a process that dies mid-call is blamed on the
        #: right call).
        self.call_listener: Callable[[str], None] | None = None
        #: Whether that first failure was the decoder's own error (it raised, or returned
        #: something unusable) rather than a broken promise; see the runner's expectations.
        self.first_failure_is_decoder_error = False

    # ----------------------------------------------------------------- bookkeeping

    @property
    def replay_command(self) -> str:
        return (
            f"python -m conformance certify {self.target or '<TARGET>'} --check {self.check_id} "
            f"--seed {self.run_seed} --profile {self.profile.name}"
        )

    def cancel(self) -> None:
        """Ask the check to stop at its next decoder call (the runner gave up on it)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def current_call(self) -> str | None:
        """The decoder call in progress and for how long, for timeout messages."""
        call = self._current_call
        if call is None:
            return None
        return f"{call[0]}, running for {time.monotonic() - call[1]:.1f} s"

    def note_failure(self, err: BaseException) -> None:
        """Remember the first failure of a search (see :attr:`first_failure`)."""
        if self.first_failure is None:
            self.first_failure = str(err)
            self.first_failure_is_decoder_error = isinstance(err, DecoderError)

    # ----------------------------------------------------------------- decoder calls

    def call_decoder(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call into the decoder; anything it raises becomes a ``DecoderError`` naming ``what``.

        *Anything*: the kit's own outcome types too (a decoder raising ``CheckFailed`` or
        ``CheckSkipped`` must not pass for a broken promise that an expected-failure
        declaration absorbs, or for a skip), ``SystemExit``, ``KeyboardInterrupt`` raised by
        the decoder itself, and pytest's outcome exceptions (``pytest.skip`` in a factory).
        A real Ctrl-C is let through unless the call runs in a supervised worker process,
        which ignores SIGINT (its supervisor owns the terminal), so that any
        ``KeyboardInterrupt`` seen there was raised by the decoder.
        """
        if self._cancelled.is_set():
            raise CheckCancelled(f"check cancelled before {what}")
        self._current_call = (what, time.monotonic())
        if self.call_listener is not None:
            self.call_listener(what)
        defaults = _global_defaults()
        try:
            return fn(*args, **kwargs)
        except BaseException as err:
            if isinstance(err, CheckCancelled) and self._cancelled.is_set():
                raise
            if isinstance(err, KeyboardInterrupt) and not _interrupt_is_the_decoders():
                raise
            raise DecoderError(f"{what} raised {describe_exception(err)}") from err
        finally:
            self._current_call = None
            _restore_global_defaults(defaults, what)

    def decoder(self) -> StreamingVideoDecoder[Any]:
        """The decoder under test, built once per check by the spec's factory."""
        if self._decoder is None:
            built = self.call_decoder(f"factory {_name(self.spec.factory)}()", self.spec.factory)
            # Structural, not isinstance: decoders built on another copy of the interface
            # (a framework's own flashdreams) count when they honour the contract.
            problems = decoder_problems(built)
            if problems:
                raise DecoderError(
                    f"factory {_name(self.spec.factory)}() returned "
                    f"{describe_decoder_problems(built, problems)}"
                )
            self._decoder = cast("StreamingVideoDecoder[Any]", built)  # structurally one
        return self._decoder

    def new_cache(self, decoder: StreamingVideoDecoder[Any] | None = None, **extra: Any) -> Any:
        """A fresh rollout cache: ``initialize_autoregressive_cache(**spec.cache_context)``."""
        decoder = decoder or self.decoder()
        context = {**self.spec.cache_context, **extra}
        # As the spec says pipelines call it (never inference_mode(False): see forward()).
        mode = torch.inference_mode() if self.spec.inference_mode else contextlib.nullcontext()
        with mode:
            cache = self.call_decoder(
                "initialize_autoregressive_cache(" + ", ".join(f"{k}=..." for k in context) + ")",
                decoder.initialize_autoregressive_cache,
                **context,
            )
        problems = cache_problems(cache)
        if problems:
            raise DecoderError(
                f"initialize_autoregressive_cache returned {describe_cache_problems(cache, problems)}"
            )
        return cache

    def query_mapper(
        self, decoder: StreamingVideoDecoder[Any], which: str, autoregressive_index: int, size: int
    ) -> MapperAnswer:
        """Call ``get_output_temporal_size`` (``which="output"``) or ``get_input_temporal_size``.

        A ``ValueError`` / ``AssertionError`` is returned as a rejection (legal for sizes the
        step cannot handle); other exceptions and non-integer results are ``DecoderError``.
        """
        name = f"get_{which}_temporal_size"
        what = f"{name}({autoregressive_index}, {size})"
        self.evidence.mapper_queries += 1
        fn = getattr(decoder, name)
        if self._cancelled.is_set():
            raise CheckCancelled(f"check cancelled before {what}")
        try:
            value = fn(autoregressive_index, size)
        except (CheckFailed, CheckCancelled) as err:  # the kit's own types: never a rejection
            raise DecoderError(f"{what} raised {describe_exception(err)}") from err
        except MAPPER_REJECTIONS as err:
            return MapperAnswer(None, err)
        except BaseException as err:
            if isinstance(err, KeyboardInterrupt) and not _interrupt_is_the_decoders():
                raise
            raise DecoderError(
                f"{what} raised {describe_exception(err)}; a size mapper may only reject a "
                "size with ValueError or AssertionError"
            ) from err
        return MapperAnswer(self.as_int(value, what), None)

    @staticmethod
    def as_int(value: Any, what: str) -> int:
        """``value`` as an int if it is an integer (not bool, not float); else ``DecoderError``."""
        if isinstance(value, bool) or isinstance(value, float) or isinstance(value, torch.Tensor):
            raise DecoderError(f"{what} returned {value!r} ({type(value).__name__}); expected an int")
        try:
            return operator.index(value)
        except TypeError:
            raise DecoderError(
                f"{what} returned {value!r} ({type(value).__name__}); expected an int"
            ) from None

    # ----------------------------------------------------------------- latents and layouts

    def latents(self, sequence: LatentSequence, batch: int | None = None) -> torch.Tensor:
        """The frames ``sequence`` describes, canonical ``[B, C, T, h, w]`` in the spec's dtype
        and device."""
        spec = self.spec
        frames = sequence.frames()
        missing = [f for f in frames if f not in self._frames]
        if missing:
            made = make_frames(
                self.seed,
                missing,
                batch=spec.batch_size,
                channels=spec.latent_channels,
                size=spec.latent_size,
            )
            for t, key in enumerate(missing):
                self._frames[key] = made[:, :, t : t + 1]
        if not frames:
            h, w = spec.latent_size
            out = torch.empty(spec.batch_size, spec.latent_channels, 0, h, w)
        else:
            out = torch.cat([self._frames[f] for f in frames], dim=2)
        if batch is not None:
            out = out[:batch]
        if self.latent_scale != 1.0:
            out = out * self.latent_scale
        return out.to(device=self.device, dtype=spec.dtype)

    def to_input_layout(
        self,
        latents: torch.Tensor,
        style: str | None = None,
        *,
        autoregressive_index: int | None = None,
    ) -> torch.Tensor:
        """Canonical ``BCTHW`` latents as a fresh tensor in the spec's layout, in the memory
        layout of ``style`` (see :func:`conformance.checks.latents.styled_input`).

        Without ``style`` the kit picks one of :data:`~conformance.checks.latents.INPUT_STYLES`
        (contiguous, a non-contiguous slice of a larger tensor, ``channels_last_3d``,
        time-major storage), as pipelines pass all of these: for a forward call, by
        :meth:`input_style` of its AR index and frame count (so a replayed call gets the
        same memory layout, and a chunked decode and the one-call decode it is compared
        with mostly get different ones: a decoder that ignores strides disagrees with
        itself); otherwise in rotation. The styles used are counted in the evidence
        (``input_styles``).
        """
        x = latents.permute(_permutation(AXES, self.spec.layout))
        count = getattr(self, "_input_count", 0)
        self._input_count = count + 1
        if style is None:
            if autoregressive_index is not None:
                style = self.input_style(autoregressive_index, int(latents.shape[2]))
            else:
                style = INPUT_STYLES[(self.seed + count) % len(INPUT_STYLES)]
        used = self.evidence.extra.setdefault("input_styles", {})
        used[style] = used.get(style, 0) + 1
        return styled_input(x, style, time_axis=self.spec.layout.index("T"), seed=self.seed + count)

    def input_style(self, autoregressive_index: int, frames: int) -> str:
        """The memory layout the kit passes a call of ``frames`` latent frames at AR
        ``autoregressive_index`` in: fixed per check seed, so failures replay."""
        mixed = frame_generator_seed(self.seed, autoregressive_index, frames)
        return INPUT_STYLES[mixed % len(INPUT_STYLES)]

    def from_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        """A decoder output (in the spec's output layout) viewed as canonical ``BCTHW``."""
        return output.permute(_permutation(self.spec.resolved_output_layout, AXES))

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        decoder: StreamingVideoDecoder[Any],
        latents: torch.Tensor,
        autoregressive_index: int,
        cache: Any,
        *,
        raw_input: torch.Tensor | None = None,
    ) -> Step:
        """One pipeline-style call on canonical latents; returns a :class:`Step`.

        The decoder gets a fresh copy in its layout (or exactly ``raw_input`` when given).
        The result must be a 5-dimensional tensor; it is returned as a canonical clone.
        """
        frames = int(latents.shape[2])
        if self.spec.max_chunk_frames is not None and frames > self.spec.max_chunk_frames:
            raise AssertionError(
                f"kit bug: {frames} latent frames exceed spec.max_chunk_frames="
                f"{self.spec.max_chunk_frames}"
            )
        x = (
            self.to_input_layout(latents, autoregressive_index=autoregressive_index)
            if raw_input is None
            else raw_input
        )
        what = (
            f"forward at AR {autoregressive_index} with {frames} latent frame"
            f"{'s' if frames != 1 else ''} (input {list(x.shape)} {self.spec.layout})"
        )
        # Under inference_mode the outputs are inference tensors; the clone below (outside
        # it) gives the kit ordinary tensors, and the kit never writes to the raw ones.
        # (``torch.inference_mode(False)`` would switch autograd back on inside the
        # runner's no_grad: every cache would then hold the graph of every earlier step.)
        mode = torch.inference_mode() if self.spec.inference_mode else contextlib.nullcontext()
        with mode:
            raw = self.call_decoder(
                what, decoder, input=x, autoregressive_index=autoregressive_index, cache=cache
            )
        if self.spec.output_adapter is not None:
            raw = self.adapt_output(raw, what)
        if not isinstance(raw, torch.Tensor):
            raise DecoderError(
                f"{what} returned {type(raw).__name__}, expected a torch.Tensor "
                f"[{', '.join(self.spec.resolved_output_layout)}]"
                + (
                    "" if raw is None or isinstance(raw, (tuple, list)) else
                    "; if it returns a video object by design, declare DecoderSpec.output_adapter "
                    "to map it to that tensor"
                )
            )
        if raw.dim() != 5:
            raise DecoderError(
                f"{what} returned a {raw.dim()}-dimensional tensor of shape {list(raw.shape)}, "
                f"expected 5 dimensions ({self.spec.resolved_output_layout})"
            )
        if raw.device.type == "meta":
            raise DecoderError(
                f"{what} returned a tensor on the meta device, which holds no data; expected "
                f"device {self.spec.torch_device}"
            )
        if raw.layout != torch.strided:
            raise DecoderError(
                f"{what} returned a tensor with layout {raw.layout} (sparse or otherwise not "
                "dense); expected a dense (strided) video tensor"
            )
        output = self.from_output_layout(raw).detach().clone()
        self.require_finite(output, what)
        self.evidence.decoder_calls += 1
        self.evidence.latent_frames += frames
        self.evidence.pixel_frames += int(output.shape[2])
        return Step(output, raw, x, autoregressive_index, frames)

    def adapt_output(self, returned: Any, what: str) -> torch.Tensor:
        """``spec.output_adapter(returned)``: the decoder's output as a tensor.

        The adapter is the spec's code, so its failures are :class:`SpecFault` (the check
        cannot judge the decoder), never the decoder's.
        """
        adapter = self.spec.output_adapter
        assert adapter is not None
        try:
            adapted = adapter(returned)
        except Exception as err:  # noqa: BLE001 - any failure of spec code is a spec fault
            raise SpecFault(
                f"DecoderSpec.output_adapter {_name(adapter)} raised {describe_exception(err)} "
                f"on what {what} returned ({type(returned).__name__}); fix the adapter in the spec"
            ) from err
        if not isinstance(adapted, torch.Tensor):
            raise SpecFault(
                f"DecoderSpec.output_adapter {_name(adapter)} returned {type(adapted).__name__} "
                f"for what {what} returned ({type(returned).__name__}); it must return the "
                f"output tensor [{', '.join(self.spec.resolved_output_layout)}]"
            )
        return adapted

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

    def chunk_limit(self, wanted: int) -> int:
        """``wanted`` latent frames, capped by ``spec.max_chunk_frames``."""
        limit = self.spec.max_chunk_frames
        return wanted if limit is None else max(1, min(wanted, limit))

    # ----------------------------------------------------------------- comparisons

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

    def require_finite(self, output: torch.Tensor, what: str) -> None:
        """``CheckFailed`` naming the call, the pixel frames and the count when ``output``
        (canonical ``BCTHW``) holds a NaN or an infinity: a decoded pixel must be a number,
        and no comparison can vouch for one that is not."""
        if not output.is_floating_point() and not output.is_complex():
            return
        finite = torch.isfinite(output)
        if bool(finite.all()):
            return
        bad = ~finite
        frames = torch.nonzero(bad.any(dim=(0, 1, 3, 4))).flatten().tolist() if output.dim() == 5 else [0]
        nan = int(torch.isnan(output).sum().item())
        pos = int(torch.isposinf(output).sum().item()) if not output.is_complex() else 0
        neg = int(torch.isneginf(output).sum().item()) if not output.is_complex() else 0
        shown = ", ".join(str(f) for f in frames[:10]) + (", ..." if len(frames) > 10 else "")
        raise CheckFailed(
            f"{what} returned {int(bad.sum().item())} non-finite value(s) out of "
            f"{output.numel()} ({nan} NaN, {pos} +Inf, {neg} -Inf), in {len(frames)} of its "
            f"{output.shape[2] if output.dim() == 5 else 1} pixel frame(s), first in pixel frame "
            f"{frames[0]} of that output (frames {shown}); decoded pixels must be finite, and a "
            "NaN or infinity is never agreement with anything"
            + (f" (latents scaled by {self.latent_scale:g})" if self.latent_scale != 1.0 else "")
        )

    def seek_signal(self, decoder: StreamingVideoDecoder[Any]) -> float:
        """Choose the latent scale this check decodes at, so its comparisons see signal.

        A decoder whose output is clamped almost everywhere at unit-variance latents (a
        random-weight decoder with a large gain, say) agrees with anything there: chunked
        and one-call decodes both give the clamp bound. So before its first decode a
        numeric check probes a short rollout (a multi-frame first chunk, then one-frame
        chunks) and measures the share of output elements that carry signal (not on a
        clamp bound read from the data, not in a constant frame; see
        :func:`conformance.checks.tolerances.signal_mask`). Below ``SIGNAL_TARGET`` it halves the
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
                what = f"reference_factory {_name(spec.reference_factory)}()"
                built: torch.nn.Module = self.call_decoder(what, spec.reference_factory)
            else:
                what = f"factory {_name(spec.factory)}().to({spec.reference_dtype})"
                fresh = self.call_decoder(f"factory {_name(spec.factory)}()", spec.factory)
                built = self.call_decoder(what, fresh.to, spec.reference_dtype)
            problems = decoder_problems(built)
            if problems:
                raise DecoderError(f"{what} returned {describe_decoder_problems(built, problems)}")
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
                step = self.forward(twin, latents, 0, self.new_cache(twin))
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


def _interrupt_is_the_decoders() -> bool:
    """Whether a ``KeyboardInterrupt`` seen now can only have been raised by the code under
    test: Python delivers a real Ctrl-C to the main thread only, so one raised in a check's
    worker thread is the decoder's; and a supervised worker process ignores SIGINT (its
    supervisor owns the terminal), so there any ``KeyboardInterrupt`` is the decoder's."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        return True
    try:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    except (ValueError, AttributeError):  # pragma: no cover - exotic platforms
        return False


def _global_defaults() -> tuple[Any, torch.dtype]:
    get_device = getattr(torch, "get_default_device", None)
    return (get_device() if get_device is not None else None), torch.get_default_dtype()


def _restore_global_defaults(before: tuple[Any, torch.dtype], what: str) -> None:
    """Undo a decoder call's change of torch's process-wide defaults, and fail it.

    A factory that calls ``torch.set_default_device("meta")`` (to build on the meta
    device) and never restores it silently moves every later tensor of the pipeline --
    and of the kit -- onto a device with no data. The kit restores the defaults, so its
    own work is unharmed, and reports the call that changed them.
    """
    after = _global_defaults()
    if after == before:
        return
    device, dtype = before
    if device is not None:
        torch.set_default_device(device)
    torch.set_default_dtype(dtype)
    changes = []
    if after[0] != device:
        changes.append(f"default device from {device} to {after[0]} (torch.set_default_device)")
    if after[1] != dtype:
        changes.append(f"default dtype from {dtype} to {after[1]} (torch.set_default_dtype)")
    raise DecoderError(
        f"{what} changed torch's process-wide {' and '.join(changes)} and left it so; every "
        "later tensor of a pipeline would follow it. Build under a context instead "
        "(`with torch.device('meta'):`) or restore the default before returning"
    )


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)

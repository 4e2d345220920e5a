"""What a decoder author hands the kit: a :class:`DecoderSpec`, and all of its validation.

Targets (``MODULE:ATTR`` strings naming specs) are loaded by :mod:`conformance.core.targets`;
expected-failure ids are checked against the registry by :mod:`conformance.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch

__all__ = ["AXES", "DecoderSpec", "ExpectedFailure"]

#: The five axes a layout string orders: batch, channels, time, height, width.
AXES = "BCTHW"


class ExpectedFailure(str):
    """A declared known bug: the reason, and optionally the fingerprint of what was seen.

    A plain string in ``DecoderSpec.expected_failures`` covers any broken promise of its
    check. An ``ExpectedFailure`` with a ``fingerprint`` covers exactly that failure: the
    check must fail with the same fingerprint, so a different or additional violation (a
    seam bug that now also breaks another chunk plan, a mapper that now also fails at AR
    1000) fails certification, with a message showing the pinned and the seen
    fingerprints. Checks that record a fingerprint print it in their failure message and
    in the report's evidence (``failure_fingerprint``); paste it here::

        expected_failures={
            "temporal_mappers_monotone_and_steady": ExpectedFailure(
                "AR 0 returns -3 for n = 0 (bug 41)",
                fingerprint=["n < 1 neither rejected nor 0 at AR 0, latent count n 0 #3f1c0a9e2b"],
            ),
        }

    It is a ``str`` (the reason) so that code and reports that treat reasons as strings
    keep working; the fingerprint is compared as a set of lines.
    """

    fingerprint: tuple[str, ...] | None

    def __new__(cls, reason: str, fingerprint: str | tuple[str, ...] | list[str] | None = None) -> ExpectedFailure:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"ExpectedFailure needs a non-empty reason string, got {reason!r}")
        obj = super().__new__(cls, reason)
        if fingerprint is None:
            obj.fingerprint = None
        elif isinstance(fingerprint, str):
            obj.fingerprint = (fingerprint,)
        elif isinstance(fingerprint, (list, tuple)) and fingerprint and all(
            isinstance(line, str) and line for line in fingerprint
        ):
            obj.fingerprint = tuple(fingerprint)
        else:
            raise ValueError(
                "ExpectedFailure.fingerprint must be None, a string or a non-empty list of "
                f"strings (paste the failure_fingerprint the report printed), got {fingerprint!r}"
            )
        return obj

    @property
    def reason(self) -> str:
        return str.__str__(self)

    def __repr__(self) -> str:
        if self.fingerprint is None:
            return f"ExpectedFailure({self.reason!r})"
        return f"ExpectedFailure({self.reason!r}, fingerprint={list(self.fingerprint)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ExpectedFailure, (self.reason, self.fingerprint))


def _check_layout(name: str, layout: object) -> None:
    if not isinstance(layout, str) or sorted(layout) != sorted(AXES):
        raise ValueError(
            f"DecoderSpec.{name} must be a permutation of the letters {AXES!r} "
            f"(e.g. 'BCTHW' or 'BTCHW'), got {layout!r}"
        )


#: Largest latent frame (batch x channels x height x width) a spec may ask the checks to
#: decode: 2^24 elements (64 MiB in float32). The checks hold dozens of such frames and
#: their decoded outputs; far beyond what conformance needs, far below what exhausts a
#: machine. A bigger spec is refused when it is made, naming the spec.
MAX_LATENT_FRAME_ELEMENTS = 1 << 24


def _positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True, kw_only=True)
class DecoderSpec:
    """Describes one decoder under test: how to build it and what to feed it.

    Required:
        name: a readable name, used in test ids and reports.
        factory: zero-argument callable returning a fresh decoder: an ``nn.Module`` that
            honours the ``StreamingVideoDecoder`` interface (any copy of its base classes),
            already on ``device`` in ``dtype`` and in the mode it is used in (usually eval).
        latent_channels: channels of the latent input.
        latent_size: latent (height, width) the checks decode; keep it small.

    Optional:
        layout: input axes, a permutation of ``B C T H W``.
        output_layout: output axes; defaults to ``layout``.
        output_channels: pixel channels of the output.
        batch_size: batch the checks decode with; > 1 enables the batch independence check.
        dtype: dtype of the latents fed to the decoder, and the default output dtype.
        output_dtype: dtype the output must have, when it differs from ``dtype``.
        device: where latents are placed and where outputs must be.
        cache_context: keyword arguments for ``initialize_autoregressive_cache``.
        atol, rtol: override the dtype's default elementwise tolerance (see
            :mod:`conformance.checks.harness.tolerances`).
        rms_tol: override the dtype's default bound on the root-mean-square error of each
            pixel frame, the aggregate criterion that catches structured (seam) errors
            hidden under the elementwise bound; when only ``atol`` is overridden, the
            default is scaled by the same factor.
        expected_failures: check id -> reason (a string, or an :class:`ExpectedFailure`
            that also pins the failure's fingerprint); such a check must fail (reported
            ``xfailed``), one that passes fails certification as a stale expectation, and
            a pinned one that fails differently (other or more violations) fails too.
        check_timeout_s: seconds each check may run before it is reported as hanging;
            ``None`` uses the profile's default.
        max_chunk_frames: most latent frames the decoder accepts in one call; the kit then
            never calls with more, including the one-call reference decodes.
        output_adapter: callable turning what ``forward`` returns into the output tensor in
            ``output_layout``, for decoders that return something else (a video object
            holding a tensor, a uint8 ``THWC`` array). It is spec code: an exception in it,
            or a non-tensor result, is reported as a fault of the spec, not of the decoder.
            It should not copy needlessly: the checks that outputs survive later steps and
            inputs are untouched look at the tensor it returns.
        inference_mode: pipelines call this decoder inside ``torch.inference_mode()``
            (its cache and outputs are inference tensors, which cannot be updated in place
            outside that mode); the kit then makes every ``initialize_autoregressive_cache``
            and ``forward`` call inside it too. The kit reads and clones outputs, which
            works for inference tensors in either case, and edits them in place as a caller
            may (``caller_owns_returned_outputs``), inside the mode only when declared: a
            decoder returning inference tensors to pipelines outside it fails that check.
        reference_dtype: a wider floating dtype the same decoder can also compute in
            (float32 for a bfloat16 decoder). The chunk check then measures the decoder's
            own rounding noise (its one-call decode against this wider twin's) and fails
            seam errors a few times that noise (see :mod:`conformance.checks.harness.tolerances`).
        reference_factory: zero-argument callable building that twin: the same weights,
            computing everything in ``reference_dtype`` and taking latents in it. Without
            it the kit builds ``factory()`` and calls ``.to(reference_dtype)`` on it,
            which is right for decoders that follow their parameters' dtype.
        horizon_frames: latent frames of the long rollouts compared with one decode of all
            of them (``long_rollouts_match_full_decode``), when more than the profile's
            (256 in the default profile): set it to the length your pipeline streams.
        chunk_plans: the chunk plans your pipeline uses (latent frames per call, e.g.
            ``((1, 4, 4, 4),)``): always tried by the chunk checks, as given and repeated
            over the long rollouts.
        rebuild_per_check: build every check's decoders with ``factory`` instead of deep
            copies of one build. The kit copies by default (much faster for large
            decoders) and falls back to building by itself when a copy would not be
            isolated from the original or cannot be made; set this for a decoder whose
            construction has effects a copy does not repeat (registering itself somewhere).
    """

    name: str
    # Any nn.Module that honours the interface (conformance.core.interface), whichever copy of
    # the base classes it derives from; typed loosely so framework decoders type-check.
    factory: Callable[[], torch.nn.Module]
    latent_channels: int
    latent_size: tuple[int, int]
    layout: str = "BCTHW"
    output_layout: str | None = None
    output_channels: int = 3
    batch_size: int = 1
    dtype: torch.dtype = torch.float32
    output_dtype: torch.dtype | None = None
    device: str | torch.device = "cpu"
    cache_context: Mapping[str, Any] = field(default_factory=dict, hash=False)
    atol: float | None = None
    rtol: float | None = None
    rms_tol: float | None = None
    expected_failures: Mapping[str, str] = field(default_factory=dict, hash=False)
    check_timeout_s: float | None = None
    max_chunk_frames: int | None = None
    output_adapter: Callable[[Any], torch.Tensor] | None = field(default=None, hash=False)
    inference_mode: bool = False
    reference_dtype: torch.dtype | None = None
    reference_factory: Callable[[], torch.nn.Module] | None = None
    rebuild_per_check: bool = False
    horizon_frames: int | None = None
    chunk_plans: tuple[tuple[int, ...], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"DecoderSpec.name must be a non-empty string, got {self.name!r}")
        if not callable(self.factory):
            raise ValueError(
                f"DecoderSpec.factory must be a zero-argument callable returning the decoder, "
                f"got {self.factory!r}"
            )
        if not _positive_int(self.latent_channels):
            raise ValueError(
                f"DecoderSpec.latent_channels must be a positive int, got {self.latent_channels!r}"
            )
        size = self.latent_size
        if not (isinstance(size, (tuple, list)) and len(size) == 2 and all(map(_positive_int, size))):
            raise ValueError(
                f"DecoderSpec.latent_size must be (height, width) of positive ints, got {size!r}"
            )
        object.__setattr__(self, "latent_size", (int(size[0]), int(size[1])))
        _check_layout("layout", self.layout)
        if self.output_layout is not None:
            _check_layout("output_layout", self.output_layout)
        if not _positive_int(self.output_channels):
            raise ValueError(
                f"DecoderSpec.output_channels must be a positive int, got {self.output_channels!r}"
            )
        if not _positive_int(self.batch_size):
            raise ValueError(f"DecoderSpec.batch_size must be a positive int, got {self.batch_size!r}")
        frame = self.batch_size * self.latent_channels * self.latent_size[0] * self.latent_size[1]
        if frame > MAX_LATENT_FRAME_ELEMENTS:
            raise ValueError(
                f"DecoderSpec {self.name!r}: one latent frame of batch_size {self.batch_size} x "
                f"{self.latent_channels} channels x latent_size {self.latent_size} has {frame:,} "
                f"elements, more than the kit's limit of {MAX_LATENT_FRAME_ELEMENTS:,}; the checks "
                "decode dozens of frames many times over, and seam bugs show at any size: use a "
                "small latent_size (a full-size Wan 2.2 frame is 44 x 80 x 48 = 168,960 elements)"
            )
        for name in ("dtype", "output_dtype"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, torch.dtype):
                raise ValueError(f"DecoderSpec.{name} must be a torch.dtype, got {value!r}")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"DecoderSpec.device is not a torch device: {self.device!r} ({err})") from None
        for name in ("atol", "rtol", "rms_tol"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0
            ):
                raise ValueError(f"DecoderSpec.{name} must be a non-negative number, got {value!r}")
        if self.check_timeout_s is not None and not (
            isinstance(self.check_timeout_s, (int, float)) and self.check_timeout_s > 0
        ):
            raise ValueError(
                f"DecoderSpec.check_timeout_s must be a positive number of seconds, got "
                f"{self.check_timeout_s!r}"
            )
        _check_reference(self)
        if self.output_adapter is not None and not callable(self.output_adapter):
            raise ValueError(
                "DecoderSpec.output_adapter must be a callable taking forward's result and "
                f"returning the output tensor, got {self.output_adapter!r}"
            )
        if self.horizon_frames is not None and not _positive_int(self.horizon_frames):
            raise ValueError(
                f"DecoderSpec.horizon_frames must be a positive int (latent frames), got {self.horizon_frames!r}"
            )
        plans = self.chunk_plans
        if not isinstance(plans, (tuple, list)) or not all(
            isinstance(plan, (tuple, list)) and plan and all(map(_positive_int, plan)) for plan in plans
        ):
            raise ValueError(
                "DecoderSpec.chunk_plans must be a sequence of chunk plans, each a non-empty "
                f"sequence of positive ints (latent frames per call), e.g. ((1, 4, 4, 4),); got {plans!r}"
            )
        object.__setattr__(self, "chunk_plans", tuple(tuple(int(n) for n in plan) for plan in plans))
        if self.max_chunk_frames is not None and any(n > self.max_chunk_frames for plan in self.chunk_plans for n in plan):
            raise ValueError(
                f"DecoderSpec.chunk_plans has chunks longer than max_chunk_frames={self.max_chunk_frames}: "
                f"{[list(plan) for plan in self.chunk_plans]}"
            )
        if not isinstance(self.rebuild_per_check, bool):
            raise ValueError(
                f"DecoderSpec.rebuild_per_check must be True or False, got {self.rebuild_per_check!r}"
            )
        if not isinstance(self.inference_mode, bool):
            raise ValueError(
                f"DecoderSpec.inference_mode must be True or False, got {self.inference_mode!r}"
            )
        if self.max_chunk_frames is not None and not _positive_int(self.max_chunk_frames):
            raise ValueError(
                f"DecoderSpec.max_chunk_frames must be a positive int, got {self.max_chunk_frames!r}"
            )
        if not isinstance(self.cache_context, Mapping):
            raise ValueError(
                f"DecoderSpec.cache_context must be a mapping of keyword arguments, got "
                f"{self.cache_context!r}"
            )
        if not isinstance(self.expected_failures, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and v.strip()
            for k, v in self.expected_failures.items()
        ):
            raise ValueError(
                "DecoderSpec.expected_failures must map check ids to reasons (non-empty strings, "
                "or ExpectedFailure(reason, fingerprint=...)), got "
                f"{self.expected_failures!r}"
            )
        # Read-only copies: a spec is a value, and the caller's dicts may change later.
        object.__setattr__(self, "cache_context", MappingProxyType(dict(self.cache_context)))
        object.__setattr__(
            self, "expected_failures", MappingProxyType(dict(self.expected_failures))
        )

    @property
    def resolved_output_layout(self) -> str:
        """The output layout, ``layout`` when not given."""
        return self.output_layout or self.layout

    @property
    def resolved_output_dtype(self) -> torch.dtype:
        """The output dtype, ``dtype`` when not given."""
        return self.output_dtype or self.dtype

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)


def _check_reference(spec: DecoderSpec) -> None:
    """``reference_dtype`` must be a floating dtype wider than the decoder's; a
    ``reference_factory`` needs it (the kit feeds the twin latents in that dtype)."""
    wide = spec.reference_dtype
    if spec.reference_factory is not None and not callable(spec.reference_factory):
        raise ValueError(
            "DecoderSpec.reference_factory must be a zero-argument callable returning the "
            f"decoder computing in reference_dtype, got {spec.reference_factory!r}"
        )
    if wide is None:
        if spec.reference_factory is not None:
            raise ValueError(
                "DecoderSpec.reference_factory needs reference_dtype: the dtype the reference "
                "decoder computes in and takes its latents in (e.g. torch.float32)"
            )
        return
    narrow = [d for d in (spec.dtype, spec.output_dtype) if d is not None]
    if not isinstance(wide, torch.dtype) or not wide.is_floating_point or any(
        d.is_floating_point
        and (torch.finfo(wide).eps >= torch.finfo(d).eps or torch.finfo(wide).max < torch.finfo(d).max)
        for d in narrow
    ):
        raise ValueError(
            f"DecoderSpec.reference_dtype must be a floating dtype more precise than the "
            f"decoder's ({', '.join(str(d) for d in narrow)}) and with at least its range "
            f"(float32 for bfloat16 or float16, float64 for float32), got {wide!r}"
        )

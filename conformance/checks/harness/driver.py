"""The decoder driver: builds the decoder and its caches and calls it the way pipelines do.

Checks never call the decoder directly. Going through the driver guarantees that:

- every call is made the way pipelines make it (``decoder(input=..., autoregressive_index=i,
  cache=c)``, keywords only), on a fresh copy of the input in the spec's layout, under
  ``torch.no_grad()`` (and ``torch.inference_mode()`` where the spec says so);
- every call is guarded (:mod:`~conformance.checks.harness.calls`) and every result
  validated (:mod:`~conformance.checks.harness.validation`);
- outputs come back in canonical ``BCTHW`` as private copies, so a decoder that later
  overwrites its output buffer cannot corrupt the kit's references (the check for that
  looks at the raw output on purpose);
- every call is counted in the check's :class:`~conformance.checks.harness.evidence.Evidence`.
"""

from __future__ import annotations

import contextlib
from time import monotonic as _monotonic  # the real clocks, whatever patches ``time`` later
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import torch

from conformance.bases import StreamingVideoDecoder
from conformance.checks.harness.calls import MapperAnswer, callable_name, guarded_call, query_mapper
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.evidence import Evidence
from conformance.checks.harness.inputs import InputMaker
from conformance.checks.harness.latents import LatentSequence
from conformance.checks.harness.validation import (
    adapt_output,
    require_cache,
    require_declared_output,
    require_decoder,
    require_finite,
    require_video_tensor,
)
from conformance.core.profiles import Profile
from conformance.core.spec import DecoderSpec

__all__ = ["DecoderDriver", "Step"]

T = TypeVar("T")

#: Outputs of each check kept for the end-of-run re-verification (the first ones returned).
HELD_PER_CHECK = 2


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


class DecoderDriver:
    """One check's access to the decoder: spec, profile, seed, evidence, guarded calls."""

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
        self.spec = spec
        self.profile = profile
        self.check_id = check_id
        #: Seed for this check's randomness (derived from the run seed and the check id, so
        #: a check run alone replays exactly what it did inside a full certification).
        self.seed = seed
        self.run_seed = run_seed
        self.evidence = Evidence()
        self.control = control or RunControl()
        self.control.evidence = self.evidence
        self.device = spec.torch_device
        self.inputs = InputMaker(spec, seed, self.evidence)
        self._decoder: StreamingVideoDecoder[Any] | None = None
        self._held = 0
        self._spatial_ratios: dict[int, int | None] = {}

    # ----------------------------------------------------------------- guarded calls

    def call_decoder(self, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Call into the decoder (see :func:`~conformance.checks.harness.calls.guarded_call`)."""
        return guarded_call(self.control, what, fn, *args, **kwargs)

    def query_mapper(
        self, decoder: StreamingVideoDecoder[Any], which: str, autoregressive_index: int, size: int
    ) -> MapperAnswer:
        """Ask a size mapper (see :func:`~conformance.checks.harness.calls.query_mapper`)."""
        self.evidence.mapper_queries += 1
        return query_mapper(self.control, decoder, which, autoregressive_index, size)

    @property
    def cancelled(self) -> bool:
        return self.control.cancelled

    def note_failure(self, err: BaseException) -> None:
        """Remember the first failure of a search (see :class:`RunControl`)."""
        self.control.note_failure(err)

    # ----------------------------------------------------------------- decoder and caches

    def decoder(self) -> StreamingVideoDecoder[Any]:
        """The decoder under test, built once per check by the spec's factory."""
        if self._decoder is None:
            what = f"factory {callable_name(self.spec.factory)}()"
            built = self.call_decoder(what, self.spec.factory)
            require_decoder(built, what)
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
        require_cache(cache)
        return cache

    # ----------------------------------------------------------------- inputs

    @property
    def latent_scale(self) -> float:
        return self.inputs.scale

    @latent_scale.setter
    def latent_scale(self, value: float) -> None:
        self.inputs.scale = value

    def latents(self, sequence: LatentSequence, batch: int | None = None) -> torch.Tensor:
        """The frames ``sequence`` describes (see :meth:`InputMaker.latents`)."""
        return self.inputs.latents(sequence, batch)

    def to_input_layout(
        self, latents: torch.Tensor, style: str | None = None, *, autoregressive_index: int | None = None
    ) -> torch.Tensor:
        """Canonical latents as a forward call's input (see :meth:`InputMaker.to_input_layout`)."""
        return self.inputs.to_input_layout(latents, style, autoregressive_index=autoregressive_index)

    def from_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        """A decoder output viewed as canonical ``BCTHW``."""
        return self.inputs.from_output_layout(output)

    def _spatial_ratio(self, decoder: Any) -> int | None:
        """The decoder's spatial ratio when it is a positive int (judging it is the ratio
        check's job; an unusable one only leaves height and width unchecked per call)."""
        key = id(decoder)
        if key not in self._spatial_ratios:
            try:
                value = decoder.spatial_compression_ratio
            except Exception:  # noqa: BLE001 - the ratio check reports a ratio that raises
                value = None
            self._spatial_ratios[key] = value if type(value) is int and value > 0 else None
        return self._spatial_ratios[key]

    def chunk_limit(self, wanted: int) -> int:
        """``wanted`` latent frames, capped by ``spec.max_chunk_frames``."""
        limit = self.spec.max_chunk_frames
        return wanted if limit is None else max(1, min(wanted, limit))

    # ----------------------------------------------------------------- forward

    def forward(
        self,
        decoder: StreamingVideoDecoder[Any],
        latents: torch.Tensor,
        autoregressive_index: int,
        cache: Any,
        *,
        raw_input: torch.Tensor | None = None,
        hold: bool = True,
        dtype: torch.dtype | None = None,
    ) -> Step:
        """One pipeline-style call on canonical latents; returns a :class:`Step`.

        The decoder gets a fresh copy in its layout (or exactly ``raw_input`` when given).
        The result is validated and returned as a canonical clone. The check's first
        outputs are kept, as returned, for re-verification at the end of the run
        (:mod:`~conformance.checks.harness.holding`), unless ``hold`` is false (a check
        that writes into what the decoder returned, as a caller may). Every output must have
        the declared dtype (``dtype`` for a decoder's wider twin), device, batch, channels
        and spatial size (:func:`~conformance.checks.harness.validation.require_declared_output`).
        """
        frames = int(latents.shape[2])
        if self.spec.max_chunk_frames is not None and frames > self.spec.max_chunk_frames:
            raise AssertionError(
                f"kit bug: {frames} latent frames exceed spec.max_chunk_frames={self.spec.max_chunk_frames}"
            )
        x = self.to_input_layout(latents, autoregressive_index=autoregressive_index) if raw_input is None else raw_input
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
            raw = self.call_decoder(what, decoder, input=x, autoregressive_index=autoregressive_index, cache=cache)
        if self.spec.output_adapter is not None:
            raw = adapt_output(self.spec, raw, what)
        raw = require_video_tensor(self.spec, raw, what)
        returned_at = _monotonic()
        require_declared_output(self.spec, raw, what, batch=int(latents.shape[0]),
                                spatial_ratio=self._spatial_ratio(decoder), dtype=dtype)
        output = self.from_output_layout(raw).detach().clone()
        if hold and self.control.hold is not None and self._held < HELD_PER_CHECK:
            self._held += 1
            self.control.hold.keep(self.check_id, what, raw, raw.detach().clone(), returned_at=returned_at)
        require_finite(output, what, latent_scale=self.latent_scale)
        self.evidence.decoder_calls += 1
        self.evidence.latent_frames += frames
        self.evidence.pixel_frames += int(output.shape[2])
        return Step(output, raw, x, autoregressive_index, frames)

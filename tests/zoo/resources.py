"""Caches that grow with the rollout.

A streaming decoder may run for hours: the memory its cache holds must reach a bound
that does not depend on how many steps have run. Each decoder here decodes correctly
and keeps something it never needs again, in a different place, because the kit must
find tensors wherever they hide (a list, a growing tensor, a nested plain object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from reference_decoders.toy import ToyDecoderCache

from ._base import PlainToy, broken


@dataclass(kw_only=True)
class _ListCache(ToyDecoderCache):
    decoded_latents: list[torch.Tensor] = field(default_factory=list)


class CacheKeepsAllLatents(PlainToy):
    """Appends every chunk of latents to a list in the cache, "for a final re-decode".

    Real bug: history kept as ``cache.latents.append(x)`` with only the last frames
    ever read; memory grows linearly with the rollout until the process dies. Caught by
    ``cache_memory_is_bounded``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _ListCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _ListCache):
            cache.decoded_latents.append(input.detach().clone())
        return output


@dataclass(kw_only=True)
class _SeenCache(ToyDecoderCache):
    seen: torch.Tensor | None = None


class HistoryNeverTrimmed(PlainToy):
    """Concatenates every latent chunk onto one tensor in the cache and never trims it.

    Real bug: ``history = torch.cat([history, x], dim=2)`` without the ``[-k:]`` slice;
    the convolution only reads the tail, so outputs are right and the tensor grows
    forever. Caught by ``cache_memory_is_bounded``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _SeenCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _SeenCache):
            latents = input.detach().clone()
            cache.seen = latents if cache.seen is None else torch.cat([cache.seen, latents], dim=2)
        return output


class _StepLog:
    """A plain (non-dataclass) object: the kit must look inside ``__dict__`` too."""

    def __init__(self) -> None:
        self.by_kind: dict[str, list[torch.Tensor]] = {"pixels": []}


@dataclass(kw_only=True)
class _LoggingCache(ToyDecoderCache):
    log: _StepLog = field(default_factory=_StepLog)


class GrowthInNestedObject(PlainToy):
    """Keeps every decoded frame in a dict of lists inside a plain object inside the cache.

    Real bug: a debugging or telemetry hook ("keep the frames for a preview") left in;
    the tensors are two containers deep in a non-dataclass object, where a shallow
    size count never looks. Caught by ``cache_memory_is_bounded``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _LoggingCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _LoggingCache):
            cache.log.by_kind["pixels"].append(output.detach().clone())
        return output


class _LatentStore(nn.Module):
    """Per-rollout state written as a module, the way gpt-fast writes its ``KVCache``."""

    seen: torch.Tensor | None

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("seen", None)

    def append(self, latents: torch.Tensor) -> None:
        self.seen = latents if self.seen is None else torch.cat([self.seen, latents], dim=2)


@dataclass(kw_only=True)
class _ModuleStateCache(ToyDecoderCache):
    store: _LatentStore = field(default_factory=_LatentStore)


class GrowthInsidePerRolloutModule(PlainToy):
    """The cache holds a per-rollout ``nn.Module`` whose buffer accumulates every latent chunk.

    Real bug: per-rollout state implemented as a small module (the gpt-fast
    ``KVCache(nn.Module)`` pattern) with ``torch.cat`` onto a buffer and no trim. The
    growing tensor is a buffer of a module that is *not* the decoder. Caught by
    ``cache_memory_is_bounded``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _ModuleStateCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _ModuleStateCache):
            cache.store.append(input.detach().clone())
        return output


@dataclass
class StepRecord:
    """One step's entry of :class:`TimelineOfStepRecords`: a few dozen bytes."""

    autoregressive_index: int
    latent_frames: int


@dataclass(kw_only=True)
class _TimelineCache(ToyDecoderCache):
    timeline: list[StepRecord] = field(default_factory=list)


class TimelineOfStepRecords(PlainToy):
    """Appends a small record per step to a timeline kept in the cache, never trimmed.

    Real bug: a per-step timeline "for debugging" (`cache.timeline.append(StepRecord(...))`)
    that nobody reads: a few dozen bytes a step, no tensor at all, so neither the cache's
    tensors nor a byte allowance on Python's heap see it grow over a test's rollout; an
    hour-long stream keeps a hundred thousand of them. Caught by ``cache_memory_is_bounded``
    through its object count per allocation line.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _TimelineCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _TimelineCache):
            cache.timeline.append(StepRecord(autoregressive_index, int(input.shape[2])))
        return output


MEMORY_HINTS = ("grow", "memory")

cache_keeps_all_latents = broken(
    CacheKeepsAllLatents, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS
)
history_never_trimmed = broken(
    HistoryNeverTrimmed, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS
)
growth_in_nested_object = broken(
    GrowthInNestedObject, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS
)

growth_inside_per_rollout_module = broken(
    GrowthInsidePerRolloutModule,
    must_fail={"cache_memory_is_bounded"},
    hints=MEMORY_HINTS,
)

timeline_of_step_records = broken(
    TimelineOfStepRecords, must_fail={"cache_memory_is_bounded"}, hints=("StepRecord", "resources.py")
)

CASES = [
    timeline_of_step_records,
    cache_keeps_all_latents,
    history_never_trimmed,
    growth_in_nested_object,
    growth_inside_per_rollout_module,
]

"""Broken and correct decoders for the promises pipelines rely on: one-shot ``cache=None``
calls and the autoregressive index versus the cache (``conformance.checks.pipeline_promises``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from reference_decoders.toy import ToyDecoderCache

from ._base import PlainToy, broken, correct

ONE_SHOT = "cache_none_matches_fresh_cache"
INDEX = "autoregressive_index_only_selects_first_chunk"


class OneShotKeepsDefaultCache(PlainToy):
    """``cache=None`` falls back to one cache made once and kept on the module.

    Real bug: ``cache = cache or self._default_cache``, written so that "calling without
    a cache just works". The first one-shot call is right; the second continues from the
    first one's history.
    """

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if cache is None:
            if "_default_cache" not in self.__dict__:
                self.__dict__["_default_cache"] = ToyDecoderCache()
            cache = self.__dict__["_default_cache"]
        return super().forward(input, autoregressive_index, cache)


class OneShotDecodesAsLaterChunk(PlainToy):
    """``cache=None`` takes the steady-state path: no causal first frame.

    Real bug: the no-cache branch was written for the captured AR >= 1 step and decodes
    the chunk as a later chunk, so a one-shot decode has ``r - 1`` extra leading frames.
    """

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if cache is None:
            cache = ToyDecoderCache()
            autoregressive_index = 1
        return super().forward(input, autoregressive_index, cache)


class OneShotCrashes(PlainToy):
    """``cache=None`` crashes with ``AttributeError`` instead of a clear refusal.

    Real bug: forward reads ``cache.history`` before anything checks the cache, although
    ``cache=None`` is the interface's default.
    """

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        _ = cache.latent_history
        return super().forward(input, autoregressive_index, cache)


@dataclass(kw_only=True)
class PingPongCache(ToyDecoderCache):
    """Two history slots; a step reads one and writes the other."""

    slots: list[tuple[torch.Tensor | None, torch.Tensor | None]] = field(
        default_factory=lambda: [(None, None), (None, None)]
    )


class IndexSelectsPingPongBuffer(PlainToy):
    """The history is double-buffered and the slot is chosen by the index's parity.

    Real bug (common with captured graphs, two of them alternating static buffers): step
    ``k`` reads slot ``(k - 1) % 2`` and writes slot ``k % 2``. Right while the index
    counts every step exactly; a pipeline that numbers steps otherwise reads the stale
    slot, silently.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> PingPongCache:
        return PingPongCache()

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        assert isinstance(cache, PingPongCache)
        read = cache.slots[(autoregressive_index - 1) % 2] if autoregressive_index else (None, None)
        cache.latent_history, cache.pixel_history = read
        out = super().forward(input, autoregressive_index, cache)
        cache.slots[autoregressive_index % 2] = (cache.latent_history, cache.pixel_history)
        return out


class FirstChunkFromCacheToy(PlainToy):
    """Ignores the index entirely: the first chunk is the one that finds the cache empty.

    Correct and unusual: the cache alone carries the rollout, so any index >= 1 (and even
    0 on a used cache) decodes the same; the rule allows deciding first-chunk behaviour
    from the cache instead of the index.
    """

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if cache is None:
            cache = ToyDecoderCache()
        first = cache.latent_history is None
        return super().forward(input, 0 if first else 1, cache)


one_shot_keeps_default_cache = broken(
    OneShotKeepsDefaultCache, must_fail={ONE_SHOT}, hints=("second call", "module")
)
one_shot_decodes_as_later_chunk = broken(
    OneShotDecodesAsLaterChunk, must_fail={ONE_SHOT}, hints=("one-shot", "fresh cache")
)
one_shot_crashes = broken(OneShotCrashes, must_fail={ONE_SHOT}, hints=("AttributeError", "refuse"))
index_selects_ping_pong_buffer = broken(
    IndexSelectsPingPongBuffer, must_fail={INDEX}, hints=("parity", "index"),
)
first_chunk_from_cache_toy = correct(FirstChunkFromCacheToy)

CASES = [
    one_shot_keeps_default_cache,
    one_shot_decodes_as_later_chunk,
    one_shot_crashes,
    index_selects_ping_pong_buffer,
]
CORRECT_CASES = [first_chunk_from_cache_toy]

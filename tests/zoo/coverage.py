"""Bugs that used to slip past the kit because it did not look where they are (issue 9).

Each decoder here is correct where the kit used to look and wrong where it did not:
history kept outside the cache, an output finished after it was returned, inputs of a
pipeline's shape, mappers wrong only for long chunks or late steps. All are caught in
the default profile (``profile="default"`` on each case).
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import Any

import torch

from reference_decoders.toy import ToyDecoderCache

from ._base import PlainToy, broken

MEMORY_HINTS = ("grow", "memory")

# --- memory held outside the cache ---------------------------------------------------


class HistoryOnTheDecoder(PlainToy):
    """Appends every chunk of latents to a list on the decoder module itself.

    Real bug: ``self.seen.append(x)`` in ``forward`` ("for a final re-decode"), with the
    state on the module instead of the cache: a walk of the cache never sees it, and the
    decoder's memory grows for as long as it serves. Caught by ``cache_memory_is_bounded``
    (the decoder's attributes are measured too).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[torch.Tensor] = []

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        self.seen.append(input.detach().clone())
        return output


#: Module-level state of :class:`HistoryInModuleTable`, keyed by a handle in the cache.
_ROLLOUT_TABLE: dict[int, list[torch.Tensor]] = {}
_handles = itertools.count()


@dataclass(kw_only=True)
class _HandleCache(ToyDecoderCache):
    handle: int = field(default_factory=lambda: next(_handles))


class HistoryInModuleTable(PlainToy):
    """Keeps each rollout's decoded frames in a module-level dict keyed by a handle in the cache.

    Real bug: per-rollout state in a global registry (``_STATE[cache.handle].append(y)``)
    so that the cache stays "small" and picklable; the table is never pruned. Caught by
    ``cache_memory_is_bounded`` (a census of every live tensor, which names the global).
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _HandleCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _HandleCache):
            _ROLLOUT_TABLE.setdefault(cache.handle, []).append(output.detach().clone())
        return output


@dataclass(kw_only=True)
class _HookCache(ToyDecoderCache):
    record: Any = None


def _recorder() -> Any:
    kept: list[torch.Tensor] = []

    def record(frames: torch.Tensor) -> None:
        kept.append(frames.detach().clone())

    return record


class HistoryInClosure(PlainToy):
    """The cache holds a callback whose closure keeps every chunk of latents.

    Real bug: a telemetry or preview hook (``cache.on_step = make_recorder()``) whose
    closed-over list grows forever; functions are opaque to a walk of the cache. Caught by
    ``cache_memory_is_bounded`` (a census of every live tensor, which names the closure).
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _HookCache(record=_recorder())

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if isinstance(cache, _HookCache):
            cache.record(input)
        return output


history_on_the_decoder = broken(
    HistoryOnTheDecoder, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS, profile="default"
)
history_in_module_table = broken(
    HistoryInModuleTable, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS, profile="default"
)
history_in_closure = broken(
    HistoryInClosure, must_fail={"cache_memory_is_bounded"}, hints=MEMORY_HINTS, profile="default"
)


# --- outputs finished after they were returned ---------------------------------------


class OutputFinishedLate(PlainToy):
    """Returns its output while a background thread is still writing into it (2 s later).

    Real bug: post-processing handed to a worker thread (or an unsynchronized CUDA side
    stream) that writes into the returned tensor after ``forward`` has returned; the
    pipeline reads half-finished frames. Only a change by the next call used to be
    looked for. Caught by ``outputs_survive_later_steps`` (outputs are held and
    re-verified for 3 s in the default profile).
    """

    DELAY_S = 2.0

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        finish = threading.Timer(self.DELAY_S, output.mul_, args=(0.5,))
        finish.daemon = True
        finish.start()
        return output


output_finished_late = broken(
    OutputFinishedLate,
    must_fail={"outputs_survive_later_steps"},
    hints=("changed", "after it was returned"),
    profile="default",
)

CASES = [
    history_on_the_decoder,
    history_in_module_table,
    history_in_closure,
    output_finished_late,
]

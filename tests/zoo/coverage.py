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

# --- sizes, indices and chunk lengths beyond the old bounds ---------------------------


class MapperTableEndsAt24(PlainToy):
    """Output sizes come from a table precomputed for up to 24 latent frames; beyond it the
    mapper falls back to ``n * r`` at every step, forgetting the causal first frame.

    Real bug: a size table built for the longest chunk the author tested, with a
    "steady state" fallback; pipelines that ask for 25+ frames at AR 0 get sizes the
    inverse mapper cannot undo. Caught by ``temporal_mappers_round_trip`` (counts up to
    4096 in the default profile).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size > 24:
            return self.config.temporal_ratio * input_temporal_size
        return super().get_output_temporal_size(autoregressive_index, input_temporal_size)


class StepCounterWrapsAt128(PlainToy):
    """The mappers see the AR index through an 8-bit step counter: AR 128, 256, ... map like AR 0.

    Real bug: the scheduler stores the step in a ``uint8`` buffer; after 128 steps
    (about a minute of live video) the mapper applies the causal first frame again.
    Caught by ``temporal_mappers_monotone_and_steady`` (AR indices up to 10^4 in the
    default profile).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return super().get_output_temporal_size(autoregressive_index % 128, input_temporal_size)

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return super().get_input_temporal_size(autoregressive_index % 128, output_temporal_size)


class LongCallsTruncated(PlainToy):
    """Decodes at most 16 latent frames per call and silently drops the rest.

    Real bug: a fixed-size internal buffer sized for the longest chunk the author
    tested (16 frames); a pipeline that decodes a whole 21-frame clip in one call gets
    a short video and no error. Caught by ``decoded_sizes_match_mappers`` (a 20-frame
    call in the default profile).
    """

    LIMIT = 16

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(
            input[:, :, : self.LIMIT], autoregressive_index=autoregressive_index, cache=cache
        )


class LongLaterChunksDropHistory(PlainToy):
    """A "fast path" for later chunks of six or more latent frames starts from an empty history.

    Real bug: a batched path for long chunks, written for offline decoding, re-creates
    the cache instead of reading it; short steps stream correctly, long later chunks
    have a hard cut at their seam. Caught by ``chunked_decode_matches_full_decode`` (a
    plan with later chunks of 6 and 12 frames in the default profile).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is not None and autoregressive_index > 0 and input.shape[2] >= 6:
            cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


# --- inputs like a pipeline's --------------------------------------------------------


class IgnoresInputStrides(PlainToy):
    """Reads its input's memory as if it were contiguous, whatever its strides.

    Real bug: a custom kernel (or ``torch.as_strided`` / a raw ``data_ptr`` read) that
    assumes a fresh contiguous tensor; pipelines pass slices such as
    ``latents[:, :, k:k+n]`` of a larger tensor, ``channels_last_3d`` tensors and permuted
    views, and the decoder reads the neighbours' values. Caught by
    ``chunked_decode_matches_full_decode`` (inputs rotate through pipeline memory layouts).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        strides, step = [], 1
        for size in reversed(input.shape):
            strides.insert(0, step)
            step *= size
        as_if_contiguous = torch.as_strided(input, input.shape, strides, input.storage_offset())
        return super().forward(as_if_contiguous, autoregressive_index=autoregressive_index, cache=cache)


class ClampsHistoryToSix(PlainToy):
    """Clamps the latent history it carries to the next call to +-6 "for stability".

    Real bug: a guard written against unit-variance test latents; real normalized
    latents reach |x| > 6, so every seam after such a value decodes differently from the
    full sequence. Caught by ``chunked_decode_matches_full_decode`` (every test frame
    carries a few values with 6.5 <= |x| <= 10).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None and cache.latent_history is not None:
            cache.latent_history = cache.latent_history.clamp(-6.0, 6.0)
        return output


ignores_input_strides = broken(
    IgnoresInputStrides,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("differs", "chunk"),
    profile="default",
)
clamps_history_to_six = broken(
    ClampsHistoryToSix,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("differs", "chunk"),
    profile="default",
)

# --- expected failures that must not hide a wider bug --------------------------------


class SeamBugAtThirdOneFrameStep(PlainToy):
    """Drops the latent history when the call at AR 2 has exactly one latent frame.

    Real bug: a ring-buffer index computed from the step and the chunk length, wrong for
    one narrow case. Declared as a known bug (``ExpectedFailure`` pinned to the plans it
    breaks: ``[2, 1, 1]``, ``[1, 1, 1]``, ...): the pinned declaration holds.
    """

    def broken_here(self, autoregressive_index: int, frames: int) -> bool:
        return autoregressive_index == 2 and frames == 1

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is not None and self.broken_here(autoregressive_index, input.shape[2]):
            cache.latent_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class SeamBugWidened(SeamBugAtThirdOneFrameStep):
    """The declared AR-2 seam bug, now also breaking two-frame calls at AR 2 (``[2, 2, 2]``).

    Real bug: a regression that widens a known, declared bug; with a plain-string
    declaration it hides behind it. Its spec pins the narrow bug's fingerprint, so
    ``chunked_decode_matches_full_decode`` fails, showing both fingerprints.
    """

    def broken_here(self, autoregressive_index: int, frames: int) -> bool:
        return autoregressive_index == 2 and frames <= 2


#: What ``chunked_decode_matches_full_decode`` records for :class:`SeamBugAtThirdOneFrameStep`
#: (pasted from its report, as a decoder author would).
NARROW_SEAM_FINGERPRINT = [
    "[1, 1, 1]", "[2, 1, 1]", "[1, 2, 1]", "[1, 1, 1, 1]", "[3, 1, 1]", "[2, 2, 1]",
    "[2, 1, 1, 1]", "[1, 3, 1]", "[1, 2, 1, 1]", "[1, 1, 1, 2]", "[1, 1, 1, 1, 1]",
    "[4, 1, 1]", "[3, 2, 1]", "[3, 1, 1, 1]", "[2, 3, 1]", "[2, 2, 1, 1]", "[2, 1, 1, 2]",
    "[2, 1, 1, 1, 1]", "[1, 4, 1]", "[1, 3, 1, 1]", "[1, 2, 1, 2]", "[1, 2, 1, 1, 1]",
    "[1, 1, 1, 3]", "[1, 1, 1, 2, 1]", "[1, 1, 1, 1, 2]", "[1, 1, 1, 1, 1, 1]",
]


def _seam_declaration() -> dict[str, Any]:
    from conformance import ExpectedFailure

    return {
        "chunked_decode_matches_full_decode": ExpectedFailure(
            "history dropped at AR 2 for one-frame calls (bug 17)", fingerprint=NARROW_SEAM_FINGERPRINT
        )
    }


class NegativeSizeForZeroAtStepZero(PlainToy):
    """``get_output_temporal_size(0, 0)`` is ``-3`` (``1 + r * (n - 1)`` without a guard).

    A declared known bug, pinned to its fingerprint: the declaration holds.
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if autoregressive_index == 0:
            return 1 + self.config.temporal_ratio * (input_temporal_size - 1)
        return super().get_output_temporal_size(autoregressive_index, input_temporal_size)


class NegativeSizeAndLateStepsWrong(NegativeSizeForZeroAtStepZero):
    """The declared AR 0, n = 0 mapper bug, plus AR >= 1000 mapped one frame short.

    Real bug: a second mapper regression (an ``ar < 1000`` fast path) hiding behind a
    declared one of the same check. Its spec pins the first bug's fingerprint, so
    ``temporal_mappers_monotone_and_steady`` fails, showing both fingerprints.
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        value = super().get_output_temporal_size(autoregressive_index, input_temporal_size)
        return value - 1 if autoregressive_index >= 1000 else value


#: What ``temporal_mappers_monotone_and_steady`` records for
#: :class:`NegativeSizeForZeroAtStepZero` (pasted from its report).
NARROW_MAPPER_FINGERPRINT = ["n < 1 neither rejected nor 0 at AR 0, latent count n -1..0 #70a8226ec1"]


def _mapper_declaration() -> dict[str, Any]:
    from conformance import ExpectedFailure

    return {
        "temporal_mappers_monotone_and_steady": ExpectedFailure(
            "AR 0 maps n = 0 to -3 pixel frames (bug 41)", fingerprint=NARROW_MAPPER_FINGERPRINT
        )
    }


MAPPER_HINTS = ("mapper", "get_output_temporal_size", "get_input_temporal_size")

mapper_table_ends_at_24 = broken(
    MapperTableEndsAt24, must_fail={"temporal_mappers_round_trip"}, hints=MAPPER_HINTS, profile="default"
)
step_counter_wraps_at_128 = broken(
    StepCounterWrapsAt128,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("AR 127..129", "128"),
    profile="default",
)
long_calls_truncated = broken(
    LongCallsTruncated, must_fail={"decoded_sizes_match_mappers"}, hints=("pixel frames",), profile="default"
)
long_later_chunks_drop_history = broken(
    LongLaterChunksDropHistory,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("differs", "chunk"),
    profile="default",
)

seam_bug_widened = broken(
    SeamBugWidened,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("seen but not declared", "[2, 2, 2]"),
    profile="default",
    expected_failures=_seam_declaration(),
)
negative_size_and_late_steps_wrong = broken(
    NegativeSizeAndLateStepsWrong,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("seen but not declared",),
    profile="default",
    expected_failures=_mapper_declaration(),
)

CASES = [
    seam_bug_widened,
    negative_size_and_late_steps_wrong,
    ignores_input_strides,
    clamps_history_to_six,
    mapper_table_ends_at_24,
    step_counter_wraps_at_128,
    long_calls_truncated,
    long_later_chunks_drop_history,
    history_on_the_decoder,
    history_in_module_table,
    history_in_closure,
    output_finished_late,
]

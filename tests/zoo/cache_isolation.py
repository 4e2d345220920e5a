"""Caches that leak between rollouts, into the module, or between a cache and its fork.

One cache belongs to exactly one rollout. Serving engines run many rollouts through
one decoder module, interleaved step by step, and fork a rollout by deep-copying its
cache (branching, beam search, retries). Each decoder here decodes one rollout at a
time correctly and only goes wrong once state is shared.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import LATENT_SIZE, PlainToy, broken, filled

# --- fresh, unshared caches ---------------------------------------------------------


class SingletonCacheResetAtStart(PlainToy):
    """``initialize_autoregressive_cache`` returns the same cache object every time.

    Real bug: one cache allocated in ``__init__`` and cleared at AR 0 "to save
    allocations". Rollouts run one after another look fine; two rollouts in flight
    overwrite each other's history. Caught by ``caches_are_fresh_and_unshared`` and
    ``interleaved_rollouts_are_independent``.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._the_cache = ToyDecoderCache()

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return self._the_cache

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is not None and autoregressive_index == 0:
            cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


_DEFAULT_CACHE = ToyDecoderCache()


class CacheIsDefaultArgument(PlainToy):
    """The cache is a default argument value, created once when the function is defined.

    Real bug: Python's mutable-default pitfall, ``def initialize_autoregressive_cache(
    self, cache=Cache(), **context): return cache``; every rollout of every decoder
    instance shares it and inherits the previous rollout's history. Caught by
    ``caches_are_fresh_and_unshared``.
    """

    def initialize_autoregressive_cache(  # type: ignore[override]
        self, cache: ToyDecoderCache = _DEFAULT_CACHE, **context: Any
    ) -> ToyDecoderCache:
        return cache


_HISTORY_SHAPE = (1, ToyDecoderConfig().latent_channels, PlainToy.LATENT_HISTORY, *LATENT_SIZE)


@dataclass(kw_only=True)
class _DefaultTensorCache(ToyDecoderCache):
    # The bug: a tensor is hashable, so dataclasses accept it as a plain default, and
    # every instance gets the same tensor object.
    latent_history: torch.Tensor | None = torch.zeros(_HISTORY_SHAPE)


class HistoryTensorIsDataclassDefault(PlainToy):
    """Every cache's history starts as the *same* tensor, a dataclass field default.

    Real bug: ``history: Tensor = torch.zeros(...)`` in a cache dataclass (dataclasses
    only reject unhashable defaults such as lists, and tensors are hashable), with the
    history then updated in place as a ring buffer. Caught by
    ``caches_are_fresh_and_unshared`` and ``interleaved_rollouts_are_independent``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _DefaultTensorCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        ring = cache.latent_history if cache is not None else None
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if ring is not None and cache is not None:
            latest = filled(cache.latent_history)
            if ring.shape == latest.shape:
                ring.copy_(latest)
                cache.latent_history = ring
        return output


class HistoryInModuleBuffer(PlainToy):
    """Caches hand out a preallocated history buffer that the module owns.

    Real bug: ``register_buffer("history", ...)`` preallocated for speed (or for CUDA
    graphs), zeroed at ``initialize_autoregressive_cache`` and written in place by
    ``forward``. Sequential rollouts work; every cache aliases the module's buffer.
    Caught by ``caches_are_fresh_and_unshared``, ``interleaved_rollouts_are_independent``
    and ``forward_leaves_module_state_unchanged``.
    """

    history: torch.Tensor

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.register_buffer(
            "history", torch.zeros(1, config.latent_channels, self.LATENT_HISTORY, *LATENT_SIZE)
        )

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        self.history.zero_()
        return ToyDecoderCache(latent_history=self.history)

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None and filled(cache.latent_history).shape == self.history.shape:
            self.history.copy_(filled(cache.latent_history))
            cache.latent_history = self.history
        return output


@dataclass(kw_only=True)
class _KernelCache(ToyDecoderCache):
    latent_kernel: torch.Tensor | None = None


class CacheHoldsWeightView(PlainToy):
    """Each cache stores a view of the module's weights (a reshaped conv kernel).

    Real bug: a per-rollout "precomputed" kernel ``weight[:, :, :, None, None]`` kept in
    the cache. It is a view, so the cache shares storage with the parameters: a fork
    deep-copies the model's weights and an in-place cache update would corrupt them.
    Caught by ``caches_are_fresh_and_unshared``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _KernelCache(latent_kernel=self.latent_conv.detach()[:, :, :, None, None])


class CacheIsPlainDict(PlainToy):
    """``initialize_autoregressive_cache`` returns a plain ``dict``, not a ``StreamingDecoderCache``.

    Real bug: a cache written as ``{"feat_map": [...]}`` because it "works"; pipelines
    that type-check, subclass or introspect caches (the interface's generic cache type)
    break. Caught by ``caches_are_fresh_and_unshared`` (each call returns a new
    ``StreamingDecoderCache``), and by every check that makes a cache.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> dict[str, ToyDecoderCache]:  # type: ignore[override]
        return {"state": ToyDecoderCache()}

    def forward(  # type: ignore[override]
        self,
        input: torch.Tensor,
        autoregressive_index: int = 0,
        cache: dict[str, ToyDecoderCache] | None = None,
    ) -> torch.Tensor:
        state = cache["state"] if cache is not None else None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=state)


class HistoryIsViewOfInput(PlainToy):
    """The cache keeps a view of the caller's latents as history (no ``.clone()``).

    Real bug: ``cache.history = x[:, :, -2:]``; pipelines that reuse one latent buffer
    for every chunk (static buffers, CUDA graphs) overwrite the history before the
    next step reads it. Caught by ``caches_are_fresh_and_unshared`` (a cache must not
    share storage with the caller's input).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None and input.shape[2] >= self.LATENT_HISTORY:
            cache.latent_history = input[:, :, -self.LATENT_HISTORY :]
        return output


# --- interleaving -------------------------------------------------------------------


class HistoryKeptOnModule(PlainToy):
    """History lives on the module (reset at AR 0); the cache passed in is ignored.

    Real bug: the original Wan VAE design, ``self._feat_map`` on the module plus
    ``clear_cache()`` at the first step. One rollout at a time decodes perfectly; two
    interleaved rollouts read each other's history. Caught by
    ``interleaved_rollouts_are_independent`` and ``rollout_state_machine``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is None:
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        if autoregressive_index == 0 or not hasattr(self, "_rollout"):
            self._rollout = ToyDecoderCache()
        return super().forward(input, autoregressive_index=autoregressive_index, cache=self._rollout)


# --- module state -------------------------------------------------------------------


class RunningStatsBuffer(PlainToy):
    """``forward`` updates running latent statistics kept in module buffers.

    Real bug: a normalisation layer left in training mode, or an EMA of latent
    statistics "for monitoring"; the output does not depend on it, but the module's
    state drifts with every call and is shared by all rollouts. Caught by
    ``forward_leaves_module_state_unchanged``.
    """

    latent_running_mean: torch.Tensor
    calls_tracked: torch.Tensor

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.register_buffer("latent_running_mean", torch.zeros(config.latent_channels))
        self.register_buffer("calls_tracked", torch.zeros((), dtype=torch.long))

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        with torch.no_grad():
            self.latent_running_mean.mul_(0.9).add_(0.1 * input.mean(dim=(0, 2, 3, 4)))
            self.calls_tracked += 1
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class BatchNormLeftInTrainMode(PlainToy):
    """An ``nn.BatchNorm3d`` on the latents, with the module left in training mode.

    Real bug: the factory forgets ``.eval()``. Every forward updates ``running_mean``,
    ``running_var`` and ``num_batches_tracked``, and normalises with the statistics of
    the current call (over batch, time and space), so chunks decode differently from the
    whole. Caught by ``forward_leaves_module_state_unchanged`` and
    ``chunked_decode_matches_full_decode``.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self.norm = nn.BatchNorm3d(config.latent_channels).to(config.dtype)

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(self.norm(input), autoregressive_index=autoregressive_index, cache=cache)


class WeightsNormalisedInPlace(PlainToy):
    """``forward`` renormalises a weight matrix in place on every call.

    Real bug: lazy weight normalisation (``w.div_(w.norm())``) done in ``forward``
    instead of once at load time. It is idempotent after the first call, so outputs
    stay deterministic and only the parameters reveal it. Caught by
    ``forward_leaves_module_state_unchanged``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        with torch.no_grad():
            self.to_rgb.div_(self.to_rgb.norm(dim=1, keepdim=True))
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


# --- forking: copies that lose state or are no copies ------------------------------


@dataclass(kw_only=True)
class _SelfCopyCache(ToyDecoderCache):
    def __deepcopy__(self, memo: dict[int, Any]) -> _SelfCopyCache:
        # The bug: "copying" returns the very same object.
        return self


class DeepcopyReturnsSelf(PlainToy):
    """The cache's ``__deepcopy__`` returns ``self``: a fork *is* the original.

    Real bug: ``__deepcopy__`` overridden to return ``self`` so that caches holding
    un-copyable handles "support" deepcopy; both branches then step one cache.
    Caught by ``forked_cache_continues_identically``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _SelfCopyCache()


# --- forking: copies that still share ---------------------------------------------


@dataclass(kw_only=True)
class _CheapCopyCache(ToyDecoderCache):
    def __deepcopy__(self, memo: dict[int, Any]) -> _CheapCopyCache:
        # The bug: only the bookkeeping is copied; the history tensors are dropped.
        return type(self)(next_index=self.next_index)


class DeepcopyDropsHistory(PlainToy):
    """The cache's ``__deepcopy__`` keeps the step counter but drops the history tensors.

    Real bug: a custom ``__deepcopy__`` written to make forks cheap (or to skip
    un-copyable handles) that forgets the tensors; the fork restarts its convolutions
    from zeros. Caught by ``forked_cache_continues_identically`` and
    ``rollout_state_machine``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _CheapCopyCache()


@dataclass(kw_only=True)
class _ShallowForkCache(ToyDecoderCache):
    def __deepcopy__(self, memo: dict[int, Any]) -> _ShallowForkCache:
        # The bug: dataclasses.replace is a *shallow* copy; the tensors are shared.
        return dataclasses.replace(self)


class ForkSharesRingBuffer(PlainToy):
    """Forks are shallow copies while history is updated in place: fork and original alias.

    Real bug: ``__deepcopy__`` implemented with ``dataclasses.replace`` (shallow), in a
    decoder whose history tensors are preallocated ring buffers written with
    ``copy_``; whichever branch steps first overwrites the other's history. Caught by
    ``forked_cache_continues_identically``.
    """

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _ShallowForkCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        rings = (cache.latent_history, cache.pixel_history) if cache is not None else (None, None)
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None and rings[0] is not None and rings[1] is not None:
            rings[0].copy_(filled(cache.latent_history))
            rings[1].copy_(filled(cache.pixel_history))
            cache.latent_history, cache.pixel_history = rings
        return output


SHARING_HINTS = ("share", "same object", "already in use", "rollout")
MODULE_HINTS = ("buffer", "parameter")
FORK_HINTS = ("fork", "copy")

singleton_cache_reset_at_start = broken(
    SingletonCacheResetAtStart,
    must_fail={"caches_are_fresh_and_unshared", "interleaved_rollouts_are_independent"},
    hints=SHARING_HINTS,
)
cache_is_default_argument = broken(
    CacheIsDefaultArgument, must_fail={"caches_are_fresh_and_unshared"}, hints=SHARING_HINTS
)
history_tensor_is_dataclass_default = broken(
    HistoryTensorIsDataclassDefault,
    must_fail={"caches_are_fresh_and_unshared", "interleaved_rollouts_are_independent"},
    hints=SHARING_HINTS,
)
history_in_module_buffer = broken(
    HistoryInModuleBuffer,
    must_fail={
        "caches_are_fresh_and_unshared",
        "interleaved_rollouts_are_independent",
        "forward_leaves_module_state_unchanged",
    },
    hints=SHARING_HINTS + MODULE_HINTS,
)
cache_holds_weight_view = broken(
    CacheHoldsWeightView,
    must_fail={"caches_are_fresh_and_unshared"},
    hints=SHARING_HINTS + MODULE_HINTS,
)
history_kept_on_module = broken(
    HistoryKeptOnModule,
    must_fail={"interleaved_rollouts_are_independent", "rollout_state_machine"},
    hints=("rollout", "interleav"),
)
cache_is_plain_dict = broken(
    CacheIsPlainDict,
    must_fail={"caches_are_fresh_and_unshared"},
    hints=("StreamingDecoderCache", "dict"),
)
history_is_view_of_input = broken(
    HistoryIsViewOfInput,
    must_fail={"caches_are_fresh_and_unshared"},
    hints=("input",),
)
running_stats_buffer = broken(
    RunningStatsBuffer, must_fail={"forward_leaves_module_state_unchanged"}, hints=MODULE_HINTS
)
batch_norm_left_in_train_mode = broken(
    BatchNormLeftInTrainMode,
    must_fail={"forward_leaves_module_state_unchanged", "chunked_decode_matches_full_decode"},
    hints=MODULE_HINTS + ("chunk",),
)
weights_normalised_in_place = broken(
    WeightsNormalisedInPlace, must_fail={"forward_leaves_module_state_unchanged"}, hints=MODULE_HINTS
)
deepcopy_drops_history = broken(
    DeepcopyDropsHistory,
    must_fail={"forked_cache_continues_identically", "rollout_state_machine"},
    hints=FORK_HINTS,
)
deepcopy_returns_self = broken(
    DeepcopyReturnsSelf, must_fail={"forked_cache_continues_identically"}, hints=FORK_HINTS
)
fork_shares_ring_buffer = broken(
    ForkSharesRingBuffer, must_fail={"forked_cache_continues_identically"}, hints=FORK_HINTS
)

CASES = [
    singleton_cache_reset_at_start,
    cache_is_default_argument,
    history_tensor_is_dataclass_default,
    history_in_module_buffer,
    cache_holds_weight_view,
    cache_is_plain_dict,
    history_is_view_of_input,
    history_kept_on_module,
    running_stats_buffer,
    batch_norm_left_in_train_mode,
    weights_normalised_in_place,
    deepcopy_drops_history,
    deepcopy_returns_self,
    fork_shares_ring_buffer,
]

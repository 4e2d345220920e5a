"""The checks: one named function per promise of the streaming decoder contract.

``ALL_CHECKS`` lists them in a stable order (by category, then as below); ``get_check``
finds one by id. Each check is a function of a :class:`~conformance.checks.context.CheckContext`
that returns normally when the promise holds and raises
:class:`~conformance.core.outcomes.CheckFailed` / :class:`~conformance.core.outcomes.CheckSkipped`
otherwise; its docstring says the promise, why it matters and what it does.
"""

from __future__ import annotations

from conformance.checks import (  # noqa: F401 - importing registers the checks
    cache_isolation,
    chunking,
    finiteness,
    forward_contract,
    pipeline_promises,
    resources,
    size_mappers,
    state_machine,
)
from conformance.checks.registry import CATEGORIES, Check, registered

__all__ = ["ALL_CHECKS", "CATEGORIES", "CHECK_IDS", "Check", "get_check"]

#: The contract's check ids, in reporting order.
CHECK_IDS: tuple[str, ...] = (
    # size_mappers
    "ratios_are_positive_constant_ints",
    "temporal_mappers_round_trip",
    "temporal_mappers_monotone_and_steady",
    "decoded_sizes_match_mappers",
    # cache_isolation
    "caches_are_fresh_and_unshared",
    "interleaved_rollouts_are_independent",
    "forward_leaves_module_state_unchanged",
    "forked_cache_continues_identically",
    # chunking
    "chunked_decode_matches_full_decode",
    # forward_contract
    "forward_accepts_keyword_call",
    "output_layout_dtype_device",
    "input_is_not_modified",
    "outputs_survive_later_steps",
    "decoding_is_deterministic",
    "outputs_are_finite",
    "batch_elements_are_independent",
    "cache_init_accepts_context",
    "cache_none_matches_fresh_cache",
    "autoregressive_index_only_selects_first_chunk",
    # resources
    "cache_memory_is_bounded",
    # state_machine
    "rollout_state_machine",
)

_BY_ID = registered()
if set(_BY_ID) != set(CHECK_IDS):  # pragma: no cover - a kit bug, caught by the engine tests
    raise RuntimeError(
        f"registered checks {sorted(_BY_ID)} do not match the contract's ids {sorted(CHECK_IDS)}"
    )

ALL_CHECKS: tuple[Check, ...] = tuple(_BY_ID[check_id] for check_id in CHECK_IDS)


def get_check(check_id: str) -> Check:
    """The check called ``check_id``; ``KeyError`` listing every known id otherwise."""
    try:
        return _BY_ID[check_id]
    except KeyError:
        raise KeyError(f"unknown check {check_id!r}; known checks: {', '.join(CHECK_IDS)}") from None

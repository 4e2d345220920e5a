"""The catalog of checks: every check id, its category, and their order -- without importing them.

This is the one definition of the checks' order (by category, then as listed) and of
each check's category; the check functions themselves (:mod:`conformance.checks.suite`)
are matched against it when they are imported. It imports nothing heavy, so the parts
of the kit that only name checks (the supervising parent process, the reports, the
command line's argument checks) never load torch.
"""

from __future__ import annotations

from conformance.core.suggest import did_you_mean

__all__ = ["CATEGORIES", "CHECK_IDS", "category_of", "checks_of", "require_known"]

#: Every check id, in reporting order, under its category.
CATALOG: dict[str, tuple[str, ...]] = {
    "size_mappers": (
        "ratios_are_positive_constant_ints",
        "temporal_mappers_round_trip",
        "temporal_mappers_monotone_and_steady",
        "decoded_sizes_match_mappers",
    ),
    "cache_isolation": (
        "caches_are_fresh_and_unshared",
        "interleaved_rollouts_are_independent",
        "forward_leaves_module_state_unchanged",
        "forked_cache_continues_identically",
    ),
    "chunking": ("chunked_decode_matches_full_decode", "long_rollouts_match_full_decode"),
    "forward_contract": (
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
    ),
    "pipeline_habits": ("outputs_ignore_time_and_global_state", "caller_owns_returned_outputs"),
    "resources": ("cache_memory_is_bounded", "finished_rollouts_leave_nothing_behind"),
    "state_machine": ("rollout_state_machine",),
}

CATEGORIES: tuple[str, ...] = tuple(CATALOG)

#: The contract's check ids, in reporting order.
CHECK_IDS: tuple[str, ...] = tuple(check_id for ids in CATALOG.values() for check_id in ids)

_CATEGORY_OF = {check_id: category for category, ids in CATALOG.items() for check_id in ids}


def category_of(check_id: str) -> str | None:
    """The category of ``check_id``, ``None`` for an id the catalog does not know."""
    return _CATEGORY_OF.get(check_id)


def require_known(check_id: str) -> str:
    """``check_id`` if the catalog knows it; ``KeyError`` naming the closest ids otherwise."""
    if check_id in _CATEGORY_OF:
        return check_id
    raise KeyError(
        f"unknown check {check_id!r}{did_you_mean(check_id, CHECK_IDS)}; known checks: {', '.join(CHECK_IDS)}"
    )


def checks_of(selector: str) -> list[str]:
    """The check ids ``selector`` names: one check id, or a category (every check in it,
    in order). ``KeyError`` naming the closest ids and categories otherwise."""
    if selector in _CATEGORY_OF:
        return [selector]
    if selector in CATALOG:
        return list(CATALOG[selector])
    known = [*CHECK_IDS, *CATEGORIES]
    raise KeyError(
        f"unknown check or category {selector!r}{did_you_mean(selector, known)}; categories: "
        f"{', '.join(CATEGORIES)}"
    )

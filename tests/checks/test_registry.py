"""The check registry: the contract's ids, in a stable order, each documented."""

from __future__ import annotations

import pytest

from conformance import ALL_CHECKS, get_check
from conformance.checks.catalog import CATEGORIES, CHECK_IDS

CONTRACT_IDS = {
    "size_mappers": [
        "ratios_are_positive_constant_ints",
        "temporal_mappers_round_trip",
        "temporal_mappers_monotone_and_steady",
        "decoded_sizes_match_mappers",
    ],
    "cache_isolation": [
        "caches_are_fresh_and_unshared",
        "interleaved_rollouts_are_independent",
        "forward_leaves_module_state_unchanged",
        "forked_cache_continues_identically",
    ],
    "chunking": ["chunked_decode_matches_full_decode", "long_rollouts_match_full_decode"],
    "forward_contract": [
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
    ],
    "pipeline_habits": ["outputs_ignore_time_and_global_state", "caller_owns_returned_outputs"],
    "resources": ["cache_memory_is_bounded", "finished_rollouts_leave_nothing_behind"],
    "state_machine": ["rollout_state_machine"],
}


def test_all_checks_are_the_contract_ids_in_category_order() -> None:
    assert [check.id for check in ALL_CHECKS] == [i for ids in CONTRACT_IDS.values() for i in ids]
    assert list(CHECK_IDS) == [check.id for check in ALL_CHECKS]
    for category, ids in CONTRACT_IDS.items():
        assert category in CATEGORIES
        assert [c.id for c in ALL_CHECKS if c.category == category] == ids


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda c: c.id)
def test_every_check_documents_its_promise_why_and_what(check) -> None:  # type: ignore[no-untyped-def]
    assert check.function.__name__ == check.id
    assert check.summary and check.summary != check.id
    assert "Why:" in check.doc and "What:" in check.doc


def test_get_check_names_the_known_ids_when_it_fails() -> None:
    assert get_check("chunked_decode_matches_full_decode").category == "chunking"
    with pytest.raises(KeyError) as info:
        get_check("chunked_decode_matches_ful_decode")
    assert "chunked_decode_matches_full_decode" in str(info.value)

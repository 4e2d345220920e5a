"""Unit tests of issue 9's coverage helpers: pipeline-like inputs, mapper query sets,
violation grouping, the live-tensor census and its holder search, seam battery."""

from __future__ import annotations

import torch

from conformance.checks.size_mappers import _landmarks, ranges_text
from conformance.checks.harness.fingerprints import fingerprint_plans
from conformance.checks.harness.latents import INPUT_STYLES, OUTLIER_RANGE, make_frames, styled_input
from conformance.checks.harness.reachability import describe_holder, live_tensors

#: Module-level table for the holder search to find.
_TABLE: dict[str, list[torch.Tensor]] = {}


def test_frames_carry_heavy_tail_values_in_the_documented_range_in_every_frame() -> None:
    frames = make_frames(3, [(0, i) for i in range(8)], batch=2, channels=4, size=(4, 4))
    low, high = OUTLIER_RANGE
    for b in range(2):
        for t in range(8):
            values = frames[b, :, t].abs()
            assert int(((values >= low) & (values <= high)).sum()) >= 2
    assert float(frames.abs().max()) <= high
    # the bulk stays unit-variance (outliers are about 3% of these 64-value frames)
    bulk = frames[frames.abs() < low]
    assert 0.8 < float(bulk.std()) < 1.2


def test_every_input_style_keeps_the_values_and_changes_the_memory_layout() -> None:
    x = torch.randn(1, 4, 3, 4, 5)
    layouts = set()
    for style in INPUT_STYLES:
        y = styled_input(x, style, time_axis=2, seed=1)
        assert torch.equal(y, x), style
        assert y.data_ptr() != x.data_ptr(), f"{style} must not alias the kit's tensor"
        layouts.add((y.stride(), y.storage_offset()))
        if style == "slice_of_larger":
            assert not y.is_contiguous() and y.storage_offset() > 0
            assert y.untyped_storage().nbytes() > x.numel() * x.element_size()
    assert len(layouts) == len(INPUT_STYLES), layouts


def test_landmarks_reach_the_far_sizes_with_their_neighbours() -> None:
    marks = _landmarks(10_001, 8)
    for value in (127, 128, 129, 999, 1000, 1001, 4095, 4096, 4097, 9999, 10_000, 10_001):
        assert value in marks
    assert min(marks) >= 8 and max(marks) == 10_001
    gaps = [b / a for a, b in zip(marks, marks[1:])]
    assert max(gaps) <= 1.34  # no stretch longer than the 25% grid (rounded to integers)


def test_ranges_text_compresses_runs() -> None:
    assert ranges_text([1, 2, 3, 7, 9, 10]) == "1..3, 7, 9..10"
    assert ranges_text([5]) == "5"


def test_seam_battery_is_every_partition_up_to_six_frames() -> None:
    plans = fingerprint_plans()
    assert len(plans) == 63 and len(set(plans)) == 63
    assert (2, 1, 1) in plans and (2, 2, 2) in plans
    assert all(max(p) <= 2 for p in fingerprint_plans(6, max_chunk=2))


def test_census_sees_tensors_wherever_they_are_and_names_module_globals_and_closures() -> None:
    before = live_tensors()
    held = torch.zeros(1000)
    _TABLE.setdefault("rollout-7", []).append(held)

    def make() -> object:
        kept = [torch.ones(500)]
        return lambda: kept

    closure = make()
    after = live_tensors()
    new = set(after.storages) - set(before.storages)
    assert sum(after.storages[k] for k in new) >= 1500 * 4
    del before, after  # the census itself holds every tensor; only the real holders remain
    where = describe_holder(_TABLE["rollout-7"][0])
    assert where is not None and "_TABLE" in where and "module global" in where, where
    inner = closure()[0]  # type: ignore[operator]
    where = describe_holder(inner)
    assert where is not None and "closure variable of" in where and "make" in where, where
    _TABLE.clear()

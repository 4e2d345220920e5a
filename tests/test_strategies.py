"""Strategies and latent sequences: valid partitions, reachable seams, reproducible frames."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.checks.harness.latents import LatentSequence, make_frames
from conformance.strategies import chunk_cases, chunk_plans, plan_from_cuts, required_chunk_plans


@settings(max_examples=200, deadline=None, database=None)
@given(data=st.data(), total=st.integers(1, 12), max_chunk=st.none() | st.integers(1, 4))
def test_chunk_plans_partition_the_sequence(data: st.DataObject, total: int, max_chunk: int | None) -> None:
    plan = data.draw(chunk_plans(total, max_chunk=max_chunk))
    assert sum(plan) == total and all(n >= 1 for n in plan)
    if max_chunk is not None:
        assert max(plan) <= max_chunk


def test_every_partition_is_reachable() -> None:
    from itertools import product

    plans = {plan_from_cuts(list(cuts)) for cuts in product([False, True], repeat=4)}
    assert len(plans) == 2**4  # compositions of 5
    assert (3, 1, 1) in plans and (1, 1, 1, 1, 1) in plans and (5,) in plans


def test_required_plans_include_the_seams_real_decoders_break() -> None:
    plans = required_chunk_plans(6)
    assert (3, 1, 1, 1) in plans  # multi-frame first chunk, then one-frame steps
    assert (1, 1, 1, 1, 1, 1) in plans
    assert all(sum(plan) == 6 for plan in plans)
    assert all(max(plan) <= 2 for plan in required_chunk_plans(6, max_chunk=2))


@settings(max_examples=50, deadline=None, database=None)
@given(case=chunk_cases(6, variants=2))
def test_chunk_cases_stay_within_bounds(case) -> None:  # type: ignore[no-untyped-def]
    assert 1 <= case.length <= 6 and case.variant in (0, 1)


def test_latent_sequences_extend_fork_and_merge() -> None:
    prefix = LatentSequence.of(0, 3)
    longer = prefix.then(0, 2)
    assert longer.segments == ((0, 0, 5),)
    fork = prefix.then(7, 2)
    assert fork.frames() == [(0, 0), (0, 1), (0, 2), (7, 0), (7, 1)]
    assert fork.slice(2, 4) == LatentSequence(((0, 2, 1), (7, 0, 1)))
    assert hash(prefix.then(0, 2)) == hash(LatentSequence.of(0, 5))


def test_frames_are_reproducible_and_distinct() -> None:
    frames = [(0, 0), (0, 1), (1, 0)]
    a = make_frames(5, frames, batch=2, channels=3, size=(2, 2))
    b = make_frames(5, frames[:2], batch=2, channels=3, size=(2, 2))
    assert torch.equal(a[:, :, :2], b)  # a prefix is the same frames
    assert not torch.equal(a[:, :, 0], a[:, :, 2])  # another stream differs
    assert not torch.equal(a, make_frames(6, frames, batch=2, channels=3, size=(2, 2)))  # seed matters
    assert not torch.equal(a[0], a[1])  # batch elements differ

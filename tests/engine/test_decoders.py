"""A decoder is built once per worker; each check gets an isolated copy, or a rebuild.

Isolation is the promise that makes copying safe: whatever a check does to its decoder
(normalise weights in place, update running statistics, wear it out), no other check
sees it. The proof here is by comparison: certifying self-changing decoders with copies
gives exactly the verdicts that building every check's decoder with the factory gives.
Copies that would still reach the original (a hook closure over the decoder), or that
cannot be made (a lock), are refused with the reason, and the factory builds instead.
"""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from conformance import certify
from conformance.engine.decoders import DecoderSource, template_references
from conformance.engine.loop import certify_targets
from conformance.engine.plan import RunOptions
from reference_decoders.toy import ToyDecoderConfig, toy_spec
from tests.zoo import cache_isolation, correct
from tests.zoo.conftest import PROFILE, SEED


def test_copies_are_fresh_decoders_sharing_nothing_with_the_build() -> None:
    builds = []

    def factory() -> torch.nn.Module:
        builds.append(1)
        return ToyDecoderConfig().setup()

    source = DecoderSource(factory)
    assert source.check_build() is None and source.rebuilds is None
    first, second = source(), source()
    assert len(builds) == 1  # built once; every decoder after is a copy
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()
    with torch.no_grad():
        next(first.parameters()).add_(1.0)
    assert not torch.equal(next(first.parameters()), next(source().parameters()))


def test_a_copy_reaching_the_original_through_a_hook_closure_is_found() -> None:
    decoder = correct.HookRemembersItsOwnerToy(ToyDecoderConfig())
    path = template_references(copy.deepcopy(decoder), decoder)
    assert path is not None and "closure variable 'owner'" in path
    assert template_references(copy.deepcopy(ToyDecoderConfig().setup()), decoder) is None


@pytest.mark.parametrize(
    ("case", "why"),
    [(correct.hook_remembers_its_owner_toy, "still reaches the original"),
     (correct.holds_a_lock_toy, "cannot be deep-copied")],
    ids=lambda value: getattr(value, "name", ""),
)
def test_decoders_that_copies_cannot_isolate_are_rebuilt_per_check_and_say_why(case, why) -> None:  # type: ignore[no-untyped-def]
    source = DecoderSource(case().factory)
    assert source.check_build() is None
    assert source.rebuilds is not None and why in source.rebuilds
    assert source() is not source()


def test_the_spec_can_ask_for_a_build_per_check() -> None:
    outcome = certify_targets(
        [[toy_spec(rebuild_per_check=True)]],
        RunOptions(seed=1, profile="quick", check_ids=["forward_accepts_keyword_call"], supervised=False),
    )
    (run,) = outcome.runs
    assert any("DecoderSpec.rebuild_per_check" in note for note in run.notes)


#: Decoders that change themselves while a check runs: weights normalised in place,
#: running statistics updated on every call, a hook that records every call.
SELF_CHANGING = [
    cache_isolation.weights_normalised_in_place,
    cache_isolation.running_stats_buffer,
    correct.hook_remembers_its_owner_toy,
]


@pytest.mark.parametrize("case", SELF_CHANGING, ids=lambda case: case.name)
def test_copies_give_exactly_the_verdicts_of_a_build_per_check(case) -> None:  # type: ignore[no-untyped-def]
    spec = case()
    copied = certify(spec, profile=PROFILE, seed=SEED)
    rebuilt = certify(dataclasses.replace(spec, rebuild_per_check=True), profile=PROFILE, seed=SEED)
    assert [(r.check_id, r.status, r.kind) for r in copied.results] == [
        (r.check_id, r.status, r.kind) for r in rebuilt.results
    ]

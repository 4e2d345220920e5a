"""A Hypothesis state machine that drives several rollouts at once and checks them all.

The other checks each test one promise on a fixed scenario. The state machine searches
the space of *programs* (start a rollout, step one with a random chunk length, fork one,
finish one, in any interleaving) and shrinks a failure to the shortest program that
shows it, so isolation and chunking bugs that need a particular interleaving are found
and explained.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, multiple, precondition, rule

from conformance.checks._common import plan_text
from conformance.checks.registry import promise
from conformance.harness import CheckContext, describe_exception
from conformance.latents import LatentSequence
from conformance.outcomes import CheckFailed
from conformance.properties import run_machine
from conformance.strategies import chunk_sizes

__all__ = ["RolloutState", "rollout_state_machine"]


@dataclass
class RolloutState:
    """One live rollout of the state machine: its cache and everything it has seen."""

    label: str
    cache: Any
    stream: int  # where this rollout's future latent frames come from
    sequence: LatentSequence = field(default_factory=LatentSequence)
    plan: list[int] = field(default_factory=list)  # latent frames per call so far
    emitted: int = 0  # pixel frames returned so far
    forked_from: str | None = None

    @property
    def next_index(self) -> int:
        return len(self.plan)

    def __repr__(self) -> str:
        origin = f", forked from {self.forked_from}" if self.forked_from else ""
        return f"<rollout {self.label}: plan {plan_text(self.plan)}{origin}>"


@promise("state_machine")
def rollout_state_machine(ctx: CheckContext) -> None:
    """Any program of concurrent rollouts (start, step with any chunk length, fork, finish)
    gives every rollout, at every step, exactly the frames of the one-call decode of the
    latents that rollout has seen so far.

    Why: real servers interleave many rollouts, fork some and drop others. Bugs that need
    a particular interleaving (state that leaks only when a fork is stepped after its
    parent, a chunk seam that breaks only after another rollout ran a longer chunk) slip
    past fixed scenarios.

    What: a ``RuleBasedStateMachine`` with rules start / step / fork (``copy.deepcopy``) /
    finish, up to ``max_rollouts`` live rollouts, each fed its own latent stream (a fork
    continues with a new stream, so branches see different latents). After every step the
    new output must equal the matching pixel frames of the memoized one-call decode of
    that rollout's latents, and the rollout's total frame count must equal the one-call
    decode's. Hypothesis shrinks a failure to a minimal program, reported with the
    rollout, its chunk plan, the AR index and the first mismatching frame.
    """
    decoder = ctx.decoder()
    profile = ctx.profile
    max_frames = ctx.chunk_limit(profile.max_sequence_frames)
    max_chunk = ctx.chunk_limit(3)
    max_live = max(2, profile.max_rollouts)

    class StreamingRollouts(RuleBasedStateMachine):
        rollouts = Bundle("rollouts")

        def __init__(self) -> None:
            super().__init__()
            self.live = 0
            self.started = 0
            self.fork_error: str | None = None
            ctx.evidence.examples += 1

        def _new(self, cache: Any, **fields: Any) -> RolloutState:
            self.started += 1
            self.live += 1
            ctx.evidence.rollouts += 1
            return RolloutState(label=f"r{self.started}", cache=cache, stream=self.started, **fields)

        @precondition(lambda self: self.live < max_live)
        @rule(target=rollouts)
        def start(self) -> RolloutState:
            return self._new(ctx.new_cache(decoder))

        @rule(rollout=rollouts, frames=chunk_sizes(max_chunk))
        def step(self, rollout: RolloutState, frames: int) -> None:
            frames = min(frames, max_frames - rollout.sequence.length)
            if frames <= 0:
                return  # this rollout has seen as many frames as the profile allows
            sequence = rollout.sequence.then(rollout.stream, frames)
            ar = rollout.next_index
            chunk = ctx.latents(sequence)[:, :, -frames:]
            out = ctx.forward(decoder, chunk, ar, rollout.cache)
            full = ctx.full_decode(decoder, sequence)
            plan = rollout.plan + [frames]
            where = (
                f"rollout {rollout.label}"
                + (f" (forked from {rollout.forked_from})" if rollout.forked_from else "")
                + f", chunk plan so far {plan_text(plan)}, step at AR {ar} with {frames} latent "
                f"frame(s)"
            )
            begin = rollout.emitted
            if begin + out.frames != full.shape[2]:
                raise CheckFailed(
                    f"{where}: the rollout has now returned {begin + out.frames} pixel frames in "
                    f"total, but the one-call decode of the same {sequence.length} latent frames "
                    f"gives {full.shape[2]}"
                )
            comparison = ctx.compare(full[:, :, begin:], out.output)
            if not comparison.ok:
                raise CheckFailed(
                    f"{where}: output differs from pixel frames {begin}..{full.shape[2] - 1} of the "
                    f"one-call decode of this rollout's {sequence.length} latent frames: "
                    f"{comparison.describe(frame_offset=begin)}"
                )
            rollout.sequence, rollout.plan, rollout.emitted = sequence, plan, begin + out.frames

        @precondition(lambda self: self.live < max_live)
        @rule(target=rollouts, rollout=rollouts)
        def fork(self, rollout: RolloutState) -> Any:
            try:
                cache = copy.deepcopy(rollout.cache)
            except Exception as err:  # noqa: BLE001 - unsupported forking is reported, not failed
                self.fork_error = describe_exception(err)
                ctx.evidence.note("fork_unsupported", self.fork_error)
                return multiple()
            ctx.evidence.extra["forks"] = ctx.evidence.extra.get("forks", 0) + 1
            return self._new(
                cache,
                sequence=rollout.sequence,
                plan=list(rollout.plan),
                emitted=rollout.emitted,
                forked_from=rollout.label,
            )

        @rule(rollout=consumes(rollouts))
        def finish(self, rollout: RolloutState) -> None:
            rollout.cache = None
            self.live -= 1

    run_machine(
        ctx,
        StreamingRollouts,
        max_examples=profile.state_machine_examples,
        steps=profile.state_machine_steps,
    )
    ctx.evidence.note("max_live_rollouts", max_live)
    ctx.evidence.note("max_latent_frames_per_rollout", max_frames)
    ctx.evidence.note("full_decodes", ctx.full_decode_count)

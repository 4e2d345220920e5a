"""A Hypothesis state machine that drives several rollouts at once and checks them all.

The other checks each test one promise on a fixed scenario. The state machine searches
the space of *programs* (start a rollout, step one with a random chunk length, fork one,
finish one, in any interleaving) and shrinks a failure to the shortest program that
shows it, so isolation and chunking bugs that need a particular interleaving are found
and explained.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    multiple,
    precondition,
    rule,
)

from conformance.checks.harness.common import plan_text
from conformance.checks.registry import promise
from conformance.checks.harness.calls import describe_exception
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed
from conformance.checks.harness.search import run_machine
from conformance.strategies import chunk_sizes

__all__ = ["RolloutDriver", "RolloutState", "rollout_state_machine", "run_scripted_program"]


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


class RolloutDriver:
    """Starts, steps, forks and finishes rollouts, checking every step against the
    memoized one-call decode. Used by the Hypothesis state machine and by the scripted
    program every certification runs first."""

    def __init__(self, ctx: CheckContext, decoder: Any, max_frames: int, *, naming: str = "r{}") -> None:
        self.ctx = ctx
        self.naming = naming  # label of the n-th rollout created (from 0)
        self.decoder = decoder
        self.max_frames = max_frames
        self.started = 0
        self.live = 0
        self.program: list[str] = []

    def _new(self, cache: Any, **fields: Any) -> RolloutState:
        self.started += 1
        self.live += 1
        self.ctx.evidence.rollouts += 1
        label = self.naming.format(self.started - 1)
        return RolloutState(label=label, cache=cache, stream=self.started, **fields)

    def start(self) -> RolloutState:
        rollout = self._new(self.ctx.new_cache(self.decoder))
        self.program.append(f"{rollout.label} = start()")
        return rollout

    def step(self, rollout: RolloutState, frames: int) -> None:
        ctx = self.ctx
        frames = min(frames, self.max_frames - rollout.sequence.length)
        if frames <= 0:
            return  # this rollout has seen as many frames as the profile allows
        self.program.append(f"step({rollout.label}, frames={frames})")
        sequence = rollout.sequence.then(rollout.stream, frames)
        ar = rollout.next_index
        chunk = ctx.latents(sequence)[:, :, -frames:]
        out = ctx.forward(self.decoder, chunk, ar, rollout.cache)
        full = ctx.full_decode(self.decoder, sequence)
        plan = rollout.plan + [frames]
        where = (
            f"rollout {rollout.label}"
            + (f" (forked from {rollout.forked_from})" if rollout.forked_from else "")
            + f", chunk plan so far {plan_text(plan)}, step at AR {ar} with {frames} latent "
            f"frame(s)"
        )
        begin = rollout.emitted
        if begin + out.frames != full.shape[2]:
            self._fail(
                f"{where}: the rollout has now returned {begin + out.frames} pixel frames in "
                f"total, but the one-call decode of the same {sequence.length} latent frames "
                f"gives {full.shape[2]}"
            )
        comparison = ctx.compare(full[:, :, begin:], out.output)
        if not comparison.ok:
            self._fail(
                f"{where}: output differs from pixel frames {begin}..{full.shape[2] - 1} of the "
                f"one-call decode of this rollout's {sequence.length} latent frames: "
                f"{comparison.describe(frame_offset=begin)}"
            )
        rollout.sequence, rollout.plan, rollout.emitted = sequence, plan, begin + out.frames

    def _fail(self, message: str) -> None:
        err = CheckFailed(message)
        self.ctx.note_failure(err)
        raise err

    def fork(self, rollout: RolloutState) -> RolloutState | None:
        """A deep copy continuing with its own latents; ``None`` if deepcopy is unsupported."""
        try:
            cache = copy.deepcopy(rollout.cache)
        except Exception as err:  # noqa: BLE001 - unsupported forking is reported, not failed
            self.ctx.evidence.note("fork_unsupported", describe_exception(err))
            return None
        self.ctx.evidence.extra["forks"] = self.ctx.evidence.extra.get("forks", 0) + 1
        forked = self._new(
            cache,
            sequence=rollout.sequence,
            plan=list(rollout.plan),
            emitted=rollout.emitted,
            forked_from=rollout.label,
        )
        self.program.append(f"{forked.label} = fork({rollout.label})")
        return forked

    def finish(self, rollout: RolloutState) -> None:
        self.program.append(f"finish({rollout.label})")
        rollout.cache = None
        self.live -= 1


#: The fixed program every run starts with, as data so that a failure can be shrunk to the
#: steps that matter. Operations: ``("start", name)``, ``("step", name, frames)`` (frames
#: capped by ``max_chunk_frames``), ``("fork", new, parent)``, ``("finish", name)``.
SCRIPTED_PROGRAM: tuple[tuple[Any, ...], ...] = (
    ("start", "a"),
    ("step", "a", 3),
    ("fork", "b", "a"),
    ("step", "b", 1),
    ("step", "a", 1),
    ("start", "c"),
    ("step", "c", 1),
    ("step", "a", 2),
    ("step", "b", 2),
    ("finish", "b"),
    ("step", "c", 2),
    ("finish", "a"),
    ("start", "d"),
    ("step", "d", 2),
    ("step", "c", 1),
    ("step", "d", 1),
)

#: Most re-runs spent shrinking a failing scripted program (each re-run decodes it again).
MAX_SHRINK_RUNS = 40


def run_scripted_program(
    ctx: CheckContext, driver: RolloutDriver, program: Sequence[tuple[Any, ...]] = SCRIPTED_PROGRAM
) -> None:
    """Run a fixed program (by default :data:`SCRIPTED_PROGRAM`) covering the basic
    interleavings, before the random search so they are exercised whatever Hypothesis
    draws: a multi-frame first chunk, a fork stepped in the other order than its parent, a
    rollout started while others are mid-way, and one started after another finished.
    A fork the cache cannot support drops the forked rollout's steps."""
    ctx.evidence.examples += 1
    live: dict[str, RolloutState | None] = {}
    for op in program:
        kind, name = op[0], op[1]
        if kind == "start":
            live[name] = driver.start()
        elif kind == "fork":
            parent = live.get(op[2])
            live[name] = driver.fork(parent) if parent is not None else None
        elif live.get(name) is None:
            continue  # an unsupported fork, or a rollout the shrinker removed
        elif kind == "step":
            driver.step(live[name], ctx.chunk_limit(int(op[2])))  # type: ignore[arg-type]
        elif kind == "finish":
            driver.finish(live[name])  # type: ignore[arg-type]
            live[name] = None


def shrink_scripted_program(
    ctx: CheckContext,
    decoder: Any,
    max_frames: int,
    program: Sequence[tuple[Any, ...]],
    failure: CheckFailed,
) -> tuple[RolloutDriver, CheckFailed]:
    """The smallest sub-program (greedy one-step removal, a bounded number of re-runs)
    that still fails the way ``failure`` did (same exception type); returns the driver of
    its last failing run, whose ``program`` lists the steps that matter, and its failure. Removing a rollout's ``start`` or ``fork``
    removes everything done to it and to rollouts forked from it."""
    best = list(program)
    failing: RolloutDriver | None = None
    error = failure
    runs = 0
    improved = True
    while improved and runs < MAX_SHRINK_RUNS:
        improved = False
        for index in range(len(best)):
            if runs >= MAX_SHRINK_RUNS or index >= len(best):
                break
            candidate = _without(best, index)
            if not candidate or candidate == best:
                continue
            driver = RolloutDriver(ctx, decoder, max_frames)
            runs += 1
            try:
                run_scripted_program(ctx, driver, candidate)
            except CheckFailed as err:
                if type(err) is not type(failure):
                    continue  # a different failure: not the one being shrunk
                best, failing, error, improved = candidate, driver, err, True
                break
    if failing is None:  # nothing could be removed: re-run the whole program to list it
        failing = RolloutDriver(ctx, decoder, max_frames)
        try:
            run_scripted_program(ctx, failing, best)
        except CheckFailed as err:
            error = err
    return failing, error


def _without(program: list[tuple[Any, ...]], index: int) -> list[tuple[Any, ...]]:
    """``program`` without step ``index``; dropping a ``start``/``fork`` drops its rollout."""
    op = program[index]
    if op[0] not in ("start", "fork"):
        return program[:index] + program[index + 1 :]
    gone = {op[1]}
    kept = []
    for other in program:
        if other[0] == "fork" and other[2] in gone:
            gone.add(other[1])
        if other[1] in gone:
            continue
        kept.append(other)
    return kept


@promise(exercises=("compared_frames",))
def rollout_state_machine(ctx: CheckContext) -> None:
    """Any program of concurrent rollouts (start, step with any chunk length, fork, finish)
    gives every rollout, at every step, exactly the frames of the one-call decode of the
    latents that rollout has seen so far.

    Why: real servers interleave many rollouts, fork some and drop others. Bugs that need
    a particular interleaving (state that leaks only when a fork is stepped after its
    parent, a chunk seam that breaks only after another rollout ran a longer chunk) slip
    past fixed scenarios.

    What: first a fixed program covering the basic interleavings (multi-frame first
    chunk, fork then step both, rollouts started mid-way and after a finish); then a
    ``RuleBasedStateMachine`` with rules start / step / fork (``copy.deepcopy``) / finish,
    up to ``max_rollouts`` live rollouts, each fed its own latent stream (a fork continues
    with a new stream, so branches see different latents). After every step the new
    output must equal the matching pixel frames of the memoized one-call decode of that
    rollout's latents, and the rollout's total frame count must equal the one-call
    decode's. Hypothesis shrinks a failure to a minimal program, reported with the
    rollout, its chunk plan, the AR index and the first mismatching frame.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    profile = ctx.profile
    max_frames = ctx.chunk_limit(profile.max_sequence_frames)
    max_chunk = ctx.chunk_limit(3)
    max_live = max(2, profile.max_rollouts)

    scripted = RolloutDriver(ctx, decoder, max_frames)
    try:
        run_scripted_program(ctx, scripted)
    except CheckFailed as err:
        shrunk, shrunk_error = shrink_scripted_program(ctx, decoder, max_frames, SCRIPTED_PROGRAM, err)
        program = "\n".join("    " + line for line in shrunk.program)
        raise type(err)(
            f"{shrunk_error}\nFailing program (the fixed program run before the random search, shrunk "
            f"to the steps that still fail):\n{program}"
        ) from err

    class StreamingRollouts(RuleBasedStateMachine):
        rollouts = Bundle("rollouts")

        def __init__(self) -> None:
            super().__init__()
            # Labels match the names Hypothesis prints for the bundle's values.
            self.driver = RolloutDriver(ctx, decoder, max_frames, naming="rollouts_{}")
            ctx.evidence.examples += 1

        @initialize(target=rollouts)
        def first(self) -> RolloutState:
            return self.driver.start()

        @precondition(lambda self: self.driver.live < max_live)
        @rule(target=rollouts)
        def start(self) -> RolloutState:
            return self.driver.start()

        @rule(rollout=rollouts, frames=chunk_sizes(max_chunk))
        def step(self, rollout: RolloutState, frames: int) -> None:
            self.driver.step(rollout, frames)

        @precondition(lambda self: self.driver.live < max_live)
        @rule(target=rollouts, rollout=rollouts)
        def fork(self, rollout: RolloutState) -> Any:
            forked = self.driver.fork(rollout)
            return multiple() if forked is None else forked

        @rule(rollout=consumes(rollouts))
        def finish(self, rollout: RolloutState) -> None:
            self.driver.finish(rollout)

    run_machine(
        ctx,
        StreamingRollouts,
        max_examples=profile.state_machine_examples,
        steps=profile.state_machine_steps,
    )
    ctx.evidence.note("max_live_rollouts", max_live)
    ctx.evidence.note("max_latent_frames_per_rollout", max_frames)
    ctx.evidence.note("full_decodes", ctx.full_decode_count)

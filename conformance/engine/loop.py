"""The one run loop: plan, executor, events out. Every front end runs checks through it.

A :class:`TargetRun` drives one target (or spec objects) through one executor
(:mod:`conformance.engine.executors`): it opens the target (the executor loads it and
describes each decoder), knows each decoder's device preconditions, builds each decoder
once before its first check (a decoder that cannot be built gets one message and its
checks ``not_run``, never one failure per check), runs checks one by one into a
:class:`~conformance.core.results.DecoderRun` record, and reports what happens as events
(``decoder_started``, ``check_started``, ``progress``, ``check_finished``,
``build_failed``, ``worker_replaced``, ``decoder_finished``).

- the command line and the library's :func:`certify` call :func:`certify_targets` /
  :func:`certify`, which run every planned check of every decoder;
- the pytest items call :meth:`TargetRun.check` once per item, pytest being the loop.

Order of work in :func:`certify_targets`, so that no check runs before every
precondition is known: open every target; refuse the run if a named target cannot be
loaded or a decoder's device is missing; then run the checks, decoder by decoder.

A Ctrl-C (or a :class:`Terminated` raised by a front end's SIGTERM / SIGHUP handler)
stops the workers and returns what finished, every other planned check ``not_run`` and
the run marked interrupted; the caller writes the partial report.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from conformance.core.exit_codes import (
    EXIT_CERTIFIED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_CERTIFIED,
    EXIT_TERMINATED,
    EXIT_USAGE,
)
from conformance.core.outcomes import FailureKind
from conformance.core.profiles import DEFAULT_PROFILE, get_profile
from conformance.core.replay import certify_command
from conformance.core.results import Certification, CheckResult, DecoderRun, Unloadable
from conformance.engine.executors import Executor, make_executor
from conformance.engine.expectations import apply_expectation
from conformance.engine.lanes import HOLDING_CHECK, Lanes, StopRules, late_change_message
from conformance.engine.plan import RunOptions, is_subset, lanes_for, new_seed, planned_checks
from conformance.engine.preconditions import precondition_problems
from conformance.engine.stops import stopped_result
from conformance.engine.workers.supervisor import LoadError

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = [
    "RunOutcome",
    "TargetRun",
    "Terminated",
    "certify",
    "certify_targets",
    "exit_code",
    "run_check",
]

EventHandler = Callable[[str, dict[str, Any]], None]


class Terminated(KeyboardInterrupt):
    """The run was asked to stop by a signal other than Ctrl-C (SIGTERM, SIGHUP).

    A front end's signal handler raises it in the main thread; the loop treats it as an
    interruption (partial report, workers stopped) and the exit code says which.
    """

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


@dataclass
class RunOutcome:
    """What a run gave: the decoders' runs, the unloadable targets, how it ended."""

    runs: list[DecoderRun] = field(default_factory=list)
    unloadable: list[Unloadable] = field(default_factory=list)
    interrupted: bool = False
    #: The signal that stopped the run when it was not Ctrl-C (``"SIGTERM"``, ``"SIGHUP"``).
    stopped_by: str | None = None
    #: Problems found before any check ran (the run was refused; nothing was certified).
    refused: list[str] = field(default_factory=list)


class TargetRun:
    """One target through one executor: the unit every front end drives (module docstring)."""

    def __init__(
        self,
        source: str | Sequence[DecoderSpec],
        options: RunOptions,
        *,
        on_event: EventHandler | None = None,
        origin: tuple[str, str | None] | None = None,
    ) -> None:
        self.source = source
        self.target = source if isinstance(source, str) else None
        self.options = options
        self.emit: EventHandler = on_event or (lambda name, payload: None)
        self.origin = origin
        self.executor = make_executor(source, options)
        #: Further executors, started early (see :meth:`open`) or used by a decoder before:
        #: the lanes of the next decoder take them first.
        self.spares: list[Executor] = []
        self.plan = planned_checks(options.check_ids)
        #: One record per decoder, filled as checks finish (empty until :meth:`open`).
        self.runs: list[DecoderRun] = []
        #: Each decoder's description from its executor (name, fields, environment, ...).
        self.decoders: list[dict[str, Any]] = []
        self._built: dict[int, str | None] = {}

    # ------------------------------------------------------------------ opening

    def open(self) -> Unloadable | None:
        """Load the target in its executor; ``None``, or what could not be loaded and why."""
        self.emit("loading", {"target": self.target or "(spec objects)"})
        self.executor.start()
        if self.executor.supervised:
            # The further lanes' workers import torch and the target alongside the first
            # one (a CPU decoder will use them all; one on a GPU closes the surplus).
            wanted = lanes_for(self.options, ["cpu"], os.cpu_count()) - 1
            for _ in range(max(0, min(wanted, len(self.plan) - 1))):
                spare = make_executor(self.source, self.options)
                spare.start()
                self.spares.append(spare)
        try:
            self.decoders = self.executor.open()
        except LoadError as err:
            self._close_spares()
            name, distribution = self.origin or (self.target or "(spec objects)", None)
            return Unloadable(name=name, target=self.target or name, distribution=distribution, error=str(err))
        subset = is_subset(self.plan)
        self.runs = [
            DecoderRun(
                Certification(
                    described["name"], [], self.options.seed, self.options.profile,
                    environment=dict(described.get("environment") or {}), subset=subset,
                ),
                target=self.target,
                spec=dict(described.get("fields") or {}),
                supervised=self.executor.supervised,
            )
            for described in self.decoders
        ]
        return None

    def preconditions(self, index: int | None = None) -> list[str]:
        """Why decoders (all, or the one at ``index``) cannot be certified where their checks
        would run (a device the machine lacks); empty when all is well."""
        chosen = range(len(self.decoders)) if index is None else [index]
        return [
            problem
            for i in chosen
            for problem in precondition_problems(
                self.decoders[i].get("fields") or {"name": self.decoders[i]["name"]},
                self.decoders[i].get("environment") or {},
            )
        ]

    def close(self) -> None:
        self.executor.close()
        self._close_spares()

    def _close_spares(self) -> None:
        spares, self.spares = self.spares, []
        for spare in spares:
            spare.close()

    def _more(self) -> Executor:
        return self.spares.pop() if self.spares else make_executor(self.source, self.options)

    # ------------------------------------------------------------------ checks

    def is_built(self, index: int) -> bool:
        """Whether decoder ``index`` was built (or found unbuildable) already."""
        return index in self._built

    def build(self, index: int) -> str | None:
        """Build decoder ``index`` once, before its first check; why it cannot be, or ``None``."""
        if index not in self._built:
            problem, config, rebuilds = self.executor.build(index)
            run = self.runs[index]
            run.decoder_config = run.decoder_config or config
            self._built[index] = problem
            if problem is None and rebuilds is not None:
                run.notes.append(f"every check built its decoders with the factory: {rebuilds}")
            if problem is not None:
                run.notes.append(problem)
                self.emit("build_failed", {"target": self.target, "name": run.certification.decoder,
                                           "problem": problem})
        return self._built[index]

    def check(self, index: int, check_id: str) -> CheckResult:
        """Run one check of decoder ``index`` (building the decoder first if needed) and
        record its result: the pytest items' unit of work. The check holds its outputs
        itself (nothing re-verifies them after it)."""
        run = self.runs[index]
        problem = self.build(index)
        if problem is not None:
            result = stopped_result(check_id, problem)
        else:
            result, config = self.executor.run(index, check_id, self.emit, hold=False)
            run.decoder_config = run.decoder_config or config
        run.notes += self.executor.notes
        self.executor.notes.clear()
        self._record(index, result)
        return result

    def certify(self) -> list[DecoderRun]:
        """Run every planned check of every decoder, over several worker processes where
        the machine has room (:mod:`conformance.engine.lanes`); on Ctrl-C (or
        :class:`Terminated`), mark what did not run and re-raise."""
        try:
            for index, run in enumerate(self.runs):
                self.emit("decoder_started", {"target": self.target, "name": run.certification.decoder, "run": run})
                started = time.monotonic()
                self._certify_decoder(index, run)
                run.wall_s = time.monotonic() - started
                run.certification.results.sort(key=lambda result: self.plan.index(result.check_id))
                self.emit("decoder_finished", {"target": self.target, "run": run})
        except KeyboardInterrupt as stop:
            self.kill()
            self.mark_interrupted(_stop_reason(stop))
            raise
        return self.runs

    def _certify_decoder(self, index: int, run: DecoderRun) -> None:
        problem = self.build(index)
        if problem is not None:
            for check_id in self.plan:
                self._record(index, stopped_result(check_id, problem))
            return
        count = lanes_for(self.options, [d.get("device", "cpu") for d in self.decoders], os.cpu_count())
        while len(self.spares) > count - 1:  # started for a CPU decoder, not needed here
            self.spares.pop().close()
        lanes = Lanes(
            index, self.plan, first=self.executor,
            more=self._more if self.executor.supervised else None,
            release=self.spares.append,
            count=count,
            emit=self.emit, on_result=lambda result: self._record(index, result),
            rules=StopRules(self.options.max_worker_losses, self.options.maxfail),
        )
        results, configs, late = lanes.run()
        run.notes += self.executor.notes + lanes.notes
        self.executor.notes.clear()
        run.decoder_config = run.decoder_config or next((c for c in configs.values() if c), None)
        held = results.get(HOLDING_CHECK)
        if held is not None:
            self._record(index, self._amended(index, held, late))

    def _record(self, index: int, result: CheckResult) -> None:
        run = self.runs[index]
        run.certification.results.append(result)
        self.emit("check_finished", {"target": self.target, "name": run.certification.decoder, "result": result})

    def _amended(self, index: int, result: CheckResult, late: list[dict[str, Any]]) -> CheckResult:
        """``outputs_survive_later_steps``'s result with the late changes of kept outputs
        (re-verified at the end of the decoder's run) added: a change breaks its promise."""
        if not late:
            return result
        message = "\n".join(late_change_message(change) for change in late)
        raw_passed = result.status == "passed" or result.kind is FailureKind.STALE_EXPECTATION
        if raw_passed:
            declared = self.decoders[index].get("expected_failures") or {}
            status, message, kind = apply_expectation(
                declared, result.check_id, "failed", message, FailureKind.BROKEN_PROMISE
            )
        elif result.kind is FailureKind.BROKEN_PROMISE:
            status, kind = result.status, result.kind
            message = f"{result.message}\n{message}"
        else:
            return result
        evidence = dict(result.evidence)
        evidence["late_changes"] = late
        replay = result.replay or certify_command(
            self.target, seed=self.options.seed, profile=self.options.profile, check_ids=[result.check_id]
        )
        return replace(result, status=status, message=message, kind=kind, evidence=evidence, replay=replay)

    def kill(self) -> None:
        """Stop every worker at once (an interrupted run)."""
        self.executor.kill()
        for spare in self.spares:
            spare.kill()

    def mark_interrupted(self, reason: str) -> None:
        """Every planned check without a result becomes ``not_run`` (saying ``reason``), and
        every decoder's run is marked interrupted."""
        for run in self.runs:
            done = {result.check_id for result in run.certification.results}
            run.certification.results += [
                stopped_result(check_id, reason) for check_id in self.plan if check_id not in done
            ]
            run.certification.interrupted = True


def _stop_reason(stop: BaseException) -> str:
    signal_name = getattr(stop, "signal_name", None)
    return f"the run was stopped ({signal_name})" if signal_name else "the run was interrupted (Ctrl-C)"


def certify_targets(
    sources: Sequence[str | Sequence[DecoderSpec]],
    options: RunOptions,
    *,
    required: Sequence[str] = (),
    origins: Mapping[str, tuple[str, str | None]] | None = None,
    on_event: EventHandler | None = None,
) -> RunOutcome:
    """Certify every decoder of every source (see the module docstring).

    ``origins`` maps a target to ``(entry-point name, distribution)`` for registered
    decoders, so a load failure names where it was registered. A target in ``required``
    that cannot be loaded refuses the whole run (the user named it; certifying the others
    would answer a question nobody asked); other load failures are reported and the
    loadable targets still run. A decoder whose device the machine lacks refuses the run.
    """
    outcome = RunOutcome()
    opened: list[TargetRun] = []
    try:
        for source in sources:
            origin = (origins or {}).get(source) if isinstance(source, str) else None
            run = TargetRun(source, options, on_event=on_event, origin=origin)
            failure = run.open()
            if failure is not None:
                outcome.unloadable.append(failure)
            else:
                opened.append(run)
        outcome.refused = [
            f"cannot certify {failure.target!r}:\n{failure.error}"
            for failure in outcome.unloadable
            if failure.target in required
        ] + [problem for run in opened for problem in run.preconditions()]
        if outcome.refused:
            return outcome
        for position, run in enumerate(opened):
            try:
                outcome.runs += run.certify()
            except KeyboardInterrupt:
                outcome.runs += run.runs
                for later in opened[position + 1 :]:
                    later.mark_interrupted("the run was interrupted before this decoder's checks")
                    outcome.runs += later.runs
                raise
            finally:
                run.close()
    except KeyboardInterrupt as stop:  # Ctrl-C or a terminating signal, anywhere in the run
        outcome.interrupted = True
        outcome.stopped_by = getattr(stop, "signal_name", None)
    finally:
        for run in opened:
            run.close()
    return outcome


def exit_code(outcome: RunOutcome, *, write_problems: Sequence[str] = ()) -> int:
    """The exit status a run earns (:mod:`conformance.core.exit_codes`).

    0 only when every requested decoder has a complete, certified run and every report
    was written; 130 interrupted (143 stopped by SIGTERM or SIGHUP); 2 a target could not
    be loaded or the run was refused; 3 a check hit a bug of the kit; 4 nothing failed,
    but some check ran out of time without a verdict; 1 anything else that is not
    certified.
    """
    if outcome.interrupted:
        return EXIT_TERMINATED if outcome.stopped_by else EXIT_INTERRUPTED
    if outcome.refused or outcome.unloadable or not outcome.runs:
        return EXIT_USAGE
    certs = [run.certification for run in outcome.runs]
    if any(cert.kit_error for cert in certs):
        return EXIT_INTERNAL
    if all(cert.certified for cert in certs):
        return EXIT_NOT_CERTIFIED if write_problems else EXIT_CERTIFIED
    blocking = {r.status for cert in certs for r in cert.results if not r.ok}
    if blocking == {"inconclusive"} and not any(cert.subset for cert in certs):
        return EXIT_INCONCLUSIVE
    return EXIT_NOT_CERTIFIED


# ---------------------------------------------------------------------------------
# The library's entry points


def certify(
    spec: DecoderSpec,
    *,
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
    check_ids: Sequence[str] | None = None,
) -> Certification:
    """Run every check (or ``check_ids``) on ``spec`` in this process and collect the results.

    For a spec object (its factory cannot be sent to another process); to certify a
    ``MODULE:ATTR`` target in supervised workers use :func:`certify_targets`. Raises
    ``ValueError`` for an unknown profile or unknown ids in ``spec.expected_failures``,
    ``KeyError`` for unknown ``check_ids``.
    """
    options = RunOptions(seed=new_seed() if seed is None else seed, profile=get_profile(profile).name,
                         check_ids=check_ids, supervised=False)
    run = TargetRun([spec], options)
    failure = run.open()
    if failure is not None:
        raise ValueError(failure.error)
    try:
        return run.certify()[0].certification
    finally:
        run.close()


def run_check(
    spec: DecoderSpec,
    check_id: str,
    *,
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
) -> CheckResult:
    """Run one check on ``spec`` in this process. ``seed=None`` draws one (see
    ``result.evidence['run_seed']``)."""
    return certify(spec, profile=profile, seed=seed, check_ids=[check_id]).results[0]

"""Certify targets: the run every front end asks for, supervised or in-process.

``certify_targets`` takes ``MODULE:ATTR`` targets and gives back one
:class:`~conformance.core.results.DecoderRun` per decoder, the targets that could not be
loaded, and whether the run was interrupted. Supervised (the default, and the CLI's):
each target is loaded and judged in a worker process (:mod:`conformance.workers`), so
nothing a decoder does to its process decides the outcome. In-process (``supervised=False``,
the library's mode for a spec object or a caller that wants no subprocess): the same
checks in daemon threads of the calling process, which cannot survive a decoder that
ends or hangs the process.

Order of work, so that no check runs before every precondition is known:

1. open every target (supervised: a worker imports it and reports its decoders);
2. ``preflight`` sees every decoder's spec fields and environment and may refuse the run
   (a CUDA spec without a GPU, an output path that cannot be written);
3. run the checks, decoder by decoder, reporting progress through ``on_event``.

Ctrl-C stops the workers and returns what finished, the rest ``not_run`` and the run
marked interrupted; the caller writes the partial report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conformance.core.results import Certification, DecoderRun

__all__ = [
    "EXIT_CERTIFIED",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_CERTIFIED",
    "EXIT_USAGE",
    "LoadFailure",
    "RunOutcome",
    "certify_targets",
    "exit_code",
]

EXIT_CERTIFIED = 0
EXIT_NOT_CERTIFIED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INCONCLUSIVE = 4
EXIT_INTERRUPTED = 130

EventHandler = Callable[[str, dict[str, Any]], None]
#: Sees ``[(target, spec fields, environment), ...]`` before any check runs; returns the
#: problems that forbid the run (empty: go ahead).
Preflight = Callable[[list[tuple[str, dict[str, Any], dict[str, Any]]]], list[str]]


@dataclass(frozen=True)
class LoadFailure:
    """A target that could not be loaded (shaped like ``discovery.Unloadable``)."""

    name: str
    target: str
    distribution: str | None
    error: str


@dataclass
class RunOutcome:
    """What a run gave: the decoders' runs, the unloadable targets, the stop reason."""

    runs: list[DecoderRun] = field(default_factory=list)
    unloadable: list[LoadFailure] = field(default_factory=list)
    interrupted: bool = False
    #: Problems found before any check ran (the run was refused; nothing was certified).
    refused: list[str] = field(default_factory=list)


def certify_targets(
    targets: Sequence[str],
    *,
    profile: str,
    seed: int,
    check_ids: Sequence[str] | None = None,
    threads: int | None = None,
    supervised: bool = True,
    origins: dict[str, tuple[str, str | None]] | None = None,
    required: Sequence[str] = (),
    preflight: Preflight | None = None,
    on_event: EventHandler | None = None,
) -> RunOutcome:
    """Certify every decoder of every target (see the module docstring).

    ``origins`` maps a target to ``(entry-point name, distribution)`` for registered
    decoders, so a load failure names where it was registered. A target in ``required``
    that cannot be loaded refuses the whole run (the user named it; certifying the others
    would answer a question nobody asked); other load failures are reported and the
    loadable targets still run.
    """
    emit: EventHandler = on_event or (lambda name, payload: None)
    if not supervised:
        return _in_process(targets, profile=profile, seed=seed, check_ids=check_ids, origins=origins,
                           required=required, preflight=preflight, emit=emit)
    from conformance.workers.supervisor import RunInterrupted, SupervisorOptions, TargetSession

    options = SupervisorOptions(profile=profile, seed=seed, check_ids=check_ids, threads=threads)
    outcome = RunOutcome()
    sessions: list[TargetSession] = []
    try:
        for target in targets:
            emit("loading", {"target": target})
            session = TargetSession(target, options)
            if session.load_error is not None:
                outcome.unloadable.append(_failure(target, session.load_error, origins))
            else:
                sessions.append(session)
        outcome.refused = _required_loaded(outcome, required)
        if outcome.refused:
            return outcome
        described = [
            (session.target, dict(spec.get("fields") or {}), dict(spec.get("environment") or {}))
            for session in sessions
            for spec in session.specs
        ]
        outcome.refused = preflight(described) if preflight is not None else []
        if outcome.refused:
            return outcome
        for session in sessions:
            outcome.runs += session.certify(emit)
            session.close()
    except RunInterrupted as stop:
        outcome.runs += stop.runs
        outcome.interrupted = True
    except KeyboardInterrupt:  # Ctrl-C outside a check (between checks, while printing)
        outcome.interrupted = True
    finally:
        for session in sessions:
            session.close()
    return outcome


def _in_process(
    targets: Sequence[str],
    *,
    profile: str,
    seed: int,
    check_ids: Sequence[str] | None,
    origins: dict[str, tuple[str, str | None]] | None,
    required: Sequence[str],
    preflight: Preflight | None,
    emit: EventHandler,
) -> RunOutcome:
    from conformance.checks import CHECK_IDS, get_check
    from conformance.core.profiles import get_profile
    from conformance.reports.record import spec_fields
    from conformance.engine.runner import _run, environment, validate_expected_failures
    from conformance.core.spec import load_target
    from conformance.core.results import CheckResult
    from conformance.engine.runner import ConfigRecorder, build_problem

    outcome = RunOutcome()
    loaded = []
    for target in targets:
        try:
            specs = list(load_target(target))
            for spec in specs:
                validate_expected_failures(spec)
        except Exception as err:  # noqa: BLE001 - reported as unloadable
            outcome.unloadable.append(_failure(target, str(err), origins))
            continue
        loaded += [(target, spec) for spec in specs]
    outcome.refused = _required_loaded(outcome, required) or (
        preflight([(t, spec_fields(s), environment(s)) for t, s in loaded]) if preflight else []
    )
    if outcome.refused:
        return outcome
    chosen = get_profile(profile)
    ids = list(check_ids) if check_ids is not None else list(CHECK_IDS)
    subset = check_ids is not None and set(ids) != set(CHECK_IDS)
    for target, spec in loaded:
        recorder = ConfigRecorder(spec.factory)
        recorded = replace(spec, factory=recorder)
        cert = Certification(spec.name, [], seed, chosen.name, environment=environment(spec), subset=subset)
        run = DecoderRun(cert, target=target, spec=spec_fields(spec), supervised=False)
        outcome.runs.append(run)
        emit("decoder_started", {"target": target, "name": spec.name, "run": run})
        problem = build_problem(recorder)
        run.decoder_config = recorder.text
        if problem is not None:
            run.notes.append(problem)
            cert.results += [
                CheckResult(check_id, "not_run", "not run: the decoder could not be built (see the note)",
                            0.0, {}, kind="not run")
                for check_id in ids
            ]
            emit("build_failed", {"target": target, "name": spec.name, "problem": problem})
            emit("decoder_finished", {"target": target, "run": run})
            continue
        for position, check_id in enumerate(ids):
            emit("check_started", {"check_id": check_id})
            try:
                result = _run(recorded, get_check(check_id), chosen, seed, target)
            except KeyboardInterrupt:
                cert.results += [
                    CheckResult(rest, "not_run", "not run: the run was interrupted (Ctrl-C)", 0.0, {},
                                kind="not run")
                    for rest in ids[position:]
                ]
                cert.interrupted = outcome.interrupted = True
                return outcome
            cert.results.append(result)
            run.decoder_config = recorder.text
            emit("check_finished", {"target": target, "name": spec.name, "result": result})
        emit("decoder_finished", {"target": target, "run": run})
    return outcome


def _required_loaded(outcome: RunOutcome, required: Sequence[str]) -> list[str]:
    return [
        f"cannot certify {failure.target!r}:\n{failure.error}"
        for failure in outcome.unloadable
        if failure.target in required
    ]


def _failure(target: str, error: str, origins: dict[str, tuple[str, str | None]] | None) -> LoadFailure:
    name, distribution = (origins or {}).get(target, (target, None))
    return LoadFailure(name=name, target=target, distribution=distribution, error=error)


def exit_code(outcome: RunOutcome, *, write_problems: Sequence[str] = ()) -> int:
    """The exit status a run earns (documented in ``--help`` and the README).

    0 only when every requested decoder has a complete, certified run and every report
    was written; 130 interrupted; 2 a target could not be loaded or the run was refused;
    3 a check hit a bug of the kit; 4 nothing failed, but some check ran out of time
    without a verdict; 1 anything else that is not certified.
    """
    if outcome.interrupted:
        return EXIT_INTERRUPTED
    if outcome.refused or outcome.unloadable:
        return EXIT_USAGE
    if not outcome.runs:
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

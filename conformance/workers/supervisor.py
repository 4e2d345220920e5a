"""The parent side of supervised runs: spawn a worker, watch it, judge what it did.

One worker process per target, reused for every check of every decoder the target names
(the torch import, the target's import and any compilation are paid once), replaced only
after it dies or is killed. The parent never imports the target and never touches CUDA;
it sends names (target, spec index, check id, seeds), receives plain JSON, and keeps every
clock itself, so nothing a decoder does to its own process can decide the verdict:

- the worker *dies* (a signal, ``os._exit``, an abort, the OOM killer): the check in
  flight fails with kind ``crash``, saying the exit status or signal in words, the decoder
  call in progress and the tail of the worker's stderr (where ``faulthandler`` wrote the
  traceback); the remaining checks run in a fresh worker;
- the worker is *stuck* (no decoder call completes and no counter moves for longer than
  the stall limit, or it stops sending heartbeats because native code holds the GIL): the
  supervisor asks for a stack dump (SIGUSR1), kills it, and the check fails with kind
  ``timeout``, naming the call and showing the stacks;
- the worker is *slow* (work keeps completing, but the check outlives its time budget):
  the check is given up to ``slow_factor`` times its budget, then reported
  ``inconclusive`` -- not certified, not a decoder failure, with what to do about it;
- a search that had already found a bug when time ran out reports that bug.

Stall limit: ``max(check timeout, stall_factor x the longest decoder call seen in this
worker)``: a call far slower than every earlier one, with nothing else moving, is stuck;
on a loaded machine all calls slow down together and the limit grows with them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conformance.core.results import Certification, CheckResult, DecoderRun
from conformance.workers.capture import Tail
from conformance.workers.protocol import (
    PROTOCOL_VERSION,
    WORKER_MESSAGES,
    MessageReader,
    MessageWriter,
    ProtocolError,
)

__all__ = [
    "RunInterrupted",
    "TargetSession",
    "SupervisorOptions",
    "TargetOutcome",
    "certify_target",
    "describe_exit",
]

EventHandler = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SupervisorOptions:
    """How a supervised run is made; every field has the default the CLI uses."""

    profile: str = "default"
    seed: int = 0
    #: The checks to run (``None``: every check, in registry order).
    check_ids: Sequence[str] | None = None
    #: Intra-op threads for the worker's torch (``None``: one thread for CPU-only targets,
    #: torch's default otherwise; see ``worker._choose_threads``).
    threads: int | None = None
    #: A call slower than this many times the longest call before it, with nothing else
    #: moving, is stuck (see the module docstring).
    stall_factor: float = 20.0
    #: A check still making progress gets up to this many times its time budget before
    #: it is called inconclusive.
    slow_factor: float = 4.0
    #: Seconds the worker may take to import torch and the target and say hello.
    load_timeout_s: float = 600.0
    #: Extra environment variables for the worker.
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class TargetOutcome:
    """What one target gave: its decoders' runs, or why it could not be loaded."""

    target: str
    runs: list[DecoderRun] = field(default_factory=list)
    load_error: str | None = None


class RunInterrupted(Exception):
    """Ctrl-C: the workers were stopped; ``runs`` holds every decoder's partial results
    (the unfinished checks ``not_run``, each certification marked interrupted)."""

    def __init__(self, runs: list[DecoderRun]) -> None:
        super().__init__("interrupted")
        self.runs = runs


def describe_exit(returncode: int | None) -> str:
    """A worker's exit status in words."""
    if returncode is None:
        return "it stopped responding"
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        meaning = {
            "SIGSEGV": "a segmentation fault (invalid memory access in native code)",
            "SIGBUS": "a bus error (invalid memory access in native code)",
            "SIGABRT": "an abort (a failed native assertion, or threads alive at interpreter exit)",
            "SIGKILL": "SIGKILL from outside the kit (often the out-of-memory killer)",
            "SIGFPE": "a floating-point exception in native code",
            "SIGILL": "an illegal instruction",
            "SIGTERM": "SIGTERM from outside the kit",
        }.get(name, name)
        return f"it was killed by {name}: {meaning}"
    return (
        f"it exited with status {returncode} (the decoder, or a thread it started, ended the "
        "process: os._exit, sys.exit in the main thread, or a fatal error)"
    )


class _Worker:
    """One worker process: its pipes, its event queue, its output tails."""

    def __init__(self, target: str, options: SupervisorOptions) -> None:
        cmd_read, cmd_write = os.pipe()
        evt_read, evt_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            "conformance.workers.worker",
            target,
            "--commands",
            str(cmd_read),
            "--events",
            str(evt_write),
            "--parent",
            str(os.getpid()),
        ]
        if options.threads is not None:
            command += ["--threads", str(options.threads)]
        env = {**os.environ, **options.env}
        # The worker imports the target the way the parent would have: same sys.path
        # (pytest's rootdir insertion, a caller's own additions), same working directory.
        env["CONFORMANCE_SYS_PATH"] = json.dumps([os.getcwd() if p == "" else p for p in sys.path])
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(cmd_read, evt_write),
            env=env,
            close_fds=True,
        )
        os.close(cmd_read)
        os.close(evt_write)
        assert self.process.stdout is not None and self.process.stderr is not None
        self.stdout = Tail(os.dup(self.process.stdout.fileno()), name="stdout")
        self.stderr = Tail(os.dup(self.process.stderr.fileno()), name="stderr")
        self.process.stdout.close()
        self.process.stderr.close()
        self._writer = MessageWriter(cmd_write)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = MessageReader(evt_read, WORKER_MESSAGES)
        threading.Thread(target=self._pump, name="conformance-events", daemon=True).start()
        #: The longest decoder call this worker has completed, in seconds.
        self.longest_call_s = 0.0
        self.started = time.monotonic()

    def _pump(self) -> None:
        while True:
            try:
                message = self._reader.receive()
            except ProtocolError as err:
                self.events.put({"msg": "_protocol_error", "error": str(err)})
                break
            except OSError:
                message = None
            if message is None:
                break
            self.events.put(message)
        self._reader.close()
        self.events.put({"msg": "_eof"})

    def send(self, name: str, **payload: Any) -> bool:
        """Send a command; ``False`` if the worker is gone."""
        try:
            self._writer.send(name, **payload)
            return True
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process.poll() is None

    def dump_stacks(self) -> None:
        """Ask the worker's faulthandler for every thread's stack (written to its stderr)."""
        if hasattr(signal, "SIGUSR1") and self.alive():
            try:
                self.process.send_signal(signal.SIGUSR1)
            except OSError:
                return
            time.sleep(0.5)

    def kill(self) -> None:
        if self.alive():
            try:
                self.process.kill()
            except OSError:
                pass
        self.wait(10.0)

    def wait(self, timeout: float) -> int | None:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.stderr.join(1.0)
        self.stdout.join(1.0)
        return code

    def bye(self) -> None:
        """Ask the worker to leave; kill it if it does not within a few seconds."""
        self.send("bye")
        self._writer.close()
        if self.wait(10.0) is None:
            self.kill()

    def stderr_excerpt(self, lines: int = 40) -> str:
        kept = self.stderr.lines(lines)
        return "\n".join("    " + line for line in kept)


def _hello(worker: _Worker, options: SupervisorOptions, target: str) -> tuple[list[dict[str, Any]] | None, str | None]:
    """Wait for the worker's hello: ``(specs, None)``, or ``(None, why it failed)``."""
    deadline = time.monotonic() + options.load_timeout_s
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            worker.dump_stacks()
            worker.kill()
            return None, (
                f"loading {target} did not finish within {options.load_timeout_s:g} s (importing "
                f"the target hung?). Last lines of its stderr:\n{worker.stderr_excerpt()}"
            )
        try:
            message = worker.events.get(timeout=min(remaining, 0.5))
        except queue.Empty:
            continue
        name = message["msg"]
        if name == "hello":
            if message.get("protocol") != PROTOCOL_VERSION:
                worker.kill()
                return None, (
                    f"the worker speaks protocol {message.get('protocol')}, this kit "
                    f"{PROTOCOL_VERSION}: a different conformance kit is first on the worker's path"
                )
            return list(message["specs"]), None
        if name == "load_error":
            worker.wait(10.0) or worker.kill()
            return None, str(message["message"])
        if name in ("_eof", "_protocol_error"):
            code = worker.wait(10.0)
            output = worker.stderr_excerpt() or worker.stdout.text()[-2000:]
            detail = f"\nLast lines of its output:\n{output}" if output.strip() else ""
            return None, (
                f"the process loading {target} ended before it could report its decoders: "
                f"{describe_exit(code)}. A target module must not exit or crash when imported."
                + detail
            )


@dataclass
class _InFlight:
    """What the supervisor knows about the check running now."""

    check_id: str
    timeout: float
    sent: float
    started: float | None = None
    call: str | None = None
    call_started: float | None = None
    last_heard: float = 0.0
    last_progress: float = 0.0
    counters: dict[str, Any] = field(default_factory=dict)
    first_failure: str | None = None
    first_failure_is_decoder_error: bool = False


def _replay(target: str, options: SupervisorOptions, check_id: str) -> str:
    from conformance.report import replay_command

    return replay_command(target, seed=options.seed, profile=options.profile, check_id=check_id)


def _failed(
    flight: _InFlight, target: str, options: SupervisorOptions, kind: str, message: str, status: str = "failed"
) -> CheckResult:
    from conformance.engine.runner import check_seed

    evidence = dict(flight.counters)
    evidence["seed"] = check_seed(options.seed, flight.check_id)
    evidence["run_seed"] = options.seed
    now = time.monotonic()
    return CheckResult(
        flight.check_id,
        status,  # type: ignore[arg-type]
        f"{message}\nReplay: {_replay(target, options, flight.check_id)}",
        now - (flight.started or flight.sent),
        evidence,
        kind=kind,
    )


def _run_check(
    worker: _Worker,
    target: str,
    spec_index: int,
    spec: dict[str, Any],
    check_id: str,
    options: SupervisorOptions,
    on_event: EventHandler,
) -> tuple[CheckResult, str | None, bool]:
    """Run one check in ``worker``: ``(result, decoder config text, worker still usable)``."""
    from conformance.core.profiles import get_profile
    from conformance.engine.runner import CRASH, INCONCLUSIVE, TIMEOUT, timeout_outcome

    timeout = float(spec.get("check_timeout_s") or get_profile(options.profile).check_timeout_s)
    now = time.monotonic()
    flight = _InFlight(check_id, timeout, sent=now, last_heard=now, last_progress=now)
    declared = spec.get("expected_failures", {}).get(check_id)
    uncovered = (
        f" (declared expected failure {declared!r} does not cover this: a crash or a hang is "
        "never expected)" if declared else ""
    )
    if not worker.send(
        "run", spec_index=spec_index, check_id=check_id, profile=options.profile,
        run_seed=options.seed, target=target,
    ):
        message = {"msg": "_eof"}
        worker.events.put(message)
    while True:
        try:
            message = worker.events.get(timeout=0.1)
        except queue.Empty:
            message = None
        now = time.monotonic()
        if message is not None:
            name = message["msg"]
            flight.last_heard = now
            if name == "started":
                flight.started = flight.last_progress = now
                on_event("check_started", {"check_id": check_id})
            elif name == "call":
                if flight.call is not None and flight.call_started is not None:
                    worker.longest_call_s = max(worker.longest_call_s, now - flight.call_started)
                flight.call, flight.call_started, flight.last_progress = message.get("call"), now, now
            elif name == "heartbeat":
                call = message.get("call")
                counters = message.get("evidence") or {}
                if call != flight.call or counters != flight.counters:
                    flight.last_progress = now
                if flight.call is not None and flight.call_started is not None and call != flight.call:
                    worker.longest_call_s = max(worker.longest_call_s, now - flight.call_started)
                if call is not None and call != flight.call:
                    elapsed = float(message.get("call_elapsed_s") or 0.0)
                    flight.call_started = now - elapsed
                flight.call = call
                flight.counters = counters
                on_event("progress", {"check_id": check_id, "call": call, **counters})
            elif name == "first_failure":
                if flight.first_failure is None:
                    flight.first_failure = str(message.get("message"))
                    flight.first_failure_is_decoder_error = bool(message.get("decoder_error"))
            elif name == "result":
                payload = dict(message["result"])
                result = CheckResult(
                    payload["check_id"], payload["status"], payload["message"],
                    float(payload["duration_s"]), dict(payload.get("evidence") or {}),
                    kind=payload.get("kind"),
                )
                return result, message.get("decoder_config"), True
            elif name in ("_eof", "_protocol_error"):
                code = worker.wait(5.0)
                if code is None:
                    worker.kill()
                    code = worker.process.returncode
                where = (
                    f" during the decoder call {flight.call}" if flight.call else
                    (" before the check started (after the previous check ended)"
                     if flight.started is None else "")
                )
                what = (
                    f"the worker process running {check_id} died{where}: {describe_exit(code)}"
                    if name == "_eof" else
                    f"the worker process running {check_id} broke the kit's message protocol "
                    f"({message.get('error')}); something in the process wrote to the kit's pipe"
                )
                found = (
                    f"\nBefore it died, the search had found: {flight.first_failure}"
                    if flight.first_failure else ""
                )
                tail = worker.stderr_excerpt()
                stderr = f"\nLast lines of the worker's stderr:\n{tail}" if tail else ""
                return _failed(flight, target, options, CRASH, what + uncovered + found + stderr), None, False
        # The supervisor's clocks.
        stall_limit = max(timeout, options.stall_factor * worker.longest_call_s)
        running = now - (flight.started or flight.sent)
        silent = now - flight.last_heard
        idle = now - flight.last_progress
        if idle > stall_limit:
            worker.dump_stacks()
            worker.kill()
            stacks = worker.stderr_excerpt(60)
            if silent > stall_limit:
                why = (
                    f"the worker process stopped responding for {silent:.0f} s (no heartbeat: "
                    "native code holding the GIL, or a deadlock)"
                )
            else:
                why = f"nothing progressed for {idle:.0f} s"
            where = f"; the decoder call in progress: {flight.call}" if flight.call else (
                "; no decoder call was in progress"
            )
            if flight.first_failure:
                outcome = timeout_outcome(check_id, timeout, flight.call, flight.first_failure,
                                          flight.first_failure_is_decoder_error)
                return _failed(flight, target, options, outcome["kind"], outcome["message"]), None, False
            message_text = (
                f"{check_id} is stuck: {why}{where} (stall limit {stall_limit:.0f} s: the check's "
                f"{timeout:g} s timeout, or {options.stall_factor:g}x the longest earlier call, "
                f"{worker.longest_call_s:.2f} s). The worker was killed.{uncovered}"
                + (f"\nIts stacks when it was stopped:\n{stacks}" if stacks else "")
            )
            return _failed(flight, target, options, TIMEOUT, message_text), None, False
        if running > timeout and flight.first_failure:
            worker.kill()
            outcome = timeout_outcome(check_id, timeout, flight.call, flight.first_failure,
                                      flight.first_failure_is_decoder_error)
            return _failed(flight, target, options, outcome["kind"], outcome["message"]), None, False
        if running > options.slow_factor * timeout:
            worker.kill()
            message_text = (
                f"{check_id} ran out of time: after {running:.0f} s (its budget is {timeout:g} s, "
                f"allowed up to {options.slow_factor:g}x while work kept completing) it was still "
                f"making progress ({_progress_text(flight.counters)}), with no sign of a fault. "
                "No verdict: the machine may be loaded or the decoder slow. Re-run on an idle "
                "machine, use fewer threads per worker (--threads), or raise "
                "DecoderSpec.check_timeout_s."
            )
            return _failed(flight, target, options, INCONCLUSIVE, message_text, status="inconclusive"), None, False


def _progress_text(counters: dict[str, Any]) -> str:
    parts = [f"{value} {name.replace('_', ' ')}" for name, value in counters.items() if value]
    return ", ".join(parts) or "no counters yet"


def _not_run(check_id: str, reason: str) -> CheckResult:
    return CheckResult(check_id, "not_run", reason, 0.0, {}, kind="not run")


class TargetSession:
    """One target's worker, opened (loaded, hello received) before any check runs.

    The CLI opens every target first, so that unloadable targets and precondition problems
    (a CUDA spec on a machine without a GPU) are found before any check runs; then it runs
    each session's checks with :meth:`certify`.
    """

    def __init__(self, target: str, options: SupervisorOptions) -> None:
        self.target = target
        self.options = options
        self.worker: _Worker | None = _Worker(target, options)
        self.specs: list[dict[str, Any]] = []
        self.load_error: str | None = None
        #: Why no worker can be had any more (a replacement failed to load the target).
        self.unrecoverable: str | None = None
        try:
            specs, error = _hello(self.worker, options, target)
        except KeyboardInterrupt:
            self.worker.kill()
            self.worker = None
            raise RunInterrupted([]) from None
        if specs is None:
            self.load_error = error
            self.worker = None
        else:
            self.specs = specs

    def certify(self, on_event: EventHandler | None = None) -> list[DecoderRun]:
        """Run the checks on every decoder of the target; :class:`RunInterrupted` on Ctrl-C."""
        from conformance.checks import CHECK_IDS

        if self.load_error is not None:
            raise RuntimeError(f"cannot certify {self.target}: {self.load_error}")
        emit: EventHandler = on_event or (lambda name, payload: None)
        options, target, specs = self.options, self.target, self.specs
        check_ids = list(options.check_ids) if options.check_ids is not None else list(CHECK_IDS)
        subset = options.check_ids is not None and set(check_ids) != set(CHECK_IDS)
        runs: list[DecoderRun] = []
        try:
            for spec_index, spec in enumerate(specs):
                results: list[CheckResult] = []
                notes: list[str] = []
                run = DecoderRun(
                    Certification(spec["name"], results, options.seed, options.profile,
                                  environment=dict(spec.get("environment") or {}), subset=subset),
                    target=target, spec=dict(spec.get("fields") or {}), supervised=True, notes=notes,
                )
                runs.append(run)
                emit("decoder_started", {"target": target, "name": spec["name"], "run": run})
                problem, run.decoder_config = self._build(spec_index)
                if problem is not None:
                    notes.append(problem)
                    for check_id in check_ids:
                        results.append(
                            _not_run(check_id, "not run: the decoder could not be built (see the note)")
                        )
                    emit("build_failed", {"target": target, "name": spec["name"], "problem": problem})
                    emit("decoder_finished", {"target": target, "run": run})
                    continue
                for check_id in check_ids:
                    result, text = self._check(spec_index, check_id, emit, notes)
                    results.append(result)
                    run.decoder_config = run.decoder_config or text
                    emit("check_finished", {"target": target, "name": spec["name"], "result": result})
                emit("decoder_finished", {"target": target, "run": run})
        except KeyboardInterrupt:
            # Wherever Ctrl-C lands (in a check, between two, while printing), stop the
            # worker and keep every result received; what has none is ``not_run``.
            self.close()
            for run in runs:
                done = {result.check_id for result in run.certification.results}
                run.certification.results += [
                    _not_run(check_id, "not run: the run was interrupted (Ctrl-C)")
                    for check_id in check_ids
                    if check_id not in done
                ]
                run.certification.interrupted = True
            for later in specs[len(runs) :]:
                runs.append(_unstarted(later, target, options, check_ids, subset))
            raise RunInterrupted(runs) from None
        return runs

    def _build(self, spec_index: int) -> tuple[str | None, str | None]:
        """Build the decoder once before its checks: ``(why it cannot be built, config)``."""
        from conformance.core.profiles import get_profile

        if self.worker is None:
            self.worker, problem = _replacement(self.target, self.options, self.specs)
            if self.worker is None:
                self.unrecoverable = problem
                return problem, None
        spec = self.specs[spec_index]
        timeout = float(spec.get("check_timeout_s") or get_profile(self.options.profile).check_timeout_s)
        worker = self.worker
        if not worker.send("build", spec_index=spec_index):
            worker.events.put({"msg": "_eof"})
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = worker.events.get(timeout=max(0.05, min(0.5, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() < deadline:
                    continue
                worker.dump_stacks()
                worker.kill()
                self.worker = None
                stacks = worker.stderr_excerpt(40)
                return (
                    f"the decoder could not be built: its factory did not return within {timeout:g} s"
                    + (f"\nIts stacks when it was stopped:\n{stacks}" if stacks else "")
                ), None
            if message["msg"] == "built":
                return message.get("error"), message.get("decoder_config")
            if message["msg"] in ("_eof", "_protocol_error"):
                code = worker.wait(5.0)
                worker.kill()
                self.worker = None
                tail = worker.stderr_excerpt()
                return (
                    f"the decoder could not be built: the worker process died while its factory ran: "
                    f"{describe_exit(code)}" + (f"\nLast lines of its stderr:\n{tail}" if tail else "")
                ), None

    def run_check(self, spec_index: int, check_id: str, on_event: EventHandler | None = None) -> CheckResult:
        """Run one check of one decoder (the pytest plugin's unit of work)."""
        if self.load_error is not None:
            raise RuntimeError(f"cannot certify {self.target}: {self.load_error}")
        result, _ = self._check(spec_index, check_id, on_event or (lambda name, payload: None), [])
        return result

    def _check(
        self, spec_index: int, check_id: str, emit: EventHandler, notes: list[str]
    ) -> tuple[CheckResult, str | None]:
        """One check in the current worker (started afresh if the last one died)."""
        if self.worker is None and self.unrecoverable is not None:
            return _not_run(check_id, f"not run: {self.unrecoverable}"), None
        if self.worker is None:
            self.worker, problem = _replacement(self.target, self.options, self.specs)
            if self.worker is None:
                self.unrecoverable = problem or "the worker could not be restarted"
                notes.append(self.unrecoverable)
                return _not_run(check_id, f"not run: {self.unrecoverable}"), None
            notes.append(f"a fresh worker process was started before {check_id}")
            emit("worker_replaced", {"target": self.target, "check_id": check_id})
        result, text, usable = _run_check(
            self.worker, self.target, spec_index, self.specs[spec_index], check_id, self.options, emit
        )
        if not usable:
            self.worker.kill()
            self.worker = None
        return result, text

    def close(self) -> None:
        """Let the worker go (``bye``; killed if it does not leave, or if closing is itself
        interrupted)."""
        if self.worker is not None:
            worker, self.worker = self.worker, None
            try:
                worker.bye()
            finally:
                if worker.alive():
                    worker.kill()


def _unstarted(
    spec: dict[str, Any], target: str, options: SupervisorOptions, check_ids: list[str], subset: bool
) -> DecoderRun:
    results = [_not_run(check_id, "not run: the run was interrupted (Ctrl-C)") for check_id in check_ids]
    cert = Certification(spec["name"], results, options.seed, options.profile,
                         environment=dict(spec.get("environment") or {}), subset=subset, interrupted=True)
    return DecoderRun(cert, target=target, spec=dict(spec.get("fields") or {}), supervised=True)


def certify_target(
    target: str,
    options: SupervisorOptions,
    on_event: EventHandler | None = None,
) -> TargetOutcome:
    """Certify every decoder ``target`` names, each check supervised in a worker process.

    Raises :class:`RunInterrupted` (with the partial runs) on Ctrl-C, after stopping the
    worker. A target that cannot be loaded -- it raises, exits or crashes while importing,
    or names no valid spec -- gives ``load_error`` and no runs.
    """
    session = TargetSession(target, options)
    outcome = TargetOutcome(target, load_error=session.load_error)
    if session.load_error is None:
        try:
            outcome.runs = session.certify(on_event)
        finally:
            session.close()
    return outcome


def _replacement(
    target: str, options: SupervisorOptions, specs: list[dict[str, Any]]
) -> tuple[_Worker | None, str | None]:
    """A fresh worker for the remaining checks, checked to load the same decoders."""
    worker = _Worker(target, options)
    try:
        fresh, error = _hello(worker, options, target)
    except BaseException:
        worker.kill()  # interrupted while it loaded: never leave it behind
        raise
    if fresh is None:
        return None, f"the replacement worker could not load the target: {error}"
    if [s["name"] for s in fresh] != [s["name"] for s in specs]:
        worker.bye()
        return None, (
            "a fresh worker loaded different decoders from the same target (its specs depend on "
            "something other than the target's code), so the remaining checks cannot be trusted"
        )
    return worker, None

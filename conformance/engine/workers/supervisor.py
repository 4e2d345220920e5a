"""The supervised executor: one target's checks run in a worker process, judged from outside.

One worker process per target, reused for every check of every decoder the target names
(the torch import, the target's import and any compilation are paid once), replaced only
after it dies or is killed. The parent never imports the target and never touches CUDA;
it sends names (target, spec index, check id, seeds), receives plain JSON, and keeps every
clock itself, so nothing a decoder does to its own process can decide the verdict:

- the worker *dies* (a signal, ``os._exit``, an abort, the OOM killer): the check in
  flight fails with kind ``crash``, saying the exit status or signal in words, the decoder
  call in progress and the tail of the worker's stderr (where ``faulthandler`` wrote the
  traceback); the next check runs in a fresh worker;
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

Messages are handled one handler per name (:class:`_CheckWatch`), the clocks apart from
them (:meth:`_CheckWatch.expired`), in one loop in the calling thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.core.outcomes import FailureKind
from conformance.core.profiles import get_profile
from conformance.core.replay import certify_command
from conformance.core.results import CheckResult, Status
from conformance.engine.stops import stopped_result, timeout_outcome
from conformance.engine.expectations import uncovered_note
from conformance.engine.plan import check_seed
from conformance.engine.workers.process import EOF_EVENT, PROTOCOL_ERROR_EVENT, WorkerProcess, describe_exit
from conformance.engine.workers.protocol import PROTOCOL_VERSION

__all__ = ["LoadError", "SupervisedExecutor", "SupervisorOptions"]

EventHandler = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class SupervisorOptions:
    """How a supervised run is made; every field has the default the CLI uses."""

    profile: str = "default"
    seed: int = 0
    #: Intra-op threads for the worker's torch (``None``: one thread for CPU-only targets,
    #: torch's default otherwise; see ``worker.choose_threads``).
    threads: int | None = None
    #: A call slower than this many times the longest call before it, with nothing else
    #: moving, is stuck (see the module docstring).
    stall_factor: float = 20.0
    #: A check still making progress gets up to this many times its time budget before
    #: it is called inconclusive.
    slow_factor: float = 4.0
    #: Seconds the worker may take to import torch and the target and say hello.
    load_timeout_s: float = 600.0
    #: Which GPU slot the worker takes for specs on plain ``"cuda"`` (device
    #: ``slot % device_count``); ``None`` leaves torch's default device.
    gpu_slot: int | None = None
    #: Extra environment variables for the worker.
    env: Mapping[str, str] = field(default_factory=dict)


class LoadError(Exception):
    """The target could not be loaded in a worker (it raised, exited or crashed while
    importing, or names no valid spec); the message says why."""


class SupervisedExecutor:
    """Runs one target's checks in a worker process (see the module docstring).

    :meth:`open` starts the worker and waits for its hello (``LoadError`` if it cannot
    load the target), :meth:`build` builds a decoder once before its checks,
    :meth:`run` runs one check, :meth:`close` lets the worker go.
    """

    supervised = True

    def __init__(self, target: str, options: SupervisorOptions) -> None:
        self.target = target
        self.options = options
        self.worker: WorkerProcess | None = None
        self.specs: list[dict[str, Any]] = []
        #: What the worker said of each decoder (its hello), once open.
        self.described: list[dict[str, Any]] = []
        self._starting: WorkerProcess | None = None
        #: Why no worker can be had any more (a replacement failed to load the target).
        self.unrecoverable: str | None = None
        #: Notes for the run's record (workers replaced), drained by the loop.
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker without waiting for it (:meth:`open` then waits for its hello),
        so that several workers import torch and the target at the same time."""
        if self.worker is None and self._starting is None:
            self._starting = self._spawn()

    def open(self) -> list[dict[str, Any]]:
        """Start the worker (unless :meth:`start` did) and return what it says of each
        decoder (its hello)."""
        worker, self._starting = self._starting or self._spawn(), None
        try:
            specs, error = self._hello(worker)
        except BaseException:
            worker.kill()  # interrupted while it loaded: never leave it behind
            raise
        if specs is None:
            raise LoadError(error or f"{self.target} could not be loaded")
        self.worker, self.specs = worker, specs
        self.described = specs
        return specs

    def close(self) -> None:
        """Let the worker go (``bye``; killed if it does not leave, or if closing is itself
        interrupted)."""
        if self._starting is not None:
            self._starting.kill()
            self._starting = None
        if self.worker is not None:
            worker, self.worker = self.worker, None
            try:
                worker.bye()
            finally:
                if worker.alive():
                    worker.kill()

    def kill(self) -> None:
        """Stop the worker now (the run was interrupted): no goodbye, no waiting."""
        for worker in (self.worker, self._starting):
            if worker is not None:
                worker.kill()
        self.worker = self._starting = None

    def _spawn(self) -> WorkerProcess:
        arguments: list[str] = []
        if self.options.threads is not None:
            arguments += ["--threads", str(self.options.threads)]
        if self.options.gpu_slot is not None:
            arguments += ["--gpu-slot", str(self.options.gpu_slot)]
        return WorkerProcess(self.target, arguments=arguments, env=self.options.env)

    def _hello(self, worker: WorkerProcess) -> tuple[list[dict[str, Any]] | None, str | None]:
        """Wait for the worker's hello: ``(specs, None)``, or ``(None, why it failed)``."""
        deadline = time.monotonic() + self.options.load_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                worker.dump_stacks()
                worker.kill()
                return None, (
                    f"loading {self.target} did not finish within {self.options.load_timeout_s:g} s "
                    f"(importing the target hung?). Last lines of its stderr:\n{worker.stderr_excerpt()}"
                )
            message = worker.next_event(min(remaining, 0.5))
            if message is None:
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
            if name in (EOF_EVENT, PROTOCOL_ERROR_EVENT):
                code = worker.wait(10.0)
                output = worker.stderr_excerpt() or worker.stdout.text()[-2000:]
                detail = f"\nLast lines of its output:\n{output}" if output.strip() else ""
                return None, (
                    f"the process loading {self.target} ended before it could report its decoders: "
                    f"{describe_exit(code)}. A target module must not exit or crash when imported."
                    + detail
                )

    def _ready_worker(self) -> tuple[WorkerProcess | None, str | None]:
        """The current worker, or a fresh one checked to load the same decoders."""
        if self.worker is not None:
            return self.worker, None
        if self.unrecoverable is not None:
            return None, self.unrecoverable
        worker = self._spawn()
        try:
            fresh, error = self._hello(worker)
        except BaseException:
            worker.kill()
            raise
        if fresh is None:
            self.unrecoverable = f"the replacement worker could not load the target: {error}"
            return None, self.unrecoverable
        if [s["name"] for s in fresh] != [s["name"] for s in self.specs]:
            worker.bye()
            self.unrecoverable = (
                "a fresh worker loaded different decoders from the same target (its specs depend on "
                "something other than the target's code), so the remaining checks cannot be trusted"
            )
            return None, self.unrecoverable
        self.worker = worker
        return worker, None

    def _lose_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
            self.worker = None

    # ------------------------------------------------------------------ build and run

    def _timeout(self, spec_index: int) -> float:
        spec = self.specs[spec_index]
        return float(spec.get("check_timeout_s") or get_profile(self.options.profile).check_timeout_s)

    def build(self, spec_index: int) -> tuple[str | None, str | None, str | None]:
        """Build the decoder once before its checks: ``(why it cannot be built, config,
        why checks rebuild it instead of copying)``."""
        worker, problem = self._ready_worker()
        if worker is None:
            return problem, None, None
        timeout = self._timeout(spec_index)
        worker.send("build", spec_index=spec_index)
        deadline = time.monotonic() + timeout
        while True:
            message = worker.next_event(max(0.05, min(0.5, deadline - time.monotonic())))
            if message is None:
                if time.monotonic() < deadline:
                    continue
                worker.dump_stacks()
                self._lose_worker()
                stacks = worker.stderr_excerpt(40)
                return (
                    f"the decoder could not be built: its factory did not return within {timeout:g} s"
                    + (f"\nIts stacks when it was stopped:\n{stacks}" if stacks else "")
                ), None, None
            if message["msg"] == "built":
                return message.get("error"), message.get("decoder_config"), message.get("rebuilds")
            if message["msg"] in (EOF_EVENT, PROTOCOL_ERROR_EVENT):
                code = worker.exit_code()
                self.worker = None
                tail = worker.stderr_excerpt()
                return (
                    f"the decoder could not be built: the worker process died while its factory ran: "
                    f"{describe_exit(code)}" + (f"\nLast lines of its stderr:\n{tail}" if tail else "")
                ), None, None

    def run(
        self, spec_index: int, check_id: str, emit: EventHandler, *, hold: bool = False
    ) -> tuple[CheckResult, str | None]:
        """Run one check in the worker (started afresh if the last one died):
        ``(result, decoder config text)``. With ``hold``, the worker keeps the check's
        early outputs until :meth:`finish`."""
        replaced = self.worker is None and self.unrecoverable is None
        worker, problem = self._ready_worker()
        if worker is None:
            return stopped_result(check_id, problem or "the worker could not be restarted"), None
        if replaced:
            self.notes.append(f"a fresh worker process was started before {check_id}")
            emit("worker_replaced", {"target": self.target, "check_id": check_id})
        spec = self.specs[spec_index]
        watch = _CheckWatch(self, worker, check_id, self._timeout(spec_index), spec.get("expected_failures") or {}, emit)
        worker.send(
            "run", spec_index=spec_index, check_id=check_id, profile=self.options.profile,
            run_seed=self.options.seed, target=self.target, hold=hold,
        )
        result, config, usable = watch.loop()
        if not usable:
            self._lose_worker()
        return result, config

    def finish(self, spec_index: int) -> list[dict[str, Any]]:
        """The outputs the worker kept for decoder ``spec_index`` that changed after their
        return (re-verified once each reached its minimum age); none if the worker is gone
        (a replacement keeps nothing of its predecessor's)."""
        worker = self.worker
        if worker is None:
            return []
        worker.send("finish", spec_index=spec_index)
        deadline = time.monotonic() + get_profile(self.options.profile).output_hold_s + self._timeout(spec_index)
        while time.monotonic() < deadline:
            message = worker.next_event(0.5)
            if message is None:
                continue
            if message["msg"] == "finished":
                return [dict(change) for change in message.get("changes") or [] if isinstance(change, dict)]
            if message["msg"] in (EOF_EVENT, PROTOCOL_ERROR_EVENT):
                self.worker = None
                self.notes.append(
                    f"the worker process died while re-verifying the outputs it kept: "
                    f"{describe_exit(worker.exit_code())}"
                )
                return []
        self._lose_worker()
        self.notes.append("the worker process did not finish re-verifying the outputs it kept in time")
        return []


@dataclass
class _CheckWatch:
    """The supervisor's view of the check in flight: one handler per message, clocks apart."""

    executor: SupervisedExecutor
    worker: WorkerProcess
    check_id: str
    timeout: float
    declared: Mapping[str, str]
    emit: EventHandler
    sent: float = field(default_factory=time.monotonic)
    started: float | None = None
    call: str | None = None
    call_started: float | None = None
    last_heard: float = field(default_factory=time.monotonic)
    last_progress: float = field(default_factory=time.monotonic)
    counters: dict[str, Any] = field(default_factory=dict)
    first_failure: str | None = None
    first_failure_is_decoder_error: bool = False

    def loop(self) -> tuple[CheckResult, str | None, bool]:
        """Dispatch the worker's messages and watch the clocks until the check ends:
        ``(result, decoder config text, worker still usable)``."""
        while True:
            message = self.worker.next_event(0.1)
            now = time.monotonic()
            if message is not None:
                self.last_heard = now
                handler = getattr(self, "on_" + message["msg"].lstrip("_"), None)
                if handler is None:  # the protocol admits it, but nothing handles it here
                    ended = self.on_protocol_error({"error": f"unexpected message {message['msg']!r} during a check"})
                else:
                    ended = handler(message)
                if ended is not None:
                    return ended
            ended = self.expired(now)
            if ended is not None:
                return ended

    # ------------------------------------------------------------------ message handlers

    def on_started(self, message: dict[str, Any]) -> None:
        self.started = self.last_progress = time.monotonic()
        self.emit("check_started", {"check_id": self.check_id})

    def on_call(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        self._finish_call(now)
        self.call, self.call_started, self.last_progress = message.get("call"), now, now

    def on_heartbeat(self, message: dict[str, Any]) -> None:
        now = time.monotonic()
        call = message.get("call")
        counters = message.get("evidence") or {}
        if call != self.call or counters != self.counters:
            self.last_progress = now
        if call != self.call:
            self._finish_call(now)
            if call is not None:
                self.call_started = now - float(message.get("call_elapsed_s") or 0.0)
        self.call, self.counters = call, counters
        self.emit("progress", {"check_id": self.check_id, "call": call, **counters})

    def on_first_failure(self, message: dict[str, Any]) -> None:
        if self.first_failure is None:
            self.first_failure = str(message.get("message"))
            self.first_failure_is_decoder_error = bool(message.get("decoder_error"))

    def on_result(self, message: dict[str, Any]) -> tuple[CheckResult, str | None, bool]:
        try:
            result = CheckResult.from_dict(message["result"])
        except (KeyError, ValueError) as err:
            return self.on_protocol_error({"error": f"malformed result: {err}"})
        return result, message.get("decoder_config"), True

    def on_eof(self, message: dict[str, Any]) -> tuple[CheckResult, str | None, bool]:
        code = self.worker.exit_code()
        where = (
            f" during the decoder call {self.call}" if self.call else
            (" before the check started (after the previous check ended)" if self.started is None else "")
        )
        what = f"the worker process running {self.check_id} died{where}: {describe_exit(code)}"
        return self._crashed(what)

    def on_protocol_error(self, message: dict[str, Any]) -> tuple[CheckResult, str | None, bool]:
        self.worker.kill()
        what = (
            f"the worker process running {self.check_id} broke the kit's message protocol "
            f"({message.get('error')}); something in the process wrote to the kit's pipe"
        )
        return self._crashed(what)

    def _crashed(self, what: str) -> tuple[CheckResult, str | None, bool]:
        found = f"\nBefore it died, the search had found: {self.first_failure}" if self.first_failure else ""
        tail = self.worker.stderr_excerpt()
        stderr = f"\nLast lines of the worker's stderr:\n{tail}" if tail else ""
        note = uncovered_note(self.declared, self.check_id)
        return self._ended(FailureKind.CRASH, what + note + found + stderr), None, False

    def _finish_call(self, now: float) -> None:
        if self.call is not None and self.call_started is not None:
            self.worker.longest_call_s = max(self.worker.longest_call_s, now - self.call_started)

    # ------------------------------------------------------------------ clocks

    def expired(self, now: float) -> tuple[CheckResult, str | None, bool] | None:
        """The check's end if one of the supervisor's clocks ran out, else ``None``."""
        options = self.executor.options
        stall_limit = max(self.timeout, options.stall_factor * self.worker.longest_call_s)
        running = now - (self.started or self.sent)
        silent = now - self.last_heard
        idle = now - self.last_progress
        if idle > stall_limit:
            self.worker.dump_stacks()
            self.worker.kill()
            if self.first_failure:
                return self._found_before_timeout()
            stacks = self.worker.stderr_excerpt(60)
            if silent > stall_limit:
                why = (
                    f"the worker process stopped responding for {silent:.0f} s (no heartbeat: "
                    "native code holding the GIL, or a deadlock)"
                )
            else:
                why = f"nothing progressed for {idle:.0f} s"
            where = f"; the decoder call in progress: {self.call}" if self.call else "; no decoder call was in progress"
            message = (
                f"{self.check_id} is stuck: {why}{where} (stall limit {stall_limit:.0f} s: the check's "
                f"{self.timeout:g} s timeout, or {options.stall_factor:g}x the longest earlier call, "
                f"{self.worker.longest_call_s:.2f} s). The worker was killed."
                f"{uncovered_note(self.declared, self.check_id)}"
                + (f"\nIts stacks when it was stopped:\n{stacks}" if stacks else "")
            )
            return self._ended(FailureKind.TIMEOUT, message), None, False
        if running > self.timeout and self.first_failure:
            self.worker.kill()
            return self._found_before_timeout()
        if running > options.slow_factor * self.timeout:
            self.worker.kill()
            message = (
                f"{self.check_id} ran out of time: after {running:.0f} s (its budget is {self.timeout:g} s, "
                f"allowed up to {options.slow_factor:g}x while work kept completing) it was still "
                f"making progress ({_progress_text(self.counters)}), with no sign of a fault. "
                "No verdict: the machine may be loaded or the decoder slow. Re-run on an idle "
                "machine, use fewer threads per worker (--threads), or raise "
                "DecoderSpec.check_timeout_s."
            )
            return self._ended(FailureKind.INCONCLUSIVE, message, status="inconclusive"), None, False
        return None

    def _found_before_timeout(self) -> tuple[CheckResult, str | None, bool]:
        outcome = timeout_outcome(
            self.check_id, self.timeout, self.call, self.first_failure, self.first_failure_is_decoder_error
        )
        return self._ended(outcome["kind"], outcome["message"]), None, False

    def _ended(self, kind: FailureKind, message: str, status: Status = "failed") -> CheckResult:
        options = self.executor.options
        evidence = dict(self.counters)
        evidence["seed"] = check_seed(options.seed, self.check_id)
        evidence["run_seed"] = options.seed
        replay = certify_command(self.executor.target, seed=options.seed, profile=options.profile,
                                 check_ids=[self.check_id])
        return CheckResult(
            self.check_id, status, message, time.monotonic() - (self.started or self.sent), evidence,
            kind=kind, replay=replay,
        )


def _progress_text(counters: dict[str, Any]) -> str:
    parts = [f"{value} {name.replace('_', ' ')}" for name, value in counters.items() if value]
    return ", ".join(parts) or "no counters yet"

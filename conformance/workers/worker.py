"""The worker process: loads one target, runs the checks it is sent, streams what happens.

Started by :mod:`conformance.workers.supervisor` as
``python -m conformance.workers.worker TARGET --commands FD --events FD [--threads N]``.
It imports nothing of the front ends, and it decides nothing: the supervisor owns every
clock and every verdict about the process. What it does:

1. Arms itself before the target is imported: SIGINT is ignored (the supervisor owns the
   terminal; a ``KeyboardInterrupt`` seen here was raised by the decoder), ``faulthandler``
   writes a traceback to stderr on a fatal signal and dumps every thread's stack on
   SIGUSR1 (the supervisor asks for that before killing a stuck worker: the dump is
   written from the signal handler, so it works while native code holds the GIL), and a
   watchdog exits the worker if its parent dies.
2. Loads the target (``MODULE:ATTR``); says ``hello`` with every spec's fields and the
   environment the checks will run in, or ``load_error`` naming what went wrong.
3. Runs each ``run`` command in its main thread with :func:`conformance.engine.runner.execute`'s
   parts, while a heartbeat thread reports the decoder call in progress and the evidence
   counters, so the supervisor can tell a slow check from a stuck one.
4. On ``bye`` (or when the command pipe closes) leaves with ``os._exit``: every result has
   been sent, and threads a decoder left behind must not abort the interpreter's shutdown.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the engine (and torch) load only after the worker is armed
    from conformance.engine.runner import ConfigRecorder

from conformance.workers.protocol import (
    PARENT_MESSAGES,
    PROTOCOL_VERSION,
    MessageReader,
    MessageWriter,
)

__all__ = ["main"]

#: Seconds between heartbeats while a check runs.
HEARTBEAT_S = 0.25


def _arm(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable(file=sys.stderr, all_threads=True)
    if hasattr(signal, "SIGUSR1"):
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)

    def watch_parent() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch_parent, name="conformance-parent-watch", daemon=True).start()


def _choose_threads(specs: list[Any], requested: int | None) -> int | None:
    """The intra-op thread count to set, or ``None`` to leave torch's default.

    ``requested`` wins. Otherwise a target whose specs all run on the CPU gets one thread:
    the kit drives small decoders on small inputs, where torch's intra-op threads buy
    little and fight any other load on the machine (on a loaded 2-core box the default
    certify took 2-10x longer with two threads than with one).
    """
    if requested is not None:
        return requested
    if specs and all(spec.torch_device.type == "cpu" for spec in specs):
        return 1
    return None


def _load(target: str, writer: MessageWriter, threads: int | None) -> list[Any] | None:
    from conformance.core.spec import TargetError, load_target

    try:
        specs = list(load_target(target))
        from conformance.engine.runner import validate_expected_failures

        for spec in specs:
            validate_expected_failures(spec)
    except SystemExit as err:
        writer.send(
            "load_error",
            message=f"importing {target} called sys.exit({err.code!r}); a target module must "
            "not exit the process (guard its script part with `if __name__ == '__main__':`)",
        )
        return None
    except (TargetError, ValueError) as err:
        writer.send("load_error", message=str(err))
        return None
    except BaseException as err:  # noqa: BLE001 - whatever the target does, say so
        import traceback

        writer.send(
            "load_error",
            message=f"loading {target} raised {type(err).__name__}: {err}\n"
            + "".join(traceback.format_exception(err)),
        )
        return None
    chosen = _choose_threads(specs, threads)
    import torch

    if chosen is not None:
        torch.set_num_threads(chosen)
    if (
        any(spec.torch_device.type == "cuda" for spec in specs)
        and os.environ.get("CONFORMANCE_WORKER_GPUS", "spread") != "off"
    ):
        from conformance.workers.devices import claim_worker_gpu

        claim_worker_gpu()  # under pytest-xdist: this xdist worker's GPU (no-op otherwise)
    return specs


def _hello(specs: list[Any], writer: MessageWriter) -> None:
    from conformance.report import spec_fields
    from conformance.engine.runner import environment

    described = []
    for spec in specs:
        try:
            env = environment(spec)
        except Exception as err:  # noqa: BLE001 - e.g. a CUDA spec on a machine without CUDA
            env = {"environment_error": f"{type(err).__name__}: {err}"}
        described.append(
            {
                "name": spec.name,
                "fields": spec_fields(spec),
                "environment": env,
                "device": str(spec.torch_device),
                "check_timeout_s": spec.check_timeout_s,
                "expected_failures": dict(spec.expected_failures),
            }
        )
    writer.send("hello", protocol=PROTOCOL_VERSION, pid=os.getpid(), specs=described)


def _build(specs: list[Any], recorders: dict[int, ConfigRecorder], index: int, writer: MessageWriter) -> None:
    from conformance.engine.runner import ConfigRecorder, build_problem

    if index not in recorders:
        recorders[index] = ConfigRecorder(specs[index].factory)
    problem = build_problem(recorders[index])
    writer.send("built", spec_index=index, error=problem, decoder_config=recorders[index].text)


def _run_one(
    specs: list[Any],
    recorders: dict[int, ConfigRecorder],
    command: dict[str, Any],
    writer: MessageWriter,
) -> None:
    from conformance.checks import get_check
    from conformance.core.profiles import get_profile
    from conformance.engine.runner import ConfigRecorder, finish, new_context, outcome_of

    index = int(command["spec_index"])
    check = get_check(str(command["check_id"]))
    if index not in recorders:
        recorders[index] = ConfigRecorder(specs[index].factory)
    spec = replace(specs[index], factory=recorders[index])
    ctx = new_context(spec, check, get_profile(str(command["profile"])), int(command["run_seed"]),
                      command.get("target"))
    note_failure = ctx.note_failure

    def note_and_report(err: BaseException) -> None:
        first = ctx.first_failure is None
        note_failure(err)
        if first and ctx.first_failure is not None:
            writer.send(
                "first_failure",
                check_id=check.id,
                message=ctx.first_failure,
                decoder_error=ctx.first_failure_is_decoder_error,
            )

    ctx.note_failure = note_and_report  # type: ignore[method-assign]
    ctx.call_listener = lambda what: writer.send("call", check_id=check.id, call=what)
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            call = ctx._current_call  # (what, monotonic start) or None
            evidence = ctx.evidence
            writer.send(
                "heartbeat",
                check_id=check.id,
                call=None if call is None else call[0],
                call_elapsed_s=None if call is None else time.monotonic() - call[1],
                evidence={
                    "examples": evidence.examples,
                    "decoder_calls": evidence.decoder_calls,
                    "mapper_queries": evidence.mapper_queries,
                    "comparisons": evidence.comparisons,
                },
            )

    writer.send("started", check_id=check.id)
    beat = threading.Thread(target=heartbeat, name="conformance-heartbeat", daemon=True)
    beat.start()
    started = time.perf_counter()
    try:
        status, message, kind = outcome_of(check, ctx)
        result = finish(check, ctx, status, message, kind, time.perf_counter() - started)
    finally:
        done.set()
        beat.join()
    writer.send(
        "result",
        check_id=check.id,
        result=asdict(result),
        decoder_config=recorders[index].text,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conformance.workers.worker")
    parser.add_argument("target")
    parser.add_argument("--commands", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    _arm(args.parent)
    _extend_path(os.environ.get("CONFORMANCE_SYS_PATH"))
    writer = MessageWriter(args.events)
    reader = MessageReader(args.commands, PARENT_MESSAGES)
    specs = _load(args.target, writer, args.threads)
    if specs is None:
        _leave(0)
    _hello(specs, writer)
    recorders: dict[int, ConfigRecorder] = {}
    while True:
        command = reader.receive()
        if command is None or command["msg"] == "bye":
            _leave(0)
        if command["msg"] == "build":
            _build(specs, recorders, int(command["spec_index"]), writer)
            continue
        try:
            _run_one(specs, recorders, command, writer)
        except BaseException as err:  # noqa: BLE001 - a kit bug: report it as the check's error
            import traceback

            writer.send(
                "result",
                check_id=str(command.get("check_id")),
                result={
                    "check_id": str(command.get("check_id")),
                    "status": "error",
                    "message": "internal error in the conformance kit's worker "
                    f"({type(err).__name__}: {err}); please report it with this traceback:\n"
                    + "".join(traceback.format_exception(err)),
                    "duration_s": 0.0,
                    "evidence": {},
                    "kind": None,
                },
                decoder_config=None,
            )


def _extend_path(serialized: str | None) -> None:
    """Put the parent's ``sys.path`` entries in front, so the target resolves as it would
    have in the parent (the parent's cwd, pytest's rootdir, a user's own additions)."""
    if not serialized:
        return
    import json

    try:
        entries = [str(entry) for entry in json.loads(serialized)]
    except (ValueError, TypeError):
        return
    sys.path[:0] = [entry for entry in entries if entry not in sys.path]


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)


if __name__ == "__main__":
    main()

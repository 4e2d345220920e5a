"""The worker's service: load the target, say hello, build decoders and run the checks it is sent.

Imported by :mod:`conformance.engine.workers.worker` only once the process is armed (so
torch and the target load after ``faulthandler`` and the parent watchdog are in place).
Each ``run`` command runs one check in the main thread through
:func:`conformance.engine.execute.execute`, while a heartbeat thread reports the decoder
call in progress and the check's counters, so the supervisor can tell a slow check from a
stuck one.
"""

from __future__ import annotations

import os
import sys
import threading
from time import monotonic as _monotonic  # the real clocks, whatever patches ``time`` later
import traceback
from dataclasses import replace
from typing import Any, NoReturn

import torch

from conformance.checks.suite import get_check, validate_expected_failures
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.holding import OutputHold, late_changes
from conformance.core.profiles import get_profile
from conformance.core.results import CheckResult
from conformance.core.targets import TargetError, load_target
from conformance.engine.decoders import DecoderSource, source_for
from conformance.engine.environment import describe
from conformance.engine.execute import execute
from conformance.engine.workers.devices import use_gpu_slot
from conformance.engine.workers.protocol import PROTOCOL_VERSION, MessageReader, MessageWriter

__all__ = ["choose_threads", "leave", "serve"]

#: Seconds between heartbeats while a check runs.
HEARTBEAT_S = 0.25


def choose_threads(specs: list[Any], requested: int | None) -> int | None:
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


def _load(target: str, writer: MessageWriter) -> list[Any] | None:
    try:
        specs = list(load_target(target))
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
        writer.send(
            "load_error",
            message=f"loading {target} raised {type(err).__name__}: {err}\n"
            + "".join(traceback.format_exception(err)),
        )
        return None
    return specs


def _settle(specs: list[Any], threads: int | None, gpu_slot: int | None) -> None:
    """Threads and device, as the supervisor assigned them, before any decoder is built."""
    chosen = choose_threads(specs, threads)
    if chosen is not None:
        torch.set_num_threads(chosen)
    if gpu_slot is not None and any(spec.torch_device.type == "cuda" for spec in specs):
        use_gpu_slot(gpu_slot)


def _hello(specs: list[Any], writer: MessageWriter) -> None:
    writer.send("hello", protocol=PROTOCOL_VERSION, pid=os.getpid(), specs=[describe(spec) for spec in specs])


def _build(specs: list[Any], sources: dict[int, DecoderSource], index: int, writer: MessageWriter) -> None:
    source = sources.setdefault(index, source_for(specs[index]))
    problem = source.check_build()
    writer.send("built", spec_index=index, error=problem, decoder_config=source.config_text,
                rebuilds=source.rebuilds)


def _run_one(
    specs: list[Any],
    sources: dict[int, DecoderSource],
    holds: dict[int, OutputHold],
    command: dict[str, Any],
    writer: MessageWriter,
) -> None:
    index = int(command["spec_index"])
    check = get_check(str(command["check_id"]))
    source = sources.setdefault(index, source_for(specs[index]))
    control = RunControl()
    if command.get("hold"):
        control.hold = holds.setdefault(index, OutputHold())
    control.call_listener = lambda what: writer.send("call", check_id=check.id, call=what)
    control.failure_listener = lambda message, decoder_error: writer.send(
        "first_failure", check_id=check.id, message=message, decoder_error=decoder_error
    )
    done = threading.Event()

    def heartbeat() -> None:
        while not done.wait(HEARTBEAT_S):
            call = control.in_progress()
            writer.send(
                "heartbeat",
                check_id=check.id,
                call=None if call is None else call[0],
                call_elapsed_s=None if call is None else _monotonic() - call[1],
                evidence=control.progress(),
            )

    writer.send("started", check_id=check.id)
    beat = threading.Thread(target=heartbeat, name="conformance-heartbeat", daemon=True)
    beat.start()
    try:
        result = execute(
            replace(specs[index], factory=source), check, get_profile(str(command["profile"])),
            int(command["run_seed"]), target=command.get("target"), control=control,
        )
    finally:
        done.set()
        beat.join()
    writer.send("result", check_id=check.id, result=result.to_dict(), decoder_config=source.config_text)


def serve(target: str, writer: MessageWriter, reader: MessageReader, *, threads: int | None,
          gpu_slot: int | None) -> NoReturn:
    """Load ``target``, say hello, then answer commands until ``bye`` (or the pipe closes)."""
    specs = _load(target, writer)
    if specs is None:
        leave(0)
    _settle(specs, threads, gpu_slot)
    _hello(specs, writer)
    sources: dict[int, DecoderSource] = {}
    holds: dict[int, OutputHold] = {}
    while True:
        command = reader.receive()
        if command is None or command["msg"] == "bye":
            leave(0)
        if command["msg"] == "build":
            _build(specs, sources, int(command["spec_index"]), writer)
            continue
        if command["msg"] == "finish":
            index = int(command["spec_index"])
            hold = holds.pop(index, None)
            time_axis = specs[index].resolved_output_layout.index("T")
            writer.send("finished", spec_index=index,
                        changes=[] if hold is None else late_changes(hold, time_axis=time_axis))
            continue
        try:
            _run_one(specs, sources, holds, command, writer)
        except BaseException as err:  # noqa: BLE001 - a kit bug: report it as the check's error
            writer.send(
                "result",
                check_id=str(command.get("check_id")),
                result=CheckResult(
                    str(command.get("check_id")),
                    "error",
                    "internal error in the conformance kit's worker "
                    f"({type(err).__name__}: {err}); please report it with this traceback:\n"
                    + "".join(traceback.format_exception(err)),
                    0.0,
                ).to_dict(),
                decoder_config=None,
            )


def leave(code: int) -> NoReturn:
    """Leave at once with ``os._exit``: every result was sent, and threads a decoder left
    behind must not hang or abort the interpreter's shutdown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(code)

"""The worker process: loads one target, runs the checks it is sent, streams what happens.

Started by :mod:`conformance.engine.workers.supervisor` as
``python -m conformance.engine.workers.worker TARGET --commands FD --events FD --parent PID
[--threads N] [--gpu-slot N]``.
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
3. Runs each ``run`` command in its main thread with :func:`conformance.engine.execute.execute`,
   while a heartbeat thread reports the decoder call in progress and the evidence
   counters, so the supervisor can tell a slow check from a stuck one.
4. On ``bye`` (or when the command pipe closes) leaves with ``os._exit``: every result has
   been sent, and threads a decoder left behind must not abort the interpreter's shutdown.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import signal
import sys
import threading
import time

from conformance.engine.workers.protocol import PARENT_MESSAGES, MessageReader, MessageWriter

__all__ = ["main"]


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m conformance.engine.workers.worker")
    parser.add_argument("target")
    parser.add_argument("--commands", type=int, required=True)
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--gpu-slot", type=int, default=None)
    args = parser.parse_args(argv)
    _arm(args.parent)
    _extend_path(os.environ.get("CONFORMANCE_SYS_PATH"))
    writer = MessageWriter(args.events)
    reader = MessageReader(args.commands, PARENT_MESSAGES)
    # Imported only now, armed: torch, the kit's engine and the target load after
    # faulthandler and the parent watchdog are in place.
    from conformance.engine.workers.serve import serve

    serve(args.target, writer, reader, threads=args.threads, gpu_slot=args.gpu_slot)


def _extend_path(serialized: str | None) -> None:
    """Put the parent's ``sys.path`` entries in front, so the target resolves as it would
    have in the parent (the parent's cwd, pytest's rootdir, a user's own additions)."""
    if not serialized:
        return
    try:
        entries = [str(entry) for entry in json.loads(serialized)]
    except (ValueError, TypeError):
        return
    sys.path[:0] = [entry for entry in entries if entry not in sys.path]


if __name__ == "__main__":
    main()

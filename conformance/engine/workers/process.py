"""One worker process as the supervisor holds it: its pipes, its event queue, its output tails.

The worker is started with ``python -m conformance.engine.workers.worker`` in a session
of its own, so a Ctrl-C at the terminal or a SIGTERM sent to the command's process group
reaches the supervisor only: the supervisor decides, stops its workers itself and writes
the report. Its events arrive on a private pipe, read by a thread that only enqueues
them (decisions happen in the supervisor's loop); its stdout and stderr belong to the
decoder and are kept as bounded tails.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.engine.workers.capture import Tail
from conformance.engine.workers.forkserver import ForkedProcess, fork_server
from conformance.engine.workers.protocol import WORKER_MESSAGES, MessageReader, MessageWriter, ProtocolError

__all__ = ["WorkerProcess", "describe_exit"]

#: Event names the reading thread adds for what is not a message of the worker.
EOF_EVENT = "_eof"
PROTOCOL_ERROR_EVENT = "_protocol_error"


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


class WorkerProcess:
    """A started worker: send it commands, read its events from :attr:`events`."""

    def __init__(self, target: str, *, arguments: Sequence[str] = (), env: Mapping[str, str] | None = None) -> None:
        cmd_read, cmd_write = os.pipe()
        evt_read, evt_write = os.pipe()
        environment = {**os.environ, **(env or {})}
        # The worker imports the target the way the parent would have: same sys.path
        # (pytest's rootdir insertion, a caller's own additions), same working directory.
        environment["CONFORMANCE_SYS_PATH"] = json.dumps([os.getcwd() if p == "" else p for p in sys.path])
        worker_argv = [target, *arguments]
        forked = self._fork(worker_argv, environment, cmd_read, evt_write)
        if forked is not None:
            self.process: subprocess.Popen[bytes] | ForkedProcess = forked[0]
            stdout_fd, stderr_fd = forked[1], forked[2]
        else:
            popen = subprocess.Popen(
                [sys.executable, "-m", "conformance.engine.workers.worker", target,
                 "--commands", str(cmd_read), "--events", str(evt_write), "--parent", str(os.getpid()),
                 *arguments],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(cmd_read, evt_write),
                env=environment,
                close_fds=True,
                start_new_session=True,
            )
            assert popen.stdout is not None and popen.stderr is not None
            stdout_fd, stderr_fd = os.dup(popen.stdout.fileno()), os.dup(popen.stderr.fileno())
            popen.stdout.close()
            popen.stderr.close()
            self.process = popen
        #: Whether the worker was forked from the fork server (else started the plain way).
        self.forked = forked is not None
        os.close(cmd_read)
        os.close(evt_write)
        self.stdout = Tail(stdout_fd, name="stdout")
        self.stderr = Tail(stderr_fd, name="stderr")
        self._writer = MessageWriter(cmd_write)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = MessageReader(evt_read, WORKER_MESSAGES)
        threading.Thread(target=self._pump, name="conformance-events", daemon=True).start()
        #: The longest decoder call this worker has completed, in seconds.
        self.longest_call_s = 0.0
        self.started = time.monotonic()

    @staticmethod
    def _fork(
        argv: list[str], environment: dict[str, str], cmd_read: int, evt_write: int
    ) -> tuple[ForkedProcess, int, int] | None:
        """Fork the worker from the fork server: ``(process, stdout fd, stderr fd)``, or
        ``None`` where the server is not used or cannot serve (then it starts plainly)."""
        server = fork_server(environment)
        if server is None:
            return None
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            child = server.spawn(argv, environment=environment, fds=[cmd_read, evt_write, out_write, err_write])
        finally:
            os.close(out_write)
            os.close(err_write)
        if child is None:
            os.close(out_read)
            os.close(err_read)
            return None
        return child, out_read, err_read

    def _pump(self) -> None:
        while True:
            try:
                message = self._reader.receive()
            except ProtocolError as err:
                self.events.put({"msg": PROTOCOL_ERROR_EVENT, "error": str(err)})
                break
            except OSError:
                message = None
            if message is None:
                break
            self.events.put(message)
        self._reader.close()
        self.events.put({"msg": EOF_EVENT})

    def next_event(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or ``None`` if none arrives within ``timeout`` seconds."""
        try:
            return self.events.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def send(self, name: str, **payload: Any) -> bool:
        """Send a command; ``False`` if the worker is gone (an end-of-file event follows)."""
        try:
            self._writer.send(name, **payload)
            return True
        except OSError:
            self.events.put({"msg": EOF_EVENT})
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

    def exit_code(self) -> int | None:
        """Wait briefly for the exit status of a worker whose pipe closed (kill it if needed)."""
        code = self.wait(5.0)
        if code is None:
            self.kill()
            code = self.process.returncode
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

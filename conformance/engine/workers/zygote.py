"""The fork server's process: imports torch and the kit once, then forks a worker per request.

Started by :class:`conformance.engine.workers.forkserver.ForkServer` as
``python -m conformance.engine.workers.zygote SOCKET_FD``. Starting a worker the plain way
costs a Python start and a torch import (1.5 s of CPU on a small box, paid again after
every crash of a decoder); a fork of a process that has already imported them costs
milliseconds. The decoder's target is *not* imported here: a target may start threads or
initialise CUDA when imported, after which forking is unsafe; each forked worker imports
it, exactly as a plainly started worker does.

The process runs no Python thread but its main one (a thread holding the GIL or an
import lock at the fork would leave it held forever in the child): it refuses to serve,
and the supervisor falls back to plain starts, if importing torch and the kit started
one. Native thread pools started by those imports (numpy's BLAS) are left alone: they
are built to survive a fork, as PyTorch's own data-loader workers rely on. It waits with ``select`` on its
socket and on a wake-up pipe written by ``SIGCHLD``; it reaps its children and reports
each exit status, since the supervisor is not their parent. When the supervisor goes
away (its end of the socket closes), it leaves; its workers notice their parent is gone
and leave too.

Messages are JSON objects, one per ``SOCK_SEQPACKET`` packet. To the supervisor:
``{"ready": true}`` or ``{"unsafe": why}`` once; ``{"id": n, "pid": p}`` for request ``n``;
``{"exit": p, "code": c}`` (``c`` as ``subprocess.Popen.returncode``: negative for a
signal). From the supervisor: ``{"id": n, "argv": [...], "env": {...}, "cwd": ...}`` with
four file descriptors attached: the worker's command pipe (read end), event pipe (write
end), stdout and stderr (write ends).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import threading
import traceback
from typing import Any, NoReturn

__all__ = ["main"]

#: Descriptors a spawn request carries, in order.
REQUEST_FDS = 4


def _send(sock: socket.socket, **message: Any) -> None:
    sock.send(json.dumps(message).encode())


def _reap(sock: socket.socket) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send(sock, exit=pid, code=os.waitstatus_to_exitcode(status))


def _become_worker(request: dict[str, Any], fds: list[int], server: socket.socket, closing: list[int]) -> NoReturn:
    """In the forked child: take the worker's descriptors and environment, run the worker."""
    code = 1
    try:
        os.setsid()  # a session of its own, as a plainly started worker has
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        server.close()
        for fd in closing:
            os.close(fd)
        commands, events, stdout, stderr = fds
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        argv = [*request["argv"], "--commands", str(commands), "--events", str(events), "--parent", str(os.getppid())]
        sys.argv = ["-m", *argv]
        # Already loaded by the server, so this costs nothing.
        from conformance.engine.workers.worker import main as worker_main

        worker_main(argv)
        code = 0
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happened, this process must not return to the server loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(args[0]))
    # The worker's own path handling, applied once here so the kit and torch resolve as
    # they will in every worker.
    from conformance.engine.workers.worker import _extend_path

    _extend_path(os.environ.get("CONFORMANCE_SYS_PATH"))
    # The point of this process: torch and the kit's worker side, imported once for every
    # worker it forks.
    import conformance.engine.workers.serve  # noqa: F401

    if threading.active_count() != 1:
        _send(sock, unsafe=f"importing torch and the kit started {threading.active_count() - 1} Python thread(s)")
        return
    _send(sock, ready=True)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            ready, _, _ = select.select([sock, wake_read], [], [])
        except InterruptedError:  # pragma: no cover - select retries by itself since 3.5
            continue
        if wake_read in ready:
            try:
                while os.read(wake_read, 512):
                    pass
            except BlockingIOError:
                pass
        if sock in ready:
            try:
                data, fds, _, _ = socket.recv_fds(sock, 1 << 20, REQUEST_FDS)
            except OSError:
                data, fds = b"", []
            if not data:
                break  # the supervisor is gone
            request = json.loads(data)
            if len(fds) != REQUEST_FDS:
                for fd in fds:
                    os.close(fd)
                _send(sock, id=request.get("id"), error=f"expected {REQUEST_FDS} descriptors, got {len(fds)}")
                continue
            pid = os.fork()
            if pid == 0:
                _become_worker(request, fds, sock, [wake_read, wake_write])
            for fd in fds:
                os.close(fd)
            _send(sock, id=request["id"], pid=pid)
        _reap(sock)
    os._exit(0)


if __name__ == "__main__":
    main()

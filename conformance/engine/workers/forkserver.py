"""Workers forked from a process that has already imported torch: cheap starts and restarts.

A plainly started worker pays a Python start and a torch import before it can load the
target: about 1.5 s of CPU on a small box, for every lane of a run and again after every
crash of a decoder under test. The fork server (:mod:`.zygote`) pays that once per
supervising process and then forks each worker in milliseconds; the worker imports the
target and runs exactly as a plainly started one (its own session, its own pipes, the
same environment, arguments and ``sys.path``).

Where it is used: on Linux, unless ``CONFORMANCE_FORK_SERVER=0``. One server serves a
supervising process for as long as its environment, working directory and ``sys.path``
stay the same (a change starts a new server, since the server imported torch under the
old ones). Whenever the server cannot serve -- it failed to start, reported that forking
is unsafe (importing torch started a thread), or died -- workers start the plain way,
and the run goes on unchanged.

This module is torch-free: the supervising process never imports torch.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ForkServer", "ForkedProcess", "fork_server"]

#: Set to ``0`` to start every worker the plain way.
ENVIRONMENT_SWITCH = "CONFORMANCE_FORK_SERVER"
#: Seconds the server may take to import torch and say it is ready.
READY_TIMEOUT_S = 120.0
#: Seconds a fork may take to be acknowledged.
SPAWN_TIMEOUT_S = 10.0


class ForkedProcess:
    """A worker forked by the server, with the part of ``subprocess.Popen``'s interface the
    supervisor uses (its exit status is reported by the server, which is its parent)."""

    def __init__(self, server: ForkServer, pid: int) -> None:
        self.server = server
        self.pid = pid
        self.returncode: int | None = None
        self._exited = threading.Event()

    def _set_exit(self, code: int) -> None:
        self.returncode = code
        self._exited.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._exited.wait(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    """One running :mod:`.zygote` process and the workers it forked."""

    def __init__(self, environment: Mapping[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conformance.engine.workers.zygote", str(theirs.fileno())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env=dict(environment),
            close_fds=True,
            start_new_session=True,
        )
        theirs.close()
        self.sock = ours
        #: Why the server cannot serve (``None`` while it can, or before it said so).
        self.problem: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._replied = threading.Condition()
        self._children: dict[int, ForkedProcess] = {}
        self._early_exits: dict[int, int] = {}
        self._retiring = False
        threading.Thread(target=self._read, name="conformance-fork-server", daemon=True).start()

    # ------------------------------------------------------------------ reading

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            if "ready" in message:
                self._ready.set()
            elif "unsafe" in message:
                self.problem = str(message["unsafe"])
                self._ready.set()
            elif "exit" in message:
                self._exited(int(message["exit"]), int(message["code"]))
            elif "id" in message:
                with self._replied:
                    self._replies[int(message["id"])] = message
                    self._replied.notify_all()
        self._gone()

    def _exited(self, pid: int, code: int) -> None:
        with self._replied:
            child = self._children.pop(pid, None)
            if child is None:  # the exit overtook the reply that names the pid
                self._early_exits[pid] = code
            last = self._retiring and not self._children
        if child is not None:
            child._set_exit(code)
        if last:
            threading.Thread(target=self.close, name="conformance-fork-server-close", daemon=True).start()

    def _gone(self) -> None:
        """The server ended (or its socket broke): no more forks; its living workers are
        killed, since nobody is left to report how they end (they read as killed)."""
        self.problem = self.problem or "the fork server ended"
        self._ready.set()
        with self._replied:
            children, self._children = dict(self._children), {}
            self._replied.notify_all()
        for child in children.values():
            child.send_signal(signal.SIGKILL)
            child._set_exit(-9)

    # ------------------------------------------------------------------ serving

    def usable(self) -> bool:
        """Wait (once) until the server is ready; whether it can fork workers."""
        if not self._ready.wait(READY_TIMEOUT_S):
            self.problem = f"the fork server was not ready within {READY_TIMEOUT_S:g} s"
        return self.problem is None

    def spawn(
        self, argv: Sequence[str], *, environment: Mapping[str, str], fds: Sequence[int]
    ) -> ForkedProcess | None:
        """Fork a worker running ``python -m conformance.engine.workers.worker`` with ``argv``
        (without the descriptor options, which ``fds`` supply); ``None`` if the server
        cannot (the caller starts the worker the plain way)."""
        if not self.usable():
            return None
        with self._lock:
            self._next_id += 1
            request_id = self._next_id
            request = {"id": request_id, "argv": list(argv), "env": dict(environment), "cwd": os.getcwd()}
            try:
                socket.send_fds(self.sock, [json.dumps(request).encode()], list(fds))
            except OSError as err:
                self.problem = f"the fork server could not be reached: {err}"
                return None
            with self._replied:
                if not self._replied.wait_for(
                    lambda: request_id in self._replies or self.problem is not None, SPAWN_TIMEOUT_S
                ):
                    self.problem = f"the fork server did not answer within {SPAWN_TIMEOUT_S:g} s"
                reply = self._replies.pop(request_id, None)
                if reply is None or "pid" not in reply:
                    self.problem = self.problem or str((reply or {}).get("error", "no answer"))
                    return None
                child = ForkedProcess(self, int(reply["pid"]))
                early = self._early_exits.pop(child.pid, None)
                if early is None:
                    self._children[child.pid] = child
            if early is not None:
                child._set_exit(early)
            return child

    def retire(self) -> None:
        """Serve no new worker; close once the workers it forked have ended (closing now
        would end them: a worker leaves when its parent, the server, does)."""
        with self._replied:
            self._retiring = True
            idle = not self._children
        if idle:
            self.close()

    def close(self) -> None:
        """Stop serving: the server leaves when its socket closes. (Shut down first: a
        close alone would not end the reading thread's pending receive, and the server
        would not see the end of the socket until it did.)"""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            self.process.kill()


_servers: dict[str, ForkServer] = {}
_servers_lock = threading.Lock()


def _key(environment: Mapping[str, str]) -> str:
    return json.dumps([sys.executable, os.getcwd(), sorted(environment.items())])


def fork_server(environment: Mapping[str, str]) -> ForkServer | None:
    """The fork server for workers started with ``environment`` (started on first use), or
    ``None`` where forking is not used (not Linux, switched off, or this server failed)."""
    if not sys.platform.startswith("linux") or os.environ.get(ENVIRONMENT_SWITCH, "1") == "0":
        return None
    key = _key(environment)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            for stale in _servers.values():
                stale.retire()
            _servers.clear()
            try:
                server = ForkServer(environment)
            except OSError:
                return None
            _servers[key] = server
    return server if server.usable() else None


@atexit.register
def _close_servers() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.close()
        _servers.clear()

"""The messages between a supervisor and its worker: names, payloads, framing, version.

Both directions carry one JSON object per line, ``{"msg": NAME, ...payload}``, over pipes
of their own (never the worker's stdout or stderr, which belong to the decoder and are
only kept as bounded tails). Plain JSON, so nothing on either side ever unpickles what the
other sent.

Parent to worker:

- ``build``: ``spec_index`` -- build the decoder once with its factory, before its checks,
  so that a factory that cannot build is one message instead of one failure per check.
- ``run``: ``spec_index``, ``check_id``, ``profile``, ``run_seed``, ``target``, ``hold`` --
  run one check; with ``hold``, the check's early outputs are kept for ``finish``.
- ``finish``: ``spec_index`` -- re-verify the outputs kept for that decoder (once each has
  reached its minimum age) and let them go.
- ``bye``: finish; the worker exits at once (``os._exit``, so that threads a decoder left
  behind cannot abort the interpreter at shutdown; results were already sent).

Worker to parent:

- ``hello``: ``protocol``, ``pid``, ``specs`` (each: ``name``, ``fields`` JSON-ready,
  ``environment``, ``device``, ``check_timeout_s``, ``expected_failures``), or instead
- ``load_error``: ``message`` -- the target could not be loaded (the worker then exits).
- ``built``: ``spec_index``, ``error`` (null, or what the factory raised), ``decoder_config``,
  ``rebuilds`` (null when checks get isolated copies of this build, else why they rebuild).
- ``started``: ``check_id`` -- the check began.
- ``call``: ``check_id``, ``call`` -- a decoder call is about to be made (so a process that
  dies inside it is blamed on that call: check, phase and AR index are in its text).
- ``heartbeat``: ``check_id``, ``call`` (the decoder call in progress or null),
  ``call_elapsed_s``, ``evidence`` (counters so far) -- sent a few times a second while a
  check runs, from a thread; when it stops arriving, the worker is stuck holding the GIL.
- ``first_failure``: ``check_id``, ``message``, ``decoder_error`` -- a search found a bug;
  if the worker dies or runs out of time while shrinking it, the bug is still reported.
- ``result``: ``check_id``, ``result`` (a CheckResult as a dict), ``decoder_config``.
- ``finished``: ``spec_index``, ``changes`` (each: ``check_id``, ``what``, ``age_s``,
  ``changed``) -- the kept outputs that changed after they were returned.
"""

from __future__ import annotations

import json
import math
import os
import threading
from typing import Any

__all__ = [
    "PROTOCOL_VERSION",
    "MessageReader",
    "MessageWriter",
    "ProtocolError",
    "decode",
    "encode",
]

#: Bumped when a message changes shape; parent and worker must agree (they are always the
#: same installed kit, but a stale worker module on ``sys.path`` would not be).
PROTOCOL_VERSION = 2

#: Largest message accepted (a result carries a failure message and evidence; 8 MiB is
#: generous and keeps a runaway message from exhausting the parent's memory).
MAX_MESSAGE_BYTES = 8 * 1024 * 1024

PARENT_MESSAGES = frozenset({"build", "run", "finish", "bye"})
WORKER_MESSAGES = frozenset(
    {"hello", "load_error", "built", "started", "call", "heartbeat", "first_failure", "result", "finished"}
)


class ProtocolError(RuntimeError):
    """A message that is not valid JSON, too large, or has an unknown name."""


def _plain(value: Any) -> Any:
    """Payload values as strict JSON: non-finite floats as strings, unknown objects as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value that cannot even be printed
        return f"<unprintable {type(value).__name__}>"


def encode(name: str, **payload: Any) -> bytes:
    """One message as a line of UTF-8 JSON (lone surrogates escaped, never an error)."""
    text = json.dumps({"msg": name, **_plain(payload)}, ensure_ascii=True, allow_nan=False)
    return text.encode("ascii") + b"\n"


def decode(line: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """Parse one line; ``ProtocolError`` unless it is a JSON object with an allowed ``msg``."""
    if len(line) > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {len(line)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        message = json.loads(line)
    except ValueError as err:
        raise ProtocolError(f"not a JSON message: {line[:200]!r} ({err})") from None
    if not isinstance(message, dict) or message.get("msg") not in allowed:
        raise ProtocolError(f"unknown message: {line[:200]!r}")
    return message


class MessageWriter:
    """Writes messages to a pipe file descriptor; safe to call from several threads."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._lock = threading.Lock()

    def send(self, name: str, **payload: Any) -> None:
        data = encode(name, **payload)
        with self._lock:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        with self._lock:
            try:
                os.close(self._fd)
            except OSError:
                pass


class MessageReader:
    """Reads messages from a pipe file descriptor, one per line; ``None`` at end of file."""

    def __init__(self, fd: int, allowed: frozenset[str]) -> None:
        self._file = os.fdopen(fd, "rb", buffering=0)
        self._allowed = allowed
        self._buffer = b""

    def receive(self) -> dict[str, Any] | None:
        while b"\n" not in self._buffer:
            if len(self._buffer) > MAX_MESSAGE_BYTES:
                raise ProtocolError(f"message exceeds {MAX_MESSAGE_BYTES} bytes")
            chunk = self._file.read(65536)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return decode(line, self._allowed)

    def close(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass

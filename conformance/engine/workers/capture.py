"""Bounded tails of a worker's stdout and stderr.

A decoder may print at import, print on every call, or print nothing until it crashes. The
supervisor keeps only the last bytes of each stream (enough for a traceback and a
``faulthandler`` stack dump), read by a thread so that a chatty decoder never blocks on a
full pipe and never grows the parent's memory.
"""

from __future__ import annotations

import os
import threading
from collections import deque

__all__ = ["Tail"]


class Tail:
    """Reads a pipe until end of file, keeping its last ``limit`` bytes."""

    def __init__(self, fd: int, *, limit: int = 64 * 1024, name: str = "stream") -> None:
        self._fd = fd
        self._limit = limit
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._total = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._pump, name=f"conformance-tail-{name}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                chunk = os.read(self._fd, 65536)
                if not chunk:
                    break
                with self._lock:
                    self._chunks.append(chunk)
                    self._size += len(chunk)
                    self._total += len(chunk)
                    while self._size - len(self._chunks[0]) >= self._limit:
                        self._size -= len(self._chunks.popleft())
        except OSError:
            pass
        finally:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def text(self) -> str:
        """The kept tail, decoded leniently (a decoder may print bytes that are not UTF-8)."""
        with self._lock:
            data = b"".join(self._chunks)[-self._limit :]
            cut = self._total > len(data)
        text = data.decode("utf-8", errors="replace")
        return ("[...]\n" if cut else "") + text

    def lines(self, count: int) -> list[str]:
        """The last ``count`` non-empty lines."""
        return [line for line in self.text().splitlines() if line.strip()][-count:]

    def join(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until the stream is drained to its end."""
        self._thread.join(timeout)

"""Run control: how a running check is watched and stopped from outside it.

A check runs in a worker thread (in-process) or a worker process (supervised); whoever
runs it needs to know, at any moment, which decoder call is in progress and since when
(for timeout and crash messages), to hear about each call before it is made (a
supervised worker reports it, so a process that dies mid-call is blamed on the right
call), to ask an abandoned check to stop at its next call, and to keep the first bug a
search found (so a search whose shrinking runs out of time still reports the bug).
Nothing here touches a decoder.
"""

from __future__ import annotations

import threading
from time import monotonic as _monotonic  # the real clocks, whatever patches ``time`` later
from collections.abc import Callable
from typing import Any

from conformance.core.outcomes import DecoderError

__all__ = ["RunControl"]


class RunControl:
    """The state a check's runner watches: the call in progress, cancellation, first failure."""

    def __init__(self) -> None:
        self._cancelled = threading.Event()
        self._current: tuple[str, float] | None = None
        #: Called with the description of every decoder call just before it is made.
        self.call_listener: Callable[[str], None] | None = None
        #: Called with the first failure a search finds, as soon as it is found.
        self.failure_listener: Callable[[str, bool], None] | None = None
        #: The first failure seen inside a Hypothesis search (its message), and whether it
        #: was the decoder's own error (it raised, or returned something unusable) rather
        #: than a broken promise.
        self.first_failure: str | None = None
        self.first_failure_is_decoder_error = False
        #: The evidence of the check being watched (set by its driver), for progress reports.
        self.evidence: Any = None
        #: Where the check's early outputs are kept for re-verification at the end of the
        #: run (:class:`~conformance.checks.harness.holding.OutputHold`); ``None`` when the
        #: executor re-verifies nothing after the check (a check then holds by itself).
        self.hold: Any = None

    def cancel(self) -> None:
        """Ask the check to stop at its next decoder call (its runner gave up on it)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def entering(self, what: str) -> None:
        """A decoder call described by ``what`` is about to be made."""
        self._current = (what, _monotonic())
        if self.call_listener is not None:
            self.call_listener(what)

    def left(self) -> None:
        """The decoder call in progress returned (or raised)."""
        self._current = None

    def in_progress(self) -> tuple[str, float] | None:
        """``(description, monotonic start)`` of the decoder call in progress, or ``None``."""
        return self._current

    def current_call(self) -> str | None:
        """The decoder call in progress and for how long, in words (timeout messages)."""
        call = self._current
        if call is None:
            return None
        return f"{call[0]}, running for {_monotonic() - call[1]:.1f} s"

    def progress(self) -> dict[str, int]:
        """The check's counters so far (examples, decoder calls, mapper queries, comparisons):
        while they move, the check is making progress."""
        evidence = self.evidence
        if evidence is None:
            return {}
        return {
            "examples": evidence.examples,
            "decoder_calls": evidence.decoder_calls,
            "mapper_queries": evidence.mapper_queries,
            "comparisons": evidence.comparisons,
        }

    def note_failure(self, err: BaseException) -> None:
        """Remember the first failure of a search (see :attr:`first_failure`)."""
        if self.first_failure is not None:
            return
        self.first_failure = str(err)
        self.first_failure_is_decoder_error = isinstance(err, DecoderError)
        if self.failure_listener is not None:
            self.failure_listener(self.first_failure, self.first_failure_is_decoder_error)

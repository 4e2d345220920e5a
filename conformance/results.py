"""Result values: one :class:`CheckResult` per check, one :class:`Certification` per decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Certification", "CheckResult", "Status", "STATUSES"]

Status = Literal["passed", "failed", "xfailed", "skipped", "error"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "xfailed", "skipped", "error")

#: Statuses that deny certification. ``xfailed`` (a declared, still-true expected failure)
#: and ``skipped`` (the promise cannot apply) do not.
BLOCKING_STATUSES: frozenset[str] = frozenset({"failed", "error"})


@dataclass
class CheckResult:
    """Outcome of one check on one decoder.

    ``message`` is empty when the check passed; otherwise it says what broke, with the
    minimal example, the autoregressive index, the pixel frame, the error against the
    tolerance and how to replay. ``evidence`` records what the check actually exercised
    (examples, rollouts, decoder calls, frames, comparisons, largest error and its margin
    to the tolerance), so a pass can be told apart from a pass that tested nothing.
    """

    check_id: str
    status: Status
    message: str
    duration_s: float
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True unless this result denies certification."""
        return self.status not in BLOCKING_STATUSES


@dataclass
class Certification:
    """Every check's result for one decoder, with the seed and environment to replay it."""

    decoder: str
    results: list[CheckResult]
    seed: int
    profile: str
    environment: dict[str, Any] = field(default_factory=dict)

    @property
    def certified(self) -> bool:
        """True when no check failed or errored (xfailed and skipped do not block)."""
        return all(result.ok for result in self.results)

    def result(self, check_id: str) -> CheckResult:
        """The result of ``check_id``; ``KeyError`` if that check was not run."""
        for result in self.results:
            if result.check_id == check_id:
                return result
        raise KeyError(f"check {check_id!r} was not run; ran: {[r.check_id for r in self.results]}")

    def counts(self) -> dict[str, int]:
        """How many results have each status (every status present, zero if unused)."""
        counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for result in self.results:
            counts[result.status] += 1
        return counts

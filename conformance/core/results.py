"""Result values: one :class:`CheckResult` per check, one :class:`Certification` per decoder,
one :class:`DecoderRun` record per decoder run (what every report format renders).

Statuses, and whether they deny certification:

- ``passed``: the promise held, and the check exercised it.
- ``failed``: the decoder broke the promise, raised, hung, crashed its worker process, or the
  check exercised nothing. Blocks.
- ``xfailed``: a declared expected failure that still fails the way it was declared.
- ``skipped``: the promise cannot apply to this decoder (the message says why).
- ``inconclusive``: the check ran out of time while the decoder kept making progress (a slow
  or loaded machine, not a fault): no verdict either way. Blocks, because nothing was shown.
- ``not_run``: planned but never run (the run was interrupted, or the decoder could not be
  built at all). Blocks: a certificate never rests on checks that did not run.
- ``error``: a bug in the kit itself. Blocks, and gets its own exit code.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from conformance.core.outcomes import FailureKind

__all__ = [
    "BLOCKING_STATUSES",
    "Certification",
    "CheckResult",
    "DecoderRun",
    "Status",
    "STATUSES",
    "Unloadable",
]

Status = Literal["passed", "failed", "xfailed", "skipped", "inconclusive", "not_run", "error"]
#: Every status, in the order reports list them.
STATUSES: tuple[Status, ...] = (
    "passed",
    "failed",
    "xfailed",
    "skipped",
    "inconclusive",
    "not_run",
    "error",
)

#: Statuses that deny certification. ``xfailed`` (a declared, still-true expected failure)
#: and ``skipped`` (the promise cannot apply) do not.
BLOCKING_STATUSES: frozenset[str] = frozenset({"failed", "error", "inconclusive", "not_run"})


@dataclass
class CheckResult:
    """Outcome of one check on one decoder.

    ``message`` is empty when the check passed; otherwise it says what broke, with the
    minimal example, the autoregressive index, the pixel frame, the error against the
    tolerance and how to replay. ``evidence`` records what the check actually exercised
    (examples, rollouts, decoder calls, frames, comparisons, largest error and its margin
    to the tolerance), so a pass can be told apart from a pass that tested nothing.
    ``kind`` says how a non-passing check ended (a :class:`FailureKind`), ``None`` for a pass.
    ``replay`` is the command that replays this check with the same examples (set by the
    engine for failures; renderers print it, never parse it out of the message).
    """

    check_id: str
    status: Status
    message: str
    duration_s: float
    evidence: dict[str, Any] = field(default_factory=dict)
    kind: FailureKind | None = None
    replay: str | None = None

    def __post_init__(self) -> None:
        if self.kind is not None and not isinstance(self.kind, FailureKind):
            self.kind = FailureKind(self.kind)  # the words of a kind, as JSON carries them

    @property
    def ok(self) -> bool:
        """True unless this result denies certification."""
        return self.status not in BLOCKING_STATUSES

    def to_dict(self) -> dict[str, Any]:
        """The result as plain values (the one serialised form: worker messages, pytest
        records and the JSON report all carry this). Evidence is passed as it is; writers
        make it JSON-safe."""
        return {
            "check_id": self.check_id,
            "status": self.status,
            "message": self.message,
            "duration_s": self.duration_s,
            "evidence": dict(self.evidence),
            "kind": None if self.kind is None else self.kind.value,
            "replay": self.replay,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """The inverse of :meth:`to_dict`; ``ValueError`` naming what is wrong otherwise."""
        status = data.get("status")
        if status not in STATUSES:
            raise ValueError(f"a check result needs a status among {STATUSES}, got {status!r}")
        kind = data.get("kind")
        try:
            duration = float(data.get("duration_s") or 0.0)
            parsed_kind = None if kind is None else FailureKind(kind)
        except (TypeError, ValueError) as err:
            raise ValueError(f"malformed check result {dict(data)!r:.300}: {err}") from None
        evidence = data.get("evidence") or {}
        return cls(
            check_id=str(data.get("check_id")),
            status=status,
            message=str(data.get("message") or ""),
            duration_s=duration,
            evidence=dict(evidence) if isinstance(evidence, Mapping) else {},
            kind=parsed_kind,
            replay=None if data.get("replay") is None else str(data["replay"]),
        )


@dataclass
class Certification:
    """Every check's result for one decoder, with the seed and environment to replay it.

    ``subset`` is true when only some checks were asked for (``--check``): such a run
    reports its checks but never certifies. ``interrupted`` is true when the run was
    stopped (Ctrl-C) before every planned check had a result; the unfinished ones are
    ``not_run``, and the run never certifies.
    """

    decoder: str
    results: list[CheckResult]
    seed: int
    profile: str
    environment: dict[str, Any] = field(default_factory=dict)
    subset: bool = False
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """True when every check was asked for and every one of them has run."""
        return not self.subset and not self.interrupted and bool(self.results) and not any(
            result.status == "not_run" for result in self.results
        )

    @property
    def certified(self) -> bool:
        """True only for a complete run in which no check is blocking (see the module doc)."""
        return self.complete and all(result.ok for result in self.results)

    @property
    def kit_error(self) -> bool:
        """True when some check hit a bug of the kit itself (``error``)."""
        return any(result.status == "error" for result in self.results)

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


@dataclass
class DecoderRun:
    """One decoder's certification run, as every report format renders it.

    The one record per decoder that the JSON report, the Markdown certificate, the
    terminal summary and JUnit properties are all made from. ``spec`` holds the spec's
    fields as JSON-ready values (a supervised run never has the spec object in the parent
    process, only what its worker reported); ``decoder_config`` is ``str(decoder.config)``
    of the first decoder built; ``supervised`` says whether the checks ran in a worker
    process supervised from outside (the CLI's default) or in the caller's process.
    """

    certification: Certification
    target: str | None = None
    spec: dict[str, Any] | None = None
    decoder_config: str | None = None
    supervised: bool = False
    #: Notes about the run as a whole (a worker replaced after a crash, threads chosen, ...).
    notes: list[str] = field(default_factory=list)
    #: Wall-clock seconds the decoder's run took, building and worker restarts included
    #: (checks may run in several worker processes at once, so this is not their sum).
    wall_s: float | None = None


@dataclass(frozen=True)
class Unloadable:
    """A target that could not be loaded, and why (``name`` and ``distribution`` say where
    it was registered when it came from an entry point; otherwise ``name`` is the target)."""

    name: str
    target: str
    distribution: str | None
    error: str

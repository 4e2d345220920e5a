"""Executors: where a target's checks run. One interface, two ways.

- :class:`~conformance.engine.workers.supervisor.SupervisedExecutor` (the default of every
  front end): a worker process per target, judged from outside, so nothing a decoder does
  to its process decides the verdict. The supervising process never loads torch.
- :class:`~conformance.engine.inprocess.InProcessExecutor`: the checks in daemon threads
  of the calling process. For a ``DecoderSpec`` object (a factory closure cannot be sent
  to another process), and for debugging a decoder under pdb.

Both answer the same calls, used only by the run loop (:mod:`conformance.engine.loop`):
``start()`` (begin loading, without waiting), ``open()`` -> a description of each decoder (name, spec fields, environment, time
budget, declared failures) or :class:`~conformance.engine.workers.supervisor.LoadError`;
``build(index)`` -> ``(problem, config text, why checks rebuild the decoder instead of
copying one build)``; ``run(index, check_id, emit, hold=...)`` -> ``(result, config
text)``, keeping the check's early outputs when ``hold`` is set; ``finish(index)`` -> the
kept outputs that changed after their return; ``kill()`` (interrupted) and ``close()``;
``described``, what ``open`` said; and ``notes``, what the run's record should say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from conformance.core.results import CheckResult
from conformance.engine.plan import RunOptions
from conformance.engine.workers.supervisor import SupervisedExecutor, SupervisorOptions

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = ["Executor", "make_executor"]

EventHandler = Callable[[str, dict[str, Any]], None]


class Executor(Protocol):
    """What the run loop asks of an executor (see the module docstring)."""

    supervised: bool
    target: str | None
    notes: list[str]
    described: list[dict[str, Any]]

    def start(self) -> None: ...
    def open(self) -> list[dict[str, Any]]: ...
    def build(self, spec_index: int) -> tuple[str | None, str | None, str | None]: ...
    def run(
        self, spec_index: int, check_id: str, emit: EventHandler, *, hold: bool = False
    ) -> tuple[CheckResult, str | None]: ...
    def finish(self, spec_index: int) -> list[dict[str, Any]]: ...
    def kill(self) -> None: ...
    def close(self) -> None: ...


def make_executor(source: str | Sequence[DecoderSpec], options: RunOptions) -> Executor:
    """The supervised executor for a target string (unless ``options.supervised`` is off),
    the in-process one otherwise."""
    if isinstance(source, str) and options.supervised:
        return SupervisedExecutor(
            source,
            SupervisorOptions(
                profile=options.profile, seed=options.seed, threads=options.threads,
                gpu_slot=options.gpu_slot, env=dict(options.env),
            ),
        )
    # Imported only here: it runs decoders in this process and loads torch, which a
    # supervising process never needs.
    from conformance.engine.inprocess import InProcessExecutor

    return InProcessExecutor(source, profile=options.profile, seed=options.seed, gpu_slot=options.gpu_slot)

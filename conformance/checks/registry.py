"""The :class:`Check` record and the decorator that registers one function per promise."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.checks.context import CheckContext

__all__ = ["CATEGORIES", "EXERCISE_COUNTERS", "Check", "promise", "registered"]

CATEGORIES = (
    "size_mappers",
    "cache_isolation",
    "chunking",
    "forward_contract",
    "resources",
    "state_machine",
)

_REGISTERED: dict[str, Check] = {}


@dataclass(frozen=True)
class Check:
    """One promise of the decoder contract and the function that checks it.

    ``id`` is the function's name: stable, snake_case, used by ``-k``, in reports and in
    ``DecoderSpec.expected_failures``.
    """

    id: str
    category: str
    function: Callable[[CheckContext], None]
    #: Evidence counters (:class:`conformance.checks.evidence.Evidence` attributes) that must all
    #: be positive for a pass to mean something: a check that returns without, say,
    #: comparing a single pixel frame has tested nothing, and fails saying so. Empty: any
    #: activity at all (an example, a decoder call, a mapper query) will do.
    exercises: tuple[str, ...] = ()

    @property
    def doc(self) -> str:
        """The function's docstring: the promise, the silent bug it catches, what it does."""
        return inspect.cleandoc(self.function.__doc__ or "")

    @property
    def summary(self) -> str:
        """The first line of :attr:`doc`."""
        return self.doc.splitlines()[0] if self.doc else self.id


#: Counters a check may require in ``exercises``.
EXERCISE_COUNTERS = (
    "examples",
    "rollouts",
    "decoder_calls",
    "latent_frames",
    "pixel_frames",
    "mapper_queries",
    "comparisons",
    "compared_frames",
)


def promise(
    category: str, *, exercises: tuple[str, ...]
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register the decorated function as the check of one promise in ``category``.

    ``exercises`` names the evidence counters that must be positive when the check
    passes (see :attr:`Check.exercises`); every check states it, so none can pass
    vacuously.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown check category {category!r}; known: {CATEGORIES}")
    unknown = [name for name in exercises if name not in EXERCISE_COUNTERS]
    if not exercises or unknown:
        raise ValueError(
            f"exercises must name evidence counters from {EXERCISE_COUNTERS}, got {exercises!r}"
        )

    def register(function: Callable[[CheckContext], None]) -> Callable[[CheckContext], None]:
        if not function.__doc__:
            raise TypeError(f"check {function.__name__} needs a docstring stating its promise")
        if function.__name__ in _REGISTERED:
            raise ValueError(f"check id {function.__name__!r} registered twice")
        _REGISTERED[function.__name__] = Check(function.__name__, category, function, tuple(exercises))
        return function

    return register


def registered() -> dict[str, Check]:
    """Every check registered so far, by id."""
    return dict(_REGISTERED)

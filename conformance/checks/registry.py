"""The :class:`Check` record and the decorator that registers one function per promise."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conformance.checks.harness.context import CheckContext

from conformance.checks.catalog import category_of

__all__ = ["EXERCISE_COUNTERS", "Check", "plain_text", "promise", "registered"]

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
    #: Evidence counters (:class:`conformance.checks.harness.evidence.Evidence` attributes) that must all
    #: be positive for a pass to mean something: a check that returns without, say,
    #: comparing a single pixel frame has tested nothing, and fails saying so. Empty: any
    #: activity at all (an example, a decoder call, a mapper query) will do.
    exercises: tuple[str, ...] = ()
    #: Whether the check records a seed-independent ``failure_fingerprint`` when it fails
    #: (see :mod:`conformance.checks.harness.fingerprints`): only such checks can have an
    #: expected failure pinned to what was seen.
    fingerprinted: bool = False

    @property
    def doc(self) -> str:
        """The function's docstring: the promise, the silent bug it catches, what it does."""
        return inspect.cleandoc(self.function.__doc__ or "")

    @property
    def summary(self) -> str:
        """The first line of :attr:`doc`."""
        return self.doc.splitlines()[0] if self.doc else self.id

    @property
    def promise(self) -> str:
        """The promise in one plain-text sentence: the first sentence of the docstring's
        first paragraph, markup removed (``--list-checks``, ``explain`` and the docs
        index print it)."""
        paragraph = " ".join(self.doc.split("\n\n", 1)[0].split())
        end = paragraph.find(". ")
        return plain_text(paragraph if end < 0 else paragraph[: end + 1])


def plain_text(text: str) -> str:
    """reStructuredText inline markup as plain text: roles (``:func:`x```), literals
    (````x````), emphasis and interpreted text lose their markup."""
    text = re.sub(
        r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`",
        lambda m: m.group(1).rsplit(".", 1)[-1] if m.group(0).count("~") else m.group(1),
        text,
    )
    text = re.sub(r"``([^`]+)``", r"\1", text)
    text = re.sub(r"`([^`]+)`_?", r"\1", text)
    text = re.sub(r"\*\*([^*]+)\*\*", r"\1", text)
    text = re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text)
    return text


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
    *, exercises: tuple[str, ...], fingerprinted: bool = False
) -> Callable[[Callable[[CheckContext], None]], Callable[[CheckContext], None]]:
    """Register the decorated function as the check of one promise (its id, the function's
    name, must be in :mod:`conformance.checks.catalog`, which gives its category and place).

    ``exercises`` names the evidence counters that must be positive when the check
    passes (see :attr:`Check.exercises`); every check states it, so none can pass
    vacuously. ``fingerprinted`` declares that a failure records a fingerprint
    (:attr:`Check.fingerprinted`).
    """
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
        category = category_of(function.__name__)
        if category is None:
            raise ValueError(f"check {function.__name__!r} is not in conformance.checks.catalog")
        _REGISTERED[function.__name__] = Check(
            function.__name__, category, function, tuple(exercises), fingerprinted
        )
        return function

    return register


def registered() -> dict[str, Check]:
    """Every check registered so far, by id."""
    return dict(_REGISTERED)

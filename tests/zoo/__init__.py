"""The kit's zoo: deliberately broken decoders, and correct decoders that must stay certified.

``BROKEN`` lists every broken decoder with the checks that must report it as failed;
``CORRECT`` lists decoders the kit must certify. The proof tests in this package are
driven by these two tables, and the coverage test demands that every check in
``conformance.ALL_CHECKS`` fails for at least one broken decoder, so a new check without
a zoo entry fails the suite.

Each case is also a zero-argument callable returning its ``DecoderSpec``, so e.g.
``python -m conformance certify tests.zoo.chunking:history_dropped_at_seams`` runs the
kit on one of them (from the repository root).
"""

from __future__ import annotations

from . import (
    cache_isolation,
    chunking,
    correct,
    coverage,
    forward_contract,
    graph_capture,
    long_horizons,
    numerics,
    pipeline_habits,
    pipeline_promises,
    resources,
    robustness,
    size_mappers,
)
from ._base import BrokenCase, CorrectCase

__all__ = ["BROKEN", "CORRECT", "BrokenCase", "CorrectCase", "broken_specs", "correct_specs"]

BROKEN: list[BrokenCase] = [
    *size_mappers.CASES,
    *cache_isolation.CASES,
    *chunking.CASES,
    *forward_contract.CASES,
    *resources.CASES,
    *robustness.CASES,
    *coverage.CASES,
    *numerics.CASES,
    *pipeline_promises.CASES,
    *graph_capture.CASES,
    *long_horizons.CASES,
    *pipeline_habits.CASES,
]

CORRECT: list[CorrectCase] = [
    *correct.CASES,
    *numerics.CORRECT_CASES,
    *pipeline_promises.CORRECT_CASES,
    *graph_capture.CORRECT_CASES,
    *long_horizons.CORRECT_CASES,
    *pipeline_habits.CORRECT_CASES,
]


def broken_specs() -> list[object]:
    """Every broken decoder's spec, as a ``MODULE:ATTR`` target (hung decoders excluded)."""
    return [case() for case in BROKEN if case is not robustness.forward_never_returns]


def correct_specs() -> list[object]:
    """Every correct decoder's spec, as a ``MODULE:ATTR`` target."""
    return [case() for case in CORRECT]

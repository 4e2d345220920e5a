"""Running checks: one decoder in this process (:mod:`.runner`), or whole targets,
supervised or in-process, for every front end (:mod:`.certify`).

The names that lived in the ``conformance.engine`` module are re-exported here.
"""

from __future__ import annotations

from conformance.engine.certify import (
    EXIT_CERTIFIED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NOT_CERTIFIED,
    EXIT_USAGE,
    LoadFailure,
    RunOutcome,
    certify_targets,
    exit_code,
)

__all__ = [
    "EXIT_CERTIFIED",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_CERTIFIED",
    "EXIT_USAGE",
    "LoadFailure",
    "RunOutcome",
    "certify_targets",
    "exit_code",
]

"""How a check ends when it did not end by itself: it never ran, or it ran out of time.

Shared by every executor (the supervisor decides these from outside the worker, the
in-process executor from its abandoned thread), and free of torch, so a supervising
parent process never loads it.
"""

from __future__ import annotations

from typing import Any

from conformance.core.outcomes import FailureKind
from conformance.core.results import CheckResult

__all__ = ["stopped_result", "timeout_outcome"]


def timeout_outcome(
    check_id: str,
    timeout: float,
    call: str | None,
    first_failure: str | None,
    first_failure_is_decoder_error: bool,
) -> dict[str, Any]:
    """How a check that ran out of time ends: the bug it had already found, else a timeout."""
    if first_failure:
        return {
            "status": "failed",
            "message": (
                f"{first_failure}\n(Found by the search; shrinking it to a minimal example did not "
                f"finish within the check's {timeout:g} s timeout.)"
            ),
            # The bug was found; only its shrinking ran out of time.
            "kind": FailureKind.DECODER_ERROR if first_failure_is_decoder_error else FailureKind.BROKEN_PROMISE,
        }
    return {
        "status": "failed",
        "message": (
            f"{check_id} did not return within {timeout:g} s; "
            + (f"the decoder call in progress: {call}" if call else "no decoder call was in progress")
            + ". A decoder that hangs or is far slower than expected fails; raise "
            "DecoderSpec.check_timeout_s if it is merely slow."
        ),
        "kind": FailureKind.TIMEOUT,
    }


def stopped_result(check_id: str, reason: str) -> CheckResult:
    """A planned check that never ran, and why (``not_run``: it blocks certification)."""
    return CheckResult(check_id, "not_run", f"not run: {reason}", 0.0, {}, kind=FailureKind.NOT_RUN)

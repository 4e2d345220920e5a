"""How a measured error is said against what is allowed: one wording in every message and report.

"Largest error X is 2.6% of the tolerance" (0% is exact, 100% is the limit, above it
fails); far past the limit, "3,167x the tolerance". The check messages
(:mod:`conformance.checks.harness.tolerances`), the terminal summary, the Markdown certificate and the
JSON's ``max_error_to_tolerance`` all use the same figure, said this way. No torch import:
reports are rendered without it.
"""

from __future__ import annotations

__all__ = ["ratio_text", "share"]


def ratio_text(ratio: float) -> str:
    """The largest error as a share of what the tolerance allows: ``2.6%``, ``100%``, ``41,666x``.

    Every format says it the same way: "error is X% of the tolerance" (0% is exact, above
    100% fails). The JSON carries the same figure as ``max_error_to_tolerance``.
    """
    if ratio <= 1:
        percent = 100 * ratio
        if 0 < percent < 0.1:
            return "<0.1%"
        return f"{percent:.1f}%".replace(".0%", "%")
    if ratio < 1000:
        return f"{ratio:.3g}x"
    return f"{ratio:,.0f}x"


def share(ratio: float, what: str) -> str:
    """``2.6% of the tolerance`` or ``41,666x the tolerance``."""
    return f"{ratio_text(ratio)} of {what}" if ratio <= 1 else f"{ratio_text(ratio)} {what}"

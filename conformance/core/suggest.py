"""Did-you-mean hints for ids and names a person typed (check ids, profiles)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

__all__ = ["did_you_mean"]


def did_you_mean(value: str, known: Sequence[str], *, limit: int = 3) -> str:
    """``"; did you mean 'x'?"`` naming the closest of ``known`` (spelling, then ids that
    contain what was typed, for abbreviations such as ``chunked``), or ``""``."""
    close = difflib.get_close_matches(value, known, n=limit, cutoff=0.5)
    if len(value) >= 4:
        close += [k for k in known if value in k and k not in close][: limit - len(close)]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""

"""The kit's version: its one home.

``pyproject.toml`` reads it from here (so a built wheel and a bare source checkout say
the same), ``conformance.__version__`` is this value, and every report records it.
"""

from __future__ import annotations

__all__ = ["KIT_VERSION"]

KIT_VERSION = "0.1.0"

"""Conformance kit for streaming video decoders (``flashdreams`` ``StreamingVideoDecoder``).

Describe a decoder with a :class:`DecoderSpec`, then :func:`certify` it: every check in
:data:`ALL_CHECKS` runs and is reported in a :class:`Certification`. The same checks are
available as pytest tests (``pytest --conformance-decoder=MODULE:ATTR``) and from the
command line (``python -m conformance certify``).
"""

from __future__ import annotations

from importlib import metadata as _metadata
from typing import Any

from conformance.checks import ALL_CHECKS, Check, get_check
from conformance.profiles import PROFILES, Profile
from conformance.results import Certification, CheckResult
from conformance.runner import certify, run_check
from conformance.spec import DecoderSpec, TargetError, load_target

try:
    __version__ = _metadata.version("flashdreams-conformance")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

#: The decoder ``python -m conformance certify`` certifies when given no target.
DEFAULT_TARGET = "reference_decoders.toy:toy_spec"

__all__ = [
    "ALL_CHECKS",
    "DEFAULT_TARGET",
    "PROFILES",
    "Certification",
    "Check",
    "CheckResult",
    "DecoderSpec",
    "Profile",
    "TargetError",
    "certify",
    "conformance_tests",
    "get_check",
    "load_target",
    "run_check",
]


# --- DELIVERY's spot -------------------------------------------------------------------
# ``conformance_tests`` (generate the parametrized pytest tests for a spec or target from a
# test module) lives in ``conformance.plugin_api``, owned by DELIVERY. It is loaded on
# first access so that ``import conformance`` does not import pytest.
def __getattr__(name: str) -> Any:
    if name == "conformance_tests":
        from conformance.plugin_api import conformance_tests

        return conformance_tests
    raise AttributeError(f"module 'conformance' has no attribute {name!r}")

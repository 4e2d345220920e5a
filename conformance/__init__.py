"""Conformance kit for streaming video decoders (``flashdreams`` ``StreamingVideoDecoder``).

Describe a decoder with a :class:`DecoderSpec`, then certify it: from the command line
(``python -m conformance certify MODULE:ATTR``), from pytest
(``pytest --conformance-decoder=MODULE:ATTR``, or ``conformance_tests(...)`` in a test
module), or from Python (:func:`certify` for a spec object). Every check in
:data:`ALL_CHECKS` runs and is reported.

The public names resolve on first access, so that ``import conformance`` (which pytest
does for every session once the plugin is installed) costs nothing until the kit is
used: no torch, no Hypothesis, no pytest import at plugin registration time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.checks.catalog import CHECK_IDS
    from conformance.checks.registry import Check
    from conformance.checks.suite import ALL_CHECKS, get_check
    from conformance.core.profiles import PROFILES, Profile
    from conformance.core.results import Certification, CheckResult, DecoderRun
    from conformance.core.spec import DecoderSpec, ExpectedFailure
    from conformance.core.targets import TargetError, load_target
    from conformance.core.version import KIT_VERSION as __version__
    from conformance.engine.loop import certify, certify_targets, run_check
    from conformance.frontends.cli import DEFAULT_TARGET
    from conformance.frontends.pytest_api import conformance_tests

__all__ = [
    "ALL_CHECKS",
    "CHECK_IDS",
    "DEFAULT_TARGET",
    "PROFILES",
    "Certification",
    "Check",
    "CheckResult",
    "DecoderRun",
    "DecoderSpec",
    "ExpectedFailure",
    "Profile",
    "TargetError",
    "__version__",
    "certify",
    "certify_targets",
    "conformance_tests",
    "get_check",
    "load_target",
    "run_check",
]

_LAZY_EXPORTS: dict[str, tuple[str, str]] = {
    "ALL_CHECKS": ("conformance.checks.suite", "ALL_CHECKS"),
    "CHECK_IDS": ("conformance.checks.catalog", "CHECK_IDS"),
    "Check": ("conformance.checks.registry", "Check"),
    "get_check": ("conformance.checks.suite", "get_check"),
    "PROFILES": ("conformance.core.profiles", "PROFILES"),
    "Profile": ("conformance.core.profiles", "Profile"),
    "Certification": ("conformance.core.results", "Certification"),
    "CheckResult": ("conformance.core.results", "CheckResult"),
    "DecoderRun": ("conformance.core.results", "DecoderRun"),
    "DecoderSpec": ("conformance.core.spec", "DecoderSpec"),
    "ExpectedFailure": ("conformance.core.spec", "ExpectedFailure"),
    "TargetError": ("conformance.core.targets", "TargetError"),
    "load_target": ("conformance.core.targets", "load_target"),
    "__version__": ("conformance.core.version", "KIT_VERSION"),
    "certify": ("conformance.engine.loop", "certify"),
    "certify_targets": ("conformance.engine.loop", "certify_targets"),
    "run_check": ("conformance.engine.loop", "run_check"),
    "conformance_tests": ("conformance.frontends.pytest_api", "conformance_tests"),
    "DEFAULT_TARGET": ("conformance.frontends.cli", "DEFAULT_TARGET"),
}


def __getattr__(name: str) -> Any:
    where = _LAZY_EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    value = getattr(importlib.import_module(where[0]), where[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

"""Conformance kit for streaming video decoders (``flashdreams`` ``StreamingVideoDecoder``).

Describe a decoder with a :class:`DecoderSpec`, then :func:`certify` it: every check in
:data:`ALL_CHECKS` runs and is reported in a :class:`Certification`. The same checks are
available as pytest tests (``pytest --conformance-decoder=MODULE:ATTR``) and from the
command line (``python -m conformance certify``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from conformance.checks import ALL_CHECKS, Check, get_check
    from conformance.frontends.pytest_api import conformance_tests
    from conformance.core.profiles import PROFILES, Profile
    from conformance.core.results import Certification, CheckResult
    from conformance.engine.runner import certify, run_check
    from conformance.core.spec import DecoderSpec, ExpectedFailure, TargetError, load_target

#: The kit's version; reports record it, and ``pyproject.toml`` reads it from here, so a
#: source checkout that is not installed (a GPU machine, a vendored copy) reports it too.
__version__ = "0.1.0"

#: The decoder ``python -m conformance certify`` certifies when given no target: the
#: bundled Wan 2.1 VAE decoder (full size in bfloat16 on CUDA when a GPU is present,
#: a small configuration in float32 on the CPU otherwise).
DEFAULT_TARGET = "reference_decoders.wan.specs:default"

__all__ = [
    "ALL_CHECKS",
    "DEFAULT_TARGET",
    "PROFILES",
    "Certification",
    "Check",
    "CheckResult",
    "DecoderSpec",
    "ExpectedFailure",
    "Profile",
    "TargetError",
    "certify",
    "conformance_tests",
    "get_check",
    "load_target",
    "run_check",
]


# Public names resolve on first access, so that ``import conformance`` (which pytest does
# for every session once the plugin is installed) costs nothing until the kit is used:
# no torch, no Hypothesis, no pytest import at plugin registration time.
_LAZY_EXPORTS: dict[str, str] = {
    "ALL_CHECKS": "conformance.checks",
    "Check": "conformance.checks",
    "get_check": "conformance.checks",
    "PROFILES": "conformance.core.profiles",
    "Profile": "conformance.core.profiles",
    "Certification": "conformance.core.results",
    "CheckResult": "conformance.core.results",
    "certify": "conformance.engine.runner",
    "run_check": "conformance.engine.runner",
    "DecoderSpec": "conformance.core.spec",
    "ExpectedFailure": "conformance.core.spec",
    "TargetError": "conformance.core.spec",
    "load_target": "conformance.core.spec",
    "conformance_tests": "conformance.frontends.pytest_api",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'conformance' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

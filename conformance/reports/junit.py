"""The ``conformance_*`` user properties of one check's pytest test (JUnit XML ``<property>``).

The same facts the Markdown certificate gives per check; numbers only when the check
produced them (a check without numerical comparisons has no largest error).
"""

from __future__ import annotations

import sys
from typing import Any

from conformance.core.links import check_docs
from conformance.core.results import CheckResult
from conformance.core.values import clean_text
from conformance.core.version import KIT_VERSION
from conformance.reports.record import category

__all__ = ["result_properties"]


def result_properties(
    result: CheckResult,
    *,
    seed: int,
    profile: str,
    target: str | None,
    decoder: str | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> list[tuple[str, object]]:
    """``(name, value)`` pairs, every value a plain ``str``/``int``/``float``/``bool``
    (pytest-xdist ships user properties with execnet, which takes builtin types only)."""
    evidence = result.evidence
    properties: list[tuple[str, object]] = []
    if decoder is not None:
        properties.append(("conformance_decoder", decoder))
    if target is not None:
        properties.append(("conformance_target", target))
    properties += [
        ("conformance_check", result.check_id),
        ("conformance_category", category(result.check_id) or ""),
        ("conformance_status", result.status),
        ("conformance_seed", seed),
        ("conformance_profile", profile),
    ]
    if result.kind:
        properties.append(("conformance_kind", result.kind.value))
    for key in (
        "examples", "decoder_calls", "compared_frames", "max_abs_error", "max_error_to_tolerance",
        "tolerance_margin", "max_frame_rms_error", "frame_rms_margin",
    ):
        if key in evidence and evidence[key] is not None:
            properties.append((f"conformance_{key}", evidence[key]))
    properties.append(("conformance_duration_s", round(float(result.duration_s), 6)))
    if device is not None:
        properties.append(("conformance_device", device))
    if dtype is not None:
        properties.append(("conformance_dtype", dtype))
    if result.status not in ("passed", "skipped"):
        properties.append(("conformance_docs", check_docs(result.check_id)))
    properties.append(("conformance_kit_version", KIT_VERSION))
    torch = sys.modules.get("torch")
    if torch is not None:
        properties.append(("conformance_torch", torch.__version__))
    return [(name, _plain(value)) for name, value in properties]


def _plain(value: Any) -> object:
    if type(value) in (int, float, bool):
        return value
    return clean_text(value)

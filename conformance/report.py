"""Render certification results for machines (JSON) and people (terminal text).

Everything that turns :class:`~conformance.results.Certification` objects into a
report lives here, so the command line, the pytest plugin and later formats (a
Markdown certificate, JUnit XML properties) all describe a result the same way.

JSON report, ``schema_version`` 1
---------------------------------
One JSON object per run of ``python -m conformance certify``::

    {
      "schema_version": 1,
      "kit_version": "0.1.0",
      "created": "2025-01-01T12:00:00+00:00",   # UTC, ISO 8601
      "certified": true,                          # every decoder below is certified
      "decoders": [DECODER, ...],                 # one entry per certified DecoderSpec
      ...DECODER                                  # only when "decoders" has exactly one entry
    }

where each ``DECODER`` is::

    {
      "decoder": "toy-causal",                    # DecoderSpec.name
      "target": "reference_decoders.toy:toy_spec",  # what was loaded; null if unknown
      "certified": true,                          # no check "failed" or "error"
      "profile": "default",                       # Hypothesis profile the checks ran under
      "seed": 1234,                               # Hypothesis seed; replays the same examples
      "environment": {...},                       # kit, torch, python, device, dtype, ...
      "summary": {"passed": 17, "failed": 0, "error": 0, "xfailed": 0, "skipped": 1},
      "replay": "python -m conformance certify ... --seed 1234 --profile default",
      "checks": [
        {"id": "chunked_decode_matches_full_decode", "category": "chunking",
         "status": "passed",      # passed | failed | xfailed | skipped | error
         "message": "",            # why it failed / was skipped / is expected to fail
         "duration_s": 0.84,
         "evidence": {...}},       # what the check exercised; max error, tolerance, margin
        ...
      ]
    }

A report about a single decoder therefore also carries that decoder's keys at top
level (``report["decoder"]``, ``report["certified"]``, ``report["checks"]``), which is
what most readers want. Readers that must handle any number of decoders iterate
``report["decoders"]``; the top-level ``decoder``/``checks``/... keys are present
exactly when there is one. Values that JSON cannot hold are converted: tensors and
tuples to lists, dtypes and devices to strings, non-finite floats to the strings
``"nan"``, ``"inf"``, ``"-inf"`` (the file is strict JSON).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from typing_extensions import TypeGuard

if TYPE_CHECKING:
    from conformance.results import Certification, CheckResult

__all__ = [
    "DEFAULT_REPORT_PATH",
    "SCHEMA_VERSION",
    "STATUSES",
    "certification_to_dict",
    "check_to_dict",
    "evidence_highlights",
    "format_certification",
    "format_failure",
    "jsonable",
    "kit_version",
    "replay_command",
    "to_json_dict",
    "write_json_report",
]

SCHEMA_VERSION = 1
"""Bumped whenever a key is removed or changes meaning; adding keys keeps the version."""

DEFAULT_REPORT_PATH = "conformance-report.json"
"""Where ``python -m conformance certify`` writes its report unless told otherwise."""

STATUSES = ("passed", "failed", "error", "xfailed", "skipped")
"""Every status a check can have, in the order summaries list them."""

_PACKAGE = "flashdreams-conformance"


def kit_version() -> str:
    """Version of the installed kit, or ``"unknown"`` when run from a bare checkout."""
    from importlib import metadata

    try:
        return metadata.version(_PACKAGE)
    except metadata.PackageNotFoundError:
        import conformance

        return str(getattr(conformance, "__version__", "unknown"))


def jsonable(value: Any) -> Any:
    """Convert ``value`` into something :func:`json.dumps` writes as strict JSON.

    Evidence is free-form (checks record whatever they exercised), so this accepts
    tensors, dtypes, devices, dataclasses, tuples, sets and non-finite floats rather
    than letting one odd value lose the whole report.
    """
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(item) for item in items]
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in fields(value)}
    torch_value = _from_torch(value)
    if torch_value is not _NOT_TORCH:
        return torch_value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


_NOT_TORCH = object()


def _from_torch(value: Any) -> Any:
    import sys

    torch = sys.modules.get("torch")  # never import torch just to render a report
    if torch is None:
        return _NOT_TORCH
    if isinstance(value, torch.Tensor):
        return jsonable(value.detach().cpu().tolist())
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, torch.Size):
        return list(value)
    return _NOT_TORCH


def replay_command(
    target: str | Sequence[str] | None,
    *,
    seed: int,
    profile: str,
    check_id: str | None = None,
    check_ids: Sequence[str] = (),
) -> str:
    """The shell command that re-runs a certification (or some checks) with the same examples.

    ``target`` may be one target or several (one command certifies them all); ``None``
    writes the placeholder ``<TARGET>``. ``check_id`` / ``check_ids`` restrict the run.
    """
    targets = [target] if target is None or isinstance(target, str) else list(target)
    checks = ([check_id] if check_id is not None else []) + list(check_ids)
    parts = ["python", "-m", "conformance", "certify"]
    parts += [t if t is not None else "<TARGET>" for t in targets]
    for one in checks:
        parts += ["--check", one]
    parts += ["--seed", str(seed), "--profile", profile]
    return " ".join(part if part == "<TARGET>" else shlex.quote(part) for part in parts)


def check_to_dict(result: CheckResult) -> dict[str, Any]:
    """One entry of a decoder's ``checks`` list."""
    return {
        "id": result.check_id,
        "category": _category(result.check_id),
        "status": result.status,
        "message": result.message,
        "duration_s": round(float(result.duration_s), 6),
        "evidence": jsonable(dict(result.evidence)),
    }


def certification_to_dict(
    certification: Certification, *, target: str | None = None
) -> dict[str, Any]:
    """One ``DECODER`` object of the report (see the module docstring)."""
    summary = {status: 0 for status in STATUSES}
    for result in certification.results:
        summary[result.status] = summary.get(result.status, 0) + 1
    return {
        "decoder": certification.decoder,
        "target": target,
        "certified": bool(certification.certified),
        "profile": certification.profile,
        "seed": certification.seed,
        "environment": jsonable(dict(certification.environment)),
        "summary": summary,
        "replay": replay_command(
            target,
            seed=certification.seed,
            profile=certification.profile,
            check_ids=_subset(certification),
        ),
        "checks": [check_to_dict(result) for result in certification.results],
    }


def to_json_dict(
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """The whole JSON report for ``certifications``.

    ``targets``, when given, runs parallel to ``certifications`` and names the
    ``MODULE:ATTR`` each decoder was loaded from (for the replay command).
    """
    if targets is None:
        targets = [None] * len(certifications)
    if len(targets) != len(certifications):
        raise ValueError(
            f"got {len(targets)} targets for {len(certifications)} certifications; "
            "pass one target per certification"
        )
    decoders = [
        certification_to_dict(cert, target=target)
        for cert, target in zip(certifications, targets)
    ]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kit_version": kit_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "certified": all(entry["certified"] for entry in decoders),
    }
    if len(decoders) == 1:
        for key, value in decoders[0].items():
            report.setdefault(key, value)
    report["decoders"] = decoders  # last, so a person reading the file sees the verdict first
    return report


def write_json_report(
    path: str | Path,
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
) -> Path:
    """Write :func:`to_json_dict` to ``path`` (parent folders created); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_json_dict(certifications, targets=targets), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------
# Text for people


_HIGHLIGHT_COUNTS = (
    ("examples", "example"),
    ("rollouts", "rollout"),
    ("decoder_calls", "decoder call"),
    ("mapper_queries", "mapper query"),
)


def evidence_highlights(evidence: Mapping[str, Any]) -> str:
    """A short phrase with the evidence a reader scans for: volume, then error vs tolerance.

    For example ``40 examples, 212 decoder calls; max error 3.1e-07, 2.6% of tolerance
    (atol 1.2e-05, rtol 1.2e-05)``. Keys that are absent are left out, so this works for
    every check (see :class:`conformance.evidence.Evidence` for the keys).
    """
    pieces: list[str] = []
    counts = [
        _count(evidence[key], label)
        for key, label in _HIGHLIGHT_COUNTS
        if _is_int(evidence.get(key)) and evidence[key] > 0
    ]
    if counts:
        pieces.append(", ".join(counts))
    max_error = evidence.get("max_abs_error", evidence.get("max_error"))
    if _is_number(max_error):
        text = f"max error {_number(max_error)}"
        ratio = evidence.get("max_error_to_tolerance")
        if _is_number(ratio):
            text += f", {ratio:.2g}x tolerance" if ratio > 1 else f", {100 * ratio:.2g}% of tolerance"
        tolerance = evidence.get("tolerance")
        if isinstance(tolerance, Mapping) and _is_number(tolerance.get("atol")):
            text += f" (atol {_number(tolerance['atol'])}, rtol {_number(tolerance.get('rtol', 0.0))})"
        elif _is_number(tolerance):
            text += f" (tolerance {_number(tolerance)})"
        pieces.append(text)
    elif isinstance(max_error, str):  # non-finite, spelled out by the engine
        pieces.append(f"max error {max_error}")
    return "; ".join(pieces)


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def format_failure(result: CheckResult, *, replay: Sequence[str] = ()) -> str:
    """What a person needs to act on a failed check: the check's message, then how to replay.

    Replay commands the message already spells out (the engine adds the CLI one) are not
    repeated.
    """
    lines = [f"conformance check {result.check_id} {result.status}:"]
    message = result.message.strip() or "(the check gave no message)"
    lines += ["  " + line for line in message.splitlines()]
    highlights = evidence_highlights(result.evidence)
    if highlights:
        lines.append(f"  evidence: {highlights}")
    replay = [command for command in replay if command not in result.message]
    if replay:
        lines.append("replay with:")
        lines += [f"  {command}" for command in replay]
    return "\n".join(lines)


_LABELS = {
    "passed": "PASS",
    "failed": "FAIL",
    "error": "ERROR",
    "xfailed": "XFAIL",
    "skipped": "SKIP",
}


def format_certification(certification: Certification, *, target: str | None = None) -> str:
    """A readable summary of one decoder: a line per check, failures in full, the verdict."""
    env = certification.environment
    setting = ", ".join(
        str(piece)
        for piece in (
            f"profile {certification.profile}",
            f"seed {certification.seed}",
            env.get("device"),
            env.get("dtype"),
            f"torch {env['torch']}" if env.get("torch") else None,
        )
        if piece
    )
    title = f"Conformance of {certification.decoder}"
    if target:
        title += f" ({target})"
    lines = [title, f"  {setting}", ""]
    id_width = max((len(r.check_id) for r in certification.results), default=0)
    for result in certification.results:
        row = f"  {_LABELS.get(result.status, result.status.upper()):<5}  {result.check_id:<{id_width}}  {result.duration_s:7.2f}s"
        extra = evidence_highlights(result.evidence)
        if result.status in ("skipped", "xfailed") and result.message:
            extra = _first_line(result.message)
        if extra:
            row += f"  {extra}"
        lines.append(row.rstrip())
        if result.status in ("failed", "error"):
            lines += ["         " + line for line in (result.message.strip() or "(no message)").splitlines()]
    summary = {status: 0 for status in STATUSES}
    for result in certification.results:
        summary[result.status] = summary.get(result.status, 0) + 1
    counts = ", ".join(f"{n} {status}" for status, n in summary.items() if n)
    verdict = "CERTIFIED" if certification.certified else "NOT CERTIFIED"
    total = sum(result.duration_s for result in certification.results)
    lines += [
        "",
        f"{certification.decoder}: {verdict} ({counts or 'no checks run'}) in {total:.1f} s",
    ]
    return "\n".join(lines)


def _subset(certification: Certification) -> list[str]:
    """The check ids a partial run ran (to replay exactly that); empty for a full run."""
    ran = [result.check_id for result in certification.results]
    try:
        from conformance.checks import CHECK_IDS
    except ImportError:
        return ran
    return [] if sorted(ran) == sorted(CHECK_IDS) else ran


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else ""


def _number(value: float) -> str:
    return f"{value:.3g}"


def _category(check_id: str) -> str | None:
    try:
        from conformance.checks import get_check

        return get_check(check_id).category
    except (ImportError, KeyError):
        return None

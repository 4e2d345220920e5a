"""One record per decoder run, turned into the report's plain dict (JSON schema 2).

Every report format renders the same :class:`~conformance.core.results.DecoderRun` records:
this module makes them into the dict the JSON report writes (``docs/report-schema.md``)
and holds what the other renderers share (a check's category, the checks a subset ran,
the one phrase of "error against tolerance", the status counts).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.checks.catalog import CHECK_IDS, category_of
from conformance.core.links import check_docs
from conformance.core.ratios import share
from conformance.core.replay import certify_command
from conformance.core.results import Certification, CheckResult, DecoderRun, Unloadable
from conformance.core.values import clean_text, is_number, jsonable
from conformance.core.version import KIT_VERSION

__all__ = [
    "DEFAULT_REPORT_PATH",
    "RUN_STATES",
    "SCHEMA_VERSION",
    "category",
    "check_to_dict",
    "ran_subset",
    "report_dict",
    "run_to_dict",
    "summary",
    "tolerance_phrase",
]

SCHEMA_VERSION = 2
"""Bumped whenever a key is removed or changes meaning; adding keys keeps the version.

2: ``certified`` is false for a subset (``--check``) or unfinished run; the statuses
``inconclusive`` and ``not_run`` exist and block certification (see the schema page)."""

DEFAULT_REPORT_PATH = "conformance-report.json"
"""Where ``python -m conformance certify`` writes its report unless told otherwise."""

RUN_STATES = ("finished", "interrupted", "running")
"""``run_state`` of a report: the run wrote it at its end, was stopped (Ctrl-C) and wrote
what it had, or has not finished (the placeholder written at its start: if a report still
says ``running`` after the command ended, the run was killed)."""

def ran_subset(certification: Certification) -> list[str]:
    """The check ids a subset run ran (to replay exactly that); empty for a full run."""
    ran = [result.check_id for result in certification.results]
    if not certification.subset and (sorted(ran) == sorted(CHECK_IDS) or certification.interrupted):
        return []
    return ran


def category(check_id: str) -> str | None:
    """The check's category, ``None`` for an id the registry does not know."""
    return category_of(check_id)


# ---------------------------------------------------------------------------------
# Error against tolerance: one definition for every format


def tolerance_phrase(evidence: Mapping[str, Any], *, bounds: bool = True) -> str | None:
    """``largest error 3.1e-07 is 2.6% of the tolerance (atol ..., rtol ...)``, plus the
    frame RMS criterion when the check measured it (``bounds=False`` leaves out the atol and
    rtol); ``None`` when the check compared no numbers."""
    error = evidence.get("max_abs_error", evidence.get("max_error"))
    if isinstance(error, str):  # non-finite, spelled out by the engine
        return f"largest error {error}"
    if not is_number(error):
        return None
    text = f"largest error {_number(error)}"
    ratio = evidence.get("max_error_to_tolerance")
    if is_number(ratio):
        text += f" is {share(ratio, 'the tolerance')}"
    tolerance = evidence.get("tolerance") if bounds else None
    if isinstance(tolerance, Mapping) and is_number(tolerance.get("atol")):
        text += f" (atol {_number(tolerance['atol'])}, rtol {_number(tolerance.get('rtol', 0.0) or 0.0)})"
    elif bounds and is_number(tolerance):
        text += f" (tolerance {_number(tolerance)})"
    rms_ratio = evidence.get("max_frame_rms_to_tolerance")
    if is_number(rms_ratio):
        text += f"; largest frame RMS error is {share(rms_ratio, 'its bound')}"
    return text


def _number(value: float) -> str:
    return f"{value:.3g}"


# ---------------------------------------------------------------------------------
# DecoderRun to the schema dict


def check_to_dict(result: CheckResult) -> dict[str, Any]:
    """One entry of a decoder's ``checks`` list."""
    duration = float(result.duration_s) if is_number(result.duration_s) else 0.0
    return {
        "id": clean_text(result.check_id),
        "category": category(result.check_id),
        "status": result.status,
        "kind": None if result.kind is None else clean_text(result.kind.value),
        "message": clean_text(result.message),
        "duration_s": round(duration, 6),
        "docs": check_docs(result.check_id),
        "replay": None if result.replay is None else clean_text(result.replay),
        "evidence": jsonable(dict(result.evidence)),
    }


def summary(certification: Certification) -> dict[str, int]:
    """How many checks have each status (every status present): ``Certification.counts``."""
    return dict(certification.counts())


def run_to_dict(run: DecoderRun) -> dict[str, Any]:
    """One ``Decoder`` object of the report (see ``docs/report-schema.md``)."""
    cert = run.certification
    return {
        "decoder": clean_text(cert.decoder),
        "target": run.target,
        "certified": bool(cert.certified),
        "complete": bool(cert.complete),
        "subset": bool(cert.subset),
        "partial": bool(cert.interrupted),
        "supervised": bool(run.supervised),
        "profile": cert.profile,
        "seed": cert.seed,
        "spec": None if run.spec is None else jsonable(dict(run.spec)),
        "decoder_config": None if run.decoder_config is None else clean_text(run.decoder_config),
        "environment": jsonable(dict(cert.environment)),
        "summary": summary(cert),
        "notes": [clean_text(note) for note in run.notes],
        "wall_s": round(run.wall_s, 3) if is_number(run.wall_s) else None,
        "replay": certify_command(run.target, seed=cert.seed, profile=cert.profile, check_ids=ran_subset(cert)),
        "checks": [check_to_dict(result) for result in cert.results],
    }


def report_dict(
    runs: Sequence[DecoderRun],
    *,
    unloadable: Sequence[Unloadable] = (),
    run_state: str = "finished",
    note: str | None = None,
) -> dict[str, Any]:
    """The whole JSON report.

    ``certified`` is true only when the run finished, at least one decoder ran, every one
    is certified (each complete, nothing blocking) and no registered decoder was
    unloadable. ``run_state`` is ``finished``, ``interrupted`` (Ctrl-C: the report holds
    what ran, marked partial) or ``running`` (the placeholder written at the start).
    """
    if run_state not in RUN_STATES:
        raise ValueError(f"run_state must be one of {RUN_STATES}, got {run_state!r}")
    decoders = [run_to_dict(run) for run in runs]
    partial = run_state != "finished" or any(entry["partial"] for entry in decoders)
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kit_version": KIT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_state": run_state,
        "certified": bool(decoders) and not partial and not unloadable
        and all(entry["certified"] for entry in decoders),
        "complete": bool(decoders) and not partial and all(entry["complete"] for entry in decoders),
        "subset": any(entry["subset"] for entry in decoders),
        "partial": partial,
        "note": None if note is None else clean_text(note),
        "unloadable": [_unloadable_to_dict(entry) for entry in unloadable],
    }
    if len(decoders) == 1:
        for key, value in decoders[0].items():
            report.setdefault(key, value)
    report["decoders"] = decoders  # last, so a person reading the file sees the verdict first
    return report


def _unloadable_to_dict(entry: Unloadable) -> dict[str, Any]:
    return {
        "name": clean_text(entry.name),
        "target": clean_text(entry.target),
        "distribution": None if entry.distribution is None else clean_text(entry.distribution),
        "error": clean_text(entry.error),
    }

"""The JSON report (schema: ``docs/report-schema.md``) as text; :mod:`.outputs` writes it."""

from __future__ import annotations

import json
from collections.abc import Sequence

from conformance.core.results import DecoderRun, Unloadable
from conformance.reports.record import report_dict

__all__ = ["json_text"]


def json_text(
    runs: Sequence[DecoderRun],
    *,
    unloadable: Sequence[Unloadable] = (),
    run_state: str = "finished",
    note: str | None = None,
) -> str:
    """The whole report as strict JSON text (no NaN, pure ASCII, so any encoding reads it)."""
    report = report_dict(runs, unloadable=unloadable, run_state=run_state, note=note)
    return json.dumps(report, indent=2, allow_nan=False, ensure_ascii=True) + "\n"

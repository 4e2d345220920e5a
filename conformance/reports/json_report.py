"""The JSON report file (schema: ``docs/report-schema.md``), written atomically."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conformance.reports.outputs import atomic_write
from conformance.reports.record import UnloadableDecoder, as_runs, report_dict
from conformance.core.results import Certification, DecoderRun

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = ["dumps", "to_json_dict", "write_json_report"]


def to_json_dict(
    runs: Sequence[DecoderRun | Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | Mapping[str, Any] | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
    run_state: str = "finished",
    note: str | None = None,
) -> dict[str, Any]:
    """The whole JSON report for ``runs`` (``DecoderRun`` records; certifications with
    parallel ``targets``/``specs``/``decoder_configs`` are accepted too)."""
    records = as_runs(runs, targets=targets, specs=specs, decoder_configs=decoder_configs)
    return report_dict(records, unloadable=unloadable, run_state=run_state, note=note)


def dumps(report: Mapping[str, Any]) -> str:
    """The report as strict JSON text (no NaN, pure ASCII, so any encoding reads it)."""
    return json.dumps(report, indent=2, allow_nan=False, ensure_ascii=True) + "\n"


def write_json_report(
    path: str | Path,
    runs: Sequence[DecoderRun | Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | Mapping[str, Any] | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
    run_state: str = "finished",
    note: str | None = None,
) -> Path:
    """Write :func:`to_json_dict` to ``path`` atomically (a temporary file in the same
    folder, then ``os.replace``): a reader sees the old file or the new one, never half.
    The folder must exist."""
    report = to_json_dict(
        runs, targets=targets, specs=specs, decoder_configs=decoder_configs,
        unloadable=unloadable, run_state=run_state, note=note,
    )
    return atomic_write(path, dumps(report))

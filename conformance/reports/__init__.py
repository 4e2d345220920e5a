"""Reports: one record per decoder run (:class:`~conformance.core.results.DecoderRun`), thin renderers.

- :mod:`~conformance.reports.record`: the record as the JSON schema's dict, values made
  safe to write, the replay command, a check's docs page, error against tolerance.
- :mod:`~conformance.reports.json_report`: the JSON report file.
- :mod:`~conformance.reports.text`: terminal lines and pytest failure text.
- :mod:`~conformance.reports.markdown`: the Markdown certificate.
- :mod:`~conformance.reports.junit`: pytest/JUnit ``conformance_*`` properties.
- :mod:`~conformance.reports.github`: GitHub Actions job summary and annotations.
- :mod:`~conformance.reports.outputs`: output paths checked before the run, a placeholder
  claiming them, atomic writes after it (:func:`prepare_outputs`, :func:`write_reports`).
"""

from __future__ import annotations

from conformance.reports.json_report import to_json_dict, write_json_report
from conformance.reports.markdown import to_markdown, write_markdown_report
from conformance.reports.outputs import (
    atomic_write,
    check_outputs,
    claim_outputs,
    prepare_outputs,
    write_outputs,
    write_reports,
)
from conformance.reports.record import (
    DEFAULT_REPORT_PATH,
    SCHEMA_VERSION,
    decoder_config_text,
    jsonable,
    kit_version,
    replay_command,
    spec_fields,
)
from conformance.reports.text import format_failure, format_run

__all__ = [
    "DEFAULT_REPORT_PATH",
    "SCHEMA_VERSION",
    "atomic_write",
    "check_outputs",
    "claim_outputs",
    "decoder_config_text",
    "format_failure",
    "format_run",
    "jsonable",
    "kit_version",
    "prepare_outputs",
    "replay_command",
    "spec_fields",
    "to_json_dict",
    "to_markdown",
    "write_json_report",
    "write_markdown_report",
    "write_outputs",
    "write_reports",
]

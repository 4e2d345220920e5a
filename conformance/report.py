"""Old home of the report renderers; they now live in :mod:`conformance.reports`.

Kept as re-exports for one deprecation cycle: import from ``conformance.reports`` (or its
modules) in new code.
"""

from __future__ import annotations

from conformance.reports.json_report import to_json_dict, write_json_report
from conformance.reports.markdown import to_markdown, write_markdown_report
from conformance.reports.record import (
    DEFAULT_REPORT_PATH,
    SCHEMA_VERSION,
    UnloadableDecoder,
    check_to_dict,
    decoder_config_text,
    jsonable,
    kit_version,
    replay_command,
    spec_fields,
)
from conformance.reports.text import (
    evidence_highlights,
    format_certification,
    format_failure,
    format_run,
)
from conformance.core.results import STATUSES

__all__ = [
    "DEFAULT_REPORT_PATH",
    "SCHEMA_VERSION",
    "STATUSES",
    "UnloadableDecoder",
    "check_to_dict",
    "decoder_config_text",
    "evidence_highlights",
    "format_certification",
    "format_failure",
    "format_run",
    "jsonable",
    "kit_version",
    "replay_command",
    "spec_fields",
    "to_json_dict",
    "to_markdown",
    "write_json_report",
    "write_markdown_report",
]

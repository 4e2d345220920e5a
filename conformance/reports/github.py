"""GitHub Actions: the certificate as the job summary, failed checks as annotations.

When ``$GITHUB_STEP_SUMMARY`` is set (GitHub sets it in every job step) the Markdown
certificate is appended to that file, so it shows on the run's summary page. When
``$GITHUB_ACTIONS`` is ``true`` every failed check is printed as an ``::error``
workflow command (an inconclusive or unrun one as ``::warning``), which GitHub shows as
an annotation on the run and the pull request. The escaping follows GitHub's workflow
command rules: ``%``, CR and LF in the message; those and ``:`` and ``,`` in properties.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from conformance.core.links import docs_pointer
from conformance.core.replay import certify_command
from conformance.core.results import DecoderRun, Unloadable
from conformance.core.values import clean_text

__all__ = ["annotation_lines", "append_step_summary", "in_actions", "step_summary_path"]

#: Lines of a failure message an annotation keeps (the report has the whole message).
ANNOTATION_LINES = 12


def in_actions(env: Mapping[str, str]) -> bool:
    """True inside a GitHub Actions job."""
    return env.get("GITHUB_ACTIONS") == "true"


def step_summary_path(env: Mapping[str, str]) -> Path | None:
    """The job summary file, when GitHub Actions provides one."""
    value = env.get("GITHUB_STEP_SUMMARY")
    return Path(value) if value else None


def append_step_summary(path: Path, markdown: str) -> None:
    """Append the certificate to the job summary (other steps may have written to it)."""
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(markdown if markdown.endswith("\n") else markdown + "\n")
        handle.write("\n")


def _data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _property(text: str) -> str:
    return _data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(runs: Sequence[DecoderRun], *, unloadable: Sequence[Unloadable] = ()) -> Iterator[str]:
    """One workflow command per check that denies certification (and per unloadable decoder)."""
    for run in runs:
        cert = run.certification
        for result in cert.results:
            if result.status in ("passed", "xfailed", "skipped"):
                continue
            level = "error" if result.status in ("failed", "error") else "warning"
            lines = clean_text(result.message).splitlines() or ["(no message)"]
            if len(lines) > ANNOTATION_LINES:
                lines = [*lines[:ANNOTATION_LINES], f"... ({len(lines) - ANNOTATION_LINES} more lines in the report)"]
            lines += [
                f"Docs: {docs_pointer(result.check_id)}",
                "Replay: " + (result.replay or certify_command(
                    run.target, seed=cert.seed, profile=cert.profile, check_ids=[result.check_id]
                )),
            ]
            title = f"conformance: {clean_text(cert.decoder)} {result.status} {result.check_id}"
            yield f"::{level} title={_property(title)}::{_data(chr(10).join(lines))}"
    for entry in unloadable:
        title = f"conformance: {clean_text(entry.name)} could not be loaded"
        yield f"::error title={_property(title)}::{_data(clean_text(entry.error))}"

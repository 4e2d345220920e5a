"""Terminal text: a line per check, failures in full (wrapped), the verdict, one replay line each.

Pieces are separate functions so a live run loop can print each check's line as it
finishes (:func:`header_lines`, :func:`check_line`, :func:`failure_lines`,
:func:`verdict_line`), and :func:`format_run` composes them for a whole run. The pytest
plugin's failure text is :func:`format_failure`.

Error against tolerance is said one way everywhere: "largest error E is X% of the
tolerance" (see :func:`conformance.core.ratios.ratio_text`).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.core.links import docs_pointer
from conformance.core.replay import certify_command
from conformance.core.results import Certification, CheckResult, DecoderRun, Unloadable
from conformance.core.values import clean_text, is_number
from conformance.reports.record import summary, tolerance_phrase

__all__ = [
    "LABELS",
    "check_line",
    "closing_lines",
    "evidence_highlights",
    "failure_lines",
    "format_failure",
    "format_run",
    "header_lines",
    "terminal_width",
    "verdict_line",
    "wrap",
]

LABELS = {
    "passed": "PASS",
    "failed": "FAIL",
    "error": "ERROR",
    "xfailed": "XFAIL",
    "skipped": "SKIP",
    "inconclusive": "INCONCLUSIVE",
    "not_run": "NOT RUN",
}

#: Statuses whose message is printed in full under the check's line.
DETAILED = ("failed", "error", "inconclusive")

_HIGHLIGHT_COUNTS = (
    ("examples", "example"),
    ("rollouts", "rollout"),
    ("decoder_calls", "decoder call"),
    ("mapper_queries", "mapper query"),
)


def terminal_width(default: int = 100) -> int:
    """Columns to wrap long message lines to: the terminal's, kept between 100 and 120.

    Never narrower than 100, so that ordinary message lines stay whole (and searchable in
    logs); only the very long one-line messages get broken up."""
    columns = shutil.get_terminal_size((default, 24)).columns
    return max(100, min(120, columns))


def wrap(text: str, *, width: int, indent: str = "") -> list[str]:
    """``text``'s lines, each longer than ``width`` broken at spaces (continuations indented
    two more), every line prefixed by ``indent``. Short lines, and the layout of code in
    a message, stay as they are."""
    out: list[str] = []
    for line in clean_text(text).splitlines() or [""]:
        if len(indent) + len(line) <= width:
            out.append((indent + line).rstrip())
            continue
        lead = indent + line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(
            line.strip(), width=max(len(lead) + 20, width), initial_indent=lead,
            subsequent_indent=lead + "  ", break_long_words=True, break_on_hyphens=False,
        )
    return out


def evidence_highlights(evidence: Mapping[str, Any], *, bounds: bool = True) -> str:
    """A short phrase with the evidence a reader scans for: volume, then error against tolerance.

    For example ``40 examples, 212 decoder calls; largest error 3.1e-07 is 2.6% of the
    tolerance (atol 1.2e-05, rtol 1.2e-05)``. Absent keys are left out.
    """
    pieces: list[str] = []
    counts = [
        _count(evidence[key], label)
        for key, label in _HIGHLIGHT_COUNTS
        if _is_int(evidence.get(key)) and evidence[key] > 0
    ]
    if counts:
        pieces.append(", ".join(counts))
    phrase = tolerance_phrase(evidence, bounds=bounds)
    if phrase:
        pieces.append(phrase)
    return "; ".join(pieces)


def _count(n: int, noun: str) -> str:
    if n == 1:
        return f"1 {noun}"
    return f"{n} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _first_line(text: str) -> str:
    text = clean_text(text).strip()
    return text.splitlines()[0] if text else ""


def header_lines(
    decoder: str, *, target: str | None, profile: str, seed: int, environment: Mapping[str, Any]
) -> list[str]:
    """``Conformance of NAME (TARGET)`` and the setting it ran in."""
    setting = ", ".join(
        str(piece)
        for piece in (
            f"profile {profile}",
            f"seed {seed}",
            environment.get("device"),
            environment.get("dtype"),
            f"torch {environment['torch']}" if environment.get("torch") else None,
        )
        if piece
    )
    title = f"Conformance of {clean_text(decoder)}"
    if target:
        title += f" ({target})"
    return [title, f"  {setting}"]


def check_line(result: CheckResult, *, id_width: int = 0, label_width: int = 5) -> str:
    """One check's line: label, id, time and what it exercised (or why it was skipped)."""
    label = LABELS.get(result.status, result.status.upper())
    duration = result.duration_s if is_number(result.duration_s) else 0.0
    row = f"  {label:<{label_width}}  {result.check_id:<{id_width}}  {duration:7.2f}s"
    # A pass keeps its line short; a failure names the atol and rtol it broke.
    extra = evidence_highlights(result.evidence, bounds=result.status != "passed")
    if result.status in ("skipped", "xfailed", "not_run") and result.message:
        extra = _first_line(result.message)
    if extra:
        row += f"  {extra}"
    return row.rstrip()


def pin_lines(result: CheckResult, *, indent: str) -> list[str]:
    """For an expected failure declared without a fingerprint, the declaration that pins it
    to what was seen, ready to paste (empty otherwise)."""
    pin = result.evidence.get("pin_with") if result.status == "xfailed" else None
    return [f"{indent}pin with: {pin}"] if isinstance(pin, str) else []


def failure_lines(
    result: CheckResult,
    *,
    target: str | None,
    seed: int,
    profile: str,
    width: int | None = None,
    indent: str = "         ",
) -> list[str]:
    """A failed (or errored, or inconclusive) check's message wrapped to ``width``, the page
    that explains the check, and the one command that replays it."""
    width = width or terminal_width()
    message = clean_text(result.message).strip() or "(the check gave no message)"
    lines = wrap(message, width=width, indent=indent)
    lines.append(f"{indent}docs: {docs_pointer(result.check_id)}")
    replay = result.replay or certify_command(target, seed=seed, profile=profile, check_ids=[result.check_id])
    lines.append(f"{indent}replay: {replay}")
    return lines


def verdict_line(run: DecoderRun) -> str:
    """``NAME: CERTIFIED (17 passed, 1 skipped) in 5.3 s``, saying why a subset or an
    interrupted run is not certified. The time is the run's wall clock (building and
    worker restarts included; checks that ran side by side counted once); a record
    without it gives the sum of its checks' times."""
    certification = run.certification
    counts = ", ".join(f"{n} {status.replace('_', ' ')}" for status, n in summary(certification).items() if n)
    verdict = "CERTIFIED" if certification.certified else "NOT CERTIFIED"
    total = run.wall_s if is_number(run.wall_s) else sum(
        r.duration_s for r in certification.results if is_number(r.duration_s)
    )
    line = f"{clean_text(certification.decoder)}: {verdict} ({counts or 'no checks run'}) in {total:.1f} s"
    if certification.interrupted:
        line += "; the run was interrupted, so this report is partial and certifies nothing"
    elif certification.subset:
        line += "; only the checks asked for with --check ran, and a subset never certifies"
    return line


def format_run(run: DecoderRun, *, width: int | None = None) -> str:
    """A readable summary of one decoder: a line per check, failures in full, the verdict."""
    cert = run.certification
    lines = header_lines(
        cert.decoder, target=run.target, profile=cert.profile, seed=cert.seed, environment=cert.environment
    )
    lines.append("")
    id_width = max((len(r.check_id) for r in cert.results), default=0)
    label_width = max((len(LABELS.get(r.status, r.status)) for r in cert.results), default=5)
    for result in cert.results:
        lines.append(check_line(result, id_width=id_width, label_width=max(5, label_width)))
        lines += pin_lines(result, indent=" " * (max(5, label_width) + 4))
        if result.status in DETAILED:
            lines += failure_lines(
                result, target=run.target, seed=cert.seed, profile=cert.profile, width=width,
                indent=" " * (max(5, label_width) + 4),
            )
    for note in run.notes:
        lines += wrap(f"note: {note}", width=width or terminal_width(), indent="  ")
    lines += ["", verdict_line(run)]
    return "\n".join(lines)


def closing_lines(
    runs: Sequence[DecoderRun],
    *,
    seed: int,
    profile: str,
    targets: Sequence[str],
    check_ids: Sequence[str] = (),
    unloadable: Sequence[Unloadable] = (),
    interrupted: bool = False,
) -> list[str]:
    """What the command prints after every decoder's summary: unloadable decoders, the
    overall verdict (several decoders) and the one command that replays the whole run."""
    lines: list[str] = []
    if unloadable:
        lines.append(f"Could not load {len(unloadable)} registered decoder(s); they were not certified:")
        for failed in unloadable:
            origin = f" (from {failed.distribution})" if failed.distribution else ""
            lines.append(f"  {failed.name} = {failed.target}{origin}")
            lines += ["      " + line for line in clean_text(failed.error).splitlines()]
    certified = bool(runs) and not unloadable and not interrupted and all(r.certification.certified for r in runs)
    if len(runs) + len(unloadable) > 1 or interrupted:
        verdicts = ", ".join(
            [
                f"{r.certification.decoder} {'certified' if r.certification.certified else 'NOT certified'}"
                for r in runs
            ]
            + [f"{entry.name} unloadable" for entry in unloadable]
        )
        tail = "; interrupted, the report is partial" if interrupted else ""
        lines.append(f"Verdict: {'CERTIFIED' if certified else 'NOT CERTIFIED'} ({verdicts}){tail}")
    if runs:
        lines.append(f"Seed {seed}, profile {profile}. Replay this run with:")
        lines.append(f"  {certify_command(list(targets), seed=seed, profile=profile, check_ids=check_ids)}")
    return lines


def format_failure(result: CheckResult, *, replay: Sequence[str] = ()) -> str:
    """What a person needs to act on a failed check (pytest's failure text): the message,
    the evidence, the check's page, then each replay command once."""
    lines = [f"conformance check {result.check_id} {result.status}:"]
    message = clean_text(result.message).strip() or "(the check gave no message)"
    lines += wrap(message, width=terminal_width(), indent="  ")
    highlights = evidence_highlights(result.evidence)
    if highlights:
        lines.append(f"  evidence: {highlights}")
    lines.append(f"  docs: {docs_pointer(result.check_id)}")
    commands = list(dict.fromkeys(replay))
    if commands:
        lines.append("replay with:")
        lines += [f"  {command}" for command in commands]
    return "\n".join(lines)


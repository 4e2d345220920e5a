"""The Markdown certificate: what a reviewer reads in a pull request or a job summary.

For each decoder: the verdict (saying why a subset or an interrupted run certifies
nothing) and the command that replays the run, a table of every check (status,
examples, decoder calls, largest error, error as a share of the tolerance, time), each
failure in full, wrapped, with a link to the check's page and the one command that
replays it, the expected failures and skips with their reasons, the configuration (spec
fields, decoder config) and the environment.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from conformance.core.links import check_docs, docs_base, explain_command
from conformance.core.ratios import ratio_text
from conformance.core.replay import certify_command
from conformance.core.results import Certification, DecoderRun, Unloadable
from conformance.core.values import clean_text, is_number, jsonable
from conformance.core.version import KIT_VERSION
from conformance.reports.record import category, ran_subset, summary
from conformance.reports.text import evidence_highlights, wrap

__all__ = ["WRAP_WIDTH", "placeholder_markdown", "to_markdown"]

#: Message lines longer than this are wrapped inside their code block.
WRAP_WIDTH = 100

_STATUS = {
    "passed": "passed",
    "failed": "**FAILED**",
    "error": "**ERROR** (kit bug)",
    "xfailed": "expected failure",
    "skipped": "skipped",
    "inconclusive": "**INCONCLUSIVE**",
    "not_run": "**NOT RUN**",
}


def to_markdown(
    records: Sequence[DecoderRun],
    *,
    unloadable: Sequence[Unloadable] = (),
    run_state: str = "finished",
    note: str | None = None,
) -> str:
    """The certificate of ``records``."""
    certs = [run.certification for run in records]
    partial = run_state != "finished" or any(cert.interrupted for cert in certs)
    all_certified = bool(certs) and not partial and not unloadable and all(c.certified for c in certs)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "CERTIFIED" if all_certified else "NOT CERTIFIED"
    lines = [
        "# Conformance certificate",
        "",
        f"**{verdict}**: {sum(c.certified for c in certs) if not partial else 0} of "
        f"{_plural(len(certs) + len(unloadable), 'decoder')} certified; conformance kit "
        f"{KIT_VERSION}, {created}.",
        "",
    ]
    if partial:
        lines += [
            "> **Partial report**: the run was interrupted before every check had run, so "
            "it certifies nothing.",
            "",
        ]
    if note:
        lines += [_inline(note), ""]
    if records:
        lines += [
            "| Decoder | Target | Verdict | Checks | Profile | Seed |",
            "|---|---|---|---|---|---|",
        ]
        for run in records:
            cert = run.certification
            lines.append(
                _row(
                    _code(cert.decoder),
                    _code(run.target) if run.target else "",
                    "**CERTIFIED**" if cert.certified and not partial else "**NOT CERTIFIED**",
                    _counts_text(cert),
                    cert.profile,
                    _code(str(cert.seed)),
                )
            )
        lines.append("")
    if unloadable:
        lines += [
            "## Registered decoders that could not be loaded",
            "",
            "Each is registered under the entry-point group `flashdreams.conformance.decoders`; "
            "none of its checks ran, so the run is not certified.",
            "",
        ]
        for entry in unloadable:
            origin = f" (from {_code(entry.distribution)})" if entry.distribution else ""
            lines += [f"- {_code(entry.name)} = {_code(entry.target)}{origin}:", ""]
            lines += _fenced(entry.error, indent="  ")
            lines.append("")
    for run in records:
        lines += _decoder_section(run, partial=partial)
    return "\n".join(lines).rstrip() + "\n"


def placeholder_markdown(note: str) -> str:
    """The certificate a run writes at its start: not certified, not finished."""
    return (
        "# Conformance certificate\n\n"
        "**NOT CERTIFIED**: this run has not finished.\n\n"
        f"{_inline(note)}\n"
    )


def _decoder_section(run: DecoderRun, *, partial: bool) -> list[str]:
    cert = run.certification
    target = run.target
    verdict = "CERTIFIED" if cert.certified and not partial else "NOT CERTIFIED"
    rerun = certify_command(target, seed=cert.seed, profile=cert.profile, check_ids=ran_subset(cert))
    lines = [
        f"## {_inline(cert.decoder)}: {verdict}",
        "",
        f"{_counts_text(cert)}; profile {_code(cert.profile)}, seed {_code(str(cert.seed))}, "
        f"{sum(r.duration_s for r in cert.results if is_number(r.duration_s)):.1f} s of checks"
        + (", in a supervised worker process." if run.supervised else "."),
        "",
    ]
    if cert.interrupted:
        lines += ["The run was interrupted: checks marked not run never ran, so this decoder is not certified.", ""]
    elif cert.subset:
        lines += [
            "Only the checks asked for with `--check` ran. A subset run reports its checks but "
            "never certifies: run every check to certify.",
            "",
        ]
    lines += [
        f"Replay this run: {_code(rerun)}",
        "",
        "### Checks",
        "",
        "| Check | Category | Status | Examples | Decoder calls | Largest error | Error / tolerance | Time |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    tolerances: dict[str, None] = {}
    for result in cert.results:
        evidence = result.evidence
        tolerance = evidence.get("tolerance")
        if isinstance(tolerance, Mapping) and is_number(tolerance.get("atol")):
            tolerances[_tolerance_text(tolerance)] = None
        lines.append(
            _row(
                _code(result.check_id),
                category(result.check_id) or "",
                _STATUS.get(result.status, result.status),
                _count_cell(evidence.get("examples")),
                _count_cell(evidence.get("decoder_calls")),
                _error_cell(evidence),
                _ratio_cell(evidence),
                f"{result.duration_s:.2f} s" if is_number(result.duration_s) else "-",
            )
        )
    lines.append("")
    if tolerances:
        lines += [
            "Numerical comparisons pass when |actual - expected| <= atol + rtol * |expected| "
            "for every element and the RMS error of every pixel frame is <= the frame RMS "
            f"bound, with {'; '.join(tolerances)}. *Error / tolerance* is the largest error "
            "as a share of what the tolerance allows (0% exact, over 100% fails); with a "
            "frame RMS figure, the larger of the two shares.",
            "",
        ]

    failures = [r for r in cert.results if r.status in ("failed", "error", "inconclusive")]
    if failures:
        lines += ["### Failures", ""]
        for result in failures:
            lines += [f"#### {_code(result.check_id)}: {result.status}", ""]
            message = clean_text(result.message).strip() or "(the check gave no message)"
            lines += _fenced("\n".join(wrap(message, width=WRAP_WIDTH)))
            highlights = evidence_highlights(result.evidence)
            if highlights:
                lines += ["", f"Evidence: {_inline(highlights)}."]
            command = result.replay or certify_command(
                target, seed=cert.seed, profile=cert.profile, check_ids=[result.check_id]
            )
            lines += [
                "",
                "What this check promises: " + _docs_link(result.check_id),
                "",
                f"Replay this check: {_code(command)}",
                "",
            ]

    noted = [r for r in cert.results if r.status in ("xfailed", "skipped", "not_run")]
    if noted:
        lines += ["### Expected failures, skipped and unrun checks", ""]
        for result in noted:
            why = _first_line(result.message) or "(no reason given)"
            lines.append(f"- {_code(result.check_id)} ({_STATUS[result.status].strip('*').lower()}): {_inline(why)}")
            pin = result.evidence.get("pin_with")
            if isinstance(pin, str):
                lines.append(f"  - pin it to what was seen: {_code(pin)}")
        lines.append("")

    if run.notes:
        lines += ["### Notes", ""]
        lines += [f"- {_inline(note)}" for note in run.notes]
        lines.append("")

    lines += ["### Configuration", ""]
    if run.spec is None:
        lines += ["The decoder spec was not recorded for this report.", ""]
    else:
        lines += ["| DecoderSpec field | Value |", "|---|---|"]
        for name, value in run.spec.items():
            lines.append(_row(_code(str(name)), _code(_compact(jsonable(value)))))
        lines.append("")
    if run.decoder_config is not None:
        lines += ["Decoder config (`str(decoder.config)`):", ""]
        lines += _fenced(clean_text(run.decoder_config))
        lines.append("")

    lines += ["### Environment", "", "| Key | Value |", "|---|---|"]
    for key, value in cert.environment.items():
        lines.append(_row(_code(clean_text(key)), _inline(_compact(jsonable(value)))))
    lines.append("")
    return lines


def _counts_text(cert: Certification) -> str:
    return ", ".join(
        f"{n} {status.replace('_', ' ')}" for status, n in summary(cert).items() if n
    ) or "no checks run"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _count_cell(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def _error_cell(evidence: Mapping[str, Any]) -> str:
    error = evidence.get("max_abs_error")
    if is_number(error):
        return f"{error:.3g}"
    return clean_text(error) if isinstance(error, str) else "-"


def _ratio_cell(evidence: Mapping[str, Any]) -> str:
    """The largest error as a share of the tolerance (the larger of the elementwise and the
    frame RMS share), the same figure the terminal prints."""
    ratio = evidence.get("max_error_to_tolerance")
    if not is_number(ratio):
        return clean_text(ratio) if isinstance(ratio, str) else "-"
    rms_ratio = evidence.get("max_frame_rms_to_tolerance")
    if is_number(rms_ratio) and rms_ratio > ratio:
        return f"{ratio_text(rms_ratio)} (frame RMS)"
    return ratio_text(ratio)


def _tolerance_text(tolerance: Mapping[str, Any]) -> str:
    text = f"atol {tolerance['atol']:.3g}, rtol {float(tolerance.get('rtol') or 0.0):.3g}"
    if is_number(tolerance.get("rms")):
        text += f", frame RMS {tolerance['rms']:.3g}"
    source = tolerance.get("source")
    return f"{text} ({clean_text(source)})" if source else text


def _first_line(text: str) -> str:
    text = clean_text(text).strip()
    return text.splitlines()[0] if text else ""


def _compact(value: Any) -> str:
    """A JSON-ready value on one line (strings as themselves)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), allow_nan=False, default=str, ensure_ascii=False)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _docs_link(check_id: str) -> str:
    """The check's published page as a link when ``CONFORMANCE_DOCS_BASE`` says where it is
    (a path inside the kit's source would be a dead link in a pull request), and the
    command that explains it offline in any case."""
    command = _code(explain_command(check_id))
    if docs_base() is None:
        return command
    page = check_docs(check_id)
    return f"[{_inline(page)}]({page.replace(' ', '%20')}), or {command}"


def _inline(text: Any) -> str:
    """Text on one line, safe inside a table cell or list item."""
    return " ".join(clean_text(text).split())


def _code(text: Any) -> str:
    """An inline code span that survives backticks in ``text``."""
    text = _inline(text)
    ticks = 1
    while "`" * ticks in text:
        ticks += 1
    fence = "`" * ticks
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fenced(text: str, *, indent: str = "") -> list[str]:
    """A fenced code block longer than any backtick run inside ``text``."""
    text = clean_text(text)
    ticks = 3
    while "`" * ticks in text:
        ticks += 1
    fence = "`" * ticks
    body = [indent + line if line else line for line in text.splitlines()]
    return [indent + fence + "text", *body, indent + fence]

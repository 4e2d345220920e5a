"""Render certification results for machines (JSON) and people (terminal text).

Everything that turns :class:`~conformance.results.Certification` objects into a
report lives here, so the command line (terminal summary, JSON report, Markdown
certificate) and the pytest plugin (failure text, JUnit XML properties) all describe a
result the same way.

JSON report, ``schema_version`` 1
---------------------------------
``docs/report-schema.md`` documents every key (and is checked against real reports by
the tests). In short: one object per run, with ``schema_version``, ``kit_version``,
``created``, ``certified`` (every decoder certified and every registered decoder
loaded), ``unloadable`` (registered decoders that could not be loaded, for
``--installed`` runs) and ``decoders``, a list with one ``DECODER`` object per
certified ``DecoderSpec``: ``decoder``, ``target``, ``certified``, ``profile``,
``seed``, ``spec`` (the spec's fields), ``decoder_config`` (``str`` of the decoder's
``config``, when it has one), ``environment``, ``summary``, ``replay`` and ``checks``
(``id``, ``category``, ``status``, ``message``, ``duration_s``, ``evidence``). A report
about exactly one decoder also repeats that decoder's keys at top level
(``report["decoder"]``, ``report["checks"]``, ...). Values JSON cannot hold are
converted (tensors and tuples to lists, dtypes and devices to strings, non-finite
floats to ``"nan"``, ``"inf"``, ``"-inf"``), so the file is strict JSON.

Markdown certificate
--------------------
:func:`to_markdown` renders the same content for a person reviewing a pull request:
the verdict, the decoder's configuration (spec fields and decoder config), the
environment, a table of every check with its status, examples run, largest error and
margin to the tolerance, and for each failure its message (which carries the minimal
example) and the command that replays it.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import TypeGuard

if TYPE_CHECKING:
    from conformance.results import Certification, CheckResult
    from conformance.spec import DecoderSpec

__all__ = [
    "DEFAULT_REPORT_PATH",
    "SCHEMA_VERSION",
    "STATUSES",
    "UnloadableDecoder",
    "certification_to_dict",
    "check_to_dict",
    "decoder_config_text",
    "evidence_highlights",
    "format_certification",
    "format_failure",
    "jsonable",
    "kit_version",
    "replay_command",
    "spec_fields",
    "to_json_dict",
    "to_markdown",
    "write_json_report",
    "write_markdown_report",
]

SCHEMA_VERSION = 1
"""Bumped whenever a key is removed or changes meaning; adding keys keeps the version."""

DEFAULT_REPORT_PATH = "conformance-report.json"
"""Where ``python -m conformance certify`` writes its report unless told otherwise."""

from conformance.results import STATUSES  # noqa: E402  (one home for the statuses)
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


class UnloadableDecoder(Protocol):
    """A registered decoder that could not be loaded (see :mod:`conformance.discovery`)."""

    @property
    def name(self) -> str: ...  # the entry point's name
    @property
    def target(self) -> str: ...  # its MODULE:ATTR value
    @property
    def distribution(self) -> str | None: ...  # the installed package that registers it
    @property
    def error(self) -> str: ...  # why it could not be loaded


def spec_fields(spec: DecoderSpec) -> dict[str, Any]:
    """The spec's fields as JSON-ready values, in declaration order.

    ``factory`` is given by its qualified name (the callable itself cannot be written
    down); everything else is the value the checks ran with.
    """
    out: dict[str, Any] = {}
    for spec_field in fields(spec):
        value = getattr(spec, spec_field.name)
        out[spec_field.name] = _callable_name(value) if spec_field.name == "factory" else jsonable(value)
    return out


def decoder_config_text(decoder: Any) -> str | None:
    """``str(decoder.config)`` when the decoder has a ``config`` (flashdreams decoders keep
    the config they were built from there); ``None`` otherwise."""
    config = getattr(decoder, "config", None)
    if config is None:
        return None
    try:
        return str(config)
    except Exception as err:  # noqa: BLE001 - a report must not die on a broken __str__
        return f"<str(config) raised {type(err).__name__}: {err}>"


def _callable_name(fn: Any) -> str:
    wrapped = getattr(fn, "__wrapped__", None)  # recorders in the CLI wrap the factory
    fn = wrapped if wrapped is not None else fn
    owner = getattr(fn, "__self__", None)
    if owner is not None and not isinstance(owner, ModuleType) and hasattr(fn, "__name__"):
        # A bound method (``config.setup``): name the object's class, not the defining base.
        cls = owner if isinstance(owner, type) else type(owner)
        return f"{cls.__module__}.{cls.__qualname__}.{fn.__name__}"
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        return repr(fn)
    return f"{module}.{name}" if module else str(name)


def certification_to_dict(
    certification: Certification,
    *,
    target: str | None = None,
    spec: DecoderSpec | None = None,
    decoder_config: str | None = None,
) -> dict[str, Any]:
    """One ``DECODER`` object of the report (see ``docs/report-schema.md``)."""
    summary = {status: 0 for status in STATUSES}
    for result in certification.results:
        summary[result.status] = summary.get(result.status, 0) + 1
    return {
        "decoder": certification.decoder,
        "target": target,
        "certified": bool(certification.certified),
        "profile": certification.profile,
        "seed": certification.seed,
        "spec": None if spec is None else spec_fields(spec),
        "decoder_config": decoder_config,
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


def _parallel(name: str, values: Sequence[Any] | None, count: int) -> list[Any]:
    """``values`` (one per certification) as a list, or ``None`` for each when not given."""
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ValueError(
            f"got {len(values)} {name} for {count} certifications; "
            f"pass one {name[:-1]} per certification"
        )
    return list(values)


def to_json_dict(
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
) -> dict[str, Any]:
    """The whole JSON report for ``certifications``.

    ``targets``, ``specs`` and ``decoder_configs``, when given, run parallel to
    ``certifications``: the ``MODULE:ATTR`` each decoder was loaded from (for the replay
    command), its spec and its config text. ``unloadable`` lists registered decoders
    that could not be loaded; any of them makes the report not certified.
    """
    count = len(certifications)
    rows = zip(
        certifications,
        _parallel("targets", targets, count),
        _parallel("specs", specs, count),
        _parallel("decoder_configs", decoder_configs, count),
    )
    decoders = [
        certification_to_dict(cert, target=target, spec=spec, decoder_config=config)
        for cert, target, spec, config in rows
    ]
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "kit_version": kit_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "certified": all(entry["certified"] for entry in decoders) and not unloadable,
        "unloadable": [_unloadable_to_dict(entry) for entry in unloadable],
    }
    if len(decoders) == 1:
        for key, value in decoders[0].items():
            report.setdefault(key, value)
    report["decoders"] = decoders  # last, so a person reading the file sees the verdict first
    return report


def _unloadable_to_dict(entry: UnloadableDecoder) -> dict[str, Any]:
    return {
        "name": entry.name,
        "target": entry.target,
        "distribution": entry.distribution,
        "error": entry.error,
    }


def write_json_report(
    path: str | Path,
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
) -> Path:
    """Write :func:`to_json_dict` to ``path`` (parent folders created); return the path."""
    report = to_json_dict(
        certifications,
        targets=targets,
        specs=specs,
        decoder_configs=decoder_configs,
        unloadable=unloadable,
    )
    return _write(path, json.dumps(report, indent=2, allow_nan=False) + "\n")


def _write(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
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


# ---------------------------------------------------------------------------------
# Markdown certificate, for people reviewing a pull request


_MD_STATUS = {
    "passed": "passed",
    "failed": "**FAILED**",
    "error": "**ERROR** (kit bug)",
    "xfailed": "expected failure",
    "skipped": "skipped",
}


def to_markdown(
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
) -> str:
    """A Markdown certificate of ``certifications`` (same arguments as :func:`to_json_dict`).

    For each decoder: the verdict and the command that replays the run, a table of every
    check (status, examples run, decoder calls, largest error, margin to the tolerance,
    time), each failure in full (the message carries the minimal example) with the
    command that replays just that check, the expected failures and skips with their
    reasons, the configuration (spec fields, decoder config) and the environment.
    """
    count = len(certifications)
    rows = list(
        zip(
            certifications,
            _parallel("targets", targets, count),
            _parallel("specs", specs, count),
            _parallel("decoder_configs", decoder_configs, count),
        )
    )
    all_certified = all(cert.certified for cert in certifications) and not unloadable
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "CERTIFIED" if all_certified else "NOT CERTIFIED"
    lines = [
        "# Conformance certificate",
        "",
        f"**{verdict}**: {sum(c.certified for c in certifications)} of "
        f"{_plural(count + len(unloadable), 'decoder')} certified; conformance kit "
        f"{kit_version()}, {created}.",
        "",
    ]
    if certifications:
        lines += [
            "| Decoder | Target | Verdict | Checks | Profile | Seed |",
            "|---|---|---|---|---|---|",
        ]
        for cert, target, _, _ in rows:
            lines.append(
                _row(
                    _code(cert.decoder),
                    _code(target) if target else "",
                    "**CERTIFIED**" if cert.certified else "**NOT CERTIFIED**",
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
    for cert, target, spec, config in rows:
        lines += _decoder_section(cert, target, spec, config)
    return "\n".join(lines).rstrip() + "\n"


def write_markdown_report(
    path: str | Path,
    certifications: Sequence[Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
    unloadable: Sequence[UnloadableDecoder] = (),
) -> Path:
    """Write :func:`to_markdown` to ``path`` (parent folders created); return the path."""
    text = to_markdown(
        certifications,
        targets=targets,
        specs=specs,
        decoder_configs=decoder_configs,
        unloadable=unloadable,
    )
    return _write(path, text)


def _decoder_section(
    cert: Certification, target: str | None, spec: DecoderSpec | None, config: str | None
) -> list[str]:
    verdict = "CERTIFIED" if cert.certified else "NOT CERTIFIED"
    rerun = replay_command(target, seed=cert.seed, profile=cert.profile, check_ids=_subset(cert))
    lines = [
        f"## {_inline(cert.decoder)}: {verdict}",
        "",
        f"{_counts_text(cert)}; profile {_code(cert.profile)}, seed {_code(str(cert.seed))}, "
        f"{sum(r.duration_s for r in cert.results):.1f} s of checks.",
        "",
        f"Replay this run: {_code(rerun)}",
        "",
        "### Checks",
        "",
        "| Check | Category | Status | Examples | Decoder calls | Largest error | Margin to tolerance | Time |",
        "|---|---|---|---:|---:|---:|---|---:|",
    ]
    tolerances: dict[str, None] = {}
    for result in cert.results:
        evidence = result.evidence
        tolerance = evidence.get("tolerance")
        if isinstance(tolerance, Mapping) and _is_number(tolerance.get("atol")):
            tolerances[_tolerance_text(tolerance)] = None
        lines.append(
            _row(
                _code(result.check_id),
                _category(result.check_id) or "",
                _MD_STATUS.get(result.status, result.status),
                _count_cell(evidence.get("examples")),
                _count_cell(evidence.get("decoder_calls")),
                _error_cell(evidence),
                _margin_cell(evidence),
                f"{result.duration_s:.2f} s",
            )
        )
    lines.append("")
    if tolerances:
        lines += [
            "Numerical comparisons pass when |actual - expected| <= atol + rtol * |expected| "
            "for every element and the RMS error of every pixel frame is <= the frame RMS "
            f"bound, with {'; '.join(tolerances)}. The margin is the share of the tighter "
            "bound that the largest error left unused.",
            "",
        ]

    failures = [r for r in cert.results if r.status in ("failed", "error")]
    if failures:
        lines += ["### Failures", ""]
        for result in failures:
            lines += [f"#### {_code(result.check_id)}: {result.status}", ""]
            lines += _fenced(result.message.strip() or "(the check gave no message)")
            highlights = evidence_highlights(result.evidence)
            if highlights:
                lines += ["", f"Evidence: {_inline(highlights)}."]
            command = replay_command(
                target, seed=cert.seed, profile=cert.profile, check_id=result.check_id
            )
            lines += ["", f"Replay this check: {_code(command)}", ""]

    noted = [r for r in cert.results if r.status in ("xfailed", "skipped")]
    if noted:
        lines += ["### Expected failures and skipped checks", ""]
        for result in noted:
            why = _first_line(result.message) or "(no reason given)"
            lines.append(f"- {_code(result.check_id)} ({_MD_STATUS[result.status]}): {_inline(why)}")
        lines.append("")

    lines += ["### Configuration", ""]
    if spec is None:
        lines += ["The decoder spec was not recorded for this report.", ""]
    else:
        lines += ["| DecoderSpec field | Value |", "|---|---|"]
        for name, value in spec_fields(spec).items():
            lines.append(_row(_code(name), _code(_compact(value))))
        lines.append("")
    if config is not None:
        lines += ["Decoder config (`str(decoder.config)`):", ""]
        lines += _fenced(config)
        lines.append("")

    lines += ["### Environment", "", "| Key | Value |", "|---|---|"]
    for key, value in cert.environment.items():
        lines.append(_row(_code(str(key)), _inline(_compact(jsonable(value)))))
    lines.append("")
    return lines


def _counts_text(cert: Certification) -> str:
    summary = {status: 0 for status in STATUSES}
    for result in cert.results:
        summary[result.status] = summary.get(result.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in summary.items() if n) or "no checks run"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _count_cell(value: Any) -> str:
    return str(value) if _is_int(value) else "-"


def _error_cell(evidence: Mapping[str, Any]) -> str:
    error = evidence.get("max_abs_error")
    if _is_number(error):
        return _number(error)
    return str(error) if isinstance(error, str) else "-"


def _margin_cell(evidence: Mapping[str, Any]) -> str:
    """How much of the tolerance the largest error left unused; how far over it, if over.

    With a frame RMS figure too, the tighter of the two criteria (elementwise, frame RMS).
    """
    ratio = evidence.get("max_error_to_tolerance")
    if not _is_number(ratio):
        return str(ratio) if isinstance(ratio, str) else "-"
    rms_ratio = evidence.get("max_frame_rms_to_tolerance")
    if _is_number(rms_ratio) and rms_ratio > ratio:
        if rms_ratio <= 1:
            return f"frame RMS {1 - rms_ratio:.1%}"
        return f"exceeded ({rms_ratio:.3g}x the frame RMS bound)"
    if ratio <= 1:
        return f"{1 - ratio:.1%}"
    return f"exceeded ({ratio:.3g}x the tolerance)"


def _tolerance_text(tolerance: Mapping[str, Any]) -> str:
    text = f"atol {_number(tolerance['atol'])}, rtol {_number(tolerance.get('rtol', 0.0))}"
    if _is_number(tolerance.get("rms")):
        text += f", frame RMS {_number(tolerance['rms'])}"
    source = tolerance.get("source")
    return f"{text} ({source})" if source else text


def _compact(value: Any) -> str:
    """A JSON-ready value on one line (strings as themselves)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "), allow_nan=False, default=str)


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _inline(text: str) -> str:
    """Text on one line, safe inside a table cell or list item."""
    return " ".join(str(text).split())


def _code(text: str) -> str:
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
    ticks = 3
    while "`" * ticks in text:
        ticks += 1
    fence = "`" * ticks
    body = [indent + line if line else line for line in text.splitlines()]
    return [indent + fence + "text", *body, indent + fence]

"""One record per decoder run, turned into the report's plain dict (JSON schema 2).

Every report format renders the same :class:`~conformance.core.results.DecoderRun` records:
this module makes them into the dict the JSON report writes (``docs/report-schema.md``)
and holds what the other renderers share (the replay command, the docs link of a check,
the one definition of "error against tolerance", text made safe to write).

Nothing here may raise on odd values after the checks ran: evidence is free-form and
comes from decoders, so :func:`jsonable` turns anything (a tensor, a value whose ``str``
raises, a list that contains itself, a lone surrogate) into strict JSON, replacing what
cannot be written with a placeholder that says why.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import fields, is_dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import TypeGuard

from conformance.core.ratios import ratio_text, share
from conformance.core.results import Certification, CheckResult, DecoderRun

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = [
    "CHECK_DOCS_BASE",
    "DEFAULT_REPORT_PATH",
    "SCHEMA_VERSION",
    "UnloadableDecoder",
    "as_runs",
    "check_docs",
    "check_to_dict",
    "clean_text",
    "decoder_config_text",
    "jsonable",
    "kit_version",
    "ratio_text",
    "replay_command",
    "report_dict",
    "run_to_dict",
    "spec_fields",
    "split_replay",
]

SCHEMA_VERSION = 2
"""Bumped whenever a key is removed or changes meaning; adding keys keeps the version.

2: ``certified`` is false for a subset (``--check``) or unfinished run; the statuses
``inconclusive`` and ``not_run`` exist and block certification (see the schema page)."""

DEFAULT_REPORT_PATH = "conformance-report.json"
"""Where ``python -m conformance certify`` writes its report unless told otherwise."""

CHECK_DOCS_BASE = os.environ.get("CONFORMANCE_DOCS_BASE", "docs/checks/")
"""Where each check's page lives: ``<base><check id>.md``. By default the path inside the
kit's source repository; set ``CONFORMANCE_DOCS_BASE`` (for example to a URL of the
repository's ``docs/checks/`` folder) to make the links in certificates absolute."""

RUN_STATES = ("finished", "interrupted", "running")
"""``run_state`` of a report: the run wrote it at its end, was stopped (Ctrl-C) and wrote
what it had, or has not finished (the placeholder written at its start: if a report still
says ``running`` after the command ended, the run was killed)."""

_MAX_DEPTH = 40


class UnloadableDecoder(Protocol):
    """A registered decoder that could not be loaded (see :mod:`conformance.core.discovery`)."""

    @property
    def name(self) -> str: ...  # the entry point's name
    @property
    def target(self) -> str: ...  # its MODULE:ATTR value
    @property
    def distribution(self) -> str | None: ...  # the installed package that registers it
    @property
    def error(self) -> str: ...  # why it could not be loaded


def kit_version() -> str:
    """The kit's version: ``conformance.__version__``, the one home of it (``pyproject.toml``
    reads it from there, so an installed kit and a bare checkout say the same)."""
    import conformance

    return str(conformance.__version__)


# ---------------------------------------------------------------------------------
# Values that always serialize


def clean_text(text: Any) -> str:
    """``text`` as a string any UTF-8 file or terminal can take.

    A lone surrogate (a decoder's message made from undecodable bytes) becomes a
    ``\\udcxx`` escape instead of failing the write; a value whose ``str`` raises becomes a
    placeholder naming the exception.
    """
    if not isinstance(text, str):
        text = _safe_str(text)
    text = str.__str__(text)  # an exact str (execnet and json refuse str subclasses such as TorchVersion)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
        if not isinstance(text, str):  # a __str__ returning a non-str raises TypeError anyway
            raise TypeError(f"__str__ returned {type(text).__name__}")
        return text
    except Exception as err:  # noqa: BLE001 - a report must not die on a broken __str__
        try:
            detail = f"{type(err).__name__}: {err}"
        except Exception:  # noqa: BLE001 - even the exception's str may raise
            detail = type(err).__name__
        return clean_text(f"<unprintable {type(value).__name__}: str() raised {detail}>")


def jsonable(value: Any) -> Any:
    """``value`` as something :func:`json.dumps` writes as strict, UTF-8-safe JSON.

    Evidence is free-form (checks record whatever they exercised), so this accepts
    tensors, dtypes, devices, dataclasses, tuples, sets and non-finite floats, and never
    raises: a value that contains itself becomes ``"<recursive reference>"``, one whose
    ``str`` raises a placeholder naming the exception, a lone surrogate an escape.
    """
    return _jsonable(value, (), 0)


def _jsonable(value: Any, seen: tuple[int, ...], depth: int) -> Any:
    if value is None or type(value) in (bool, int):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return clean_text(str.__str__(value))
    if isinstance(value, float):
        value = float(value)
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if depth > _MAX_DEPTH:
        return "<nested too deep to report>"
    if id(value) in seen:
        return "<recursive reference>"
    inner = (*seen, id(value))
    try:
        if isinstance(value, Mapping):
            return {_key(key): _jsonable(item, inner, depth + 1) for key, item in list(value.items())}
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            if isinstance(value, (set, frozenset)):
                items.sort(key=_safe_repr)
            return [_jsonable(item, inner, depth + 1) for item in items]
        if is_dataclass(value) and not isinstance(value, type):
            return {f.name: _jsonable(getattr(value, f.name, None), inner, depth + 1) for f in fields(value)}
        torch_value = _from_torch(value, inner, depth)
        if torch_value is not _NOT_TORCH:
            return torch_value
        if hasattr(value, "item") and callable(value.item) and type(value).__module__.startswith("numpy"):
            return _jsonable(value.item(), inner, depth + 1)
    except Exception as err:  # noqa: BLE001 - one odd value must not lose the report
        return clean_text(f"<unreportable {type(value).__name__}: {type(err).__name__}>")
    return _safe_str(value)


def _key(key: Any) -> str:
    return clean_text(key) if isinstance(key, str) else _safe_str(key)


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception:  # noqa: BLE001
        return type(value).__name__


_NOT_TORCH = object()


def _from_torch(value: Any, seen: tuple[int, ...], depth: int) -> Any:
    torch = sys.modules.get("torch")  # never import torch just to render a report
    if torch is None:
        return _NOT_TORCH
    if isinstance(value, torch.Tensor):
        if value.layout != torch.strided or value.is_meta:
            return f"<tensor {tuple(value.shape)} {value.dtype} {value.layout} on {value.device}>"
        return _jsonable(value.detach().cpu().tolist(), seen, depth + 1)
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if isinstance(value, torch.Size):
        return list(value)
    return _NOT_TORCH


# ---------------------------------------------------------------------------------
# Spec fields, decoder config, replay, docs


def spec_fields(spec: DecoderSpec) -> dict[str, Any]:
    """The spec's fields as JSON-ready values, in declaration order (``DecoderRun.spec``).

    Callables (``factory``, ``output_adapter``, ``reference_factory``) are given by their
    qualified names (a function cannot be written down); everything else is the value
    the checks ran with. A supervised worker sends
    this dict to the parent, which never holds the spec object.
    """
    out: dict[str, Any] = {}
    for spec_field in fields(spec):
        value = getattr(spec, spec_field.name)
        named = spec_field.name == "factory" or (callable(value) and not isinstance(value, type))
        out[spec_field.name] = _callable_name(value) if named and value is not None else jsonable(value)
    return out


def decoder_config_text(decoder: Any) -> str | None:
    """``str(decoder.config)`` when the decoder has a ``config`` (flashdreams decoders keep
    the config they were built from there); ``None`` otherwise. Never raises."""
    try:
        config = getattr(decoder, "config", None)
    except Exception as err:  # noqa: BLE001 - a property that raises
        return clean_text(f"<decoder.config raised {type(err).__name__}>")
    if config is None:
        return None
    return _safe_str(config)


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
        return _safe_str(fn)
    return f"{module}.{name}" if module else str(name)


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


def split_replay(message: str) -> str:
    """``message`` without the ``Replay: ...`` line the engine appends.

    Renderers print each failure's replay command once, themselves (quoted, and in the
    form of their front end); the JSON ``message`` keeps the engine's line.
    """
    lines = message.rstrip().splitlines()
    kept = [line for line in lines if not line.startswith("Replay: python -m conformance certify ")]
    return "\n".join(kept).rstrip()


def check_docs(check_id: str) -> str:
    """Where the page of ``check_id`` lives (``docs/checks/<id>.md`` under :data:`CHECK_DOCS_BASE`)."""
    return f"{CHECK_DOCS_BASE}{check_id}.md"


def ran_subset(certification: Certification) -> list[str]:
    """The check ids a subset run ran (to replay exactly that); empty for a full run."""
    ran = [result.check_id for result in certification.results]
    if not certification.subset:
        try:
            from conformance.checks import CHECK_IDS
        except ImportError:  # pragma: no cover
            return ran
        if sorted(ran) == sorted(CHECK_IDS) or certification.interrupted:
            return []
    return ran


def category(check_id: str) -> str | None:
    """The check's category, ``None`` for an id the registry does not know."""
    try:
        from conformance.checks import get_check

        return get_check(check_id).category
    except (ImportError, KeyError):
        return None


# ---------------------------------------------------------------------------------
# Error against tolerance: one definition for every format


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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


def as_runs(
    runs: Sequence[DecoderRun | Certification],
    *,
    targets: Sequence[str | None] | None = None,
    specs: Sequence[DecoderSpec | Mapping[str, Any] | None] | None = None,
    decoder_configs: Sequence[str | None] | None = None,
) -> list[DecoderRun]:
    """``DecoderRun`` records, accepting the older call form too.

    Before ``DecoderRun`` existed the renderers took certifications with parallel lists
    of targets, specs and decoder configs; those still work (a spec object is turned into
    its fields with :func:`spec_fields`).
    """
    count = len(runs)
    columns = [
        _parallel("targets", targets, count),
        _parallel("specs", specs, count),
        _parallel("decoder_configs", decoder_configs, count),
    ]
    out: list[DecoderRun] = []
    for run, target, spec, config in zip(runs, *columns):
        if isinstance(run, DecoderRun):
            out.append(run)
            continue
        fields_ = None if spec is None else (dict(spec) if isinstance(spec, Mapping) else spec_fields(spec))
        out.append(DecoderRun(run, target=target, spec=fields_, decoder_config=config))
    return out


def _parallel(name: str, values: Sequence[Any] | None, count: int) -> list[Any]:
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ValueError(
            f"got {len(values)} {name} for {count} certifications; "
            f"pass one {name[:-1]} per certification"
        )
    return list(values)


def check_to_dict(result: CheckResult) -> dict[str, Any]:
    """One entry of a decoder's ``checks`` list."""
    duration = float(result.duration_s) if is_number(result.duration_s) else 0.0
    return {
        "id": clean_text(result.check_id),
        "category": category(result.check_id),
        "status": result.status,
        "kind": None if result.kind is None else clean_text(result.kind),
        "message": clean_text(result.message),
        "duration_s": round(duration, 6),
        "docs": check_docs(result.check_id),
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
        "replay": replay_command(
            run.target, seed=cert.seed, profile=cert.profile, check_ids=ran_subset(cert)
        ),
        "checks": [check_to_dict(result) for result in cert.results],
    }


def report_dict(
    runs: Sequence[DecoderRun],
    *,
    unloadable: Sequence[UnloadableDecoder] = (),
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
        "kit_version": kit_version(),
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


def _unloadable_to_dict(entry: UnloadableDecoder) -> dict[str, Any]:
    return {
        "name": clean_text(entry.name),
        "target": clean_text(entry.target),
        "distribution": None if entry.distribution is None else clean_text(entry.distribution),
        "error": clean_text(entry.error),
    }

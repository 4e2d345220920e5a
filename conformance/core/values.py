"""Values every layer prints or stores, made safe to write: text, JSON, spec fields, configs.

Evidence is free-form and comes from decoders, so nothing here may raise on odd values:
:func:`jsonable` turns anything (a tensor, a value whose ``str`` raises, a list that
contains itself, a lone surrogate) into strict JSON, replacing what cannot be written
with a placeholder that says why. A supervised worker sends :func:`spec_fields` to its
parent, which never holds the spec object; the reports render the same dict.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import fields, is_dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from typing_extensions import TypeGuard

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = [
    "clean_text",
    "decoder_config_text",
    "is_number",
    "jsonable",
    "spec_fields",
]

_MAX_DEPTH = 40


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


def is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

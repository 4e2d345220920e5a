"""Targets: ``MODULE:ATTR`` strings naming decoder specs.

A *target* names a spec in the author's code, so the command line, the pytest plugin
and CI can all find the same decoder. ``ATTR`` may be a dotted path inside the module,
and may name a :class:`~conformance.core.spec.DecoderSpec`, a list or tuple of them, or a
zero-argument callable returning either (:func:`load_target`).
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

from conformance.core.spec import DecoderSpec

__all__ = ["TargetError", "load_target"]


class TargetError(Exception):
    """A target string could not be turned into decoder specs (the CLI exits with 2)."""


_TARGET_HINT = "expected MODULE:ATTR, e.g. 'reference_decoders.toy:toy_spec'"


def load_target(target: str) -> list[DecoderSpec]:
    """Load the decoder specs a ``MODULE:ATTR`` target names.

    Raises:
        TargetError: with a message saying which part failed: the syntax, the import
            (with the exception), the attribute, the callable, or the type of the value.
    """
    if not isinstance(target, str) or target.count(":") != 1:
        raise TargetError(f"bad target {target!r}: {_TARGET_HINT}")
    module_name, attr_path = (part.strip() for part in target.split(":"))
    if not module_name or not attr_path:
        raise TargetError(f"bad target {target!r}: {_TARGET_HINT}")
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # noqa: BLE001 - any import failure is the target's fault
        where = traceback.extract_tb(err.__traceback__)[-1]
        raise TargetError(
            f"target {target!r}: importing module {module_name!r} failed with "
            f"{type(err).__name__}: {err} (at {where.filename}:{where.lineno}); is it installed "
            "or on sys.path (run from the directory that contains it)?"
        ) from err
    value: Any = module
    for i, part in enumerate(attr_path.split(".")):
        if not hasattr(value, part):
            owner = ".".join([module_name] + attr_path.split(".")[:i])
            public = sorted(n for n in dir(value) if not n.startswith("_"))[:20]
            raise TargetError(
                f"target {target!r}: {owner!r} has no attribute {part!r}"
                + (f"; it has: {', '.join(public)}" if public else "")
            )
        value = getattr(value, part)
    if callable(value) and not isinstance(value, DecoderSpec):
        try:
            value = value()
        except Exception as err:  # noqa: BLE001
            raise TargetError(
                f"target {target!r}: calling {attr_path}() failed with {type(err).__name__}: {err}"
            ) from err
    specs = [value] if isinstance(value, DecoderSpec) else value
    if (
        not isinstance(specs, (list, tuple))
        or not specs
        or not all(isinstance(spec, DecoderSpec) for spec in specs)
    ):
        raise TargetError(
            f"target {target!r} gave {type(value).__name__} {value!r:.200}; expected a "
            "conformance.DecoderSpec, a non-empty list or tuple of them, or a zero-argument "
            "callable returning one of those"
        )
    return list(specs)

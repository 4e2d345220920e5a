"""Configs that know how to build the object they describe.

A config is a plain dataclass. :class:`InstantiateConfig` adds one field, ``_target``,
naming the class to build, and :meth:`InstantiateConfig.setup` calls
``_target(config, **kwargs)``. Keeping construction on the config means a pipeline can
hold a tree of configs, tweak it with :func:`derive_config`, and build everything
from it without knowing the concrete classes.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any, Generic, cast

from typing_extensions import TypeVar

__all__ = ["InstantiateConfig", "PrintableConfig", "derive_config"]

TargetT = TypeVar("TargetT", default=Any)
ConfigT = TypeVar("ConfigT")


def _format_value(value: Any, indent: str) -> str:
    """Render one config value; nested configs and containers get their own lines."""
    if isinstance(value, PrintableConfig):
        return value._format(indent)
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, Mapping) and value:
        inner = indent + "    "
        lines = [f"{inner}{key!r}: {_format_value(item, inner)}" for key, item in value.items()]
        return "{\n" + ",\n".join(lines) + f"\n{indent}}}"
    return repr(value)


@dataclasses.dataclass
class PrintableConfig:
    """A dataclass whose ``str`` is a readable, indented listing of its fields."""

    def _format(self, indent: str = "") -> str:
        inner = indent + "    "
        lines = [f"{type(self).__name__}("]
        for config_field in dataclasses.fields(self):
            value = getattr(self, config_field.name)
            lines.append(f"{inner}{config_field.name}={_format_value(value, inner)},")
        lines.append(f"{indent})")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self._format()


@dataclasses.dataclass(kw_only=True)
class InstantiateConfig(PrintableConfig, Generic[TargetT]):
    """A config that builds its target: ``config.setup(**kwargs)`` is ``_target(config, **kwargs)``.

    Generic over the type it builds, so ``setup`` is typed: a
    ``InstantiateConfig[MyDecoder]`` builds a ``MyDecoder``.
    """

    _target: type[TargetT]

    def setup(self, **kwargs: Any) -> TargetT:
        """Build the target object from this config (extra ``kwargs`` go to its constructor)."""
        # Every target takes its config first; ``type[TargetT]`` cannot say so to a type
        # checker, so the call goes through ``Any`` and the result is typed by ``TargetT``.
        build: Any = self._target
        return cast(TargetT, build(self, **kwargs))


def _patch(node: Any, changes: Mapping[str, Any], path: str) -> Any:
    """Apply ``changes`` to ``node`` (already a private copy) and return the patched node."""
    for key, change in changes.items():
        where = f"{path}.{key}" if path else key
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            names = {config_field.name for config_field in dataclasses.fields(node)}
            if key not in names:
                raise KeyError(
                    f"{where!r}: {type(node).__name__} has no field {key!r}; "
                    f"fields are {sorted(names)}"
                )
            current = getattr(node, key)
            setattr(node, key, _merge(current, change, where))
        elif isinstance(node, dict):
            if key not in node:
                raise KeyError(f"{where!r}: no key {key!r}; keys are {sorted(map(str, node))}")
            node[key] = _merge(node[key], change, where)
        else:
            raise KeyError(f"{where!r}: cannot patch into a {type(node).__name__}")
    return node


def _merge(current: Any, change: Any, path: str) -> Any:
    """A dict patch merges into a nested config or dict; anything else replaces the value."""
    is_nested = isinstance(current, dict) or (
        dataclasses.is_dataclass(current) and not isinstance(current, type)
    )
    if isinstance(change, Mapping) and is_nested:
        return _patch(current, change, path)
    return copy.deepcopy(change)


def derive_config(config: ConfigT, **changes: Any) -> ConfigT:
    """Return a deep copy of ``config`` with ``changes`` applied; ``config`` is never touched.

    A keyword names a field; its value replaces the field, unless the value is a dict
    and the field holds a dataclass or dict, in which case the dict is applied as a
    nested patch (recursively). Unknown names raise ``KeyError`` naming the full
    dotted path, so a typo in a deeply nested override is found at once.

    >>> derive_config(cfg, dtype="bf16", model={"width": 64})  # doctest: +SKIP
    """
    return _patch(copy.deepcopy(config), changes, "")

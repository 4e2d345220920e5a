"""Finding every tensor a cache can reach, and the memory behind them.

A cache is whatever object the decoder returns from ``initialize_autoregressive_cache``:
a dataclass of tensors, lists of per-layer histories, dicts, nested helper objects, even
cycles. The isolation and memory checks need *all* of its tensors, wherever they hide.

Walking rules:

- tensors are collected (not descended into);
- dicts (keys and values), lists, tuples, sets, deques are descended into;
- any other object is descended into through its ``__dict__`` and ``__slots__``, which
  covers dataclasses and plain helper classes;
- ``nn.Module`` objects are descended into (a per-rollout module, such as a KV-cache
  module, is rollout state), except the ones passed as ``exclude``: the decoder under
  test and its submodules, which a cache may legitimately reference and whose
  parameters are not rollout state (the isolation check compares against them
  separately);
- classes, functions, modules, dtypes, devices and scalars are leaves;
- cycles and shared sub-objects are visited once.
"""

from __future__ import annotations

import types
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["StorageSpan", "reachable_tensors", "storage_bytes", "storage_span", "overlapping_spans"]

_LEAF_TYPES = (
    str,
    bytes,
    bytearray,
    int,
    float,
    complex,
    bool,
    type(None),
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    types.ModuleType,
    torch.dtype,
    torch.device,
    torch.Generator,
)


def _slot_names(cls: type) -> Iterator[str]:
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name not in ("__dict__", "__weakref__"):
                yield name


def reachable_tensors(
    root: Any, root_name: str = "cache", *, exclude: nn.Module | None = None
) -> list[tuple[str, torch.Tensor]]:
    """Every tensor reachable from ``root``, each once, with a readable path to it.

    ``exclude`` (the decoder under test) and all its submodules are not walked into.
    """
    found: list[tuple[str, torch.Tensor]] = []
    seen: set[int] = {id(m) for m in exclude.modules()} if exclude is not None else set()
    stack: list[tuple[str, Any]] = [(root_name, root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            found.append((path, obj))
            continue
        if isinstance(obj, _LEAF_TYPES):
            continue
        children: list[tuple[str, Any]] = []
        if isinstance(obj, dict):
            for key, value in obj.items():
                children.append((f"{path}[{key!r}]", value))
                children.append((f"{path}.keys()", key))
        elif isinstance(obj, (list, tuple, deque)):
            children.extend((f"{path}[{i}]", item) for i, item in enumerate(obj))
        elif isinstance(obj, (set, frozenset)):
            children.extend((f"{path}{{item}}", item) for item in obj)
        else:
            attributes = getattr(obj, "__dict__", None)
            if isinstance(attributes, dict):
                children.extend((f"{path}.{name}", value) for name, value in attributes.items())
            for name in _slot_names(type(obj)):
                try:
                    children.append((f"{path}.{name}", getattr(obj, name)))
                except AttributeError:
                    pass
        stack.extend(reversed(children))
    return found


@dataclass(frozen=True)
class StorageSpan:
    """The memory a tensor's storage occupies: ``[start, end)`` on ``device``."""

    device: str
    start: int
    end: int
    path: str

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def storage_span(tensor: torch.Tensor, path: str = "") -> StorageSpan | None:
    """The whole storage behind ``tensor`` (not just the part its view uses); ``None`` for
    empty storages and tensors without one (meta, some subclasses)."""
    try:
        storage = tensor.untyped_storage()
        nbytes = storage.nbytes()
        start = storage.data_ptr()
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    if nbytes == 0 or start == 0:
        return None
    return StorageSpan(device=str(tensor.device), start=start, end=start + nbytes, path=path)


def spans_of(tensors: list[tuple[str, torch.Tensor]]) -> list[StorageSpan]:
    return [span for path, t in tensors if (span := storage_span(t, path)) is not None]


def storage_bytes(root: Any, *, exclude: nn.Module | None = None) -> int:
    """Bytes of all distinct storages reachable from ``root`` (a storage shared by several
    views counts once), not counting ``exclude`` (the decoder) and its submodules."""
    unique: dict[tuple[str, int], int] = {}
    for span in spans_of(reachable_tensors(root, exclude=exclude)):
        key = (span.device, span.start)
        unique[key] = max(unique.get(key, 0), span.nbytes)
    return sum(unique.values())


def overlapping_spans(
    left: list[StorageSpan], right: list[StorageSpan]
) -> list[tuple[StorageSpan, StorageSpan]]:
    """Pairs (one from each side) whose memory overlaps: shared storage, or views of one.

    A sweep over both sides sorted by start, so large parameter lists stay cheap.
    """
    events = sorted(
        [(s.device, s.start, s.end, 0, s) for s in left] + [(s.device, s.start, s.end, 1, s) for s in right],
        key=lambda e: (e[0], e[1]),
    )
    pairs: list[tuple[StorageSpan, StorageSpan]] = []
    open_spans: list[tuple[str, int, int, int, StorageSpan]] = []
    for event in events:
        device, start, _end, side, span = event
        open_spans = [o for o in open_spans if o[0] == device and o[2] > start]
        for other in open_spans:
            if other[3] != side:
                pair = (other[4], span) if side == 1 else (span, other[4])
                pairs.append(pair)
        open_spans.append(event)
    return pairs

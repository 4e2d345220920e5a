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

import contextlib
import gc
import sys
import types
import warnings
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "LiveTensors",
    "census_baseline",
    "StorageSpan",
    "describe_holder",
    "live_tensors",
    "overlapping_spans",
    "reachable_tensors",
    "storage_bytes",
    "storage_keys",
    "storage_span",
]

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
    root: Any, root_name: str = "cache", *, exclude: nn.Module | None = None, modules: bool = True
) -> list[tuple[str, torch.Tensor]]:
    """Every tensor reachable from ``root``, each once, with a readable path to it.

    ``exclude`` (the decoder under test) and all its submodules are not walked into;
    with ``modules=False`` no ``nn.Module`` is (what the kit itself holds is data, and
    the decoders it can reach -- a template, a wider twin -- are not the kit's).
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
        if isinstance(obj, _LEAF_TYPES) or (not modules and isinstance(obj, nn.Module)):
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


def storage_keys(
    root: Any, *, exclude: nn.Module | None = None, modules: bool = True
) -> dict[tuple[str, int], int]:
    """``(device, storage start) -> bytes`` for every distinct storage reachable from ``root``
    (see :func:`reachable_tensors` for ``exclude`` and ``modules``)."""
    unique: dict[tuple[str, int], int] = {}
    for span in spans_of(reachable_tensors(root, exclude=exclude, modules=modules)):
        key = (span.device, span.start)
        unique[key] = max(unique.get(key, 0), span.nbytes)
    return unique


@dataclass
class LiveTensors:
    """Every storage behind a tensor object this process holds, found through the garbage
    collector (which tracks every Python tensor object, wherever it is referenced from: a
    module global, a closure, an attribute of the decoder, a list in the cache).

    ``storages`` maps ``(device, storage start)`` to bytes, each storage once however many
    views share it; ``tensors`` keeps one tensor per storage, for :func:`describe_holder`.
    Tensors only native code holds (no Python object) are invisible here; on CUDA the
    allocator's count covers them.
    """

    storages: dict[tuple[str, int], int]
    tensors: dict[tuple[str, int], torch.Tensor]

    def bytes_except(self, excluded: set[tuple[str, int]] | dict[tuple[str, int], int]) -> int:
        return sum(n for key, n in self.storages.items() if key not in excluded)


@contextlib.contextmanager
def census_baseline() -> Iterator[None]:
    """While the block runs, :func:`live_tensors` sees only objects created in it.

    Everything alive when the block starts is collected once and frozen out of the
    garbage collector's generations (``gc.freeze``): what a memory check measures is what
    appears after its start, and each census then scans and collects only that, in
    well under a millisecond instead of a quarter second in a process that has imported
    torch. The objects are unfrozen when the block ends, and before
    :func:`describe_holder` looks for referrers, which the frozen objects hide.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def live_tensors() -> LiveTensors:
    """A census of all live tensors (after a full garbage collection, so tensors kept only
    by unreachable cycles do not count): of every tensor in the process, or under
    :func:`census_baseline` of those created since it began."""
    gc.collect()
    storages: dict[tuple[str, int], int] = {}
    tensors: dict[tuple[str, int], torch.Tensor] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lazy module attributes may warn when touched
        for obj in gc.get_objects():
            if not issubclass(type(obj), torch.Tensor):
                continue
            span = storage_span(obj)
            if span is None:
                continue
            key = (span.device, span.start)
            if span.nbytes >= storages.get(key, 0):
                storages[key] = span.nbytes
                tensors[key] = obj
    return LiveTensors(storages, tensors)


def describe_holder(target: Any, *, ignore: tuple[Any, ...] = (), max_lookups: int = 40) -> str | None:
    """Where ``target`` is held from, as far as the garbage collector can tell: a module
    global (``module.NAME``), a closure variable of a function, an attribute or item of
    an object found on the way. ``None`` when nothing readable is found within
    ``max_lookups`` referrer scans (each scans every object in the process)."""
    gc.unfreeze()  # referrers frozen by census_baseline would stay hidden
    module_dicts: dict[int, str] = {}
    for name, module in list(sys.modules.items()):
        if module is not None and isinstance(getattr(module, "__dict__", None), dict):
            module_dicts.setdefault(id(vars(module)), name)
    # No comprehension below may mention the objects being chased: a comprehension is a
    # nested function, and the cell it reads them through would be found as a "closure".
    ignored = set(map(id, ignore))
    frontier: list[tuple[Any, list[str]]] = [(target, [])]
    seen = {id(target)}
    lookups = 0
    while frontier and lookups < max_lookups:
        obj, path = frontier.pop(0)
        lookups += 1
        referrers = gc.get_referrers(obj)
        ignored.add(id(referrers))
        for ref in referrers:
            if id(ref) in seen or id(ref) in ignored or isinstance(ref, types.FrameType):
                continue
            if ref is frontier:
                continue
            seen.add(id(ref))
            if id(ref) in module_dicts:
                return " -> ".join([f"module global {module_dicts[id(ref)]}.{_key_of(ref, obj)}", *reversed(path)])
            if isinstance(ref, types.CellType):
                return " -> ".join([f"a closure variable of {_closure_owner(ref)}", *reversed(path)])
            if isinstance(ref, type):
                return " -> ".join([f"class attribute of {ref.__module__}.{ref.__qualname__}", *reversed(path)])
            step = _step_name(ref, obj)
            if step is not None:
                frontier.append((ref, [*path, step]))
    return None


def _key_of(mapping: dict[Any, Any], item: Any) -> str:
    for key, value in mapping.items():
        if value is item:
            return str(key)
    return "?"


def _closure_owner(cell: Any) -> str:
    """``name()`` of the function whose closure holds ``cell``, else ``a function``."""
    for holder in gc.get_referrers(cell):
        if not isinstance(holder, tuple):
            continue
        for fn in gc.get_referrers(holder):
            if isinstance(fn, types.FunctionType) and fn.__closure__ is holder:
                return f"{fn.__module__}.{fn.__qualname__}()"
    return "a function"


def _step_name(container: Any, item: Any) -> str | None:
    """How ``container`` holds ``item`` (``[3]``, ``['key']``, ``.attr``), or None if it is
    not a container worth following."""
    if isinstance(container, dict):
        for key, value in container.items():
            if value is item:
                return f"[{key!r}]"
        return "(a dict key)"
    if isinstance(container, (list, tuple, deque)):
        for i, value in enumerate(container):
            if value is item:
                return f"[{i}]"
        return None
    if isinstance(container, (set, frozenset)):
        return "{item}"
    if hasattr(container, "__dict__") and not isinstance(container, type):
        return f"({type(container).__qualname__} object)"
    return None

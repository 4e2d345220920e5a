"""Finding every tensor a cache reaches, and comparing storages."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import torch

from conformance.checks.harness.reachability import (
    overlapping_spans,
    reachable_tensors,
    spans_of,
    storage_bytes,
    storage_span,
)


class _Slotted:
    __slots__ = ("tensor", "unset")

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor


@dataclass
class _Cache:
    direct: torch.Tensor
    layers: list[Any] = field(default_factory=list)
    by_name: dict[str, Any] = field(default_factory=dict)
    helper: Any = None
    module: Any = None
    myself: Any = None


def _cache() -> tuple[_Cache, list[torch.Tensor]]:
    tensors = [torch.full((2,), float(i)) for i in range(7)]
    helper = type("Helper", (), {})()
    helper.inner = {"deep": (tensors[3], [tensors[4]])}
    cache = _Cache(
        direct=tensors[0],
        layers=[tensors[1], None, deque([tensors[5]])],
        by_name={"k": tensors[2], "set": frozenset({1})},
        helper=helper,
        module=torch.nn.Linear(2, 2),
    )
    cache.myself = cache  # a cycle
    cache.layers.append(cache.layers)  # another one
    cache.by_name["slotted"] = _Slotted(tensors[6])
    return cache, tensors


def test_every_tensor_is_found_once_with_a_path() -> None:
    cache, tensors = _cache()
    found = reachable_tensors(cache, exclude=cache.module)
    assert sorted(id(t) for _, t in found) == sorted(id(t) for t in tensors)
    paths = {id(t): path for path, t in found}
    assert paths[id(tensors[0])] == "cache.direct"
    assert paths[id(tensors[2])] == "cache.by_name['k']"
    assert paths[id(tensors[3])] == "cache.helper.inner['deep'][0]"
    assert paths[id(tensors[6])] == "cache.by_name['slotted'].tensor"


def test_the_excluded_decoder_is_not_walked_but_other_modules_are() -> None:
    cache, _ = _cache()
    decoder = cache.module
    params = {id(p) for p in decoder.parameters()}
    assert not params & {id(t) for _, t in reachable_tensors(cache, exclude=decoder)}
    assert params <= {id(t) for _, t in reachable_tensors(cache)}
    # A per-rollout module inside the cache is rollout state: its buffers count.
    per_rollout = torch.nn.Module()
    per_rollout.register_buffer("kv", torch.zeros(16))
    cache.by_name["kv_module"] = per_rollout
    paths = {path for path, _ in reachable_tensors(cache, exclude=decoder)}
    assert "cache.by_name['kv_module']._buffers['kv']" in paths
    assert storage_bytes(cache, exclude=decoder) == 7 * 8 + 16 * 4


def test_views_share_storage_and_count_once() -> None:
    base = torch.zeros(100)
    view = base[10:20]
    other = torch.zeros(100)
    assert storage_span(view) == storage_span(base)  # the whole storage, not the view
    assert storage_bytes({"a": base, "b": view}) == base.untyped_storage().nbytes()
    assert storage_bytes([base, other]) == 2 * base.untyped_storage().nbytes()
    pairs = overlapping_spans(spans_of([("left", view)]), spans_of([("right", base), ("other", other)]))
    assert [(a.path, b.path) for a, b in pairs] == [("left", "right")]


def test_empty_storages_are_skipped() -> None:
    empty = torch.empty(0)
    assert storage_span(empty) is None
    assert storage_bytes([empty, torch.empty(0, 3)]) == 0


def test_disjoint_tensors_do_not_overlap() -> None:
    left = [(f"l{i}", torch.zeros(8)) for i in range(20)]
    right = [(f"r{i}", torch.zeros(8)) for i in range(20)]
    assert overlapping_spans(spans_of(left), spans_of(right)) == []

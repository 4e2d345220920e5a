"""Which GPU a worker uses: assigned by slot (an xdist worker's number), never guessed.

This machine has no GPU, so the CUDA calls are recorded by stand-ins for
``torch.cuda.is_available`` / ``device_count`` / ``set_device`` / ``init``; the real
thing is exercised by ``test_each_xdist_worker_takes_its_own_gpu`` (multi-GPU only).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

import conformance.engine.workers.devices as devices
from conformance.engine.environment import environment
from conformance.frontends.pytest_session import gpu_slot
from reference_decoders.toy import toy_spec


@pytest.mark.parametrize(
    ("worker", "number"),
    [("gw0", 0), ("gw13", 13), (None, None), ("", None), ("master", None), ("gw", None)],
)
def test_xdist_worker_number(worker: str | None, number: int | None) -> None:
    assert devices.xdist_worker_number(worker) == number


@pytest.mark.parametrize(
    ("slot", "count", "expected"),
    [
        (0, 4, 0),
        (3, 4, 3),
        (5, 4, 1),  # more slots than GPUs: shared round-robin
        (1, 2, 1),
        (7, 1, None),  # one GPU: nothing to spread
        (0, 0, None),
        (None, 4, None),  # no slot assigned
    ],
)
def test_device_for_slot(slot: int | None, count: int, expected: int | None) -> None:
    assert devices.device_for_slot(slot, count) == expected


class FakeCuda:
    """Records what the kit asks of CUDA."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", lambda index: self.calls.append(("set_device", index)))
        monkeypatch.setattr(torch.cuda, "init", lambda: self.calls.append(("init", None)))
        monkeypatch.setattr(devices, "_claimed", [])


def test_a_slot_takes_its_gpu_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda(monkeypatch, count=4)
    assert devices.use_gpu_slot(6) == 2
    assert devices.use_gpu_slot(6) == 2
    assert cuda.calls == [("set_device", 2), ("init", None)]
    assert devices.claimed_device() == 2


@pytest.mark.parametrize(("slot", "count"), [(None, 4), (1, 1), (1, 0)])
def test_nothing_changes_without_a_slot_or_without_several_gpus(
    monkeypatch: pytest.MonkeyPatch, slot: int | None, count: int
) -> None:
    cuda = FakeCuda(monkeypatch, count=count)
    assert devices.use_gpu_slot(slot) is None
    assert cuda.calls == []


def fake_config(worker_gpus: str) -> Any:
    options = {"conformance_worker_gpus": worker_gpus}
    return SimpleNamespace(getoption=lambda name, default=None: options.get(name, default))


@pytest.mark.parametrize(("worker", "worker_gpus", "slot"), [("gw3", "spread", 3), ("gw3", "off", None), (None, "spread", None)])
def test_pytest_assigns_each_xdist_worker_its_slot(
    monkeypatch: pytest.MonkeyPatch, worker: str | None, worker_gpus: str, slot: int | None
) -> None:
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert gpu_slot(fake_config(worker_gpus)) == slot


def test_the_environment_names_the_gpu_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 3)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake GPU")
    assert environment(toy_spec(device="cuda"))["device"] == "cuda:3"
    assert environment(toy_spec(device="cuda:1"))["device"] == "cuda:1"  # the author's choice
    assert environment(toy_spec(device="cpu"))["device"] == "cpu"

"""One GPU per pytest-xdist worker: which device a worker takes, and when it takes one.

This machine has no GPU, so the CUDA calls are recorded by stand-ins for
``torch.cuda.is_available`` / ``device_count`` / ``set_device`` / ``init``; the real
thing is exercised by ``test_each_xdist_worker_takes_its_own_gpu`` (multi-GPU only).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import torch

import conformance.frontends.pytest_plugin as plugin
import conformance.engine.workers.devices as workers
from conformance.core.results import CheckResult
from reference_decoders.toy import toy_spec


@pytest.mark.parametrize(
    ("worker", "devices", "expected"),
    [
        ("gw0", 4, 0),
        ("gw3", 4, 3),
        ("gw5", 4, 1),  # more workers than GPUs: shared round-robin
        ("gw1", 2, 1),
        ("gw7", 1, None),  # one GPU: nothing to spread
        ("gw0", 0, None),
        (None, 4, None),  # not an xdist worker
        ("", 4, None),
        ("master", 4, None),
    ],
)
def test_worker_device_index(worker: str | None, devices: int, expected: int | None) -> None:
    assert workers.worker_device_index(worker, devices) == expected


class FakeCuda:
    """Records what the kit asks of CUDA."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, count: int) -> None:
        self.calls: list[tuple[str, Any]] = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "set_device", lambda index: self.calls.append(("set_device", index)))
        monkeypatch.setattr(torch.cuda, "init", lambda: self.calls.append(("init", None)))
        monkeypatch.setattr(workers, "_claimed", [])


def test_a_worker_claims_its_gpu_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cuda = FakeCuda(monkeypatch, count=4)
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw6")

    assert workers.claim_worker_gpu() == 2
    assert workers.claim_worker_gpu() == 2
    assert cuda.calls == [("set_device", 2), ("init", None)]
    assert workers.claimed_device() == 2


@pytest.mark.parametrize(("worker", "count"), [(None, 4), ("gw1", 1), ("gw1", 0)])
def test_nothing_changes_without_xdist_or_without_several_gpus(
    monkeypatch: pytest.MonkeyPatch, worker: str | None, count: int
) -> None:
    cuda = FakeCuda(monkeypatch, count=count)
    if worker is None:
        monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    else:
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)

    assert workers.claim_worker_gpu() is None
    assert cuda.calls == []


def fake_config(worker_gpus: str) -> Any:
    options = {"conformance_worker_gpus": worker_gpus, "conformance_profile": "quick", "conformance_seed": 1}
    return SimpleNamespace(getoption=lambda name, default=None: options.get(name, default), stash={})


@pytest.mark.parametrize(
    ("device", "worker_gpus", "claims"),
    [("cuda", "spread", True), ("cuda:1", "spread", True), ("cuda", "off", False), ("cpu", "spread", False)],
)
def test_only_cuda_specs_claim_a_gpu_before_their_check(
    monkeypatch: pytest.MonkeyPatch, device: str, worker_gpus: str, claims: bool
) -> None:
    events: list[str] = []
    monkeypatch.setattr("conformance.engine.workers.claim_worker_gpu", lambda: events.append("claim"))
    monkeypatch.setattr(plugin, "session_seed", lambda config: 1)

    def fake_run_check(spec: Any, check_id: str, **kwargs: Any) -> CheckResult:
        events.append(f"run on {spec.device}")
        return CheckResult(check_id, "passed", "", 0.0, {"examples": 1})

    import conformance.engine.runner

    monkeypatch.setattr(conformance.engine.runner, "run_check", fake_run_check)
    spec = toy_spec(device=device)

    plugin.run_in_session(fake_config(worker_gpus), spec, "forward_accepts_keyword_call", None)

    assert events == (["claim"] if claims else []) + [f"run on {device}"]


def test_junit_device_names_the_claimed_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workers, "_claimed", [3])
    result = CheckResult("forward_accepts_keyword_call", "passed", "", 0.0, {"examples": 1})

    def device_of(spec_device: str) -> object:
        properties = dict(
            plugin.result_properties(result, seed=1, profile="quick", target=None, spec=toy_spec(device=spec_device))
        )
        return properties["conformance_device"]

    assert device_of("cuda") == "cuda:3"
    assert device_of("cuda:1") == "cuda:1"  # an explicit index is the author's choice
    assert device_of("cpu") == "cpu"

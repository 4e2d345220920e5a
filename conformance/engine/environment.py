"""The environment a check runs in: versions and hardware, collected where the checks run.

A supervised worker collects it in its own process and sends it with its hello, so a
report says what the checks really ran on (the worker's threads and devices, not the
parent's); :func:`describe` is that hello's description of one decoder, the same for
every executor.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import hypothesis
import torch

from conformance.core.spec import DecoderSpec
from conformance.core.values import spec_fields
from conformance.core.version import KIT_VERSION

__all__ = ["describe", "environment"]


def environment(spec: DecoderSpec) -> dict[str, Any]:
    """Versions and hardware a certification of ``spec`` runs on, for the report."""
    env: dict[str, Any] = {
        "kit_version": KIT_VERSION,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": _device_in_use(spec),
        "dtype": str(spec.dtype).removeprefix("torch."),
        "output_dtype": str(spec.resolved_output_dtype).removeprefix("torch."),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.version.cuda:
        env["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        env["cudnn"] = torch.backends.cudnn.version()
    if torch.cuda.is_available():
        env["cuda_device_count"] = torch.cuda.device_count()
        if spec.torch_device.type == "cuda":
            env["device_name"] = torch.cuda.get_device_name(spec.torch_device)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and spec.torch_device.type == "mps":
        env["mps_available"] = bool(mps.is_available())
    return env


def describe(spec: DecoderSpec) -> dict[str, Any]:
    """What an executor reports of a decoder before any check runs: its name, its spec as
    plain values, the environment its checks run in, its time budget and declared failures."""
    try:
        env = environment(spec)
    except Exception as err:  # noqa: BLE001 - e.g. a CUDA spec on a machine without CUDA
        env = {"environment_error": f"{type(err).__name__}: {err}"}
    return {
        "name": spec.name,
        "fields": spec_fields(spec),
        "environment": env,
        "device": _device_in_use(spec),
        "check_timeout_s": spec.check_timeout_s,
        "expected_failures": {check_id: str.__str__(reason) for check_id, reason in spec.expected_failures.items()},
    }


def _device_in_use(spec: DecoderSpec) -> str:
    """The spec's device, with the GPU this process was assigned for a plain ``"cuda"``."""
    device = spec.torch_device
    if device.type == "cuda" and device.index is None and torch.cuda.is_available() and torch.cuda.is_initialized():
        return f"cuda:{torch.cuda.current_device()}"
    return str(device)

"""Preconditions: why a decoder cannot be certified where its checks would run, found before any check.

Judged from what the executor reports (the spec's fields and the environment of the
process the checks run in), so a supervised run and an in-process run refuse alike, and
every front end says it once, up front: the command line exits 2, pytest skips the
decoder's checks with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["precondition_problems"]


def precondition_problems(spec_fields: Mapping[str, Any], env: Mapping[str, Any]) -> list[str]:
    """Why a decoder cannot be certified where its checks would run, before any check runs.

    ``spec_fields`` is the spec as plain values (:func:`conformance.core.values.spec_fields`,
    or what a worker reports in its hello message); ``env`` is the environment the checks
    run in (:func:`conformance.engine.environment.environment`: ``cuda_available``,
    optionally ``cuda_device_count`` and ``mps_available``). Returns one message per
    problem: today, a device the machine does not have.
    """
    problems: list[str] = []
    name = spec_fields.get("name", "?")
    device = str(spec_fields.get("device") or "cpu")
    kind, _, index = device.partition(":")
    if kind == "cuda":
        if not env.get("cuda_available", False):
            problems.append(
                f"decoder {name!r} is declared on device {device!r} but CUDA is not available here "
                f"(torch {env.get('torch', '?')}, cuda {env.get('cuda') or 'not built in'}); run on a "
                "machine with a GPU, or certify a spec on device 'cpu'"
            )
        elif index.isdigit() and isinstance(env.get("cuda_device_count"), int) and int(index) >= env["cuda_device_count"]:
            problems.append(
                f"decoder {name!r} is declared on device {device!r} but this machine has "
                f"{env['cuda_device_count']} CUDA device(s) (cuda:0 to cuda:{env['cuda_device_count'] - 1})"
            )
    elif kind == "mps" and "mps_available" in env and not env["mps_available"]:
        problems.append(f"decoder {name!r} is declared on device 'mps' but MPS is not available here")
    elif kind == "meta":
        problems.append(
            f"decoder {name!r} is declared on device 'meta', which holds no data: the checks "
            "compare real outputs; declare a real device"
        )
    return problems

"""One GPU per pytest-xdist worker, so ``pytest -n <GPUs>`` certifies on every GPU at once.

pytest-xdist names its workers ``gw0``, ``gw1``, ... (environment variable
``PYTEST_XDIST_WORKER``). On a machine with several CUDA devices, worker ``gwN`` makes
device ``N % device_count`` its current device before its first CUDA check. A spec whose
device is plain ``"cuda"`` then runs there: the kit builds the decoder and its latents
on the current device, and the runner makes the check's worker thread use the device
current in the calling thread (CUDA's current device is per thread). A spec that names
an index (``"cuda:1"``) keeps it: the author asked for that device.

Nothing happens without xdist, with one (or no) CUDA device, for CPU specs (CUDA is not
even initialized then), or with ``--conformance-worker-gpus=off``.
"""

from __future__ import annotations

import os
import re
import threading

__all__ = ["claim_worker_gpu", "claimed_device", "worker_device_index", "xdist_worker_number"]

_lock = threading.Lock()
_claimed: list[int | None] = []  # empty until the first claim; then [device index or None]


def xdist_worker_number(worker_id: str | None) -> int | None:
    """``N`` for an xdist worker id ``gwN``; ``None`` for anything else (no xdist)."""
    if not worker_id:
        return None
    match = re.fullmatch(r"gw(\d+)", worker_id.strip())
    return int(match.group(1)) if match else None


def worker_device_index(worker_id: str | None, device_count: int) -> int | None:
    """The CUDA device worker ``worker_id`` should use, or ``None`` to leave the default.

    Workers are spread round-robin (``gwN`` -> ``N % device_count``), so ``-n`` equal to
    the number of GPUs gives each worker its own, and a larger ``-n`` shares them evenly.
    """
    number = xdist_worker_number(worker_id)
    if number is None or device_count < 2:
        return None
    return number % device_count


def claim_worker_gpu() -> int | None:
    """Make this xdist worker's GPU the current CUDA device (once per process).

    Returns the device index now current, or ``None`` when nothing was changed. Call it
    only before running a CUDA spec: it initializes CUDA.
    """
    with _lock:
        if _claimed:
            return _claimed[0]
        index: int | None = None
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        if xdist_worker_number(worker) is not None:
            import torch

            if torch.cuda.is_available():
                index = worker_device_index(worker, torch.cuda.device_count())
                if index is not None:
                    torch.cuda.set_device(index)
                    torch.cuda.init()  # type: ignore[no-untyped-call]  # the runner reads the current device only once CUDA is up
        _claimed.append(index)
        return index


def claimed_device() -> int | None:
    """The device :func:`claim_worker_gpu` made current, if any."""
    return _claimed[0] if _claimed else None

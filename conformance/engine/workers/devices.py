"""Which GPU a worker uses: assigned by whoever starts it, never guessed inside it.

Under pytest-xdist on a machine with several CUDA devices, each xdist worker ``gwN``
gives its conformance work GPU slot ``N``; a worker process (or the in-process
executor) told a slot makes device ``slot % device_count`` current before its first
CUDA check. A spec whose device is plain ``"cuda"`` then runs there: the kit builds the
decoder and its latents on the current device. A spec that names an index
(``"cuda:1"``) keeps it: the author asked for that device. Nothing happens with one (or
no) CUDA device, for CPU specs (CUDA is not even initialized then), or with
``--conformance-worker-gpus=off``.
"""

from __future__ import annotations

import re
import threading

__all__ = ["claimed_device", "device_for_slot", "use_gpu_slot", "xdist_worker_number"]

_lock = threading.Lock()
_claimed: list[int | None] = []  # empty until the first claim; then [device index or None]


def xdist_worker_number(worker_id: str | None) -> int | None:
    """``N`` for an xdist worker id ``gwN``; ``None`` for anything else (no xdist)."""
    if not worker_id:
        return None
    match = re.fullmatch(r"gw(\d+)", worker_id.strip())
    return int(match.group(1)) if match else None


def device_for_slot(slot: int | None, device_count: int) -> int | None:
    """The CUDA device GPU slot ``slot`` uses, or ``None`` to leave the default.

    Slots are spread round-robin (``N -> N % device_count``), so as many slots as GPUs
    give each its own, and more slots share them evenly.
    """
    if slot is None or device_count < 2:
        return None
    return slot % device_count


def use_gpu_slot(slot: int | None) -> int | None:
    """Make GPU slot ``slot``'s device the current CUDA device (once per process).

    Returns the device index now current, or ``None`` when nothing was changed. Call it
    only before running a CUDA spec: it initializes CUDA.
    """
    with _lock:
        if _claimed:
            return _claimed[0]
        index: int | None = None
        if slot is not None:
            import torch  # only for CUDA specs: a CPU run never needs it here

            if torch.cuda.is_available():
                index = device_for_slot(slot, torch.cuda.device_count())
                if index is not None:
                    torch.cuda.set_device(index)
                    torch.cuda.init()  # type: ignore[no-untyped-call]  # the executor reads the current device only once CUDA is up
        _claimed.append(index)
        return index


def claimed_device() -> int | None:
    """The device :func:`use_gpu_slot` made current, if any."""
    return _claimed[0] if _claimed else None

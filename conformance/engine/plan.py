"""A run's plan: which checks, in which order, with which seeds, and where they run.

The order is the catalog's (:data:`conformance.checks.catalog.CHECK_IDS`, its one
definition); a subset keeps it. Each check gets its own seed derived from the run seed and its id, so
``--check ID --seed N`` replays exactly what that check did inside the full run.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from conformance.checks.catalog import CHECK_IDS, require_known
from conformance.core.profiles import DEFAULT_PROFILE

__all__ = ["RunOptions", "check_seed", "is_subset", "lanes_for", "new_seed", "planned_checks"]


@dataclass(frozen=True)
class RunOptions:
    """How a run is made: effort, seed, checks, where the checks run."""

    seed: int
    profile: str = DEFAULT_PROFILE
    #: The checks to run (``None``: every check, in the catalog's order).
    check_ids: Sequence[str] | None = None
    #: Run in supervised worker processes (a target string only; spec objects run in-process).
    supervised: bool = True
    #: Intra-op threads for a worker's torch (``None``: the kit's policy, one thread for CPU decoders).
    threads: int | None = None
    #: GPU slot for CUDA specs on plain ``"cuda"`` (see :mod:`conformance.engine.workers.devices`).
    gpu_slot: int | None = None
    #: Extra environment variables for worker processes.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Worker processes running one decoder's checks at once (``None``: as many as the
    #: machine has room for, see :func:`lanes_for`; spec objects always run in one).
    jobs: int | None = None
    #: Checks whose worker crashed or hung before a decoder's other checks are not run.
    max_worker_losses: int | None = 2
    #: Failed checks before a decoder's other checks are not run (``None``: never).
    maxfail: int | None = None


def new_seed() -> int:
    """A fresh random run seed (recorded in the certification so the run can be replayed)."""
    return secrets.randbits(32)


def check_seed(run_seed: int, check_id: str) -> int:
    """The seed one check uses inside a run: stable across Python processes and versions."""
    digest = hashlib.sha256(f"{run_seed}:{check_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def planned_checks(check_ids: Sequence[str] | None = None) -> list[str]:
    """The checks to run, in the registry's order: every check, or the ones asked for
    (``KeyError`` for an unknown id, naming the closest ones)."""
    if check_ids is None:
        return list(CHECK_IDS)
    wanted = {require_known(check_id) for check_id in check_ids}
    return [check_id for check_id in CHECK_IDS if check_id in wanted]


def is_subset(check_ids: Sequence[str]) -> bool:
    """Whether a plan leaves checks out (such a run reports its checks but never certifies)."""
    return set(check_ids) != set(CHECK_IDS)


def lanes_for(options: RunOptions, devices: list[str], cpu_count: int | None) -> int:
    """How many worker processes run one decoder's checks at once.

    ``options.jobs`` when given. Otherwise: CPU decoders get one per core (each worker
    uses one thread), up to four; a decoder on an accelerator gets two (its checks make
    small calls that leave the device idle between them, and two processes fill those
    gaps), as long as the machine has two cores.
    """
    if options.jobs is not None:
        return max(1, options.jobs)
    cores = max(1, cpu_count or 1)
    if all(device.split(":")[0] == "cpu" for device in devices):
        return min(4, cores)
    return min(2, cores)

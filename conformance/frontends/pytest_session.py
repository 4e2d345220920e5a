"""The pytest session's conformance state: one seed, one profile, one run per target.

Everything the plugin's hooks, its items and ``conformance_tests`` share lives here, so
none of them imports another: the seed (drawn once per session, or
``--conformance-seed``; under pytest-xdist the controller's, handed to every worker),
the profile, the GPU slot of this xdist worker, and the
:class:`~conformance.engine.loop.TargetRun` that answers every conformance test of one
target in this pytest process (a supervised worker per target, opened at the target's
first check and closed at the end of the session).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from conformance.core.profiles import DEFAULT_PROFILE
from conformance.engine.loop import TargetRun
from conformance.engine.plan import RunOptions
from conformance.engine.workers.devices import xdist_worker_number

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

__all__ = [
    "MARKER",
    "RECORD_ATTRIBUTE",
    "REPLAY_PROPERTY",
    "close_target_runs",
    "draw_session_seed",
    "gpu_slot",
    "in_process",
    "session_profile",
    "session_seed",
    "target_run",
]

#: Name of the marker every conformance test carries (``-m conformance``).
MARKER = "conformance"

#: ``user_properties`` key under which a failed check leaves its replay commands. The
#: summary reads it back from the test reports, so it also works under pytest-xdist.
REPLAY_PROPERTY = "conformance_replay"

#: Attribute of an item (and of its call report) holding the check's record as JSON, for
#: the certificate of the run; pytest-xdist ships report attributes to the controller.
RECORD_ATTRIBUTE = "conformance_record"

_SEED = pytest.StashKey[int]()
_RUNS = pytest.StashKey[dict[Any, TargetRun]]()


def draw_session_seed(config: pytest.Config) -> int:
    """The seed every check of this session uses.

    Under pytest-xdist the controller draws it and hands it to its workers, so the one
    printed seed replays every worker's checks.
    """
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "conformance_seed" in worker_input:
        return int(worker_input["conformance_seed"])
    seed = config.getoption("conformance_seed", None)
    if seed is not None:
        return int(seed)
    return random.SystemRandom().randrange(2**32)


def session_seed(config: pytest.Config) -> int:
    """The Hypothesis seed this pytest session's conformance checks use."""
    if _SEED not in config.stash:
        config.stash[_SEED] = draw_session_seed(config)
    return config.stash[_SEED]


def session_profile(config: pytest.Config) -> str:
    """The profile this pytest session's conformance checks use."""
    return config.getoption("conformance_profile", None) or DEFAULT_PROFILE


def in_process(config: pytest.Config) -> bool:
    """Whether ``--conformance-in-process`` asked for checks in this pytest process."""
    return bool(config.getoption("conformance_in_process", False))


def gpu_slot(config: pytest.Config) -> int | None:
    """This xdist worker's GPU slot (``gwN`` -> ``N``), unless ``--conformance-worker-gpus=off``."""
    if config.getoption("conformance_worker_gpus", "spread") == "off":
        return None
    return xdist_worker_number(os.environ.get("PYTEST_XDIST_WORKER"))


def target_run(
    config: pytest.Config,
    source: str | Sequence[DecoderSpec],
    *,
    profile: str | None = None,
    seed: int | None = None,
) -> TargetRun:
    """The run that answers the conformance tests of ``source`` in this pytest process.

    A target string runs in a supervised worker process (``--conformance-in-process``
    opts out); spec objects run in this process (a factory cannot be sent to another).
    One run per (source, profile, seed), opened at its first check.
    """
    profile = profile or session_profile(config)
    seed = session_seed(config) if seed is None else seed
    key = (source if isinstance(source, str) else tuple(id(spec) for spec in source), profile, seed)
    runs = config.stash.setdefault(_RUNS, {})
    if key not in runs:
        options = RunOptions(
            seed=seed, profile=profile, supervised=not in_process(config), gpu_slot=gpu_slot(config),
        )
        run = TargetRun(source, options)
        failure = run.open()
        if failure is not None:
            raise RuntimeError(f"could not load {failure.target}:\n{failure.error}")
        runs[key] = run
    return runs[key]


def close_target_runs(config: pytest.Config) -> None:
    """Close every run this pytest process opened (at the end of the session)."""
    for run in config.stash.get(_RUNS, {}).values():
        run.close()

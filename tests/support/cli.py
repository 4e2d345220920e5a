"""Running Python and the kit's command line in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support import REPO_ROOT

__all__ = ["run_kit", "run_python"]


def run_python(
    args: Sequence[str],
    *,
    cwd: Path = REPO_ROOT,
    pythonpath: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGS`` in ``cwd`` with ``pythonpath`` (and the repository, so that
    ``tests.zoo...`` targets import from anywhere) prepended to ``PYTHONPATH``.

    One intra-op thread, as everywhere in the suite (tiny decoders: threads only add
    overhead), unless ``env`` says otherwise.
    """
    full = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    paths = [str(path) for path in pythonpath] + [str(REPO_ROOT), full.get("PYTHONPATH", "")]
    full["PYTHONPATH"] = os.pathsep.join(path for path in paths if path)
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=full, capture_output=True, text=True, timeout=timeout
    )


def run_kit(
    *args: str,
    cwd: Path = REPO_ROOT,
    pythonpath: Sequence[Path] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m conformance ARGS`` (the real command line, ``python -m`` putting
    ``cwd`` on ``sys.path``)."""
    return run_python(["-m", "conformance", *args], cwd=cwd, pythonpath=pythonpath, env=env, timeout=timeout)

"""The commands that replay a run or one check with the same examples: their one home.

Built from data where they are shown (the terminal, the Markdown certificate, GitHub
annotations, pytest's summary), never appended to a message and parsed back out. Two
forms: the ``certify`` command (works for every front end, from the directory the target
imports from) and the pytest command of a conformance test.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Sequence

__all__ = ["certify_command", "pytest_command"]

#: Written where a replay command needs a target the run did not have (a spec object).
TARGET_PLACEHOLDER = "<TARGET>"


def certify_command(
    target: str | Sequence[str | None] | None,
    *,
    seed: int,
    profile: str,
    check_ids: Sequence[str] = (),
) -> str:
    """``python -m conformance certify TARGET... [--check ID...] --seed N --profile P``.

    ``target`` may be one target or several (one command certifies them all); ``None``
    writes :data:`TARGET_PLACEHOLDER`. ``check_ids`` restricts the run to those checks.
    """
    targets = [target] if target is None or isinstance(target, str) else list(target)
    parts = ["python", "-m", "conformance", "certify"]
    parts += [t if t is not None else TARGET_PLACEHOLDER for t in targets]
    for check_id in check_ids:
        parts += ["--check", check_id]
    parts += ["--seed", str(seed), "--profile", profile]
    return " ".join(part if part == TARGET_PLACEHOLDER else shlex.quote(part) for part in parts)


def pytest_command(
    *,
    seed: int,
    profile: str,
    nodeid: str | None = None,
    rootdir: str | os.PathLike[str] | None = None,
    target: str | None = None,
    check_id: str | None = None,
) -> str:
    """The pytest command that re-runs one conformance test with the same examples.

    A test defined in a test module (``conformance_tests``) is named by its node id, made
    absolute with ``rootdir`` so that the command works from any directory; a check
    collected with ``--conformance-decoder`` is named by its target and check id.
    """
    parts = ["pytest"]
    if nodeid is not None:
        path, sep, rest = nodeid.partition("::")
        if rootdir is not None and not os.path.isabs(path):
            path = os.path.join(os.fspath(rootdir), path)
        parts.append(path + sep + rest)
    else:
        parts.append(f"--conformance-decoder={target or TARGET_PLACEHOLDER}")
    parts += [f"--conformance-seed={seed}", f"--conformance-profile={profile}"]
    if nodeid is None:
        parts += ["-m", "conformance"] + (["-k", check_id] if check_id is not None else [])
    return " ".join(shlex.quote(part) for part in parts)

"""Live progress: check lines as checks finish, a status line on terminals only."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import REPO_ROOT as ROOT


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_on_a_terminal_a_status_line_shows_the_check_in_progress(tmp_path: Path) -> None:
    master, slave = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    child = subprocess.Popen(
        [sys.executable, "-m", "conformance", "certify", "reference_decoders.toy:toy_spec",
         "--profile", "quick", "--seed", "1", "--report", str(tmp_path / "r.json")],
        cwd=ROOT, env=env, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    child.wait(60)
    os.close(master)
    text = seen.decode(errors="replace")
    assert child.returncode == 0, text
    assert "\r  ... " in text  # the status line, redrawn in place
    assert "rollout_state_machine ..." in text  # ... naming the check in progress
    # every check's line still arrives, and the verdict
    assert text.count("PASS") >= 15 and "CERTIFIED" in text


def test_piped_output_has_no_status_line(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "certify", "reference_decoders.toy:toy_spec",
         "--profile", "quick", "--seed", "1", "--report", str(tmp_path / "r.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\r" not in done.stdout
    lines = done.stdout.splitlines()
    # check lines appear before the verdict, one per check
    verdict = next(i for i, line in enumerate(lines) if "CERTIFIED" in line)
    assert sum("PASS" in line for line in lines[:verdict]) >= 15


def test_quiet_prints_the_verdict_without_check_lines(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "conformance", "certify", "reference_decoders.toy:toy_spec", "-q",
         "--profile", "quick", "--seed", "1", "--report", str(tmp_path / "r.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS" not in done.stdout and "toy-causal: CERTIFIED" in done.stdout

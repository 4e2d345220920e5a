"""Zoo cases are real ``MODULE:ATTR`` targets: the command line certifies and rejects them.

The README tells readers to try ``python -m conformance certify tests.zoo.<module>:<case>``
to see what an author sees; this keeps that promise, end to end in a subprocess (one
run, a correct and a broken target, one check, so it stays cheap).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT


def test_cli_certifies_a_correct_zoo_target_and_rejects_a_broken_one(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "conformance",
            "certify",
            "tests.zoo.correct:plain_toy",
            "tests.zoo.chunking:history_dropped_at_seams",
            "--check",
            "chunked_decode_matches_full_decode",
            "--profile",
            "quick",
            "--seed",
            "7",
            "--report",
            str(report),
        ],
        cwd=REPO_ROOT,
        # One intra-op thread, as in the rest of the zoo: the decoders are tiny.
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    # A --check subset never certifies; what tells the two apart is the check's status.
    statuses = {entry["decoder"]: entry["checks"][0]["status"] for entry in data["decoders"]}
    assert statuses == {"zoo-ok-plain-toy": "passed", "zoo-history-dropped-at-seams": "failed"}
    assert not any(entry["certified"] for entry in data["decoders"])

"""The worked downstream example (``examples/downstream``) follows the guide and works
from outside this repository.

The example is copied to a temporary folder first, so nothing here depends on being
inside the kit's checkout. Two routes, as a decoder author would take them:

- its own pytest run (unit tests and ``conformance_tests``), with the package on
  ``PYTHONPATH`` as an editable install would put it;
- a real ``pip install`` of the package (offline, no dependencies, into a private
  ``--target`` folder, so the environment is untouched), then
  ``python -m conformance certify --installed`` from an empty folder: the entry points
  in the example's pyproject.toml are what finds its decoders.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conformance.checks.suite import ALL_CHECKS
from tests.support import REPO_ROOT
from tests.support.cli import run_python as run
from tests.support.installed import require_empty_registry

EXAMPLE = REPO_ROOT / "examples" / "downstream"
CHECKS = len(ALL_CHECKS)


@pytest.fixture
def example(tmp_path: Path) -> Path:
    copy = tmp_path / "acme-video"
    shutil.copytree(EXAMPLE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    return copy


def test_the_example_s_own_pytest_run_certifies_both_decoders(example: Path) -> None:
    result = run(
        ["-m", "pytest", "-p", "no:cacheprovider", "--conformance-profile=quick", "--conformance-seed=7", "-rxs"],
        cwd=example,
        pythonpath=[example / "src"],
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = [line for line in result.stdout.strip().splitlines() if " passed" in line][-1]
    # acme-causal: every check passes (batch of two, so batch independence runs too);
    # acme-fast: its declared bug is an expected failure of the two checks that see it,
    # batch independence is skipped;
    # plus the package's two unit tests.
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|skipped|xfailed|failed)", summary)}
    assert counts == {"passed": CHECKS + (CHECKS - 3) + 2, "skipped": 1, "xfailed": 2}, summary
    assert "XFAIL tests/test_conformance.py::test_acme_fast[acme-fast-outputs_survive_later_steps]" in output
    assert "ACME-42" in output
    assert "conformance: profile 'quick', seed 7" in output


def test_installed_example_is_certified_with_one_command(example: Path, tmp_path: Path) -> None:
    require_empty_registry()
    # Offline build (--no-build-isolation) with the environment's own build backend.
    pytest.importorskip("setuptools", minversion="68", reason="building the example needs setuptools>=68")
    site = tmp_path / "site"
    install = run(
        ["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(example)],
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    empty = tmp_path / "reviewer"
    empty.mkdir()

    result = run(
        ["-m", "conformance", "certify", "--installed", "--profile", "quick", "--seed", "7",
         "--markdown", "certificate.md"],
        cwd=empty,
        pythonpath=[site],
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "Installed decoders (2 registered): acme-causal = acme_video.specs:causal_spec (from acme-video)" in result.stdout
    assert "Verdict: CERTIFIED (acme-causal certified, acme-fast certified)" in result.stdout
    report = json.loads((empty / "conformance-report.json").read_text())
    assert report["certified"] is True and report["unloadable"] == []
    by_name = {entry["decoder"]: entry for entry in report["decoders"]}
    assert by_name["acme-causal"]["summary"] == {"passed": CHECKS, "failed": 0, "error": 0, "xfailed": 0, "skipped": 0, "inconclusive": 0, "not_run": 0}
    assert by_name["acme-fast"]["summary"]["xfailed"] == 2
    assert by_name["acme-causal"]["spec"]["layout"] == "BTCHW"
    assert "AcmeDecoderConfig(" in by_name["acme-causal"]["decoder_config"]
    certificate = (empty / "certificate.md").read_text()
    assert certificate.startswith("# Conformance certificate\n\n**CERTIFIED**: 2 of 2 decoders certified")
    assert "- `outputs_survive_later_steps` (expected failure): expected failure (the output buffer is reused" in certificate

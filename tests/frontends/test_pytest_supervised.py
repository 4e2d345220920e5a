"""The pytest plugin answers each conformance item from a supervised worker by default."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
from tests.support import REPO_ROOT as ROOT


def test_a_decoder_that_ends_its_process_fails_its_item_and_pytest_goes_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(

        "--conformance-decoder=tests.zoo.process:forward_calls_os_exit",
        "--conformance-profile=quick", "--conformance-seed=1",
        "-k", "input_is_not_modified or temporal_mappers_round_trip",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*exited with status 0*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_in_process_mode_still_runs_checks_in_the_pytest_process(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    result = pytester.runpytest_subprocess(
        "--conformance-in-process",
        "--conformance-decoder=reference_decoders.toy:toy_spec",
        "--conformance-profile=quick", "--conformance-seed=1", "-k", "temporal_mappers_round_trip",
    )
    result.assert_outcomes(passed=1)

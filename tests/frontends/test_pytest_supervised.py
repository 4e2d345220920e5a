"""Under pytest, conformance tests are answered by supervised worker processes by default.

Both ways of asking -- ``--conformance-decoder`` and ``conformance_tests()`` in a test
module -- run a target's checks in a worker process with the command line's thread
policy, so a decoder that ends its process fails its checks and pytest goes on; every
record says how it ran. Spec objects (which cannot be sent to another process) and
``--conformance-in-process`` run in the pytest process, and the records say that too.
"""

from __future__ import annotations

import json
import textwrap

import pytest

from conformance.checks.catalog import CHECK_IDS
from tests.support import REPO_ROOT

pytest_plugins = ["pytester"]

OS_EXIT = "tests.zoo.process:forward_calls_os_exit"
TOY = "reference_decoders.toy:toy_spec"
QUICK = ["--conformance-profile=quick", "--conformance-seed=1", "-p", "no:cacheprovider"]


@pytest.fixture(autouse=True)
def _repository_on_the_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))


def test_a_decoder_that_ends_its_process_fails_its_item_and_pytest_goes_on(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        f"--conformance-decoder={OS_EXIT}", *QUICK, "-k", "input_is_not_modified or temporal_mappers_round_trip",
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*exited with status 0*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_conformance_tests_in_a_module_survive_a_decoder_that_ends_its_process(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_downstream=textwrap.dedent(
            f"""
            from conformance import conformance_tests

            test_decoder = conformance_tests(
                "{OS_EXIT}", checks=["input_is_not_modified", "temporal_mappers_round_trip"]
            )
            """
        )
    )
    result = pytester.runpytest_subprocess(*QUICK, "--conformance-report=report.json", "--junitxml=junit.xml")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*exited with status 0*", "*short test summary*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    report = json.loads((pytester.path / "report.json").read_text())
    (decoder,) = report["decoders"]
    assert decoder["supervised"] is True
    assert decoder["environment"]["torch_threads"] == 1  # the worker's, chosen by the kit
    statuses = {check["id"]: (check["status"], check["kind"]) for check in decoder["checks"]}
    assert statuses["input_is_not_modified"] == ("failed", "crash")
    assert statuses["temporal_mappers_round_trip"] == ("passed", None)
    assert "conformance_status" in (pytester.path / "junit.xml").read_text()


def test_spec_objects_run_in_the_pytest_process_and_say_so(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_downstream=textwrap.dedent(
            """
            from conformance import conformance_tests
            from reference_decoders.toy import toy_spec

            test_decoder = conformance_tests(toy_spec(), checks=["temporal_mappers_round_trip"])
            """
        )
    )
    result = pytester.runpytest_subprocess(*QUICK, "--conformance-report=report.json")
    result.assert_outcomes(passed=1)
    (decoder,) = json.loads((pytester.path / "report.json").read_text())["decoders"]
    assert decoder["supervised"] is False


def test_in_process_mode_still_runs_checks_in_the_pytest_process(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--conformance-in-process", f"--conformance-decoder={TOY}", *QUICK, "-k", "temporal_mappers_round_trip",
    )
    result.assert_outcomes(passed=1)


def test_a_cuda_decoder_on_a_machine_without_one_is_skipped_with_one_reason(pytester: pytest.Pytester) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    pytester.makepyfile(
        gpu_specs=textwrap.dedent(
            f"""
            from reference_decoders.toy import toy_spec


            def on_cuda():
                return toy_spec(name="needs-a-gpu", device="cuda")
            """
        )
    )
    result = pytester.runpytest_subprocess("--conformance-decoder=gpu_specs:on_cuda", *QUICK, "-rs")
    result.assert_outcomes(skipped=len(CHECK_IDS))
    result.stdout.fnmatch_lines([f"*SKIPPED ?{len(CHECK_IDS)}?*declared on device 'cuda' but CUDA is not available here*"])
    assert result.ret == pytest.ExitCode.OK


def test_a_factory_that_builds_no_decoder_fails_once_and_skips_the_rest(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess(
        "--conformance-decoder=tests.zoo.forward_contract:positional_names_forward", *QUICK, "-rs",
    )
    result.assert_outcomes(failed=1, skipped=len(CHECK_IDS) - 1)
    result.stdout.fnmatch_lines(["*forward does not accept keywords*"])
    assert result.stdout.str().count("forward does not accept keywords") <= 3  # the failure and its summary line

"""End-to-end tests of the pytest plugin, run in a throw-away pytest session (pytester).

Every test here runs the real engine on real decoders: the bundled toy decoder, and
small broken variants of it written into the pytester directory, each with one bug a
known check guards. Runs use the ``quick`` profile to keep the suite fast on 2 cores.
"""

from __future__ import annotations

import json
import re
import textwrap

import pytest

from conformance.checks.suite import ALL_CHECKS

# Declared here rather than in tests/delivery/conftest.py: pytest refuses
# ``pytest_plugins`` in a conftest below the rootdir when run as ``pytest`` from the
# repository root (the CI command).
pytest_plugins = ["pytester"]

TOY = "reference_decoders.toy:toy_spec"
CHECK_IDS = [check.id for check in ALL_CHECKS]
QUICK = "--conformance-profile=quick"

# Broken decoders: each is the toy decoder with one bug, written into the pytester dir.
BROKEN_DECODERS = '''
from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder, toy_spec


class InputEditingDecoder(ToyVideoDecoder):
    """Decodes correctly, then scales the caller's latents in place."""

    def forward(self, input, autoregressive_index=0, cache=None):
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        input.mul_(0.5)
        return output


def input_editing():
    return toy_spec(name="input-editing", factory=lambda: InputEditingDecoder(ToyDecoderConfig()))


def input_editing_expected():
    return toy_spec(
        name="input-editing-known",
        factory=lambda: InputEditingDecoder(ToyDecoderConfig()),
        expected_failures={"input_is_not_modified": "scales latents in place (bug 12)"},
    )


def stale_expectation():
    return toy_spec(
        name="toy-stale",
        expected_failures={"input_is_not_modified": "was fixed long ago"},
    )


def unknown_expectation():
    return toy_spec(name="toy-typo", expected_failures={"chunked_decode_matches_ful": "typo"})


def _no_weights():
    raise RuntimeError("checkpoint weights.safetensors not found")


def factory_raises():
    return toy_spec(name="no-weights", factory=_no_weights)


not_a_spec = 42
'''


@pytest.fixture
def broken(pytester: pytest.Pytester) -> str:
    """Write the broken decoders as module ``broken_decoders`` importable by the session."""
    pytester.makepyfile(broken_decoders=BROKEN_DECODERS)
    pytester.syspathinsert()
    return "broken_decoders"


def outcome_lines(result: pytest.RunResult) -> dict[str, str]:
    """Map ``node id`` -> ``PASSED``/``FAILED``/... from a ``-v`` run's progress lines."""
    found: dict[str, str] = {}
    for line in result.outlines:
        match = re.match(r"^(\S+) (PASSED|FAILED|SKIPPED|XFAIL|XPASS|ERROR)\b", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def test_toy_decoder_passes_every_check_one_test_each(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={TOY}", QUICK, "-v", "-p", "no:cacheprovider",
        "--conformance-report=report.json", "--conformance-markdown=certificate.md",
    )

    outcomes = outcome_lines(result)
    expected_ids = [f"{TOY}::toy-causal::{check_id}" for check_id in CHECK_IDS]
    assert sorted(outcomes) == sorted(expected_ids), result.stdout.str()
    assert set(outcomes.values()) <= {"PASSED", "SKIPPED"}
    assert result.ret == pytest.ExitCode.OK
    counts = result.parseoutcomes()
    assert counts.get("passed", 0) + counts.get("skipped", 0) == len(CHECK_IDS)
    result.stdout.re_match_lines([r"conformance: profile 'quick', seed \d+ \(replay with --conformance-seed=\d+\)"])
    # The same certificate as `certify`: a complete pytest run certifies.
    report = json.loads((pytester.path / "report.json").read_text())
    assert (report["certified"], report["complete"], report["subset"], report["partial"]) == (True, True, False, False)
    assert report["decoder"] == "toy-causal" and report["target"] == TOY
    assert [check["id"] for check in report["checks"]] == CHECK_IDS
    assert report["spec"]["name"] == "toy-causal" and report["environment"]["device"] == "cpu"
    assert "**CERTIFIED**: 1 of 1 decoder certified" in (pytester.path / "certificate.md").read_text()
    result.stdout.fnmatch_lines(["conformance report: report.json", "conformance certificate: certificate.md"])


def test_k_selects_one_check_by_id(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={TOY}", QUICK, "-v", "-k", "chunked_decode", "-p", "no:cacheprovider"
    )

    assert outcome_lines(result) == {f"{TOY}::toy-causal::chunked_decode_matches_full_decode": "PASSED"}
    result.assert_outcomes(passed=1, deselected=len(CHECK_IDS) - 1)


def test_k_selects_a_category_and_m_selects_only_conformance(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="def test_own(): pass")
    size_checks = [check.id for check in ALL_CHECKS if check.category == "size_mappers"]

    result = pytester.runpytest(
        f"--conformance-decoder={TOY}", QUICK, "-v", "-m", "conformance", "-k", "size_mappers"
    )

    assert sorted(outcome_lines(result)) == sorted(f"{TOY}::toy-causal::{c}" for c in size_checks)


def test_project_tests_run_alongside_and_plugin_is_idle_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="def test_own(): pass")

    idle = pytester.runpytest("-p", "no:cacheprovider")
    idle.assert_outcomes(passed=1)

    both = pytester.runpytest(
        f"--conformance-decoder={TOY}", QUICK, "-k", "test_own or ratios_are_positive", "-p", "no:cacheprovider"
    )
    both.assert_outcomes(passed=2, deselected=len(CHECK_IDS) - 1)


def test_broken_decoder_fails_its_check_and_every_other_check_still_runs(
    pytester: pytest.Pytester, broken: str
) -> None:
    target = f"{broken}:input_editing"
    result = pytester.runpytest(
        f"--conformance-decoder={target}", QUICK, "-v", "--conformance-seed=1234", "-p", "no:cacheprovider"
    )

    outcomes = outcome_lines(result)
    prefix = f"{target}::input-editing::"
    assert sorted(outcomes) == sorted(prefix + check_id for check_id in CHECK_IDS)
    assert outcomes[prefix + "input_is_not_modified"] == "FAILED"
    # The size mappers never look at the latents: the bug must not leak into them.
    for check in ALL_CHECKS:
        if check.category == "size_mappers":
            assert outcomes[prefix + check.id] == "PASSED", check.id
    assert result.ret == pytest.ExitCode.TESTS_FAILED

    failures = result.stdout.str().split("= FAILURES =", 1)[1]
    assert "conformance check input_is_not_modified failed" in failures
    # The check's own words, not a traceback through the kit.
    assert "Traceback" not in failures
    assert "conformance/engine/runner.py" not in failures
    assert "INTERNALERROR" not in result.stdout.str()
    # Replay instructions, with the seed, for both pytest and the CLI.
    result.stdout.fnmatch_lines(
        [
            "*conformance replay*",
            f"*pytest --conformance-decoder={target} --conformance-seed=1234 --conformance-profile=quick -m conformance -k input_is_not_modified",
            f"*python -m conformance certify {target} --check input_is_not_modified --seed 1234 --profile quick",
        ]
    )


def test_expected_failure_is_xfail_and_a_stale_one_fails(pytester: pytest.Pytester, broken: str) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={broken}:input_editing_expected",
        f"--conformance-decoder={broken}:stale_expectation",
        QUICK,
        "-v",
        "-k",
        "input_is_not_modified",
        "-rxX",
        "-p",
        "no:cacheprovider",
    )

    outcomes = outcome_lines(result)
    assert outcomes == {
        f"{broken}:input_editing_expected::input-editing-known::input_is_not_modified": "XFAIL",
        f"{broken}:stale_expectation::toy-stale::input_is_not_modified": "FAILED",
    }
    result.stdout.fnmatch_lines(["*XFAIL*input_is_not_modified*scales latents in place (bug 12)*"])


def test_factory_that_raises_gives_failed_checks_not_a_crash(pytester: pytest.Pytester, broken: str) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={broken}:factory_raises", QUICK, "-p", "no:cacheprovider"
    )

    counts = result.parseoutcomes()
    assert counts.get("failed", 0) >= 1
    assert "errors" not in counts and "error" not in counts
    assert "INTERNALERROR" not in result.stdout.str()
    assert "checkpoint weights.safetensors not found" in result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED


@pytest.mark.parametrize(
    ("target", "why"),
    [
        ("no_such_module_xyz:spec", "No module named 'no_such_module_xyz'"),
        ("broken_decoders:no_such_attr", "no attribute 'no_such_attr'"),
        ("broken_decoders:not_a_spec", "expected a"),
        ("missing-colon", "MODULE:ATTR"),
        ("broken_decoders:unknown_expectation", "chunked_decode_matches_ful"),
    ],
)
def test_unloadable_target_is_a_clear_collection_error(
    pytester: pytest.Pytester, broken: str, target: str, why: str
) -> None:
    result = pytester.runpytest(f"--conformance-decoder={target}", QUICK, "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        [f"*ERROR collecting {target}*", f"conformance target '{target}' could not be loaded:"]
    )
    assert why in result.stdout.str()
    assert "INTERNALERROR" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_module_raising_on_import_names_the_target_and_the_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(explodes="raise RuntimeError('no GPU driver found')")
    pytester.syspathinsert()

    result = pytester.runpytest("--conformance-decoder=explodes:spec", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting explodes:spec*", "*RuntimeError: no GPU driver found*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_unknown_profile_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(f"--conformance-decoder={TOY}", "--conformance-profile=fastest")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*fastest*not a known profile*quick*default*thorough*"])


def test_seed_option_is_used_and_reported(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={TOY}",
        QUICK,
        "--conformance-seed=987654",
        "-k",
        "ratios_are_positive",
        f"--junitxml={pytester.path / 'junit.xml'}",
        "-p",
        "no:cacheprovider",
    )

    result.stdout.fnmatch_lines(["conformance: profile 'quick', seed 987654 (replay with --conformance-seed=987654)"])
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="conformance_status" value="passed"' in junit
    assert '<property name="conformance_seed" value="987654"' in junit


def test_module_helper_collects_one_test_per_check(pytester: pytest.Pytester, broken: str) -> None:
    pytester.makepyfile(
        test_my_decoder=textwrap.dedent(
            f"""
            from conformance import conformance_tests
            from {broken} import input_editing

            test_toy = conformance_tests("{TOY}")
            test_broken = conformance_tests(
                input_editing(), checks=["input_is_not_modified", "ratios_are_positive_constant_ints"]
            )
            """
        )
    )
    toy_ids = [f"test_my_decoder.py::test_toy[toy-causal-{check_id}]" for check_id in CHECK_IDS]
    broken_ids = [  # in the catalog's order, whatever order they were asked in
        "test_my_decoder.py::test_broken[input-editing-ratios_are_positive_constant_ints]",
        "test_my_decoder.py::test_broken[input-editing-input_is_not_modified]",
    ]

    collected = pytester.runpytest("--co", "-q", "-p", "no:cacheprovider")
    assert [line for line in collected.outlines if "::" in line] == toy_ids + broken_ids

    # Running every toy check is the first plugin test's job; run two cheap ones here.
    result = pytester.runpytest(
        "-v", QUICK, "--conformance-seed=55", "-k", "test_broken or toy-causal-forward_accepts", "-p", "no:cacheprovider"
    )

    assert outcome_lines(result) == {
        "test_my_decoder.py::test_toy[toy-causal-forward_accepts_keyword_call]": "PASSED",
        broken_ids[0]: "PASSED",
        broken_ids[1]: "FAILED",
    }
    failures = result.stdout.str().split("= FAILURES =", 1)[1]
    assert "conformance check input_is_not_modified failed" in failures
    assert "Traceback" not in failures
    result.stdout.fnmatch_lines(["*--seed 55 --profile quick*"])


def test_module_helper_with_unloadable_target_fails_that_module_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_bad="from conformance import conformance_tests\ntest_bad = conformance_tests('no_such_module_xyz:spec')\n",
        test_fine="def test_fine(): pass\n",
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_bad.py*", "*no_such_module_xyz*"])
    assert "INTERNALERROR" not in result.stdout.str()


def test_module_helper_works_with_the_plugin_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_mine=f"""
        from conformance import conformance_tests

        test_toy = conformance_tests("{TOY}", checks=["forward_accepts_keyword_call"], profile="quick", seed=3)
        """
    )

    result = pytester.runpytest("-p", "no:conformance", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, warnings=0)


# ---------------------------------------------------------------------------------
# One clean failure from every entry point; header only when asked; the certificate


def test_module_helper_fails_each_check_once_without_a_chained_exception(pytester: pytest.Pytester, broken: str) -> None:
    pytester.makepyfile(
        test_mine=f"""
        from conformance import conformance_tests
        from {broken} import input_editing

        test_editing = conformance_tests(input_editing(), checks=["input_is_not_modified"], profile="quick")
        """
    )

    result = pytester.runpytest("-p", "no:cacheprovider")

    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    failures = out.split("= FAILURES =", 1)[1].split("short test summary", 1)[0]
    assert failures.count("conformance check input_is_not_modified failed:") == 1
    assert "During handling of the above exception" not in out
    assert "Traceback" not in failures
    assert "docs: python -m conformance explain input_is_not_modified" in failures


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("conformance_tests('no_such_module_xyz:spec')", "No module named 'no_such_module_xyz'"),
        (f"conformance_tests('{TOY}', checks=['chunked'])", "'chunked_decode_matches_full_decode'?"),
        ("conformance_tests('broken_decoders:unknown_expectation')", "chunked_decode_matches_ful"),
    ],
    ids=["unloadable", "unknown-check", "invalid-spec"],
)
def test_module_helper_with_a_bad_target_is_one_clean_collection_error(
    pytester: pytest.Pytester, broken: str, source: str, says: str
) -> None:
    pytester.makepyfile(test_bad=f"from conformance import conformance_tests\ntest_bad = {source}\n")

    result = pytester.runpytest("-p", "no:cacheprovider")

    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_bad.py*", "conformance_tests(*"])
    assert says in out
    assert "Traceback" not in out and "direct cause" not in out and "conformance/core/spec.py" not in out


def test_no_conformance_header_without_conformance_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_own="def test_own(): pass")

    idle = pytester.runpytest("-p", "no:cacheprovider")

    idle.assert_outcomes(passed=1)
    assert not [line for line in idle.outlines if line.startswith("conformance")], idle.stdout.str()

    pytester.makepyfile(
        test_mine=f"""
        from conformance import conformance_tests

        test_toy = conformance_tests("{TOY}", checks=["forward_accepts_keyword_call"], profile="quick")
        """
    )
    with_one = pytester.runpytest("-p", "no:cacheprovider", "--conformance-seed=77")
    with_one.assert_outcomes(passed=2)
    with_one.stdout.fnmatch_lines(["conformance: profile 'default', seed 77 (replay with --conformance-seed=77)"])

    collected_only = pytester.runpytest("-p", "no:cacheprovider")  # no option: the line follows collection
    collected_only.stdout.re_match_lines([r"conformance: profile 'default', seed \d+"])


def test_unwritable_conformance_report_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={TOY}", "--conformance-report=missing/report.json", "-p", "no:cacheprovider"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--conformance-report 'missing/report.json': folder 'missing' does not exist*"])
    assert "mkdir -p missing" in result.stderr.str()
    assert "--create-dirs" not in result.stderr.str()  # a certify option; pytest has none
    assert not (pytester.path / "missing").exists()


def test_a_selection_of_checks_gives_a_subset_certificate(pytester: pytest.Pytester, broken: str) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={broken}:input_editing", QUICK, "-k", "input_is_not_modified or ratios_are",
        "--conformance-report=r.json", "--conformance-markdown=c.md", "-p", "no:cacheprovider",
    )

    result.assert_outcomes(passed=1, failed=1, deselected=len(CHECK_IDS) - 2)
    report = json.loads((pytester.path / "r.json").read_text())
    assert (report["certified"], report["subset"], report["complete"]) == (False, True, False)
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "ratios_are_positive_constant_ints": "passed", "input_is_not_modified": "failed",
    }
    markdown = (pytester.path / "c.md").read_text()
    assert "**FAILED**" in markdown and "A subset run reports its checks but never certifies" in markdown


def test_xdist_workers_send_their_results_to_the_controller_s_certificate(pytester: pytest.Pytester, broken: str) -> None:
    pytest.importorskip("xdist")
    chosen = ["input_is_not_modified", "ratios_are_positive_constant_ints", "forward_accepts_keyword_call"]
    pytester.makeini(f"[pytest]\npythonpath = {pytester.path}\n")  # the workers import broken_decoders too

    result = pytester.runpytest(
        f"--conformance-decoder={broken}:input_editing", f"--conformance-decoder={TOY}", QUICK, "-n", "2",
        "-k", " or ".join(chosen), "--conformance-report=r.json", "--conformance-markdown=c.md",
        "-p", "no:cacheprovider", "-p", "no:benchmark",
    )

    result.assert_outcomes(passed=2 * len(chosen) - 1, failed=1)
    report = json.loads((pytester.path / "r.json").read_text())
    by_decoder = {entry["decoder"]: entry for entry in report["decoders"]}
    assert set(by_decoder) == {"input-editing", "toy-causal"}
    for entry in by_decoder.values():
        assert sorted(c["id"] for c in entry["checks"]) == sorted(chosen)
        assert entry["subset"] is True and entry["certified"] is False
    editing = {c["id"]: c["status"] for c in by_decoder["input-editing"]["checks"]}
    assert editing["input_is_not_modified"] == "failed"
    assert by_decoder["toy-causal"]["summary"]["passed"] == len(chosen)
    assert "input-editing" in (pytester.path / "c.md").read_text()


def test_a_session_stopped_early_writes_a_partial_certificate(pytester: pytest.Pytester, broken: str) -> None:
    result = pytester.runpytest(
        f"--conformance-decoder={broken}:input_editing", QUICK, "-x",
        "-k", "ratios_are_positive or input_is_not_modified or outputs_survive_later_steps",
        "--conformance-report=r.json", "-p", "no:cacheprovider",
    )

    result.assert_outcomes(passed=1, failed=1, deselected=len(CHECK_IDS) - 3)
    report = json.loads((pytester.path / "r.json").read_text())
    assert (report["certified"], report["partial"], report["run_state"]) == (False, True, "interrupted")
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "ratios_are_positive_constant_ints": "passed",
        "input_is_not_modified": "failed",
        "outputs_survive_later_steps": "not_run",
    }

"""Unit tests of the report renderers on hand-made results (no decoder runs here).

The end-to-end CLI tests cover reports of real runs; these pin the edge cases a real
run rarely produces: non-finite errors, tensors in evidence, several decoders.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from conformance.report import (
    SCHEMA_VERSION,
    evidence_highlights,
    format_certification,
    format_failure,
    jsonable,
    replay_command,
    to_json_dict,
    write_json_report,
)
from conformance.results import Certification, CheckResult

ENVIRONMENT = {"kit": "0.1.0", "torch": torch.__version__, "python": "3.11", "device": "cpu", "dtype": "torch.float32"}


def certification(name: str, *results: CheckResult, seed: int = 7) -> Certification:
    return Certification(decoder=name, results=list(results), seed=seed, profile="quick", environment=ENVIRONMENT)


PASSED = CheckResult("ratios_are_positive_constant_ints", "passed", "", 0.01, {"examples": 3, "mapper_queries": 40})
FAILED = CheckResult(
    "chunked_decode_matches_full_decode",
    "failed",
    "chunk plan [3, 1, 1]: AR index 1, pixel frame 9 differs\nmax error 0.5 > tolerance 1.2e-05",
    0.2,
    {
        "examples": 4,
        "max_abs_error": 0.5,
        "max_error_to_tolerance": 41666.0,
        "tolerance_margin": -41665.0,
        "tolerance": {"atol": 1.2e-05, "rtol": 1.2e-05, "source": "float32 default"},
    },
)
SKIPPED = CheckResult("batch_elements_are_independent", "skipped", "batch_size is 1: nothing to compare", 0.0, {})


def test_single_decoder_report_has_the_issue_keys_at_top_level() -> None:
    report = to_json_dict([certification("toy", PASSED, FAILED)], targets=["pkg:spec"])

    assert report["schema_version"] == SCHEMA_VERSION
    assert report["decoder"] == "toy"
    assert report["certified"] is False
    assert [(c["id"], c["status"]) for c in report["checks"]] == [
        ("ratios_are_positive_constant_ints", "passed"),
        ("chunked_decode_matches_full_decode", "failed"),
    ]
    assert report["checks"][1]["message"] == FAILED.message
    assert report["checks"][1]["category"] == "chunking"
    assert report["seed"] == 7 and report["profile"] == "quick"
    assert report["environment"] == ENVIRONMENT
    assert report["summary"]["passed"] == 1 and report["summary"]["failed"] == 1
    # A partial run replays exactly the checks it ran.
    assert report["replay"] == (
        "python -m conformance certify pkg:spec --check ratios_are_positive_constant_ints "
        "--check chunked_decode_matches_full_decode --seed 7 --profile quick"
    )
    assert report["decoders"] == [{k: report[k] for k in report["decoders"][0]}]


def test_several_decoders_are_listed_and_all_must_pass() -> None:
    report = to_json_dict([certification("a", PASSED), certification("b", PASSED, FAILED)])

    assert report["certified"] is False
    assert [entry["decoder"] for entry in report["decoders"]] == ["a", "b"]
    assert [entry["certified"] for entry in report["decoders"]] == [True, False]
    assert "decoder" not in report and "checks" not in report
    assert to_json_dict([certification("a", PASSED), certification("b", SKIPPED)])["certified"] is True


def test_targets_must_match_certifications() -> None:
    with pytest.raises(ValueError, match="2 targets for 1 certifications"):
        to_json_dict([certification("a", PASSED)], targets=["x:y", "z:w"])


def test_odd_evidence_still_gives_strict_json(tmp_path: Path) -> None:
    odd = CheckResult(
        "cache_memory_is_bounded",
        "failed",
        "grows",
        0.1,
        {
            "bytes_per_step": torch.tensor([1.0, 2.0]),
            "growth": float("inf"),
            "ratio": float("nan"),
            "dtype": torch.bfloat16,
            "shape": (1, 2),
            "seen": {3, 1},
        },
    )
    path = write_json_report(tmp_path / "deep" / "er" / "report.json", [certification("toy", odd)])

    data = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    evidence = data["checks"][0]["evidence"]
    assert evidence == {
        "bytes_per_step": [1.0, 2.0],
        "growth": "inf",
        "ratio": "nan",
        "dtype": "torch.bfloat16",
        "shape": [1, 2],
        "seen": [1, 3],
    }


def test_jsonable_keeps_plain_values() -> None:
    assert jsonable({"a": [1, 2.5, None, True, "x"]}) == {"a": [1, 2.5, None, True, "x"]}
    assert jsonable(-math.inf) == "-inf"


def test_highlights_show_volume_and_error_against_tolerance() -> None:
    assert evidence_highlights(PASSED.evidence) == "3 examples, 40 mapper queries"
    assert evidence_highlights({"examples": 1, "rollouts": 1, "decoder_calls": 1}) == (
        "1 example, 1 rollout, 1 decoder call"
    )
    text = evidence_highlights(FAILED.evidence)
    assert text.startswith("4 examples; max error 0.5, 4.2e+04x tolerance")
    assert "atol 1.2e-05, rtol 1.2e-05" in text
    small = evidence_highlights({"max_abs_error": 1e-7, "max_error_to_tolerance": 0.025})
    assert small == "max error 1e-07, 2.5% of tolerance"
    assert evidence_highlights({}) == ""


def test_text_summary_lists_every_check_and_spells_out_failures() -> None:
    text = format_certification(certification("toy", PASSED, FAILED, SKIPPED), target="pkg:spec")

    lines = text.splitlines()
    assert lines[0] == "Conformance of toy (pkg:spec)"
    assert any(line.lstrip().startswith("PASS") and PASSED.check_id in line for line in lines)
    assert any(line.lstrip().startswith("FAIL") and FAILED.check_id in line for line in lines)
    skip_line = next(line for line in lines if SKIPPED.check_id in line)
    assert skip_line.lstrip().startswith("SKIP") and "batch_size is 1" in skip_line
    for message_line in FAILED.message.splitlines():
        assert any(line.strip() == message_line for line in lines)
    assert lines[-1] == "toy: NOT CERTIFIED (1 passed, 1 failed, 1 skipped) in 0.2 s"


def test_failure_text_carries_message_evidence_and_replay() -> None:
    replay = replay_command("pkg:spec", seed=3, profile="quick", check_id=FAILED.check_id)
    text = format_failure(FAILED, replay=[replay])

    assert text.splitlines()[0] == "conformance check chunked_decode_matches_full_decode failed:"
    assert "  chunk plan [3, 1, 1]: AR index 1, pixel frame 9 differs" in text
    assert "evidence: 4 examples; max error 0.5" in text
    assert text.splitlines()[-1] == (
        "  python -m conformance certify pkg:spec --check chunked_decode_matches_full_decode --seed 3 --profile quick"
    )


def test_full_run_replays_without_check_options() -> None:
    from conformance.checks import ALL_CHECKS

    results = [CheckResult(check.id, "passed", "", 0.0, {"examples": 1}) for check in ALL_CHECKS]
    report = to_json_dict([certification("toy", *results)], targets=["pkg:spec"])

    assert report["replay"] == "python -m conformance certify pkg:spec --seed 7 --profile quick"


def test_replay_command_for_several_targets_and_checks() -> None:
    command = replay_command(["a:x", "b:y"], seed=2, profile="thorough", check_ids=["c1", "c2"])

    assert command == "python -m conformance certify a:x b:y --check c1 --check c2 --seed 2 --profile thorough"


def test_replay_command_quotes_what_the_shell_would_split() -> None:
    assert replay_command("my pkg:spec", seed=1, profile="quick") == (
        "python -m conformance certify 'my pkg:spec' --seed 1 --profile quick"
    )
    assert replay_command(None, seed=1, profile="default").startswith("python -m conformance certify <TARGET> ")

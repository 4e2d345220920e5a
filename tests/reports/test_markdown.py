"""The Markdown certificate: what a reviewer reads in a pull request.

Unit tests render hand-made results (every status, odd characters); the end-to-end
tests certify real decoders through the command line and read the certificate and the
JSON report it writes next to it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conformance.frontends.cli import main
from conformance.core.results import Certification, CheckResult, DecoderRun
from conformance.core.values import decoder_config_text, spec_fields
from conformance.reports.markdown import to_markdown
from reference_decoders.toy import ToyDecoderConfig, toy_spec

ENVIRONMENT = {"kit_version": "0.1.0", "python": "3.11", "torch": "2.13.0", "device": "cpu", "dtype": "float32"}
TOLERANCE = {"atol": 2.4e-4, "rtol": 2.4e-4, "source": "float32 default"}

PASSED = CheckResult(
    "decoding_is_deterministic",
    "passed",
    "",
    0.05,
    {"examples": 2, "decoder_calls": 10, "comparisons": 8, "max_abs_error": 6.0e-6,
     "max_error_to_tolerance": 0.025, "tolerance_margin": 0.975, "tolerance": TOLERANCE},
)
FAILED = CheckResult(
    "chunked_decode_matches_full_decode",
    "failed",
    "chunked decode differs from full decode: chunk plan [1, 1] | frame 4\n"
    "Minimal failing example (Hypothesis, shrunk):\n"
    "    check_case(case=ChunkCase(variant=0, plan=(1, 1)))",
    0.3,
    {"examples": 3, "decoder_calls": 9, "comparisons": 3, "max_abs_error": 0.5,
     "max_error_to_tolerance": 2000.0, "tolerance_margin": -1999.0, "tolerance": TOLERANCE},
    replay="python -m conformance certify pkg:spec --check chunked_decode_matches_full_decode --seed 9 --profile quick",
)
XFAILED = CheckResult(
    "outputs_survive_later_steps", "xfailed", "expected failure (buffer reused, ACME-42): output changed", 0.01,
    {"examples": 2, "decoder_calls": 3},
)
SKIPPED = CheckResult(
    "batch_elements_are_independent", "skipped", "DecoderSpec.batch_size is 1; set batch_size > 1", 0.0, {"examples": 0}
)


def certificate(
    *results: CheckResult, spec: dict[str, object] | None = None, config: str | None = None, **kwargs: object
) -> str:
    cert = Certification("toy-causal", list(results), seed=9, profile="quick", environment=ENVIRONMENT)
    run = DecoderRun(cert, target="pkg:spec", spec=spec, decoder_config=config)
    return to_markdown([run], **kwargs)  # type: ignore[arg-type]


def table_rows(text: str) -> dict[str, list[str]]:
    """Rows of every Markdown table, keyed by their first cell (code spans unwrapped)."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_check_has_a_row_with_status_examples_error_and_margin() -> None:
    text = certificate(PASSED, FAILED, XFAILED, SKIPPED)

    rows = table_rows(text)
    # "Error / tolerance": the largest error as a share of the tolerance, as the terminal says it.
    assert rows[PASSED.check_id][1:] == ["forward_contract", "passed", "2", "10", "6e-06", "2.5%", "0.05 s"]
    assert rows[FAILED.check_id][1:] == ["chunking", "**FAILED**", "3", "9", "0.5", "2,000x", "0.30 s"]
    assert rows[XFAILED.check_id][2] == "expected failure"
    assert rows[SKIPPED.check_id][2:5] == ["skipped", "0", "-"]
    assert "atol 0.00024, rtol 0.00024 (float32 default)" in text


def test_verdict_and_replay_command_come_first() -> None:
    text = certificate(PASSED, FAILED)

    assert text.startswith("# Conformance certificate\n\n**NOT CERTIFIED**: 0 of 1 decoder certified")
    rows = table_rows(text)
    assert rows["toy-causal"][1:] == ["`pkg:spec`", "**NOT CERTIFIED**", "1 passed, 1 failed", "quick", "`9`"]
    assert (
        "Replay this run: `python -m conformance certify pkg:spec --check decoding_is_deterministic "
        "--check chunked_decode_matches_full_decode --seed 9 --profile quick`"
    ) in text


def test_a_failure_shows_its_whole_message_with_the_minimal_example_and_its_replay() -> None:
    text = certificate(PASSED, FAILED)

    section = text.split("### Failures\n\n", 1)[1].split("\n### ", 1)[0]
    assert section.startswith("#### `chunked_decode_matches_full_decode`: failed")
    block = re.search(r"```text\n(.*?)\n```", section, re.S)
    # Verbatim, pipes included; the replay line is given once, below, not inside the message.
    assert block and block.group(1) == FAILED.message.rsplit("\nReplay: ", 1)[0]
    assert "Evidence: 3 examples, 9 decoder calls; largest error 0.5 is 2,000x the tolerance" in section
    assert section.count("--check chunked_decode_matches_full_decode --seed 9") == 1
    assert (
        "Replay this check: `python -m conformance certify pkg:spec --check "
        "chunked_decode_matches_full_decode --seed 9 --profile quick`"
    ) in section


def test_expected_failures_and_skips_are_listed_with_their_reasons() -> None:
    text = certificate(PASSED, XFAILED, SKIPPED)

    assert text.startswith("# Conformance certificate\n\n**CERTIFIED**")
    assert "### Failures" not in text
    assert "- `outputs_survive_later_steps` (expected failure): expected failure (buffer reused, ACME-42)" in text
    assert "- `batch_elements_are_independent` (skipped): DecoderSpec.batch_size is 1" in text


def test_configuration_lists_every_spec_field_and_the_decoder_config() -> None:
    spec = toy_spec(expected_failures={"outputs_survive_later_steps": "a | b"})
    config = decoder_config_text(ToyDecoderConfig().setup())
    text = certificate(PASSED, spec=spec_fields(spec), config=config)

    rows = table_rows(text.split("### Configuration", 1)[1].split("### Environment", 1)[0])
    assert set(rows) - {"DecoderSpec field"} == set(spec_fields(spec))
    assert rows["factory"][1] == "`reference_decoders.toy.ToyDecoderConfig.setup`"
    assert rows["latent_size"][1] == "`[4, 4]`"
    assert rows["dtype"][1] == "`torch.float32`"
    assert rows["expected_failures"][1] == '`{"outputs_survive_later_steps": "a \\| b"}`'
    assert f"```text\n{config}\n```" in text
    assert "temporal_ratio=4" in text


def test_environment_is_listed() -> None:
    rows = table_rows(certificate(PASSED).split("### Environment", 1)[1])

    assert {key: cells[1] for key, cells in rows.items() if key != "Key"} == ENVIRONMENT


def test_backticks_in_names_and_messages_do_not_break_the_markup() -> None:
    odd = CheckResult("input_is_not_modified", "failed", "saw ``` in the output\nand `x`", 0.0, {})
    cert = Certification("my`decoder", [odd], seed=1, profile="quick", environment={})
    text = to_markdown([DecoderRun(cert)])

    assert "## my`decoder: NOT CERTIFIED" in text
    assert "| ``my`decoder`` |" in text
    assert "````text\nsaw ``` in the output\nand `x`\n````" in text
    assert "python -m conformance certify <TARGET> --check input_is_not_modified --seed 1" in text


# ---------------------------------------------------------------------------------
# End to end, through the command line

SEAM_BUG = '''
from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder, toy_spec


class SeamDropping(ToyVideoDecoder):
    """Forgets the causal history at every call, so chunk seams decode differently."""

    def forward(self, input, autoregressive_index=0, cache=None):
        cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


def seam_dropping():
    return toy_spec(name="seam-dropping", factory=lambda: SeamDropping(ToyDecoderConfig(hidden_channels=5)))
'''


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "seam_bug.py").write_text(SEAM_BUG)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_cli_certificate_of_a_broken_decoder_has_the_shrunk_example_and_replay(workdir: Path) -> None:
    checks = ["--check", "chunked_decode_matches_full_decode", "--check", "forward_accepts_keyword_call"]
    code = main(
        ["certify", "seam_bug:seam_dropping", "--profile", "quick", "--seed", "21", *checks,
         "--markdown", "out/certificate.md", "--report", "out/report.json", "--create-dirs"]
    )

    assert code == 1
    text = (workdir / "out" / "certificate.md").read_text()
    report = json.loads((workdir / "out" / "report.json").read_text())
    failed = next(c for c in report["checks"] if c["status"] == "failed")
    assert failed["id"] == "chunked_decode_matches_full_decode"
    assert "**NOT CERTIFIED**" in text
    assert "Minimal failing example (Hypothesis, shrunk):" in failed["message"]
    # The whole message (long lines wrapped), minimal example included; its replay line once.
    body = failed["message"].split("\nReplay: ", 1)[0]
    assert " ".join(body.split()) in " ".join(text.split())
    assert (
        "Replay this check: `python -m conformance certify seam_bug:seam_dropping "
        "--check chunked_decode_matches_full_decode --seed 21 --profile quick`"
    ) in text
    # The configuration is the decoder that actually ran: the factory's own config.
    assert report["spec"]["factory"] == "seam_bug.seam_dropping.<locals>.<lambda>"
    assert "hidden_channels=5" in report["decoder_config"]
    assert "hidden_channels=5" in text
    assert table_rows(text)["forward_accepts_keyword_call"][2] == "passed"


def test_cli_certificate_of_a_correct_decoder_is_certified(workdir: Path) -> None:
    code = main(
        ["certify", "reference_decoders.toy:toy_spec", "--profile", "quick", "--seed", "4", "--no-report",
         "--markdown", "cert.md"]
    )

    assert code == 0
    text = (workdir / "cert.md").read_text()
    assert "**CERTIFIED**: 1 of 1 decoder certified" in text
    rows = table_rows(text)
    from conformance import ALL_CHECKS

    for check in ALL_CHECKS:
        assert rows[check.id][2] in {"passed", "skipped"}, rows[check.id]
        assert rows[check.id][3].isdigit()
    assert rows["chunked_decode_matches_full_decode"][6].endswith("%")  # error / tolerance, not "-"
    assert not (workdir / "conformance-report.json").exists()

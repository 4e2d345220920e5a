"""Unit tests of the report renderers on hand-made records (no decoder runs here).

The end-to-end CLI tests cover reports of real runs; these pin the edge cases a real
run rarely produces: non-finite errors, tensors in evidence, values that cannot be
written, several decoders, subset and interrupted runs, the placeholder a run leaves
while it is running, atomic writes, GitHub Actions output, one wording for error against
tolerance, wrapped messages, docs links and a single replay line per failure.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from pathlib import Path

import pytest
import torch

from conformance.core.links import check_docs
from conformance.core.ratios import ratio_text
from conformance.core.replay import certify_command
from conformance.core.results import Certification, CheckResult, DecoderRun
from conformance.core.values import jsonable
from conformance.reports import github
from conformance.reports.json_report import json_text
from conformance.reports.markdown import to_markdown
from conformance.reports.outputs import (
    OutputPaths,
    atomic_write,
    check_paths,
    claim_paths,
    path_problem,
    write_outputs,
)
from conformance.reports.record import SCHEMA_VERSION, report_dict
from conformance.reports.text import evidence_highlights, format_failure, format_run

ENVIRONMENT = {"kit": "0.1.0", "torch": torch.__version__, "python": "3.11", "device": "cpu", "dtype": "torch.float32"}


def certification(name: str, *results: CheckResult, seed: int = 7, **flags: bool) -> Certification:
    return Certification(
        decoder=name, results=list(results), seed=seed, profile="quick", environment=ENVIRONMENT, **flags
    )


def runs_of(items: list[Certification | DecoderRun], targets: list[str | None] | None = None) -> list[DecoderRun]:
    """Records for the renderers: a certification gets its target (or none)."""
    targets = targets or [None] * len(items)
    return [item if isinstance(item, DecoderRun) else DecoderRun(item, target=target)
            for item, target in zip(items, targets)]


def report_of(items: list[Certification | DecoderRun], *, targets: list[str | None] | None = None, **kwargs):  # type: ignore[no-untyped-def]
    return report_dict(runs_of(items, targets), **kwargs)


def markdown_of(items: list[Certification | DecoderRun], *, targets: list[str | None] | None = None, **kwargs) -> str:  # type: ignore[no-untyped-def]
    return to_markdown(runs_of(items, targets), **kwargs)


def write_report(path: Path | str, items: list[Certification | DecoderRun]) -> Path:
    return atomic_write(path, json_text(runs_of(items)))


def full(name: str = "toy", **flags: bool) -> Certification:
    """Every check passed: a complete run."""
    from conformance.checks.suite import ALL_CHECKS

    return certification(name, *[CheckResult(c.id, "passed", "", 0.0, {"examples": 1}) for c in ALL_CHECKS], **flags)


PASSED = CheckResult("ratios_are_positive_constant_ints", "passed", "", 0.01, {"examples": 3, "mapper_queries": 40})
REPLAY = "python -m conformance certify pkg:spec --check chunked_decode_matches_full_decode --seed 7 --profile quick"
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
    kind="broken promise",
    replay=REPLAY,
)
SKIPPED = CheckResult("batch_elements_are_independent", "skipped", "batch_size is 1: nothing to compare", 0.0, {})


# ---------------------------------------------------------------------------------
# The JSON record


def test_single_decoder_report_has_the_decoder_keys_at_top_level() -> None:
    report = report_of([certification("toy", PASSED, FAILED, subset=True)], targets=["pkg:spec"])

    assert report["schema_version"] == SCHEMA_VERSION == 2
    assert report["decoder"] == "toy"
    assert report["certified"] is False
    assert [(c["id"], c["status"], c["kind"]) for c in report["checks"]] == [
        ("ratios_are_positive_constant_ints", "passed", None),
        ("chunked_decode_matches_full_decode", "failed", "broken promise"),
    ]
    assert report["checks"][1]["message"] == FAILED.message  # the JSON keeps the engine's text
    assert report["checks"][1]["category"] == "chunking"
    assert report["checks"][1]["docs"] == "docs/checks/chunked_decode_matches_full_decode.md"
    assert report["seed"] == 7 and report["profile"] == "quick"
    assert report["environment"] == ENVIRONMENT
    assert report["summary"]["passed"] == 1 and report["summary"]["failed"] == 1
    assert report["summary"]["inconclusive"] == 0 and report["summary"]["not_run"] == 0
    # A subset run replays exactly the checks it ran.
    assert report["replay"] == (
        "python -m conformance certify pkg:spec --check ratios_are_positive_constant_ints "
        "--check chunked_decode_matches_full_decode --seed 7 --profile quick"
    )
    assert report["decoders"] == [{k: report[k] if k not in ("complete", "subset", "partial") else report["decoders"][0][k] for k in report["decoders"][0]}]


def test_a_subset_run_reports_its_checks_but_never_certifies() -> None:
    report = report_of([certification("toy", PASSED, subset=True)], targets=["pkg:spec"])

    assert report["checks"][0]["status"] == "passed"
    assert (report["certified"], report["complete"], report["subset"], report["partial"]) == (False, False, True, False)
    text = format_run(DecoderRun(certification("toy", PASSED, subset=True), target="pkg:spec"))
    assert "toy: NOT CERTIFIED (1 passed)" in text and "a subset never certifies" in text
    assert "A subset run reports its checks but never certifies" in markdown_of([certification("toy", PASSED, subset=True)])


def test_a_complete_passing_run_certifies() -> None:
    report = report_of([full()], targets=["pkg:spec"])

    assert (report["certified"], report["complete"], report["subset"], report["partial"]) == (True, True, False, False)
    assert report["run_state"] == "finished" and report["replay"] == "python -m conformance certify pkg:spec --seed 7 --profile quick"


def test_an_interrupted_run_is_partial_and_never_certified() -> None:
    not_run = CheckResult("input_is_not_modified", "not_run", "not run: interrupted (Ctrl-C)", 0.0, {})
    cert = certification("toy", PASSED, not_run, interrupted=True)

    report = report_of([cert], run_state="interrupted", note="interrupted by Ctrl-C")
    assert (report["certified"], report["complete"], report["partial"], report["run_state"]) == (
        False, False, True, "interrupted"
    )
    assert report["summary"]["not_run"] == 1 and report["note"] == "interrupted by Ctrl-C"
    # Even a run whose every check passed is not certified once the run was interrupted.
    assert report_of([full()], run_state="interrupted")["certified"] is False
    text = markdown_of([cert], run_state="interrupted")
    assert text.startswith("# Conformance certificate\n\n**NOT CERTIFIED**")
    assert "**Partial report**" in text and "(not run): not run: interrupted (Ctrl-C)" in text
    assert "the run was interrupted" in format_run(DecoderRun(cert))


def test_new_statuses_block_certification_and_are_shown() -> None:
    inconclusive = CheckResult(
        "rollout_state_machine", "inconclusive", "ran out of time while the decoder kept completing calls; "
        "rerun on an idle machine or raise check_timeout_s", 120.0, {"examples": 3}, kind="inconclusive",
    )
    cert = certification("toy", PASSED, inconclusive)

    assert report_of([cert])["certified"] is False
    text = format_run(DecoderRun(cert))
    assert "INCONCLUSIVE  rollout_state_machine" in text and "rerun on an idle machine" in " ".join(text.split())
    assert "**INCONCLUSIVE**" in markdown_of([cert])


def test_several_decoders_are_listed_and_all_must_pass() -> None:
    report = report_of([full("a"), certification("b", PASSED, FAILED)])

    assert report["certified"] is False
    assert [entry["decoder"] for entry in report["decoders"]] == ["a", "b"]
    assert [entry["certified"] for entry in report["decoders"]] == [True, False]
    assert "decoder" not in report and "checks" not in report
    assert report_of([full("a"), full("b")])["certified"] is True
    assert report_of([])["certified"] is False  # nothing ran: nothing certified


def test_decoder_run_records_and_spec_field_dicts_render_alike() -> None:
    spec = {"name": "toy", "device": "cpu", "latent_size": [4, 4]}
    run = DecoderRun(certification("toy", PASSED), target="pkg:spec", spec=spec, decoder_config="Cfg()",
                     supervised=True, notes=["worker replaced once after a crash"])

    report = report_of([run])
    assert report["spec"] == spec and report["decoder_config"] == "Cfg()"
    assert report["supervised"] is True and report["notes"] == ["worker replaced once after a crash"]
    text = markdown_of([run])
    assert "| `latent_size` | `[4, 4]` |" in text and "worker replaced once after a crash" in text
    assert "in a supervised worker process" in text


class _StrRaises:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class _StrReturnsNonStr:
    def __str__(self) -> int:  # type: ignore[override]
        return 42


def test_values_that_cannot_be_written_become_placeholders(tmp_path: Path) -> None:
    loop: list = [1]
    loop.append(loop)
    table: dict = {"a": 1}
    table["self"] = table
    surrogate = "bad byte \udcff here"
    odd = CheckResult(
        "cache_memory_is_bounded",
        "failed",
        f"message with a lone surrogate: {surrogate}",
        0.1,
        {
            "bytes_per_step": torch.tensor([1.0, 2.0]),
            "growth": float("inf"),
            "ratio": float("nan"),
            "dtype": torch.bfloat16,
            "shape": (1, 2),
            "seen": {3, 1},
            "loop": loop,
            "table": table,
            "broken": _StrRaises(),
            "not_str": _StrReturnsNonStr(),
            _StrRaises(): "key whose str raises",
            "surrogate": surrogate,
            "sparse": torch.zeros(2, 2).to_sparse(),
            "meta": torch.empty(2, device="meta"),
        },
    )
    cert = certification("toy \udcfe", odd)
    path = write_report(tmp_path / "report.json", [cert])

    data = json.loads(path.read_bytes().decode("ascii"), parse_constant=lambda name: pytest.fail(f"non-strict: {name}"))
    evidence = data["checks"][0]["evidence"]
    assert evidence["bytes_per_step"] == [1.0, 2.0]
    assert (evidence["growth"], evidence["ratio"], evidence["dtype"], evidence["shape"], evidence["seen"]) == (
        "inf", "nan", "torch.bfloat16", [1, 2], [1, 3]
    )
    assert evidence["loop"] == [1, "<recursive reference>"]
    assert evidence["table"] == {"a": 1, "self": "<recursive reference>"}
    assert evidence["broken"] == "<unprintable _StrRaises: str() raised RuntimeError: no str for you>"
    assert evidence["not_str"].startswith("<unprintable _StrReturnsNonStr")
    assert evidence["<unprintable _StrRaises: str() raised RuntimeError: no str for you>"] == "key whose str raises"
    assert evidence["surrogate"] == "bad byte \\udcff here"
    assert evidence["sparse"].startswith("<tensor (2, 2)") and "sparse" in evidence["sparse"]
    assert evidence["meta"].startswith("<tensor (2,)")
    assert data["checks"][0]["message"].endswith("bad byte \\udcff here")
    # Every other format takes the same record without raising.
    markdown = markdown_of([cert])
    markdown.encode("utf-8")
    format_run(DecoderRun(cert)).encode("utf-8")
    list(github.annotation_lines([DecoderRun(cert)]))


def test_jsonable_keeps_plain_values() -> None:
    assert jsonable({"a": [1, 2.5, None, True, "x"]}) == {"a": [1, 2.5, None, True, "x"]}
    assert jsonable(-math.inf) == "-inf"


# ---------------------------------------------------------------------------------
# Writing: atomic, checked before the run, claimed with a placeholder


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_behind(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text("old")
    os.chmod(path, 0o644)

    atomic_write(path, "new \udcff")

    assert path.read_text() == "new \\udcff"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    assert (path.stat().st_mode & 0o777) == 0o644


def _write_many(path: str, index: int) -> None:
    cert = certification(f"writer-{index}", PASSED)
    for _ in range(20):
        write_report(path, [cert])


def test_concurrent_writers_always_leave_one_complete_report(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_write_many, args=(str(path), i)) for i in range(4)]
    for writer in writers:
        writer.start()
    seen = set()
    while any(writer.is_alive() for writer in writers):
        if path.exists():
            seen.add(json.loads(path.read_text())["decoder"])  # never half a file
    for writer in writers:
        writer.join()
        assert writer.exitcode == 0

    assert json.loads(path.read_text())["decoder"].startswith("writer-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda tmp: tmp, "is a folder"),
        (lambda tmp: tmp / "missing" / "r.json", "does not exist; create it first"),
        (lambda tmp: Path("/proc/conformance-report.json"), "cannot be written"),
        (lambda tmp: Path("/dev/null"), "not a regular file"),
        (lambda tmp: tmp / "file.txt" / "r.json", "is not a folder"),
    ],
    ids=["folder", "missing-parent", "proc", "device", "parent-is-a-file"],
)
def test_unwritable_paths_are_named_before_anything_runs(tmp_path: Path, make: object, says: str) -> None:
    (tmp_path / "file.txt").write_text("x")
    path = make(tmp_path)  # type: ignore[operator]

    problem = path_problem(path, option="--report")

    assert problem is not None and says in problem and "--report" in problem
    assert not (tmp_path / "missing").exists()  # never created silently


def test_missing_folders_are_created_only_when_asked(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "r.json"

    assert path_problem(path, option="--report", create_dirs=True) is None
    assert path.parent.is_dir()


def test_a_run_claims_its_paths_so_an_older_certified_report_never_survives(tmp_path: Path) -> None:
    report, markdown = tmp_path / "r.json", tmp_path / "c.md"
    write_report(report, [full()])
    markdown.write_text("**CERTIFIED**")
    assert json.loads(report.read_text())["certified"] is True

    paths = OutputPaths(report, markdown)
    assert check_paths(paths) is None and claim_paths(paths, targets=["pkg:spec"]) is None

    claimed = json.loads(report.read_text())
    assert (claimed["certified"], claimed["partial"], claimed["run_state"], claimed["decoders"]) == (
        False, True, "running", []
    )
    assert "pkg:spec" in claimed["note"] and "killed" in claimed["note"]
    assert "**NOT CERTIFIED**: this run has not finished." in markdown.read_text()


def test_same_path_for_both_reports_is_refused(tmp_path: Path) -> None:
    problem = check_paths(OutputPaths(tmp_path / "r", tmp_path / "r"))

    assert problem and "name the same file" in problem


def test_write_outputs_never_raises_and_says_what_it_could_not_write(tmp_path: Path) -> None:
    (tmp_path / "gone").mkdir()
    paths = OutputPaths(tmp_path / "gone" / "r.json", tmp_path / "c.md")
    os.rmdir(tmp_path / "gone")  # the folder vanished during the run

    written, problems = write_outputs([DecoderRun(full())], paths, env={})

    assert written == [("Certificate", tmp_path / "c.md")]
    assert len(problems) == 1 and "could not write the JSON report" in problems[0]


# ---------------------------------------------------------------------------------
# Text: one wording, wrapped, docs link, one replay line


def test_error_against_tolerance_is_said_one_way_everywhere() -> None:
    exact = {"examples": 2, "max_abs_error": 0.0, "max_error_to_tolerance": 0.0, "tolerance_margin": 1.0,
             "tolerance": {"atol": 1e-5, "rtol": 1e-5}}
    cert = certification("toy", CheckResult("decoding_is_deterministic", "passed", "", 0.1, exact))

    assert ratio_text(0.0) == "0%" and ratio_text(0.026) == "2.6%" and ratio_text(1.0) == "100%"
    assert ratio_text(41666.0) == "41,666x" and ratio_text(2.5) == "2.5x"
    assert "largest error 0 is 0% of the tolerance" in format_run(DecoderRun(cert))
    row = next(line for line in markdown_of([cert]).splitlines() if line.startswith("| `decoding_is_deterministic`"))
    assert row.split(" | ")[6] == "0%"  # the same figure, never "100%" of margin for an exact match
    assert "largest error 0.5 is 41,666x the tolerance" in evidence_highlights(FAILED.evidence)


def test_highlights_show_volume_and_error_against_tolerance() -> None:
    assert evidence_highlights(PASSED.evidence) == "3 examples, 40 mapper queries"
    assert evidence_highlights({"examples": 1, "rollouts": 1, "decoder_calls": 1}) == (
        "1 example, 1 rollout, 1 decoder call"
    )
    assert evidence_highlights({"max_abs_error": 1e-7, "max_error_to_tolerance": 0.025}) == (
        "largest error 1e-07 is 2.5% of the tolerance"
    )
    assert evidence_highlights({"max_abs_error": 1e-7, "max_error_to_tolerance": 0.025, "max_frame_rms_to_tolerance": 0.5}) == (
        "largest error 1e-07 is 2.5% of the tolerance; largest frame RMS error is 50% of its bound"
    )
    assert evidence_highlights({}) == ""


def test_text_summary_lists_every_check_and_spells_out_failures_once() -> None:
    text = format_run(DecoderRun(certification("toy", PASSED, FAILED, SKIPPED), target="pkg:spec"))

    lines = text.splitlines()
    assert lines[0] == "Conformance of toy (pkg:spec)"
    assert any(line.lstrip().startswith("PASS") and PASSED.check_id in line for line in lines)
    assert any(line.lstrip().startswith("FAIL") and FAILED.check_id in line for line in lines)
    skip_line = next(line for line in lines if SKIPPED.check_id in line)
    assert skip_line.lstrip().startswith("SKIP") and "batch_size is 1" in skip_line
    assert any(line.strip() == "chunk plan [3, 1, 1]: AR index 1, pixel frame 9 differs" for line in lines)
    assert any(line.strip() == "docs: python -m conformance explain chunked_decode_matches_full_decode" for line in lines)
    replays = [line for line in lines if "certify pkg:spec --check chunked_decode_matches_full_decode" in line]
    assert len(replays) == 1 and replays[0].strip().startswith("replay: ")
    assert lines[-1] == "toy: NOT CERTIFIED (1 passed, 1 failed, 1 skipped) in 0.2 s"


def test_long_messages_are_wrapped_in_terminal_and_markdown() -> None:
    long_message = "chunked decode differs: " + " ".join(f"word{i}" for i in range(180))  # ~1000 characters
    failed = CheckResult("chunked_decode_matches_full_decode", "failed", long_message, 0.1, {})
    cert = certification("toy", failed)

    terminal = format_run(DecoderRun(cert), width=100)
    assert max(len(line) for line in terminal.splitlines() if "word" in line) <= 100
    assert "word179" in terminal
    block = markdown_of([cert]).split("```text\n", 1)[1].split("\n```", 1)[0]
    assert max(len(line) for line in block.splitlines()) <= 100
    assert " ".join(block.split()) == long_message  # wrapped, nothing lost


def test_markdown_failure_points_at_its_explanation_and_replays_once() -> None:
    text = markdown_of([certification("toy", PASSED, FAILED)], targets=["pkg:spec"])

    section = text.split("### Failures\n\n", 1)[1]
    # No published base: a path inside the kit's source would be a dead link in a PR.
    assert f"What this check promises: `python -m conformance explain {FAILED.check_id}`" in section
    assert "](docs/checks/" not in section
    assert section.count(f"--check {FAILED.check_id} --seed 7") == 1
    assert "Replay:" not in section


def test_a_published_docs_base_makes_every_pointer_an_absolute_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFORMANCE_DOCS_BASE", "https://example.org/kit/docs/checks")
    page = f"https://example.org/kit/docs/checks/{FAILED.check_id}.md"
    cert = certification("toy", PASSED, FAILED)

    assert check_docs(FAILED.check_id) == page
    assert f"What this check promises: [{page}]({page})" in markdown_of([cert], targets=["pkg:spec"])
    assert report_of([cert], targets=["pkg:spec"])["checks"][1]["docs"] == page
    assert f"docs: python -m conformance explain {FAILED.check_id} ({page})" in format_failure(FAILED, replay=[])
    (line,) = github.annotation_lines([DecoderRun(cert, target="pkg:spec")])
    assert page in line


def test_failure_text_carries_message_evidence_docs_and_each_replay_once() -> None:
    replay = certify_command("pkg:spec", seed=3, profile="quick", check_ids=[FAILED.check_id])
    text = format_failure(FAILED, replay=[replay, replay])

    assert text.splitlines()[0] == "conformance check chunked_decode_matches_full_decode failed:"
    assert "  chunk plan [3, 1, 1]: AR index 1, pixel frame 9 differs" in text
    assert "evidence: 4 examples; largest error 0.5" in text
    assert "  docs: python -m conformance explain chunked_decode_matches_full_decode" in text
    assert "Replay:" not in text and text.count("certify pkg:spec") == 1
    assert text.splitlines()[-1] == f"  {replay}"


def test_replay_command_for_several_targets_and_checks() -> None:
    command = certify_command(["a:x", "b:y"], seed=2, profile="thorough", check_ids=["c1", "c2"])

    assert command == "python -m conformance certify a:x b:y --check c1 --check c2 --seed 2 --profile thorough"


def test_replay_command_quotes_what_the_shell_would_split() -> None:
    assert certify_command("my pkg:spec", seed=1, profile="quick") == (
        "python -m conformance certify 'my pkg:spec' --seed 1 --profile quick"
    )
    assert certify_command(None, seed=1, profile="default").startswith("python -m conformance certify <TARGET> ")


# ---------------------------------------------------------------------------------
# GitHub Actions


def test_github_annotations_escape_and_name_the_check() -> None:
    cert = certification("toy", PASSED, FAILED, SKIPPED)

    lines = list(github.annotation_lines([DecoderRun(cert, target="pkg:spec")]))

    assert len(lines) == 1
    line = lines[0]
    assert line.startswith("::error title=conformance%3A toy failed chunked_decode_matches_full_decode::")
    assert "\n" not in line and "%0A" in line
    assert "Docs: python -m conformance explain chunked_decode_matches_full_decode" in line
    assert line.count("--check chunked_decode_matches_full_decode") == 1


def test_step_summary_gets_the_certificate_appended(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")

    written, problems = write_outputs(
        [DecoderRun(full())], OutputPaths(None, None), env={"GITHUB_STEP_SUMMARY": str(summary)}
    )

    assert problems == [] and written == [("Job summary", summary)]
    text = summary.read_text()
    assert text.startswith("earlier step\n# Conformance certificate") and "**CERTIFIED**" in text

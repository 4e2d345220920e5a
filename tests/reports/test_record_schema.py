"""``docs/report-schema.md`` documents exactly the keys real reports have.

The tables of the schema page are parsed and compared with reports written by the
command line, so the page cannot drift from the code: a new key needs a row, a removed
key must lose its row (and, per the page's rules, bump ``schema_version``).
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
import pytest

from conformance import DecoderSpec
from conformance.frontends.cli import main
from conformance.reports.record import SCHEMA_VERSION
from conformance.core.results import STATUSES
from tests.support import REPO_ROOT

SCHEMA_PAGE = REPO_ROOT / "docs" / "report-schema.md"


def documented_keys() -> dict[str, list[str]]:
    """``{section heading: [keys of every table row under it]}``."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in SCHEMA_PAGE.read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
            sections[current] = []
        elif current and re.match(r"^\| `[^`]+` \|", line):
            sections[current].append(line.split("`")[1])
    return sections


SEAM_BUG = '''
from reference_decoders.toy import ToyVideoDecoder, ToyDecoderConfig, toy_spec


class SeamDropping(ToyVideoDecoder):
    def forward(self, input, autoregressive_index=0, cache=None):
        cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


def spec():
    return toy_spec(name="seam-dropping", factory=lambda: SeamDropping(ToyDecoderConfig()))
'''


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Reports of real runs: one decoder, and two decoders (one failing a check)."""
    out = tmp_path_factory.mktemp("reports")
    (out / "schema_seam_bug.py").write_text(SEAM_BUG)
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.syspath_prepend(str(out))
    checks = ["--check", "chunked_decode_matches_full_decode", "--check", "batch_elements_are_independent"]
    single = out / "single.json"
    # A --check subset: reported, never certified (exit 1).
    assert main(["certify", "--profile", "quick", "--seed", "2", *checks, "--report", str(single)]) == 1
    double = out / "double.json"
    code = main(
        ["certify", "reference_decoders.toy:toy_spec", "schema_seam_bug:spec",
         "--profile", "quick", "--seed", "2", *checks, "--report", str(double)]
    )
    monkeypatch.undo()
    assert code == 1
    return {name: json.loads(path.read_text()) for name, path in (("single", single), ("double", double))}


def test_schema_version_on_the_page_is_the_code_s() -> None:
    assert f"# The JSON report, schema version {SCHEMA_VERSION}" in SCHEMA_PAGE.read_text()


def test_report_object_keys_are_documented(reports: dict[str, dict]) -> None:
    documented = documented_keys()
    assert set(reports["double"]) == set(documented["Report object"])
    # A single-decoder report also carries its decoder's keys at top level.
    assert set(reports["single"]) == set(documented["Report object"]) | set(documented["Decoder object"])
    assert (reports["single"]["run_state"], reports["single"]["subset"], reports["single"]["certified"]) == (
        "finished", True, False
    )


def test_the_placeholder_a_run_starts_with_has_only_documented_keys(tmp_path) -> None:
    from conformance.reports.outputs import OutputPaths, claim_paths

    path = tmp_path / "r.json"
    assert claim_paths(OutputPaths(path, None), targets=["pkg:spec"]) is None
    placeholder = json.loads(path.read_text())
    assert set(placeholder) == set(documented_keys()["Report object"])
    assert placeholder["run_state"] == "running" and placeholder["certified"] is False


def test_decoder_and_check_keys_are_documented(reports: dict[str, dict]) -> None:
    documented = documented_keys()
    for decoder in reports["double"]["decoders"]:
        assert set(decoder) == set(documented["Decoder object"])
        assert set(decoder["summary"]) == set(STATUSES)
        for check in decoder["checks"]:
            assert set(check) == set(documented["Check object"])


def test_common_evidence_keys_are_present_in_every_check(reports: dict[str, dict]) -> None:
    documented = documented_keys()
    numerical = [
        "max_abs_error",
        "max_error_to_tolerance",
        "tolerance_margin",
        "tolerance",
        "max_frame_rms_error",
        "max_frame_rms_to_tolerance",
        "frame_rms_margin",
    ]
    evidence_keys = documented["Evidence object"]
    assert evidence_keys[-len(numerical):] == numerical  # the second table: numerical comparisons only
    common = evidence_keys[: -len(numerical)]
    for decoder in reports["double"]["decoders"]:
        for check in decoder["checks"]:
            evidence = check["evidence"]
            assert set(common) <= set(evidence), check["id"]
            if evidence["compared_frames"] > 0:
                assert set(numerical) <= set(evidence), check["id"]


def test_spec_keys_are_the_decoder_spec_fields(reports: dict[str, dict]) -> None:
    documented = documented_keys()["Spec object"]
    assert documented == [spec_field.name for spec_field in fields(DecoderSpec)]
    assert list(reports["single"]["spec"]) == documented


def test_environment_keys_documented_as_always_present_are(reports: dict[str, dict]) -> None:
    for decoder in reports["double"]["decoders"]:
        assert set(documented_keys()["Environment object"]) <= set(decoder["environment"])


def test_unloadable_keys_are_documented() -> None:
    from conformance.core.results import Unloadable
    from conformance.reports.record import report_dict

    entry = Unloadable(name="acme", target="acme.specs:spec", distribution="acme-video", error="ImportError")
    report = report_dict([], unloadable=[entry])
    assert report["certified"] is False
    assert list(report["unloadable"][0]) == documented_keys()["Unloadable object"]

"""The zoo covers the kit: every check has a broken decoder that it must fail.

Adding a check to ``conformance.ALL_CHECKS`` without a zoo entry fails here, and so
does a zoo entry naming a check that does not exist.
"""

from __future__ import annotations

from pathlib import Path

from conformance import ALL_CHECKS, DecoderSpec

from . import BROKEN, CORRECT, BrokenCase, CorrectCase

ALL_IDS = {check.id for check in ALL_CHECKS}


def test_every_check_has_a_broken_decoder_that_it_must_fail() -> None:
    # A check recorded as a kit gap for a case does not catch it yet, so it does not count.
    covered = set().union(
        *(case.must_fail - set(case.kit_gaps) for case in BROKEN if not case.unbuildable)
    )
    missing = sorted(ALL_IDS - covered)
    assert not missing, f"checks without a broken decoder in tests/zoo: {missing}"


def test_zoo_names_only_existing_checks() -> None:
    named = set().union(*(case.must_fail for case in BROKEN), *(case.must_skip for case in CORRECT))
    unknown = sorted(named - ALL_IDS)
    assert not unknown, f"zoo entries name unknown check ids: {unknown}"


def test_every_case_is_documented_and_builds_a_named_spec() -> None:
    every: list[BrokenCase | CorrectCase] = [*BROKEN, *CORRECT]
    names = [case.name for case in every]
    assert len(names) == len(set(names)), "zoo case names must be unique"
    for broken_case in BROKEN:
        assert broken_case.bug, f"{broken_case.name} has no docstring naming the real bug"
        assert broken_case.must_fail or broken_case.unbuildable, f"{broken_case.name} names no check"
    for correct_case in CORRECT:
        assert correct_case.why, f"{correct_case.name} does not say why it is worth certifying"
    for case in every:
        spec = case()
        assert isinstance(spec, DecoderSpec)
        assert spec.name == case.name


def test_readme_lists_every_case() -> None:
    readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    every: list[BrokenCase | CorrectCase] = [*BROKEN, *CORRECT]
    missing = [case.name for case in every if f"`{case.name}`" not in readme]
    assert not missing, f"tests/zoo/README.md does not list: {missing}"

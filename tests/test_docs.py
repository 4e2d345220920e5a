"""The documentation keeps up with the code.

- every check in ``conformance.ALL_CHECKS`` has a page ``docs/checks/<id>.md`` with the
  promise, why it matters, the typical bug and how to fix it (a new check without a
  page fails here), and the index lists exactly the checks;
- the zoo cases a page names exist and are ones that check must catch;
- every option the guide and the pages mention exists, and relative links resolve.
"""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

from conformance.checks.suite import ALL_CHECKS
from tests.support import REPO_ROOT

DOCS = REPO_ROOT / "docs"
CHECK_PAGES = DOCS / "checks"
REQUIRED_SECTIONS = ["## The promise", "## Why it matters", "## The typical bug", "## How to fix it"]
#: Fewest words per section: a promise can be one sentence, the rest must explain.
MIN_WORDS = {"## The promise": 10, "## Why it matters": 40, "## The typical bug": 15, "## How to fix it": 25}
ALL_PAGES = sorted(DOCS.rglob("*.md")) + [REPO_ROOT / "examples" / "downstream" / "README.md"]


def test_every_check_has_a_page_and_every_page_a_check() -> None:
    pages = {path.stem for path in CHECK_PAGES.glob("*.md")} - {"README"}
    ids = {check.id for check in ALL_CHECKS}
    assert sorted(ids - pages) == [], "checks without a page in docs/checks/ (write one: see README.md there)"
    assert sorted(pages - ids) == [], "pages in docs/checks/ for checks that do not exist"


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda check: check.id)
def test_check_page_has_the_promise_why_the_bug_and_the_fix(check) -> None:  # type: ignore[no-untyped-def]
    text = (CHECK_PAGES / f"{check.id}.md").read_text()

    assert text.startswith(f"# `{check.id}`\n"), "the title is the check id"
    assert f"Category: `{check.category}`" in text
    positions = [text.find(section + "\n") for section in REQUIRED_SECTIONS]
    assert -1 not in positions, f"missing sections: {[s for s, p in zip(REQUIRED_SECTIONS, positions) if p < 0]}"
    assert positions == sorted(positions), "sections out of order"
    for start, section in zip(positions, REQUIRED_SECTIONS):
        body = text[start + len(section) :].split("\n## ", 1)[0]
        assert len(body.split()) >= MIN_WORDS[section], f"{section} is too thin to help anyone"


def test_index_lists_every_check_in_order_and_is_up_to_date() -> None:
    sys.path.insert(0, str(CHECK_PAGES))
    try:
        make_index = importlib.import_module("make_index")
    finally:
        sys.path.remove(str(CHECK_PAGES))
    text = (CHECK_PAGES / "README.md").read_text()

    assert text == make_index.render(), "docs/checks/README.md is stale: run python docs/checks/make_index.py"
    assert re.findall(r"^- \[`(\w+)`\]\(\1\.md\)", text, re.M) == [check.id for check in ALL_CHECKS]


def zoo_cases(check_id: str) -> list[str]:
    text = (CHECK_PAGES / f"{check_id}.md").read_text()
    section = text.split("## In the zoo", 1)[1] if "## In the zoo" in text else ""
    return re.findall(r"^- `(tests\.zoo\.\w+:\w+)`$", section, re.M)


@pytest.mark.parametrize("check", ALL_CHECKS, ids=lambda check: check.id)
def test_zoo_cases_a_page_names_exist_and_fail_that_check(check) -> None:  # type: ignore[no-untyped-def]
    cases = zoo_cases(check.id)
    assert cases, "name at least one zoo decoder this check catches"
    for target in cases:
        module_name, name = target.split(":")
        case = getattr(importlib.import_module(module_name), name, None)
        assert case is not None, f"{target} does not exist (renamed in tests/zoo?)"
        assert check.id in case.must_fail, f"{target} is not a decoder {check.id} must catch"


def mentioned_options(text: str, command: str) -> set[str]:
    """``--options`` on the lines of ``text`` that run ``command``."""
    options = set()
    for line in text.splitlines():
        if command in line:
            options |= set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", line.split(command, 1)[1]))
    return options


def plugin_options() -> set[str]:
    """The options ``conformance.frontends.pytest_plugin`` registers with pytest, read by calling its hook."""
    import conformance.frontends.pytest_plugin

    names: set[str] = set()

    class Group:
        def addoption(self, *flags: str, **_: object) -> None:
            names.update(flags)

    class Parser:
        def getgroup(self, *_: object, **__: object) -> Group:
            return Group()

    conformance.frontends.pytest_plugin.pytest_addoption(Parser())  # type: ignore[arg-type]
    return names


def cli_options() -> set[str]:
    from conformance.frontends.cli import build_parser

    parser = build_parser()
    (commands,) = [action for action in parser._actions if action.choices]  # the subcommands
    certify = commands.choices["certify"]  # type: ignore[index]
    return {flag for action in certify._actions for flag in action.option_strings}


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_options_the_docs_mention_exist(page: Path) -> None:
    text = page.read_text()
    unknown_cli = mentioned_options(text, "python -m conformance certify") - cli_options()
    assert not unknown_cli, f"not options of python -m conformance certify: {sorted(unknown_cli)}"
    unknown_pytest = set(re.findall(r"--conformance-[\w-]+", text)) - plugin_options()
    assert not unknown_pytest, f"not pytest options of the plugin: {sorted(unknown_pytest)}"


@pytest.mark.parametrize("page", ALL_PAGES, ids=lambda page: str(page.relative_to(REPO_ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" in link:
            continue
        assert (page.parent / link).exists(), f"{page.name} links to {link}, which does not exist"


def test_the_readme_profile_table_states_each_profile_s_values() -> None:
    from conformance.core.profiles import PROFILES

    readme = (REPO_ROOT / "README.md").read_text()
    rows = re.findall(r"^\|[^|]*\(`(\w+)`[^|]*\|([^|]+)\|([^|]+)\|([^|]+)\|$", readme, re.M)
    stated = {field: [cell.strip() for cell in cells] for field, *cells in rows if field in vars(PROFILES["default"])}
    assert "horizon_frames" in stated and len(stated) >= 10, "the README's profile table is missing"
    for field, cells in stated.items():
        values = [getattr(PROFILES[name], field) for name in ("quick", "default", "thorough")]
        assert [float(cell) for cell in cells] == [float(value) for value in values], field

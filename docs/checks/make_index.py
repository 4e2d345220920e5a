"""Write ``docs/checks/README.md``, the index of the check pages, from ``conformance.ALL_CHECKS``.

Run ``python docs/checks/make_index.py`` after adding a check (and its page);
``tests/workflow/test_workflow_docs.py`` fails while the index is out of date.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent

HEADER = """# The checks

One page per promise of the streaming decoder contract: what the decoder promises, why
it matters, how the kit checks it, the bug that usually breaks it and how to fix it.
Check ids are stable: they name the tests (`pytest -k <id>`), the rows of the reports,
and the keys of `DecoderSpec.expected_failures`. `python -m conformance certify
--list-checks` prints the same list.

Every check also states what it must exercise for a pass to count (pixel frames
compared, decoder calls, mapper queries); one that returns without exercising it fails
as a vacuous pass, saying why (see "No vacuous passes" in the
[guide](../certify-your-decoder.md)).

This index is generated from `conformance.ALL_CHECKS` by `python docs/checks/make_index.py`.
"""


def render() -> str:
    from conformance.checks.suite import ALL_CHECKS

    lines = [HEADER.rstrip()]
    category = None
    for check in ALL_CHECKS:
        if check.category != category:
            category = check.category
            lines += ["", f"## {category.replace('_', ' ').capitalize()}", ""]
        lines.append(f"- [`{check.id}`]({check.id}.md): {check.promise}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    (HERE / "README.md").write_text(render())
    print(f"wrote {HERE / 'README.md'}")

"""Where each check is explained: the pointer every report and message prints.

Two ways to read about a check, and a report names the one that works where it is read:

- ``python -m conformance explain CHECK`` prints the check's promise, why it matters, the
  typical bug and what the check does, from the installed kit itself: it works from a
  wheel, offline, on any machine that ran the check;
- the check's page, ``docs/checks/<id>.md`` in the kit's source repository. A path inside
  the kit's source means nothing to a wheel user or to a pull request's reader, so the
  page is linked as such only when ``CONFORMANCE_DOCS_BASE`` says where the pages are
  published (a URL ending in ``/``, e.g. the ``docs/checks/`` folder of the kit's
  repository at the version you run).
"""

from __future__ import annotations

import os

__all__ = ["DOCS_BASE_VARIABLE", "check_docs", "docs_base", "docs_pointer", "explain_command"]

#: The environment variable naming where the check pages are published.
DOCS_BASE_VARIABLE = "CONFORMANCE_DOCS_BASE"
#: The pages' folder in the kit's source repository (the report's ``docs`` field when no
#: base is set).
SOURCE_PAGES = "docs/checks/"


def docs_base() -> str | None:
    """Where the check pages are published (``CONFORMANCE_DOCS_BASE``), or ``None``."""
    base = os.environ.get(DOCS_BASE_VARIABLE, "").strip()
    if not base:
        return None
    return base if base.endswith("/") else base + "/"


def check_docs(check_id: str) -> str:
    """The page of ``check_id``: under the published base when one is set, else its path in
    the kit's source repository."""
    return f"{docs_base() or SOURCE_PAGES}{check_id}.md"


def explain_command(check_id: str) -> str:
    """The command that explains ``check_id`` from the installed kit."""
    return f"python -m conformance explain {check_id}"


def docs_pointer(check_id: str) -> str:
    """What a message prints to send its reader to the explanation: the offline command,
    and the published page when there is one."""
    command = explain_command(check_id)
    return f"{command} ({check_docs(check_id)})" if docs_base() else command

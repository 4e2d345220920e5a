"""Where each check's page lives: the docs link every report and message prints."""

from __future__ import annotations

import os

__all__ = ["CHECK_DOCS_BASE", "check_docs"]

CHECK_DOCS_BASE = os.environ.get("CONFORMANCE_DOCS_BASE", "docs/checks/")
"""Where each check's page lives: ``<base><check id>.md``. By default the path inside the
kit's source repository; set ``CONFORMANCE_DOCS_BASE`` (for example to a URL of the
repository's ``docs/checks/`` folder) to make the links in certificates absolute."""


def check_docs(check_id: str) -> str:
    """Where the page of ``check_id`` lives (``<id>.md`` under :data:`CHECK_DOCS_BASE`)."""
    return f"{CHECK_DOCS_BASE}{check_id}.md"

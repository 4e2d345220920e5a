"""Fenced code blocks of a Markdown page, for tests that run what the docs show."""

from __future__ import annotations

__all__ = ["fenced_blocks", "reproduction"]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(info string, body)`` of every fenced block (```` ```python ````: info ``python``)."""
    blocks: list[tuple[str, str]] = []
    info: str | None = None
    body: list[str] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("```"):
            if info is None:
                info, body = line[3:].strip(), []
            else:
                blocks.append((info, "".join(body)))
                info = None
        elif info is not None:
            body.append(line)
    return blocks


def reproduction(text: str, heading: str) -> tuple[str, str]:
    """The Python blocks of the section under ``heading`` joined into one program, and
    the output blocks (no info string) joined: what running the program prints."""
    section = text.split(heading + "\n", 1)[1].split("\n## ", 1)[0]
    blocks = fenced_blocks(section)
    program = "\n".join(body for info, body in blocks if info == "python")
    printed = "".join(body for info, body in blocks if info == "")
    return program, printed

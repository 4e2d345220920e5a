"""Fixtures for the zoo's proof tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .robustness import release_hung_decoders

#: Profile and seed the proof tests run the kit with. The seed is fixed so CI is
#: reproducible; set ZOO_SEED to sweep others (every broken decoder must be caught
#: whatever the seed; a seed that lets one through is a finding about the check).
PROFILE = os.environ.get("ZOO_PROFILE", "quick")
SEED = int(os.environ.get("ZOO_SEED", "20240611"))


@pytest.fixture(scope="session", autouse=True)
def _release_hung_decoders() -> Iterator[None]:
    """Let the threads of hung decoders finish once the session is over."""
    yield
    release_hung_decoders()


def mentions_any(message: str, words: tuple[str, ...]) -> bool:
    """True when ``message`` contains one of ``words`` (case-insensitive), or none are asked for."""
    lowered = message.lower()
    return not words or any(word.lower() in lowered for word in words)

"""conformance.bases: which copy of the interface the kit and its bundled decoders use."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import dataclass

import pytest

from conformance import bases

from tests.support.standin import standin_modules


def _module_like(decoder_module: types.ModuleType, **overrides: object) -> types.ModuleType:
    fake = types.ModuleType("fake.infra.decoder")
    for name in ("DecoderConfig", "StreamingDecoder", "StreamingDecoderCache", "StreamingVideoDecoder"):
        setattr(fake, name, overrides.get(name, getattr(decoder_module, name)))
    return fake


def test_a_framework_copy_like_the_standin_is_usable() -> None:
    (foreign,) = standin_modules("flashdreams.infra.decoder")
    bases._usable(foreign)  # no exception


def test_a_framework_whose_configs_need_fields_is_not_used_for_the_bundled_decoders() -> None:
    (foreign,) = standin_modules("flashdreams.infra.decoder")

    @dataclass(kw_only=True)
    class NeedsName(foreign.DecoderConfig):  # type: ignore[misc, name-defined]
        name: str  # required: the bundled configs cannot derive from it

    with pytest.raises(ImportError, match="cannot be subclassed"):
        bases._usable(_module_like(foreign, DecoderConfig=NeedsName))

    class PlainCache:
        pass

    with pytest.raises(ImportError, match="StreamingDecoderCache is not a dataclass"):
        bases._usable(_module_like(foreign, StreamingDecoderCache=PlainCache))


def test_the_choice_can_be_forced_and_is_validated() -> None:
    code = "import conformance.bases as b; print(b.SOURCE)"
    forced = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={**__import__("os").environ, bases.ENVIRONMENT_VARIABLE: "bundled"},
    )
    assert forced.returncode == 0, forced.stderr
    # Installed kits have the private copy; a bare source checkout falls back to its folder.
    assert forced.stdout.strip() in ("conformance._flashdreams.infra.decoder", "flashdreams.infra.decoder")
    wrong = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={**__import__("os").environ, bases.ENVIRONMENT_VARIABLE: "sometimes"},
    )
    assert wrong.returncode != 0 and "expected 'auto', 'installed' or 'bundled'" in wrong.stderr

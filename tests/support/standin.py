"""Loading the stand-in framework (``examples/flashdreams_standin``) in this process.

The stand-in ships its own top-level ``flashdreams`` package: another copy of the
interface, with the same qualified names as the kit's and other class objects. One
process cannot hold two modules named ``flashdreams``, so :func:`standin_modules`
imports the stand-in's modules with its ``flashdreams`` swapped into ``sys.modules``
for the duration of the import, then puts the kit's back. The imported objects keep
referring to the stand-in's classes: exactly what the kit meets when it certifies a
decoder of a framework that is installed instead of (or next to) this repository.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

import conformance.bases  # noqa: F401 - the kit's interface is resolved before any swap

from tests.support import REPO_ROOT
STANDIN_ROOT = REPO_ROOT / "examples" / "flashdreams_standin"

_cache: dict[str, ModuleType] = {}


def _is_flashdreams(name: str) -> bool:
    return name == "flashdreams" or name.startswith("flashdreams.")


def standin_modules(*names: str) -> list[ModuleType]:
    """Import ``names`` (e.g. ``"flashdreams.infra.decoder"``, ``"standin_video.specs"``)
    from the stand-in distribution, with its own ``flashdreams``; memoized."""
    wanted = [name for name in names if name not in _cache]
    if wanted:
        ours = {name: module for name, module in sys.modules.items() if _is_flashdreams(name)}
        theirs = {name: module for name, module in _cache.items() if _is_flashdreams(name)}
        for name in ours:
            del sys.modules[name]
        sys.modules.update(theirs)
        sys.path.insert(0, str(STANDIN_ROOT))
        try:
            for name in wanted:
                _cache[name] = importlib.import_module(name)
        finally:
            sys.path.remove(str(STANDIN_ROOT))
            for name in [name for name in sys.modules if _is_flashdreams(name)]:
                _cache.setdefault(name, sys.modules[name])
                del sys.modules[name]
            sys.modules.update(ours)
    return [_cache[name] for name in names]

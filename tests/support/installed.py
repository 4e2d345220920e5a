"""Fake installed packages: what pip leaves behind, registering decoders under the entry-point group."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from conformance.core.installed import ENTRY_POINT_GROUP, registered_decoders

#: A module a fake package can register: the toy decoder under its own name.
GOOD_MODULE = '''
from reference_decoders.toy import toy_spec


def spec():
    return toy_spec(name="registered-toy")
'''

#: A module whose import fails the way a missing native library does.
BROKEN_IMPORT_MODULE = "raise ImportError('libacme_kernels.so: cannot open shared object file')\n"

#: A module whose spec names a check that does not exist.
TYPO_MODULE = '''
from reference_decoders.toy import toy_spec


def spec():
    return toy_spec(name="typo-toy", expected_failures={"chunked_decode_matches_ful": "typo"})
'''


def install_fake_distribution(
    root: Path,
    name: str,
    entry_points: Mapping[str, str],
    modules: Mapping[str, str] = {},
) -> Path:
    """Write ``<name>-0.1.dist-info`` (METADATA, entry_points.txt) and ``modules`` into
    ``root``: what pip leaves behind, minus pip. With ``root`` on ``sys.path``,
    ``importlib.metadata`` finds the entry points."""
    root.mkdir(parents=True, exist_ok=True)
    dist_info = root / f"{name.replace('-', '_')}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = [f"[{ENTRY_POINT_GROUP}]"] + [f"{key} = {value}" for key, value in entry_points.items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)
    return root


def require_empty_registry() -> None:
    """Skip when this environment already registers decoders (say, the downstream example
    installed by hand): tests that count registered decoders need a clean slate."""
    existing = registered_decoders()
    if existing:
        pytest.skip(
            "this environment already registers decoders under "
            f"{ENTRY_POINT_GROUP!r}: {[entry.label for entry in existing]}"
        )

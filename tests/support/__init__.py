"""What the kit's own tests share: paths, subprocess runs, test decoders, fake installs."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (this checkout).
REPO_ROOT = Path(__file__).resolve().parents[2]

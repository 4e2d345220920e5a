"""Throwaway environments for the side-by-side install tests.

Each environment is a ``python -m venv --system-site-packages --without-pip`` (torch and
the other dependencies come from the running interpreter's site-packages; pip runs as
``python -m pip`` from there too), and packages go in with ``pip install --no-deps
--no-build-isolation`` from wheels built once per session: offline and fast.

A development machine may carry an editable install of this repository made before the
kit stopped installing a top-level ``flashdreams`` (setuptools' editable finder for it
then still maps ``flashdreams`` to the checkout). The environments' ``sitecustomize``
removes that finder, so each environment sees exactly what was installed into it, as a
fresh machine would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO_ROOT
from tests.support.standin import STANDIN_ROOT

KIT_SOURCES = ("flashdreams", "conformance", "reference_decoders", "pyproject.toml", "setup.py", "README.md")

SITECUSTOMIZE = '''
import sys


def _host_editable_kit(finder):
    """setuptools' editable finder of the kit, installed outside this environment."""
    name = getattr(finder, "__module__", "") or ""
    origin = getattr(sys.modules.get(name), "__file__", "") or ""
    return name.startswith("__editable___flashdreams_conformance") and not origin.startswith(sys.prefix)


sys.meta_path[:] = [finder for finder in sys.meta_path if not _host_editable_kit(finder)]
'''


def run(args: list[str], *, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a command; ``AssertionError`` with its output when it fails."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    full_env.pop("PYTHONPATH", None)
    result = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


def _copy_tree(sources: tuple[str, ...], source_root: Path, target: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist")
    target.mkdir(parents=True)
    for name in sources:
        path = source_root / name
        if path.is_dir():
            shutil.copytree(path, target / name, ignore=ignore)
        else:
            shutil.copy2(path, target / name)
    return target


def build_wheel(project: Path, out: Path) -> Path:
    """``pip wheel`` of ``project`` (a clean copy, so the checkout gets no build/ folder)."""
    before = set(out.glob("*.whl")) if out.exists() else set()
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "-w", str(out), str(project)], cwd=project)
    made = sorted(set(out.glob("*.whl")) - before)
    assert len(made) == 1, made
    return made[0]


def build_wheels(root: Path) -> dict[str, Path]:
    """Wheels of the kit, of the stand-in framework and of flashdreams-interface."""
    kit = _copy_tree(KIT_SOURCES, REPO_ROOT, root / "kit-src")
    standin = _copy_tree(("flashdreams", "standin_video", "pyproject.toml"), STANDIN_ROOT, root / "standin-src")
    # flashdreams-interface points at ../../flashdreams: keep that shape in the copy.
    interface = _copy_tree(("pyproject.toml",), REPO_ROOT / "packaging" / "flashdreams-interface",
                           root / "iface" / "packaging" / "flashdreams-interface")
    shutil.copytree(REPO_ROOT / "flashdreams", root / "iface" / "flashdreams",
                    ignore=shutil.ignore_patterns("__pycache__"))
    out = root / "wheels"
    return {
        "kit-src": kit,
        "kit": build_wheel(kit, out),
        "standin": build_wheel(standin, out),
        "interface": build_wheel(interface, out),
    }


class Environment:
    """One throwaway virtual environment."""

    def __init__(self, root: Path) -> None:
        self.root = root
        run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(root)], cwd=root.parent)
        self.python = root / "bin" / "python"
        self.site = Path(self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
        (self.site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        self.workdir = root / "work"  # outside any checkout: nothing shadows what is installed
        self.workdir.mkdir()

    def install(self, wheel: Path, *, editable: bool = False) -> None:
        """Install a wheel, or (``editable=True``) a source tree with ``pip install -e``."""
        target = ["-e", str(wheel)] if editable else [str(wheel)]
        run([str(self.python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--no-index", *target], cwd=self.workdir)

    def run_python(self, code: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        workdir = getattr(self, "workdir", self.root)
        return run([str(self.python), "-c", code], cwd=workdir, env=env, timeout=timeout).stdout

    def json(self, code: str, env: dict[str, str] | None = None, timeout: float = 300) -> object:
        """Run ``code``, which must print one JSON document last."""
        return json.loads(self.run_python(code, env=env, timeout=timeout).strip().splitlines()[-1])

    def records(self) -> dict[str, dict[str, str]]:
        """Each installed distribution's RECORD: path -> recorded hash ('' for none)."""
        found: dict[str, dict[str, str]] = {}
        for dist_info in self.site.glob("*.dist-info"):
            record = dist_info / "RECORD"
            if not record.exists():
                continue
            entries: dict[str, str] = {}
            for line in record.read_text().splitlines():
                path, digest, _size = line.rsplit(",", 2)
                entries[path] = digest
            found[dist_info.name] = entries
        return found

    def unchanged(self, path: str, digest: str) -> bool:
        """Whether the installed file still has the hash its RECORD lists."""
        if not digest:
            return True
        algorithm, _, expected = digest.partition("=")
        actual = hashlib.new(algorithm, (self.site / path).read_bytes()).digest()
        return base64.urlsafe_b64encode(actual).rstrip(b"=").decode() == expected

"""Throwaway environments for the side-by-side install tests.

Each environment is a ``python -m venv --without-pip`` whose own site-packages come first,
followed by the site-packages of the interpreter running the tests (a ``.pth`` file
naming those folders): torch and the other dependencies come from there, and pip runs as
``python -m pip`` from there too. That holds whether the tests run in a virtual
environment or on a bare interpreter (``--system-site-packages`` would reach the *base*
interpreter's packages from inside a venv, without torch). Packages go in with ``pip
install --no-deps --no-build-isolation`` from wheels built once per session: offline and
fast. The folders are only added to ``sys.path`` (their ``.pth`` files are not run), so an
editable install of this repository in the running environment is invisible: each
environment sees exactly what was installed into it, as a fresh machine would.

Everything a command writes to a temporary folder goes under the environment's own
folder (``TMPDIR``), which pytest cleans up with the rest of its temporary folders.

:meth:`Environment.install_from_registry` is the one way in from outside: a published
distribution and its dependencies from the package registry (dependencies the running
interpreter already has, such as torch, are taken from there), for tests of the kit next
to a real framework. :class:`RegistryUnreachable` says when the registry cannot be reached,
so such tests skip instead of failing.
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



def host_site_packages() -> list[str]:
    """The site-packages folders of the interpreter running the tests (venv or not)."""
    import sysconfig

    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


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
    tmp = out.parent / "build-tmp"
    tmp.mkdir(exist_ok=True)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--no-cache-dir", "-w", str(out), str(project)], cwd=project, env={"TMPDIR": str(tmp)})
    made = sorted(set(out.glob("*.whl")) - before)
    assert len(made) == 1, made
    return made[0]


def build_kit_wheel(root: Path) -> Path:
    """The kit's wheel only (from a clean copy of its sources under ``root``)."""
    return build_wheel(_copy_tree(KIT_SOURCES, REPO_ROOT, root / "kit-src"), root / "wheels")


#: What pip prints when it cannot reach an index (and the answer it gives then).
_UNREACHABLE = (
    "NewConnectionError", "Max retries exceeded", "Could not fetch URL", "ConnectionError",
    "Temporary failure in name resolution", "Name or service not known", "Network is unreachable",
    "timed out", "ProxyError", "(from versions: none)",
)


class RegistryUnreachable(Exception):
    """The package registry could not be reached (or does not serve the distribution)."""


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
        self.tmp = root / "tmp"  # TMPDIR of every command run here
        self.tmp.mkdir(parents=True)
        run([sys.executable, "-m", "venv", "--without-pip", str(root)], cwd=root.parent)
        self.python = root / "bin" / "python"
        self.site = Path(self.run_python("import sysconfig; print(sysconfig.get_paths()['purelib'])").strip())
        (self.site / "zz-host-site-packages.pth").write_text("\n".join(host_site_packages()) + "\n")
        self.workdir = root / "work"  # outside any checkout: nothing shadows what is installed
        self.workdir.mkdir()

    def install(self, wheel: Path, *, editable: bool = False) -> None:
        """Install a wheel, or (``editable=True``) a source tree with ``pip install -e``."""
        target = ["-e", str(wheel)] if editable else [str(wheel)]
        run([str(self.python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
             "--no-index", "--no-cache-dir", *target], cwd=self.workdir, env=self.env())

    def install_from_registry(self, *requirements: str, timeout: float = 1200) -> None:
        """``pip install`` ``requirements`` and their dependencies from the package registry
        (pip's own configuration and cache); :class:`RegistryUnreachable` when the registry
        cannot be reached, ``AssertionError`` for any other failure."""
        environment = {**os.environ, **self.env()}
        environment.pop("PYTHONPATH", None)
        probe = subprocess.run(
            [str(self.python), "-m", "pip", "download", "-q", "--no-deps", "--retries", "1", "--timeout", "20",
             "-d", str(self.tmp / "probe"), *requirements],
            cwd=self.workdir, env=environment, capture_output=True, text=True, timeout=600,
        )
        output = probe.stdout + probe.stderr
        if probe.returncode != 0:
            if any(marker in output for marker in _UNREACHABLE):
                tail = " ".join(output.strip().splitlines()[-2:])[-400:]
                raise RegistryUnreachable(f"pip download {' '.join(requirements)} failed: {tail}")
            raise AssertionError(f"pip download {requirements} failed:\n{output}")
        run([str(self.python), "-m", "pip", "install", "-q", *requirements], cwd=self.workdir, env=self.env(),
            timeout=timeout)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment variables commands here run with (temporary files kept inside)."""
        return {"TMPDIR": str(self.tmp), **(extra or {})}

    def run_python(self, code: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
        workdir = getattr(self, "workdir", self.root)
        return run([str(self.python), "-c", code], cwd=workdir, env=self.env(env), timeout=timeout).stdout

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

"""``conformance.ecosystem.flashdreams`` without the published framework (default tier).

The module imports without the framework and says what is wrong when it is missing or
shadowed; its Wan VAE import survives a machine without Triton. Fake framework packages
in temporary folders stand in for the real one, in subprocesses (one process holds one
``flashdreams``). The real framework, installed from PyPI, is certified by the slow
tier's ``test_published_flashdreams.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.checks.suite import ALL_CHECKS
from conformance.core.spec import ExpectedFailure
from conformance.ecosystem import flashdreams as fd
from tests.support import REPO_ROOT

FINGERPRINTED = {check.id for check in ALL_CHECKS if check.fingerprinted}

# Runs in a subprocess: what framework() / wan_vae_module() say.
PROBE = r"""
import json, sys
sys.modules.setdefault("triton", None)  # no Triton, even where one is installed
from conformance.ecosystem import flashdreams as fd
out = {}
for name in ("framework", "wan_vae_module"):
    try:
        module = getattr(fd, name)()
        out[name] = {"ok": module.__name__, "file": module.__file__}
    except Exception as err:
        out[name] = {"error": type(err).__name__, "message": str(err)}
out["note"] = fd.WAN_IMPORT_NOTE
try:
    import flashdreams.recipes.wan
    out["package"] = "imported"
except ImportError as err:
    out["package"] = type(err).__name__
vae = sys.modules.get("flashdreams.recipes.wan.autoencoder.vae")
out["vae_class_module"] = vae.WanVAEDecoder.__module__ if vae else None
print(json.dumps(out))
"""


def probe(path: list[Path], cwd: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, path))}
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


VAE = "class WanVAEDecoder:\n    pass\n"


def fake_framework(root: Path, *, wan_init: str, vae: str = VAE) -> Path:
    """A package laid out like the published framework's, as far as these tests look."""
    return write(root, {
        "flashdreams/__init__.py": "__version__ = '0.1.0'\n",
        "flashdreams/recipes/taehv/__init__.py": "",
        "flashdreams/recipes/wan/__init__.py": wan_init,
        "flashdreams/recipes/wan/autoencoder/__init__.py": "",
        "flashdreams/recipes/wan/autoencoder/vae.py": vae,
    })


def test_the_module_imports_without_the_framework_and_names_the_install(tmp_path: Path) -> None:
    out = probe([], tmp_path)
    assert out["framework"]["error"] == "FrameworkUnavailable"
    assert "pip install flashdreams==0.1.0" in out["framework"]["message"]
    assert out["wan_vae_module"]["error"] == "FrameworkUnavailable"


def test_the_kit_checkout_s_flashdreams_folder_is_named_as_not_the_framework() -> None:
    out = probe([REPO_ROOT], REPO_ROOT)
    message = out["framework"]["message"]
    assert out["framework"]["error"] == "FrameworkUnavailable"
    assert str(REPO_ROOT / "flashdreams") in message and "not NVIDIA's flashdreams framework" in message
    assert "this kit's checkout" in message and "run from a directory without a flashdreams/ folder" in message


def test_an_installed_framework_shadowed_by_a_source_folder_is_named(tmp_path: Path) -> None:
    site = fake_framework(tmp_path / "site", wan_init="")
    write(site, {
        "flashdreams-0.1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: flashdreams\nVersion: 0.1.0\n",
        "flashdreams-0.1.0.dist-info/RECORD": "flashdreams/__init__.py,,\nflashdreams/recipes/taehv/__init__.py,,\n",
    })
    checkout = write(tmp_path / "checkout", {"flashdreams/__init__.py": ""})
    message = probe([checkout, site], tmp_path)["framework"]["message"]
    assert f"finds {checkout / 'flashdreams'}, which shadows the installed framework" in message
    assert f"(flashdreams 0.1.0 at {site / 'flashdreams'})" in message
    assert "run from another directory" in message


def test_the_wan_vae_imports_without_triton_when_the_package_init_needs_it(tmp_path: Path) -> None:
    # As in flashdreams 0.1.0: the package's __init__ imports the VAE, then the Triton kernel.
    site = fake_framework(tmp_path, wan_init="from flashdreams.recipes.wan.autoencoder import vae\nimport triton\n")
    out = probe([site], tmp_path)
    assert out["wan_vae_module"]["ok"] == fd.WAN_VAE_MODULE
    assert "pip install triton" in out["note"][0]
    assert out["package"] == "ModuleNotFoundError"  # the package itself stays unimportable, as it was


def test_the_wan_vae_file_loads_by_itself_when_triton_comes_first(tmp_path: Path) -> None:
    site = fake_framework(tmp_path, wan_init="import triton\nfrom flashdreams.recipes.wan.autoencoder import vae\n")
    out = probe([site], tmp_path)
    assert out["wan_vae_module"] == {"ok": fd.WAN_VAE_MODULE, "file": str(site / "flashdreams/recipes/wan/autoencoder/vae.py")}
    assert out["vae_class_module"] == fd.WAN_VAE_MODULE  # its classes carry their real module name


def test_a_vae_that_needs_triton_itself_says_to_install_it(tmp_path: Path) -> None:
    site = fake_framework(tmp_path, wan_init="import triton\n", vae="import triton\n" + VAE)
    out = probe([site], tmp_path)
    assert out["wan_vae_module"]["error"] == "FrameworkUnavailable"
    assert "pip install triton" in out["wan_vae_module"]["message"]
    assert out["vae_class_module"] is None  # nothing half-loaded is left behind


def test_other_import_errors_are_not_hidden(tmp_path: Path) -> None:
    site = fake_framework(tmp_path, wan_init="import some_missing_dependency\n")
    out = probe([site], tmp_path)
    assert out["wan_vae_module"]["error"] == "ModuleNotFoundError"
    assert "some_missing_dependency" in out["wan_vae_module"]["message"]


def test_variants_refuse_cuda_graphs_off_cuda_and_name_themselves() -> None:
    with pytest.raises(ValueError, match="only on CUDA"):
        fd.Variant("wan2.1", cuda_graph=True)
    with pytest.raises(ValueError, match="model must be one of"):
        fd.Variant("wan3")
    variant = fd.Variant("wan2.2", "published", "cuda", cuda_graph=True)
    assert variant.name("0.1.0", known_bugs=True) == "flashdreams-0.1.0-wan2.2-vae-published-cuda-bf16-cuda-graph-known-bugs"
    assert (variant.latent_channels, variant.latent_size) == (48, (4, 4))
    assert fd.Variant("taehv").dtype.is_floating_point and fd.Variant("taehv").latent_size == (4, 4)


def test_the_known_bugs_are_valid_declarations_and_match_the_docs() -> None:
    ids = {check.id for check in ALL_CHECKS}
    for table in (fd.KNOWN_BUGS, fd.KNOWN_GRAPH_BUGS):
        for model, bugs in table.items():
            assert model in fd.MODELS
            for check_id, declared in bugs.items():
                assert check_id in ids and isinstance(declared, ExpectedFailure)
                assert declared.fingerprint is None or check_id in FINGERPRINTED, check_id
    assert set(fd.KNOWN_BUGS["taehv"]) == {
        "temporal_mappers_monotone_and_steady", "cache_init_accepts_context", "caller_owns_returned_outputs"}
    # The graph findings add to the eager ones; they never repeat them.
    assert all(not set(fd.KNOWN_GRAPH_BUGS[m]) & set(fd.KNOWN_BUGS[m]) for m in fd.MODELS)
    assert len(fd.WAN_FAILING_PLANS) == 24
    # The page lists the same plans as the pinned fingerprint.
    page = (REPO_ROOT / "docs" / "ecosystem" / "flashdreams.md").read_text()
    listed = page.split("the same for both decoders:\n\n```\n", 1)[1].split("```", 1)[0]
    assert re.findall(r"\[[\d, ]+\]", listed) == list(fd.WAN_FAILING_PLANS)

"""This kit and a framework distribution that ships its own top-level ``flashdreams``
install into one environment, in either order, without overwriting or shadowing each
other's files; the kit and the bundled decoders work with whichever interface is there,
and decoders built on either copy of the base classes certify.

Wheels are built once per module (the kit's, the stand-in framework's from
``examples/flashdreams_standin``, and ``packaging/flashdreams-interface``'s); every
environment is a throwaway venv (see :mod:`tests.support.environments`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.environments import Environment, build_wheels

pytestmark = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("setuptools") is None,
    reason="building the wheels needs setuptools",
)

# What each environment reports about itself: where the interface modules come from.
PROBE = r"""
import importlib.util, json
import conformance.bases as bases
spec = importlib.util.find_spec("flashdreams")
config = importlib.util.find_spec("flashdreams.infra.config") if spec else None
print(json.dumps({
    "source": bases.SOURCE,
    "base_file": __import__(bases.SOURCE, fromlist=["x"]).__file__,
    "flashdreams": spec.origin if spec else None,
    "config_is_package": bool(config and config.submodule_search_locations is not None),
}))
"""

# Certify decoders on both copies of the base classes, in one process: the stand-in
# framework's decoder and the kit's bundled toy decoder. A subset of checks that covers
# building, caches, streaming and the mappers keeps this fast.
CERTIFY = r"""
import json
from conformance import certify, load_target
checks = ["decoded_sizes_match_mappers", "caches_are_fresh_and_unshared",
          "interleaved_rollouts_are_independent", "chunked_decode_matches_full_decode"]
out = {}
for target in ["reference_decoders.toy:toy_spec", "standin_video.specs:standin_spec"]:
    spec = load_target(target)[0]
    decoder = spec.factory()
    cert = certify(spec, profile="quick", seed=3, check_ids=checks)
    out[target] = {
        "base": [c.__module__ for c in type(decoder).__mro__ if c.__name__ == "StreamingVideoDecoder"][0],
        "base_id": id([c for c in type(decoder).__mro__ if c.__name__ == "StreamingVideoDecoder"][0]),
        "statuses": {r.check_id: r.status for r in cert.results},
        "messages": [r.message for r in cert.results if r.status != "passed"],
    }
print(json.dumps(out))
"""


WAN_ON_FRAMEWORK = r"""
import json
from conformance import load_target, run_check
(spec,) = load_target("reference_decoders.wan.specs:small_cpu")
decoder = spec.factory()
base = [c.__module__ for c in type(decoder).__mro__ if c.__name__ == "StreamingVideoDecoder"][0]
result = run_check(spec, "decoded_sizes_match_mappers", profile="quick", seed=3)
print(json.dumps({"base": base, "ok": result.status == "passed", "message": result.message}))
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_wheels(tmp_path_factory.mktemp("wheels"))


def test_the_kit_wheel_installs_no_public_flashdreams(wheels: dict[str, Path]) -> None:
    import zipfile

    kit_files = zipfile.ZipFile(wheels["kit"]).namelist()
    assert not [name for name in kit_files if name.startswith("flashdreams/")]
    assert "conformance/_flashdreams/infra/decoder/base.py" in kit_files
    assert "conformance/_flashdreams/infra/config.py" in kit_files
    tops = {name.split("/")[0] for name in kit_files if "dist-info" not in name}
    assert tops == {"conformance", "reference_decoders"}
    interface_files = zipfile.ZipFile(wheels["interface"]).namelist()
    assert {name.split("/")[0] for name in interface_files if "dist-info" not in name} == {"flashdreams"}
    assert "flashdreams/infra/decoder/base.py" in interface_files


@pytest.mark.parametrize("order", [("kit", "standin"), ("standin", "kit")], ids=["kit-first", "framework-first"])
def test_both_distributions_coexist_in_either_order(
    order: tuple[str, str], wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Environment(tmp_path / "venv")
    for name in order:
        env.install(wheels[name])

    # No file is claimed by both distributions, and every installed file still has the
    # hash its own RECORD lists: nothing was overwritten.
    records = env.records()
    kit = next(r for name, r in records.items() if name.startswith("flashdreams_conformance"))
    standin = next(r for name, r in records.items() if name.startswith("flashdreams_standin"))
    shared = sorted(set(kit) & set(standin))
    assert shared == [], shared
    changed = [path for r in (kit, standin) for path, digest in r.items() if not env.unchanged(path, digest)]
    assert changed == []
    # Nothing shadows the framework's package: its config is a package, and no module
    # file flashdreams/infra/config.py sits next to it.
    assert not (env.site / "flashdreams" / "infra" / "config.py").exists()

    probe = env.json(PROBE)
    assert probe["source"] == "flashdreams.infra.decoder"
    assert probe["flashdreams"] == str(env.site / "flashdreams" / "__init__.py")
    assert probe["config_is_package"] is True

    results = env.json(CERTIFY)
    for target, outcome in results.items():
        assert set(outcome["statuses"].values()) == {"passed"}, (target, outcome["messages"])
    # With a framework installed, the bundled decoders build on the framework's classes.
    assert results["reference_decoders.toy:toy_spec"]["base_id"] == results["standin_video.specs:standin_spec"]["base_id"]
    # The bundled Wan decoder too (its config derives from the framework's DecoderConfig).
    if order[0] == "standin":
        wan = env.json(WAN_ON_FRAMEWORK)
        assert wan["base"] == "flashdreams.infra.decoder.base" and wan["ok"], wan


def test_decoders_on_the_kit_s_copy_and_the_framework_s_copy_certify_together(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    env = Environment(tmp_path / "venv")
    env.install(wheels["standin"])
    env.install(wheels["kit"])
    results = env.json(CERTIFY, env={"FLASHDREAMS_CONFORMANCE_INTERFACE": "bundled"})
    toy, standin = results["reference_decoders.toy:toy_spec"], results["standin_video.specs:standin_spec"]
    assert toy["base"] == "conformance._flashdreams.infra.decoder.base"
    assert standin["base"] == "flashdreams.infra.decoder.base"
    assert toy["base_id"] != standin["base_id"]
    for outcome in (toy, standin):
        assert set(outcome["statuses"].values()) == {"passed"}, outcome["messages"]


def test_the_kit_alone_uses_its_bundled_copy(wheels: dict[str, Path], tmp_path: Path) -> None:
    env = Environment(tmp_path / "venv")
    env.install(wheels["kit"])
    probe = env.json(PROBE)
    assert probe["flashdreams"] is None  # the kit does not provide the public name
    assert probe["source"] == "conformance._flashdreams.infra.decoder"
    result = env.json(
        "import json, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'conformance', 'certify', "
        "'reference_decoders.toy:toy_spec', '--profile', 'quick', '--seed', '3', '--in-process', "
        "'--no-report', '-q'], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout + p.stderr}))"
    )
    assert result["rc"] == 0, result["out"]


@pytest.mark.slow
def test_the_interface_distribution_provides_the_public_name(wheels: dict[str, Path], tmp_path: Path) -> None:
    env = Environment(tmp_path / "venv")
    env.install(wheels["kit"])
    env.install(wheels["interface"])
    probe = env.json(PROBE)
    assert probe["source"] == "flashdreams.infra.decoder"
    assert probe["config_is_package"] is False  # the kit's interface: config is a module
    assert json.loads(env.run_python(
        "import json, flashdreams.infra.decoder as d; print(json.dumps(d.__file__))"
    )).startswith(str(env.site))


def test_an_editable_install_works_outside_the_checkout_next_to_a_framework(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    # The README's `pip install -e .`: the editable finder maps the private name to the
    # checkout's flashdreams/ folder and claims no public flashdreams.
    env = Environment(tmp_path / "venv")
    env.install(wheels["kit-src"], editable=True)
    assert env.json(PROBE)["source"] == "conformance._flashdreams.infra.decoder"
    env.install(wheels["standin"])
    probe = env.json(PROBE)
    assert probe["source"] == "flashdreams.infra.decoder"
    assert probe["config_is_package"] is True



# Each seeded bug of the worked example, through its command-line target, in one process.
SEEDED_BUGS = r"""
import json
from conformance import load_target, run_check
from standin_video.specs import BUGS
out = {}
for flag, (check_id, words) in BUGS.items():
    (spec,) = load_target(f"standin_video.specs:{flag}")
    result = run_check(spec, check_id, profile="quick", seed=3)
    out[flag] = {"status": result.status, "hinted": all(w in result.message for w in words),
                 "message": result.message}
print(json.dumps(out))
"""


def test_the_worked_example_is_certified_end_to_end_in_a_fresh_environment(
    wheels: dict[str, Path], tmp_path: Path
) -> None:
    # Both distributions installed; the example registers its decoder under the kit's
    # entry-point group, so `certify --installed` finds it with no target named.
    env = Environment(tmp_path / "venv")
    env.install(wheels["standin"])
    env.install(wheels["kit"])
    result = env.json(
        "import json, subprocess, sys\n"
        "p = subprocess.run([sys.executable, '-m', 'conformance', 'certify', '--installed', "
        "'--profile', 'quick', '--seed', '3', '--report', 'report.json'], capture_output=True, text=True)\n"
        "print(json.dumps({'rc': p.returncode, 'out': p.stdout + p.stderr, "
        "'report': open('report.json').read()}))",
        timeout=600,
    )
    assert result["rc"] == 0, result["out"]
    assert "standin-video" in result["out"] and "CERTIFIED" in result["out"], result["out"]

    caught = env.json(SEEDED_BUGS)
    for flag, outcome in caught.items():
        assert outcome["status"] == "failed" and outcome["hinted"], (flag, outcome["message"])

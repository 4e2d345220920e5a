"""NVIDIA's published flashdreams framework, installed from the package registry into a
throwaway environment next to the kit, certified through ``conformance.ecosystem.flashdreams``.

Slow tier (``python -m pytest -m slow``): it downloads the framework and its dependencies
(torch comes from the running interpreter), and skips with the reason when the registry
cannot be reached. It asserts what ``docs/ecosystem/flashdreams.md`` states for flashdreams
0.1.0, so a new release shows here: the verdicts and the exact failing checks and
fingerprints of each decoder, the regression gate, the page's kit-free reproductions, a copy
with each bug fixed certifying, and the version itself. ``CONFORMANCE_FLASHDREAMS_REQUIREMENT``
(default ``flashdreams``: the newest release) installs another requirement instead.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conformance.ecosystem.flashdreams import (
    KNOWN_BUGS,
    KNOWN_GRAPH_BUGS,
    MAPPER_FINGERPRINT,
    PROVEN_VERSION,
    WAN_FAILING_PLANS,
)
from tests.support import REPO_ROOT
from tests.support.environments import Environment, RegistryUnreachable, build_kit_wheel
from tests.support.fenced import reproduction

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        __import__("importlib.util").util.find_spec("setuptools") is None,
        reason="building the kit's wheel needs setuptools",
    ),
]

REQUIREMENT = os.environ.get("CONFORMANCE_FLASHDREAMS_REQUIREMENT", "flashdreams")
MODULE = "conformance.ecosystem.flashdreams"
NAMES = {
    "wan2.1": f"flashdreams-{PROVEN_VERSION}-wan2.1-vae-small-cpu",
    "wan2.2": f"flashdreams-{PROVEN_VERSION}-wan2.2-vae-small-cpu",
    "taehv": f"flashdreams-{PROVEN_VERSION}-taehv-small-cpu",
}

# Runs inside the environment: `certify` as a user runs it, its exit code, output and report.
CERTIFY = r"""
import json, subprocess, sys
args = sys.argv[1:]
p = subprocess.run([sys.executable, "-m", "conformance", "certify", *args, "--report", "report.json"],
                   capture_output=True, text=True)
print(json.dumps({"rc": p.returncode, "out": p.stdout + p.stderr, "report": json.load(open("report.json"))}))
"""


@pytest.fixture(scope="module")
def kit_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_kit_wheel(tmp_path_factory.mktemp("kit"))


def framework_environment(root: Path, kit_wheel: Path, *, kit_first: bool) -> Environment:
    env = Environment(root)
    try:
        if kit_first:
            env.install(kit_wheel)
        env.install_from_registry(REQUIREMENT)
    except RegistryUnreachable as err:
        pytest.skip(f"the package registry cannot be reached: {err}")
    if not kit_first:
        env.install(kit_wheel)
    return env


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, kit_wheel: Path) -> Environment:
    """The framework installed first, then the kit (a framework project adding the kit)."""
    return framework_environment(tmp_path_factory.mktemp("framework-first"), kit_wheel, kit_first=False)


def certify(env: Environment, *args: str) -> dict:
    script = env.workdir / "certify_here.py"
    script.write_text(CERTIFY)
    result = env.run_python(f"import runpy, sys; sys.argv = ['x', *{list(args)!r}]; runpy.run_path({str(script)!r})",
                            timeout=1500)
    return json.loads(result.strip().splitlines()[-1])


def outcome(report: dict) -> dict[str, dict]:
    """Decoder name -> certified, statuses of the checks that did not pass, fingerprints."""
    found = {}
    for run in report["decoders"]:
        checks = {c["id"]: c for c in run["checks"]}
        found[run["decoder"]] = {
            "certified": run["certified"],
            "not_passed": {i: c["status"] for i, c in checks.items() if c["status"] != "passed"},
            "fingerprints": {i: c["evidence"].get("failure_fingerprint") for i, c in checks.items()
                             if c["evidence"].get("failure_fingerprint") is not None},
        }
    return found


def test_the_kit_and_the_framework_share_no_file_in_either_order(
    env: Environment, kit_wheel: Path, tmp_path: Path
) -> None:
    for environment in (env, framework_environment(tmp_path / "kit-first", kit_wheel, kit_first=True)):
        records = environment.records()
        kit = next(r for name, r in records.items() if name.startswith("flashdreams_conformance"))
        framework = next(r for name, r in records.items() if name.startswith("flashdreams-"))
        assert sorted(set(kit) & set(framework)) == []
        assert all(environment.unchanged(path, digest) for r in (kit, framework) for path, digest in r.items())
        probe = environment.json(
            "import json, conformance.bases as b\n"
            f"from {MODULE} import framework, framework_version\n"
            "print(json.dumps([b.SOURCE, framework().__file__, framework_version()]))"
        )
        assert probe[0] == "flashdreams.infra.decoder"  # the kit builds on the framework's classes
        assert probe[1] == str(environment.site / "flashdreams" / "__init__.py")


def test_the_published_decoders_are_not_certified_and_each_finding_is_named(env: Environment) -> None:
    result = certify(env, f"{MODULE}:all_cpu", "--profile", "quick", "--seed", "3")
    assert result["rc"] == 1, result["out"]
    found = outcome(result["report"])
    wan = {"temporal_mappers_monotone_and_steady": "failed", "chunked_decode_matches_full_decode": "failed",
           "rollout_state_machine": "failed", "long_rollouts_match_full_decode": "failed",
           "cache_init_accepts_context": "failed", "caller_owns_returned_outputs": "failed",
           "batch_elements_are_independent": "skipped"}
    taehv = {"temporal_mappers_monotone_and_steady": "failed", "cache_init_accepts_context": "failed",
             "caller_owns_returned_outputs": "failed", "batch_elements_are_independent": "skipped"}
    expected = {NAMES["wan2.1"]: wan, NAMES["wan2.2"]: wan, NAMES["taehv"]: taehv}
    assert {name: run["not_passed"] for name, run in found.items()} == expected, result["out"]
    for name, run in found.items():
        assert run["certified"] is False
        assert run["fingerprints"]["temporal_mappers_monotone_and_steady"] == list(MAPPER_FINGERPRINT)
        if name != NAMES["taehv"]:
            assert run["fingerprints"]["chunked_decode_matches_full_decode"] == list(WAN_FAILING_PLANS)
    assert "NOT CERTIFIED (18 passed, 6 failed, 1 skipped)" in result["out"]
    assert "NOT CERTIFIED (21 passed, 3 failed, 1 skipped)" in result["out"]


def test_the_regression_gate_certifies_while_exactly_these_bugs_remain(env: Environment) -> None:
    result = certify(env, f"{MODULE}:known_bugs_cpu", "--profile", "quick", "--seed", "3")
    assert result["rc"] == 0, result["out"]
    found = outcome(result["report"])
    for model, name in NAMES.items():
        run = found[name + "-known-bugs"]
        assert run["certified"] is True
        assert run["not_passed"] == {**dict.fromkeys(KNOWN_BUGS[model], "xfailed"),
                                     "batch_elements_are_independent": "skipped"}


def test_the_reproductions_on_the_page_hold_without_the_kit(env: Environment) -> None:
    page = (REPO_ROOT / "docs" / "ecosystem" / "flashdreams.md").read_text()
    program, printed = reproduction(page, "## Reproduce it without the kit")
    assert "conformance" not in program
    assert env.run_python(program, timeout=900) == printed


def test_a_copy_with_each_bug_fixed_certifies(env: Environment) -> None:
    shutil.copy(REPO_ROOT / "tests" / "support" / "flashdreams_fixed.py", env.workdir / "flashdreams_fixed.py")
    result = certify(env, "flashdreams_fixed:all_cpu", "--profile", "quick", "--seed", "3")
    assert result["rc"] == 0, result["out"]
    for name in NAMES.values():
        assert outcome(result["report"])[name + "-fixed"]["not_passed"] == {"batch_elements_are_independent": "skipped"}


def test_the_installed_release_is_the_one_the_findings_are_proven_on(env: Environment) -> None:
    version = env.json(f"import json; from {MODULE} import framework_version; print(json.dumps(framework_version()))")
    assert version == PROVEN_VERSION, (
        f"flashdreams {version} is installed, the findings are proven on {PROVEN_VERSION}: re-measure "
        "(docs/ecosystem/flashdreams.md), then update PROVEN_VERSION and KNOWN_BUGS in "
        "conformance/ecosystem/flashdreams.py"
    )


def test_every_target_is_a_valid_spec_cuda_and_graph_ones_included(env: Environment) -> None:
    # The CUDA targets cannot run here; their specs still load and say what they build.
    loaded = env.json(
        "import json\nfrom conformance import load_target\nout = {}\n"
        "for name in ['all_cpu', 'known_bugs_cpu', 'published_cpu', 'all_cuda', 'all_cuda_graph',\n"
        "             'small_cuda_graph', 'known_bugs_cuda', 'known_bugs_cuda_graph', 'wan21_small_cpu_known_bugs']:\n"
        f"    specs = load_target('{MODULE}:' + name)\n"
        "    out[name] = [[s.name, str(s.device), str(s.dtype), str(s.reference_dtype), sorted(s.expected_failures)]\n"
        "                 for s in specs]\n"
        "print(json.dumps(out))"
    )
    graphs = loaded["all_cuda_graph"]
    assert [spec[0] for spec in graphs] == [
        f"flashdreams-{PROVEN_VERSION}-{model}-published-cuda-bf16-cuda-graph" for model in ("wan2.1-vae", "wan2.2-vae", "taehv")]
    assert all(spec[1:4] == ["cuda", "torch.bfloat16", "torch.float32"] for spec in graphs + loaded["all_cuda"])
    assert [spec[4] for spec in loaded["known_bugs_cuda_graph"]] == [
        sorted({*KNOWN_BUGS[m], *KNOWN_GRAPH_BUGS[m]}) for m in ("wan2.1", "wan2.2", "taehv")]
    assert [spec[4] for spec in loaded["known_bugs_cuda"]] == [sorted(KNOWN_BUGS[m]) for m in ("wan2.1", "wan2.2", "taehv")]
    assert all(spec[1:4] == ["cpu", "torch.float32", "None"] for spec in loaded["published_cpu"])
    assert len(loaded["small_cuda_graph"]) == 3 and loaded["wan21_small_cpu_known_bugs"][0][0].endswith("-known-bugs")

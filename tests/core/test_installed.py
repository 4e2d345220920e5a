"""Discovery: decoders registered under ``flashdreams.conformance.decoders`` are certified
by ``python -m conformance certify --installed`` and ``pytest --conformance-installed``.

Each test "installs" fake packages by writing a ``*.dist-info`` folder with an
``entry_points.txt`` into a temporary directory put on ``sys.path``: exactly what
``importlib.metadata`` reads after a real ``pip install``, without touching the
environment. (The downstream example test does a real, isolated ``pip install``.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conformance.core.installed import ENTRY_POINT_GROUP, registered_decoders
from conformance.engine.loop import certify_targets
from conformance.engine.plan import RunOptions
from conformance.frontends.cli import main
from tests.support.installed import (
    BROKEN_IMPORT_MODULE,
    GOOD_MODULE,
    TYPO_MODULE,
    install_fake_distribution,
    require_empty_registry,
)

pytest_plugins = ["pytester"]

CHEAP = ["forward_accepts_keyword_call", "ratios_are_positive_constant_ints"]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory on ``sys.path`` (and the cwd), where fake packages get installed."""
    require_empty_registry()
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.chdir(tmp_path)
    return root


@pytest.fixture
def three_packages(site: Path) -> Path:
    """One good registration, one whose module fails to import, one with an invalid spec."""
    install_fake_distribution(site, "good-decoders", {"good-toy": "good_decoders:spec"}, {"good_decoders": GOOD_MODULE})
    install_fake_distribution(
        site, "broken-decoders", {"needs-kernels": "broken_decoders:spec"}, {"broken_decoders": BROKEN_IMPORT_MODULE}
    )
    install_fake_distribution(site, "typo-decoders", {"typo-toy": "typo_decoders:spec"}, {"typo_decoders": TYPO_MODULE})
    return site


def test_registered_decoders_are_read_from_installed_metadata(three_packages: Path) -> None:
    entries = registered_decoders()

    assert [(e.name, e.target, e.distribution) for e in entries] == [
        ("good-toy", "good_decoders:spec", "good-decoders"),
        ("needs-kernels", "broken_decoders:spec", "broken-decoders"),
        ("typo-toy", "typo_decoders:spec", "typo-decoders"),
    ]


def test_one_unloadable_registration_does_not_stop_the_others(three_packages: Path) -> None:
    entries = registered_decoders()
    origins = {entry.target: (entry.name, entry.distribution) for entry in entries}
    options = RunOptions(seed=5, profile="quick", check_ids=CHEAP, supervised=False)
    found = certify_targets([entry.target for entry in entries], options, origins=origins)

    assert [run.certification.decoder for run in found.runs] == ["registered-toy"]
    reasons = {entry.name: entry.error for entry in found.unloadable}
    assert set(reasons) == {"needs-kernels", "typo-toy"}
    assert "libacme_kernels.so: cannot open shared object file" in reasons["needs-kernels"]
    assert "chunked_decode_matches_ful" in reasons["typo-toy"]


def test_cli_installed_certifies_the_loadable_and_reports_the_unloadable(
    three_packages: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checks = [arg for check_id in CHEAP for arg in ("--check", check_id)]
    code = main(["certify", "--installed", "--profile", "quick", "--seed", "5", *checks, "--markdown", "cert.md"])

    out = capsys.readouterr().out
    assert code == 2  # a registered decoder could not be loaded: CI must not pass
    assert "Installed decoders (3 registered): good-toy = good_decoders:spec (from good-decoders)" in out
    # its checks passed, but a --check subset never certifies
    assert "registered-toy: NOT CERTIFIED (2 passed)" in out
    assert "Could not load 2 registered decoder(s)" in out
    assert "needs-kernels = broken_decoders:spec (from broken-decoders)" in out
    assert "Verdict: NOT CERTIFIED (registered-toy NOT certified, needs-kernels unloadable, typo-toy unloadable)" in out
    report = json.loads(Path("conformance-report.json").read_text())
    assert report["certified"] is False
    assert [entry["decoder"] for entry in report["decoders"]] == ["registered-toy"]
    assert {check["status"] for check in report["decoders"][0]["checks"]} == {"passed"}
    assert report["decoders"][0]["subset"] is True and report["decoders"][0]["certified"] is False
    assert [(u["name"], u["distribution"]) for u in report["unloadable"]] == [
        ("needs-kernels", "broken-decoders"),
        ("typo-toy", "typo-decoders"),
    ]
    certificate = Path("cert.md").read_text()
    assert "## Registered decoders that could not be loaded" in certificate
    assert "libacme_kernels.so" in certificate
    assert "**NOT CERTIFIED**: 0 of 3 decoders certified" in certificate  # a subset certifies none


def test_cli_installed_with_every_registration_loadable_exits_0(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_distribution(site, "good-decoders", {"good-toy": "good_decoders:spec"}, {"good_decoders": GOOD_MODULE})

    code = main(["certify", "--installed", "--profile", "quick", "--seed", "3", "--no-report"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "registered-toy: CERTIFIED" in out
    assert "python -m conformance certify good_decoders:spec --seed 3 --profile quick" in out


def test_a_target_both_named_and_registered_is_certified_once(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    install_fake_distribution(
        site, "good-decoders", {"good-toy": "good_decoders:spec", "alias": "good_decoders:spec"},
        {"good_decoders": GOOD_MODULE},
    )

    code = main(["certify", "good_decoders:spec", "--installed", "--profile", "quick", "--check", CHEAP[0]])

    assert code == 1  # a --check subset never certifies
    assert capsys.readouterr().out.count("Conformance of registered-toy") == 1
    report = json.loads(Path("conformance-report.json").read_text())
    assert [entry["target"] for entry in report["decoders"]] == ["good_decoders:spec"]


def test_cli_installed_with_nothing_registered_says_how_to_register(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["certify", "--installed", "--profile", "quick"])

    assert code == 2
    err = capsys.readouterr().err
    assert f"no decoders are registered under the entry-point group {ENTRY_POINT_GROUP!r}" in err
    assert f'[project.entry-points."{ENTRY_POINT_GROUP}"]' in err
    assert not Path("conformance-report.json").exists()


def test_pytest_installed_runs_the_loadable_and_fails_one_test_per_unloadable(
    pytester: pytest.Pytester, three_packages: Path
) -> None:
    result = pytester.runpytest(
        "--conformance-installed", "--conformance-profile=quick", "-v", "-p", "no:cacheprovider",
        "-k", "load or forward_accepts_keyword_call",
    )

    outcomes = {
        line.split(" ")[0]: line.split(" ")[1]
        for line in result.outlines
        if " PASSED" in line or " FAILED" in line
    }
    assert outcomes == {
        "good_decoders:spec::registered-toy::forward_accepts_keyword_call": "PASSED",
        "broken_decoders:spec::load": "FAILED",
        "typo_decoders:spec::load": "FAILED",
    }
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    text = result.stdout.str()
    assert "registered decoder needs-kernels = broken_decoders:spec (from broken-decoders) could not be loaded" in text
    assert "libacme_kernels.so" in text
    assert "conformance installed decoders (3): good-toy = good_decoders:spec" in text
    assert "INTERNALERROR" not in text and "Traceback" not in text


def test_pytest_installed_with_nothing_registered_is_a_usage_error(pytester: pytest.Pytester, site: Path) -> None:
    result = pytester.runpytest("--conformance-installed", "-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--conformance-installed: no decoders are registered*{ENTRY_POINT_GROUP}*"])

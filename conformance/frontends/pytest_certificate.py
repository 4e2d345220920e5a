"""The certificate of a pytest run: ``--conformance-report PATH`` / ``--conformance-markdown PATH``.

Each conformance test leaves its check's record (decoder, target, spec fields,
environment, seed, profile, result) on its call report; pytest-xdist ships report
attributes from its workers to the controller, so this plugin, registered on the
controller only, sees every record however the run was distributed. At the end of the
session it groups them into one ``DecoderRun`` per decoder and writes the same JSON
report and Markdown certificate as ``python -m conformance certify``.

A decoder whose every check ran is complete; one with checks deselected (``-k``, or
``conformance_tests(checks=...)``) is a subset and never certified; a session stopped
early (Ctrl-C, ``-x``) is partial and never certified, its unreached checks ``not_run``
(known where the controller collected them itself, that is without xdist).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conformance.checks.catalog import CHECK_IDS
from conformance.core.outcomes import FailureKind
from conformance.core.results import Certification, CheckResult, DecoderRun, Unloadable
from conformance.frontends.pytest_items import ConformanceItem
from conformance.frontends.pytest_session import RECORD_ATTRIBUTE, session_profile, session_seed
from conformance.reports.outputs import OutputPaths, check_paths, claim_paths, write_outputs

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

__all__ = ["CertificateLog", "planned_check", "register"]


def planned_check(item: pytest.Item) -> tuple[str | None, str, str] | None:
    """``(target, decoder, check id)`` of a conformance test, ``None`` for other tests."""
    if isinstance(item, ConformanceItem):
        return item.target, item.spec.name, item.check_id
    callspec = getattr(item, "callspec", None)
    case = getattr(callspec, "params", {}).get("conformance_case") if callspec is not None else None
    plan = getattr(getattr(item, "function", None), "conformance_plan", None)
    if isinstance(case, tuple) and len(case) == 2 and isinstance(plan, tuple):
        index, check_id = case
        target, names = plan
        return target, str(names[index]), str(check_id)
    return None


class CertificateLog:
    """Collects check records from the test reports and writes the certificate at the end."""

    def __init__(self, config: pytest.Config, report: Path | None, markdown: Path | None) -> None:
        self.config = config
        self.report = report
        self.markdown = markdown
        self.records: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
        self.unloadable: list[Unloadable] = []
        self.planned: dict[tuple[str | None, str], list[str]] = {}
        self.written: list[tuple[str, Path]] = []
        self.problems: list[str] = []

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        for item in session.items:
            planned = planned_check(item)
            if planned is not None:
                target, decoder, check_id = planned
                self.planned.setdefault((target, decoder), []).append(check_id)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        text = getattr(report, RECORD_ATTRIBUTE, None)
        if report.when != "call" or not isinstance(text, str):
            return
        try:
            record = json.loads(text)
        except ValueError:
            return
        if "unloadable" in record:
            entry = record["unloadable"]
            self.unloadable.append(Unloadable(entry["name"], entry["target"], entry.get("distribution"), entry["error"]))
            return
        self.records.setdefault((record.get("target"), record.get("decoder") or "?"), []).append(record)

    def runs(self, *, interrupted: bool) -> list[DecoderRun]:
        """One ``DecoderRun`` per decoder seen (or planned), checks in the kit's order."""
        order = {check_id: index for index, check_id in enumerate(CHECK_IDS)}
        keys = list(dict.fromkeys([*self.records, *self.planned]))
        runs: list[DecoderRun] = []
        for key in keys:
            records = self.records.get(key, [])
            results = {r["result"]["check_id"]: CheckResult.from_dict(r["result"]) for r in records}
            missing = [check_id for check_id in self.planned.get(key, []) if check_id not in results]
            for check_id in missing:
                results[check_id] = CheckResult(
                    check_id, "not_run",
                    "not run: the pytest session ended before this check finished (stopped early, "
                    "interrupted, or the test errored outside the check)", 0.0, {}, kind=FailureKind.NOT_RUN,
                )
            first = records[0] if records else {}
            ran = sorted(results, key=lambda check_id: order.get(check_id, len(order)))
            certification = Certification(
                decoder=key[1],
                results=[results[check_id] for check_id in ran],
                seed=int(first.get("seed", session_seed(self.config))),
                profile=str(first.get("profile", session_profile(self.config))),
                environment=dict(first.get("environment") or {}),
                subset=set(results) != set(CHECK_IDS),
                interrupted=interrupted or bool(missing),
            )
            runs.append(
                DecoderRun(
                    certification, target=key[0], spec=first.get("spec"),
                    supervised=bool(first.get("supervised", False)), notes=["certified from a pytest run"],
                )
            )
        return runs

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldfail or session.shouldstop)
        try:
            runs = self.runs(interrupted=interrupted)
        except Exception as err:  # noqa: BLE001 - say so rather than lose the session's result
            self.problems.append(f"could not assemble the conformance certificate: {type(err).__name__}: {err}")
            return
        self.written, problems = write_outputs(
            runs, OutputPaths(self.report, self.markdown), unloadable=self.unloadable,
            run_state="interrupted" if interrupted else "finished",
        )
        self.problems += problems

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        for label, path in self.written:
            if label != "Job summary":
                terminalreporter.write_line(f"conformance {label.lower()}: {path}")
        for problem in self.problems:
            terminalreporter.write_line(f"conformance: {problem}", red=True)


def register(config: pytest.Config, report: str | None, markdown: str | None, targets: Sequence[str]) -> None:
    """Check the paths (a usage error if unwritable), claim them with the "not finished"
    placeholder, and register the collector. Called on the controller only."""
    paths = OutputPaths(Path(report) if report else None, Path(markdown) if markdown else None)
    problem = check_paths(
        paths, report_option="--conformance-report", markdown_option="--conformance-markdown",
        create_dirs_option=None,  # pytest has no such option: the message says to make the folder
    ) or claim_paths(paths, targets=targets)
    if problem:
        raise pytest.UsageError(problem)
    config.pluginmanager.register(CertificateLog(config, paths.report, paths.markdown), "conformance-certificate")

"""pytest plugin: certify streaming video decoders inside an ordinary pytest run.

Installing the kit activates this plugin (``pytest11`` entry point ``conformance``).
Two ways to use it:

- from the command line, for any importable decoder spec::

      pytest --conformance-decoder=reference_decoders.toy:toy_spec
      pytest --conformance-decoder=pkg.mod:spec --conformance-profile=quick -k chunked
      pytest --conformance-decoder=pkg.mod:spec -m conformance     # only the checks

  collects one test per (decoder, check) with node ids
  ``<target>::<decoder name>::<check id>``; ``-k`` matches the check id, the decoder
  name, the target or the check's category (``-k cache_isolation``). The checks are
  collected next to the project's own tests; ``-m conformance`` keeps only them. A
  target that cannot be loaded is a collection error naming the target and the reason.

- for every decoder installed packages register (entry-point group
  ``flashdreams.conformance.decoders``, see :mod:`conformance.core.targets`)::

      pytest --conformance-installed

  collects the same tests for each registered target; one that cannot be loaded
  becomes a single failing test ``<target>::load`` saying why, and the others still run.

- from a test module, without any option (see :mod:`conformance.frontends.pytest_api`)::

      from conformance import conformance_tests

      test_my_decoder = conformance_tests("pkg.mod:spec")   # or a DecoderSpec

Either way a check's outcome maps onto pytest's: passed -> pass, failed/error ->
failure that shows the check's own message (not a traceback through the kit),
skipped -> skip with the reason, xfailed -> xfail. One Hypothesis seed is drawn per
pytest session (or taken from ``--conformance-seed``), shared by every check and by
every pytest-xdist worker, and printed in the header; when a check fails, the summary
lists the commands that replay it. ``--conformance-profile`` picks the Hypothesis
profile (quick, default, thorough). Each check also leaves ``conformance_*`` entries in
``item.user_properties`` (decoder, target, check, category, status, seed, profile,
examples, decoder calls, largest error, margin to the tolerance, duration, device,
dtype, kit and torch versions, and for failures the replay commands), which pytest
writes into JUnit XML (``--junitxml``) as ``<property>`` elements of the test case.

``--conformance-report PATH`` and ``--conformance-markdown PATH`` write the same JSON
report and Markdown certificate as ``python -m conformance certify``, from every check
the session ran (pytest-xdist included: see :mod:`conformance.frontends.pytest_certificate`).
The paths are checked before collection (a usage error if they cannot be written) and
claimed with a "not finished" placeholder. A check failure is one clean failure from
every entry point. The conformance header appears only when the session asks for
conformance (an option) or collects a conformance test.

Checks run in a supervised worker process per target (``--conformance-in-process`` opts
out), so a decoder that exits, crashes or hangs fails its check and pytest goes on.
Under pytest-xdist on a machine with several GPUs each worker takes its own GPU for
specs whose device is ``"cuda"`` (see :mod:`conformance.engine.workers.devices`);
``--conformance-worker-gpus=off`` turns that off. A decoder whose device this machine
lacks has its checks skipped with the reason.

This module holds the hooks only; the items are :mod:`.pytest_items`, the certificate
:mod:`.pytest_certificate`, the session state :mod:`.pytest_session`. They are imported
when a session asks for conformance (an option) or collects a conformance test, so the
cost of having the plugin installed is whatever ``import conformance`` costs: no torch.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

from conformance.core.installed import no_decoders_registered_message, registered_decoders
from conformance.core.profiles import DEFAULT_PROFILE, PROFILES
from conformance.core.suggest import did_you_mean
from conformance.frontends.pytest_session import (
    MARKER,
    RECORD_ATTRIBUTE,
    REPLAY_PROPERTY,
    close_target_runs,
    session_profile,
    session_seed,
)

if TYPE_CHECKING:
    from _pytest.terminal import TerminalReporter

__all__: list[str] = []

_HEADER_SHOWN = pytest.StashKey[bool]()


# ---------------------------------------------------------------------------------
# Options, seed, profile


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("conformance", "streaming video decoder conformance kit")
    group.addoption(
        "--conformance-decoder",
        action="append",
        dest="conformance_decoders",
        default=[],
        metavar="MODULE:ATTR",
        help="certify this decoder: ATTR is a conformance.DecoderSpec, a list of them, or a "
        "zero-argument callable returning either. Repeatable; adds one test per check.",
    )
    group.addoption(
        "--conformance-installed",
        action="store_true",
        dest="conformance_installed",
        default=False,
        help="certify every decoder registered under the entry-point group "
        "flashdreams.conformance.decoders by installed packages.",
    )
    group.addoption(
        "--conformance-worker-gpus",
        dest="conformance_worker_gpus",
        choices=("spread", "off"),
        default="spread",
        help="under pytest-xdist with several CUDA devices: 'spread' (default) gives worker "
        "gwN device N %% device_count for specs on plain 'cuda'; 'off' leaves the default device.",
    )
    group.addoption(
        "--conformance-profile",
        dest="conformance_profile",
        default=None,
        metavar="PROFILE",
        help="Hypothesis profile for conformance checks: quick, default or thorough "
        f"(default: {DEFAULT_PROFILE}).",
    )
    group.addoption(
        "--conformance-seed",
        dest="conformance_seed",
        type=int,
        default=None,
        metavar="N",
        help="Hypothesis seed for conformance checks (default: a fresh random seed, printed "
        "in the header). The same seed and profile replay the same examples.",
    )
    group.addoption(
        "--conformance-in-process",
        dest="conformance_in_process",
        action="store_true",
        default=False,
        help="run conformance checks in this pytest process instead of a supervised worker "
        "process per target (faster to debug; a decoder that exits, crashes or hangs its "
        "process then takes the pytest run down with it).",
    )
    group.addoption(
        "--conformance-report",
        dest="conformance_report",
        default=None,
        metavar="PATH",
        help="write the JSON conformance report of the checks this session ran to PATH "
        "(schema: docs/report-schema.md); the folder must exist.",
    )
    group.addoption(
        "--conformance-markdown",
        dest="conformance_markdown",
        default=None,
        metavar="PATH",
        help="write the Markdown conformance certificate of the checks this session ran to PATH.",
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Let the supervised worker processes of this pytest process go."""
    close_target_runs(session.config)


def _asks_for_conformance(config: pytest.Config) -> bool:
    """True when an option of this plugin was given (the header is then printed up front)."""
    return bool(
        config.getoption("conformance_decoders", None)
        or config.getoption("conformance_installed", False)
        or config.getoption("conformance_seed", None) is not None
        or config.getoption("conformance_profile", None)
        or config.getoption("conformance_report", None)
        or config.getoption("conformance_markdown", None)
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a conformance check of a streaming video decoder (conformance kit)"
    )
    session_seed(config)
    config.pluginmanager.register(_ReplayLog(config), "conformance-replay-log")
    controller = not hasattr(config, "workerinput")
    if config.getoption("conformance_installed", False) and controller:
        if not registered_decoders():
            raise pytest.UsageError(f"--conformance-installed: {no_decoders_registered_message()}")
    requested = config.getoption("conformance_profile")
    if requested is not None and requested not in PROFILES:
        raise pytest.UsageError(
            f"--conformance-profile={requested!r} is not a known profile"
            f"{did_you_mean(requested, list(PROFILES))}; choose one of: {', '.join(PROFILES)}"
        )
    report = config.getoption("conformance_report", None)
    markdown = config.getoption("conformance_markdown", None)
    if (report or markdown) and controller:
        # Imported only when asked for: it loads the kit's checks (and torch).
        from conformance.frontends.pytest_certificate import register

        register(config, report, markdown, targets=list(config.getoption("conformance_decoders") or []))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: give every worker the controller's seed."""
    node.workerinput["conformance_seed"] = session_seed(node.config)


# ---------------------------------------------------------------------------------
# Header and summary


def _header_lines(config: pytest.Config) -> list[str]:
    seed = session_seed(config)
    return [
        f"conformance: profile {session_profile(config)!r}, seed {seed} "
        f"(replay with --conformance-seed={seed})"
    ]


def pytest_report_header(config: pytest.Config) -> list[str]:
    """The seed and profile, when the session asked for conformance with an option;
    otherwise nothing here (see :func:`pytest_collection_finish`)."""
    if not _asks_for_conformance(config):
        return []
    config.stash[_HEADER_SHOWN] = True
    lines = _header_lines(config)
    targets = config.getoption("conformance_decoders")
    if targets:
        lines.append(f"conformance decoders: {', '.join(targets)}")
    if config.getoption("conformance_installed", False):
        entries = registered_decoders()
        lines.append(
            f"conformance installed decoders ({len(entries)}): "
            + ", ".join(entry.label for entry in entries)
        )
    return lines


def pytest_collection_finish(session: pytest.Session) -> None:
    """Print the seed line once a conformance test was collected without any option
    (``conformance_tests`` in a test module); sessions with none print nothing."""
    config = session.config
    if config.stash.get(_HEADER_SHOWN, False) or hasattr(config, "workerinput"):
        return
    if not any(item.get_closest_marker(MARKER) for item in session.items):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and config.get_verbosity() >= 0:
        config.stash[_HEADER_SHOWN] = True
        for line in _header_lines(config):
            reporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Copy the check's record onto its call report (pytest-xdist ships report attributes
    to the controller, where the certificate of the run is written)."""
    report = yield
    record = getattr(item, RECORD_ATTRIBUTE, None)
    if report.when == "call" and isinstance(record, str):
        setattr(report, RECORD_ATTRIBUTE, record)
    return report


class _ReplayLog:
    """Collects the replay commands of failed checks and prints them after the run.

    It reads them from the test reports (``REPLAY_PROPERTY``), which pytest-xdist ships
    from its workers to the controller, so the section appears there as well.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.replays: dict[str, list[str]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" or not report.failed:
            return
        for name, value in report.user_properties:
            if name == REPLAY_PROPERTY and isinstance(value, str):
                self.replays[report.nodeid] = value.splitlines()

    def pytest_terminal_summary(self, terminalreporter: TerminalReporter) -> None:
        if not self.replays:
            return
        reporter = terminalreporter
        reporter.section("conformance replay")
        reporter.line(
            f"{len(self.replays)} conformance check(s) failed with seed "
            f"{session_seed(self.config)}, profile {session_profile(self.config)!r}. "
            "Replay the same examples with:"
        )
        for nodeid, commands in self.replays.items():
            reporter.line(nodeid)
            for command in commands:
                reporter.line(f"  {command}")


# ---------------------------------------------------------------------------------
# Collection for --conformance-decoder


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Add one collector per ``--conformance-decoder`` target to the session's top level.

    The session's own collection report is where pytest gets its top-level nodes, so
    adding ours there makes them ordinary nodes: ``-k``/``-m`` deselection, ``--co``,
    xdist distribution and collection-error reporting all apply unchanged.
    """
    report = yield
    if isinstance(collector, pytest.Session) and report.passed and report.result is not None:
        targets = list(dict.fromkeys(collector.config.getoption("conformance_decoders") or []))
        if not targets and not collector.config.getoption("conformance_installed", False):
            return report
        # Imported only when asked for: the items load the kit's checks (and torch).
        from conformance.frontends.pytest_items import RegisteredCollector, TargetCollector

        for target in targets:  # keep order, drop repeats
            report.result.append(
                TargetCollector.from_parent(collector, name=target, nodeid=target, target=target)
            )
        if collector.config.getoption("conformance_installed", False):
            for entry in registered_decoders():
                if entry.target in targets:
                    continue
                targets.append(entry.target)
                report.result.append(
                    RegisteredCollector.from_parent(
                        collector, name=entry.target, nodeid=entry.target, target=entry.target,
                        entry=entry,
                    )
                )
    return report

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
  collected next to the project's own tests; ``-m conformance`` keeps only them.

- from a test module, without any option::

      from conformance import conformance_tests

      test_my_decoder = conformance_tests("pkg.mod:spec")   # or a DecoderSpec

  which is one parametrized test with ids ``<decoder name>-<check id>``.

Either way a check's outcome maps onto pytest's: passed -> pass, failed/error ->
failure that shows the check's own message (not a traceback through the kit),
skipped -> skip with the reason, xfailed -> xfail. One Hypothesis seed is drawn per
pytest session (or taken from ``--conformance-seed``), shared by every check, and
printed in the header and, when a check failed, in the summary with the command that
replays it. ``--conformance-profile`` picks the Hypothesis profile (quick, default,
thorough).

The engine (``conformance.runner``, ``conformance.spec``, ...) is imported only when
a check is collected or run, so a pytest session that certifies nothing pays almost
nothing for the plugin being installed.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr
    from _pytest.terminal import TerminalReporter

    from conformance.results import CheckResult
    from conformance.spec import DecoderSpec

__all__ = ["ConformanceItem", "session_profile", "session_seed"]

MARKER = "conformance"
DEFAULT_PROFILE = "default"

_SEED = pytest.StashKey[int]()
_FAILED = pytest.StashKey[list["ConformanceFailure"]]()


# ---------------------------------------------------------------------------------
# Options, seed, header


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a conformance check of a streaming video decoder (conformance kit)"
    )
    config.stash[_SEED] = _session_seed(config)
    config.stash[_FAILED] = []
    requested = config.getoption("conformance_profile")
    if requested is not None:
        known = _known_profiles()
        if requested not in known:
            raise pytest.UsageError(
                f"--conformance-profile={requested!r} is not a known profile; "
                f"choose one of: {', '.join(known)}"
            )


def _session_seed(config: pytest.Config) -> int:
    """The seed every check of this session uses.

    Under pytest-xdist the controller draws it and hands it to its workers (see
    :func:`pytest_configure_node`), so one printed seed replays every worker's checks.
    """
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "conformance_seed" in worker_input:
        return int(worker_input["conformance_seed"])
    seed = config.getoption("conformance_seed")
    if seed is not None:
        return int(seed)
    return random.SystemRandom().randrange(2**32)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: give every worker the controller's seed."""
    node.workerinput["conformance_seed"] = node.config.stash[_SEED]


def session_seed(config: pytest.Config) -> int:
    """The Hypothesis seed this pytest session's conformance checks use."""
    if _SEED not in config.stash:
        config.stash[_SEED] = _session_seed(config)
    return config.stash[_SEED]


def session_profile(config: pytest.Config) -> str:
    """The Hypothesis profile this pytest session's conformance checks use."""
    return config.getoption("conformance_profile") or DEFAULT_PROFILE


def pytest_report_header(config: pytest.Config) -> list[str]:
    seed = session_seed(config)
    lines = [
        f"conformance: profile {session_profile(config)!r}, seed {seed} "
        f"(replay with --conformance-seed={seed})"
    ]
    targets = config.getoption("conformance_decoders")
    if targets:
        lines.append(f"conformance decoders: {', '.join(targets)}")
    return lines


def pytest_terminal_summary(terminalreporter: TerminalReporter, config: pytest.Config) -> None:
    failures = config.stash.get(_FAILED, [])
    if not failures:
        return
    seed, profile = session_seed(config), session_profile(config)
    reporter = terminalreporter
    reporter.section("conformance replay")
    reporter.line(f"{len(failures)} conformance check(s) failed with seed {seed}, profile {profile!r}.")
    reporter.line("Replay the same examples with:")
    for failure in failures:
        for command in failure.replay_commands(seed=seed, profile=profile):
            reporter.line(f"  {command}")


# ---------------------------------------------------------------------------------
# Collection for --conformance-decoder


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[Any]:
    """Add one collector per ``--conformance-decoder`` target to the session's top level.

    The session's own collection report is where pytest gets its top-level nodes, so
    adding ours there makes them ordinary nodes: ``-k``/``-m`` deselection, ``--co``,
    xdist distribution and collection-error reporting all apply unchanged.
    """
    report = yield
    if isinstance(collector, pytest.Session) and report.passed and report.result is not None:
        targets = collector.config.getoption("conformance_decoders") or []
        for target in dict.fromkeys(targets):  # keep order, drop repeats
            report.result.append(
                TargetCollector.from_parent(collector, name=target, nodeid=target, target=target)
            )
    return report


class TargetCollector(pytest.Collector):
    """The decoders one ``MODULE:ATTR`` target names; a load failure is its collection error."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        from conformance.spec import load_target

        specs = load_target(self.target)
        names = [spec.name for spec in specs]
        for spec in specs:
            validate_spec_for_collection(spec)
            name = spec.name if names.count(spec.name) == 1 else f"{spec.name}#{names.index(spec.name)}"
            yield DecoderCollector.from_parent(self, name=name, spec=spec, target=self.target)

    def repr_failure(self, excinfo: ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if _is_target_error(excinfo.value) or isinstance(excinfo.value, _SpecError):
            return f"conformance target {self.target!r} could not be loaded:\n{excinfo.value}"
        return super().repr_failure(excinfo)


class DecoderCollector(pytest.Collector):
    """One decoder spec: one :class:`ConformanceItem` per check, in the kit's order."""

    def __init__(self, *, spec: DecoderSpec, target: str | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.target = target

    def collect(self) -> Iterable[pytest.Item]:
        from conformance.checks import ALL_CHECKS

        for check in ALL_CHECKS:
            item = ConformanceItem.from_parent(
                self, name=check.id, spec=self.spec, check_id=check.id, target=self.target
            )
            item.add_marker(MARKER)
            item.extra_keyword_matches.add(check.category)
            yield item


class ConformanceFailure(Exception):
    """Raised by :class:`ConformanceItem` when its check failed; carries the result."""

    def __init__(self, result: CheckResult, target: str | None) -> None:
        super().__init__(result.message)
        self.result = result
        self.target = target

    def replay_commands(self, *, seed: int, profile: str) -> list[str]:
        from conformance.report import replay_command

        commands = []
        if self.target is not None:
            commands.append(
                f"pytest --conformance-decoder={self.target} --conformance-seed={seed} "
                f"--conformance-profile={profile} -k {self.result.check_id}"
            )
        commands.append(
            replay_command(self.target, seed=seed, profile=profile, check_id=self.result.check_id)
        )
        return commands


class ConformanceItem(pytest.Item):
    """One check of one decoder, run through the engine's ``run_check``."""

    def __init__(
        self, *, spec: DecoderSpec, check_id: str, target: str | None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.check_id = check_id
        self.target = target
        self.result: CheckResult | None = None

    def runtest(self) -> None:
        result = run_in_session(self.config, self.spec, self.check_id, self.target)
        self.result = result
        self.user_properties.extend(_properties(result, self.config))
        if result.status in ("failed", "error"):
            failure = ConformanceFailure(result, self.target)
            record_failure(self.config, failure)
            raise failure
        apply_non_failure(result)

    def repr_failure(self, excinfo: ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if isinstance(excinfo.value, ConformanceFailure):
            from conformance.report import format_failure

            failure = excinfo.value
            return format_failure(
                failure.result,
                replay=failure.replay_commands(
                    seed=session_seed(self.config), profile=session_profile(self.config)
                ),
            )
        # Anything else escaped the engine, which promises to turn decoder misbehaviour
        # into results: that is a bug in the kit, so keep the traceback.
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"conformance {self.spec.name}::{self.check_id}"


# ---------------------------------------------------------------------------------
# Shared helpers


class _SpecError(ValueError):
    """A loaded spec is unusable as written (for example an unknown expected-failure id)."""


def validate_spec_for_collection(spec: DecoderSpec) -> None:
    """Reject unknown ids in ``expected_failures`` at collection, before any check runs."""
    from conformance.runner import validate_expected_failures

    try:
        validate_expected_failures(spec)
    except ValueError as error:
        raise _SpecError(str(error)) from None


def record_failure(config: pytest.Config, failure: ConformanceFailure) -> None:
    """Remember a failed check for the replay section of the terminal summary."""
    config.stash.setdefault(_FAILED, []).append(failure)


def _is_target_error(error: BaseException) -> bool:
    from conformance.spec import TargetError

    return isinstance(error, TargetError)


def run_in_session(
    config: pytest.Config,
    spec: DecoderSpec,
    check_id: str,
    target: str | None,
    *,
    profile: str | None = None,
    seed: int | None = None,
) -> CheckResult:
    """Run one check with this session's profile and seed unless told otherwise."""
    from conformance.runner import run_check

    return run_check(
        spec,
        check_id,
        profile=profile or session_profile(config),
        seed=seed if seed is not None else session_seed(config),
        target=target,
    )


def apply_non_failure(result: CheckResult) -> None:
    """Turn a result that is not a failure into pytest's outcome (pass, skip, xfail)."""
    if result.status == "passed":
        return
    if result.status == "skipped":
        pytest.skip(result.message or f"{result.check_id} does not apply to this decoder")
    if result.status == "xfailed":
        pytest.xfail(result.message or f"{result.check_id} is an expected failure")
    raise AssertionError(f"unknown check status {result.status!r} from the conformance engine")


def _properties(result: CheckResult, config: pytest.Config) -> list[tuple[str, object]]:
    """Per-check facts for ``item.user_properties`` (and so for pytest's JUnit XML)."""
    from conformance.report import evidence_highlights

    properties: list[tuple[str, object]] = [
        ("conformance_status", result.status),
        ("conformance_seed", session_seed(config)),
        ("conformance_profile", session_profile(config)),
    ]
    highlights = evidence_highlights(result.evidence)
    if highlights:
        properties.append(("conformance_evidence", highlights))
    return properties


def _known_profiles() -> list[str]:
    from conformance.profiles import PROFILES

    return list(PROFILES)

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
  ``flashdreams.conformance.decoders``, see :mod:`conformance.discovery`)::

      pytest --conformance-installed

  collects the same tests for each registered target; one that cannot be loaded
  becomes a single failing test ``<target>::load`` saying why, and the others still run.

- from a test module, without any option (see :mod:`conformance.plugin_api`)::

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

Under pytest-xdist on a machine with several GPUs each worker takes its own GPU for
specs whose device is ``"cuda"`` (see :mod:`conformance.workers`);
``--conformance-worker-gpus=off`` turns that off.

The engine is imported only when a check is collected or run; the cost of having the
plugin installed is whatever ``import conformance`` costs.
"""

from __future__ import annotations

import random
import shlex
import sys
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr
    from _pytest.terminal import TerminalReporter

    from conformance.discovery import RegisteredDecoder

    from conformance.results import CheckResult
    from conformance.spec import DecoderSpec

__all__ = [
    "REPLAY_PROPERTY",
    "ConformanceFailure",
    "ConformanceItem",
    "apply_result",
    "result_properties",
    "run_in_session",
    "session_profile",
    "session_seed",
]

MARKER = "conformance"
DEFAULT_PROFILE = "default"

#: ``user_properties`` key under which a failed check leaves its replay commands. The
#: summary reads it back from the test reports, so it also works under pytest-xdist.
REPLAY_PROPERTY = "conformance_replay"

_SEED = pytest.StashKey[int]()


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


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{MARKER}: a conformance check of a streaming video decoder (conformance kit)"
    )
    config.stash[_SEED] = _draw_session_seed(config)
    config.pluginmanager.register(_ReplayLog(config), "conformance-replay-log")
    if config.getoption("conformance_installed", False) and not hasattr(config, "workerinput"):
        from conformance.discovery import no_decoders_registered_message, registered_decoders

        if not registered_decoders():
            raise pytest.UsageError(f"--conformance-installed: {no_decoders_registered_message()}")
    requested = config.getoption("conformance_profile")
    if requested is not None:
        from conformance.profiles import PROFILES

        if requested not in PROFILES:
            raise pytest.UsageError(
                f"--conformance-profile={requested!r} is not a known profile; "
                f"choose one of: {', '.join(PROFILES)}"
            )


def _draw_session_seed(config: pytest.Config) -> int:
    """The seed every check of this session uses.

    Under pytest-xdist the controller draws it and hands it to its workers (see
    :func:`pytest_configure_node`), so the one printed seed replays every worker's checks.
    """
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and "conformance_seed" in worker_input:
        return int(worker_input["conformance_seed"])
    seed = config.getoption("conformance_seed", None)
    if seed is not None:
        return int(seed)
    return random.SystemRandom().randrange(2**32)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: give every worker the controller's seed."""
    node.workerinput["conformance_seed"] = session_seed(node.config)


def session_seed(config: pytest.Config) -> int:
    """The Hypothesis seed this pytest session's conformance checks use."""
    if _SEED not in config.stash:
        config.stash[_SEED] = _draw_session_seed(config)
    return config.stash[_SEED]


def session_profile(config: pytest.Config) -> str:
    """The Hypothesis profile this pytest session's conformance checks use."""
    return config.getoption("conformance_profile", None) or DEFAULT_PROFILE


# ---------------------------------------------------------------------------------
# Header and summary


def pytest_report_header(config: pytest.Config) -> list[str]:
    seed = session_seed(config)
    lines = [
        f"conformance: profile {session_profile(config)!r}, seed {seed} "
        f"(replay with --conformance-seed={seed})"
    ]
    targets = config.getoption("conformance_decoders")
    if targets:
        lines.append(f"conformance decoders: {', '.join(targets)}")
    if config.getoption("conformance_installed", False):
        from conformance.discovery import registered_decoders

        entries = registered_decoders()
        lines.append(
            f"conformance installed decoders ({len(entries)}): "
            + ", ".join(entry.label for entry in entries)
        )
    return lines


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
        for target in targets:  # keep order, drop repeats
            report.result.append(
                TargetCollector.from_parent(collector, name=target, nodeid=target, target=target)
            )
        if collector.config.getoption("conformance_installed", False):
            from conformance.discovery import registered_decoders

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


class TargetCollector(pytest.Collector):
    """The decoders one ``MODULE:ATTR`` target names; a load failure is its collection error."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        from conformance.spec import load_target

        specs = load_target(self.target)
        names = [spec.name for spec in specs]
        for index, spec in enumerate(specs):
            validate_spec_for_collection(spec)
            name = spec.name if names.count(spec.name) == 1 else f"{spec.name}#{index}"
            yield DecoderCollector.from_parent(self, name=name, spec=spec, target=self.target)

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        from conformance.spec import TargetError

        if isinstance(excinfo.value, (TargetError, InvalidSpecError)):
            return f"conformance target {self.target!r} could not be loaded:\n{excinfo.value}"
        return super().repr_failure(excinfo)


class RegisteredCollector(TargetCollector):
    """A target an installed package registered; if it cannot be loaded, that is one
    failing test (``<target>::load``), not a collection error, so the others still run."""

    def __init__(self, *, entry: RegisteredDecoder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        from conformance.spec import TargetError

        try:
            collected = list(super().collect())
        except (TargetError, InvalidSpecError) as error:
            return [UnloadableItem.from_parent(self, name="load", entry=self.entry, error=str(error))]
        return collected


class UnloadableItem(pytest.Item):
    """Stands for a registered decoder that could not be loaded: it fails, saying why."""

    def __init__(self, *, entry: RegisteredDecoder, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.entry = entry
        self.error = error
        self.add_marker(MARKER)

    def runtest(self) -> None:
        self.user_properties += [
            ("conformance_status", "unloadable"),
            ("conformance_target", self.entry.target),
        ]
        raise ConformanceFailure(
            f"registered decoder {self.entry.label} could not be loaded, so none of its "
            f"checks ran:\n{self.error}",
            None,
        )

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"conformance {self.entry.name} (unloadable)"


class DecoderCollector(pytest.Collector):
    """One decoder spec: one :class:`ConformanceItem` per check, in the kit's order.

    Item ids are ``<target>::<decoder>::<check>``, so pytest-xdist's ``--dist loadscope``
    (which groups by everything before the last ``::``) keeps all checks of one decoder
    on one worker: each worker builds and warms up only its own decoders.
    """

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
        self.result = run_in_session(self.config, self.spec, self.check_id, self.target)
        seed, profile = session_seed(self.config), session_profile(self.config)
        replay = [
            f"pytest --conformance-decoder={shlex.quote(self.target or '<TARGET>')} "
            f"--conformance-seed={seed} --conformance-profile={profile} -k {self.check_id}"
        ]
        apply_result(
            self.result, self, seed=seed, profile=profile, target=self.target, replay=replay,
            spec=self.spec,
        )

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, ConformanceFailure):
            return str(excinfo.value)
        # Anything else escaped the engine, which promises to turn decoder misbehaviour
        # into results: that is a bug in the kit, so keep the traceback.
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"conformance {self.spec.name}::{self.check_id}"


# ---------------------------------------------------------------------------------
# Shared by the items above and by conformance.plugin_api


class InvalidSpecError(ValueError):
    """A loaded spec is unusable as written (for example an unknown expected-failure id)."""


class ConformanceFailure(Exception):
    """A check failed (or hit a kit error); ``str()`` is the text a person acts on."""

    def __init__(self, text: str, result: CheckResult | None) -> None:
        super().__init__(text)
        self.result = result


def validate_spec_for_collection(spec: DecoderSpec) -> None:
    """Reject unknown ids in ``expected_failures`` at collection, before any check runs."""
    from conformance.runner import validate_expected_failures

    try:
        validate_expected_failures(spec)
    except ValueError as error:
        raise InvalidSpecError(str(error)) from None


def run_in_session(
    config: pytest.Config,
    spec: DecoderSpec,
    check_id: str,
    target: str | None,
    *,
    profile: str | None = None,
    seed: int | None = None,
) -> CheckResult:
    """Run one check with this session's profile and seed unless told otherwise.

    Under pytest-xdist, a CUDA spec first gets this worker's GPU (see
    :mod:`conformance.workers`).
    """
    from conformance.runner import run_check

    if (
        spec.torch_device.type == "cuda"
        and config.getoption("conformance_worker_gpus", "spread") != "off"
    ):
        from conformance.workers import claim_worker_gpu

        claim_worker_gpu()
    return run_check(
        spec,
        check_id,
        profile=profile or session_profile(config),
        seed=seed if seed is not None else session_seed(config),
        target=target,
    )


def apply_result(
    result: CheckResult,
    node: pytest.Item,
    *,
    seed: int,
    profile: str,
    target: str | None,
    replay: list[str],
    spec: DecoderSpec | None = None,
) -> None:
    """Record ``result`` on ``node`` and end the test the way its status says.

    The record is a list of ``conformance_*`` user properties (JUnit XML carries them):
    what ran (decoder, target, check, category), how (seed, profile, device, dtype, kit
    and torch versions), and what it found (status, examples, decoder calls, largest
    error, margin to the tolerance, duration, an evidence summary).

    passed returns; skipped and xfailed raise pytest's skip / xfail; failed and error
    raise :class:`ConformanceFailure` carrying the check's message and the commands
    that replay it (``replay`` for pytest, then the command line's).
    """
    from conformance.report import evidence_highlights, format_failure, replay_command

    node.user_properties += result_properties(result, seed=seed, profile=profile, target=target, spec=spec)
    highlights = evidence_highlights(result.evidence)
    if highlights:
        node.user_properties.append(("conformance_evidence", highlights))
    if result.status == "passed":
        return
    if result.status == "skipped":
        pytest.skip(result.message or f"{result.check_id} does not apply to this decoder")
    if result.status == "xfailed":
        pytest.xfail(result.message or f"{result.check_id} is an expected failure")
    if result.status not in ("failed", "error"):
        raise AssertionError(f"unknown check status {result.status!r} from the conformance engine")
    commands = [
        *replay,
        replay_command(target, seed=seed, profile=profile, check_id=result.check_id),
    ]
    node.user_properties.append((REPLAY_PROPERTY, "\n".join(commands)))
    raise ConformanceFailure(format_failure(result, replay=commands), result)


def result_properties(
    result: CheckResult,
    *,
    seed: int,
    profile: str,
    target: str | None,
    spec: DecoderSpec | None,
) -> list[tuple[str, object]]:
    """The ``conformance_*`` user properties of one check's test (JUnit XML ``<property>``).

    The same facts the Markdown certificate gives per check; numbers only when the
    check produced them (a check without numerical comparisons has no largest error).
    """
    from conformance.report import kit_version

    evidence = result.evidence
    properties: list[tuple[str, object]] = []
    if spec is not None:
        properties.append(("conformance_decoder", spec.name))
    if target is not None:
        properties.append(("conformance_target", target))
    properties += [
        ("conformance_check", result.check_id),
        ("conformance_category", _category_of(result.check_id)),
        ("conformance_status", result.status),
        ("conformance_seed", seed),
        ("conformance_profile", profile),
    ]
    for key in (
        "examples", "decoder_calls", "compared_frames", "max_abs_error", "tolerance_margin",
        "max_frame_rms_error", "frame_rms_margin",
    ):
        if key in evidence and evidence[key] is not None:
            properties.append((f"conformance_{key}", evidence[key]))
    properties.append(("conformance_duration_s", round(float(result.duration_s), 6)))
    if spec is not None:
        properties += [
            ("conformance_device", _device_text(spec)),
            ("conformance_dtype", str(spec.dtype).removeprefix("torch.")),
        ]
    properties.append(("conformance_kit_version", kit_version()))
    torch = sys.modules.get("torch")
    if torch is not None:
        properties.append(("conformance_torch", torch.__version__))
    # pytest-xdist ships user properties from workers with execnet, which only takes
    # builtin types (torch's version string is a str subclass, evidence is free-form).
    return [(name, _plain(value)) for name, value in properties]


def _plain(value: object) -> object:
    return value if type(value) in (str, int, float, bool) else str(value)


def _category_of(check_id: str) -> str:
    from conformance.checks import get_check

    try:
        return get_check(check_id).category
    except KeyError:
        return ""


def _device_text(spec: DecoderSpec) -> str:
    """The spec's device, with the GPU this xdist worker took for a plain ``cuda`` one."""
    from conformance.workers import claimed_device

    device = spec.torch_device
    claimed = claimed_device()
    if device.type == "cuda" and device.index is None and claimed is not None:
        return f"cuda:{claimed}"
    return str(device)

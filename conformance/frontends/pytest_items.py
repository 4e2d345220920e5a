"""Collectors and items of the pytest plugin: one test per (decoder, check).

``--conformance-decoder`` targets become :class:`TargetCollector` nodes at the session's
top level, a spec a :class:`DecoderCollector`, each check a :class:`ConformanceItem`;
``conformance_tests`` (:mod:`conformance.frontends.pytest_api`) makes ordinary parametrized tests
that end through the same :func:`apply_result`. Every entry point fails a check once,
with the check's own message (no traceback through the kit, no chained exception).
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

    from conformance.core.discovery import RegisteredDecoder
    from conformance.core.results import CheckResult
    from conformance.core.spec import DecoderSpec

__all__ = [
    "MARKER",
    "REPLAY_PROPERTY",
    "ConformanceFailure",
    "ConformanceItem",
    "DecoderCollector",
    "InvalidSpecError",
    "RegisteredCollector",
    "TargetCollector",
    "UnloadableItem",
    "apply_result",
    "check_record",
    "result_properties",
    "run_in_session",
    "validate_spec_for_collection",
]

MARKER = "conformance"

#: ``user_properties`` key under which a failed check leaves its replay commands. The
#: summary reads it back from the test reports, so it also works under pytest-xdist.
REPLAY_PROPERTY = "conformance_replay"

#: Attribute of an item (and of its call report) holding the check's record as JSON, for
#: the certificate of the run; pytest-xdist ships report attributes to the controller.
RECORD_ATTRIBUTE = "conformance_record"


def _session_seed(config: pytest.Config) -> int:
    from conformance import plugin

    return plugin.session_seed(config)


def _session_profile(config: pytest.Config) -> str:
    from conformance import plugin

    return plugin.session_profile(config)


class TargetCollector(pytest.Collector):
    """The decoders one ``MODULE:ATTR`` target names; a load failure is its collection error."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        from conformance.core.spec import load_target

        specs = load_target(self.target)
        names = [spec.name for spec in specs]
        for index, spec in enumerate(specs):
            validate_spec_for_collection(spec)
            name = spec.name if names.count(spec.name) == 1 else f"{spec.name}#{index}"
            collector = DecoderCollector.from_parent(self, name=name, spec=spec, target=self.target)
            collector.spec_index = index
            yield collector

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
        from conformance.core.spec import TargetError

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
        from conformance.core.spec import TargetError

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
        setattr(self, RECORD_ATTRIBUTE, json.dumps({
            "unloadable": {
                "name": self.entry.name, "target": self.entry.target,
                "distribution": self.entry.distribution, "error": self.error,
            }
        }))
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
        #: Position of the spec among its target's specs (what a supervised worker is sent);
        #: ``None`` for a spec object, which can only run in-process.
        self.spec_index: int | None = None

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
        index = getattr(self.parent, "spec_index", None)
        if self.target is not None and index is not None and not self.config.getoption(
            "conformance_in_process", False
        ):
            self.result = run_supervised(self.config, self.target, index, self.spec, self.check_id)
        else:
            self.result = run_in_session(self.config, self.spec, self.check_id, self.target)
        seed, profile = _session_seed(self.config), _session_profile(self.config)
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


class InvalidSpecError(ValueError):
    """A loaded spec is unusable as written (for example an unknown expected-failure id)."""


class ConformanceFailure(Exception):
    """A check failed (or hit a kit error); ``str()`` is the text a person acts on."""

    def __init__(self, text: str, result: CheckResult | None) -> None:
        super().__init__(text)
        self.result = result


def validate_spec_for_collection(spec: DecoderSpec) -> None:
    """Reject unknown ids in ``expected_failures`` at collection, before any check runs."""
    from conformance.engine.runner import validate_expected_failures

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
    from conformance.engine.runner import run_check

    if (
        spec.torch_device.type == "cuda"
        and config.getoption("conformance_worker_gpus", "spread") != "off"
    ):
        from conformance.workers import claim_worker_gpu

        claim_worker_gpu()
    return run_check(
        spec,
        check_id,
        profile=profile or _session_profile(config),
        seed=seed if seed is not None else _session_seed(config),
        target=target,
    )


_SESSIONS = pytest.StashKey[dict[str, Any]]()


def run_supervised(
    config: pytest.Config, target: str, spec_index: int, spec: DecoderSpec, check_id: str
) -> CheckResult:
    """Run one check in this pytest process's supervised worker for ``target``.

    One worker per target, opened at the target's first check and reused for all of its
    checks (replaced after a crash): a decoder that exits, crashes or hangs its process
    fails its check instead of ending the pytest run. Under pytest-xdist the worker
    inherits ``PYTEST_XDIST_WORKER`` and takes that worker's GPU for CUDA specs.
    """
    from conformance.workers.supervisor import SupervisorOptions, TargetSession

    sessions = config.stash.setdefault(_SESSIONS, {})
    session = sessions.get(target)
    if session is None:
        env = {}
        if config.getoption("conformance_worker_gpus", "spread") == "off":
            env["CONFORMANCE_WORKER_GPUS"] = "off"
        options = SupervisorOptions(
            profile=_session_profile(config), seed=_session_seed(config), env=env
        )
        session = sessions[target] = TargetSession(target, options)
    if session.load_error is not None:
        raise ConformanceFailure(
            f"conformance check {check_id} could not run: the worker process could not load "
            f"{target}: {session.load_error}", None,
        )
    names = [described["name"] for described in session.specs]
    if spec_index >= len(names) or names[spec_index] != spec.name:
        raise ConformanceFailure(
            f"conformance check {check_id} could not run: the worker process loaded the decoders "
            f"{names} from {target}, this pytest process {spec.name!r} at position {spec_index}; "
            "the target's specs depend on something other than its code", None,
        )
    return session.run_check(spec_index, check_id)


def close_supervised_sessions(config: pytest.Config) -> None:
    """Close every worker this pytest process opened (at the end of the session)."""
    for session in config.stash.get(_SESSIONS, {}).values():
        session.close()


_ENVIRONMENTS: dict[int, tuple[Any, dict[str, Any]]] = {}


def _environment(spec: DecoderSpec) -> dict[str, Any]:
    """The environment of ``spec``'s checks in this process, computed once per spec."""
    cached = _ENVIRONMENTS.get(id(spec))
    if cached is not None and cached[0] is spec:
        return cached[1]
    from conformance.engine.runner import environment

    try:
        env = environment(spec)
    except Exception as err:  # noqa: BLE001 - the certificate must not cost the check
        env = {"error": f"environment unavailable: {type(err).__name__}"}
    _ENVIRONMENTS[id(spec)] = (spec, env)
    return env


def check_record(
    result: CheckResult, *, spec: DecoderSpec | None, target: str | None, seed: int, profile: str
) -> str:
    """One check's result with its decoder's identity, as the JSON the certificate of a
    pytest run is assembled from (on the controller, under pytest-xdist)."""
    from conformance.reports.record import jsonable, spec_fields

    return json.dumps(
        {
            "decoder": spec.name if spec is not None else None,
            "target": target,
            "spec": spec_fields(spec) if spec is not None else None,
            "environment": jsonable(_environment(spec)) if spec is not None else {},
            "seed": seed,
            "profile": profile,
            "result": {
                "check_id": result.check_id,
                "status": result.status,
                "message": result.message,
                "duration_s": result.duration_s,
                "evidence": jsonable(dict(result.evidence)),
                "kind": result.kind,
            },
        },
        ensure_ascii=True,
        allow_nan=False,
        default=str,
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

    The record is a list of ``conformance_*`` user properties (JUnit XML carries them)
    and the check's JSON record for the run's certificate (``--conformance-report``).

    passed returns; skipped and xfailed raise pytest's skip / xfail; every other status
    fails the test once, with the check's message, its page and the commands that replay
    it (``replay`` for pytest, then the command line's), never a traceback through the kit.
    """
    from conformance.reports.record import replay_command
    from conformance.reports.text import evidence_highlights, format_failure

    node.user_properties += result_properties(result, seed=seed, profile=profile, target=target, spec=spec)
    highlights = evidence_highlights(result.evidence)
    if highlights:
        node.user_properties.append(("conformance_evidence", highlights))
    try:
        setattr(node, RECORD_ATTRIBUTE, check_record(result, spec=spec, target=target, seed=seed, profile=profile))
    except Exception:  # noqa: BLE001 - the pytest outcome below matters more than the certificate
        pass
    if result.status == "passed":
        return
    if result.status == "skipped":
        pytest.skip(result.message or f"{result.check_id} does not apply to this decoder")
    if result.status == "xfailed":
        pytest.xfail(result.message or f"{result.check_id} is an expected failure")
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
    """The ``conformance_*`` user properties of one check's test (see
    :func:`conformance.reports.junit.result_properties`), with the spec's device as this
    xdist worker runs it."""
    from conformance.reports.junit import result_properties as properties

    return properties(
        result,
        seed=seed,
        profile=profile,
        target=target,
        decoder=spec.name if spec is not None else None,
        device=_device_text(spec) if spec is not None else None,
        dtype=str(spec.dtype).removeprefix("torch.") if spec is not None else None,
    )


def _device_text(spec: DecoderSpec) -> str:
    """The spec's device, with the GPU this xdist worker took for a plain ``cuda`` one."""
    from conformance.workers import claimed_device

    device = spec.torch_device
    claimed = claimed_device()
    if device.type == "cuda" and device.index is None and claimed is not None:
        return f"cuda:{claimed}"
    return str(device)

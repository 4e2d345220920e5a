"""Collectors and items of the pytest plugin: one test per (decoder, check).

``--conformance-decoder`` targets become :class:`TargetCollector` nodes at the session's
top level, a spec a :class:`DecoderCollector`, each check a :class:`ConformanceItem`;
``conformance_tests`` (:mod:`conformance.frontends.pytest_api`) makes ordinary
parametrized tests. Both answer a test with :func:`run_conformance_check` through the
session's run of the target (:func:`conformance.frontends.pytest_session.target_run`),
supervised by default, and end it through :func:`apply_result`: every entry point fails
a check once, with the check's own message (no traceback through the kit).

A decoder whose device this machine lacks (a CUDA spec on a CPU-only box) has its checks
skipped with that one reason; a decoder that cannot be built fails its first check with
why, and its other checks are skipped pointing there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from conformance.checks.suite import ALL_CHECKS, validate_expected_failures
from conformance.core.replay import certify_command, pytest_command
from conformance.core.results import CheckResult
from conformance.core.spec import DecoderSpec
from conformance.core.installed import RegisteredDecoder
from conformance.core.targets import TargetError, load_target
from conformance.core.values import jsonable
from conformance.frontends.pytest_session import (
    MARKER,
    RECORD_ATTRIBUTE,
    REPLAY_PROPERTY,
    session_profile,
    session_seed,
    target_run,
)
from conformance.reports.junit import result_properties
from conformance.reports.text import evidence_highlights, format_failure

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

__all__ = [
    "ConformanceFailure",
    "ConformanceItem",
    "DecoderCollector",
    "InvalidSpecError",
    "RegisteredCollector",
    "TargetCollector",
    "UnloadableItem",
    "apply_result",
    "run_conformance_check",
    "validate_spec_for_collection",
]

class InvalidSpecError(ValueError):
    """A loaded spec is unusable as written (for example an unknown expected-failure id)."""


class ConformanceFailure(Exception):
    """A check failed (or hit a kit error); ``str()`` is the text a person acts on."""

    def __init__(self, text: str, result: CheckResult | None) -> None:
        super().__init__(text)
        self.result = result


def validate_spec_for_collection(spec: DecoderSpec) -> None:
    """Reject unknown ids in ``expected_failures`` at collection, before any check runs."""
    try:
        validate_expected_failures(spec)
    except ValueError as error:
        raise InvalidSpecError(str(error)) from None


# ---------------------------------------------------------------------------------
# Collection for --conformance-decoder and --conformance-installed


class TargetCollector(pytest.Collector):
    """The decoders one ``MODULE:ATTR`` target names; a load failure is its collection error."""

    def __init__(self, *, target: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target = target

    def collect(self) -> Iterable[pytest.Item | pytest.Collector]:
        specs = load_target(self.target)
        names = [spec.name for spec in specs]
        for index, spec in enumerate(specs):
            validate_spec_for_collection(spec)
            name = spec.name if names.count(spec.name) == 1 else f"{spec.name}#{index}"
            yield DecoderCollector.from_parent(self, name=name, spec=spec, target=self.target, index=index)

    def repr_failure(  # type: ignore[override]
        self, excinfo: ExceptionInfo[BaseException]
    ) -> str | TerminalRepr:
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

    def __init__(self, *, spec: DecoderSpec, target: str, index: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.target = target
        self.index = index

    def collect(self) -> Iterable[pytest.Item]:
        for check in ALL_CHECKS:
            item = ConformanceItem.from_parent(
                self, name=check.id, spec=self.spec, check_id=check.id, target=self.target, index=self.index
            )
            item.add_marker(MARKER)
            item.extra_keyword_matches.add(check.category)
            yield item


class ConformanceItem(pytest.Item):
    """One check of one decoder of a ``--conformance-decoder`` target."""

    def __init__(
        self, *, spec: DecoderSpec, check_id: str, target: str, index: int, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.spec = spec
        self.check_id = check_id
        self.target = target
        self.index = index

    def runtest(self) -> None:
        config = self.config
        seed, profile = session_seed(config), session_profile(config)
        replay = [pytest_command(target=self.target, check_id=self.check_id, seed=seed, profile=profile)]
        run_conformance_check(self, self.target, self.index, self.check_id, seed=seed, profile=profile, replay=replay)

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
# Answering one test


def run_conformance_check(
    node: pytest.Item,
    source: str | Sequence[DecoderSpec],
    index: int,
    check_id: str,
    *,
    seed: int,
    profile: str,
    replay: list[str],
) -> None:
    """Answer one conformance test: the check's result from the session's run of
    ``source``, recorded on ``node`` and ending the test as its status says."""
    try:
        run = target_run(node.config, source, profile=profile, seed=seed)
    except RuntimeError as err:
        raise ConformanceFailure(f"conformance check {check_id} could not run: {err}", None) from None
    target = run.target
    preconditions = run.preconditions(index)
    if preconditions:
        pytest.skip("; ".join(preconditions))
    first_to_build = not run.is_built(index)
    problem = run.build(index)
    result = run.check(index, check_id)
    described = run.decoders[index]
    _record(node, result, described=described, target=target, seed=seed, profile=profile,
            supervised=run.executor.supervised)
    if problem is not None:
        if first_to_build:
            raise ConformanceFailure(
                f"conformance check {check_id} could not run: {problem}\n(every other check of "
                f"{described['name']} is skipped for the same reason)", result,
            )
        pytest.skip(f"not run: {described['name']} could not be built (its first conformance test says why)")
    apply_result(result, node, seed=seed, profile=profile, target=target, replay=replay)


def _record(
    node: pytest.Item,
    result: CheckResult,
    *,
    described: dict[str, Any],
    target: str | None,
    seed: int,
    profile: str,
    supervised: bool,
) -> None:
    """Leave the check's ``conformance_*`` properties (JUnit XML carries them) and its JSON
    record for the run's certificate on ``node``."""
    environment = described.get("environment") or {}
    node.user_properties += result_properties(
        result, seed=seed, profile=profile, target=target, decoder=described["name"],
        device=str(environment.get("device") or described.get("device") or ""),
        dtype=str(environment.get("dtype") or ""),
    )
    highlights = evidence_highlights(result.evidence)
    if highlights:
        node.user_properties.append(("conformance_evidence", highlights))
    try:
        record = {
            "decoder": described["name"],
            "target": target,
            "spec": jsonable(described.get("fields")),
            "environment": jsonable(environment),
            "supervised": supervised,
            "seed": seed,
            "profile": profile,
            "result": jsonable(result.to_dict()),
        }
        setattr(node, RECORD_ATTRIBUTE, json.dumps(record, ensure_ascii=True, allow_nan=False, default=str))
    except Exception:  # noqa: BLE001 - the pytest outcome below matters more than the certificate
        pass


def apply_result(
    result: CheckResult,
    node: pytest.Item,
    *,
    seed: int,
    profile: str,
    target: str | None,
    replay: list[str],
) -> None:
    """End the test the way ``result``'s status says.

    passed returns; skipped and xfailed raise pytest's skip / xfail; every other status
    fails the test once, with the check's message, its page and the commands that replay
    it (``replay`` for pytest, then the command line's), never a traceback through the kit.
    """
    if result.status == "passed":
        return
    if result.status == "skipped":
        pytest.skip(result.message or f"{result.check_id} does not apply to this decoder")
    if result.status == "xfailed":
        pytest.xfail(result.message or f"{result.check_id} is an expected failure")
    commands = [
        *replay,
        result.replay or certify_command(target, seed=seed, profile=profile, check_ids=[result.check_id]),
    ]
    node.user_properties.append((REPLAY_PROPERTY, "\n".join(commands)))
    raise ConformanceFailure(format_failure(result, replay=commands), result)

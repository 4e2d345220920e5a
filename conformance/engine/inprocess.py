"""The in-process executor: a target's (or spec objects') checks in daemon threads of this process.

For a ``DecoderSpec`` object (a factory closure cannot be sent to another process), and
for debugging a decoder under pdb. It cannot survive a decoder that ends or hangs the
process: a check that hangs is abandoned after its timeout (its thread keeps running),
and every report says the run was unsupervised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from conformance.checks.harness.holding import OutputHold, late_changes
from conformance.checks.suite import get_check, validate_expected_failures
from conformance.core.profiles import get_profile
from conformance.core.results import CheckResult
from conformance.core.spec import DecoderSpec
from conformance.core.targets import TargetError, load_target
from conformance.engine.decoders import DecoderSource, source_for
from conformance.engine.environment import describe
from conformance.engine.execute import execute_with_timeout
from conformance.engine.workers.devices import use_gpu_slot
from conformance.engine.workers.supervisor import LoadError

__all__ = ["InProcessExecutor"]

EventHandler = Callable[[str, dict[str, Any]], None]


class InProcessExecutor:
    """The checks of a target (or of spec objects) in daemon threads of this process."""

    supervised = False

    def __init__(
        self,
        source: str | Sequence[DecoderSpec],
        *,
        profile: str,
        seed: int,
        gpu_slot: int | None = None,
    ) -> None:
        self.target = source if isinstance(source, str) else None
        self._source = source
        self.profile = profile
        self.seed = seed
        self.gpu_slot = gpu_slot
        self.specs: list[DecoderSpec] = []
        self.described: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self._decoders: dict[int, DecoderSource] = {}
        self._holds: dict[int, OutputHold] = {}

    def open(self) -> list[dict[str, Any]]:
        try:
            specs = load_target(self._source) if isinstance(self._source, str) else list(self._source)
            for spec in specs:
                validate_expected_failures(spec)
        except (TargetError, ValueError) as err:
            raise LoadError(str(err)) from None
        self.specs = specs
        if any(spec.torch_device.type == "cuda" for spec in specs):
            use_gpu_slot(self.gpu_slot)
        self.described = [describe(spec) for spec in specs]
        return self.described

    def _source_of(self, index: int) -> DecoderSource:
        return self._decoders.setdefault(index, source_for(self.specs[index]))

    def build(self, spec_index: int) -> tuple[str | None, str | None, str | None]:
        source = self._source_of(spec_index)
        return source.check_build(), source.config_text, source.rebuilds

    def run(
        self, spec_index: int, check_id: str, emit: EventHandler, *, hold: bool = False
    ) -> tuple[CheckResult, str | None]:
        source = self._source_of(spec_index)
        emit("check_started", {"check_id": check_id})
        spec = replace(self.specs[spec_index], factory=source)
        kept = self._holds.setdefault(spec_index, OutputHold()) if hold else None
        result = execute_with_timeout(spec, get_check(check_id), get_profile(self.profile), self.seed,
                                      target=self.target, hold=kept)
        return result, source.config_text

    def finish(self, spec_index: int) -> list[dict[str, Any]]:
        kept = self._holds.pop(spec_index, None)
        if kept is None:
            return []
        return late_changes(kept, time_axis=self.specs[spec_index].resolved_output_layout.index("T"))

    def start(self) -> None:
        return None

    def kill(self) -> None:
        return None

    def close(self) -> None:
        return None

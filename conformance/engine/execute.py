"""One check in this process: run it, sort how it ended into a status, and make the result.

Every executor runs a check through here (the supervised worker in its main thread, the
in-process executor in a thread it can abandon):

- returned normally -> ``passed``, unless it did not exercise what its promise is about
  (:attr:`~conformance.checks.registry.Check.exercises`: no pixel frame compared, no
  decoder call made, ...): then ``failed`` as a vacuous pass, because a pass that tested
  nothing is no evidence;
- :class:`~conformance.core.outcomes.CheckFailed` -> ``failed`` (a broken promise), a
  :class:`~conformance.core.outcomes.DecoderError` -> ``failed`` (a decoder error), a
  :class:`~conformance.core.outcomes.SpecFault` -> ``failed`` (a fault of the spec);
- :class:`~conformance.core.outcomes.CheckSkipped` -> ``skipped``;
- anything else -> ``error``: a bug in the kit, reported with its traceback.

Then declared expected failures apply (:mod:`conformance.engine.expectations`), and the
result gets its replay command and the seeds it ran with.
"""

from __future__ import annotations

import contextlib
import threading
from time import perf_counter as _perf_counter  # the real clocks, whatever patches ``time`` later
import traceback
from typing import Any

import torch

from conformance.checks.registry import Check
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.holding import OutputHold
from conformance.core.outcomes import (
    CheckCancelled,
    CheckFailed,
    CheckSkipped,
    DecoderError,
    FailureKind,
    SpecFault,
)
from conformance.core.profiles import Profile
from conformance.core.replay import certify_command
from conformance.core.results import CheckResult, Status
from conformance.core.spec import DecoderSpec
from conformance.engine.expectations import apply_expectation, pin_declaration
from conformance.engine.plan import check_seed
from conformance.engine.stops import timeout_outcome

__all__ = ["execute", "execute_with_timeout", "new_context"]


def new_context(
    spec: DecoderSpec, check: Check, profile: Profile, run_seed: int, control: RunControl | None = None
) -> CheckContext:
    """The context one run of ``check`` drives the decoder through (its seed derived from
    the run seed, so a check run alone replays what it did inside a full run)."""
    return CheckContext(
        spec, profile, check_id=check.id, seed=check_seed(run_seed, check.id), run_seed=run_seed, control=control
    )


def outcome_of(check: Check, ctx: CheckContext) -> tuple[Status, str, FailureKind | None]:
    """Run ``check`` in the calling thread; ``(status, message, kind)`` of how it ended.

    No timeout here: a supervised worker's clock is its supervisor's, outside the process;
    in-process, :func:`execute_with_timeout` runs this in a thread it can abandon.
    """
    cuda_index = _cuda_device_index(ctx.spec)
    try:
        device = torch.cuda.device(cuda_index) if cuda_index is not None else contextlib.nullcontext()
        with device, torch.no_grad():
            check.function(ctx)
        return "passed", "", None
    except CheckCancelled:
        return "failed", "cancelled after the timeout", FailureKind.TIMEOUT
    except CheckSkipped as err:
        return "skipped", str(err), None
    except DecoderError as err:
        return "failed", str(err), FailureKind.DECODER_ERROR
    except CheckFailed as err:
        return "failed", str(err), FailureKind.BROKEN_PROMISE
    except SpecFault as err:
        return "failed", f"spec fault: {err}", FailureKind.SPEC_FAULT
    except BaseException as err:  # noqa: BLE001 - a kit bug must be reported, not raised
        return "error", (
            f"internal error in the conformance kit while running {check.id} "
            f"({type(err).__name__}: {err}); please report it with this traceback:\n"
            + "".join(traceback.format_exception(err))
        ), None


def finish(
    check: Check,
    ctx: CheckContext,
    status: Status,
    message: str,
    kind: FailureKind | None,
    duration: float,
    *,
    target: str | None,
) -> CheckResult:
    """Turn a raw outcome into the reported result: vacuity, expectations, replay, evidence."""
    if status == "passed":
        missing = ctx.evidence.unexercised(check.exercises)
        if missing:
            status, kind = "failed", FailureKind.VACUOUS
            message = (
                f"{check.id} returned without exercising its promise: "
                f"{ctx.evidence.why_unexercised(missing)}. A pass that tested nothing would be "
                "vacuous, so the check fails"
            )
    fingerprint = ctx.evidence.extra.get("failure_fingerprint")
    status, message, kind = apply_expectation(
        ctx.spec.expected_failures, check.id, status, message, kind, fingerprint,
    )
    evidence = ctx.evidence.as_dict()
    declared = ctx.spec.expected_failures.get(check.id)
    declaration = pin_declaration(declared, fingerprint) if status == "xfailed" and declared else None
    if declaration:
        evidence["pin_with"] = declaration  # what the user pastes (reports print it)
    evidence["seed"] = ctx.seed
    evidence["run_seed"] = ctx.run_seed
    replay = None
    if status in ("failed", "xfailed", "error", "inconclusive"):
        replay = certify_command(target, seed=ctx.run_seed, profile=ctx.profile.name, check_ids=[check.id])
    return CheckResult(check.id, status, message, duration, evidence, kind=kind, replay=replay)


def execute(
    spec: DecoderSpec,
    check: Check,
    profile: Profile,
    run_seed: int,
    *,
    target: str | None,
    control: RunControl | None = None,
) -> CheckResult:
    """Run one check synchronously in the calling thread (what a supervised worker does)."""
    ctx = new_context(spec, check, profile, run_seed, control)
    started = _perf_counter()
    status, message, kind = outcome_of(check, ctx)
    return finish(check, ctx, status, message, kind, _perf_counter() - started, target=target)


def execute_with_timeout(
    spec: DecoderSpec, check: Check, profile: Profile, run_seed: int, *, target: str | None,
    hold: OutputHold | None = None,
) -> CheckResult:
    """Run one check in a daemon thread of this process, abandoned after the check's timeout.

    The in-process executor's way: it cannot stop native code that never returns, or a
    decoder that kills its process; the supervised executor can.
    """
    control = RunControl()
    control.hold = hold
    ctx = new_context(spec, check, profile, run_seed, control)
    timeout = spec.check_timeout_s or profile.check_timeout_s
    outcome: dict[str, Any] = {}

    def work() -> None:
        status, message, kind = outcome_of(check, ctx)
        outcome.update(status=status, message=message, kind=kind)

    started = _perf_counter()
    worker = threading.Thread(target=work, name=f"conformance-{check.id}", daemon=True)
    worker.start()
    worker.join(timeout)
    duration = _perf_counter() - started
    if worker.is_alive():
        ctx.control.cancel()
        outcome = timeout_outcome(
            check.id, timeout, ctx.control.current_call(), ctx.control.first_failure,
            ctx.control.first_failure_is_decoder_error,
        )
    return finish(check, ctx, outcome["status"], outcome["message"], outcome["kind"], duration, target=target)


def _cuda_device_index(spec: DecoderSpec) -> int | None:
    """The CUDA device the running thread must make current (it is per thread in CUDA):
    the spec's explicit index, else the caller's current device if CUDA is in use."""
    device = spec.torch_device
    if device.type != "cuda":
        return None
    if device.index is not None:
        return device.index
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.current_device()
    return None

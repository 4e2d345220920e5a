"""Running checks: one worker thread per check, a timeout, and statuses that never hide.

Every check runs and is reported. A check runs in its own daemon thread so that a
decoder that never returns costs one check its timeout, not the whole run; its exceptions
are sorted into statuses:

- returned normally -> ``passed``, unless it did not exercise what its promise is about
  (:attr:`~conformance.checks.Check.exercises`: no pixel frame compared, no decoder call
  made, ...): then ``failed``, saying why, because a pass that tested nothing is vacuous;
- :class:`~conformance.core.outcomes.CheckFailed` (including decoder errors) or a timeout ->
  ``failed``;
- :class:`~conformance.core.outcomes.CheckSkipped` -> ``skipped``;
- anything else -> ``error``: a bug in the kit, reported with its traceback.

Then declared expected failures apply, strictly. For a check listed in
``DecoderSpec.expected_failures``:

- a *broken promise* (the check found a wrong result: a mismatch, a shared storage, a
  size the mappers did not promise) becomes ``xfailed``;
- a different failure never hides behind the declaration: a decoder error (a call into
  the decoder raised, or returned something unusable), a check that did not finish in
  time, and a vacuous pass stay ``failed``, with a message saying that the declaration
  does not cover them. A known bug is a wrong answer; a crash or a hang is never
  "expected" (a decoder that cannot take some input declares that in the spec:
  ``max_chunk_frames``, ``batch_size=1``, ``check_timeout_s``);
- a pass becomes ``failed``: the expectation is stale and must be removed;
- skips stay skips, errors stay errors.

Seeds: each check gets its own seed derived from the run seed and its id, so
``--check ID --seed N`` replays exactly what that check did inside the full run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import secrets
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import torch

from conformance.checks import CHECK_IDS, Check, get_check
from conformance.checks.context import CheckContext
from conformance.core.outcomes import (
    CheckCancelled,
    CheckFailed,
    CheckSkipped,
    DecoderError,
    SpecFault,
)
from conformance.core.profiles import DEFAULT_PROFILE, Profile, get_profile
from conformance.core.results import Certification, CheckResult, Status
from conformance.core.spec import DecoderSpec

__all__ = [
    "certify",
    "check_seed",
    "environment",
    "execute",
    "new_seed",
    "run_check",
    "validate_expected_failures",
]


def new_seed() -> int:
    """A fresh random run seed (recorded in the certification so the run can be replayed)."""
    return secrets.randbits(32)


def check_seed(run_seed: int, check_id: str) -> int:
    """The seed one check uses inside a run: stable across Python processes and versions."""
    digest = hashlib.sha256(f"{run_seed}:{check_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def validate_expected_failures(spec: DecoderSpec) -> None:
    """``ValueError`` if ``spec.expected_failures`` names a check that does not exist, or
    pins a fingerprint (``ExpectedFailure(..., fingerprint=...)``) on a check that records
    none (so the pin could never be matched)."""
    from conformance.checks.fingerprints import FINGERPRINTED_CHECKS

    unknown = sorted(set(spec.expected_failures) - set(CHECK_IDS))
    if unknown:
        raise ValueError(
            f"DecoderSpec {spec.name!r}: expected_failures names unknown check(s) {unknown}; "
            f"known checks: {', '.join(CHECK_IDS)}"
        )
    unpinnable = sorted(
        check_id
        for check_id, declared in spec.expected_failures.items()
        if getattr(declared, "fingerprint", None) is not None and check_id not in FINGERPRINTED_CHECKS
    )
    if unpinnable:
        raise ValueError(
            f"DecoderSpec {spec.name!r}: expected_failures pins a fingerprint for {unpinnable}, "
            "but these checks record no fingerprint, so the pin could never match; declare "
            "the reason as a plain string. Checks that record fingerprints: "
            f"{', '.join(sorted(FINGERPRINTED_CHECKS))}"
        )


def run_check(
    spec: DecoderSpec,
    check_id: str,
    *,
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
    target: str | None = None,
) -> CheckResult:
    """Run one check on ``spec``. ``seed=None`` draws one (see ``result.evidence['seed']``)."""
    validate_expected_failures(spec)
    check = get_check(check_id)
    return _run(spec, check, get_profile(profile), new_seed() if seed is None else seed, target)


def certify(
    spec: DecoderSpec,
    *,
    profile: str = DEFAULT_PROFILE,
    seed: int | None = None,
    check_ids: Sequence[str] | None = None,
    target: str | None = None,
) -> Certification:
    """Run every check (or ``check_ids``) on ``spec`` and collect the results.

    ``target`` is the ``MODULE:ATTR`` string the spec came from, used in replay commands
    (``<TARGET>`` when not given). Raises ``ValueError`` for an unknown profile or unknown
    ids in ``spec.expected_failures``, ``KeyError`` for unknown ``check_ids``.
    """
    chosen = get_profile(profile)
    validate_expected_failures(spec)
    checks = [get_check(i) for i in (CHECK_IDS if check_ids is None else check_ids)]
    run_seed = new_seed() if seed is None else seed
    results = [_run(spec, check, chosen, run_seed, target) for check in checks]
    return Certification(
        decoder=spec.name,
        results=results,
        seed=run_seed,
        profile=chosen.name,
        environment=environment(spec),
        subset=check_ids is not None and set(check_ids) != set(CHECK_IDS),
    )


def new_context(
    spec: DecoderSpec, check: Check, profile: Profile, run_seed: int, target: str | None
) -> CheckContext:
    """The context one run of ``check`` drives the decoder through (its seed derived from
    the run seed, so a check run alone replays what it did inside a full run)."""
    return CheckContext(
        spec,
        profile,
        check_id=check.id,
        seed=check_seed(run_seed, check.id),
        run_seed=run_seed,
        target=target,
    )


def outcome_of(check: Check, ctx: CheckContext) -> tuple[Status, str, str | None]:
    """Run ``check`` in the calling thread; ``(status, message, kind)`` of how it ended.

    No timeout here: in a supervised worker the supervisor owns the clock from outside the
    process; in-process, :func:`_run` runs this in a thread it can abandon.
    """
    cuda_index = _cuda_device_index(ctx.spec)
    try:
        device = torch.cuda.device(cuda_index) if cuda_index is not None else contextlib.nullcontext()
        with device, torch.no_grad():
            check.function(ctx)
        return "passed", "", None
    except CheckCancelled:
        return "failed", "cancelled after the timeout", TIMEOUT
    except CheckSkipped as err:
        return "skipped", str(err), None
    except DecoderError as err:
        return "failed", str(err), DECODER_ERROR
    except CheckFailed as err:
        return "failed", str(err), BROKEN_PROMISE
    except SpecFault as err:
        return "failed", f"spec fault: {err}", SPEC_FAULT
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
    kind: str | None,
    duration: float,
) -> CheckResult:
    """Turn a raw outcome into the reported result: vacuity, expectations, replay, evidence."""
    if status == "passed":
        missing = ctx.evidence.unexercised(check.exercises)
        if missing:
            status, kind = "failed", VACUOUS
            message = (
                f"{check.id} returned without exercising its promise: "
                f"{ctx.evidence.why_unexercised(missing)}. A pass that tested nothing would be "
                "vacuous, so the check fails"
            )
    status, message = _apply_expectation(
        ctx.spec, check.id, status, message, kind, ctx.evidence.extra.get("failure_fingerprint")
    )
    if status in ("failed", "xfailed"):
        message = f"{message}\nReplay: {ctx.replay_command}"
    evidence = ctx.evidence.as_dict()
    evidence["seed"] = ctx.seed
    evidence["run_seed"] = ctx.run_seed
    return CheckResult(check.id, status, message, duration, evidence, kind=kind)


def execute(
    spec: DecoderSpec, check: Check, profile: Profile, run_seed: int, target: str | None
) -> CheckResult:
    """Run one check synchronously in the calling thread (what a supervised worker does)."""
    ctx = new_context(spec, check, profile, run_seed, target)
    started = time.perf_counter()
    status, message, kind = outcome_of(check, ctx)
    return finish(check, ctx, status, message, kind, time.perf_counter() - started)


def _run(spec: DecoderSpec, check: Check, profile: Profile, run_seed: int, target: str | None) -> CheckResult:
    """Run one check in-process, in a daemon thread abandoned after the check's timeout.

    The in-process mode of the library API (``certify(spec)``): it cannot stop native code
    that never returns, or a decoder that kills its process; the CLI's supervised workers
    (:mod:`conformance.workers`) can.
    """
    ctx = new_context(spec, check, profile, run_seed, target)
    timeout = spec.check_timeout_s or profile.check_timeout_s
    outcome: dict[str, Any] = {}

    def work() -> None:
        status, message, kind = outcome_of(check, ctx)
        outcome.update(status=status, message=message, kind=kind)

    started = time.perf_counter()
    worker = threading.Thread(target=work, name=f"conformance-{check.id}", daemon=True)
    worker.start()
    worker.join(timeout)
    duration = time.perf_counter() - started
    if worker.is_alive():
        ctx.cancel()
        outcome = timeout_outcome(check.id, timeout, ctx.current_call(), ctx.first_failure,
                                  ctx.first_failure_is_decoder_error)
    return finish(check, ctx, outcome["status"], outcome["message"], outcome["kind"], duration)


def timeout_outcome(
    check_id: str,
    timeout: float,
    call: str | None,
    first_failure: str | None,
    first_failure_is_decoder_error: bool,
) -> dict[str, Any]:
    """How a check that ran out of time ends: the bug it had already found, else a timeout."""
    if first_failure:
        return {
            "status": "failed",
            "message": (
                f"{first_failure}\n(Found by the search; shrinking it to a minimal example did not "
                f"finish within the check's {timeout:g} s timeout.)"
            ),
            # The bug was found; only its shrinking ran out of time.
            "kind": DECODER_ERROR if first_failure_is_decoder_error else BROKEN_PROMISE,
        }
    return {
        "status": "failed",
        "message": (
            f"{check_id} did not return within {timeout:g} s; "
            + (f"the decoder call in progress: {call}" if call else "no decoder call was in progress")
            + ". A decoder that hangs or is far slower than expected fails; raise "
            "DecoderSpec.check_timeout_s if it is merely slow."
        ),
        "kind": TIMEOUT,
    }


class ConfigRecorder:
    """Wraps a spec's factory to keep ``str(decoder.config)`` of the first decoder it builds
    (the checks build their decoders themselves; building one more just for the report
    could cost a checkpoint load)."""

    def __init__(self, factory: Any) -> None:
        self.factory = factory
        self.text: str | None = None
        for name in ("__name__", "__qualname__", "__module__", "__doc__"):
            try:
                setattr(self, name, getattr(factory, name))
            except (AttributeError, TypeError):
                pass

    def __call__(self) -> Any:
        decoder = self.factory()
        if self.text is None:
            from conformance.report import decoder_config_text

            try:
                self.text = decoder_config_text(decoder)
            except Exception:  # noqa: BLE001 - the config is for the report only
                self.text = None
        return decoder


def build_problem(factory: Any) -> str | None:
    """Build one decoder with ``factory``; ``None``, or why it cannot be built (one line).

    Only the factory's own failure counts here (it raised, or left torch's default device
    or dtype changed); whether what it built honours the contract is for the checks.
    """
    from conformance.checks.context import describe_exception

    get_device = getattr(torch, "get_default_device", None)
    before = (get_device() if get_device else None, torch.get_default_dtype())
    try:
        decoder = factory()
    except BaseException as err:  # noqa: BLE001 - whatever the factory does, say so
        return f"the decoder could not be built: its factory raised {describe_exception(err)}"
    finally:
        after = (get_device() if get_device else None, torch.get_default_dtype())
        if after != before:
            if before[0] is not None:
                torch.set_default_device(before[0])
            torch.set_default_dtype(before[1])
    del decoder
    return None


def _cuda_device_index(spec: DecoderSpec) -> int | None:
    """The CUDA device the worker thread must make current (it is per thread in CUDA):
    the spec's explicit index, else the caller's current device if CUDA is in use."""
    device = spec.torch_device
    if device.type != "cuda":
        return None
    if device.index is not None:
        return device.index
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.current_device()
    return None


#: How a check failed, for expected failures (see the module docstring): only a broken
#: promise can be an expected failure.
BROKEN_PROMISE = "broken promise"
DECODER_ERROR = "decoder error"
TIMEOUT = "timeout"
VACUOUS = "vacuous pass"
#: The worker process running the check died (a signal, ``os._exit``, an abort).
CRASH = "crash"
#: The check ran out of time while the decoder kept completing calls: no verdict.
INCONCLUSIVE = "inconclusive"
#: Code of the spec (its output_adapter) failed: the decoder could not be judged.
SPEC_FAULT = "spec fault"

_NOT_COVERED = {
    DECODER_ERROR: "the decoder raised, or returned something the contract does not allow, "
    "while an expected failure only covers a wrong result (a crash is never expected; if the "
    "decoder cannot take some input, declare that in the spec, e.g. max_chunk_frames or "
    "batch_size=1)",
    TIMEOUT: "the check did not finish in time, while an expected failure only covers a wrong "
    "result (a hang is never expected; raise DecoderSpec.check_timeout_s if the decoder is "
    "merely slow)",
    VACUOUS: "the check exercised nothing, so it cannot tell whether the declared bug is still "
    "there",
    CRASH: "the decoder's process died while the check ran, while an expected failure only "
    "covers a wrong result (a crash is never expected)",
    SPEC_FAULT: "code of the spec itself (its output_adapter) failed, so the decoder was not "
    "judged; fix the spec",
}


def _apply_expectation(
    spec: DecoderSpec,
    check_id: str,
    status: Status,
    message: str,
    kind: str | None,
    fingerprint: Sequence[str] | None = None,
) -> tuple[Status, str]:
    """Apply a declared expected failure to a check's raw outcome (see the module docstring).

    ``fingerprint`` is what the failing check recorded as ``failure_fingerprint`` (the
    violations it saw, seed-independent). A declaration that pins a fingerprint
    (``ExpectedFailure(reason, fingerprint=...)``) covers only a failure with exactly that
    fingerprint: other or additional violations fail, with both shown. An unpinned
    declaration covers any broken promise, and its message shows the fingerprint to pin.
    """
    reason = spec.expected_failures.get(check_id)
    if reason is None:
        return status, message
    pinned: tuple[str, ...] | None = getattr(reason, "fingerprint", None)
    if status == "failed" and kind in _NOT_COVERED:
        return "failed", (
            f"{check_id} is declared as an expected failure ({reason}), but it failed in "
            f"another way that the declaration does not cover: {_NOT_COVERED[kind]}.\n{message}"
        )
    if status == "failed":
        seen = list(fingerprint) if fingerprint else None
        if pinned is None:
            hint = ""
            if seen:
                hint = (
                    "\nTo pin this expected failure to exactly what was seen (so that a different "
                    "or wider failure of this check fails certification), declare it as "
                    f"ExpectedFailure({str.__str__(reason)!r}, fingerprint={seen!r})"
                )
            return "xfailed", f"expected failure ({reason}): {message}{hint}"
        if seen is None:
            return "failed", (
                f"{check_id} is declared as an expected failure ({reason}) pinned to fingerprint "
                f"{list(pinned)!r}, but this check records no fingerprint, so the failure seen "
                "cannot be matched to the declaration; declare the reason as a plain string "
                f"instead.\n{message}"
            )
        if set(seen) == set(pinned):
            return "xfailed", f"expected failure ({reason}; fingerprint matches the declaration): {message}"
        only_seen = [line for line in seen if line not in pinned]
        only_declared = [line for line in pinned if line not in seen]
        return "failed", (
            f"{check_id} fails differently from its declared expected failure ({reason}): the "
            "declaration is pinned to a fingerprint that does not match what the check saw.\n"
            f"  declared fingerprint: {list(pinned)!r}\n"
            f"  seen fingerprint:     {seen!r}\n"
            + (f"  seen but not declared (a new or wider failure): {only_seen!r}\n" if only_seen else "")
            + (f"  declared but not seen (partly fixed?): {only_declared!r}\n" if only_declared else "")
            + "Fix the new failure, or update the declaration with the seen fingerprint.\n"
            + message
        )
    if status == "passed":
        return "failed", (
            f"stale expected failure: {check_id} passed, but DecoderSpec.expected_failures says "
            f"it fails ({reason}); remove it from expected_failures"
        )
    if status == "skipped":
        return "skipped", f"{message} (declared expected failure: {reason})"
    return status, message


def environment(spec: DecoderSpec) -> dict[str, Any]:
    """Versions and hardware a certification ran on, for the report."""
    import hypothesis

    from conformance import __version__

    env: dict[str, Any] = {
        "kit_version": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "hypothesis": hypothesis.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(spec.torch_device),
        "dtype": str(spec.dtype).removeprefix("torch."),
        "output_dtype": str(spec.resolved_output_dtype).removeprefix("torch."),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.version.cuda:
        env["cuda"] = torch.version.cuda
    if torch.backends.cudnn.is_available():
        env["cudnn"] = torch.backends.cudnn.version()
    if spec.torch_device.type == "cuda" and torch.cuda.is_available():
        env["device_name"] = torch.cuda.get_device_name(spec.torch_device)
    return env

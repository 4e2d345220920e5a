"""Declared expected failures, applied strictly: one policy, one table of what is never covered.

For a check listed in ``DecoderSpec.expected_failures``:

- a *broken promise* (the check found a wrong result: a mismatch, a shared storage, a
  size the mappers did not promise) becomes ``xfailed``;
- a different failure never hides behind the declaration: the kinds in
  :data:`NOT_COVERED` (a decoder error, a timeout, a crash, a vacuous pass, a fault of
  the spec) stay ``failed``, with a message saying that the declaration does not cover
  them. A known bug is a wrong answer; a crash or a hang is never "expected" (a decoder
  that cannot take some input declares that in the spec: ``max_chunk_frames``,
  ``batch_size=1``, ``check_timeout_s``);
- a pass becomes ``failed``: the expectation is stale and must be removed;
- a declaration pinned to a fingerprint covers exactly that failure: other or wider
  violations fail, showing both;
- skips stay skips, errors stay errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from conformance.core.outcomes import FailureKind
from conformance.core.results import Status

__all__ = ["NOT_COVERED", "apply_expectation", "pin_declaration", "uncovered_note"]

#: Failure kinds an expected-failure declaration never covers, and why.
NOT_COVERED: dict[FailureKind, str] = {
    FailureKind.DECODER_ERROR: "the decoder raised, or returned something the contract does not allow, "
    "while an expected failure only covers a wrong result (a crash is never expected; if the "
    "decoder cannot take some input, declare that in the spec, e.g. max_chunk_frames or "
    "batch_size=1)",
    FailureKind.TIMEOUT: "the check did not finish in time, while an expected failure only covers a wrong "
    "result (a hang is never expected; raise DecoderSpec.check_timeout_s if the decoder is "
    "merely slow)",
    FailureKind.VACUOUS: "the check exercised nothing, so it cannot tell whether the declared bug is still "
    "there",
    FailureKind.CRASH: "the decoder's process died while the check ran, while an expected failure only "
    "covers a wrong result (a crash is never expected)",
    FailureKind.SPEC_FAULT: "code of the spec itself (its output_adapter) failed, so the decoder was not "
    "judged; fix the spec",
    FailureKind.INCONCLUSIVE: "the check ran out of time without a verdict, so it cannot tell whether the "
    "declared bug is still there",
}


def uncovered_note(declared: Mapping[str, str], check_id: str) -> str:
    """`` (declared expected failure ... does not cover this ...)`` when ``check_id`` is
    declared, for messages of crashes and hangs; ``""`` otherwise."""
    reason = declared.get(check_id)
    if not reason:
        return ""
    return (
        f" (declared expected failure {str.__str__(reason)!r} does not cover this: a crash or a "
        "hang is never expected)"
    )


def pin_declaration(reason: str, fingerprint: Sequence[str] | None) -> str | None:
    """The ``ExpectedFailure(...)`` to paste to pin an unpinned declaration of ``reason`` to
    ``fingerprint`` (``None`` without a fingerprint, or when the declaration is pinned)."""
    if not fingerprint or getattr(reason, "fingerprint", None) is not None:
        return None
    return f"ExpectedFailure({str.__str__(reason)!r}, fingerprint={list(fingerprint)!r})"


def apply_expectation(
    declared: Mapping[str, str],
    check_id: str,
    status: Status,
    message: str,
    kind: FailureKind | None,
    fingerprint: Sequence[str] | None = None,
) -> tuple[Status, str, FailureKind | None]:
    """Apply a declared expected failure to a check's raw outcome (see the module docstring).

    ``declared`` is the spec's ``expected_failures``; ``fingerprint`` is what the failing
    check recorded as ``failure_fingerprint`` (the violations it saw, seed-independent).
    An unpinned declaration covers any broken promise, and its message shows the
    fingerprint to pin.
    """
    reason = declared.get(check_id)
    if reason is None:
        return status, message, kind
    pinned: tuple[str, ...] | None = getattr(reason, "fingerprint", None)
    if status in ("failed", "inconclusive") and kind in NOT_COVERED:
        return status, (
            f"{check_id} is declared as an expected failure ({reason}), but it failed in "
            f"another way that the declaration does not cover: {NOT_COVERED[kind]}.\n{message}"
        ), kind
    if status == "failed":
        seen = list(fingerprint) if fingerprint else None
        if pinned is None:
            hint = ""
            declaration = pin_declaration(reason, seen)
            if declaration:
                hint = (
                    "\nTo pin this expected failure to exactly what was seen (so that a different "
                    f"or wider failure of this check fails certification), declare it as {declaration}"
                )
            return "xfailed", f"expected failure ({reason}): {message}{hint}", kind
        if seen is None:
            return "failed", (
                f"{check_id} is declared as an expected failure ({reason}) pinned to fingerprint "
                f"{list(pinned)!r}, but this check records no fingerprint, so the failure seen "
                "cannot be matched to the declaration; declare the reason as a plain string "
                f"instead.\n{message}"
            ), kind
        if set(seen) == set(pinned):
            return "xfailed", f"expected failure ({reason}; fingerprint matches the declaration): {message}", kind
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
        ), kind
    if status == "passed":
        return "failed", (
            f"stale expected failure: {check_id} passed, but DecoderSpec.expected_failures says "
            f"it fails ({reason}); remove it from expected_failures"
        ), FailureKind.STALE_EXPECTATION
    if status == "skipped":
        return "skipped", f"{message} (declared expected failure: {reason})", kind
    return status, message, kind

"""The suite: every check function, registered by importing its promise module.

``ALL_CHECKS`` holds them in the catalog's order (:mod:`conformance.checks.catalog`, the
one definition of it) and ``get_check`` finds one by id. Each check is a function of a
:class:`~conformance.checks.harness.context.CheckContext` that returns normally when the
promise holds and raises :class:`~conformance.core.outcomes.CheckFailed` /
:class:`~conformance.core.outcomes.CheckSkipped` otherwise; its docstring says the
promise, why it matters and what it does.

:func:`validate_expected_failures` checks a spec's declared expected failures against the
suite (a spec is a plain value of :mod:`conformance.core`, which cannot know the checks).
"""

from __future__ import annotations

from conformance.checks import (  # noqa: F401 - importing registers the checks
    cache_isolation,
    chunking,
    finiteness,
    forward_contract,
    pipeline_habits,
    pipeline_promises,
    resources,
    size_mappers,
    state_machine,
)
from conformance.checks.catalog import CHECK_IDS, require_known
from conformance.checks.registry import Check, registered
from conformance.core.spec import DecoderSpec
from conformance.core.suggest import did_you_mean

__all__ = ["ALL_CHECKS", "Check", "get_check", "validate_expected_failures"]

_BY_ID = registered()
if set(_BY_ID) != set(CHECK_IDS):  # pragma: no cover - a kit bug, caught by the kit's tests
    raise RuntimeError(
        f"registered checks {sorted(_BY_ID)} do not match the catalog's ids {sorted(CHECK_IDS)}"
    )

ALL_CHECKS: tuple[Check, ...] = tuple(_BY_ID[check_id] for check_id in CHECK_IDS)


def get_check(check_id: str) -> Check:
    """The check called ``check_id``; ``KeyError`` naming the closest ids otherwise."""
    return _BY_ID[require_known(check_id)]


def validate_expected_failures(spec: DecoderSpec) -> None:
    """``ValueError`` if ``spec.expected_failures`` names a check that does not exist (with
    the closest ids), or pins a fingerprint (``ExpectedFailure(..., fingerprint=...)``) on
    a check that records none (so the pin could never be matched)."""
    unknown = sorted(set(spec.expected_failures) - set(CHECK_IDS))
    if unknown:
        hints = ", ".join(f"{check_id!r}{did_you_mean(check_id, CHECK_IDS, limit=1)}" for check_id in unknown)
        raise ValueError(
            f"DecoderSpec {spec.name!r}: expected_failures names unknown check(s) {hints}; "
            f"known checks: {', '.join(CHECK_IDS)}"
        )
    unpinnable = sorted(
        check_id
        for check_id, declared in spec.expected_failures.items()
        if getattr(declared, "fingerprint", None) is not None and not _BY_ID[check_id].fingerprinted
    )
    if unpinnable:
        raise ValueError(
            f"DecoderSpec {spec.name!r}: expected_failures pins a fingerprint for {unpinnable}, "
            "but these checks record no fingerprint, so the pin could never match; declare "
            "the reason as a plain string. Checks that record fingerprints: "
            f"{', '.join(check.id for check in ALL_CHECKS if check.fingerprinted)}"
        )

"""How a check ends when it does not pass: the exceptions checks raise.

The runner turns each into a status, so a check only has to say *what happened*:

- :class:`CheckFailed`: the decoder broke a promise -> ``failed``.
- :class:`DecoderError`: a call into the decoder (its factory, its cache initializer, its
  forward, its size mappers) raised or returned something unusable -> ``failed``. It is a
  :class:`CheckFailed`, because a decoder that crashes on a legal call is a broken decoder,
  not a broken kit.
- :class:`CheckSkipped`: the promise cannot be exercised for this decoder (deep copy
  unsupported, batch size 1) -> ``skipped``, with the reason.

Anything else escaping a check is a bug in the kit itself -> ``error``.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["CheckCancelled", "CheckFailed", "CheckSkipped", "DecoderError", "FailureKind", "SpecFault"]


class FailureKind(str, Enum):
    """How a check that did not pass ended: the one list of failure kinds.

    A result's ``kind`` is one of these (``None`` for a pass). It is a ``str`` so that
    reports and JSON carry the plain words. Only a :attr:`BROKEN_PROMISE` can be covered
    by an expected-failure declaration (see :mod:`conformance.engine.expectations`).
    """

    #: The check found a wrong result: a mismatch, a shared storage, a size the mappers
    #: did not promise.
    BROKEN_PROMISE = "broken promise"
    #: A call into the decoder raised, or returned something the contract does not allow.
    DECODER_ERROR = "decoder error"
    #: Nothing progressed for the stall limit (a hang), or the check ran past its timeout.
    TIMEOUT = "timeout"
    #: The check returned without exercising its promise.
    VACUOUS = "vacuous pass"
    #: The worker process running the check died (a signal, ``os._exit``, an abort).
    CRASH = "crash"
    #: The check ran out of time while the decoder kept completing calls: no verdict.
    INCONCLUSIVE = "inconclusive"
    #: Code of the spec (its ``output_adapter``) failed: the decoder could not be judged.
    SPEC_FAULT = "spec fault"
    #: The check passed although ``DecoderSpec.expected_failures`` declares it failing: the
    #: declaration is stale (the bug was fixed) and must be removed.
    STALE_EXPECTATION = "stale expected failure"
    #: The check was planned but never ran (the run stopped, or the decoder could not be built).
    NOT_RUN = "not run"

    def __str__(self) -> str:
        return self.value


class CheckFailed(AssertionError):
    """The decoder under test broke the promise a check guards."""


class DecoderError(CheckFailed):
    """A call into the decoder raised, or returned something the contract does not allow."""


class SpecFault(Exception):
    """Code the spec supplies (its ``output_adapter``) raised or returned something unusable:
    the check cannot judge the decoder -> ``failed``, named as a fault of the spec (never
    ``error``, which is reserved for bugs of the kit, and never covered by an expected-failure
    declaration)."""


class CheckSkipped(Exception):
    """The check cannot apply to this decoder; the message says why."""


class CheckCancelled(BaseException):
    """Raised inside an abandoned check (it ran past its timeout) at its next decoder call.

    A ``BaseException`` so that neither Hypothesis nor a check's own ``except Exception``
    swallows it: the worker thread should unwind as soon as it can.
    """

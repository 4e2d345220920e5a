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

__all__ = ["CheckCancelled", "CheckFailed", "CheckSkipped", "DecoderError", "SpecFault"]


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

"""Guarded calls into the decoder: whatever the decoder does, the check gets a named outcome.

Every call into code under test (its factory, cache initializer, forward, size mappers)
goes through :func:`guarded_call` or :func:`query_mapper`, so that:

- anything it raises becomes a :class:`~conformance.core.outcomes.DecoderError` naming the
  call (``factory``, ``forward at AR 3 with 1 latent frame`` ...) -- the kit's own outcome
  types too, ``SystemExit``, a ``KeyboardInterrupt`` the decoder raised, pytest's skip;
- a call that changes torch's process-wide default device or dtype is undone and failed;
- the :class:`~conformance.checks.harness.control.RunControl` knows the call in progress,
  and a cancelled check stops before its next call.
"""

from __future__ import annotations

import operator
import signal
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import torch

from conformance.checks.harness.control import RunControl
from conformance.core.outcomes import CheckCancelled, CheckFailed, DecoderError

__all__ = [
    "MAPPER_REJECTIONS",
    "MapperAnswer",
    "as_int",
    "callable_name",
    "describe_exception",
    "guarded_call",
    "query_mapper",
]

T = TypeVar("T")

#: Exceptions a size mapper may raise to say "this size cannot be produced".
MAPPER_REJECTIONS: tuple[type[BaseException], ...] = (ValueError, AssertionError)


def describe_exception(err: BaseException | None) -> str:
    """``"TypeName: first line of the message"``, for one-line failure messages."""
    if err is None:
        return "no exception"
    try:
        text = str(err).strip().splitlines()
    except Exception:  # noqa: BLE001 - a decoder's exception may not even format
        return f"{type(err).__name__} (its message could not be formatted)"
    first = text[0] if text else ""
    return f"{type(err).__name__}: {first}" if first else type(err).__name__


def callable_name(fn: Any) -> str:
    """A function's qualified name for messages (``factory MyConfig.setup()``)."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def guarded_call(control: RunControl, what: str, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Call into the decoder; anything it raises becomes a ``DecoderError`` naming ``what``.

    *Anything*: the kit's own outcome types too (a decoder raising ``CheckFailed`` or
    ``CheckSkipped`` must not pass for a broken promise that an expected-failure
    declaration absorbs, or for a skip), ``SystemExit``, ``KeyboardInterrupt`` raised by
    the decoder itself, and pytest's outcome exceptions (``pytest.skip`` in a factory).
    A real Ctrl-C is let through unless the call runs in a supervised worker process,
    which ignores SIGINT (its supervisor owns the terminal), so that any
    ``KeyboardInterrupt`` seen there was raised by the decoder.
    """
    if control.cancelled:
        raise CheckCancelled(f"check cancelled before {what}")
    control.entering(what)
    defaults = _global_defaults()
    try:
        return fn(*args, **kwargs)
    except BaseException as err:
        if isinstance(err, CheckCancelled) and control.cancelled:
            raise
        if isinstance(err, KeyboardInterrupt) and not _interrupt_is_the_decoders():
            raise
        raise DecoderError(f"{what} raised {describe_exception(err)}") from err
    finally:
        control.left()
        _restore_global_defaults(defaults, what)


class MapperAnswer(NamedTuple):
    """What a size mapper did: returned ``value``, or raised ``error``."""

    value: int | None
    error: BaseException | None

    @property
    def rejected(self) -> bool:
        return self.error is not None


def query_mapper(
    control: RunControl, decoder: Any, which: str, autoregressive_index: int, size: int
) -> MapperAnswer:
    """Call ``get_output_temporal_size`` (``which="output"``) or ``get_input_temporal_size``.

    A ``ValueError`` / ``AssertionError`` is returned as a rejection (legal for sizes the
    step cannot handle); other exceptions and non-integer results are ``DecoderError``.
    The size checks make hundreds of thousands of these calls, so the call's description
    is only written when something goes wrong.
    """
    fn = getattr(decoder, f"get_{which}_temporal_size")
    if control.cancelled:
        raise CheckCancelled(f"check cancelled before get_{which}_temporal_size({autoregressive_index}, {size})")
    try:
        value = fn(autoregressive_index, size)
    except (CheckFailed, CheckCancelled) as err:  # the kit's own types: never a rejection
        raise DecoderError(
            f"get_{which}_temporal_size({autoregressive_index}, {size}) raised {describe_exception(err)}"
        ) from err
    except MAPPER_REJECTIONS as err:
        return MapperAnswer(None, err)
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt) and not _interrupt_is_the_decoders():
            raise
        raise DecoderError(
            f"get_{which}_temporal_size({autoregressive_index}, {size}) raised {describe_exception(err)}; "
            "a size mapper may only reject a size with ValueError or AssertionError"
        ) from err
    if type(value) is int:
        return MapperAnswer(value, None)
    return MapperAnswer(as_int(value, f"get_{which}_temporal_size({autoregressive_index}, {size})"), None)


def as_int(value: Any, what: str) -> int:
    """``value`` as an int if it is an integer (not bool, not float); else ``DecoderError``."""
    if isinstance(value, (bool, float, torch.Tensor)):
        raise DecoderError(f"{what} returned {value!r} ({type(value).__name__}); expected an int")
    try:
        return operator.index(value)
    except TypeError:
        raise DecoderError(
            f"{what} returned {value!r} ({type(value).__name__}); expected an int"
        ) from None


def _interrupt_is_the_decoders() -> bool:
    """Whether a ``KeyboardInterrupt`` seen now can only have been raised by the code under
    test: Python delivers a real Ctrl-C to the main thread only, so one raised in a check's
    worker thread is the decoder's; and a supervised worker process ignores SIGINT (its
    supervisor owns the terminal), so there any ``KeyboardInterrupt`` is the decoder's."""
    if threading.current_thread() is not threading.main_thread():
        return True
    try:
        return signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    except (ValueError, AttributeError):  # pragma: no cover - exotic platforms
        return False


def _global_defaults() -> tuple[Any, torch.dtype]:
    get_device = getattr(torch, "get_default_device", None)
    return (get_device() if get_device is not None else None), torch.get_default_dtype()


def _restore_global_defaults(before: tuple[Any, torch.dtype], what: str) -> None:
    """Undo a decoder call's change of torch's process-wide defaults, and fail it.

    A factory that calls ``torch.set_default_device("meta")`` (to build on the meta
    device) and never restores it silently moves every later tensor of the pipeline --
    and of the kit -- onto a device with no data. The kit restores the defaults, so its
    own work is unharmed, and reports the call that changed them.
    """
    after = _global_defaults()
    if after == before:
        return
    device, dtype = before
    if device is not None:
        torch.set_default_device(device)
    torch.set_default_dtype(dtype)
    changes = []
    if after[0] != device:
        changes.append(f"default device from {device} to {after[0]} (torch.set_default_device)")
    if after[1] != dtype:
        changes.append(f"default dtype from {dtype} to {after[1]} (torch.set_default_dtype)")
    raise DecoderError(
        f"{what} changed torch's process-wide {' and '.join(changes)} and left it so; every "
        "later tensor of a pipeline would follow it. Build under a context instead "
        "(`with torch.device('meta'):`) or restore the default before returning"
    )

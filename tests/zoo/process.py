"""Decoders that attack the process they run in: exit, signal, crash, hold the GIL, linger.

None of them is malicious: each is a real way a buggy decoder (or a library under it)
takes its process down. Run in-process, any of them would end or hang the test session,
so they are certified only through supervised worker processes
(:mod:`conformance.engine.workers`), and are kept out of ``tests.zoo.BROKEN``. Each must end with
the check in flight *failed* (never ``error``, never certified), a message naming what
happened, the remaining checks still run in a fresh worker, and the right exit code.

The hostile call happens only at autoregressive index >= 1 (or only in one check's kind
of call), so that earlier checks pass and the test can see the run carry on afterwards.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

import torch

from reference_decoders.toy import ToyDecoderCache, ToyVideoDecoder

from ._base import PlainToy, correct, toy_spec_factory

__all__ = [
    "CASES",
    "CORRECT_CASES",
]


def _later_step(autoregressive_index: int) -> bool:
    return autoregressive_index >= 1


class ForwardCallsOsExit(PlainToy):
    """``forward`` calls ``os._exit(0)`` at AR >= 1: the process ends with status 0, no
    exception, no cleanup. Real bug: a helper that "exits cleanly" on an unsupported
    configuration. In-process, this gave exit 0 with no report."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            os._exit(0)
        return super().forward(input, autoregressive_index, cache)


class ThreadCallsOsExit(PlainToy):
    """A background thread started by ``forward`` calls ``os._exit(0)`` at AR >= 1.
    Real bug: a prefetch thread that exits the process when its queue closes."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            threading.Thread(target=os._exit, args=(0,), daemon=True).start()
            time.sleep(5.0)
        return super().forward(input, autoregressive_index, cache)


class ForwardSegfaults(PlainToy):
    """``forward`` reads address 0 from native code at AR >= 1 (SIGSEGV). Real bug: a
    custom CUDA/C++ extension indexing past a buffer the size of the first chunk."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            ctypes.string_at(0)
        return super().forward(input, autoregressive_index, cache)


class ForwardIsKilled(PlainToy):
    """The process gets SIGKILL during ``forward`` at AR >= 1, as from the OOM killer.
    Real bug: a history that grows per step until the machine runs out of memory."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().forward(input, autoregressive_index, cache)


class ForwardAborts(PlainToy):
    """``forward`` aborts the process (SIGABRT) at AR >= 1, as a failed native assertion
    or ``std::terminate`` does."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            os.abort()
        return super().forward(input, autoregressive_index, cache)


def _hold_the_gil(seconds: float) -> None:
    """Spin in C without releasing the GIL (``sum`` over a range never checks for signals
    or switches threads), for roughly ``seconds`` or far longer."""
    sum(range(int(seconds * 2e7)))


class ForwardHoldsTheGil(PlainToy):
    """``forward`` loops in native code holding the GIL at AR >= 1 (for hours). Real bug: a
    C extension that spins on a device flag without releasing the GIL. In-process this hung
    the run forever: no thread could run the timeout, and Ctrl-C was ignored."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            _hold_the_gil(36000.0)
        return super().forward(input, autoregressive_index, cache)


class ForwardSleepsForever(PlainToy):
    """``forward`` blocks (releasing the GIL) at AR >= 1 and never returns: a deadlock on
    a device queue. Supervised, the stall is seen from outside and the worker killed."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        if _later_step(autoregressive_index):
            threading.Event().wait()
        return super().forward(input, autoregressive_index, cache)


class _LingeringThreadDecoder(PlainToy):
    """Correct decoder that starts a non-daemon background thread which never ends (a
    metrics flusher). In-process the interpreter then waits forever at exit (or torch's
    threads abort it); supervised workers leave with ``os._exit`` after their last result."""

    def __init__(self, config: object) -> None:
        super().__init__(config)  # type: ignore[arg-type]
        threading.Thread(target=threading.Event().wait, name="metrics-flusher", daemon=False).start()


class _ChattyDecoder(PlainToy):
    """Correct decoder that prints on every call, including lines that look like the kit's
    own messages, to stdout and stderr: the kit's channel is its own pipe, untouched."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        print('{"msg": "result", "check_id": "x"}', flush=True)
        print(f"decoding step {autoregressive_index}", file=sys.stderr, flush=True)
        return super().forward(input, autoregressive_index, cache)


def _spec(cls: type[ToyVideoDecoder], **fields: object):  # type: ignore[no-untyped-def]
    name = "zoo-process-" + cls.__name__.lower().lstrip("_")
    return toy_spec_factory(name, cls, **fields)


forward_calls_os_exit = _spec(ForwardCallsOsExit)
thread_calls_os_exit = _spec(ThreadCallsOsExit)
forward_segfaults = _spec(ForwardSegfaults)
forward_is_killed = _spec(ForwardIsKilled)
forward_aborts = _spec(ForwardAborts)
forward_holds_the_gil = _spec(ForwardHoldsTheGil, check_timeout_s=3.0)
forward_sleeps_forever = _spec(ForwardSleepsForever, check_timeout_s=3.0)
lingering_thread = _spec(_LingeringThreadDecoder)
chatty = _spec(_ChattyDecoder)

#: (target attribute, words the failure message must contain) for each hostile decoder.
CASES: dict[str, tuple[str, ...]] = {
    "forward_calls_os_exit": ("exited with status 0",),
    "thread_calls_os_exit": ("exited with status 0",),
    "forward_segfaults": ("SIGSEGV",),
    "forward_is_killed": ("SIGKILL",),
    "forward_aborts": ("SIGABRT",),
    "forward_holds_the_gil": ("stuck", "GIL"),
    "forward_sleeps_forever": ("stuck",),
}
#: Correct decoders that misbehave only towards the process: they must certify.
CORRECT_CASES = ("lingering_thread", "chatty")


class _SlowButSteady(PlainToy):
    """Correct but slow: every call takes 0.3 s, with a check budget of 1 s. Work keeps
    completing, so running out of time is no evidence of a fault: the verdict must be
    ``inconclusive`` (exit 4), never ``failed``."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0,
                cache: ToyDecoderCache | None = None) -> torch.Tensor:
        time.sleep(0.3)
        return super().forward(input, autoregressive_index, cache)


slow_but_steady = _spec(_SlowButSteady, check_timeout_s=1.0)

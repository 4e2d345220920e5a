"""Decoders that cannot be built, raise, return the wrong thing, or never return.

The kit is run on decoders nobody here has seen. Whatever they do, the kit must turn it
into failed checks with a message a person can act on, and keep running the remaining
checks: never a crash of the kit or of pytest collection. ``error`` is reserved for
bugs inside the kit, so none of these may produce it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder

from ._base import BrokenCase, PlainToy, broken, toy_spec_factory

__all__ = ["CASES", "release_hung_decoders"]

# Hung decoders wait on this event, so a test session can let their threads finish
# (a worker thread that never returns would otherwise outlive the test).
_RELEASE = threading.Event()
#: Upper bound on a hang even if nobody releases it: far beyond any check timeout used.
HANG_LIMIT_S = 300.0


def release_hung_decoders() -> None:
    """Let every :class:`ForwardNeverReturns` call return (with an error)."""
    _RELEASE.set()


class _MissingCheckpoint(Exception):
    pass


def _factory_that_raises() -> ToyVideoDecoder:
    raise _MissingCheckpoint("checkpoint 'decoder.safetensors' not found in the model directory")


class ForwardAlwaysRaises(PlainToy):
    """Every call raises, as a decoder needing a kernel that is not available would.

    Real bug: a fused op imported lazily inside ``forward`` (``RuntimeError: no kernel
    image``). Every check that decodes must fail with the decoder's own message; the
    mapper checks, which never decode, still run and pass.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        raise RuntimeError("fused causal-conv kernel unavailable for this device")


class StreamingNotImplemented(PlainToy):
    """Decodes step 0 but raises at every later step.

    Real bug: a whole-clip decoder wrapped in the streaming interface without a cache;
    the first chunk works, so a demo looks fine. Caught by
    ``chunked_decode_matches_full_decode`` (and every check that steps a rollout).
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if autoregressive_index > 0:
            raise NotImplementedError("streaming past the first chunk is not supported")
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class ForwardReturnsList(PlainToy):
    """Returns ``[frames]`` instead of a tensor.

    Real bug: a decoder ported from a ``DecoderOutput``/tuple-returning API
    (``return (sample,)`` style) without unwrapping. Caught by
    ``output_layout_dtype_device`` and every check that reads the output.
    """

    def forward(  # type: ignore[override]
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> list[torch.Tensor]:
        return [super().forward(input, autoregressive_index=autoregressive_index, cache=cache)]


class ForwardReturnsNone(PlainToy):
    """Writes the frames into the cache and returns ``None``.

    Real bug: a forgotten ``return`` (the result stored as ``cache.last_frames``).
    Caught by ``output_layout_dtype_device`` and every check that reads the output.
    """

    def forward(  # type: ignore[override]
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> None:
        super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class ForwardCallsSysExit(PlainToy):
    """``forward`` calls ``sys.exit`` (``SystemExit``, a ``BaseException``).

    Real bug: a helper that exits the process on an unsupported device instead of
    raising. The kit must report failed checks, not die and not call it a kit error.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        sys.exit("no CUDA device with compute capability >= 8.0")


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("formatting the error message failed")


class ErrorWithBrokenMessage(PlainToy):
    """``forward`` raises an exception whose ``__str__`` itself raises.

    Real bug: a custom exception formatting an attribute that was never set (or a
    binding whose message conversion fails). Still the decoder's fault: the kit must
    report failed checks naming the exception type, not an internal kit error.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        raise _UnprintableError()


class ForwardNeverReturns(PlainToy):
    """``forward`` blocks forever (until the test session releases it).

    Real bug: a deadlock on a lock or a device queue, or an infinite loop over a chunk
    plan that never ends. The kit must give up after the spec's ``check_timeout_s`` and
    report a failed check saying the call did not return.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        _RELEASE.wait(HANG_LIMIT_S)
        raise RuntimeError("hung decoder released by the test session")


class ForwardRaisesTheKitsCheckFailed(PlainToy):
    """``forward`` raises the kit's own ``CheckFailed`` (a decoder whose tests share helpers
    with the kit). It must count as the decoder's error, never as the broken promise an
    expected-failure declaration absorbs: in-process, a decoder that never decodes was
    CERTIFIED with 15 expected failures."""

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        from conformance.core.outcomes import CheckFailed

        raise CheckFailed("decoded output differs from the reference")


class ForwardRaisesKeyboardInterrupt(PlainToy):
    """``forward`` raises ``KeyboardInterrupt`` itself (a signal handler of the decoder's own
    that converts SIGTERM). It is the decoder's error, not a Ctrl-C of the person running
    the kit, and never an internal error of the kit."""

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        raise KeyboardInterrupt


class ForwardReturnsSparse(PlainToy):
    """``forward`` returns a sparse COO tensor (a decoder that sparsifies masks and forgets to
    densify its output). A video must be dense: a decoder error naming the layout."""

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index, cache).to_sparse()


def _factory_calls_pytest_skip() -> ToyVideoDecoder:
    import pytest

    pytest.skip("weights not downloaded")
    raise AssertionError("unreachable")


def _factory_leaves_meta_default_device() -> ToyVideoDecoder:
    decoder = PlainToy(ToyDecoderConfig())
    torch.set_default_device("meta")  # built "on meta" and never restored
    return decoder


def unbuildable(name: str, factory: Callable[[], Any], bug: str, hints: tuple[str, ...]) -> BrokenCase:
    """A decoder that cannot be built: ``factory`` fails, so no check runs, and the reason
    is given (none counts towards a check's coverage)."""
    return BrokenCase(
        name=name,
        spec_factory=toy_spec_factory(name, PlainToy, factory=factory),
        must_fail=frozenset(),
        bug=bug,
        hints=hints,
        unbuildable=True,
    )


factory_calls_pytest_skip = unbuildable(
    "zoo-factory-calls-pytest-skip",
    _factory_calls_pytest_skip,
    "The factory calls ``pytest.skip`` when its weights are missing: the decoder cannot be "
    "built, which is the decoder's failure, not a skip and not a kit error.",
    ("Skipped", "weights not downloaded"),
)
factory_leaves_meta_default_device = unbuildable(
    "zoo-factory-leaves-meta-default-device",
    _factory_leaves_meta_default_device,
    "The factory sets torch's default device to ``meta`` to build the network and never "
    "restores it, moving every later tensor of the pipeline onto a device with no data.",
    ("default device",),
)
forward_raises_the_kits_check_failed = broken(
    ForwardRaisesTheKitsCheckFailed,
    must_fail={"forward_accepts_keyword_call", "chunked_decode_matches_full_decode"},
    hints=("CheckFailed",),
    expected_failures={"chunked_decode_matches_full_decode": "known seam bug"},
)
forward_raises_keyboard_interrupt = broken(
    ForwardRaisesKeyboardInterrupt,
    must_fail={"forward_accepts_keyword_call", "chunked_decode_matches_full_decode"},
    hints=("KeyboardInterrupt",),
)
forward_returns_sparse = broken(
    ForwardReturnsSparse,
    must_fail={"forward_accepts_keyword_call", "output_layout_dtype_device"},
    hints=("sparse",),
)

factory_raises = unbuildable(
    "zoo-factory-raises",
    _factory_that_raises,
    "The decoder cannot be built: the factory raises (a missing checkpoint).",
    ("checkpoint", "factory"),
)
factory_returns_config = unbuildable(
    "zoo-factory-returns-config",
    lambda: ToyDecoderConfig(),
    "The factory returns the decoder's config instead of the decoder (``setup()`` forgotten).",
    ("ToyDecoderConfig", "StreamingVideoDecoder"),
)
forward_always_raises = broken(
    ForwardAlwaysRaises,
    must_fail={
        "forward_accepts_keyword_call",
        "decoded_sizes_match_mappers",
        "chunked_decode_matches_full_decode",
        "output_layout_dtype_device",
    },
    hints=("kernel unavailable",),
)
streaming_not_implemented = broken(
    StreamingNotImplemented,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("streaming past the first chunk", "NotImplementedError"),
)
forward_calls_sys_exit = broken(
    ForwardCallsSysExit,
    must_fail={"forward_accepts_keyword_call", "chunked_decode_matches_full_decode"},
    hints=("SystemExit",),
)
error_with_broken_message = broken(
    ErrorWithBrokenMessage,
    must_fail={"forward_accepts_keyword_call", "chunked_decode_matches_full_decode"},
    hints=("_UnprintableError",),
)
forward_returns_list = broken(
    ForwardReturnsList,
    must_fail={"output_layout_dtype_device"},
    hints=("list",),
)
forward_returns_none = broken(
    ForwardReturnsNone,
    must_fail={"output_layout_dtype_device"},
    hints=("NoneType", "None"),
)
forward_never_returns = broken(
    ForwardNeverReturns,
    must_fail={"forward_accepts_keyword_call"},
    hints=("did not return", "timeout", "timed out"),
    check_timeout_s=1.0,
)

CASES = [
    factory_raises,
    factory_returns_config,
    forward_always_raises,
    streaming_not_implemented,
    forward_calls_sys_exit,
    error_with_broken_message,
    forward_returns_list,
    forward_returns_none,
    forward_never_returns,
    factory_calls_pytest_skip,
    factory_leaves_meta_default_device,
    forward_raises_the_kits_check_failed,
    forward_raises_keyboard_interrupt,
    forward_returns_sparse,
]

"""Decoders that break the calling convention or the promises about what ``forward`` returns.

Pipelines call ``decoder(input=x, autoregressive_index=i, cache=c)`` with keywords,
size and place their buffers from the declared layout, channels, dtype and device, and
keep the frames of step k while step k+1 runs. Each decoder here computes the right
pixels and breaks exactly one of those promises.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from typing import Any

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import PlainToy, broken

# --- calling convention -------------------------------------------------------------


class PositionalNamesForward(PlainToy):
    """``forward(x, idx, state)``: right order, wrong parameter names.

    Real bug: a decoder written against positional calls; every pipeline that passes
    ``input=``, ``autoregressive_index=``, ``cache=`` as keywords gets a TypeError. Its
    signature shows it, so the kit refuses it up front as no streaming video decoder,
    once, before any check.
    """

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, idx: int = 0, state: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(x, autoregressive_index=idx, cache=state)


def _timed(forward: Any) -> Any:
    """A timing decorator written for positional calls: it keeps the wrapped signature
    (``functools.wraps``) but passes on positional arguments only."""

    @functools.wraps(forward)
    def timed(self: Any, *args: Any) -> Any:
        return forward(self, *args)

    return timed


class KeywordsLostInDecorator(PlainToy):
    """``forward`` wrapped by a decorator that takes positional arguments only.

    Real bug: a profiling or timing decorator written as ``def wrapper(self, *args)`` and
    dressed with ``functools.wraps``: ``inspect.signature`` still shows ``input,
    autoregressive_index, cache``, so nothing looks wrong until a pipeline calls
    ``decoder(input=..., autoregressive_index=..., cache=...)`` and gets a TypeError.
    Caught by ``forward_accepts_keyword_call``.
    """

    @_timed
    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index, cache)


class CacheInitWithoutContext(PlainToy):
    """``initialize_autoregressive_cache(self)`` without ``**context``.

    Real bug: the override drops the base signature's ``**context``; works until a
    pipeline passes what it knows at rollout start (batch size, resolution), then
    raises TypeError. Caught by ``cache_init_accepts_context``.
    """

    def initialize_autoregressive_cache(self) -> ToyDecoderCache:  # type: ignore[override]
        return ToyDecoderCache()


class CacheInitRejectsUnknownContext(PlainToy):
    """``initialize_autoregressive_cache(self, *, batch_size)``: only the author's own context.

    Real bug: the signature names exactly what the author's pipeline passes; another
    pipeline that also passes ``resolution=`` or ``device=`` gets a TypeError. The spec
    supplies ``batch_size`` so every other check can run. Caught by
    ``cache_init_accepts_context``.
    """

    def initialize_autoregressive_cache(self, *, batch_size: int) -> ToyDecoderCache:  # type: ignore[override]
        return ToyDecoderCache()


class CacheInitRejectsUnknownKeys(PlainToy):
    """``initialize_autoregressive_cache(self, **context)`` that raises on keys it does not use.

    Real bug: over-eager validation (``if unknown: raise TypeError``); the signature looks
    right, yet a pipeline that passes more context than this decoder needs crashes.
    Caught by ``cache_init_accepts_context``.
    """

    def initialize_autoregressive_cache(self, **context: object) -> ToyDecoderCache:
        unknown = sorted(set(context) - {"batch_size"})
        if unknown:
            raise TypeError(f"unexpected rollout context {unknown}")
        return ToyDecoderCache()


# --- what forward returns -----------------------------------------------------------


class OutputFloat64(PlainToy):
    """Returns float64 pixels from a decoder declared float32.

    Real bug: a numpy round trip (``torch.from_numpy(np.clip(...))``) or a Python float
    scalar op promoting the output; downstream fp32 buffers and video encoders choke or
    silently double memory. Caught by ``output_layout_dtype_device``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache).double()


class OutputTimeBeforeChannels(PlainToy):
    """Returns ``[B, T, C, H, W]`` while the spec declares BCTHW output.

    Real bug: a decoder written for a BTCHW pipeline (Wan-style) registered with the
    default layout; a consumer slicing channels gets frames. Caught by
    ``output_layout_dtype_device``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return output.transpose(1, 2)


class OutputWithAlphaChannel(PlainToy):
    """Returns four channels (RGBA) where three are declared.

    Real bug: an extra alpha or mask channel appended by the final layer and not
    stripped. Caught by ``output_layout_dtype_device``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return torch.cat([output, torch.ones_like(output[:, :1])], dim=1)


class OutputOnMetaDevice(PlainToy):
    """Returns its output on another device than the declared one (here ``meta``).

    Real bug: a ``.to(self.output_device)`` left from a multi-device setup, or a CPU
    offload of the result in a decoder declared on CUDA; ``meta`` stands in for the
    other device on a CPU-only machine. Caught by ``output_layout_dtype_device``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache).to("meta")


# --- side effects and aliasing ------------------------------------------------------


class InputDenormalisedInPlace(PlainToy):
    """De-normalises the caller's latents in place (``input.mul_(scale)``).

    Real bug: ``latents.mul_(1 / scaling_factor)`` to save a copy; the caller's latent
    buffer is now scaled, and a retry or a second decode of it gives other pixels.
    Caught by ``input_is_not_modified``.
    """

    LATENT_SCALE = 2.0

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        latents = input.mul_(self.LATENT_SCALE)
        return super().forward(latents, autoregressive_index=autoregressive_index, cache=cache)


class StaticOutputBuffer(PlainToy):
    """Every step returns a view of one preallocated output buffer, overwritten by the next.

    Real bug: a static output tensor (for CUDA graphs or to avoid allocations) whose
    slice is returned to the caller; the frames handed out at step k change when
    step k+1 runs. Caught by ``outputs_survive_later_steps`` and
    ``caller_owns_returned_outputs`` (the output is the decoder's memory).
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._static: torch.Tensor | None = None

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        b, c, t, h, w = output.shape
        static = self._static
        if static is None or static.shape[:2] != (b, c) or static.shape[3:] != (h, w) or static.shape[2] < t:
            static = self._static = output.new_empty(b, c, max(t, 64), h, w)
        view = static[:, :, :t]
        view.copy_(output)
        return view


class DropoutLeftInTrainMode(PlainToy):
    """Applies dropout at inference: the module was never put in ``eval()`` mode.

    Real bug: ``F.dropout(x, p, training=True)`` (or a ``nn.Dropout`` in a module left
    in training mode), drawing from the global RNG; the same latents decode differently
    on each call. Caught by ``decoding_is_deterministic``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return F.dropout(output, p=0.1, training=True)


class DitherWithPrivateGenerator(PlainToy):
    """Adds dither noise from the module's own random generator.

    Real bug: decoding from a sampled posterior or adding "film grain" with a private
    ``torch.Generator`` seeded once; reseeding the global RNG does not make it
    repeatable. Caught by ``decoding_is_deterministic``.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._grain = torch.Generator().manual_seed(1234)

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        noise = torch.randn(output.shape, generator=self._grain, dtype=output.dtype)
        return output + 1e-2 * noise


class BatchStatisticsNormalisation(PlainToy):
    """Centres the latents with the mean over the *batch*: each element sees the others.

    Real bug: a normalisation over ``dim=0`` (BatchNorm in training mode, or a mean
    taken over the wrong axis); batch-1 tests pass, batched serving mixes users. The
    spec uses ``batch_size=2``. Caught by ``batch_elements_are_independent``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        centred = input - input.mean(dim=0, keepdim=True)
        return super().forward(centred, autoregressive_index=autoregressive_index, cache=cache)


CALL_HINTS = ("keyword",)
CONTEXT_HINTS = ("context",)
LAYOUT_HINTS = ("layout",)

positional_names_forward = broken(
    PositionalNamesForward, must_fail=set(), unbuildable=True, hints=("forward does not accept keywords",)
)
keywords_lost_in_decorator = broken(
    KeywordsLostInDecorator, must_fail={"forward_accepts_keyword_call"}, hints=CALL_HINTS
)
cache_init_without_context = broken(
    CacheInitWithoutContext, must_fail={"cache_init_accepts_context"}, hints=CONTEXT_HINTS
)
cache_init_rejects_unknown_context = broken(
    CacheInitRejectsUnknownContext,
    must_fail={"cache_init_accepts_context"},
    hints=CONTEXT_HINTS,
    cache_context={"batch_size": 1},
)
cache_init_rejects_unknown_keys = broken(
    CacheInitRejectsUnknownKeys, must_fail={"cache_init_accepts_context"}, hints=CONTEXT_HINTS
)
output_float64 = broken(
    OutputFloat64, must_fail={"output_layout_dtype_device"}, hints=("dtype", "float64")
)
output_time_before_channels = broken(
    OutputTimeBeforeChannels, must_fail={"output_layout_dtype_device"}, hints=LAYOUT_HINTS
)
output_with_alpha_channel = broken(
    OutputWithAlphaChannel, must_fail={"output_layout_dtype_device"}, hints=("channel", "shape")
)
output_on_meta_device = broken(
    OutputOnMetaDevice,
    must_fail={"output_layout_dtype_device"},
    hints=("device", "meta"),
)
input_denormalised_in_place = broken(
    InputDenormalisedInPlace,
    must_fail={"input_is_not_modified"},
    hints=("input",),
)
static_output_buffer = broken(
    StaticOutputBuffer,
    must_fail={"outputs_survive_later_steps", "caller_owns_returned_outputs"},
    hints=("changed", "buffer", "shares memory"),
)
dropout_left_in_train_mode = broken(
    DropoutLeftInTrainMode,
    must_fail={"decoding_is_deterministic"},
    hints=("twice", "determin"),
)
dither_with_private_generator = broken(
    DitherWithPrivateGenerator,
    must_fail={"decoding_is_deterministic"},
    hints=("twice", "determin"),
)
batch_statistics_normalisation = broken(
    BatchStatisticsNormalisation,
    must_fail={"batch_elements_are_independent"},
    hints=("batch",),
    batch_size=2,
)

CASES = [
    positional_names_forward,
    keywords_lost_in_decorator,
    cache_init_without_context,
    cache_init_rejects_unknown_context,
    cache_init_rejects_unknown_keys,
    output_float64,
    output_time_before_channels,
    output_with_alpha_channel,
    output_on_meta_device,
    input_denormalised_in_place,
    static_output_buffer,
    dropout_left_in_train_mode,
    dither_with_private_generator,
    batch_statistics_normalisation,
]


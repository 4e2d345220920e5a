"""Numerical slips: outputs that are not numbers, comparisons that measure nothing,
nondeterminism below the tolerance, and seam errors hidden by low precision.

Each broken decoder here was certified by the kit before issue 9: NaN compared equal to
NaN, clamped pixels compared equal whatever the decoder did, a 0.1% random change hid
under bfloat16's tolerance, and a seam error a few times bfloat16's rounding noise hid
under the dtype-derived frame RMS bound. The correct decoders beside them are the false
alarms those fixes must not raise: outputs clamped at unit-variance latents, constant
letterbox bars, a [0, 1] clamp, and bfloat16 decoders judged against their own measured
rounding noise, one of them with chunk-dependent rounding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import CorrectCase, PlainToy, broken, correct
from .chunking import _HistoryCorruptedBetweenCalls, widened

FINITE_HINTS = ("finite", "nan", "inf")
CHUNK_HINTS = ("chunk", "seam")


# --- outputs that are not numbers ---------------------------------------------------


class AllNan(PlainToy):
    """Every output value is NaN.

    Real bug: a division by a norm that is zero for every input (an RMS norm without its
    epsilon applied to an all-zero padding channel) poisons the whole output. NaN compared
    equal to NaN, so every comparison reported "max error 0". Caught by
    ``outputs_are_finite`` and, since every output is checked, by every decoding check.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return torch.full_like(output, float("nan"))


class FirstFrameNan(PlainToy):
    """The rollout's first pixel frame is NaN; every other frame is right.

    Real bug: the causal first frame normalised by the variance of its (all-zero) padded
    history, 0 / 0. The chunked and one-call decodes share the NaN frame, so it compared
    as agreement. Caught by ``outputs_are_finite``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if autoregressive_index == 0:
            output[:, :, 0] = float("nan")
        return output


class FirstFrameInf(PlainToy):
    """A few pixels of the rollout's first frame are +Inf and -Inf.

    Real bug: a log or an inverse sigmoid of a value rounded to exactly 0 or 1 at the
    first frame. Infinities compared as agreement (``inf == inf``). Caught by
    ``outputs_are_finite``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if autoregressive_index == 0:
            output[:, 0, 0, 0, :2] = float("inf")
            output[:, 1, 0, 1, :2] = float("-inf")
        return output


@dataclass(kw_only=True)
class _CountingCache(ToyDecoderCache):
    latent_frames_seen: int = 0


class NanAfterThirtyLatentFrames(PlainToy):
    """Outputs turn NaN once the rollout has seen more than 30 latent frames.

    Real bug: a running statistic in the cache kept in float16 that overflows after a
    few dozen steps (here: after 30 latent frames). Every check of the kit decoded at
    most 16 latent frames per rollout. Caught by ``outputs_are_finite`` (48 latent frames
    in one rollout).
    """

    LIMIT = 30

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        return _CountingCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _CountingCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        cache.latent_frames_seen += input.shape[2]
        if cache.latent_frames_seen > self.LIMIT:
            output = torch.full_like(output, float("nan"))
        return output


# --- clamped outputs ----------------------------------------------------------------


class HotClampedToy(PlainToy):
    """The toy with an energy head of huge gain: pixels are ``clamp(2**40 * rgb**2, 0, 1)``.

    Correct and unusual: with random weights and unit-variance latents every pixel sits
    on the upper clamp bound (and a squared output cannot flip sign), so chunked and
    one-call decodes agree whatever the decoder does. The kit must find latents that
    give signal (here about 2**-20 of the usual scale) instead of comparing clamped
    pixels, and must certify it.
    """

    GAIN = 2.0**40

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        rgb = torch.atanh(output.double().clamp(-1 + 1e-12, 1 - 1e-12))  # undo the toy's tanh
        return (self.GAIN * rgb.square()).clamp(0.0, 1.0).to(output.dtype)


class _OneFrameShort:
    """Mixin: after each call, keep one frame of latent history where two are needed."""

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)  # type: ignore[misc]
        if cache is not None and cache.latent_history is not None:
            kept = cache.latent_history[:, :, -1:]
            cache.latent_history = torch.cat([torch.zeros_like(kept), kept], dim=2)
        return output  # type: ignore[no-any-return]


class HotClampedHistoryOneFrameShort(_OneFrameShort, HotClampedToy):
    """A seam bug (history one frame short) in a decoder whose output is clamped everywhere
    at unit-variance latents.

    Real bug: found in a random-weight decoder whose output was clamped everywhere; the
    chunk and state-machine checks compared clamped pixels (equal whatever the seam
    does) and passed. Caught by ``chunked_decode_matches_full_decode`` and
    ``rollout_state_machine`` once the kit decodes rescaled latents that give signal.
    """


class BiasSaturated(PlainToy):
    """Mixin base: pixels are ``clamp(rgb + 4, -1, 1)``, +1 for any latents."""

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return (output + 4.0).clamp(-1.0, 1.0)


class BiasSaturatedHistoryOneFrameShort(_OneFrameShort, BiasSaturated):
    """A seam bug in a decoder whose output is +1 everywhere for any latents (a huge output
    bias): no input gives signal.

    Real bug: a random-weight decoder whose output bias drives every pixel into the clamp;
    its seam bug cannot show in any comparison. Before issue 9 its comparisons passed
    ("max error 0"); now the numeric checks fail, saying that no latent scale gave the
    comparisons signal. Meant for ``chunked_decode_matches_full_decode`` and
    ``rollout_state_machine``.
    """


class LetterboxedToy(PlainToy):
    """The toy with black bars: the top and bottom quarters of every frame are -1.

    Correct and unusual: half of every frame is constant and on the output's lower clamp
    bound for any latents. Those pixels carry no signal, and the kit must compare the
    rest, not reject the decoder for having constant regions.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        bar = output.shape[3] // 4
        output[:, :, :, :bar] = -1.0
        output[:, :, :, output.shape[3] - bar :] = -1.0
        return output


class UnitRangeToy(PlainToy):
    """Pixels in [0, 1]: ``clamp(2 * rgb, 0, 1)``, so about half of them are exactly 0.

    Correct and unusual: the clamp bounds are not [-1, 1], and the lower one holds half of
    the output; bounds must be read from the data, and the rest still compared.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return (2 * output).clamp(0.0, 1.0)


class MostlyPinnedChunkOffset(PlainToy):
    """A bfloat16 decoder whose output is pinned to +1 in seven rows of every eight, for any
    latents, and whose chunks after the first come out 0.03 too bright.

    Real bug: a per-call brightness or normalisation constant applied again at every
    chunk after the first, in a decoder whose output is saturated over most of the frame
    (an over-exposed sky, a bias that drives most pixels into the clamp). The offset is
    a quarter of the elementwise bf16 bound, and its frame RMS, averaged over whole
    frames pinned pixels included, was ``0.03 / sqrt(8) = 0.011``, under the frame RMS
    bound (0.016); over the pixels that carry signal it is 0.03. Caught by
    ``chunked_decode_matches_full_decode`` and ``rollout_state_machine``.
    """

    OFFSET = 0.03

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if autoregressive_index > 0:
            output = output + self.OFFSET
        keep = torch.arange(output.shape[3], device=output.device) % 8 == 0
        return torch.where(keep.view(1, 1, 1, -1, 1), output, torch.ones_like(output))


# --- nondeterminism -----------------------------------------------------------------


class NoisyBfloat16Output(PlainToy):
    """A bfloat16 decoder that multiplies its output by ``1 + 0.001 * noise`` (fresh,
    unseeded noise every call).

    Real bug: a noise-injection layer (or dropout) left on at inference, at 0.1%: far
    under bfloat16's tolerance (12.5% elementwise, 1.6% frame RMS), so two identical
    requests "agreed". Caught by ``decoding_is_deterministic``, which demands bitwise
    repeats on the CPU.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        noise = torch.randn(output.shape, dtype=torch.float32)
        return (output.float() * (1 + 1e-3 * noise)).to(output.dtype)


class RarelyPerturbedFloat32Output(PlainToy):
    """A float32 decoder that changes one output value in a thousand, at random, by one
    part in a hundred thousand.

    Real bug: a read of uninitialized memory or a race that touches a few values per
    call, each by less than float32's tolerance (2.4e-4). Caught by
    ``decoding_is_deterministic``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        hit = torch.rand(output.shape) < 1e-3
        return torch.where(hit, output * (1 + 1e-5), output)


# --- seams in low precision, judged against the decoder's own noise ------------------


class HistoryDecaysFivePercent(_HistoryCorruptedBetweenCalls):
    """A bfloat16 decoder whose carried history is scaled by 0.95 at every seam.

    Real bug: ``HistoryDecaysAtSeams`` at a quarter of the size: a stale scale factor on
    the cache. Its frame RMS error is a few bf16 ulps-of-one, at the dtype-derived frame
    RMS bound (4 u), but several times this decoder's own rounding noise (0.4-0.6 u,
    measured against its float32 twin). Caught by ``chunked_decode_matches_full_decode``
    through the measured-noise criterion (``DecoderSpec.reference_dtype``).
    """

    def corrupt(self, history: torch.Tensor) -> torch.Tensor:
        return history * 0.95


class FollowsParameterDtypeToy(PlainToy):
    """A bfloat16 toy that computes in its parameters' dtype, as most torch modules do.

    Correct and unusual: it declares ``reference_dtype=float32`` without a reference
    factory, so the kit builds its twin as ``factory().to(torch.float32)`` and measures
    its rounding noise against that.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        dtype = self.latent_conv.dtype
        if self.config.dtype != dtype:
            self.config = dataclasses.replace(self.config, dtype=dtype)
        return super().forward(input.to(dtype), autoregressive_index=autoregressive_index, cache=cache)


class Bfloat16ChunkDependentRounding(PlainToy):
    """A bfloat16 toy whose one-frame calls compute the latent convolution as three
    bfloat16 matrix products summed in bfloat16 (rounded after every term).

    Correct and unusual: calls of one frame take another kernel path than longer calls,
    with more roundings, as shape-dependent GPU kernels do (split-K with reduced-precision
    reductions). Its chunked decodes are noisier than its one-call decode; judged against
    its own measured noise (``reference_dtype=float32``) it must still pass.
    """

    @staticmethod
    def _causal_conv(x: torch.Tensor, history: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        if x.shape[2] != 1 or x.dtype != torch.bfloat16:
            return PlainToy._causal_conv(x, history, kernel)
        padded = torch.cat([history, x], dim=2)
        taps = kernel.shape[2]
        window = padded[:, :, -taps:]
        out = None
        for k in range(taps):
            term = torch.einsum("oc,bchw->bohw", kernel[:, :, k], window[:, :, k])
            out = term if out is None else out + term  # rounded to bf16 after each term
        assert out is not None
        return out.unsqueeze(2)


all_nan = broken(
    AllNan,
    must_fail={"outputs_are_finite", "chunked_decode_matches_full_decode", "decoding_is_deterministic"},
    hints=FINITE_HINTS,
)
first_frame_nan = broken(
    FirstFrameNan, must_fail={"outputs_are_finite", "rollout_state_machine"}, hints=FINITE_HINTS
)
first_frame_inf = broken(FirstFrameInf, must_fail={"outputs_are_finite"}, hints=FINITE_HINTS)
nan_after_thirty_latent_frames = broken(
    NanAfterThirtyLatentFrames, must_fail={"outputs_are_finite"}, hints=FINITE_HINTS
)
hot_clamped_history_one_frame_short = broken(
    HotClampedHistoryOneFrameShort,
    must_fail={"chunked_decode_matches_full_decode", "rollout_state_machine"},
    hints=CHUNK_HINTS,
)
bias_saturated_history_one_frame_short = broken(
    BiasSaturatedHistoryOneFrameShort,
    must_fail={"chunked_decode_matches_full_decode", "rollout_state_machine"},
    hints=("signal",),
)
mostly_pinned_chunk_offset = broken(
    MostlyPinnedChunkOffset,
    must_fail={"chunked_decode_matches_full_decode", "rollout_state_machine"},
    hints=CHUNK_HINTS,
    config={"dtype": torch.bfloat16},
    latent_size=(8, 8),
)
noisy_bfloat16_output = broken(
    NoisyBfloat16Output,
    must_fail={"decoding_is_deterministic"},
    hints=("repeat", "determin"),
    config={"dtype": torch.bfloat16},
)
rarely_perturbed_float32_output = broken(
    RarelyPerturbedFloat32Output, must_fail={"decoding_is_deterministic"}, hints=("repeat", "determin")
)
history_decays_five_percent = broken(
    HistoryDecaysFivePercent,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=("rounding noise",),
    config={"dtype": torch.bfloat16},
    reference_dtype=torch.float32,
    reference_factory=widened(HistoryDecaysFivePercent),
)
hot_clamped_toy = correct(HotClampedToy)
letterboxed_toy = correct(LetterboxedToy)
unit_range_toy = correct(UnitRangeToy)
toy_bfloat16_with_reference = dataclasses.replace(
    correct(
        PlainToy,
        name="zoo-ok-toy-bfloat16-with-reference",
        config={"dtype": torch.bfloat16},
        reference_dtype=torch.float32,
        reference_factory=widened(PlainToy),
    ),
    why=(
        "The toy in bfloat16 with its float32 twin declared (reference_dtype): chunked "
        "decodes are judged against its own measured rounding noise and must pass."
    ),
)
follows_parameter_dtype_toy = correct(
    FollowsParameterDtypeToy, config={"dtype": torch.bfloat16}, reference_dtype=torch.float32
)
bfloat16_chunk_dependent_rounding = correct(
    Bfloat16ChunkDependentRounding,
    config={"dtype": torch.bfloat16},
    reference_dtype=torch.float32,
    reference_factory=widened(Bfloat16ChunkDependentRounding),
)

CASES = [
    all_nan,
    first_frame_nan,
    first_frame_inf,
    nan_after_thirty_latent_frames,
    hot_clamped_history_one_frame_short,
    bias_saturated_history_one_frame_short,
    mostly_pinned_chunk_offset,
    noisy_bfloat16_output,
    rarely_perturbed_float32_output,
    history_decays_five_percent,
]

CORRECT_CASES: list[CorrectCase] = [
    hot_clamped_toy,
    letterboxed_toy,
    unit_range_toy,
    toy_bfloat16_with_reference,
    follows_parameter_dtype_toy,
    bfloat16_chunk_dependent_rounding,
]

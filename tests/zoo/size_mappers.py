"""Broken size mappers and compression ratios.

A pipeline sizes its pixel buffers from ``get_output_temporal_size`` and plans how
many latents to generate from ``get_input_temporal_size`` without ever looking inside
the decoder. Each decoder here decodes correctly but states its sizes wrongly, the way
real decoders do: the causal first frame forgotten in one direction, an index
comparison off by one, a float where an int belongs.
"""

from __future__ import annotations

import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import PlainToy, broken

# --- ratios -------------------------------------------------------------------------


class TemporalRatioAsFloat(PlainToy):
    """Temporal ratio computed as a division, so it is the float 4.0, not the int 4.

    Real bug: ``self.temporal_ratio = out_frames / in_frames`` (true division) in a
    constructor; ``4.0 * n`` then makes float frame counts that break ``torch.empty``.
    Caught by ``ratios_are_positive_constant_ints``.
    """

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_ratio / 1  # type: ignore[return-value]


class SpatialRatioAsTuple(PlainToy):
    """Spatial ratio reported per axis as ``(2, 2)`` instead of one int.

    Real bug: a VAE config stores ``(h_ratio, w_ratio)`` and the property returns it
    unchanged; ``latent_h * ratio`` then repeats a tuple instead of multiplying.
    Caught by ``ratios_are_positive_constant_ints``.
    """

    @property
    def spatial_compression_ratio(self) -> int:
        s = self.config.spatial_ratio
        return (s, s)  # type: ignore[return-value]


class RatioSetOnFirstForward(PlainToy):
    """Temporal ratio lazily initialised: 1 until the first decode, 4 afterwards.

    Real bug: the ratio is measured from the first decoded chunk and stored on the
    module, so a pipeline that sizes buffers before decoding sees a different constant
    than one that asks later. Caught by ``ratios_are_positive_constant_ints``.
    """

    def __init__(self, config: ToyDecoderConfig) -> None:
        super().__init__(config)
        self._measured_ratio: int | None = None

    @property
    def temporal_compression_ratio(self) -> int:
        return self._measured_ratio or 1

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        self._measured_ratio = self.config.temporal_ratio
        return output


# --- mapper algebra -----------------------------------------------------------------


class InputMapperIgnoresCausalFrame(PlainToy):
    """``get_input_temporal_size`` forgets the causal first frame: ``m // r`` at every step.

    Real bug: the inverse mapper is written as a plain division while the forward
    mapper knows about step 0, so at AR 0 ``get_input(0, get_output(0, n)) == n - 1``
    and a pipeline generates one latent frame too few. Caught by
    ``temporal_mappers_round_trip``.
    """

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        if output_temporal_size < 1:
            raise ValueError(f"need at least one pixel frame, got {output_temporal_size}")
        return output_temporal_size // self.config.temporal_ratio


class InputMapperRoundsUp(PlainToy):
    """``get_input_temporal_size`` rounds up instead of rejecting sizes it cannot produce.

    Real bug: ``math.ceil`` added "to be safe"; asking for 6 pixel frames at AR 1
    returns 2 latent frames, which decode to 8, and the pipeline's 6-frame buffer
    overflows later. Exact inverses still round-trip. Caught by
    ``temporal_mappers_round_trip`` (an impossible size must raise).
    """

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        if output_temporal_size < 1:
            raise ValueError(f"need at least one pixel frame, got {output_temporal_size}")
        r = self.config.temporal_ratio
        lost = r - 1 if autoregressive_index == 0 else 0
        return -(-(output_temporal_size + lost) // r)


class NegativeFramesForZeroLatents(PlainToy):
    """AR 0 mapper ``1 + r * (n - 1)`` without a guard: 0 latent frames give -3 pixel frames.

    Real bug: the closed form copied from a paper, valid only for n >= 1; a pipeline
    asking "how many frames for an empty chunk" gets a negative size. Caught by
    ``temporal_mappers_monotone_and_steady`` (never negative; n < 1 raises or gives 0).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        if autoregressive_index == 0:
            return 1 + r * (input_temporal_size - 1)
        return r * input_temporal_size


class MapperSaturatesAtWindow(PlainToy):
    """Output mapper clamped to a two-latent-frame window: more latents, no more frames.

    Real bug: a mapper that models a sliding attention window by capping the output
    instead of the receptive field; the mapping stops increasing past the cap. Caught
    by ``temporal_mappers_monotone_and_steady`` (strictly increasing).
    """

    WINDOW = 2

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return super().get_output_temporal_size(
            autoregressive_index, min(input_temporal_size, self.WINDOW)
        )


class SecondStepTreatedAsFirst(PlainToy):
    """Mappers test ``autoregressive_index <= 1`` for the causal frame: AR 1 maps like AR 0.

    Real bug: an off-by-one in the step comparison (1-based thinking). Steady state
    must start at AR 1, so AR 1 must map ``n`` to ``n * temporal_compression_ratio``
    like every later step. Caught by ``temporal_mappers_monotone_and_steady``.
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return super().get_output_temporal_size(
            0 if autoregressive_index <= 1 else autoregressive_index, input_temporal_size
        )

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return super().get_input_temporal_size(
            0 if autoregressive_index <= 1 else autoregressive_index, output_temporal_size
        )


class FirstStepPaddedNotTrimmed(PlainToy):
    """AR 0 mapped as ``r * n + (r - 1)``: the causal padding added instead of removed.

    Real bug: the sign of the first-frame correction flipped, so step 0 claims more
    frames than steady state. Mapper and inverse agree with each other. Caught by
    ``temporal_mappers_monotone_and_steady`` (AR 0 never yields more than steady state).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        extra = r - 1 if autoregressive_index == 0 else 0
        return r * input_temporal_size + extra

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        r = self.config.temporal_ratio
        extra = r - 1 if autoregressive_index == 0 else 0
        frames = output_temporal_size - extra
        if frames < r or frames % r:
            raise ValueError(f"{output_temporal_size} pixel frames cannot be produced")
        return frames // r


class MapperReturnsFloat(PlainToy):
    """``get_output_temporal_size`` returns a float (``5.0``) instead of an int.

    Real bug: a formula with true division or a float ratio, ``1 + (n - 1) * r / 1``;
    ``torch.empty(..., 5.0, ...)`` and ``range(5.0)`` then raise deep in the pipeline.
    Caught by ``temporal_mappers_round_trip`` (and every check that asks the mappers).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        frames = super().get_output_temporal_size(autoregressive_index, input_temporal_size)
        return frames / 1  # type: ignore[return-value]


class MapperKnowsOnlyFirstSteps(PlainToy):
    """Output mapper as a lookup table keyed by step: ``{0: first, 1: steady}[ar]``.

    Real bug: a table written for "first chunk" and "next chunk" that raises
    ``KeyError`` from AR 2 on, so a pipeline crashes on its third chunk. Caught by
    ``temporal_mappers_round_trip`` (every n >= 1 at every AR index must map; a mapper
    may only reject with ValueError or AssertionError).
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        r = self.config.temporal_ratio
        by_step = {0: 1 + r * (input_temporal_size - 1), 1: r * input_temporal_size}
        return by_step[autoregressive_index]


# --- mappers versus reality ---------------------------------------------------------


class MapperOffByCausalFrame(PlainToy):
    """Mappers report AR 0 as steady state (``4n``) while decoding yields ``1 + 4(n-1)``.

    Real bug: mappers written from the temporal ratio alone, forgetting the causal
    first frame; they are self-consistent, so only decoding reveals the lie and a
    pipeline's first pixel buffer is 3 frames too long. Caught by
    ``decoded_sizes_match_mappers``.
    """

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return super().get_output_temporal_size(1, input_temporal_size)

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return super().get_input_temporal_size(1, output_temporal_size)


class OutputCroppedByOnePixel(PlainToy):
    """Output one pixel short in height and width: ``latent * ratio - 1``.

    Real bug: a final convolution with ``padding=0`` ("valid") where "same" was meant,
    eating the border. Frame counts are right; the spatial size is not what
    ``spatial_compression_ratio`` promises. Caught by ``decoded_sizes_match_mappers``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return output[..., :-1, :-1]


class HeightWidthSwapped(PlainToy):
    """Output height and width swapped: ``[.., W*s, H*s]`` instead of ``[.., H*s, W*s]``.

    Real bug: a ``permute``/``reshape`` that mixes up the two spatial axes. Invisible
    with square latents (the spec therefore uses 4 x 6); with non-square ones the
    shape is wrong. Caught by ``decoded_sizes_match_mappers``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        return output.transpose(3, 4)


RATIO_HINTS = ("ratio",)
MAPPER_HINTS = ("get_input_temporal_size", "get_output_temporal_size", "mapper")

temporal_ratio_as_float = broken(
    TemporalRatioAsFloat, must_fail={"ratios_are_positive_constant_ints"}, hints=RATIO_HINTS
)
spatial_ratio_as_tuple = broken(
    SpatialRatioAsTuple, must_fail={"ratios_are_positive_constant_ints"}, hints=RATIO_HINTS
)
ratio_set_on_first_forward = broken(
    RatioSetOnFirstForward, must_fail={"ratios_are_positive_constant_ints"}, hints=RATIO_HINTS
)
input_mapper_ignores_causal_frame = broken(
    InputMapperIgnoresCausalFrame, must_fail={"temporal_mappers_round_trip"}, hints=MAPPER_HINTS
)
input_mapper_rounds_up = broken(
    InputMapperRoundsUp, must_fail={"temporal_mappers_round_trip"}, hints=("raise",)
)
negative_frames_for_zero_latents = broken(
    NegativeFramesForZeroLatents,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("n < 1", "negative"),
)
mapper_saturates_at_window = broken(
    MapperSaturatesAtWindow,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("increasing",),
)
second_step_treated_as_first = broken(
    SecondStepTreatedAsFirst,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("steady",),
)
first_step_padded_not_trimmed = broken(
    FirstStepPaddedNotTrimmed,
    must_fail={"temporal_mappers_monotone_and_steady"},
    hints=("steady",),
)
mapper_returns_float = broken(
    MapperReturnsFloat, must_fail={"temporal_mappers_round_trip"}, hints=("float",)
)
mapper_knows_only_first_steps = broken(
    MapperKnowsOnlyFirstSteps,
    must_fail={"temporal_mappers_round_trip"},
    hints=("KeyError",),
)
mapper_off_by_causal_frame = broken(
    MapperOffByCausalFrame, must_fail={"decoded_sizes_match_mappers"}, hints=MAPPER_HINTS
)
output_cropped_by_one_pixel = broken(
    OutputCroppedByOnePixel,
    must_fail={"decoded_sizes_match_mappers"},
    hints=("height", "width"),
)
height_width_swapped = broken(
    HeightWidthSwapped,
    must_fail={"decoded_sizes_match_mappers"},
    hints=("height", "width"),
    latent_size=(4, 6),
)

CASES = [
    temporal_ratio_as_float,
    spatial_ratio_as_tuple,
    ratio_set_on_first_forward,
    input_mapper_ignores_causal_frame,
    input_mapper_rounds_up,
    negative_frames_for_zero_latents,
    mapper_saturates_at_window,
    second_step_treated_as_first,
    first_step_padded_not_trimmed,
    mapper_returns_float,
    mapper_knows_only_first_steps,
    mapper_off_by_causal_frame,
    output_cropped_by_one_pixel,
    height_width_swapped,
]

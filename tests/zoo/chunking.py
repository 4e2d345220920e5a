"""Chunk seams that decode differently from the whole sequence.

A streaming decoder must give, chunk by chunk, the frames it gives for the whole latent
sequence at once: the cache has to carry exactly the history the causal convolutions
need across every seam, and the causal first frame happens once per rollout, not once
per chunk. Each decoder here is right within a chunk and wrong across a seam.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from conformance.bases import StreamingVideoDecoder
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig

from ._base import PlainToy, broken


class HistoryDroppedAtSeams(PlainToy):
    """The cache's history is thrown away at every call: each chunk starts from zeros.

    Real bug: the per-layer feature cache re-initialised inside ``forward`` (or a
    ``clear_cache()`` called per chunk), so every seam is a hard cut. Caught by
    ``chunked_decode_matches_full_decode`` and ``rollout_state_machine``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if cache is not None:
            cache.latent_history = cache.pixel_history = None
        return super().forward(input, autoregressive_index=autoregressive_index, cache=cache)


class CausalFramePerChunk(PlainToy):
    """Every chunk is decoded with the causal first-frame handling of AR 0.

    Real bug: the public Wan 2.1 streaming pattern, where first-chunk state is decided
    per call rather than per rollout, so each chunk's first latent frame yields one
    pixel frame instead of four; history is kept, the frame count and content are not
    what the mappers promise. Caught by ``decoded_sizes_match_mappers`` and
    ``chunked_decode_matches_full_decode``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        return super().forward(input, autoregressive_index=0, cache=cache)


class HistoryOneFrameShort(PlainToy):
    """The latent convolution keeps one frame of history where its kernel needs two.

    Real bug: ``history = x[:, :, -(kernel - 2):]`` (an off-by-one in the cache length,
    the missing frame padded with zeros). Chunks of several frames hide it except at
    their first output frame; one-frame chunks expose it every step. Caught by
    ``chunked_decode_matches_full_decode``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None and cache.latent_history is not None:
            kept = cache.latent_history[:, :, -1:]
            cache.latent_history = torch.cat([torch.zeros_like(kept), kept], dim=2)
        return output


class _HistoryCorruptedBetweenCalls(PlainToy):
    """Base of the bugs that damage the carried history after every call (``corrupt``)."""

    def corrupt(self, history: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        if cache is not None:
            for name in ("latent_history", "pixel_history"):
                history = getattr(cache, name)
                if history is not None:
                    setattr(cache, name, self.corrupt(history))
        return output


class HistoryStoredInBfloat16(_HistoryCorruptedBetweenCalls):
    """History is stored in bfloat16 to halve the cache, in an fp32 decoder.

    Real bug: a memory optimisation that quantises the carried activations; every
    seam then injects a rounding error of about 2**-9 relative, orders of magnitude
    above what fp32 reassociation explains. Caught by
    ``chunked_decode_matches_full_decode`` (the tolerance is derived from the declared
    fp32 dtype, so a bf16-sized error must not pass).
    """

    def corrupt(self, history: torch.Tensor) -> torch.Tensor:
        return history.to(torch.bfloat16).to(history.dtype)


class NormalisedOverTime(PlainToy):
    """Latents are standardised with statistics over the whole call (time included).

    Real bug: a GroupNorm/LayerNorm whose reduction spans the time axis, harmless in
    an offline decoder and chunk-dependent in a streaming one: every chunk is normalised
    by its own mean and variance. (Wan 2.1's decoder uses per-frame RMS norm for exactly
    this reason.) Caught by ``chunked_decode_matches_full_decode``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        mean = input.mean(dim=(2, 3, 4), keepdim=True)
        std = input.std(dim=(2, 3, 4), keepdim=True, unbiased=False) + 1e-5
        return super().forward(
            (input - mean) / std, autoregressive_index=autoregressive_index, cache=cache
        )


class LooksAheadWithinChunk(PlainToy):
    """Each frame also sees the mean of every frame in its call, later ones included.

    Real bug: temporal attention or pooling without a causal mask; within a chunk,
    frame t depends on frames after it, so the same frame decodes differently
    depending on where the chunk ends. Caught by ``chunked_decode_matches_full_decode``.
    """

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        context = input.mean(dim=2, keepdim=True)
        return super().forward(
            input + 0.5 * context, autoregressive_index=autoregressive_index, cache=cache
        )


@dataclass(kw_only=True)
class _RingCache(ToyDecoderCache):
    ring: torch.Tensor | None = None  # latent frame i lives in slot i % CAPACITY
    frames_written: int = 0


class RingBufferWrapsLate(PlainToy):
    """Latent history in an 8-slot ring buffer whose read forgets to wrap: wrong from latent frame 7.

    Real bug: a preallocated ring buffer (no allocation per step) written at
    ``i % capacity`` but read as the linear slice ``ring[end - 2 : end]`` with
    ``end = min(written, capacity)``. Exact until the write pointer first wraps, stale
    history ever after; short tests never get there. The ring starts with the two zero
    frames of causal padding, so it wraps after six latent frames. Caught by
    ``chunked_decode_matches_full_decode`` through its long rollout of one-frame steps
    (random chunk plans stay within 5-8 latent frames, too short to reach the wrap).
    """

    CAPACITY = 8

    def initialize_autoregressive_cache(self, **context: object) -> ToyDecoderCache:
        return _RingCache()

    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: ToyDecoderCache | None = None
    ) -> torch.Tensor:
        if not isinstance(cache, _RingCache):
            raise ValueError("a cache from initialize_autoregressive_cache() is required")
        if cache.ring is None:
            b, c, _, h, w = input.shape
            cache.ring = input.new_zeros(b, c, self.CAPACITY, h, w)
            cache.frames_written = self.LATENT_HISTORY  # the zero frames of causal padding
        end = min(cache.frames_written, self.CAPACITY)  # the bug: no wrap-around on read
        cache.latent_history = cache.ring[:, :, end - self.LATENT_HISTORY : end].clone()
        output = super().forward(input, autoregressive_index=autoregressive_index, cache=cache)
        for frame in input.unbind(2):
            cache.ring[:, :, cache.frames_written % self.CAPACITY] = frame
            cache.frames_written += 1
        return output


class HistoryRoundedToFloat8(_HistoryCorruptedBetweenCalls):
    """A bfloat16 decoder that stores its carried history in float8 (e4m3) to quarter the cache.

    Real bug: cache quantisation as a memory optimisation (float8 KV/feature caches),
    applied to the state carried across seams. Every seam injects a rounding error of
    about 2**-4 relative into the history; the elementwise bf16 tolerance (0.125) lets it
    through (kit finding F6). Its worst-frame RMS error, 3.6 to 4.8 bf16 ulps-of-one
    (u = 2**-8) over seeds, straddles the dtype-derived frame RMS bound (4.06 u), which
    allows that much noise to a correct 32-layer bf16 decoder. Its spec declares
    ``reference_dtype=float32`` (a float32 twin of the same weights): this shallow
    decoder's own rounding noise is 0.36-0.58 u, and its chunked decodes are 3.6-10.5
    times that from the twin's decode, over the bound of 3. Caught by
    ``chunked_decode_matches_full_decode``.
    """

    def corrupt(self, history: torch.Tensor) -> torch.Tensor:
        return history.to(torch.float8_e4m3fn).to(history.dtype)


class HistoryDecaysAtSeams(_HistoryCorruptedBetweenCalls):
    """A bfloat16 decoder whose carried history is scaled by 0.8 at every seam.

    Real bug: a state "decay" or a stale normalisation factor applied to the cache
    between calls (an EMA coefficient on the carried features, a scale meant for the
    latents applied to the history too). The frames that read the history are off by a
    few percent: about the elementwise bf16 tolerance (kit finding F6: caught at 1.24x),
    but 13 to 26 bf16 ulps-of-one in frame RMS, several times the frame RMS bound.
    Caught by ``chunked_decode_matches_full_decode``.
    """

    def corrupt(self, history: torch.Tensor) -> torch.Tensor:
        return history * 0.8


def widened(decoder_cls: type[PlainToy], **config: Any) -> Callable[[], StreamingVideoDecoder[Any]]:
    """A ``DecoderSpec.reference_factory`` for a bfloat16 toy-derived decoder: the same
    decoder (same seeded weights, rounded to bfloat16) converted to float32, its config
    too, so that it computes everything in float32."""

    def build() -> StreamingVideoDecoder[Any]:
        decoder = decoder_cls(ToyDecoderConfig(**{**config, "dtype": torch.bfloat16}))
        decoder = decoder.to(torch.float32)
        decoder.config = dataclasses.replace(decoder.config, dtype=torch.float32)
        return decoder

    return build


CHUNK_HINTS = ("chunk", "seam")

history_dropped_at_seams = broken(
    HistoryDroppedAtSeams,
    must_fail={"chunked_decode_matches_full_decode", "rollout_state_machine"},
    hints=CHUNK_HINTS,
)
causal_frame_per_chunk = broken(
    CausalFramePerChunk,
    must_fail={"decoded_sizes_match_mappers", "chunked_decode_matches_full_decode"},
    hints=CHUNK_HINTS,
)
history_one_frame_short = broken(
    HistoryOneFrameShort, must_fail={"chunked_decode_matches_full_decode"}, hints=CHUNK_HINTS
)
history_stored_in_bfloat16 = broken(
    HistoryStoredInBfloat16, must_fail={"chunked_decode_matches_full_decode"}, hints=CHUNK_HINTS
)
history_rounded_to_float8 = broken(
    HistoryRoundedToFloat8,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=CHUNK_HINTS,
    config={"dtype": torch.bfloat16},
    reference_dtype=torch.float32,
    reference_factory=widened(HistoryRoundedToFloat8),
)
history_decays_at_seams = broken(
    HistoryDecaysAtSeams,
    must_fail={"chunked_decode_matches_full_decode"},
    hints=CHUNK_HINTS,
    config={"dtype": torch.bfloat16},
)

normalised_over_time = broken(
    NormalisedOverTime, must_fail={"chunked_decode_matches_full_decode"}, hints=CHUNK_HINTS
)
looks_ahead_within_chunk = broken(
    LooksAheadWithinChunk, must_fail={"chunked_decode_matches_full_decode"}, hints=CHUNK_HINTS
)
ring_buffer_wraps_late = broken(
    RingBufferWrapsLate, must_fail={"chunked_decode_matches_full_decode"}, hints=CHUNK_HINTS
)

CASES = [
    history_dropped_at_seams,
    causal_frame_per_chunk,
    history_one_frame_short,
    history_stored_in_bfloat16,
    history_rounded_to_float8,
    history_decays_at_seams,
    normalised_over_time,
    looks_ahead_within_chunk,
    ring_buffer_wraps_late,
]

"""The Wan VAE (2.1 or 2.2) as a :class:`StreamingVideoDecoder`: size mappers, input checks, cache.

Streaming pipelines hand over latents ``[B, T, C, h, w]`` (C = 16 for Wan 2.1, 48 for
Wan 2.2) chunk by chunk; this wraps
:class:`~reference_decoders.wan.model.WanVAEDecoderNetwork` so that any chunk plan
gives the frames that decoding the rollout one latent frame at a time gives.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from conformance.bases import StreamingDecoderCache, StreamingVideoDecoder
from reference_decoders.wan.checkpoint import load_decoder_weights
from reference_decoders.wan.config import WanVAEDecoderConfig
from reference_decoders.wan.model import StreamState, WanVAEDecoderNetwork

if TYPE_CHECKING:
    from reference_decoders.wan.fast.network import FastWanNetwork

__all__ = ["WanVAEDecoder", "WanVAEDecoderCache"]


@dataclass(kw_only=True)
class WanVAEDecoderCache(StreamingDecoderCache):
    """One rollout's state.

    Attributes:
        conv_history: per causal convolution of the network (by slot), the last two
            frames of its input, or ``None`` before it has seen any (zero padding).
            Bounded: two frames per convolution, whatever the rollout length. Entries
            are replaced after each step, never modified in place.
        next_index: the autoregressive index the next call must pass. Index 0 is the
            first chunk, whose first latent frame is the causal first frame.
        batch_size, latent_size: fixed by the first chunk; later chunks must match.
    """

    conv_history: list[torch.Tensor | None] = field(default_factory=list)
    next_index: int = 0
    batch_size: int | None = None
    latent_size: tuple[int, int] | None = None

    @property
    def first_chunk_pending(self) -> bool:
        """True until the rollout's first chunk (with its causal first frame) is decoded."""
        return self.next_index == 0


class WanVAEDecoder(StreamingVideoDecoder[WanVAEDecoderCache]):
    """Wan VAE decoder: normalized latents ``[B, T, C, h, w]`` to ``[B, T', 3, s*h, s*w]``.

    Wan 2.1 (:class:`WanVAEDecoderConfig`): C = 16, s = 8; Wan 2.2
    (:class:`~reference_decoders.wan.config.Wan22VAEDecoderConfig`): C = 48, s = 16.
    ``T' = 1 + 4(T - 1)`` at autoregressive index 0 and ``4T`` afterwards; pixels are in
    [-1, 1]. Decoding is inference only (no autograd graph is kept, so the cache stays
    small over long rollouts). Inputs are moved to the decoder's device and dtype.
    """

    def __init__(self, config: WanVAEDecoderConfig) -> None:
        super().__init__(config)
        self.config: WanVAEDecoderConfig = config
        device, dtype = config.resolved_device(), config.resolved_dtype()
        # Built on the CPU in float32 under a private RNG: the same seed gives the same
        # weights on every device and leaves the caller's random state alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            network = WanVAEDecoderNetwork(config)
        self.checkpoint_layout: str | None = None
        if config.checkpoint_path is not None:
            self.checkpoint_layout = load_decoder_weights(
                network,
                config.checkpoint_path,
                config.num_res_blocks,
                residual_up_stages=config.residual_up_stages,
            )
        self.network = network.to(device=device, dtype=dtype)
        self.network.eval()
        self._fast = _fast_network(config, self.network)

    @property
    def uses_fast_path(self) -> bool:
        """Whether chunks are decoded by :mod:`reference_decoders.wan.fast` (else eagerly)."""
        return self._fast is not None

    @property
    def device(self) -> torch.device:
        return self.network.conv_in.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.network.conv_in.weight.dtype

    @property
    def spatial_compression_ratio(self) -> int:
        return self.config.spatial_compression_ratio

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_compression_ratio

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        index = _check_index_value(autoregressive_index)
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        ratio = self.temporal_compression_ratio
        if index == 0:
            return 1 + ratio * (input_temporal_size - 1)
        return ratio * input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        index = _check_index_value(autoregressive_index)
        ratio = self.temporal_compression_ratio
        if index == 0:
            achievable = output_temporal_size >= 1 and (output_temporal_size - 1) % ratio == 0
            latent_frames = (output_temporal_size - 1) // ratio + 1
            form = f"1 + {ratio}*(n - 1)"
        else:
            achievable = output_temporal_size >= ratio and output_temporal_size % ratio == 0
            latent_frames = output_temporal_size // ratio
            form = f"{ratio}*n"
        if not achievable:
            raise ValueError(
                f"{output_temporal_size} pixel frames cannot be produced at autoregressive "
                f"index {autoregressive_index}: this step yields {form} frames for n >= 1 "
                "latent frames"
            )
        return latent_frames

    def initialize_autoregressive_cache(self, **context: Any) -> WanVAEDecoderCache:
        """A fresh rollout. ``context`` is accepted and unused: sizes are fixed by step 0."""
        return WanVAEDecoderCache(conv_history=[None] * self.network.num_history_slots)

    @torch.no_grad()
    def forward(
        self,
        input: torch.Tensor,
        autoregressive_index: int = 0,
        cache: WanVAEDecoderCache | None = None,
    ) -> torch.Tensor:
        """Decode one chunk of latents ``[B, T, C, h, w]`` to pixels ``[B, T', 3, H, W]``.

        Without a cache, only index 0 is allowed and the chunk is decoded as a whole
        rollout of its own.
        """
        if cache is None:
            if autoregressive_index != 0:
                raise ValueError(
                    f"autoregressive_index {autoregressive_index} needs the rollout's cache; "
                    "pass cache=decoder.initialize_autoregressive_cache() at index 0 and "
                    "reuse it"
                )
            cache = self.initialize_autoregressive_cache()
        index = self._check_call(input, autoregressive_index, cache)

        latents = input.to(device=self.device, dtype=self.dtype)
        if self._fast is not None:
            video, history = self._fast.decode(latents, list(cache.conv_history), index == 0)
        else:
            state = StreamState(history=list(cache.conv_history), first_chunk=index == 0)
            video = self.network(latents.transpose(1, 2), state).transpose(1, 2).contiguous()
            history = state.history

        # Commit only after the network succeeded, so a failed call leaves the cache usable.
        cache.conv_history = history
        cache.next_index = index + 1
        cache.batch_size = input.shape[0]
        cache.latent_size = (input.shape[3], input.shape[4])
        return video

    def _check_call(
        self, input: Any, autoregressive_index: Any, cache: WanVAEDecoderCache
    ) -> int:
        """The index, or an error saying what was expected if this call cannot continue
        ``cache``'s rollout."""
        channels = self.config.latent_channels
        expected = f"normalized latents shaped [B, T, {channels}, h, w]"
        if not isinstance(cache, WanVAEDecoderCache):
            raise TypeError(
                f"cache must be a WanVAEDecoderCache from initialize_autoregressive_cache(), "
                f"got {type(cache).__name__}"
            )
        if len(cache.conv_history) != self.network.num_history_slots:
            raise ValueError(
                f"cache has {len(cache.conv_history)} history slots, this decoder has "
                f"{self.network.num_history_slots}: it was made by a differently configured decoder"
            )
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"expected a tensor of {expected}, got {type(input).__name__}")
        shape = tuple(input.shape)
        if input.dim() != 5:
            raise ValueError(f"expected {expected} (5 dims), got shape {shape} ({input.dim()} dims)")
        if shape[2] != channels:
            hint = ""
            if shape[1] == channels:
                hint = "; this looks like [B, C, T, h, w]: transpose dims 1 and 2"
            raise ValueError(f"expected {expected}, got {shape[2]} channels in shape {shape}{hint}")
        if not input.is_floating_point():
            raise ValueError(f"expected floating-point latents, got dtype {input.dtype}")
        if min(shape) < 1:
            raise ValueError(f"expected {expected} with every size >= 1, got shape {shape}")

        index = _check_index_value(autoregressive_index)
        if index != cache.next_index:
            raise ValueError(
                f"expected autoregressive_index {cache.next_index} (the next step of this "
                f"rollout), got {autoregressive_index}; indices run 0, 1, 2, ... per rollout and "
                "a new rollout needs a new cache"
            )
        if cache.latent_size is not None and cache.latent_size != shape[3:]:
            raise ValueError(
                f"expected latent spatial size {cache.latent_size} (fixed by this rollout's first "
                f"chunk), got {shape[3:]}; start a new rollout to change resolution"
            )
        if cache.batch_size is not None and cache.batch_size != shape[0]:
            raise ValueError(
                f"expected batch size {cache.batch_size} (fixed by this rollout's first chunk), "
                f"got {shape[0]}"
            )
        return index


def _fast_network(
    config: WanVAEDecoderConfig, network: WanVAEDecoderNetwork
) -> FastWanNetwork | None:
    """The fast executor if ``config.fast_path`` asks for it (or allows it and it can run)."""
    if config.fast_path is False:
        return None
    from reference_decoders.wan.fast import fast_path_support

    reason = fast_path_support(config.resolved_device(), config.resolved_dtype())
    if reason is not None:
        if config.fast_path:
            raise ValueError(f"fast_path=True, but the fast path cannot run here: {reason}")
        return None
    from reference_decoders.wan.fast.network import FastWanNetwork

    return FastWanNetwork(network, config.tile_latent_frames)


def _check_index_value(autoregressive_index: Any) -> int:
    """The index as an int; ``TypeError`` for non-integers, ``ValueError`` if negative."""
    try:
        if isinstance(autoregressive_index, bool):
            raise TypeError
        index = operator.index(autoregressive_index)
    except TypeError:
        raise TypeError(
            f"autoregressive_index must be an int, got {type(autoregressive_index).__name__}"
        ) from None
    if index < 0:
        raise ValueError(f"autoregressive_index must be >= 0, got {index}")
    return index

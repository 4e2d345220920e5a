"""Streaming decoder interfaces.

Autoregressive video models produce latents chunk by chunk; a streaming decoder turns
each chunk into pixels as soon as it exists, carrying whatever it needs between chunks
(causal convolution history, first-frame state) in a per-rollout cache.

- :class:`StreamingDecoder` is the stateful base: ``forward(input, autoregressive_index,
  cache)`` plus a per-rollout :class:`StreamingDecoderCache`. A stateless decoder is a
  special case: return an empty cache and ignore the index and cache.
- :class:`StreamingVideoDecoder` adds what every latent-to-pixel video decoder must
  state: spatial and temporal compression ratios, and temporal size mappers that know
  the autoregressive step (step 0 usually yields fewer frames, because of the causal
  first frame).

Pipelines call ``decoder(input=x, autoregressive_index=i, cache=c)`` with keywords. The
index runs 0, 1, 2, ... within one rollout; a new rollout starts from a new cache made
by :meth:`StreamingDecoder.initialize_autoregressive_cache`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic

import torch.nn as nn
from typing_extensions import TypeVar

# Relative, so that this file works under either name the kit installs it as: the public
# ``flashdreams`` (a source checkout, or the flashdreams-interface distribution) or the
# kit's private ``conformance._flashdreams`` (see conformance.bases).
from ..config import InstantiateConfig

__all__ = [
    "DecoderConfig",
    "StreamingDecoder",
    "StreamingDecoderCache",
    "StreamingDecoderCacheT",
    "StreamingVideoDecoder",
]


@dataclass(kw_only=True)
class StreamingDecoderCache:
    """State of one rollout, carried from one autoregressive step to the next.

    Empty here; a decoder subclasses it to hold its own fields (for example the last
    frames of every causal convolution). One cache belongs to exactly one rollout.
    """


StreamingDecoderCacheT = TypeVar(
    "StreamingDecoderCacheT",
    bound=StreamingDecoderCache,
    default=StreamingDecoderCache,
)


class StreamingDecoder(ABC, nn.Module, Generic[StreamingDecoderCacheT]):
    """A stateful decoder, generic over its per-rollout cache type.

    The base does not pin ``forward``'s signature, but a decoder driven by a streaming
    pipeline must accept ``forward(self, input, autoregressive_index=0, cache=None)``
    and is called with those names as keywords.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def initialize_autoregressive_cache(self, **context: Any) -> StreamingDecoderCacheT:
        """Return a fresh cache for a new rollout.

        ``context`` carries whatever the pipeline knows at rollout start (batch size,
        resolution, ...); subclasses return their concrete cache type.
        """


class StreamingVideoDecoder(StreamingDecoder[StreamingDecoderCacheT]):
    """A streaming decoder from latent video to pixel video.

    On top of :class:`StreamingDecoder` it states the contracts a pipeline needs to size
    its tensors without knowing the decoder's internals:

    - the spatial and temporal compression ratios between the pixel and latent grids,
      constants of the architecture;
    - temporal size mappers between latent and pixel frame counts for a given
      autoregressive step, which hide causal first-frame padding, sliding windows and
      the like.

    Spatial sizes scale by ``spatial_compression_ratio`` both ways, so only the temporal
    size needs a mapper. Step 0 typically yields fewer pixel frames per latent frame
    than later steps, because the first frame is causal-padded.
    """

    @property
    @abstractmethod
    def spatial_compression_ratio(self) -> int:
        """Pixel side divided by latent side; the same at every step."""

    @property
    @abstractmethod
    def temporal_compression_ratio(self) -> int:
        """Pixel frames per latent frame in steady state (autoregressive index >= 1).

        Step 0 may yield fewer pixel frames per latent frame because of causal
        first-frame padding; that asymmetry belongs to :meth:`get_output_temporal_size`
        and :meth:`get_input_temporal_size`.
        """

    @abstractmethod
    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        """Number of pixel frames produced from ``input_temporal_size`` latent frames.

        Args:
            autoregressive_index: the step within the rollout, from 0.
            input_temporal_size: latent frames fed at this step.

        Returns:
            Pixel frames emitted at this step.
        """

    @abstractmethod
    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        """Number of latent frames needed to produce ``output_temporal_size`` pixel frames.

        The inverse of :meth:`get_output_temporal_size`. Implementations should reject
        (assert or raise) a pixel count that this step cannot produce, for example one
        that is not divisible by the ratio once the causal padding is taken off.

        Args:
            autoregressive_index: the step within the rollout, from 0.
            output_temporal_size: pixel frames wanted.

        Returns:
            Latent frames to feed at this step.
        """


@dataclass(kw_only=True)
class DecoderConfig(InstantiateConfig["StreamingDecoder[Any]"]):
    """Base of every decoder config; ``setup()`` builds the decoder from it."""

    # The abstract base is only the category default; concrete configs name their decoder.
    _target: type[StreamingDecoder[Any]] = field(
        default_factory=lambda: StreamingDecoder  # type: ignore[type-abstract]
    )


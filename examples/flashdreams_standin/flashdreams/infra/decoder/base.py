"""The stand-in framework's copy of the streaming decoder interface.

Same names and members as the kit's ``flashdreams.infra.decoder.base``, written
separately, so its classes are other objects than the kit's: exactly the situation of
a real framework that ships its own copy.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Generic

import torch.nn as nn
from typing_extensions import TypeVar

from flashdreams.infra.config import InstantiateConfig


@dataclass(kw_only=True)
class StreamingDecoderCache:
    """Per-rollout state; decoders subclass it to add their fields."""


StreamingDecoderCacheT = TypeVar(
    "StreamingDecoderCacheT", bound=StreamingDecoderCache, default=StreamingDecoderCache
)


class StreamingDecoder(ABC, nn.Module, Generic[StreamingDecoderCacheT]):
    """Stateful decoder; called as ``forward(input, autoregressive_index=0, cache=None)``."""

    def __init__(self, config: "DecoderConfig") -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def initialize_autoregressive_cache(self, **context: Any) -> StreamingDecoderCacheT:
        """A fresh cache for one rollout."""


class StreamingVideoDecoder(StreamingDecoder[StreamingDecoderCacheT]):
    """Latent video to pixel video, with compression ratios and temporal size mappers."""

    @property
    @abstractmethod
    def spatial_compression_ratio(self) -> int:
        """Pixel side over latent side."""

    @property
    @abstractmethod
    def temporal_compression_ratio(self) -> int:
        """Pixel frames per latent frame at steps >= 1."""

    @abstractmethod
    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        """Pixel frames produced by ``input_temporal_size`` latent frames at this step."""

    @abstractmethod
    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        """Latent frames needed for ``output_temporal_size`` pixel frames at this step."""


@dataclass(kw_only=True)
class DecoderConfig(InstantiateConfig):
    """Base of decoder configs."""

    _target: type = field(default_factory=lambda: StreamingDecoder)

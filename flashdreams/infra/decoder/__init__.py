"""Streaming decoder interfaces (re-exported from :mod:`flashdreams.infra.decoder.base`)."""

from .base import (
    DecoderConfig,
    StreamingDecoder,
    StreamingDecoderCache,
    StreamingDecoderCacheT,
    StreamingVideoDecoder,
)

__all__ = [
    "DecoderConfig",
    "StreamingDecoder",
    "StreamingDecoderCache",
    "StreamingDecoderCacheT",
    "StreamingVideoDecoder",
]

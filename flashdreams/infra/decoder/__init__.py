"""Streaming decoder interfaces (re-exported from :mod:`flashdreams.infra.decoder.base`)."""

from flashdreams.infra.decoder.base import (
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

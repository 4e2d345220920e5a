"""Decoder bases of the stand-in framework (its own copy of the interface)."""

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

"""acme-video: an example streaming video decoder package (see README.md)."""

from acme_video.decoder import AcmeCache, AcmeCausalDecoder, AcmeDecoderConfig, AcmeFastDecoder

__all__ = ["AcmeCache", "AcmeCausalDecoder", "AcmeDecoderConfig", "AcmeFastDecoder"]

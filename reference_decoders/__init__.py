"""Decoders the conformance kit ships and is proven on.

- :mod:`reference_decoders.toy`: a tiny causal decoder, fast on CPU, with the same
  streaming shape as real video VAEs (causal first frame, temporal history).
- :mod:`reference_decoders.wan`: the Wan 2.1 video VAE decoder, streaming and exact.
"""

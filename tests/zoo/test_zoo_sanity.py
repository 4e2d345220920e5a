"""The zoo's own footing, checked without the kit.

Every broken toy variant claims to be "the correct toy plus one bug"; that claim rests
on :class:`PlainToy` decoding exactly like the bundled toy. Checked here directly
(fp32, CPU, bitwise: same weights, same ops), so a kit verdict on a zoo decoder can
be trusted to be about the injected bug.
"""

from __future__ import annotations

import torch

from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder

from ._base import PlainToy


def test_plain_toy_decodes_exactly_like_the_toy() -> None:
    config = ToyDecoderConfig()
    toy, plain = ToyVideoDecoder(config), PlainToy(config)
    latents = torch.randn(1, config.latent_channels, 6, 4, 4, generator=torch.Generator().manual_seed(0))
    toy_cache, plain_cache = toy.initialize_autoregressive_cache(), plain.initialize_autoregressive_cache()
    start = 0
    for index, frames in enumerate((3, 1, 2)):
        chunk = latents[:, :, start : start + frames]
        start += frames
        expected = toy(input=chunk, autoregressive_index=index, cache=toy_cache)
        actual = plain(input=chunk, autoregressive_index=index, cache=plain_cache)
        assert torch.equal(actual, expected)

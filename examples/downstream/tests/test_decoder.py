"""The package's own unit tests: they live next to the conformance tests."""

import pytest
import torch

from acme_video import AcmeCausalDecoder, AcmeDecoderConfig


def test_step_zero_keeps_one_frame_of_the_first_latent() -> None:
    decoder = AcmeDecoderConfig().setup()
    cache = decoder.initialize_autoregressive_cache()
    out = decoder(input=torch.zeros(1, 3, 4, 2, 2), autoregressive_index=0, cache=cache)
    assert isinstance(decoder, AcmeCausalDecoder)
    assert out.shape == (1, 1 + 2 * 2, 3, 4, 4)


def test_input_mapper_rejects_sizes_it_cannot_produce() -> None:
    decoder = AcmeDecoderConfig().setup()
    with pytest.raises(ValueError, match="cannot be produced"):
        decoder.get_input_temporal_size(1, 3)

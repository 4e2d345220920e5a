"""The conformance specs this package hands the kit (reference_decoders.wan.specs).

The kit's own proof that the small spec certifies lives in tests/zoo
(``test_correct_decoder_is_certified[wan-small-cpu]``); the full-size CUDA run is in
``test_cuda.py``.
"""

from __future__ import annotations

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder, specs

conformance = pytest.importorskip("conformance")


def test_small_cpu_spec_builds_the_small_float32_decoder() -> None:
    spec = specs.small_cpu()
    assert isinstance(spec, conformance.DecoderSpec)
    assert (spec.layout, spec.resolved_output_layout) == ("BTCHW", "BTCHW")
    assert (spec.latent_channels, spec.output_channels) == (16, 3)
    assert spec.dtype == torch.float32 and spec.torch_device.type == "cpu"
    decoder = spec.factory()
    assert isinstance(decoder, WanVAEDecoder)
    assert decoder.config.base_dim < 96 and decoder.config.checkpoint_path is None
    assert decoder.dtype == torch.float32 and decoder.device.type == "cpu"
    h, w = spec.latent_size
    latents = torch.randn(spec.batch_size, 6, 16, h, w)
    assert decoder(input=latents).shape == (spec.batch_size, 21, 3, 8 * h, 8 * w)
    # Each call builds a fresh decoder from a fresh config.
    assert spec.factory() is not decoder and specs.small_cpu_config() is not specs.small_cpu_config()


def test_full_cuda_spec_describes_the_published_decoder_in_bf16() -> None:
    spec = specs.full_cuda()  # building the spec does not touch the GPU
    assert spec.dtype == torch.bfloat16 and spec.torch_device.type == "cuda"
    assert spec.layout == "BTCHW" and spec.latent_channels == 16


def test_default_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert specs.default().name == specs.small_cpu().name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert specs.default().name == specs.full_cuda().name

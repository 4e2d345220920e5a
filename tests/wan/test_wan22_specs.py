"""The kit's Wan 2.2 specs (reference_decoders.wan.specs.wan22_*), and the kit certifying
the small one on the CPU (the full-size CUDA certification is in ``test_wan22_cuda``).
"""

from __future__ import annotations

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder, specs

conformance = pytest.importorskip("conformance")


def test_small_cpu_spec_builds_the_small_float32_wan22_decoder() -> None:
    spec = specs.wan22_small_cpu()
    assert isinstance(spec, conformance.DecoderSpec)
    assert (spec.layout, spec.resolved_output_layout) == ("BTCHW", "BTCHW")
    assert (spec.latent_channels, spec.output_channels) == (48, 3)
    assert spec.dtype == torch.float32 and spec.torch_device.type == "cpu"
    decoder = spec.factory()
    assert isinstance(decoder, WanVAEDecoder)
    assert decoder.config.residual_up_stages and decoder.config.patch_size == 2
    assert decoder.config.base_dim < 256 and decoder.config.checkpoint_path is None
    h, w = spec.latent_size
    latents = torch.randn(spec.batch_size, 3, 48, h, w)
    assert decoder(input=latents).shape == (spec.batch_size, 9, 3, 16 * h, 16 * w)


def test_full_cuda_spec_describes_the_published_wan22_decoder_in_bf16() -> None:
    spec = specs.wan22_full_cuda()  # building the spec does not touch the GPU
    assert spec.dtype == torch.bfloat16 and spec.torch_device.type == "cuda"
    assert spec.layout == "BTCHW" and spec.latent_channels == 48


def test_small_cpu_spec_is_certified_by_the_kit() -> None:
    """Every check passes (batch independence is skipped: the spec's batch is one) in
    the quick profile; the default profile's CLI run is in the README."""
    certification = conformance.certify(specs.wan22_small_cpu(), profile="quick", seed=20240611)
    failed = [
        f"{r.check_id}: {r.status}: {r.message}"
        for r in certification.results
        if r.status not in ("passed", "skipped")
    ]
    assert certification.certified, "\n".join(failed)
    skipped = {r.check_id for r in certification.results if r.status == "skipped"}
    assert skipped == {"batch_elements_are_independent"}


@pytest.mark.cuda
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_full_size_bf16_is_certified_by_the_kit_on_cuda() -> None:
    certification = conformance.certify(specs.wan22_full_cuda(), profile="quick", seed=0)
    failed = [f"{r.check_id}: {r.status}: {r.message}" for r in certification.results if r.status == "failed"]
    assert certification.certified, "\n".join(failed)

"""The conformance specs this package hands the kit (reference_decoders.wan.specs), Wan 2.1
and Wan 2.2, and the kit certifying the small Wan 2.2 one on the CPU.

The kit's own proof that the small Wan 2.1 spec certifies lives in tests/zoo
(``test_correct_decoder_is_certified[wan-small-cpu]``); the full-size CUDA runs are the
``cuda`` + ``slow`` tests here and in ``test_cuda.py`` (and ``python -m conformance
certify reference_decoders.wan.specs:full_cuda`` / ``:wan22_full_cuda``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder, specs

from .helpers import VERSIONS, WAN22, Version

conformance = pytest.importorskip("conformance")

SMALL_SPECS: dict[str, Callable[[], Any]] = {"wan2.1": specs.small_cpu, "wan2.2": specs.wan22_small_cpu}
FULL_SPECS: dict[str, Callable[[], Any]] = {"wan2.1": specs.full_cuda, "wan2.2": specs.wan22_full_cuda}


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_small_cpu_spec_builds_the_small_float32_decoder(version: Version) -> None:
    spec = SMALL_SPECS[version.name]()
    assert isinstance(spec, conformance.DecoderSpec)
    assert (spec.layout, spec.resolved_output_layout) == ("BTCHW", "BTCHW")
    assert (spec.latent_channels, spec.output_channels) == (version.latent_channels, 3)
    assert spec.dtype == torch.float32 and spec.torch_device.type == "cpu"
    decoder = spec.factory()
    assert isinstance(decoder, WanVAEDecoder)
    assert isinstance(decoder.config, version.config)
    published = version.config()
    assert decoder.config.base_dim < published.base_dim and decoder.config.checkpoint_path is None
    assert decoder.config.residual_up_stages == (version is WAN22)
    assert decoder.config.patch_size == (2 if version is WAN22 else 1)
    assert decoder.dtype == torch.float32 and decoder.device.type == "cpu"
    h, w = spec.latent_size
    s = version.spatial_ratio
    frames = 6 if version is not WAN22 else 3
    latents = torch.randn(spec.batch_size, frames, version.latent_channels, h, w)
    assert decoder(input=latents).shape == (spec.batch_size, 1 + 4 * (frames - 1), 3, s * h, s * w)
    # Each call builds a fresh decoder from a fresh config.
    assert spec.factory() is not decoder
    config = specs.small_cpu_config if version is not WAN22 else specs.wan22_small_cpu_config
    assert config() is not config()


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_full_cuda_spec_describes_the_published_decoder_in_bf16(version: Version) -> None:
    spec = FULL_SPECS[version.name]()  # building the spec does not touch the GPU
    assert spec.dtype == torch.bfloat16 and spec.torch_device.type == "cuda"
    assert spec.layout == "BTCHW" and spec.latent_channels == version.latent_channels


def test_default_follows_cuda_availability(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert specs.default().name == specs.small_cpu().name
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert specs.default().name == specs.full_cuda().name


def test_small_wan22_cpu_spec_is_certified_by_the_kit() -> None:
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
def test_full_size_wan22_bf16_is_certified_by_the_kit_on_cuda() -> None:
    """(Wan 2.1's full-size certification is in ``test_cuda.py``.)"""
    certification = conformance.certify(specs.wan22_full_cuda(), profile="quick", seed=0)
    failed = [f"{r.check_id}: {r.status}: {r.message}" for r in certification.results if r.status == "failed"]
    assert certification.certified, "\n".join(failed)

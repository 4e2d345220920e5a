"""Fixtures for the Wan decoder tests: diffusers reference models and their checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from reference_decoders.wan import Wan22VAEDecoderConfig, WanVAEDecoder, WanVAEDecoderConfig

from reference_decoders.wan.random_weights import randomize_decoder_weights_

from .helpers import (
    SMALL,
    SMALL_PUBLISHED_BLOCKS,
    WAN22_SMALL,
    WAN22_SMALL_PUBLISHED_BLOCKS,
    diffusers_wan22_architecture,
    to_official_layout,
    to_official_wan22_layout,
)


@dataclass
class ParityCase:
    """A diffusers ``AutoencoderKLWan`` with seeded random weights, saved in both layouts."""

    architecture: dict[str, Any]  # our config's fields
    vae: Any
    diffusers_path: Path  # diffusers layout, safetensors
    official_path: Path  # official Wan2.1_VAE.pth / Wan2.2_VAE.pth layout, torch.save zip
    config_class: type[WanVAEDecoderConfig] = WanVAEDecoderConfig

    def decoder(self, layout: str, dtype: torch.dtype = torch.float32) -> WanVAEDecoder:
        path = self.diffusers_path if layout == "diffusers" else self.official_path
        config = self.config_class(
            checkpoint_path=str(path), device="cpu", dtype=dtype, **self.architecture
        )
        return config.setup()


def _make_case(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    architecture: dict[str, Any],
    seed: int,
    wan22: bool = False,
) -> ParityCase:
    """Seeded diffusers VAE, saved in both layouts. ``architecture`` is our config's
    fields; for ``wan22`` they are fields of :class:`Wan22VAEDecoderConfig`."""
    diffusers = pytest.importorskip("diffusers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    theirs = diffusers_wan22_architecture(**architecture) if wan22 else architecture
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # diffusers' own init of the (ignored) encoder weights
        vae = diffusers.AutoencoderKLWan(**theirs).eval()
    randomize_decoder_weights_(vae, seed)
    state = {key: value.detach().clone().contiguous() for key, value in vae.state_dict().items()}

    folder = tmp_path_factory.mktemp(name)
    diffusers_path = folder / "diffusion_pytorch_model.safetensors"
    safetensors_torch.save_file(state, str(diffusers_path))
    blocks = architecture.get("num_res_blocks", 2)
    if wan22:
        official_path = folder / "Wan2.2_VAE.pth"
        torch.save(to_official_wan22_layout(state, blocks), official_path)
    else:
        official_path = folder / "Wan2.1_VAE.pth"
        torch.save(to_official_layout(state, blocks), official_path)
    del state
    config_class = Wan22VAEDecoderConfig if wan22 else WanVAEDecoderConfig
    return ParityCase(architecture, vae, diffusers_path, official_path, config_class)


@pytest.fixture(scope="session")
def small_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _make_case(tmp_path_factory, "small", SMALL, seed=1)


@pytest.fixture(scope="session")
def small_published_blocks_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _make_case(tmp_path_factory, "small3", SMALL_PUBLISHED_BLOCKS, seed=2)


@pytest.fixture(scope="session")
def full_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    """The published architecture (base width 96, ~73M decoder parameters)."""
    return _make_case(tmp_path_factory, "full", {}, seed=3)


@pytest.fixture(scope="session")
def wan22_small_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _make_case(tmp_path_factory, "wan22_small", WAN22_SMALL, seed=4, wan22=True)


@pytest.fixture(scope="session")
def wan22_small_published_blocks_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _make_case(
        tmp_path_factory, "wan22_small3", WAN22_SMALL_PUBLISHED_BLOCKS, seed=5, wan22=True
    )


@pytest.fixture
def float64_diffusers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let diffusers' Wan upsampler run in float64.

    ``WanUpsample`` computes its nearest-neighbour upsample in float32 and casts back, a
    workaround for old bf16 kernels. For float32 and bfloat16 that round trip is exact
    (nearest only copies values); for float64 it would round every activation to float32
    and hide exactness under float32 noise. Plain ``nn.Upsample`` is the same operation
    without the cast.
    """
    module = pytest.importorskip("diffusers.models.autoencoders.autoencoder_kl_wan")
    monkeypatch.setattr(module.WanUpsample, "forward", torch.nn.Upsample.forward)


@pytest.fixture
def no_tf32() -> Iterator[None]:
    """Keep float32 convolutions and matmuls in true float32 (no TF32) for this test.

    Set and restored by hand: ``monkeypatch.setattr`` cannot patch these flags on newer
    pytest, which reads the original without ``__getattr__`` (the flags live behind
    it), finds nothing, and then fails deleting the attribute on undo.
    """
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved

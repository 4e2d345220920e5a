"""Fixtures for the Wan decoder tests: diffusers reference models and their checkpoints."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder, WanVAEDecoderConfig
from reference_decoders.wan.random_weights import diffusers_vae

from .helpers import VERSIONS, WAN21, WAN22, Version


@dataclass
class ParityCase:
    """A diffusers ``AutoencoderKLWan`` with seeded random weights, saved in both layouts."""

    version: Version
    architecture: dict[str, Any]  # our config's fields
    vae: Any
    diffusers_path: Path  # diffusers layout, safetensors
    official_path: Path  # official Wan2.1_VAE.pth / Wan2.2_VAE.pth layout, torch.save zip

    @property
    def config_class(self) -> type[WanVAEDecoderConfig]:
        return self.version.config

    def decoder(self, layout: str, dtype: torch.dtype = torch.float32) -> WanVAEDecoder:
        path = self.diffusers_path if layout == "diffusers" else self.official_path
        config = self.version.config(
            checkpoint_path=str(path), device="cpu", dtype=dtype, **self.architecture
        )
        return config.setup()


def make_case(
    tmp_path_factory: pytest.TempPathFactory,
    version: Version,
    name: str,
    architecture: dict[str, Any],
    seed: int,
) -> ParityCase:
    """Seeded diffusers VAE (the builder the benchmark uses), saved in both layouts.
    ``architecture`` is our config's fields."""
    pytest.importorskip("diffusers")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    vae = diffusers_vae(version.name, seed=seed, encoder_base_dim=8, **architecture)
    state = {key: value.detach().clone().contiguous() for key, value in vae.state_dict().items()}

    folder = tmp_path_factory.mktemp(name)
    diffusers_path = folder / "diffusion_pytorch_model.safetensors"
    safetensors_torch.save_file(state, str(diffusers_path))
    official_path = folder / ("Wan2.2_VAE.pth" if version is WAN22 else "Wan2.1_VAE.pth")
    torch.save(version.to_official(state, architecture.get("num_res_blocks", 2)), official_path)
    del state
    return ParityCase(version, architecture, vae, diffusers_path, official_path)


_CASES: dict[tuple[str, str], ParityCase] = {}


def _case(tmp_path_factory: pytest.TempPathFactory, version: Version, kind: str) -> ParityCase:
    """One case per (version, kind) for the whole session, shared by every fixture."""
    key = (version.name, kind)
    if key not in _CASES:
        architecture = {"small": version.small, "published_blocks": version.published_blocks}[kind]
        seed = {("wan2.1", "small"): 1, ("wan2.1", "published_blocks"): 2,
                ("wan2.2", "small"): 4, ("wan2.2", "published_blocks"): 5}[key]  # fmt: skip
        _CASES[key] = make_case(tmp_path_factory, version, f"{version.name}_{kind}", architecture, seed)
    return _CASES[key]


@pytest.fixture(scope="session", params=VERSIONS, ids=str)
def small_case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    """The small decoder of each version (a test using it runs for both)."""
    return _case(tmp_path_factory, request.param, "small")


@pytest.fixture(scope="session", params=VERSIONS, ids=str)
def published_blocks_case(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> ParityCase:
    """The small decoder with the published three residual blocks per stage, each version."""
    return _case(tmp_path_factory, request.param, "published_blocks")


@pytest.fixture(scope="session")
def wan21_small_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _case(tmp_path_factory, WAN21, "small")


@pytest.fixture(scope="session")
def wan21_published_blocks_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _case(tmp_path_factory, WAN21, "published_blocks")


@pytest.fixture(scope="session")
def wan22_small_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    return _case(tmp_path_factory, WAN22, "small")


@pytest.fixture(scope="session")
def full_case(tmp_path_factory: pytest.TempPathFactory) -> ParityCase:
    """The published Wan 2.1 architecture (base width 96, ~73M decoder parameters)."""
    return make_case(tmp_path_factory, WAN21, "wan2.1_full", {}, seed=3)


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

"""Wan 2.2 checkpoints: the official ``Wan2.2_VAE.pth`` and diffusers layouts, detected from
the keys, encoder ignored, mismatches named; the loader's safety rules (``test_checkpoint``)
apply unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from reference_decoders.wan import (
    CheckpointError,
    CheckpointMismatchError,
    Wan22VAEDecoderConfig,
    WanVAEDecoderConfig,
)
from reference_decoders.wan.checkpoint import checkpoint_key, read_state_dict
from reference_decoders.wan.model import WanVAEDecoderNetwork

from .conftest import ParityCase
from .helpers import SMALL, WAN22_SMALL, diffusers_wan22_architecture, to_official_wan22_layout

# Names and shapes in the published Wan2.2_VAE.pth decoder, read off the official module
# structure (wan/modules/vae2_2.py: Decoder3d(dim=256, z_dim=48), Up_ResidualBlock,
# Resample keeping the width, a 12-channel head): a spot check of the official layout
# that goes through no mapping code.
PUBLISHED_OFFICIAL_KEYS: dict[str, tuple[int, ...]] = {
    "conv2.weight": (48, 48, 1, 1, 1),
    "decoder.conv1.weight": (1024, 48, 3, 3, 3),
    "decoder.middle.0.residual.0.gamma": (1024, 1, 1, 1),
    "decoder.middle.1.to_qkv.weight": (3072, 1024, 1, 1),
    "decoder.middle.2.residual.6.bias": (1024,),
    "decoder.upsamples.0.upsamples.0.residual.2.weight": (1024, 1024, 3, 3, 3),
    "decoder.upsamples.0.upsamples.3.time_conv.weight": (2048, 1024, 3, 1, 1),
    "decoder.upsamples.0.upsamples.3.resample.1.weight": (1024, 1024, 3, 3),
    "decoder.upsamples.1.upsamples.3.time_conv.bias": (2048,),
    "decoder.upsamples.2.upsamples.0.shortcut.weight": (512, 1024, 1, 1, 1),
    "decoder.upsamples.2.upsamples.0.residual.0.gamma": (1024, 1, 1, 1),
    "decoder.upsamples.2.upsamples.3.resample.1.weight": (512, 512, 3, 3),
    "decoder.upsamples.3.upsamples.0.shortcut.weight": (256, 512, 1, 1, 1),
    "decoder.upsamples.3.upsamples.2.residual.6.weight": (256, 256, 3, 3, 3),
    "decoder.head.0.gamma": (256, 1, 1, 1),
    "decoder.head.2.weight": (12, 256, 3, 3, 3),
}


def _expected_names(layout: str, **architecture: Any) -> dict[str, tuple[int, ...]]:
    config = Wan22VAEDecoderConfig(device="cpu", **architecture)
    with torch.device("meta"):
        network = WanVAEDecoderNetwork(config)
    return {
        checkpoint_key(name, layout, config.num_res_blocks, True): tuple(value.shape)  # type: ignore[arg-type]
        for name, value in network.state_dict().items()
    }


def test_official_names_match_the_published_layout() -> None:
    expected = _expected_names("official")
    for key, shape in PUBLISHED_OFFICIAL_KEYS.items():
        assert expected.get(key) == shape, key
    assert not any(".avg_shortcut." in key for key in expected)  # no weights there
    # conv2 (2) + conv1 (2) + middle (2 blocks x 6 + attention 5) + 12 up blocks x 6
    # + 2 width-changing shortcuts, 3 resample convs, 2 time convs (2 each) + head (3)
    assert len(expected) == 2 + 2 + 17 + 72 + 4 + 6 + 4 + 3


def test_diffusers_names_match_autoencoder_kl_wan() -> None:
    diffusers = pytest.importorskip("diffusers")
    for architecture in ({}, WAN22_SMALL):
        with torch.device("meta"):
            vae = diffusers.AutoencoderKLWan(**diffusers_wan22_architecture(**architecture))
        theirs = {
            key: tuple(value.shape)
            for key, value in vae.state_dict().items()
            if key.startswith(("decoder.", "post_quant_conv."))
        }
        assert _expected_names("diffusers", **architecture) == theirs


def test_official_names_match_an_independent_rename(
    wan22_small_published_blocks_case: ParityCase,
) -> None:
    state = read_state_dict(wan22_small_published_blocks_case.official_path)
    decoder_side = {
        key: tuple(value.shape)
        for key, value in state.items()
        if not key.startswith(("encoder.", "conv1."))
    }
    assert _expected_names("official", base_dim=8, num_res_blocks=2) == decoder_side


def test_both_layouts_load_the_same_weights_and_encoder_keys_are_ignored(
    wan22_small_case: ParityCase, tmp_path: Path
) -> None:
    official = wan22_small_case.decoder("official")
    diffusers_loaded = wan22_small_case.decoder("diffusers")
    assert (official.checkpoint_layout, diffusers_loaded.checkpoint_layout) == ("official", "diffusers")
    for (name, ours), (_, theirs) in zip(
        official.state_dict().items(), diffusers_loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(ours, theirs), name

    state = read_state_dict(wan22_small_case.official_path)
    assert any(key.startswith("encoder.") for key in state) and "conv1.weight" in state
    decoder_only = {k: v for k, v in state.items() if not k.startswith(("encoder.", "conv1."))}
    torch.save(decoder_only, tmp_path / "decoder_only.pth")
    stripped = Wan22VAEDecoderConfig(
        checkpoint_path=str(tmp_path / "decoder_only.pth"), device="cpu", **WAN22_SMALL
    ).setup()
    for (name, a), (_, b) in zip(official.state_dict().items(), stripped.state_dict().items()):
        assert torch.equal(a, b), name


def test_official_rename_helper_round_trips_known_names() -> None:
    """The test's own rename (used to write official files) agrees with the spot check."""
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        vae = diffusers.AutoencoderKLWan(**diffusers_wan22_architecture())
    renamed = to_official_wan22_layout(dict(vae.state_dict()), num_res_blocks=2)
    for key, shape in PUBLISHED_OFFICIAL_KEYS.items():
        assert tuple(renamed[key].shape) == shape, key


def test_a_wan21_checkpoint_in_a_wan22_config_is_named_as_such(
    small_case: ParityCase, wan22_small_case: ParityCase
) -> None:
    with pytest.raises(CheckpointMismatchError) as caught:
        Wan22VAEDecoderConfig(
            checkpoint_path=str(small_case.official_path), device="cpu", **WAN22_SMALL
        ).setup()
    assert caught.value.layout == "official"
    assert "decoder.upsamples.0.upsamples.0.residual.0.gamma" in caught.value.missing
    assert ("decoder.conv1.weight", (32, 48, 3, 3, 3), (32, 16, 3, 3, 3)) in caught.value.mismatched

    with pytest.raises(CheckpointMismatchError) as caught:
        WanVAEDecoderConfig(
            checkpoint_path=str(wan22_small_case.diffusers_path), device="cpu", **SMALL
        ).setup()
    assert "decoder.up_blocks.0.upsampler.resample.1.weight" in caught.value.unexpected
    assert "Wan22VAEDecoderConfig" in str(caught.value)


def test_budget_follows_the_configured_network(wan22_small_case: ParityCase, tmp_path: Path) -> None:
    """A small Wan 2.2 decoder refuses a file declaring far more than it could use."""
    padded = read_state_dict(wan22_small_case.official_path)
    padded["encoder.padding"] = torch.zeros(6 * 2**20)  # 24 MiB
    torch.save(padded, tmp_path / "padded.pth")
    with pytest.raises(CheckpointError, match="zip directory declares .* more than"):
        Wan22VAEDecoderConfig(
            checkpoint_path=str(tmp_path / "padded.pth"), device="cpu", **WAN22_SMALL
        ).setup()

"""The Wan 2.2 configuration of WanVAEDecoder: sizes, inputs, cache, architecture.

Seeded random weights in the small Wan 2.2 config; the numerical semantics are pinned by
``test_wan22_parity`` and the streaming contract by the kit (``test_wan22_specs``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from reference_decoders.wan import Wan22VAEDecoderConfig, WanVAEDecoder
from reference_decoders.wan.model import SpreadShortcut, StreamState, WanVAEDecoderNetwork

from .helpers import WAN22_SMALL, decode_in_chunks


@pytest.fixture(scope="module")
def decoder() -> WanVAEDecoder:
    return Wan22VAEDecoderConfig(device="cpu", **WAN22_SMALL).setup()


def _latents(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_sizes_are_16x_spatial_and_4x_temporal(decoder: WanVAEDecoder) -> None:
    assert decoder.spatial_compression_ratio == 16 and decoder.temporal_compression_ratio == 4
    cache = decoder.initialize_autoregressive_cache()
    first = decoder(input=_latents(2, 3, 48, 2, 3), autoregressive_index=0, cache=cache)
    assert first.shape == (2, 9, 3, 32, 48)
    later = decoder(input=_latents(2, 2, 48, 2, 3, seed=1), autoregressive_index=1, cache=cache)
    assert later.shape == (2, 8, 3, 32, 48)
    assert first.abs().max() <= 1 and later.abs().max() <= 1
    assert decoder.get_output_temporal_size(0, 3) == 9
    assert decoder.get_input_temporal_size(1, 8) == 2


def test_wan21_shaped_latents_are_refused_saying_what_was_expected(decoder: WanVAEDecoder) -> None:
    with pytest.raises(ValueError, match=r"\[B, T, 48, h, w\].*16 channels"):
        decoder(input=_latents(1, 2, 16, 2, 2))
    with pytest.raises(ValueError, match="transpose dims 1 and 2"):
        decoder(input=_latents(1, 48, 2, 2, 2))


def test_cache_holds_two_frames_per_causal_conv_and_stays_bounded(decoder: WanVAEDecoder) -> None:
    latents = _latents(1, 14, 48, 2, 2)
    cache = decoder.initialize_autoregressive_cache()
    decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    sizes = []
    for step in range(1, 12):
        decoder(input=latents[:, step + 2 : step + 3], autoregressive_index=step, cache=cache)
        history = [t for t in cache.conv_history if t is not None]
        assert len(history) == len(cache.conv_history) == decoder.network.num_history_slots
        assert all(t.shape[2] == 2 for t in history)
        sizes.append(sum(t.untyped_storage().nbytes() for t in history))
    assert len(set(sizes)) == 1, "cache bytes change over the rollout"


def test_spread_shortcut_places_channels_like_a_pixel_shuffle() -> None:
    """Half the width, time doubled: output channel o, time position s, row r, column c
    reads input channel (o * 8 + s * 4 + r * 2 + c) // repeats, here repeats 4: the two
    time positions read channels 2o and 2o + 1; rows and columns copy them."""
    shortcut = SpreadShortcut(in_channels=4, out_channels=2, temporal=True)
    x = torch.arange(4.0).view(1, 4, 1, 1, 1).expand(1, 4, 2, 1, 1).clone()
    x[:, :, 1] += 10  # frame 1
    later = shortcut(x, StreamState(history=[], first_chunk=False))
    assert later.shape == (1, 2, 4, 2, 2)
    for o in range(2):
        for frame in range(2):
            for s in range(2):
                expected = 2 * o + s + 10 * frame
                assert torch.all(later[0, o, 2 * frame + s] == expected), (o, frame, s)
    first = shortcut(x, StreamState(history=[], first_chunk=True))
    assert torch.equal(first, later[:, :, 1:])  # the causal first frame: its last copy only


def test_chunking_does_not_change_the_frames(decoder: WanVAEDecoder) -> None:
    latents = _latents(1, 6, 48, 2, 3, seed=3)
    whole = decode_in_chunks(decoder, latents, [6])
    for plan in ([1] * 6, [3, 3], [2, 1, 3], [5, 1]):
        assert torch.allclose(decode_in_chunks(decoder, latents, plan), whole, atol=1e-5), plan


def test_default_config_is_the_published_wan22_decoder() -> None:
    config = Wan22VAEDecoderConfig()
    assert (config.latent_channels, config.base_dim, config.dim_mult) == (48, 256, (1, 2, 4, 4))
    assert (config.num_res_blocks, config.temporal_upsample) == (2, (True, True, False))
    assert (config.residual_up_stages, config.patch_size, config.out_channels) == (True, 2, 3)
    assert len(config.latents_mean) == len(config.latents_std) == 48
    assert config.latents_mean[19] == 0.5109 and config.latents_std[39] == 1.6887
    assert config._target is WanVAEDecoder
    with torch.device("meta"):
        network = WanVAEDecoderNetwork(config)
    widths = [stage.resnets[-1].conv2.out_channels for stage in network.up_stages]
    assert network.conv_in.out_channels == 1024 and widths == [1024, 1024, 512, 256]
    assert network.conv_out.out_channels == 12
    assert sum(p.numel() for p in network.parameters()) == 555_051_580


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(patch_size=0), "patch_size"),
        (dict(base_dim=8, dim_mult=(1, 3, 4, 4)), "cannot spread 24 channels evenly"),
        (dict(latent_channels=16), "latents_mean has 48 values"),
    ],
)
def test_inconsistent_architecture_is_refused(overrides: dict[str, Any], words: str) -> None:
    config = Wan22VAEDecoderConfig(device="cpu", **{**WAN22_SMALL, **overrides})
    with pytest.raises(ValueError, match=words):
        config.setup()

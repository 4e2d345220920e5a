"""The StreamingVideoDecoder contract of WanVAEDecoder, Wan 2.1 and Wan 2.2: sizes, inputs,
cache, config.

These run on seeded random weights (``checkpoint_path=None``) in each version's small
config (``decoder`` is parametrized over both); the numerical semantics are pinned by
``test_parity`` and the streaming contract by the kit (``test_specs``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from reference_decoders.wan import (
    Wan22VAEDecoderConfig,
    WanVAEDecoder,
    WanVAEDecoderCache,
    WanVAEDecoderConfig,
)
from reference_decoders.wan.model import SpreadShortcut, StreamState, Upsampler, WanVAEDecoderNetwork

from .helpers import VERSIONS, WAN21, WAN22, Version, decode_in_chunks


@pytest.fixture(scope="module", params=VERSIONS, ids=str)
def version(request: pytest.FixtureRequest) -> Version:
    return request.param


@pytest.fixture(scope="module")
def decoder(version: Version) -> WanVAEDecoder:
    return version.decoder()


def _latents(version: Version, b: int, t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    """Float32 latents drawn as the original single-version tests drew them."""
    return torch.randn(b, t, version.latent_channels, h, w, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- sizes


def test_compression_ratios(version: Version) -> None:
    s = version.spatial_ratio
    full = version.config(device="cpu", base_dim=8)
    assert full.spatial_compression_ratio == s and full.temporal_compression_ratio == 4
    decoder = version.decoder()
    assert decoder.spatial_compression_ratio == s
    assert decoder.temporal_compression_ratio == 4
    no_time = version.config(device="cpu", temporal_upsample=(False, False, False), **version.small)
    assert no_time.setup().temporal_compression_ratio == 1


def test_sizes_follow_the_ratios(decoder: WanVAEDecoder, version: Version) -> None:
    """16x (Wan 2.2) or 8x (Wan 2.1) spatial, 4x temporal, causal first frame."""
    s = version.spatial_ratio
    cache = decoder.initialize_autoregressive_cache()
    first = decoder(input=_latents(version, 2, 3, 2, 3), autoregressive_index=0, cache=cache)
    assert first.shape == (2, 9, 3, 2 * s, 3 * s)
    later = decoder(input=_latents(version, 2, 2, 2, 3, seed=1), autoregressive_index=1, cache=cache)
    assert later.shape == (2, 8, 3, 2 * s, 3 * s)
    assert first.abs().max() <= 1 and later.abs().max() <= 1
    assert decoder.get_output_temporal_size(0, 3) == 9
    assert decoder.get_input_temporal_size(1, 8) == 2


def test_temporal_size_mappers(decoder: WanVAEDecoder) -> None:
    for n in range(1, 12):
        assert decoder.get_output_temporal_size(0, n) == 1 + 4 * (n - 1)
        for index in (1, 2, 17):
            assert decoder.get_output_temporal_size(index, n) == 4 * n
            assert decoder.get_input_temporal_size(index, 4 * n) == n
        assert decoder.get_input_temporal_size(0, 1 + 4 * (n - 1)) == n

    for index, frames in ((0, 0), (0, 2), (0, 4), (0, -3), (1, 0), (1, 3), (1, 5), (3, 1)):
        with pytest.raises(ValueError, match="cannot be produced"):
            decoder.get_input_temporal_size(index, frames)
    for index in (0, 1):
        with pytest.raises(ValueError, match="at least one latent frame"):
            decoder.get_output_temporal_size(index, 0)
    with pytest.raises(ValueError, match=">= 0"):
        decoder.get_output_temporal_size(-1, 2)
    with pytest.raises(ValueError, match=">= 0"):
        decoder.get_input_temporal_size(-1, 4)


def test_output_shape_range_and_layout(decoder: WanVAEDecoder, version: Version) -> None:
    s = version.spatial_ratio
    latents = _latents(version, 2, 5, 3, 5)
    cache = decoder.initialize_autoregressive_cache(batch_size=2, height=3 * s, width=5 * s)
    first = decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    second = decoder(input=latents[:, 3:], autoregressive_index=1, cache=cache)
    assert first.shape == (2, 9, 3, 3 * s, 5 * s) and second.shape == (2, 8, 3, 3 * s, 5 * s)
    for output in (first, second):
        assert output.dtype == torch.float32 and output.is_contiguous()
        assert output.abs().max() <= 1.0


def test_call_without_cache_decodes_a_whole_rollout(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 1, 4, 2, 3)
    assert torch.equal(decoder(input=latents), decode_in_chunks(decoder, latents, [4]))
    assert torch.equal(decoder(latents, 0, None), decoder(input=latents))
    with pytest.raises(ValueError, match="needs the rollout's cache"):
        decoder(input=latents, autoregressive_index=1)


def test_inputs_are_cast_to_the_decoder_dtype(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 1, 2, 2, 2)
    as_double = decoder(input=latents.double())
    assert as_double.dtype == torch.float32
    assert torch.equal(as_double, decoder(input=latents))


def test_chunking_does_not_change_the_frames(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 1, 6, 2, 3, seed=3)
    whole = decode_in_chunks(decoder, latents, [6])
    for plan in ([1] * 6, [3, 3], [2, 1, 3], [5, 1]):
        assert torch.allclose(decode_in_chunks(decoder, latents, plan), whole, atol=1e-5), plan


# ------------------------------------------------------------------------ bad input


def _expect_value_error(decoder: WanVAEDecoder, x: Any, index: int, cache: Any, *words: str) -> None:
    with pytest.raises(ValueError) as caught:
        decoder(input=x, autoregressive_index=index, cache=cache)
    for word in words:
        assert word in str(caught.value), (word, str(caught.value))


def test_bad_inputs_raise_value_errors_saying_what_was_expected(
    decoder: WanVAEDecoder, version: Version
) -> None:
    fresh = decoder.initialize_autoregressive_cache
    c = version.latent_channels
    good = _latents(version, 1, 2, 2, 3)
    _expect_value_error(decoder, good[0], 0, fresh(), f"[B, T, {c}, h, w]", "4 dims")
    _expect_value_error(decoder, good[None], 0, fresh(), "5 dims", "6 dims")
    wrong = torch.randn(1, 2, 8, 2, 3)
    _expect_value_error(decoder, wrong, 0, fresh(), str(c), "got 8 channels")
    # A [B, C, T, h, w] tensor is recognised and the fix suggested.
    _expect_value_error(decoder, good.transpose(1, 2), 0, fresh(), "transpose")
    _expect_value_error(decoder, good[:, :0], 0, fresh(), ">= 1")
    _expect_value_error(decoder, good.to(torch.int64), 0, fresh(), "floating-point")
    _expect_value_error(decoder, good, -1, fresh(), ">= 0", "-1")
    _expect_value_error(decoder, good, 1, fresh(), "expected autoregressive_index 0", "got 1")
    with pytest.raises(TypeError, match="int"):
        decoder(input=good, autoregressive_index=0.0, cache=fresh())
    with pytest.raises(TypeError, match="tensor"):
        decoder(input=good.tolist(), autoregressive_index=0, cache=fresh())
    with pytest.raises(TypeError, match="WanVAEDecoderCache"):
        decoder(input=good, autoregressive_index=0, cache=object())


def test_the_other_versions_latents_are_refused_saying_what_was_expected(
    decoder: WanVAEDecoder, version: Version
) -> None:
    other = WAN21 if version is WAN22 else WAN22
    with pytest.raises(ValueError, match=rf"\[B, T, {version.latent_channels}, h, w\].*{other.latent_channels} channels"):
        decoder(input=torch.randn(1, 2, other.latent_channels, 2, 2))
    with pytest.raises(ValueError, match="transpose dims 1 and 2"):
        decoder(input=torch.randn(1, version.latent_channels, 2, 2, 2))


def test_rollout_order_and_sizes_are_enforced_mid_rollout(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 2, 6, 2, 3)
    cache = decoder.initialize_autoregressive_cache()
    decoder(input=latents[:, :2], autoregressive_index=0, cache=cache)
    _expect_value_error(decoder, latents[:, 2:3], 0, cache, "expected autoregressive_index 1", "got 0")
    _expect_value_error(decoder, latents[:, 2:3], 2, cache, "expected autoregressive_index 1", "got 2")
    _expect_value_error(decoder, _latents(version, 2, 1, 3, 3), 1, cache, "(2, 3)", "(3, 3)")
    _expect_value_error(decoder, latents[:1, 2:3], 1, cache, "batch size 2", "got 1")

    # Refused calls leave the cache as it was: the rollout continues exactly.
    rest = decoder(input=latents[:, 2:], autoregressive_index=1, cache=cache)
    expected = decode_in_chunks(decoder, latents, [2, 4])[:, 5:]
    assert torch.equal(rest, expected)


def test_cache_from_another_configuration_is_refused(decoder: WanVAEDecoder, version: Version) -> None:
    other = version.config(device="cpu", base_dim=8, num_res_blocks=2).setup()
    _expect_value_error(
        decoder, _latents(version, 1, 1, 2, 2), 0, other.initialize_autoregressive_cache(), "history slots"
    )


# ---------------------------------------------------------------------------- cache


def _storages(tensors: list[torch.Tensor]) -> set[int]:
    return {t.untyped_storage().data_ptr() for t in tensors}


def test_cache_holds_two_frames_per_causal_conv_and_stays_bounded(
    decoder: WanVAEDecoder, version: Version
) -> None:
    # 11 later steps: the cache's size is fixed after the first one, so a longer rollout
    # (Wan 2.1's test used 21) adds time, not evidence.
    latents = _latents(version, 1, 14, 2, 2)
    cache = decoder.initialize_autoregressive_cache()
    assert isinstance(cache, WanVAEDecoderCache) and cache.first_chunk_pending
    assert all(entry is None for entry in cache.conv_history)

    sizes = []
    decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    for step in range(1, 12):
        decoder(input=latents[:, step + 2 : step + 3], autoregressive_index=step, cache=cache)
        history = [t for t in cache.conv_history if t is not None]
        assert len(history) == len(cache.conv_history) == decoder.network.num_history_slots
        assert all(t.shape[2] == 2 for t in history)
        sizes.append(sum(t.untyped_storage().nbytes() for t in history))
    assert len(set(sizes)) == 1, "cache bytes change over the rollout"
    assert not cache.first_chunk_pending and cache.next_index == 12


def test_a_single_first_frame_leaves_the_time_upsamplers_history_empty(
    decoder: WanVAEDecoder, version: Version
) -> None:
    """After a one-frame first chunk the time convs have seen nothing (the causal first
    frame bypasses them); every other conv holds one real frame after a zero frame."""
    cache = decoder.initialize_autoregressive_cache()
    decoder(input=_latents(version, 1, 1, 2, 2), autoregressive_index=0, cache=cache)
    time_slots = {
        module.time_conv.slot
        for module in decoder.modules()
        if isinstance(module, Upsampler) and module.time_conv is not None
    }
    assert len(time_slots) == 2
    for slot, history in enumerate(cache.conv_history):
        if slot in time_slots:
            assert history is None
        else:
            assert history is not None and history.shape[2] == 2
            assert torch.count_nonzero(history[:, :, 0]) == 0


def test_outputs_and_other_caches_are_never_written_later(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 1, 6, 2, 3)
    cache = decoder.initialize_autoregressive_cache()
    original = latents.clone()
    first = decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    first_copy = first.clone()
    fork = copy.deepcopy(cache)
    fork_history = [t.clone() for t in fork.conv_history if t is not None]

    for step, frame in enumerate(range(3, 6), start=1):
        decoder(input=latents[:, frame : frame + 1], autoregressive_index=step, cache=cache)
    assert torch.equal(first, first_copy)
    assert torch.equal(latents, original)
    for before, after in zip(fork_history, [t for t in fork.conv_history if t is not None]):
        assert torch.equal(before, after)

    # No storage is shared between two caches, or with the parameters or an output.
    params = _storages(list(decoder.parameters()) + list(decoder.buffers()))
    ours = _storages([t for t in cache.conv_history if t is not None])
    theirs = _storages([t for t in fork.conv_history if t is not None])
    assert not ours & theirs and not ours & params and not theirs & params
    assert first.untyped_storage().data_ptr() not in ours | theirs


def test_a_deep_copied_cache_continues_identically(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 2, 7, 2, 2)
    cache = decoder.initialize_autoregressive_cache()
    decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    fork = copy.deepcopy(cache)
    a = [decoder(input=latents[:, t : t + 1], autoregressive_index=t - 2, cache=cache) for t in range(3, 7)]
    b = [decoder(input=latents[:, t : t + 1], autoregressive_index=t - 2, cache=fork) for t in range(3, 7)]
    for x, y in zip(a, b):
        assert torch.equal(x, y)


def test_interleaved_rollouts_do_not_interact(decoder: WanVAEDecoder, version: Version) -> None:
    first, second = _latents(version, 1, 4, 2, 2, seed=1), _latents(version, 1, 4, 2, 2, seed=2)
    alone = [decode_in_chunks(decoder, x, [2, 1, 1]) for x in (first, second)]
    caches = [decoder.initialize_autoregressive_cache() for _ in range(2)]
    outputs: list[list[torch.Tensor]] = [[], []]
    for index, (start, stop) in enumerate(((0, 2), (2, 3), (3, 4))):
        for rollout, x in enumerate((first, second)):
            outputs[rollout].append(
                decoder(input=x[:, start:stop], autoregressive_index=index, cache=caches[rollout])
            )
    for rollout in range(2):
        assert torch.equal(torch.cat(outputs[rollout], dim=1), alone[rollout])


def test_batch_elements_are_independent(decoder: WanVAEDecoder, version: Version) -> None:
    latents = _latents(version, 3, 4, 2, 3)
    together = decode_in_chunks(decoder, latents, [3, 1])
    for b in range(3):
        apart = decode_in_chunks(decoder, latents[b : b + 1], [3, 1])
        assert (together[b : b + 1] - apart).abs().max() <= 1e-5


def test_spread_shortcut_places_channels_like_a_pixel_shuffle() -> None:
    """Wan 2.2's stage shortcut. Half the width, time doubled: output channel o, time
    position s, row r, column c reads input channel (o * 8 + s * 4 + r * 2 + c) //
    repeats, here repeats 4: the two time positions read channels 2o and 2o + 1; rows
    and columns copy them."""
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


# --------------------------------------------------------------------------- config


def test_seeded_random_init_is_deterministic_and_keeps_the_callers_rng(version: Version) -> None:
    state = torch.random.get_rng_state()
    a = version.decoder(seed=5)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = version.decoder(seed=5)
    c = version.decoder(seed=6)
    assert a.checkpoint_layout is None
    for (name, x), (_, y), (_, z) in zip(
        a.state_dict().items(), b.state_dict().items(), c.state_dict().items()
    ):
        assert torch.equal(x, y), name
    assert not torch.equal(a.network.conv_in.weight, c.network.conv_in.weight)


def test_default_placement_and_dtype_names(version: Version) -> None:
    config = version.config(**version.small)
    if torch.cuda.is_available():
        assert config.resolved_device().type == "cuda" and config.resolved_dtype() == torch.bfloat16
    else:
        assert config.resolved_device().type == "cpu" and config.resolved_dtype() == torch.float32
    assert version.config(device="cpu").resolved_dtype() == torch.float32
    assert version.config(device="cpu", dtype="bf16").resolved_dtype() == torch.bfloat16
    assert version.config(device="cpu", dtype=torch.float64).resolved_dtype() == torch.float64
    decoder = version.decoder(dtype="bfloat16")
    assert decoder.dtype == torch.bfloat16 and decoder.device.type == "cpu"
    assert decoder(input=_latents(version, 1, 2, 2, 2)).dtype == torch.bfloat16
    for bad in ("float8", torch.int32):
        with pytest.raises(ValueError, match="dtype"):
            version.config(device="cpu", dtype=bad).resolved_dtype()


@pytest.mark.parametrize(
    ("version", "overrides", "words"),
    [
        (WAN21, dict(temporal_upsample=(True, True)), "one flag per upsampling stage"),
        (WAN21, dict(base_dim=3, dim_mult=(1, 1, 1), temporal_upsample=(True, False)), "must be even"),
        (WAN21, dict(latent_channels=8), "latents_mean has 16 values"),
        (WAN21, dict(dim_mult=()), "dim_mult"),
        (WAN21, dict(num_res_blocks=-1), "num_res_blocks"),
        (WAN22, dict(patch_size=0), "patch_size"),
        (WAN22, dict(base_dim=8, dim_mult=(1, 3, 4, 4)), "cannot spread 24 channels evenly"),
        (WAN22, dict(latent_channels=16), "latents_mean has 48 values"),
    ],
    ids=lambda v: str(v) if isinstance(v, Version) else None,
)
def test_inconsistent_architecture_is_refused(version: Version, overrides: dict[str, Any], words: str) -> None:
    config = version.config(device="cpu", **{**version.small, **overrides})
    with pytest.raises(ValueError, match=words):
        config.setup()


def test_default_config_is_the_published_architecture(version: Version) -> None:
    config = version.config()
    assert config.checkpoint_path is None and config._target is WanVAEDecoder
    assert config.dim_mult == (1, 2, 4, 4)
    assert (config.num_res_blocks, config.temporal_upsample) == (2, (True, True, False))
    assert len(config.latents_mean) == len(config.latents_std) == version.latent_channels
    if version is WAN21:
        assert type(config) is WanVAEDecoderConfig
        assert (config.latent_channels, config.base_dim) == (16, 96)
        return
    assert type(config) is Wan22VAEDecoderConfig
    assert (config.latent_channels, config.base_dim) == (48, 256)
    assert (config.residual_up_stages, config.patch_size, config.out_channels) == (True, 2, 3)
    assert config.latents_mean[19] == 0.5109 and config.latents_std[39] == 1.6887
    with torch.device("meta"):
        network = WanVAEDecoderNetwork(config)
    widths = [stage.resnets[-1].conv2.out_channels for stage in network.up_stages]
    assert network.conv_in.out_channels == 1024 and widths == [1024, 1024, 512, 256]
    assert network.conv_out.out_channels == 12
    assert sum(p.numel() for p in network.parameters()) == 555_051_580

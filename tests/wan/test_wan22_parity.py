"""Wan 2.2 (TI2V-5B VAE): golden parity with diffusers' ``AutoencoderKLWan`` in its Wan 2.2
configuration, under any chunk plan, from both checkpoint layouts.

Same method as ``test_parity.py`` (whose tolerances and their derivation apply here):
diffusers decoding one latent frame at a time, then its own ``unpatchify``, is the
reference; our decoder loads the same seeded weights through its own loader from a
diffusers-layout safetensors file and an official ``Wan2.2_VAE.pth``-layout archive,
and decodes the same normalized 48-channel latents cut into many chunk plans.

* float32 ``<= 1e-5`` max abs error on outputs in [-1, 1] (observed ~3e-6 small);
* float64 ``<= 1e-12`` (summation order only): the semantics are identical, including
  the residual stages' shortcut and its first-frame rule, and the patch order.

The full published width (decoder base 256: stage widths 1024, 1024, 1024, 512, 256,
555M parameters) is in ``test_full_size_matches_diffusers``, marked ``slow`` and run
only when ``WAN22_FULL_SIZE=1`` (it needs ~10 GB of memory and minutes of CPU).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import ParityCase, _make_case
from .helpers import compositions, decode_in_chunks, diffusers_frame_by_frame, random_plans

FP32_ATOL = 1e-5
FP64_ATOL = 1e-12


def _latents(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalized latents ``[B, T, 48, h, w]`` as a diffusion model emits them (~N(0, 1))."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64).to(dtype)


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return (actual.double() - expected.double()).abs().max().item()


def _assert_meaningful(reference: torch.Tensor) -> None:
    """The reference is neither saturated by the clamp nor near zero."""
    inside = (reference.abs() < 1).double().mean().item()
    assert inside > 0.7, f"only {inside:.0%} of reference outputs are inside (-1, 1)"
    assert reference.double().std().item() > 0.2


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_matches_diffusers_under_every_plan(wan22_small_case: ParityCase, layout: str) -> None:
    """Batch of two, 3x5 latents; all 16 plans of 5 frames and 12 random plans of 8."""
    decoder = wan22_small_case.decoder(layout)
    assert decoder.checkpoint_layout == layout
    for frames, plans in (
        (5, list(compositions(5))),
        (8, [[3, 1, 1, 1, 1, 1], [4, 4], [8], *random_plans(8, 12, seed=1)]),
    ):
        latents = _latents((2, frames, 48, 3, 5), seed=frames)
        reference = diffusers_frame_by_frame(wan22_small_case.vae, latents)
        assert reference.shape == (2, 1 + 4 * (frames - 1), 3, 48, 80)
        _assert_meaningful(reference)
        for plan in plans:
            error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
            assert error <= FP32_ATOL, f"{layout}, plan {plan}: max abs error {error:.3g}"


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_small_is_exact_under_drawn_plans(wan22_small_case: ParityCase, plan: list[int]) -> None:
    """Hypothesis draws the chunk plan (first chunks of up to four frames included)."""
    latents = _latents((1, sum(plan), 48, 2, 3), seed=sum(plan))
    reference = diffusers_frame_by_frame(wan22_small_case.vae, latents)
    decoder = _cached_decoder(wan22_small_case)
    error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
    assert error <= FP32_ATOL, f"plan {plan}: max abs error {error:.3g}"


_DECODERS: dict[int, Any] = {}


def _cached_decoder(case: ParityCase) -> Any:
    """One decoder per case for the Hypothesis examples (building one reads a file)."""
    if id(case) not in _DECODERS:
        _DECODERS[id(case)] = case.decoder("official")
    return _DECODERS[id(case)]


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_with_published_block_count_matches_diffusers(
    wan22_small_published_blocks_case: ParityCase, layout: str
) -> None:
    """Three residual blocks per up stage, as published: the official nested indices shift."""
    decoder = wan22_small_published_blocks_case.decoder(layout)
    latents = _latents((1, 5, 48, 3, 4), seed=20)
    reference = diffusers_frame_by_frame(wan22_small_published_blocks_case.vae, latents)
    _assert_meaningful(reference)
    for plan in ([1] * 5, [3, 1, 1], [5], [2, 3]):
        error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
        assert error <= FP32_ATOL, f"{layout}, plan {plan}: max abs error {error:.3g}"


@pytest.mark.usefixtures("float64_diffusers")
def test_small_float64_is_exact(wan22_small_case: ParityCase) -> None:
    """In float64 the agreement is to summation-order noise: the semantics are identical."""
    vae64 = copy.deepcopy(wan22_small_case.vae).double()
    decoder = wan22_small_case.decoder("official", dtype=torch.float64)
    latents = _latents((2, 6, 48, 3, 5), seed=30, dtype=torch.float64)
    reference = diffusers_frame_by_frame(vae64, latents)
    for plan in ([1] * 6, [6], [3, 1, 1, 1], [2, 2, 2], [5, 1], [1, 5]):
        output = decode_in_chunks(decoder, latents, plan)
        assert output.dtype == torch.float64
        error = _max_error(output, reference)
        assert error <= FP64_ATOL, f"plan {plan}: max abs error {error:.3g}"


def test_tolerance_is_tight_enough_to_matter(wan22_small_case: ParityCase) -> None:
    """A 0.1% nudge to one norm scale is caught; so are a stage shortcut left out and an
    output patch transposed (rows for columns)."""
    latents = _latents((1, 4, 48, 3, 5), seed=40)
    reference = diffusers_frame_by_frame(wan22_small_case.vae, latents)

    nudged = wan22_small_case.decoder("diffusers")
    with torch.no_grad():
        dict(nudged.named_parameters())["network.up_stages.3.resnets.0.norm2.gamma"].mul_(1.001)
    assert _max_error(decode_in_chunks(nudged, latents, [1] * 4), reference) > 10 * FP32_ATOL

    no_shortcut = wan22_small_case.decoder("diffusers")
    no_shortcut.network.up_stages[1].shortcut = None
    assert _max_error(decode_in_chunks(no_shortcut, latents, [4]), reference) > 1e-2

    decoder = wan22_small_case.decoder("diffusers")
    transposed = decoder(input=latents, autoregressive_index=0)
    p = transposed.shape
    patches = transposed.reshape(p[0], p[1], p[2], p[3] // 2, 2, p[4] // 2, 2)
    swapped = patches.transpose(4, 6).reshape(p)
    assert _max_error(transposed, reference) <= FP32_ATOL
    assert _max_error(swapped, reference) > 1e-2


def test_public_streaming_breaks_on_a_multi_frame_first_chunk(wan22_small_case: ParityCase) -> None:
    """What diffusers' own cached decoder gets wrong for Wan 2.2: fed a first chunk of
    three latent frames, its upsamplers skip time doubling for the whole chunk (they
    treat their first call as the causal first frame) while the residual shortcut
    doubles all but the first frame, so the stage's two paths disagree in length and the
    decode raises instead of returning 9 frames. A single first frame followed by
    multi-frame chunks works, and our decoder takes any plan."""
    vae = wan22_small_case.vae
    latents = _latents((1, 4, 48, 3, 5), seed=50)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        x = vae.post_quant_conv(latents.transpose(1, 2) * std + mean)
        vae.clear_cache()
        with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match .* \(5\)"):
            vae.decoder(x[:, :, :3], feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
        vae.clear_cache()
        first = vae.decoder(x[:, :, :1], feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
        rest = vae.decoder(x[:, :, 1:], feat_cache=vae._feat_map, feat_idx=[0])
        vae.clear_cache()
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    theirs = unpatchify(torch.cat([first, rest], dim=2), 2).clamp(-1, 1).transpose(1, 2)
    reference = diffusers_frame_by_frame(vae, latents)
    assert _max_error(theirs, reference) <= FP32_ATOL
    ours = decode_in_chunks(wan22_small_case.decoder("diffusers"), latents, [3, 1])
    assert _max_error(ours, reference) <= FP32_ATOL


def test_diffusers_public_decode_is_the_frame_by_frame_reference(wan22_small_case: ParityCase) -> None:
    """``AutoencoderKLWan.decode`` (given de-normalized latents) is exactly our reference."""
    vae = wan22_small_case.vae
    latents = _latents((1, 3, 48, 3, 5), seed=60)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        public = vae.decode(latents.transpose(1, 2) * std + mean).sample.transpose(1, 2)
    assert torch.equal(public, diffusers_frame_by_frame(vae, latents))


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("WAN22_FULL_SIZE") != "1",
    reason="full-width Wan 2.2 parity needs ~10 GB and minutes of CPU: set WAN22_FULL_SIZE=1",
)
def test_full_size_matches_diffusers(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The published decoder (base 256, three blocks per stage, 555M parameters), float32,
    2x3 latents, from both layouts."""
    case = _make_case(tmp_path_factory, "wan22_full", {}, seed=6, wan22=True)
    latents = _latents((1, 3, 48, 2, 3), seed=70)
    reference = diffusers_frame_by_frame(case.vae, latents)
    assert reference.shape == (1, 9, 3, 32, 48)
    _assert_meaningful(reference)
    errors = {}
    for layout in ("diffusers", "official"):
        decoder = case.decoder(layout)
        assert decoder.checkpoint_layout == layout
        for plan in ([1, 1, 1], [3], [2, 1]):
            errors[layout, tuple(plan)] = _max_error(decode_in_chunks(decoder, latents, plan), reference)
        del decoder
    print("wan22 full-size fp32 CPU max abs errors:", errors)
    assert max(errors.values()) <= FP32_ATOL, errors
    for path in (case.diffusers_path, case.official_path):
        Path(path).unlink()

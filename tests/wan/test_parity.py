"""Golden parity with diffusers' ``AutoencoderKLWan``, under any chunk plan, from both layouts.

Reference: diffusers decoding one latent frame at a time (see ``helpers.diffusers_frame_by_frame``)
with seeded random weights. Our decoder loads the same weights through its own loader,
from a diffusers-layout safetensors file and from an official-layout ``.pth``, and decodes
the same normalized latents cut into many chunk plans: a single chunk, frame by frame,
a first chunk of several frames followed by single frames (what Self-Forcing-style
generators do), every composition of a short sequence, and seeded random plans.

Tolerances:

* float64, ``<= 1e-12`` max abs error: in float64 the only differences left are summation
  order (observed ~1e-14), so this is a test of *exact* semantics: a wrong first frame,
  a dropped or misplaced history frame, a swapped weight, or a missing de-normalisation
  all show up at 1e-2 or more.
* float32, ``<= 1e-5`` max abs error on outputs in [-1, 1]: float32 reassociation (the norm's
  sums, convolution algorithms chosen per chunk length, batched attention) compounded over
  ~40 layers gives an observed worst case of 3e-6 (small) to 5e-6 (full size), about
  50 float32 ulps at 1.0; 1e-5 keeps a 2x margin and is still four orders of magnitude
  below what a streaming bug produces. ``test_tolerance_is_tight_enough_to_matter``
  shows a 1e-3 relative nudge to a single norm scale already breaks it.

The random weights keep activations O(1) and most outputs inside (-1, 1) (checked), so
the clamp does not hide differences.
"""

from __future__ import annotations

import copy

import pytest
import torch

from .conftest import ParityCase
from .helpers import compositions, decode_in_chunks, diffusers_frame_by_frame, random_plans

FP32_ATOL = 1e-5
FP64_ATOL = 1e-12


def _latents(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalized latents ``[B, T, 16, h, w]`` as a diffusion model emits them (~N(0, 1))."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(dtype)


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return (actual.double() - expected.double()).abs().max().item()


def _assert_meaningful(reference: torch.Tensor) -> None:
    """The reference is neither saturated by the clamp nor near zero."""
    inside = (reference.abs() < 1).double().mean().item()
    assert inside > 0.7, f"only {inside:.0%} of reference outputs are inside (-1, 1)"
    assert reference.double().std().item() > 0.2


def test_full_size_matches_diffusers_under_chunk_plans(full_case: ParityCase) -> None:
    """The published architecture (base width 96) on 4x6 latents, float32."""
    latents = _latents((1, 4, 16, 4, 6), seed=10)
    reference = diffusers_frame_by_frame(full_case.vae, latents)
    assert reference.shape == (1, 13, 3, 32, 48)
    _assert_meaningful(reference)

    decoder = full_case.decoder("diffusers")
    assert decoder.checkpoint_layout == "diffusers"
    for plan in ([1, 1, 1, 1], [4], [3, 1], [2, 2], [1, 3], [2, 1, 1]):
        error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
        assert error <= FP32_ATOL, f"plan {plan}: max abs error {error:.3g}"


def test_full_size_official_layout_loads_the_same_network(full_case: ParityCase) -> None:
    official = full_case.decoder("official")
    assert official.checkpoint_layout == "official"
    diffusers_loaded = full_case.decoder("diffusers")
    for (name, ours), (_, theirs) in zip(
        official.state_dict().items(), diffusers_loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(ours, theirs), name

    latents = _latents((1, 3, 16, 4, 6), seed=11)
    reference = diffusers_frame_by_frame(full_case.vae, latents)
    error = _max_error(decode_in_chunks(official, latents, [2, 1]), reference)
    assert error <= FP32_ATOL, f"max abs error {error:.3g}"


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_matches_diffusers_under_every_plan(small_case: ParityCase, layout: str) -> None:
    """Batch of two, 4x6 latents; all 16 plans of 5 frames and 20 random plans of 9."""
    decoder = small_case.decoder(layout)
    assert decoder.checkpoint_layout == layout
    for frames, plans in (
        (5, list(compositions(5))),
        (9, [[3, 1, 1, 1, 1, 1, 1], [3, 3, 3], [9], *random_plans(9, 20, seed=0)]),
    ):
        latents = _latents((2, frames, 16, 4, 6), seed=frames)
        reference = diffusers_frame_by_frame(small_case.vae, latents)
        _assert_meaningful(reference)
        for plan in plans:
            error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
            assert error <= FP32_ATOL, f"{layout}, plan {plan}: max abs error {error:.3g}"


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_with_published_block_count_matches_diffusers(
    small_published_blocks_case: ParityCase, layout: str
) -> None:
    """Three residual blocks per up stage, as published: the official flat indices shift."""
    decoder = small_published_blocks_case.decoder(layout)
    latents = _latents((1, 6, 16, 3, 5), seed=20)
    reference = diffusers_frame_by_frame(small_published_blocks_case.vae, latents)
    _assert_meaningful(reference)
    for plan in ([1] * 6, [3, 1, 1, 1], [6], [2, 3, 1]):
        error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
        assert error <= FP32_ATOL, f"{layout}, plan {plan}: max abs error {error:.3g}"


@pytest.mark.usefixtures("float64_diffusers")
def test_small_float64_is_exact(small_case: ParityCase) -> None:
    """In float64 the agreement is to summation-order noise: the semantics are identical."""
    vae64 = copy.deepcopy(small_case.vae).double()
    decoder = small_case.decoder("official", dtype=torch.float64)
    latents = _latents((2, 7, 16, 4, 6), seed=30, dtype=torch.float64)
    reference = diffusers_frame_by_frame(vae64, latents)
    for plan in ([1] * 7, [7], [3, 1, 1, 1, 1], [2, 2, 3], [5, 2], [1, 6]):
        output = decode_in_chunks(decoder, latents, plan)
        assert output.dtype == torch.float64
        error = _max_error(output, reference)
        assert error <= FP64_ATOL, f"plan {plan}: max abs error {error:.3g}"


def test_tolerance_is_tight_enough_to_matter(small_case: ParityCase) -> None:
    """A 0.1% change to one RMS-norm scale is caught, and so is a lost chunk history."""
    latents = _latents((1, 5, 16, 4, 6), seed=40)
    reference = diffusers_frame_by_frame(small_case.vae, latents)

    nudged = small_case.decoder("diffusers")
    with torch.no_grad():
        dict(nudged.named_parameters())["network.up_stages.3.resnets.0.norm2.gamma"].mul_(1.001)
    assert _max_error(decode_in_chunks(nudged, latents, [1] * 5), reference) > 10 * FP32_ATOL

    decoder = small_case.decoder("diffusers")
    cache = decoder.initialize_autoregressive_cache()
    first = decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    cache.conv_history = [None] * len(cache.conv_history)  # forget the history
    second = decoder(input=latents[:, 3:], autoregressive_index=1, cache=cache)
    forgetful = torch.cat([first, second], dim=1)
    assert _max_error(forgetful[:, :9], reference[:, :9]) <= FP32_ATOL
    assert _max_error(forgetful[:, 9:], reference[:, 9:]) > 1e-2


def test_public_chunked_decoding_breaks_on_a_multi_frame_first_chunk(small_case: ParityCase) -> None:
    """Why the multi-frame first chunk plans matter: diffusers' own cached decoder, fed a
    first chunk of three latent frames, skips time upsampling for the whole chunk (its
    upsamplers treat their first call, not the first frame, as the causal first frame)
    and returns 3 frames where frame-by-frame decoding returns 9."""
    vae = small_case.vae
    latents = _latents((1, 3, 16, 4, 6), seed=50)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        vae.clear_cache()
        x = vae.post_quant_conv(latents.transpose(1, 2) * std + mean)
        chunked = vae.decoder(x, feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
        vae.clear_cache()
    assert chunked.shape[2] == 3
    assert diffusers_frame_by_frame(vae, latents).shape[1] == 9
    assert decode_in_chunks(small_case.decoder("diffusers"), latents, [3]).shape[1] == 9


def test_diffusers_public_decode_is_the_frame_by_frame_reference(small_case: ParityCase) -> None:
    """``AutoencoderKLWan.decode`` (given de-normalized latents) is exactly our reference."""
    vae = small_case.vae
    latents = _latents((1, 4, 16, 4, 6), seed=60)
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        public = vae.decode(latents.transpose(1, 2) * std + mean).sample.transpose(1, 2)
    assert torch.equal(public, diffusers_frame_by_frame(vae, latents))

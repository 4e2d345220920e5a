"""Golden parity with diffusers' ``AutoencoderKLWan``, under any chunk plan, from both layouts,
for Wan 2.1 and Wan 2.2 (the TI2V-5B VAE: diffusers' Wan 2.2 configuration).

Reference: diffusers decoding one latent frame at a time (see ``helpers.diffusers_frame_by_frame``;
for Wan 2.2 followed by its own ``unpatchify``) with seeded random weights. Our decoder loads
the same weights through its own loader, from a diffusers-layout safetensors file and from an
official-layout ``.pth``, and decodes the same normalized latents cut into many chunk plans:
a single chunk, frame by frame, a first chunk of several frames followed by single frames
(what Self-Forcing-style generators do), every composition of a short sequence, seeded random
plans and Hypothesis-drawn plans.

Tolerances:

* float64, ``<= 1e-12`` max abs error: in float64 the only differences left are summation
  order (observed ~1e-14), so this is a test of *exact* semantics: a wrong first frame,
  a dropped or misplaced history frame, a swapped weight, a missing de-normalisation, a
  wrong Wan 2.2 shortcut or patch order all show up at 1e-2 or more.
* float32, ``<= 1e-5`` max abs error on outputs in [-1, 1]: float32 reassociation (the norm's
  sums, convolution algorithms chosen per chunk length, batched attention) compounded over
  ~40 layers gives an observed worst case of 3e-6 (small) to 5e-6 (full size), about
  50 float32 ulps at 1.0; 1e-5 keeps a 2x margin and is still four orders of magnitude
  below what a streaming bug produces. ``test_tolerance_is_tight_enough_to_matter``
  shows a 1e-3 relative nudge to a single norm scale already breaks it.

The random weights keep activations O(1) and most outputs inside (-1, 1) (checked), so
the clamp does not hide differences. The published widths (Wan 2.1: 73M decoder
parameters; Wan 2.2: 555M, needing ~10 GB and ``WAN22_FULL_SIZE=1``) are in
``test_full_size_matches_diffusers``, in the slow tier.
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

from .conftest import ParityCase, make_case
from .helpers import (
    VERSIONS,
    WAN21,
    WAN22,
    Version,
    compositions,
    decode_in_chunks,
    diffusers_frame_by_frame,
    random_plans,
)

FP32_ATOL = 1e-5
FP64_ATOL = 1e-12


def _max_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return (actual.double() - expected.double()).abs().max().item()


def _assert_meaningful(reference: torch.Tensor) -> None:
    """The reference is neither saturated by the clamp nor near zero."""
    inside = (reference.abs() < 1).double().mean().item()
    assert inside > 0.7, f"only {inside:.0%} of reference outputs are inside (-1, 1)"
    assert reference.double().std().item() > 0.2


def _denormalized(case: ParityCase, latents: torch.Tensor) -> torch.Tensor:
    """``z * std + mean`` as ``[B, C, T, h, w]``: what diffusers' own decode takes."""
    vae = case.vae
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    return latents.transpose(1, 2) * std + mean


#: Per version: latent size, the long sequence's frames, its fixed plans, random plans
#: (count, seed) for ``test_small_matches_diffusers_under_every_plan``.
EVERY_PLAN: dict[str, dict[str, Any]] = {
    "wan2.1": dict(size=(4, 6), frames=9, plans=[[3, 1, 1, 1, 1, 1, 1], [3, 3, 3], [9]], random=(20, 0)),
    "wan2.2": dict(size=(3, 5), frames=8, plans=[[3, 1, 1, 1, 1, 1], [4, 4], [8]], random=(12, 1)),
}


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_matches_diffusers_under_every_plan(small_case: ParityCase, layout: str) -> None:
    """Batch of two; all 16 plans of 5 frames, then fixed and random plans of a longer
    sequence (Wan 2.1: 4x6 latents, 9 frames, 20 random plans; Wan 2.2: 3x5, 8, 12)."""
    version, sizes = small_case.version, EVERY_PLAN[small_case.version.name]
    decoder = small_case.decoder(layout)
    assert decoder.checkpoint_layout == layout
    h, w = sizes["size"]
    count, seed = sizes["random"]
    for frames, plans in (
        (5, list(compositions(5))),
        (sizes["frames"], [*sizes["plans"], *random_plans(sizes["frames"], count, seed=seed)]),
    ):
        latents = version.latents(2, frames, h, w, seed=frames)
        reference = diffusers_frame_by_frame(small_case.vae, latents)
        s = version.spatial_ratio
        assert reference.shape == (2, 1 + 4 * (frames - 1), 3, s * h, s * w)
        _assert_meaningful(reference)
        for plan in plans:
            error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
            assert error <= FP32_ATOL, f"{version}, {layout}, plan {plan}: max abs error {error:.3g}"


_DECODERS: dict[int, Any] = {}


def _cached_decoder(case: ParityCase) -> Any:
    """One decoder per case for the Hypothesis examples (building one reads a file)."""
    if id(case) not in _DECODERS:
        _DECODERS[id(case)] = case.decoder("official")
    return _DECODERS[id(case)]


@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_small_is_exact_under_drawn_plans(small_case: ParityCase, plan: list[int]) -> None:
    """Hypothesis draws the chunk plan (first chunks of up to four frames included)."""
    latents = small_case.version.latents(1, sum(plan), 2, 3, seed=sum(plan))
    reference = diffusers_frame_by_frame(small_case.vae, latents)
    decoder = _cached_decoder(small_case)
    error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
    assert error <= FP32_ATOL, f"plan {plan}: max abs error {error:.3g}"


#: Per version: latents (B, T, h, w) and plans for the published-block-count test.
PUBLISHED_BLOCKS: dict[str, tuple[tuple[int, int, int, int], list[list[int]]]] = {
    "wan2.1": ((1, 6, 3, 5), [[1] * 6, [3, 1, 1, 1], [6], [2, 3, 1]]),
    "wan2.2": ((1, 5, 3, 4), [[1] * 5, [3, 1, 1], [5], [2, 3]]),
}


@pytest.mark.parametrize("layout", ["diffusers", "official"])
def test_small_with_published_block_count_matches_diffusers(
    published_blocks_case: ParityCase, layout: str
) -> None:
    """Three residual blocks per up stage, as published: the official indices shift
    (flat for Wan 2.1, nested for Wan 2.2)."""
    case = published_blocks_case
    shape, plans = PUBLISHED_BLOCKS[case.version.name]
    decoder = case.decoder(layout)
    latents = case.version.latents(*shape, seed=20)
    reference = diffusers_frame_by_frame(case.vae, latents)
    _assert_meaningful(reference)
    for plan in plans:
        error = _max_error(decode_in_chunks(decoder, latents, plan), reference)
        assert error <= FP32_ATOL, f"{case.version}, {layout}, plan {plan}: max abs error {error:.3g}"


#: Per version: latents (B, T, h, w) and plans for the float64 test.
FLOAT64: dict[str, tuple[tuple[int, int, int, int], list[list[int]]]] = {
    "wan2.1": ((2, 7, 4, 6), [[1] * 7, [7], [3, 1, 1, 1, 1], [2, 2, 3], [5, 2], [1, 6]]),
    "wan2.2": ((2, 6, 3, 5), [[1] * 6, [6], [3, 1, 1, 1], [2, 2, 2], [5, 1], [1, 5]]),
}


@pytest.mark.usefixtures("float64_diffusers")
def test_small_float64_is_exact(small_case: ParityCase) -> None:
    """In float64 the agreement is to summation-order noise: the semantics are identical
    (for Wan 2.2 including the residual stages' shortcut, its first-frame rule and the
    patch order)."""
    shape, plans = FLOAT64[small_case.version.name]
    vae64 = copy.deepcopy(small_case.vae).double()
    decoder = small_case.decoder("official", dtype=torch.float64)
    latents = small_case.version.latents(*shape, seed=30, dtype=torch.float64)
    reference = diffusers_frame_by_frame(vae64, latents)
    for plan in plans:
        output = decode_in_chunks(decoder, latents, plan)
        assert output.dtype == torch.float64
        error = _max_error(output, reference)
        assert error <= FP64_ATOL, f"plan {plan}: max abs error {error:.3g}"


def test_tolerance_is_tight_enough_to_matter(small_case: ParityCase) -> None:
    """A 0.1% change to one RMS-norm scale is caught, and so is a lost chunk history; for
    Wan 2.2 also a stage shortcut left out and an output patch transposed (rows for
    columns)."""
    version = small_case.version
    h, w = (4, 6) if version is WAN21 else (3, 5)
    latents = version.latents(1, 5 if version is WAN21 else 4, h, w, seed=40)
    reference = diffusers_frame_by_frame(small_case.vae, latents)

    nudged = small_case.decoder("diffusers")
    with torch.no_grad():
        dict(nudged.named_parameters())["network.up_stages.3.resnets.0.norm2.gamma"].mul_(1.001)
    assert _max_error(decode_in_chunks(nudged, latents, [1] * latents.shape[1]), reference) > 10 * FP32_ATOL

    decoder = small_case.decoder("diffusers")
    cache = decoder.initialize_autoregressive_cache()
    first = decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    cache.conv_history = [None] * len(cache.conv_history)  # forget the history
    second = decoder(input=latents[:, 3:], autoregressive_index=1, cache=cache)
    forgetful = torch.cat([first, second], dim=1)
    assert _max_error(forgetful[:, :9], reference[:, :9]) <= FP32_ATOL
    assert _max_error(forgetful[:, 9:], reference[:, 9:]) > 1e-2

    if version is WAN22:
        no_shortcut = small_case.decoder("diffusers")
        no_shortcut.network.up_stages[1].shortcut = None
        assert _max_error(decode_in_chunks(no_shortcut, latents, [4]), reference) > 1e-2

        transposed = decoder(input=latents, autoregressive_index=0)
        p = transposed.shape
        patches = transposed.reshape(p[0], p[1], p[2], p[3] // 2, 2, p[4] // 2, 2)
        swapped = patches.transpose(4, 6).reshape(p)
        assert _max_error(transposed, reference) <= FP32_ATOL
        assert _max_error(swapped, reference) > 1e-2


def test_diffusers_own_cached_decoder_mishandles_a_multi_frame_first_chunk(
    small_case: ParityCase,
) -> None:
    """Why the multi-frame first chunk plans matter: diffusers' own cached decoder, fed a
    first chunk of three latent frames, skips time upsampling for the whole chunk (its
    upsamplers treat their first call, not the first frame, as the causal first frame).
    Wan 2.1: it returns 3 frames where frame-by-frame decoding returns 9. Wan 2.2: the
    residual shortcut doubles all but the first frame, so the stage's two paths disagree
    in length and it raises; a single first frame followed by multi-frame chunks works.
    Our decoder takes any plan."""
    vae, version = small_case.vae, small_case.version
    h, w = (4, 6) if version is WAN21 else (3, 5)
    latents = version.latents(1, 3 if version is WAN21 else 4, h, w, seed=50)
    reference = diffusers_frame_by_frame(vae, latents)
    with torch.no_grad():
        x = vae.post_quant_conv(_denormalized(small_case, latents))
        vae.clear_cache()
        if version is WAN21:
            chunked = vae.decoder(x, feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
            vae.clear_cache()
            assert chunked.shape[2] == 3
            assert reference.shape[1] == 9
            assert decode_in_chunks(small_case.decoder("diffusers"), latents, [3]).shape[1] == 9
            return
        with pytest.raises(RuntimeError, match=r"size of tensor a \(3\) must match .* \(5\)"):
            vae.decoder(x[:, :, :3], feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
        vae.clear_cache()
        first = vae.decoder(x[:, :, :1], feat_cache=vae._feat_map, feat_idx=[0], first_chunk=True)
        rest = vae.decoder(x[:, :, 1:], feat_cache=vae._feat_map, feat_idx=[0])
        vae.clear_cache()
    from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

    theirs = unpatchify(torch.cat([first, rest], dim=2), 2).clamp(-1, 1).transpose(1, 2)
    assert _max_error(theirs, reference) <= FP32_ATOL
    ours = decode_in_chunks(small_case.decoder("diffusers"), latents, [3, 1])
    assert _max_error(ours, reference) <= FP32_ATOL


def test_diffusers_public_decode_is_the_frame_by_frame_reference(small_case: ParityCase) -> None:
    """``AutoencoderKLWan.decode`` (given de-normalized latents) is exactly our reference."""
    vae = small_case.vae
    h, w = (4, 6) if small_case.version is WAN21 else (3, 5)
    latents = small_case.version.latents(1, 4 if small_case.version is WAN21 else 3, h, w, seed=60)
    with torch.no_grad():
        public = vae.decode(_denormalized(small_case, latents)).sample.transpose(1, 2)
    assert torch.equal(public, diffusers_frame_by_frame(vae, latents))


#: Per version: latents (B, T, h, w), plans, the reference's shape; for Wan 2.1 a second
#: latent sequence (T) and plan for the official layout (Wan 2.2 runs every plan in both).
FULL_SIZE: dict[str, dict[str, Any]] = {
    "wan2.1": dict(shape=(1, 4, 4, 6), plans=[[1, 1, 1, 1], [4], [3, 1], [2, 2], [1, 3], [2, 1, 1]],
                   official=(3, [2, 1]), reference=(1, 13, 3, 32, 48)),
    "wan2.2": dict(shape=(1, 3, 2, 3), plans=[[1, 1, 1], [3], [2, 1]], reference=(1, 9, 3, 32, 48)),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_full_size_matches_diffusers(
    version: Version, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    """The published architectures, float32, both layouts: the two load the same network,
    and decode diffusers' frames under chunk plans. Wan 2.1 (base width 96, three blocks
    per stage): 4x6 latents. Wan 2.2 (base 256, 555M parameters): 2x3 latents, run only
    with ``WAN22_FULL_SIZE=1`` (~10 GB of memory and minutes of CPU)."""
    if version is WAN22 and os.environ.get("WAN22_FULL_SIZE") != "1":
        pytest.skip("full-width Wan 2.2 parity needs ~10 GB and minutes of CPU: set WAN22_FULL_SIZE=1")
    params = FULL_SIZE[version.name]
    if version is WAN21:
        case = request.getfixturevalue("full_case")
    else:
        case = make_case(tmp_path_factory, WAN22, "wan2.2_full", {}, seed=6)
    latents = version.latents(*params["shape"], seed=10 if version is WAN21 else 70)
    reference = diffusers_frame_by_frame(case.vae, latents)
    assert reference.shape == params["reference"]
    _assert_meaningful(reference)

    diffusers_loaded = case.decoder("diffusers")
    official = case.decoder("official")
    assert (diffusers_loaded.checkpoint_layout, official.checkpoint_layout) == ("diffusers", "official")
    for (name, ours), (_, theirs) in zip(
        official.state_dict().items(), diffusers_loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(ours, theirs), name
    errors = {}
    for layout, decoder in (("diffusers", diffusers_loaded), ("official", official)):
        plans = params["plans"] if layout == "diffusers" or version is WAN22 else []
        for plan in plans:
            errors[layout, tuple(plan)] = _max_error(decode_in_chunks(decoder, latents, plan), reference)
    if version is WAN21:  # the official layout on a second latent sequence
        frames, plan = params["official"]
        other = version.latents(1, frames, 4, 6, seed=11)
        errors["official", tuple(plan)] = _max_error(
            decode_in_chunks(official, other, plan), diffusers_frame_by_frame(case.vae, other)
        )
    print(f"{version} full-size fp32 CPU max abs errors:", errors)
    assert max(errors.values()) <= FP32_ATOL, errors
    if version is WAN22:
        for path in (case.diffusers_path, case.official_path):
            Path(path).unlink()

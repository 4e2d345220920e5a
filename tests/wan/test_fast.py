"""The fast path (reference_decoders.wan.fast) computes the eager decoder's function, for
Wan 2.1 and Wan 2.2, and with one-latent-frame tiles a streamed decode equals the one-call
decode bit for bit.

Runs on CUDA (marked ``cuda``: ``pytest -m cuda`` selects them); on a machine without one,
only under Triton's CPU interpreter (``TRITON_INTERPRET=1`` with Triton installed: slow,
for checking the kernels' logic; e.g. ``pip install --target /tmp/t triton==3.6.0
"numpy<2.4"`` and ``PYTHONPATH=/tmp/t``), else skipped. The wiring tests at the end run
everywhere.

Tolerances are the kit's derived defaults (``conformance.checks.harness.tolerances``): float32 fast vs
float32 eager differ by reassociation only (fused norms, the sub-pixel conv's collapsed
taps, cuDNN algorithms; observed ~1e-5 on the H100 with TF32 off, 4e-6 in the
interpreter), bfloat16 fast vs the float32 eager reference by bf16 rounding. Weights are
seeded random with every norm scale and bias away from 1 and 0, so a bias folded into
the wrong kernel shows.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder
from reference_decoders.wan.fast import fast_path_support

from .helpers import VERSIONS, Version, decode_in_chunks

tolerances = pytest.importorskip("conformance.checks.harness.tolerances")


def _fast_device() -> str | None:
    if torch.cuda.is_available() and fast_path_support(torch.device("cuda"), torch.float32) is None:
        return "cuda"
    if fast_path_support(torch.device("cpu"), torch.float32) is None:
        return "cpu"  # Triton interpreter
    return None


DEVICE = _fast_device()
ON_GPU = DEVICE == "cuda"


def needs_fast(test: Any) -> Any:
    """A test of the fast path's numbers: marked ``cuda`` (so ``pytest -m cuda`` runs it on
    a GPU machine and the root conftest skips it elsewhere), unless Triton's interpreter
    is asked for, where it runs on the CPU."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return pytest.mark.skipif(DEVICE is None, reason="needs Triton for its interpreter")(test)
    return pytest.mark.cuda(test)
#: Weight seeds of the original per-version files (the observed errors above were theirs).
WEIGHT_SEED = {"wan2.1": 11, "wan2.2": 12}


@pytest.fixture(autouse=True)
def _no_tf32(no_tf32: None) -> None:
    """Every test here compares against float32 references: no TF32 anywhere."""


def _randomize_(decoder: WanVAEDecoder, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in decoder.network.named_parameters():
            noise = torch.randn(param.shape, generator=generator)
            if name.endswith("gamma"):
                param.copy_(1 + 0.2 * noise)
            elif name.endswith("bias"):
                param.copy_(0.1 * noise)


def _pair(
    version: Version, architecture: dict[str, Any], dtype: torch.dtype, **fast_options: Any
) -> tuple[WanVAEDecoder, WanVAEDecoder]:
    """(eager fp32 on the CPU, fast decoder on DEVICE in ``dtype``) with the same weights."""
    eager = version.config(
        device="cpu", dtype=torch.float32, fast_path=False, **architecture
    ).setup()
    _randomize_(eager, seed=WEIGHT_SEED[version.name])
    fast = version.config(
        device=DEVICE, dtype=dtype, fast_path=True, **architecture, **fast_options
    ).setup()
    fast.network.load_state_dict(eager.network.state_dict())
    assert fast.uses_fast_path and not eager.uses_fast_path
    return eager, fast


def _latents(version: Version, b: int, t: int, h: int, w: int, seed: int) -> torch.Tensor:
    shape = (b, t, version.latent_channels, h, w)
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _assert_close(
    actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str
) -> None:
    """The kit's own comparison under its default tolerance for ``dtype``: every element
    within atol + rtol * |expected| and every pixel frame's RMS error within the frame
    RMS bound. Outputs are ``[B, T, C, H, W]``; the kit compares ``[B, C, T, H, W]``."""
    tol = tolerances.default_tolerance(dtype)
    actual = actual.detach().cpu().permute(0, 2, 1, 3, 4)
    expected = expected.detach().cpu().permute(0, 2, 1, 3, 4)
    comparison = tolerances.compare(expected, actual, tol)
    assert comparison.ok, (
        f"{what}: largest error {comparison.max_abs_error:.3g} ({comparison.ratio:.3g}x the "
        f"elementwise bound), worst frame RMS {comparison.rms_error:.3g} "
        f"({comparison.rms_ratio:.3g}x the frame RMS bound) under {tol}"
    )


PLANS = ([5], [1, 1, 1, 1, 1], [3, 2], [2, 1, 2])
#: What the Triton interpreter runs of the GPU's grid (it is slow): (version, tile, layout).
INTERPRETER_CASES = {("wan2.1", 2, "auto"), ("wan2.1", 1, "conv3d"), ("wan2.2", 2, "auto"), ("wan2.2", 1, "conv3d")}


@needs_fast
@pytest.mark.parametrize("version", VERSIONS, ids=str)
@pytest.mark.parametrize("tile", [1, 2, 5])
@pytest.mark.parametrize("layout", ["auto", "stacked", "conv3d"])
def test_fast_float32_matches_eager_under_chunk_plans(
    version: Version, tile: int, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chunk plan (multi-frame first chunks included), tile size and conv form gives
    the eager decoder's frames, batch 2."""
    if not ON_GPU and (version.name, tile, layout) not in INTERPRETER_CASES:
        pytest.skip("the Triton interpreter is slow: a few combinations on the CPU")
    from reference_decoders.wan.fast import network

    if layout != "auto":
        monkeypatch.setattr(network, "use_stacked_conv", lambda c, t, p=0: layout == "stacked")
    eager, fast = _pair(version, version.small, torch.float32, tile_latent_frames=tile)
    latents = _latents(version, 2, 5, 2, 3, seed=1)
    expected = decode_in_chunks(eager, latents, [5])
    for plan in PLANS if ON_GPU else PLANS[1:3]:
        actual = decode_in_chunks(fast, latents.to(DEVICE), plan)
        _assert_close(actual, expected, torch.float32, f"{version}, tile {tile}, plan {plan}")


@needs_fast
@pytest.mark.parametrize("version", VERSIONS, ids=str)
@pytest.mark.parametrize("layout", ["auto", "stacked", "conv3d"])
def test_one_frame_tiles_stream_bit_for_bit(
    version: Version, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With one-latent-frame tiles (the default) every tile runs the same kernels on the
    same shapes whatever the chunk plan, so any plan gives exactly the one-call decode
    (bf16 on the GPU, float32 in the interpreter), batch 2."""
    if not ON_GPU and layout == "stacked":
        pytest.skip("the Triton interpreter is slow: two conv forms on the CPU")
    from reference_decoders.wan.fast import network

    if layout != "auto":
        monkeypatch.setattr(network, "use_stacked_conv", lambda c, t, p=0: layout == "stacked")
    dtype = torch.bfloat16 if ON_GPU else torch.float32
    _, fast = _pair(version, version.small, dtype)
    latents = _latents(version, 2, 5, 2, 3, seed=6).to(DEVICE, dtype)
    whole = fast(input=latents)
    for plan in ([1, 1, 1, 1, 1], [3, 2], [2, 1, 2]) if ON_GPU else ([1, 3, 1],):
        assert torch.equal(decode_in_chunks(fast, latents, plan), whole), plan


@needs_fast
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_eager_and_fast_caches_are_interchangeable(version: Version) -> None:
    """History tensors keep the eager layout's logical shape: a rollout can switch paths."""
    eager, fast = _pair(version, version.small, torch.float32)
    eager_on_device = version.config(
        device=DEVICE, dtype=torch.float32, fast_path=False, **version.small
    ).setup()
    eager_on_device.network.load_state_dict(eager.network.state_dict())
    latents = _latents(version, 1, 3, 2, 3, seed=2).to(DEVICE)
    expected = decode_in_chunks(eager, latents.cpu(), [3])
    cache = eager_on_device.initialize_autoregressive_cache()
    first = eager_on_device(input=latents[:, :1], autoregressive_index=0, cache=cache)
    second = fast(input=latents[:, 1:2], autoregressive_index=1, cache=cache)
    third = eager_on_device(input=latents[:, 2:], autoregressive_index=2, cache=cache)
    together = torch.cat([first, second, third], dim=1)
    _assert_close(together, expected, torch.float32, "eager/fast/eager")


@needs_fast
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_weights_changed_after_setup_are_used(version: Version) -> None:
    """The fast path repacks weights when a parameter changes (no stale copies)."""
    eager, fast = _pair(version, version.small, torch.float32)
    latents = _latents(version, 1, 2, 2, 3, seed=3)
    fast(input=latents.to(DEVICE))  # packs the weights
    with torch.no_grad():
        for decoder in (eager, fast):
            params = dict(decoder.network.named_parameters())
            params["up_stages.1.upsampler.conv.weight"].mul_(-0.5)
            params["mid.resnets.0.norm2.gamma"].add_(0.3)
    _assert_close(fast(input=latents.to(DEVICE)), eager(input=latents), torch.float32, "after edit")


@needs_fast
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_returned_frames_and_cache_inputs_are_not_modified_later(version: Version) -> None:
    eager, fast = _pair(version, version.small, torch.float32)
    latents = _latents(version, 1, 4, 2, 3, seed=4).to(DEVICE)
    kept = latents.clone()
    cache = fast.initialize_autoregressive_cache()
    first = fast(input=latents[:, :2], autoregressive_index=0, cache=cache)
    first_copy = first.clone()
    history = list(cache.conv_history)
    history_copies = [h.clone() for h in history if h is not None]
    fast(input=latents[:, 2:], autoregressive_index=1, cache=cache)
    assert torch.equal(first, first_copy)
    assert torch.equal(latents, kept)
    kept_history = [h for h in history if h is not None]
    assert all(torch.equal(h, c) for h, c in zip(kept_history, history_copies))


#: Per version: latents (B, T, h, w) and plans of the bf16 test (the kit's latent sizes).
BF16_CASES = {"wan2.1": ((1, 6, 8, 8), ([6], [3, 1, 1, 1], [1] * 6)), "wan2.2": ((1, 4, 4, 4), ([4], [2, 1, 1], [1] * 4))}


@pytest.mark.cuda
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA with Triton")
@pytest.mark.parametrize("size", ["small", "full"])
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_fast_bf16_is_within_the_kit_tolerance_of_fp32_eager(version: Version, size: str) -> None:
    """bf16 on the GPU against the float32 eager reference, at the kit's latent size."""
    architecture = version.small if size == "small" else {}
    eager, fast = _pair(version, architecture, torch.bfloat16)
    shape, plans = BF16_CASES[version.name]
    latents = _latents(version, *shape, seed=5)
    expected = decode_in_chunks(eager, latents, [shape[1]])
    for plan in plans:
        actual = decode_in_chunks(fast, latents.to("cuda", torch.bfloat16), plan).float()
        _assert_close(actual, expected, torch.bfloat16, f"{version} {size}, plan {plan}")


# ------------------------------------------------------------------ wiring (anywhere)


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_fast_path_off_runs_the_eager_modules(version: Version) -> None:
    assert not version.decoder(fast_path=False).uses_fast_path


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_fast_path_auto_is_off_where_it_cannot_run(version: Version, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert not version.decoder().uses_fast_path
    with pytest.raises(ValueError, match="fast_path=True, but the fast path cannot run here"):
        version.decoder(fast_path=True)
    with pytest.raises(ValueError, match="float64"):
        version.decoder(dtype=torch.float64, fast_path=True)


@pytest.mark.cuda
@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_fast_bf16_is_the_default_on_cuda(version: Version) -> None:
    decoder = version.config(**version.small).setup()
    supported = fast_path_support(torch.device("cuda"), torch.bfloat16) is None
    assert decoder.dtype == torch.bfloat16 and decoder.uses_fast_path == supported
    output = decoder(input=_latents(version, 1, 3, 2, 2, seed=0))
    s = version.spatial_ratio
    assert output.shape == (1, 9, 3, 2 * s, 2 * s) and output.dtype == torch.bfloat16


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_tile_size_is_validated(version: Version) -> None:
    with pytest.raises(ValueError, match="tile_latent_frames must be >= 1"):
        version.decoder(tile_latent_frames=0)


def test_layout_rule_is_the_measured_one() -> None:
    """Stacked conv2d for narrow inputs and 384 channels over several frames; conv3d for
    192 and Wan 2.2's 256/512/1024, and one frame of 384+ (benchmarks/NOTES.md)."""
    from reference_decoders.wan.fast.layout import use_stacked_conv

    assert all(use_stacked_conv(c, 4) for c in (16, 48, 96))
    assert use_stacked_conv(384, 2) and not use_stacked_conv(384, 1)
    assert not any(use_stacked_conv(c, t) for c in (192, 256, 512, 1024) for t in (1, 2, 4))

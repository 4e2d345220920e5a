"""The fast path (reference_decoders.wan.fast) computes the eager decoder's function.

Runs on CUDA; on a machine without one, only under Triton's CPU interpreter
(``TRITON_INTERPRET=1`` with Triton installed: slow, for checking the kernels' logic),
else skipped. The wiring tests at the end run everywhere.

Tolerances are the kit's derived defaults (``conformance.checks.tolerances``): float32 fast vs
float32 eager differ by reassociation only (fused norms, the sub-pixel conv's collapsed
taps, cuDNN algorithms; observed ~1e-5 on the H100 with TF32 off), bfloat16 fast vs the
float32 eager reference by bf16 rounding. Weights are seeded random with every norm
scale and bias away from 1 and 0, so a bias folded into the wrong kernel shows.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from reference_decoders.wan import WanVAEDecoder, WanVAEDecoderConfig
from reference_decoders.wan.fast import fast_path_support

from .helpers import SMALL, decode_in_chunks

tolerances = pytest.importorskip("conformance.checks.tolerances")


def _fast_device() -> str | None:
    if torch.cuda.is_available() and fast_path_support(torch.device("cuda"), torch.float32) is None:
        return "cuda"
    if fast_path_support(torch.device("cpu"), torch.float32) is None:
        return "cpu"  # Triton interpreter
    return None


DEVICE = _fast_device()
needs_fast = pytest.mark.skipif(
    DEVICE is None, reason="the fast path needs CUDA with Triton (or TRITON_INTERPRET=1)"
)
ON_GPU = DEVICE == "cuda"


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
    architecture: dict[str, Any], dtype: torch.dtype, **fast_options: Any
) -> tuple[WanVAEDecoder, WanVAEDecoder]:
    """(eager fp32 on the CPU, fast decoder on DEVICE in ``dtype``) with the same weights."""
    eager = WanVAEDecoderConfig(
        device="cpu", dtype=torch.float32, fast_path=False, **architecture
    ).setup()
    _randomize_(eager, seed=11)
    fast = WanVAEDecoderConfig(
        device=DEVICE, dtype=dtype, fast_path=True, **architecture, **fast_options
    ).setup()
    fast.network.load_state_dict(eager.network.state_dict())
    assert fast.uses_fast_path and not eager.uses_fast_path
    return eager, fast


def _latents(*shape: int, seed: int) -> torch.Tensor:
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


@needs_fast
@pytest.mark.parametrize("tile", [1, 2, 5])
@pytest.mark.parametrize("layout", ["auto", "stacked", "conv3d"])
def test_fast_float32_matches_eager_under_chunk_plans(
    tile: int, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every chunk plan, tile size and conv form gives the eager decoder's frames (batch 2)."""
    if not ON_GPU and (tile, layout) not in ((2, "auto"), (1, "conv3d")):
        pytest.skip("the Triton interpreter is slow: two combinations on the CPU")
    from reference_decoders.wan.fast import network

    if layout != "auto":
        monkeypatch.setattr(network, "use_stacked_conv", lambda c, t, p=0: layout == "stacked")
    eager, fast = _pair(SMALL, torch.float32, tile_latent_frames=tile)
    latents = _latents(2, 5, 16, 2, 3, seed=1)
    expected = decode_in_chunks(eager, latents, [5])
    for plan in PLANS if ON_GPU else PLANS[1:3]:
        actual = decode_in_chunks(fast, latents.to(DEVICE), plan)
        _assert_close(actual, expected, torch.float32, f"plan {plan}")


@needs_fast
def test_eager_and_fast_caches_are_interchangeable() -> None:
    """History tensors keep the eager layout's logical shape: a rollout can switch paths."""
    eager, fast = _pair(SMALL, torch.float32)
    eager_on_device = WanVAEDecoderConfig(
        device=DEVICE, dtype=torch.float32, fast_path=False, **SMALL
    ).setup()
    eager_on_device.network.load_state_dict(eager.network.state_dict())
    latents = _latents(1, 3, 16, 2, 3, seed=2).to(DEVICE)
    expected = decode_in_chunks(eager, latents.cpu(), [3])
    cache = eager_on_device.initialize_autoregressive_cache()
    first = eager_on_device(input=latents[:, :1], autoregressive_index=0, cache=cache)
    second = fast(input=latents[:, 1:2], autoregressive_index=1, cache=cache)
    third = eager_on_device(input=latents[:, 2:], autoregressive_index=2, cache=cache)
    together = torch.cat([first, second, third], dim=1)
    _assert_close(together, expected, torch.float32, "eager/fast/eager")


@needs_fast
def test_weights_changed_after_setup_are_used() -> None:
    """The fast path repacks weights when a parameter changes (no stale copies)."""
    eager, fast = _pair(SMALL, torch.float32)
    latents = _latents(1, 2, 16, 2, 3, seed=3)
    fast(input=latents.to(DEVICE))  # packs the weights
    with torch.no_grad():
        for decoder in (eager, fast):
            params = dict(decoder.network.named_parameters())
            params["up_stages.1.upsampler.conv.weight"].mul_(-0.5)
            params["mid.resnets.0.norm2.gamma"].add_(0.3)
    _assert_close(fast(input=latents.to(DEVICE)), eager(input=latents), torch.float32, "after edit")


@needs_fast
def test_returned_frames_and_cache_inputs_are_not_modified_later() -> None:
    eager, fast = _pair(SMALL, torch.float32)
    latents = _latents(1, 4, 16, 2, 3, seed=4).to(DEVICE)
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


@pytest.mark.cuda
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA with Triton")
@pytest.mark.parametrize("architecture", [SMALL, {}], ids=["small", "full"])
def test_fast_bf16_is_within_the_kit_tolerance_of_fp32_eager(architecture: dict[str, Any]) -> None:
    """bf16 on the GPU against the float32 eager reference, at the kit's latent size."""
    eager, fast = _pair(architecture, torch.bfloat16)
    latents = _latents(1, 6, 16, 8, 8, seed=5)
    expected = decode_in_chunks(eager, latents, [6])
    for plan in ([6], [3, 1, 1, 1], [1] * 6):
        actual = decode_in_chunks(fast, latents.to("cuda", torch.bfloat16), plan).float()
        _assert_close(actual, expected, torch.bfloat16, f"plan {plan}")


# ------------------------------------------------------------------ wiring (anywhere)


def test_fast_path_off_runs_the_eager_modules() -> None:
    decoder = WanVAEDecoderConfig(device="cpu", fast_path=False, **SMALL).setup()
    assert not decoder.uses_fast_path


def test_fast_path_auto_is_off_where_it_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    decoder = WanVAEDecoderConfig(device="cpu", **SMALL).setup()
    assert not decoder.uses_fast_path
    with pytest.raises(ValueError, match="fast_path=True, but the fast path cannot run here"):
        WanVAEDecoderConfig(device="cpu", fast_path=True, **SMALL).setup()
    with pytest.raises(ValueError, match="float64"):
        WanVAEDecoderConfig(device="cpu", dtype=torch.float64, fast_path=True, **SMALL).setup()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_path_is_the_default_on_cuda() -> None:
    decoder = WanVAEDecoderConfig(**SMALL).setup()
    supported = fast_path_support(torch.device("cuda"), torch.bfloat16) is None
    assert decoder.uses_fast_path == supported


def test_tile_size_is_validated() -> None:
    with pytest.raises(ValueError, match="tile_latent_frames must be >= 1"):
        WanVAEDecoderConfig(device="cpu", tile_latent_frames=0, **SMALL).setup()


"""The fast path runs the Wan 2.2 decoder's function too (residual stages' shortcut, output
patches), on CUDA or under Triton's CPU interpreter; see ``test_fast`` for the method and
the tolerances (the kit's derived defaults).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from reference_decoders.wan import Wan22VAEDecoderConfig, WanVAEDecoder

from .helpers import WAN22_SMALL, decode_in_chunks
from .test_fast import DEVICE, ON_GPU, _assert_close, _latents, _randomize_, needs_fast


@pytest.fixture(autouse=True)
def _no_tf32(no_tf32: None) -> None:
    """Every test here compares against float32 references: no TF32 anywhere."""


def _pair(
    architecture: dict[str, Any], dtype: torch.dtype, **fast_options: Any
) -> tuple[WanVAEDecoder, WanVAEDecoder]:
    """(eager fp32 on the CPU, fast decoder on DEVICE in ``dtype``) with the same weights."""
    eager = Wan22VAEDecoderConfig(
        device="cpu", dtype=torch.float32, fast_path=False, **architecture
    ).setup()
    _randomize_(eager, seed=12)
    fast = Wan22VAEDecoderConfig(
        device=DEVICE, dtype=dtype, fast_path=True, **architecture, **fast_options
    ).setup()
    fast.network.load_state_dict(eager.network.state_dict())
    assert fast.uses_fast_path and not eager.uses_fast_path
    return eager, fast


@needs_fast
@pytest.mark.parametrize("tile", [1, 2, 5])
def test_fast_float32_matches_eager_under_chunk_plans(tile: int) -> None:
    """Chunk plans with multi-frame first chunks, every tile size, batch 2."""
    if not ON_GPU and tile != 2:
        pytest.skip("the Triton interpreter is slow: one tile size on the CPU")
    eager, fast = _pair(WAN22_SMALL, torch.float32, tile_latent_frames=tile)
    latents = _latents(2, 5, 48, 2, 3, seed=1)
    expected = decode_in_chunks(eager, latents, [5])
    plans = ([5], [1, 1, 1, 1, 1], [3, 2], [2, 1, 2])
    for plan in plans if ON_GPU else plans[1:3]:
        actual = decode_in_chunks(fast, latents.to(DEVICE), plan)
        _assert_close(actual, expected, torch.float32, f"tile {tile}, plan {plan}")


@pytest.mark.cuda
@pytest.mark.skipif(not ON_GPU, reason="needs CUDA with Triton")
@pytest.mark.parametrize("architecture", [WAN22_SMALL, {}], ids=["small", "full"])
def test_fast_bf16_is_within_the_kit_tolerance_of_fp32_eager(architecture: dict[str, Any]) -> None:
    """bf16 on the GPU against the float32 eager reference, at the kit's latent size."""
    eager, fast = _pair(architecture, torch.bfloat16)
    latents = _latents(1, 4, 48, 4, 4, seed=5)
    expected = decode_in_chunks(eager, latents, [4])
    for plan in ([4], [2, 1, 1], [1] * 4):
        actual = decode_in_chunks(fast, latents.to("cuda", torch.bfloat16), plan).float()
        _assert_close(actual, expected, torch.bfloat16, f"plan {plan}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fast_bf16_is_the_default_on_cuda() -> None:
    decoder = Wan22VAEDecoderConfig(**WAN22_SMALL).setup()
    assert decoder.dtype == torch.bfloat16 and decoder.uses_fast_path
    output = decoder(input=_latents(1, 3, 48, 2, 2, seed=0))
    assert output.shape == (1, 9, 3, 32, 32) and output.dtype == torch.bfloat16

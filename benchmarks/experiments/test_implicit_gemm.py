"""The Triton implicit-GEMM causal conv of experiment 3 (``implicit_gemm.py`` beside this).

An experiment, not part of the decoder: cuDNN was faster on every conv shape of the Wan
decoders (benchmarks/NOTES.md, experiment 3), so the kernel left the fast path. It stays
runnable here: ``python -m pytest benchmarks/experiments/test_implicit_gemm.py`` (not
collected by the suite's default run, whose test path is ``tests/``).

The kernel is checked against ``F.conv3d`` in float64 over the frames its segments
join, under a rigorous error bound rather than a tuned tolerance: the float32
accumulation of ``K = 27 C`` products errs by at most ``K u32 * sum|x||w|`` (the
standard dot-product bound, ``u32 = 2^-24``), and the one rounding of the output to the
storage dtype adds at most ``u * |y|`` (``u = 2^-8`` for bfloat16, ``2^-24`` for float32).

Runs on CUDA (bfloat16 and float32 kernel checks, any GPU) or under Triton's CPU interpreter (``TRITON_INTERPRET=1``,
float32), else skipped. Triton 3.6's interpreter needs numpy < 2.4 (it converts
one-element arrays to Python ints, which numpy 2.4 refuses); e.g.
``pip install --target /tmp/t triton==3.6.0 "numpy<2.4"`` and ``PYTHONPATH=/tmp/t``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import implicit_gemm  # noqa: E402

ON_GPU = torch.cuda.is_available()
DEVICE = "cuda" if ON_GPU else "cpu"
needs_fast = pytest.mark.skipif(
    not ON_GPU and os.environ.get("TRITON_INTERPRET") != "1",
    reason="needs CUDA, or Triton's interpreter (TRITON_INTERPRET=1)",
)


def _reference(frames: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``[F, H, W, C]`` frames, ``[Co, C, kt, kh, kw]`` weight -> ``[T, H, W, Co]`` float64."""
    x = frames.double().permute(3, 0, 1, 2).unsqueeze(0)
    pad = (0, weight.shape[3] // 2, weight.shape[4] // 2)
    return F.conv3d(x, weight.double(), padding=pad)[0].permute(1, 2, 3, 0)


CASES = [  # frames out, height, width, channels in, out, segment frame counts, tile
    (2, 5, 7, 32, 48, [2, 2], implicit_gemm.TileConfig(32, 16, 32, 4, 1, 2)),
    (1, 4, 9, 64, 16, [1, 2], implicit_gemm.TileConfig(16, 16, 32, 4, 1, 8)),
    (3, 3, 4, 32, 40, [2, 1, 2], implicit_gemm.TileConfig(32, 32, 32, 4, 1, 1)),
    (4, 6, 5, 16, 24, [6], implicit_gemm.TileConfig(64, 32, 16, 4, 2, 8)),
    (2, 9, 11, 96, 96, [2, 2], None),  # the default tiles for Wan widths: one row,
    (1, 3, 16, 192, 256, [1, 2], None),  # several rows
    # TMA tiles: rows of block_w pixels; zero fill past every border is the padding
    (2, 5, 7, 32, 48, [2, 2], implicit_gemm.TileConfig(32, 32, 16, 4, 2, 2, block_w=8)),
    (1, 4, 9, 64, 16, [1, 2], implicit_gemm.TileConfig(32, 16, 16, 4, 3, 8, block_w=16)),
    (3, 3, 4, 32, 40, [2, 1, 2], implicit_gemm.TileConfig(16, 32, 16, 4, 1, 1, block_w=4)),
    (2, 3, 21, 64, 32, [2, 2], implicit_gemm.TileConfig(16, 32, 64, 4, 3, 8, block_w=16)),
]


@needs_fast
@pytest.mark.parametrize("case", CASES, ids=lambda c: "x".join(map(str, c[:5])) + f"-{c[5]}")
@pytest.mark.parametrize("epilogue", ["plain", "bias+residual"])
@pytest.mark.parametrize("storage", ["bfloat16", "float32"])
def test_kernel_matches_conv3d_within_the_rounding_bound(
    case: tuple, epilogue: str, storage: str
) -> None:
    """float32 on the GPU also proves the kernel never multiplies in TF32 (10-bit
    mantissas would exceed the float32 bound by orders of magnitude)."""
    t, h, w, c, co, split, config = case
    dtype = getattr(torch, storage)
    if dtype == torch.bfloat16 and not ON_GPU:
        pytest.skip("bfloat16 dot products need a GPU (the interpreter checks float32)")
    g = torch.Generator().manual_seed(sum(split) * 100 + c)
    frames = torch.randn(t + 2, h, w, c, generator=g).to(dtype)
    weight = (torch.randn(co, c, 3, 3, 3, generator=g) / (27 * c) ** 0.5).to(dtype)
    bias = residual = None
    expected = _reference(frames, weight)
    bound_terms = _reference(frames.abs(), weight.abs())
    if epilogue != "plain":
        bias = torch.randn(co, generator=g).to(dtype)
        residual = torch.randn(t, h, w, co, generator=g).to(dtype)
        expected = expected + bias.double() + residual.double()
        bound_terms = bound_terms + bias.double().abs() + residual.double().abs()
    segments = [s.contiguous().to(DEVICE) for s in torch.split(frames, split)]
    actual = implicit_gemm.causal_conv(
        segments,
        implicit_gemm.pack_weight(weight.to(DEVICE)),
        (3, 3, 3),
        bias=None if bias is None else bias.to(DEVICE),
        residual=None if residual is None else residual.to(DEVICE),
        config=config,
    )
    assert actual.shape == (t, h, w, co) and actual.dtype == dtype
    k = 27 * c + 2
    u_out = 2.0**-8 if dtype == torch.bfloat16 else 2.0**-24
    bound = k * 2.0**-24 * bound_terms + u_out * expected.abs() + 1e-30
    error = (actual.cpu().double() - expected).abs()
    worst = (error / bound).max().item()
    assert worst <= 1.0, f"error reaches {worst:.3g}x the rounding bound"


@needs_fast
def test_kernel_refuses_inputs_it_cannot_compute() -> None:
    x = torch.zeros(3, 4, 4, 32, device=DEVICE)
    w = implicit_gemm.pack_weight(torch.zeros(8, 32, 3, 3, 3, device=DEVICE))
    with pytest.raises(ValueError, match="1 to 3 segments"):
        implicit_gemm.causal_conv([x] * 4, w, (3, 3, 3))
    with pytest.raises(ValueError, match="one pixel shape"):
        implicit_gemm.causal_conv([x, x[:, :2]], w, (3, 3, 3))
    with pytest.raises(ValueError, match=r"packed weight must be \[864, Co\]"):
        implicit_gemm.causal_conv([x], w[:100], (3, 3, 3))
    with pytest.raises(ValueError, match="2 input frames for a 3-frame kernel"):
        implicit_gemm.causal_conv([x[:2]], w, (3, 3, 3))
    with pytest.raises(ValueError, match="residual must be dense"):
        implicit_gemm.causal_conv([x], w, (3, 3, 3), residual=torch.zeros(2, 4, 4, 8))
    with pytest.raises(ValueError, match="spatial kernel must be odd"):
        implicit_gemm.causal_conv([x], w, (3, 2, 2))
    several_rows_128_byte_channels = implicit_gemm.TileConfig(32, 16, 32, 4, 3, block_w=8)
    with pytest.raises(ValueError, match="miscompiled by Triton"):
        implicit_gemm.causal_conv([x], w, (3, 3, 3), config=several_rows_128_byte_channels)


def test_default_tiles_fit_every_wan_width() -> None:
    """Every conv width of the published decoders gets a tile whose block_k divides it."""
    for c in (96, 192, 384, 256, 512, 1024, 16, 32):
        for width in (8, 104, 416, 832, 80, 640):
            for tma, size in ((True, 2), (True, 4), (False, 2)):
                config = implicit_gemm.default_config(c, c, width, tma=tma, element_size=size)
                assert config.block_w in (0, config.block_m) or config.block_k * size < 128
                assert c % config.block_k == 0, (c, config)
                assert not config.block_w or config.block_m % config.block_w == 0
                assert tma or not config.block_w

"""The Triton implicit-GEMM causal conv (reference_decoders.wan.fast.implicit_gemm).

The kernel is checked against ``F.conv3d`` in float64 over the frames its segments
join, under a rigorous error bound rather than a tuned tolerance: the float32
accumulation of ``K = 27 C`` products errs by at most ``K u32 * sum|x||w|`` (the
standard dot-product bound, ``u32 = 2^-24``), and the one rounding of the output to the
storage dtype adds at most ``u * |y|`` (``u = 2^-8`` for bfloat16, ``2^-24`` for float32).

Then the executor wired to it: :class:`FastWanNetwork` with every conv the kernel can
take routed through it must give the eager decoder's frames under chunk plans, tile
sizes and a batch of two (history read in place across tiles and calls).

Runs on CUDA (bfloat16 kernel checks, any GPU: the layout rule that limits the kernel to
Hopper is bypassed here) or under Triton's CPU interpreter (``TRITON_INTERPRET=1``,
float32), else skipped. Triton 3.6's interpreter needs numpy < 2.4 (it converts
one-element arrays to Python ints, which numpy 2.4 refuses); e.g.
``pip install --target /tmp/t triton==3.6.0 "numpy<2.4"`` and ``PYTHONPATH=/tmp/t``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reference_decoders.wan.fast.layout import implicit_gemm_accepts

from .helpers import SMALL, decode_in_chunks
from .test_fast import DEVICE, ON_GPU, _assert_close, _latents, _pair, needs_fast

implicit_gemm = pytest.importorskip("reference_decoders.wan.fast.implicit_gemm")


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


def _route_through_kernel(c: int, co: int, t: int) -> bool:
    return implicit_gemm_accepts(c)


@needs_fast
@pytest.mark.parametrize("tile", [1, 2])
def test_executor_with_the_kernel_matches_eager_under_chunk_plans(tile: int) -> None:
    """Every conv the kernel can take (16 and 32 channels of the small config) runs on it,
    the rest on cuDNN; the frames are the eager decoder's under chunk plans (batch 2),
    so history read in place across tiles, chunks and batch elements is right."""
    if not ON_GPU and tile == 1:
        pytest.skip("the Triton interpreter is slow: one tile size on the CPU")
    dtype = torch.bfloat16 if ON_GPU else torch.float32
    eager, fast = _pair(SMALL, dtype, tile_latent_frames=tile)
    assert fast._fast is not None
    fast._fast.implicit = _route_through_kernel
    latents = _latents(2, 5, 16, 2, 3, seed=21)
    expected = decode_in_chunks(eager, latents, [5])
    for plan in ([1, 1, 1, 1, 1], [3, 2], [2, 3]) if ON_GPU else ([1, 3, 1],):
        actual = decode_in_chunks(fast, latents.to(DEVICE, dtype), plan).float()
        _assert_close(actual, expected, dtype, f"plan {plan}, tile {tile}")


@needs_fast
def test_executor_with_the_kernel_never_writes_history_it_handed_out() -> None:
    """History tensors a call returned stay as they were after later calls (a cache
    forked from them keeps its state), though the next call reads them in place."""
    dtype = torch.bfloat16 if ON_GPU else torch.float32
    _, fast = _pair(SMALL, dtype, tile_latent_frames=1)
    assert fast._fast is not None
    fast._fast.implicit = _route_through_kernel
    latents = _latents(1, 4, 16, 2, 3, seed=22).to(DEVICE, dtype)
    cache = fast.initialize_autoregressive_cache()
    fast(input=latents[:, :2], autoregressive_index=0, cache=cache)
    handed_out = [h for h in cache.conv_history if h is not None]
    copies = [h.clone() for h in handed_out]
    fast(input=latents[:, 2:], autoregressive_index=1, cache=cache)
    assert all(torch.equal(h, c) for h, c in zip(handed_out, copies))


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


@needs_fast
@pytest.mark.parametrize("setting", [True, False, None])
def test_config_chooses_where_convs_run(setting: bool | None) -> None:
    """``triton_convs`` reaches the executor: True routes every width the kernel takes,
    False none, None leaves the measured rule (the executor's own default)."""
    from reference_decoders.wan import WanVAEDecoderConfig

    decoder = WanVAEDecoderConfig(
        device=DEVICE, dtype=torch.float32, fast_path=True, triton_convs=setting, **SMALL
    ).setup()
    assert decoder._fast is not None
    rule = decoder._fast.implicit
    if setting is None:
        assert rule is None
    else:
        assert rule is not None
        assert rule(32, 32, 1) is setting and rule(8, 8, 1) is False

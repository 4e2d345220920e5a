"""Experiment 3: per-shape rates of the Triton implicit-GEMM causal conv against cuDNN (bf16, CUDA).

For every 3x3x3 conv of a Wan 2.1 decoder step (``--latent-frames`` latent frames at
480x832, the full decode's one-latent-frame tiles by default) and a few Wan 2.2 widths,
it times:

- ``cudnn``: the conv as the fast path ran it before this kernel: the stacked conv2d or
  the conv3d that the fast path's layout rule of the time picked, on
  an input buffer that already holds the history (building that buffer not counted);
- ``triton``: :func:`reference_decoders.wan.fast.implicit_gemm.causal_conv` over the
  history and chunk as separate segments, for each candidate tile, best one reported;

checks the Triton output against cuDNN's (largest difference relative to the output's
largest magnitude), and prints ms and TFLOP/s per shape, and the sum over one step
weighted by how many times the step runs each shape.

    python benchmarks/experiments/conv_kernels.py [--latent-frames 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from conv_shapes import shapes, time_it  # noqa: E402
from implicit_gemm import (  # noqa: E402
    TileConfig,
    causal_conv,
    pack_weight,
)

from reference_decoders.wan.fast.weights import stacked_conv_weight  # noqa: E402


def use_stacked_conv(in_channels: int, frames: int) -> bool:
    """The layout rule of the fast path when experiment 3 ran (cuDNN's stacked conv2d
    except for 192 channels and single frames of 384+); the decoder's rule is now
    re-measured (``reference_decoders/wan/fast/layout.py``)."""
    return in_channels != 192 and not (frames == 1 and in_channels >= 384)


def candidates(cin: int, cout: int, width: int, few: bool = False) -> list[TileConfig]:
    """Tiles worth trying for a conv (block_k divides cin): a pointer-load tile and TMA
    tiles of 128 pixels, one image row of 128 or several rows of ``block_w`` pixels
    (``block_w`` dividing the width where a power of two does, else 64). Several-row
    TMA tiles use 32-channel blocks: with 64 (128-byte rows) Triton 3.6 miscompiles
    them (benchmarks/experiments/exp3_tma_probe.py), and causal_conv refuses them."""
    k = next(k for k in (64, 32, 16) if cin % k == 0)
    k_rows = min(k, 32)
    bw = next((b for b in (64, 32, 16, 8) if width % b == 0), 64)
    if cout < 128:  # 96 output channels: one masked 128-wide column block, or 3 narrow ones
        tiles = [
            TileConfig(128, 128, k, 8, 3),
            TileConfig(128, 128, k, 8, 3, block_w=128),
            TileConfig(128, 128, k_rows, 8, 3, block_w=bw),
            TileConfig(128, 32, k_rows, 4, 4, block_w=bw),
        ]
    else:
        tiles = [
            TileConfig(128, 128, k, 8, 3),
            TileConfig(128, 128, k, 8, 3, block_w=128),
            TileConfig(128, 256, k, 8, 3, block_w=128),
            TileConfig(128, 128, k_rows, 8, 3, block_w=bw),
            TileConfig(128, 256, k_rows, 8, 3, block_w=bw),
        ]
    if few:
        return [tiles[1], tiles[-1]]
    return tiles


def wan22_shapes(t: int) -> list[dict]:
    """The widest Wan 2.2 convs (704x1280 output, 44x80 latents), one latent-frame tile."""
    s = []
    for name, c, frames, h, w in [
        ("wan2.2 mid/stage0 1024", 1024, t, 44, 80),
        ("wan2.2 stage1 1024", 1024, 2 * t, 88, 160),
        ("wan2.2 stage2 512", 512, 4 * t, 176, 320),
        ("wan2.2 stage3 256", 256, 4 * t, 352, 640),
    ]:
        s.append(dict(name=name, cin=c, cout=c, k=(3, 3, 3), frames=frames, h=h, w=w, count=1))
    return s


def measure(shape: dict, dev: str = "cuda", dt: torch.dtype = torch.bfloat16) -> dict:
    cin, cout, t, h, w = shape["cin"], shape["cout"], shape["frames"], shape["h"], shape["w"]
    g = torch.Generator(device=dev).manual_seed(0)
    history = torch.randn(2, h, w, cin, device=dev, dtype=dt, generator=g)
    chunk = torch.randn(t, h, w, cin, device=dev, dtype=dt, generator=g)
    weight = torch.randn(cout, cin, 3, 3, 3, device=dev, dtype=dt, generator=g) / (27 * cin) ** 0.5
    bias = torch.randn(cout, device=dev, dtype=dt, generator=g)
    flops = 2 * cin * cout * 27 * t * h * w
    row: dict = dict(shape, flops=flops)

    full = torch.cat([history, chunk])  # [T + 2, H, W, C]
    if use_stacked_conv(cin, t):
        stacked = torch.cat([full[j : j + t] for j in range(3)], dim=-1)  # [T, H, W, 3C]
        sw = stacked_conv_weight(weight)
        row["cudnn_form"] = "stacked conv2d"

        def cudnn() -> torch.Tensor:
            return F.conv2d(stacked.permute(0, 3, 1, 2), sw, bias, padding=1)
    else:
        x5 = full.permute(3, 0, 1, 2).unsqueeze(0)
        w5 = weight.contiguous(memory_format=torch.channels_last_3d)
        row["cudnn_form"] = "conv3d"

        def cudnn() -> torch.Tensor:
            return F.conv3d(x5, w5, bias, padding=(0, 1, 1))

    expected = cudnn()
    expected = expected.permute(0, 2, 3, 1) if expected.dim() == 4 else expected[0].permute(1, 2, 3, 0)
    row["cudnn_s"] = time_it(cudnn)
    packed = pack_weight(weight)
    best = None
    row["triton"] = []
    for cfg in candidates(cin, cout, w, few=shape["name"].startswith("wan2.2")):
        try:
            y = causal_conv([history, chunk], packed, (3, 3, 3), bias=bias, config=cfg)
            err = ((y.float() - expected.float()).abs().max() / expected.float().abs().max()).item()
            s = time_it(lambda: causal_conv([history, chunk], packed, (3, 3, 3), bias=bias, config=cfg))
        except Exception as e:  # noqa: BLE001 - a config that does not compile is a result
            row["triton"].append(dict(config=cfg.__dict__, error=f"{type(e).__name__}: {str(e)[:200]}"))
            continue
        row["triton"].append(dict(config=cfg.__dict__, s=s, rel_err=err))
        if best is None or s < best["s"]:
            best = dict(config=cfg.__dict__, s=s, rel_err=err)
    row["triton_best"] = best
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latent-frames", type=int, default=1)
    parser.add_argument("--no-wan22", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    todo = [s for s in shapes(args.latent_frames, 60, 104) if s["k"] == (3, 3, 3) and s["cout"] > 3]
    if not args.no_wan22:
        todo += wan22_shapes(args.latent_frames)
    rows = []
    print(f"{'conv':28} {'n':>2} {'form':>14} {'cuDNN':>20} {'Triton best':>20} {'tile':>22} {'rel err':>8}")
    for shape in todo:
        r = measure(shape)
        rows.append(r)
        b = r["triton_best"]
        tf = lambda s: f"{s * 1e3:7.3f} ms {r['flops'] / s / 1e12:4.0f} TF/s"  # noqa: E731
        tile = "-" if b is None else "x".join(str(b["config"][k]) for k in ("block_m", "block_n", "block_k", "num_warps", "num_stages", "block_w"))
        print(f"{r['name']:28} {r['count']:2d} {r['cudnn_form']:>14} {tf(r['cudnn_s']):>20} "
              f"{tf(b['s']) if b else 'failed':>20} {tile:>22} {b['rel_err'] if b else float('nan'):8.1e}", flush=True)
        torch.cuda.empty_cache()
    wan21 = [r for r in rows if not r["name"].startswith("wan2.2")]
    cud = sum(r["cudnn_s"] * r["count"] for r in wan21)
    tri = sum((r["triton_best"]["s"] if r["triton_best"] else r["cudnn_s"]) * r["count"] for r in wan21)
    best_of = sum(min(r["cudnn_s"], r["triton_best"]["s"] if r["triton_best"] else 1e9) * r["count"] for r in wan21)
    flops = sum(r["flops"] * r["count"] for r in wan21)
    print(f"Wan 2.1 step 3x3x3 convs: cuDNN {cud * 1e3:.2f} ms ({flops / cud / 1e12:.0f} TF/s), "
          f"Triton {tri * 1e3:.2f} ms ({flops / tri / 1e12:.0f}), best of both {best_of * 1e3:.2f} ms "
          f"({flops / best_of / 1e12:.0f})")
    if args.json:
        args.json.write_text(json.dumps({
            "rows": rows, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "latent_frames": args.latent_frames,
        }, indent=2, default=str))


if __name__ == "__main__":
    main()

"""Experiment 3 probe: which TMA tiles of the implicit-GEMM conv compute the right thing,
and how fast BK=32 / one-row tiles are (H200, bf16). Prints one line per (shape, tile,
segments): ms, TFLOP/s, error relative to cuDNN's output max."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from conv_shapes import time_it  # noqa: E402
from implicit_gemm import TileConfig, causal_conv, pack_weight  # noqa: E402

SHAPES = [  # cin, frames, h, w
    (384, 1, 60, 104),
    (192, 4, 240, 416),
    (384, 2, 120, 208),
    (96, 4, 480, 832),
]


def main() -> None:
    dev, dt = "cuda", torch.bfloat16
    for cin, t, h, w in SHAPES:
        g = torch.Generator(device=dev).manual_seed(0)
        frames = torch.randn(t + 2, h, w, cin, device=dev, dtype=dt, generator=g)
        weight = torch.randn(cin, cin, 3, 3, 3, device=dev, dtype=dt, generator=g) / (27 * cin) ** 0.5
        ref = F.conv3d(frames.permute(3, 0, 1, 2).unsqueeze(0), weight.contiguous(memory_format=torch.channels_last_3d), padding=(0, 1, 1))
        ref = ref[0].permute(1, 2, 3, 0).float()
        packed = pack_weight(weight)
        flops = 2 * cin * cin * 27 * t * h * w
        tiles = []
        for bk in ([64, 32] if cin % 64 == 0 else [32]):
            for bw in (16, 64, 128):
                for bn in (128, 256):
                    tiles.append(TileConfig(128, bn, bk, 8, 3, block_w=bw))
            tiles.append(TileConfig(128, 128, bk, 8, 1, block_w=16))  # no pipelining
        for cfg in tiles:
            for nseg in (1, 2, 3):
                split = {1: [t + 2], 2: [2, t], 3: [2, t - 2, 2] if t > 2 else [1, 1, t]}[nseg]
                segs = [s.contiguous() for s in torch.split(frames, split)]
                try:
                    y = causal_conv(segs, packed, (3, 3, 3), config=cfg)
                    err = ((y.float() - ref).abs().max() / ref.abs().max()).item()
                    s = time_it(lambda: causal_conv(segs, packed, (3, 3, 3), config=cfg), warmup=2, repeats=5) if nseg == 2 else float("nan")
                except Exception as e:  # noqa: BLE001
                    print(cin, t, h, w, cfg, nseg, "ERROR", str(e)[:120], flush=True)
                    continue
                print(f"{cin:4d} {t} {h}x{w} bm{cfg.block_m} bn{cfg.block_n} bk{cfg.block_k} bw{cfg.block_w} st{cfg.num_stages} seg{nseg}: "
                      f"{s * 1e3:7.3f} ms {flops / s / 1e12:5.0f} TF/s err {err:.1e}", flush=True)


if __name__ == "__main__":
    main()

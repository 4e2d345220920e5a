"""cuDNN rates for the convolution shapes of one Wan decoder streaming step (bf16, CUDA).

For each convolution the decoder runs in an autoregressive step of ``--latent-frames``
latent frames at 480x832 (history frames included in the input, as the decoder feeds
them), times ``F.conv3d`` / ``F.conv2d`` in contiguous and channels_last layouts, with
cuDNN's heuristics and with ``cudnn.benchmark`` autotuning, and prints achieved TFLOP/s.
It tells what each stage can reach, hence a realistic floor for the whole decode.

    python benchmarks/conv_shapes.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F


def shapes(t: int, h: int, w: int) -> list[dict]:
    """(name, cin, cout, kernel, frames, height, width) of every distinct conv, with how
    many times a step runs it. ``t`` latent frames at latent size ``h x w``."""
    s = []

    def add(name: str, cin: int, cout: int, k: tuple, frames: int, hh: int, ww: int, count: int) -> None:
        s.append(dict(name=name, cin=cin, cout=cout, k=k, frames=frames, h=hh, w=ww, count=count))

    add("mid/stage0 3x3x3 384", 384, 384, (3, 3, 3), t, h, w, 10)
    add("stage0 time_conv 384->768", 384, 768, (3, 1, 1), t, h, w, 1)
    add("stage0 up conv2d 384->192", 384, 192, (3, 3), 2 * t, 2 * h, 2 * w, 1)
    add("stage1 3x3x3 192->384", 192, 384, (3, 3, 3), 2 * t, 2 * h, 2 * w, 1)
    add("stage1 3x3x3 384", 384, 384, (3, 3, 3), 2 * t, 2 * h, 2 * w, 5)
    add("stage1 time_conv 384->768", 384, 768, (3, 1, 1), 2 * t, 2 * h, 2 * w, 1)
    add("stage1 up conv2d 384->192", 384, 192, (3, 3), 4 * t, 4 * h, 4 * w, 1)
    add("stage2 3x3x3 192", 192, 192, (3, 3, 3), 4 * t, 4 * h, 4 * w, 6)
    add("stage2 up conv2d 192->96", 192, 96, (3, 3), 4 * t, 8 * h, 8 * w, 1)
    add("stage3 3x3x3 96", 96, 96, (3, 3, 3), 4 * t, 8 * h, 8 * w, 6)
    add("conv_out 3x3x3 96->3", 96, 3, (3, 3, 3), 4 * t, 8 * h, 8 * w, 1)
    return s


def time_it(fn, warmup: int = 3, repeats: int = 10) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latent-frames", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dev, dt = "cuda", torch.bfloat16
    rows = []
    total = {}
    for shape in shapes(args.latent_frames, 60, 104):
        k = shape["k"]
        three_d = len(k) == 3
        pad_t = k[0] - 1 if three_d else 0
        if three_d:
            x = torch.randn(1, shape["cin"], shape["frames"] + pad_t, shape["h"], shape["w"], device=dev, dtype=dt)
            wt = torch.randn(shape["cout"], shape["cin"], *k, device=dev, dtype=dt) / (shape["cin"] * k[0] * k[1] * k[2]) ** 0.5
            pad = (0, k[1] // 2, k[2] // 2)
            conv = lambda x, wt: F.conv3d(x, wt, padding=pad)  # noqa: E731
            cl = torch.channels_last_3d
        else:
            x = torch.randn(shape["frames"], shape["cin"], shape["h"], shape["w"], device=dev, dtype=dt)
            wt = torch.randn(shape["cout"], shape["cin"], *k, device=dev, dtype=dt) / (shape["cin"] * 9) ** 0.5
            conv = lambda x, wt: F.conv2d(x, wt, padding=1)  # noqa: E731
            cl = torch.channels_last
        taps = 1
        for d in k:
            taps *= d
        flops = 2 * shape["cin"] * shape["cout"] * taps * shape["frames"] * shape["h"] * shape["w"]
        row = dict(shape, flops=flops)
        for bench in (False, True):
            torch.backends.cudnn.benchmark = bench
            for layout in ("contiguous", "channels_last"):
                xi = x if layout == "contiguous" else x.contiguous(memory_format=cl)
                wi = wt if layout == "contiguous" else wt.contiguous(memory_format=cl)
                try:
                    t = time_it(lambda: conv(xi, wi))
                except RuntimeError as e:  # pragma: no cover
                    row[f"{layout}{'+bench' if bench else ''}"] = str(e)[:100]
                    continue
                key = f"{layout}{'+bench' if bench else ''}"
                row[key] = t
                total[key] = total.get(key, 0.0) + t * shape["count"]
        rows.append(row)
        del x, wt
        torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = False
    keys = ["contiguous", "channels_last", "contiguous+bench", "channels_last+bench"]
    print(f"{'conv':32} {'count':>5} {'GFLOP':>8} " + " ".join(f"{k:>22}" for k in keys))
    for r in rows:
        cells = []
        for k in keys:
            v = r.get(k)
            cells.append(f"{v * 1e3:8.2f} ms {r['flops'] / v / 1e12:5.0f} TF/s" if isinstance(v, float) else f"{str(v):>22}")
        print(f"{r['name']:32} {r['count']:5d} {r['flops'] / 1e9:8.1f} " + " ".join(cells))
    step_flops = sum(r["flops"] * r["count"] for r in rows)
    print("sum over one step (x count): " + ", ".join(
        f"{k} {total[k] * 1e3:.1f} ms ({step_flops / total[k] / 1e12:.0f} TF/s)" for k in keys if k in total))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "step_totals_s": total, "step_conv_flops": step_flops,
                                         "gpu": torch.cuda.get_device_name(), "torch": torch.__version__,
                                         "cudnn": torch.backends.cudnn.version()}, indent=2))


if __name__ == "__main__":
    main()

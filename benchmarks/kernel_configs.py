"""What the fast path's choices cost on the decoders' own shapes (bf16, CUDA).

Two tables, each for every 3x3x3 causal conv of a one-latent-frame tile (the full
decode's unit) of Wan 2.1 (480x832) and Wan 2.2 (704x1280):

1. ``conv_input``'s launch shape: the fused kernel that writes a conv's input buffer
   (history + normalized chunk, new history), timed for several (elements per program,
   warps) choices; achieved bandwidth counts each byte it must move once (chunk and
   history read, buffer and new history written).
2. The conv's form: cuDNN's stacked conv2d ``[T, H, W, 3C]`` against conv3d
   ``[T + 2, H, W, C]``, each with the kernel that writes its input (the stacked buffer
   is written three times over), and for the output heads (12 or 3 channels) and the
   48-channel Wan 2.2 input conv, zero-padded channel counts cuDNN may run faster.

    python benchmarks/kernel_configs.py [--json PATH] [--quick]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference_decoders.wan.fast import kernels  # noqa: E402

#: (name, in channels, out channels, frames, height, width, runs per tile)
WAN21 = [
    ("conv_in 16->384", 16, 384, 1, 60, 104, 1),
    ("mid/stage0 384", 384, 384, 1, 60, 104, 10),
    ("stage1 192->384", 192, 384, 2, 120, 208, 1),
    ("stage1 384", 384, 384, 2, 120, 208, 5),
    ("stage2 192", 192, 192, 4, 240, 416, 6),
    ("stage3 96", 96, 96, 4, 480, 832, 6),
    ("conv_out 96->3", 96, 3, 4, 480, 832, 1),
]
WAN22 = [
    ("conv_in 48->1024", 48, 1024, 1, 44, 80, 1),
    ("mid/stage0 1024", 1024, 1024, 1, 44, 80, 10),
    ("stage1 1024", 1024, 1024, 2, 88, 160, 6),
    ("stage2 1024->512", 1024, 512, 4, 176, 320, 1),
    ("stage2 512", 512, 512, 4, 176, 320, 5),
    ("stage3 512->256", 512, 256, 4, 352, 640, 1),
    ("stage3 256", 256, 256, 4, 352, 640, 5),
    ("conv_out 256->12", 256, 12, 4, 352, 640, 1),
]
LAUNCHES = [(4096, 4), (8192, 4), (8192, 8), (16384, 8)]
#: The shapes the launch sweep runs (each compile of a launch shape costs about a second):
#: the largest ones, in the form the rule gives them.
SWEEP = {"stage1 384", "stage2 192", "stage3 96", "stage1 1024", "stage2 512", "stage3 256", "stage3 512->256"}


DEVICE = "cuda"


def time_it(fn, warmup: int = 2, repeats: int = 7) -> float:
    for _ in range(warmup):
        fn()
    if DEVICE == "cpu":  # --smoke
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def inputs(c: int, t: int, h: int, w: int, stacked: bool) -> dict:
    dev, dt = DEVICE, torch.bfloat16 if DEVICE == "cuda" else torch.float32
    p = h * w
    return dict(
        x=torch.randn(t, p, c, device=dev, dtype=dt),
        past=torch.randn(2, p, c, device=dev, dtype=dt),
        out=torch.empty(t, p, 3 * c, device=dev, dtype=dt) if stacked else torch.empty(t + 2, p, c, device=dev, dtype=dt),
        history=torch.empty(2, p, c, device=dev, dtype=dt),
        gamma=torch.rand(c, device=dev, dtype=dt) + 0.5,
    )


def write_input(a: dict) -> None:
    kernels.conv_input(a["x"], a["past"], a["out"], a["history"], gamma=a["gamma"], silu=True)


def bytes_moved(c: int, t: int, h: int, w: int, stacked: bool) -> int:
    p = h * w
    return 2 * p * c * ((t + 2) + (3 * t if stacked else t + 2) + 2)


def launch_table(shapes: list, quick: bool) -> list[dict]:
    rows = []
    from reference_decoders.wan.fast.layout import use_stacked_conv

    for name, cin, _cout, t, h, w, count in shapes:
        if name not in SWEEP:
            continue
        for stacked in (use_stacked_conv(cin, t, h * w),):
            a = inputs(cin, t, h, w, stacked)
            row = dict(name=name, cin=cin, frames=t, h=h, w=w, stacked=stacked, count=count)
            for tile, warps in LAUNCHES[:1] if quick else LAUNCHES:
                kernels.TILE_ELEMENTS, kernels.NUM_WARPS = tile, warps
                seconds = time_it(lambda: write_input(a))
                row[f"{tile}x{warps}"] = seconds
            kernels.TILE_ELEMENTS, kernels.NUM_WARPS = LAUNCHES[0]
            row["bytes"] = bytes_moved(cin, t, h, w, stacked)
            rows.append(row)
            del a
    return rows


def conv_forms(shapes: list) -> list[dict]:
    dev, dt = DEVICE, torch.bfloat16 if DEVICE == "cuda" else torch.float32
    rows = []
    for name, cin, cout, t, h, w, count in shapes:
        variants = [(cin, cout)]
        if cout < 16:
            variants.append((cin, 16))
        if cin % 64:
            variants.append((64 * -(-cin // 64), cout))
        for ci, co in variants:
            weight = torch.randn(co, ci, 3, 3, 3, device=dev, dtype=dt) / (27 * ci) ** 0.5
            row = dict(name=name, cin=ci, cout=co, frames=t, h=h, w=w, count=count)
            row["flops"] = 2 * 27 * ci * co * t * h * w
            # conv3d over [T + 2, H, W, C]
            x3 = torch.randn(1, ci, t + 2, h, w, device=dev, dtype=dt).contiguous(memory_format=torch.channels_last_3d)
            w3 = weight.contiguous(memory_format=torch.channels_last_3d)
            row["conv3d"] = time_it(lambda: F.conv3d(x3, w3, padding=(0, 1, 1)))
            del x3
            # stacked conv2d over [T, H, W, 3C]
            x2 = torch.randn(t, 3 * ci, h, w, device=dev, dtype=dt).contiguous(memory_format=torch.channels_last)
            w2 = weight.permute(0, 2, 1, 3, 4).reshape(co, 3 * ci, 3, 3).contiguous(memory_format=torch.channels_last)
            row["stacked"] = time_it(lambda: F.conv2d(x2, w2, padding=1))
            del x2
            if (ci, co) == (cin, cout):
                for stacked in (True, False):
                    a = inputs(cin, t, h, w, stacked)
                    row["input_stacked" if stacked else "input_conv3d"] = time_it(lambda: write_input(a))
                    del a
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", type=Path)
    parser.add_argument("--quick", action="store_true", help="one launch shape only")
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on the CPU (TRITON_INTERPRET=1)")
    args = parser.parse_args()
    models = (("wan2.1", WAN21), ("wan2.2", WAN22))
    if args.smoke:
        global DEVICE
        DEVICE = "cpu"
        models = tuple((m, [(n, ci, co, t, 3, 5, k) for n, ci, co, t, _, _, k in sh]) for m, sh in models)
    report = {
        "gpu": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    for model, shapes in models:
        launches = launch_table(shapes, args.quick)
        forms = conv_forms(shapes)
        report[model] = {"launch": launches, "forms": forms}
        print(f"== {model}: conv_input launch shapes (GB/s, bytes each must move once)")
        keys = [f"{a}x{b}" for a, b in (LAUNCHES[:1] if args.quick else LAUNCHES)]
        print(f"{'conv':22} {'form':8} " + " ".join(f"{k:>16}" for k in keys))
        for r in launches:
            cells = [f"{r[k] * 1e3:7.3f}ms {r['bytes'] / r[k] / 1e9:5.0f}" for k in keys]
            print(f"{r['name']:22} {'stacked' if r['stacked'] else 'conv3d':8} " + " ".join(cells))
        print(f"== {model}: conv forms (ms; TF/s) and input kernels (ms)")
        for r in forms:
            tf3 = r["flops"] / r["conv3d"] / 1e12
            tf2 = r["flops"] / r["stacked"] / 1e12
            line = (f"{r['name']:22} {r['cin']:5d}->{r['cout']:<5d} x{r['count']:<3d} conv3d {r['conv3d'] * 1e3:7.3f} ({tf3:4.0f}) "
                    f"stacked {r['stacked'] * 1e3:7.3f} ({tf2:4.0f})")
            if "input_stacked" in r:
                t3 = r["conv3d"] + r["input_conv3d"]
                t2 = r["stacked"] + r["input_stacked"]
                line += (f" | input conv3d {r['input_conv3d'] * 1e3:6.3f} stacked {r['input_stacked'] * 1e3:6.3f}"
                         f" | total conv3d {t3 * 1e3:7.3f} stacked {t2 * 1e3:7.3f} -> {'stacked' if t2 < t3 else 'conv3d'}")
            print(line)
        if args.json:
            args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Time our Wan decoder alone, from a given source tree: before/after comparisons on one GPU.

Builds ``WanVAEDecoderConfig`` / ``Wan22VAEDecoderConfig`` (seeded random weights, bf16,
CUDA) from the ``reference_decoders`` package under ``--tree`` (default: this checkout),
so an older commit exported with ``git archive`` can be timed in the same session:

    git archive COMMIT reference_decoders | tar -x -C /tmp/old
    python benchmarks/ours_ab.py --tree /tmp/old --model wan2.2 --json old.json
    python benchmarks/ours_ab.py --model wan2.2 --json new.json --profile new_profile.txt

Measures (CUDA events, medians after warm-up): the full decode (Wan 2.1: 21 latent
frames at 60x104; Wan 2.2: 31 at 44x80) and its peak memory above weights and input,
the AR 0 step (3 -> 9 frames) and AR >= 1 steps (3 -> 12 frames), the streaming peak;
with ``--profile``, device time per kernel class over one full decode (torch.profiler)
and the share of the decode's wall time the GPU spent in kernels. ``--sample`` saves a
strided sample of the full decode's output, so two trees' outputs can be compared.
diffusers is not needed (``wan_decode.py`` compares against diffusers).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from kernel_classes import class_totals  # this folder (run as a script)

GIB = 2**30
SIZES = {"wan2.1": ((60, 104), 21, 16), "wan2.2": ((44, 80), 31, 48)}


def timed(fn) -> float:
    if not torch.cuda.is_available():  # --smoke on a CPU machine: wall clock
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--model", choices=sorted(SIZES), default="wan2.1")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rollouts", type=int, default=3, help="streaming rollouts of 4 steps")
    parser.add_argument("--memory-steps", type=int, default=6)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--sample", type=Path, help="save a strided sample of the output here")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU (tests the script)")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # conformance
    import reference_decoders.wan as wan

    (h, w), frames, channels = SIZES[args.model]
    cls = wan.Wan22VAEDecoderConfig if args.model == "wan2.2" else wan.WanVAEDecoderConfig
    device, dtype, arch = "cuda", torch.bfloat16, {}
    if args.smoke:
        (h, w), frames, device, dtype, arch = (2, 3), 4, "cpu", torch.float32, dict(base_dim=8, num_res_blocks=1)
        for name in ("synchronize", "reset_peak_memory_stats"):
            setattr(torch.cuda, name, lambda: None)
        torch.cuda.memory_allocated = torch.cuda.max_memory_allocated = lambda: 0  # type: ignore[assignment]
        torch.cuda.get_device_name = lambda: "cpu"  # type: ignore[assignment]
    t0 = time.perf_counter()
    decoder = cls(device=device, dtype=dtype, **arch).setup()
    build = time.perf_counter() - t0
    g = torch.Generator().manual_seed(1)
    full = torch.randn(1, frames, channels, h, w, generator=g).to(device, dtype)
    chunks = [torch.randn(1, 3, channels, h, w, generator=g).to(device, dtype) for _ in range(4)]
    report: dict = {
        "tree": str(args.tree),
        "package": str(Path(wan.__file__).resolve().parent),
        "model": args.model,
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "build_s": build,
        "uses_fast_path": decoder.uses_fast_path,
    }
    t0 = time.perf_counter()
    out = decoder(input=full)
    torch.cuda.synchronize()
    report["first_decode_s"] = time.perf_counter() - t0
    if args.sample is not None:
        torch.save(out[:, ::6, :, ::8, ::8].float().cpu(), args.sample)
    del out
    for _ in range(max(0, args.warmup - 1)):
        decoder(input=full)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    samples = [timed(lambda: decoder(input=full)) for _ in range(args.repeats)]
    report["full_s"] = statistics.median(samples)
    report["full_samples_s"] = samples
    report["full_peak_gib"] = (torch.cuda.max_memory_allocated() - base) / GIB

    def rollout(steps: int, marks: dict | None = None) -> tuple[float, list[float]]:
        cache = decoder.initialize_autoregressive_cache()
        times = []
        for i in range(steps + 1):
            chunk = chunks[i % len(chunks)]
            times.append(timed(lambda: decoder(input=chunk, autoregressive_index=i, cache=cache)))
            if marks is not None:
                marks[i] = (torch.cuda.max_memory_allocated() - base) / GIB
        return times[0], times[1:]

    rollout(2)
    ar0, later = [], []
    for _ in range(args.rollouts):
        first, rest = rollout(4)
        ar0.append(first)
        later += rest
    report["ar0_s"] = statistics.median(ar0)
    report["ar_later_s"] = statistics.median(later)
    report["ar_later_samples_s"] = later
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    marks: dict = {}
    rollout(args.memory_steps, marks)
    report["stream_peak_gib"] = {str(k): v for k, v in marks.items() if k in (1, args.memory_steps // 2, args.memory_steps)}

    if args.profile is not None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
        with profile(activities=activities) as prof:
            decoder(input=full)
            torch.cuda.synchronize()
        averages = prof.key_averages()
        kernels = [e for e in averages if str(getattr(e, "device_type", "")).endswith("CUDA") and e.self_device_time_total > 0]
        total = sum(e.self_device_time_total for e in kernels) / 1e6
        report["profile"] = {
            "kernel_total_s": total,
            "gpu_busy_share_of_median_wall": total / report["full_s"],
            "classes": class_totals(kernels),
            "top": [
                {"name": e.key[:140], "calls": e.count, "s": e.self_device_time_total / 1e6}
                for e in sorted(kernels, key=lambda e: -e.self_device_time_total)[:30]
            ],
        }
        args.profile.write_text(averages.table(sort_by="self_cuda_time_total", row_limit=45, max_name_column_width=100))

    line = (f"{args.model} [{report['package']}] on {report['gpu']}: full {report['full_s']:.4f} s, peak {report['full_peak_gib']:.2f} GiB, "
            f"AR0 {report['ar0_s'] * 1e3:.1f} ms, AR>=1 {report['ar_later_s'] * 1e3:.1f} ms, stream peak {report['stream_peak_gib']}")
    print(line)
    if "profile" in report:
        p = report["profile"]
        print(f"  kernels {p['kernel_total_s']:.4f} s = {p['gpu_busy_share_of_median_wall']:.1%} of the median wall time")
        for k, v in p["classes"].items():
            print(f"  {k:30} {v['s'] * 1e3:9.1f} ms {v['launches']:6d} launches")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""Device-time classes of a decode's kernels (shared by the benchmarks' profiles)."""

from __future__ import annotations

from typing import Any

__all__ = ["categorize", "class_totals"]


def categorize(name: str) -> str:
    """Which class of work a CUDA kernel (profiler event name) does."""
    n = name.lower()
    if "fprop" in n or "cudnn" in n or ("conv" in n and "kernel" not in n):
        return "convolution (cuDNN)"
    if "_conv_input_kernel" in n or "_norm_rows_kernel" in n:
        return "conv input / norm kernel"
    if "add_bias_residual" in n or "functor_add" in n:
        return "residual add"
    if "subpixel_gather" in n:
        return "sub-pixel gather"
    if "fmha" in n or "attention" in n:
        return "attention"
    if "nvjet" in n or "gemm" in n or "cutlass" in n:
        return "matrix products (cuBLAS)"
    if "copy" in n or "memcpy" in n or "elementwise_kernel" in n:
        return "copies / other elementwise"
    if "fill" in n or "memset" in n:
        return "fills"
    return "other"


def class_totals(events: list[Any]) -> dict[str, dict[str, float]]:
    """Seconds and launches per class over profiler ``key_averages()`` kernel events."""
    classes: dict[str, list[float]] = {}
    for e in events:
        entry = classes.setdefault(categorize(e.key), [0.0, 0])
        entry[0] += e.self_device_time_total / 1e6
        entry[1] += e.count
    ordered = sorted(classes.items(), key=lambda kv: -kv[1][0])
    return {k: {"s": v[0], "launches": int(v[1])} for k, v in ordered}

"""Wan VAE decode speed and memory: the bundled decoder against diffusers' AutoencoderKLWan.

``--model wan2.1`` (default) or ``--model wan2.2`` (the TI2V-5B VAE, diffusers'
``AutoencoderKLWan`` in its Wan 2.2 configuration); ``--dtype bf16`` (default) or
``fp32`` (convolutions may use TF32 there, as torch allows by default, for both
implementations alike; the report records the flags).

Both implementations run in ONE process on the same device with the same seeded random
weights: the script builds a diffusers ``AutoencoderKLWan`` with an architecture matching
ours, randomizes its decoder-side weights (variance-preserving, every norm scale and bias
non-trivial), saves the state dict as safetensors in a temporary folder and loads our
decoder from that file through the real checkpoint loader.

Measured (CUDA; medians of ``--repeats`` runs after ``--warmup`` runs, CUDA events):

- full decode: Wan 2.1, 21 latent frames -> 81 frames at 480x832 (latent 60x104);
  Wan 2.2, 31 latent frames -> 121 frames at 704x1280 (latent 44x80). Ours: one call at
  autoregressive index 0. diffusers: ``vae.decode`` on de-normalized latents
  ``z * std + mean`` (it decodes one latent frame at a time internally).
- cold start: in a fresh subprocess, decoder construction + the first full decode
  (so any compilation or graph capture a decoder does is included), plus the process's
  whole wall time.
- streaming: the autoregressive index 0 step (3 latent frames -> 9 frames) and later
  steps (3 -> 12 frames); diffusers' streaming equivalent feeds its decoder one latent
  frame at a time with its feature cache kept across steps.
- memory: peak GPU memory a full decode allocates on top of what was allocated before
  the call (weights, inputs), and the streaming peak after 10 and after 50 steps of one
  rollout (it must not grow with rollout length).
- achieved TFLOP/s: FLOPs counted once per workload with
  ``torch.utils.flop_counter.FlopCounterMode`` over our network on the meta device
  (convolutions and attention matmuls, 2 FLOP per multiply-add; no tensors are
  allocated), divided by the median time. The same count is used for diffusers: it is
  the same function. The report also gives what our fast CUDA path itself performs
  (``flops.fast_path``: its sub-pixel upsamplers do ~4/9 of those convs' FLOPs), and
  the table's last line our full decode's rate at that count.
- agreement: max / mean absolute difference between our full decode and diffusers' on
  the same latents, to show the two compute the same thing.

``--smoke`` runs a tiny config on the CPU in fp32 (a couple of repeats, no timing
claims); ``tests/test_benchmark_smoke.py`` runs it.

Usage::

    python benchmarks/wan_decode.py --json results.json [--profile-dir DIR]
    python benchmarks/wan_decode.py --smoke --json /tmp/smoke.json
    python benchmarks/wan_decode.py --ours fast:some_field=True   # extra variants of ours
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from reference_decoders.wan import (  # noqa: E402
    Wan22VAEDecoderConfig,
    WanVAEDecoder,
    WanVAEDecoderConfig,
)
from reference_decoders.wan.fast.weights import subpixel_weight  # noqa: E402
from reference_decoders.wan.model import (  # noqa: E402
    StreamState,
    Upsampler,
    WanVAEDecoderNetwork,
    _double_frames,
    _frames,
    _video,
)
from reference_decoders.wan.random_weights import (  # noqa: E402
    diffusers_arguments as shared_diffusers_arguments,
)
from reference_decoders.wan.random_weights import diffusers_vae  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kernel_classes import class_totals  # noqa: E402

GIB = 2**30

#: Goals from issue 4 (H100, bf16, 480x832). Used only to annotate the table.
GOALS = {
    "full_decode_s": 0.75,
    "speedup_vs_diffusers": 2.5,
    "speedup_vs_compiled_diffusers": 1.3,
    "cold_start_s": 15.0,
    "stream_step_s": 0.120,
}


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


@dataclass
class Workload:
    """What to decode and how often."""

    device: str
    dtype: torch.dtype
    architecture: dict[str, Any]  # knobs shared by our config and AutoencoderKLWan
    latent_size: tuple[int, int]
    full_frames: int  # latent frames of the full decode
    chunk_frames: int  # latent frames per streaming step
    warmup: int
    repeats: int
    stream_rollouts: int  # short rollouts timed for the streaming medians
    stream_rollout_steps: int  # AR >= 1 steps in each of those rollouts
    memory_steps: tuple[int, int]  # streaming peak read after this many AR >= 1 steps
    seed: int = 0
    model: str = "wan2.1"  # or "wan2.2"


_DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def full_size_workload(args: argparse.Namespace) -> Workload:
    dtype = _DTYPES[getattr(args, "dtype", "bf16")]
    if getattr(args, "model", "wan2.1") == "wan2.2":
        # The TI2V-5B size: 121 frames at 704x1280. ~2 PFLOP per full decode, so fewer
        # repeats and a shorter memory rollout than Wan 2.1's.
        return Workload(
            device="cuda",
            dtype=dtype,
            architecture={},
            latent_size=(44, 80),
            full_frames=31,
            chunk_frames=3,
            warmup=args.warmup if args.warmup is not None else 1,
            repeats=args.repeats if args.repeats is not None else 2,
            stream_rollouts=1,
            stream_rollout_steps=3,
            memory_steps=(3, 9),
            model="wan2.2",
        )
    return Workload(
        device="cuda",
        dtype=dtype,
        architecture={},
        latent_size=(60, 104),
        full_frames=21,
        chunk_frames=3,
        warmup=args.warmup if args.warmup is not None else 2,
        repeats=args.repeats if args.repeats is not None else 5,
        stream_rollouts=5,
        stream_rollout_steps=4,
        memory_steps=(10, 50),
    )


def smoke_workload(args: argparse.Namespace) -> Workload:
    wan22 = getattr(args, "model", "wan2.1") == "wan2.2"
    return Workload(
        device="cpu",
        dtype=torch.float32,
        architecture={"base_dim": 8, "num_res_blocks": 1},
        latent_size=(2, 3) if wan22 else (4, 6),
        full_frames=4,
        chunk_frames=2,
        warmup=args.warmup if args.warmup is not None else 1,
        repeats=args.repeats if args.repeats is not None else 1,
        stream_rollouts=1,
        stream_rollout_steps=1,
        memory_steps=(1, 2),
        model="wan2.2" if wan22 else "wan2.1",
    )


def config_class(workload: Workload) -> type[WanVAEDecoderConfig]:
    """Our config class for the workload's model; ``architecture`` holds its fields."""
    return Wan22VAEDecoderConfig if workload.model == "wan2.2" else WanVAEDecoderConfig


def diffusers_arguments(workload: Workload) -> dict[str, Any]:
    """``AutoencoderKLWan`` arguments for the same architecture as our config
    (:func:`reference_decoders.wan.random_weights.diffusers_arguments`): Wan 2.2 with the
    published encoder (base 160) at full size, a tiny one (8) in the smoke config."""
    encoder = None if "base_dim" not in workload.architecture else 8
    return shared_diffusers_arguments(
        workload.model, encoder_base_dim=encoder, **workload.architecture
    )


@dataclass
class OursVariant:
    """A configuration of our decoder to measure: a name and config field overrides."""

    name: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> OursVariant:
        """``NAME`` or ``NAME:field=value,field=value`` (values are Python literals)."""
        name, _, rest = text.partition(":")
        overrides: dict[str, Any] = {}
        for item in filter(None, rest.split(",")):
            key, sep, value = item.partition("=")
            if not sep:
                raise argparse.ArgumentTypeError(f"expected field=value in {text!r}, got {item!r}")
            try:
                overrides[key.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                overrides[key.strip()] = value.strip()
        return cls(name=name or "ours", overrides=overrides)

    def describe(self) -> str:
        if not self.overrides:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v!r}" for k, v in self.overrides.items())


# --------------------------------------------------------------------------------------
# Models with the same weights
# --------------------------------------------------------------------------------------


def build_diffusers_vae(workload: Workload) -> torch.nn.Module:
    """diffusers' AutoencoderKLWan with our architecture knobs and seeded random weights
    (CPU, fp32): the builder the tests use too (init under ``seed``, decoder weights from
    ``seed + 1``: the weights every published figure was measured with)."""
    encoder = None if "base_dim" not in workload.architecture else 8
    return diffusers_vae(
        workload.model,
        seed=workload.seed,
        weight_seed=workload.seed + 1,
        encoder_base_dim=encoder,
        **workload.architecture,
    )


def save_safetensors(vae: torch.nn.Module, folder: Path) -> Path:
    from safetensors.torch import save_file

    path = folder / "diffusion_pytorch_model.safetensors"
    state = {k: v.detach().contiguous() for k, v in vae.state_dict().items()}
    save_file(state, str(path))
    return path


def build_ours(
    workload: Workload, checkpoint: Path, overrides: dict[str, Any] | None = None
) -> WanVAEDecoder:
    config = config_class(workload)(
        checkpoint_path=str(checkpoint),
        device=workload.device,
        dtype=workload.dtype,
        **workload.architecture,
        **(overrides or {}),
    )
    decoder = config.setup()
    if decoder.checkpoint_layout != "diffusers":
        raise RuntimeError(f"expected the diffusers layout, loader said {decoder.checkpoint_layout}")
    return decoder


def to_channels_last_3d(module: torch.nn.Module) -> torch.nn.Module:
    """Put every 5-D parameter (the 3-D conv weights) in channels_last_3d, in place.

    ``Module.to(memory_format=...)`` refuses modules that also hold 4-D or 1-D tensors.
    """
    for param in module.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=torch.channels_last_3d)
    return module


class DiffusersRunner:
    """diffusers' decode paths: whole-sequence ``vae.decode`` and a streaming step."""

    def __init__(self, vae: torch.nn.Module, channels_last: bool = False) -> None:
        self.vae = vae
        self.channels_last = channels_last
        param = next(vae.parameters())
        self.mean = torch.tensor(vae.config.latents_mean, dtype=param.dtype, device=param.device)
        self.std = torch.tensor(vae.config.latents_std, dtype=param.dtype, device=param.device)
        self.mean = self.mean.view(1, -1, 1, 1, 1)
        self.std = self.std.view(1, -1, 1, 1, 1)

    def _denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        z = latents.transpose(1, 2) * self.std + self.mean  # [B, C, T, h, w]
        if self.channels_last:
            z = z.contiguous(memory_format=torch.channels_last_3d)
        return z

    @torch.no_grad()
    def full(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents ``[B, T, C, h, w]`` -> ``[B, 3, T', H, W]``."""
        return self.vae.decode(self._denormalize(latents)).sample

    def new_rollout(self) -> dict[str, Any]:
        self.vae.clear_cache()
        return {"frames_seen": 0}

    @torch.no_grad()
    def step(self, latents: torch.Tensor, rollout: dict[str, Any]) -> torch.Tensor:
        """One streaming step: the chunk's latent frames one at a time, feature cache kept
        (diffusers' decoder is exact only when fed single frames)."""
        vae = self.vae
        x = vae.post_quant_conv(self._denormalize(latents))
        outs = []
        for i in range(x.shape[2]):
            vae._conv_idx = [0]
            outs.append(
                vae.decoder(
                    x[:, :, i : i + 1],
                    feat_cache=vae._feat_map,
                    feat_idx=vae._conv_idx,
                    first_chunk=rollout["frames_seen"] == 0,
                )
            )
            rollout["frames_seen"] += 1
        video = torch.cat(outs, dim=2)
        if vae.config.patch_size is not None:
            from diffusers.models.autoencoders.autoencoder_kl_wan import unpatchify

            video = unpatchify(video, patch_size=vae.config.patch_size)
        return video.clamp_(-1.0, 1.0)


# --------------------------------------------------------------------------------------
# Measurement helpers
# --------------------------------------------------------------------------------------


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class Timer:
    """Seconds of one region: CUDA events on the GPU, perf_counter on the CPU."""

    def __init__(self, device: str) -> None:
        self.device = device

    @contextlib.contextmanager
    def __call__(self) -> Iterator[list[float]]:
        result: list[float] = []
        if self.device == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            yield result
            end.record()
            end.synchronize()
            result.append(start.elapsed_time(end) / 1e3)
        else:
            t0 = time.perf_counter()
            yield result
            result.append(time.perf_counter() - t0)


def summarize(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"median_s": None, "samples_s": []}
    return {
        "median_s": statistics.median(samples),
        "min_s": min(samples),
        "max_s": max(samples),
        "samples_s": samples,
    }


def memory_allocated(device: str) -> int | None:
    return torch.cuda.memory_allocated() if device == "cuda" else None


def reset_peak(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_above(device: str, baseline: int | None) -> float | None:
    """GiB allocated at the peak since the last reset, above ``baseline`` bytes."""
    if device != "cuda" or baseline is None:
        return None
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - baseline) / GIB


def guarded(fn: Callable[[], dict[str, Any]], device: str) -> dict[str, Any]:
    """Run a measurement; an out-of-memory or runtime failure is recorded, not fatal."""
    try:
        return fn()
    except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
        message = f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        return {"error": message}


def make_latents(workload: Workload, frames: int, seed: int) -> torch.Tensor:
    """Normalized latents ``[1, T, 16, h, w]`` ~ N(0, 1), as a diffusion model emits them."""
    h, w = workload.latent_size
    channels = config_class(workload)(**workload.architecture).latent_channels
    generator = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, frames, channels, h, w, generator=generator)
    return latents.to(device=workload.device, dtype=workload.dtype)


def count_flops(workload: Workload, frames: int, first_chunk: bool, subpixel: bool = False) -> int:
    """FLOPs of decoding ``frames`` latent frames (as the rollout's first chunk or a later
    one), counted by FlopCounterMode over our network on the meta device.

    By default the eager network's arithmetic, which is diffusers' too. With ``subpixel``,
    what our fast CUDA path performs: it runs each upsampler as :func:`subpixel_upsample`
    does; every other layer does the same multiply-adds in both (the stacked, pointwise
    and time-conv forms of ``fast/weights.py`` regroup them; folded biases and norms are
    not counted anyway).
    """
    from torch.utils.flop_counter import FlopCounterMode

    config = config_class(workload)(**workload.architecture)
    with torch.device("meta"):
        network = WanVAEDecoderNetwork(config).to(workload.dtype)
    if subpixel:
        for up in network.modules():
            if isinstance(up, Upsampler):  # packed outside the counter: the fast path caches it
                weight = subpixel_weight(up.conv.weight)
                up.forward = functools.partial(subpixel_upsample, up, weight)
    h, w = workload.latent_size
    x = torch.empty(1, config.latent_channels, frames, h, w, device="meta", dtype=workload.dtype)
    # A later chunk's convolutions see two frames of history: same FLOPs as real history.
    state = StreamState(history=[None] * network.num_history_slots, first_chunk=first_chunk)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        network(x, state)
    return int(counter.get_total_flops())


def subpixel_upsample(
    up: Upsampler, weight: torch.Tensor, x: torch.Tensor, state: StreamState
) -> torch.Tensor:
    """``up``'s forward the way ``fast/network.py`` computes it, for counting on the meta
    device: time doubling as eager, then, instead of nearest 2x + 3x3 conv, one 2x2 conv
    with ``weight`` (:func:`subpixel_weight`, ``[4Co, C, 2, 2]``) over the low-resolution
    frames zero-padded by one pixel. Its four phases are ``(h + 1) x (w + 1)`` each, of
    which the gather keeps ``h x w`` (it moves data and adds the bias: no FLOPs counted),
    so it costs ``16 (h + 1)(w + 1)`` taps per channel pair against eager's ``36 h w``."""
    if up.time_conv is not None:
        x = _double_frames(up.time_conv, x, state)
    phases = F.conv2d(F.pad(_frames(x), (1, 1, 1, 1)), weight)  # [N, 4Co, h + 1, w + 1]
    n, co4, h1, w1 = phases.shape
    upsampled = phases.new_empty(n, co4 // 4, 2 * (h1 - 1), 2 * (w1 - 1))
    return _video(upsampled, x.shape[0])


# --------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------


def measure_full(
    decode: Callable[[torch.Tensor], torch.Tensor],
    latents: torch.Tensor,
    workload: Workload,
    keep: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Warm-up, then median of timed full decodes; peak memory of one decode.

    With ``keep``, the last decode's output is left in ``keep["out"]`` (for the agreement
    figure, without another decode: at the Wan 2.2 size one costs seconds).
    """
    timer = Timer(workload.device)
    for _ in range(workload.warmup):
        decode(latents)
    synchronize(workload.device)
    baseline = memory_allocated(workload.device)
    reset_peak(workload.device)
    samples = []
    for _ in range(workload.repeats):
        if keep is not None:
            keep.pop("out", None)
        with timer() as elapsed:
            out = decode(latents)
        samples.append(elapsed[0])
        if keep is not None:
            keep["out"] = out
        del out
    result = summarize(samples)
    result["peak_above_baseline_gib"] = peak_above(workload.device, baseline)
    return result


def measure_streaming(
    new_rollout: Callable[[], Any],
    step: Callable[[torch.Tensor, Any, int], torch.Tensor],
    workload: Workload,
    chunks: list[torch.Tensor],
    memory_rollout: bool,
) -> dict[str, Any]:
    """Per-step times of streaming rollouts of ``chunk_frames``-frame chunks.

    AR 0 medians come from the first step of each of ``stream_rollouts`` rollouts (after
    one warm-up rollout); AR >= 1 medians from all later steps. With ``memory_rollout``,
    one more rollout of ``memory_steps[1]`` later steps records the peak allocated memory
    (above what was allocated before it began) after ``memory_steps[0]`` and after
    ``memory_steps[1]`` steps, and how much stays allocated (the cache) at those points.
    """
    timer = Timer(workload.device)

    def run(steps: int, on_step: Callable[[int], None] | None = None) -> tuple[float, list[float]]:
        rollout = new_rollout()
        first, later = 0.0, []
        for index in range(steps + 1):
            chunk = chunks[index % len(chunks)]
            with timer() as elapsed:
                out = step(chunk, rollout, index)
            del out
            if index == 0:
                first = elapsed[0]
            else:
                later.append(elapsed[0])
            if on_step is not None:
                on_step(index)
        return first, later

    for _ in range(max(1, workload.warmup // 2)):
        run(2)
    ar0, later = [], []
    for _ in range(workload.stream_rollouts):
        first, rest = run(workload.stream_rollout_steps)
        ar0.append(first)
        later.extend(rest)
    result = {"ar0": summarize(ar0), "ar_later": summarize(later)}

    if memory_rollout:
        short, long = workload.memory_steps
        synchronize(workload.device)
        baseline = memory_allocated(workload.device)
        reset_peak(workload.device)
        marks: dict[str, Any] = {}

        def on_step(index: int) -> None:
            if index in (short, long):
                marks[f"peak_after_{index}_steps_gib"] = peak_above(workload.device, baseline)
                now = memory_allocated(workload.device)
                marks[f"held_after_{index}_steps_gib"] = (
                    None if now is None or baseline is None else (now - baseline) / GIB
                )

        _, long_times = run(long, on_step)
        result["memory_rollout"] = marks
        result["memory_rollout_ar_later"] = summarize(long_times)
    return result


def ours_streaming(decoder: WanVAEDecoder, workload: Workload, chunks: list[torch.Tensor]) -> dict[str, Any]:
    def step(chunk: torch.Tensor, cache: Any, index: int) -> torch.Tensor:
        return decoder(input=chunk, autoregressive_index=index, cache=cache)

    return measure_streaming(
        decoder.initialize_autoregressive_cache, step, workload, chunks, memory_rollout=True
    )


def diffusers_streaming(
    runner: DiffusersRunner, workload: Workload, chunks: list[torch.Tensor]
) -> dict[str, Any]:
    def step(chunk: torch.Tensor, rollout: Any, index: int) -> torch.Tensor:
        return runner.step(chunk, rollout)

    return measure_streaming(runner.new_rollout, step, workload, chunks, memory_rollout=False)


def agreement(ours: torch.Tensor, theirs_bcthw: torch.Tensor) -> dict[str, float]:
    """Our ``[B, T, 3, H, W]`` output vs diffusers' ``[B, 3, T, H, W]``, in float64."""
    a = ours.double()
    b = theirs_bcthw.transpose(1, 2).double()
    if a.shape != b.shape:
        raise RuntimeError(f"output shapes differ: ours {tuple(a.shape)}, diffusers {tuple(b.shape)}")
    diff = (a - b).abs()
    return {"max_abs_diff": diff.max().item(), "mean_abs_diff": diff.mean().item()}


def profile_full_decode(
    decoder: WanVAEDecoder, latents: torch.Tensor, workload: Workload, path: Path
) -> dict[str, Any]:
    """torch.profiler over one full decode (after warm-up); top kernels by device time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    sort_key = "cpu_time_total"
    if workload.device == "cuda":
        activities.append(ProfilerActivity.CUDA)
        sort_key = "self_cuda_time_total"
    decoder(input=latents)
    synchronize(workload.device)
    with profile(activities=activities) as prof:
        decoder(input=latents)
        synchronize(workload.device)
    averages = prof.key_averages()
    table = averages.table(sort_by=sort_key, row_limit=40, max_name_column_width=90)
    path.write_text(table)
    top = []
    events = [e for e in averages if getattr(e, "device_type", None) is not None]
    kernel_events = [
        e for e in events if str(e.device_type).endswith("CUDA") and e.self_device_time_total > 0
    ] if workload.device == "cuda" else []
    total = sum(e.self_device_time_total for e in kernel_events) or 1.0
    classes = class_totals(kernel_events)
    for e in sorted(kernel_events, key=lambda e: -e.self_device_time_total)[:25]:
        top.append(
            {
                "name": e.key[:160],
                "calls": e.count,
                "device_ms": e.self_device_time_total / 1e3,
                "share": e.self_device_time_total / total,
            }
        )
    return {
        "table_path": str(path),
        "top_kernels": top,
        "kernel_total_ms": total / 1e3,
        "kernel_classes": classes,
    }


# --------------------------------------------------------------------------------------
# Cold start (fresh process)
# --------------------------------------------------------------------------------------


def cold_start_here(
    workload: Workload, checkpoint: Path, which: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """In this process: build the decoder and run its first full decode, timed by wall clock.

    Meant to run first thing in a fresh process (see :func:`cold_start_subprocess`), so the
    first decode includes cuDNN heuristics, kernel loading, and any compilation or graph
    capture the decoder does on its first call or at construction.
    """
    if which == "diffusers":
        import diffusers  # noqa: F401  (import time is in the process wall time, not here)
    t0 = time.perf_counter()
    if workload.device == "cuda":
        torch.cuda.init()
        torch.empty(1, device="cuda")
    t1 = time.perf_counter()
    latents = make_latents(workload, workload.full_frames, seed=123)
    if which == "diffusers":
        from safetensors.torch import load_file

        with torch.random.fork_rng(devices=[]):
            from diffusers import AutoencoderKLWan

            vae = AutoencoderKLWan(**diffusers_arguments(workload)).eval()
        vae.load_state_dict(load_file(str(checkpoint)))
        vae = vae.to(device=workload.device, dtype=workload.dtype)
        runner = DiffusersRunner(vae)
        decode: Callable[[torch.Tensor], torch.Tensor] = runner.full
    else:
        decoder = build_ours(workload, checkpoint, overrides)

        def decode(x: torch.Tensor) -> torch.Tensor:
            return decoder(input=x)

    synchronize(workload.device)
    t2 = time.perf_counter()
    with torch.no_grad():
        out = decode(latents)
    synchronize(workload.device)
    t3 = time.perf_counter()
    second = None
    if workload.model == "wan2.1":  # a Wan 2.2 decode costs seconds: the first one is the figure
        with torch.no_grad():
            out = decode(latents)
        synchronize(workload.device)
        second = time.perf_counter() - t3
    del out
    return {
        "device_init_s": t1 - t0,
        "build_s": t2 - t1,
        "first_decode_s": t3 - t2,
        "second_decode_s": second,
        "cold_start_s": t3 - t1,  # build + first decode: the goal's figure
    }


def cold_start_subprocess(
    args: argparse.Namespace, checkpoint: Path, which: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--cold-start-child",
        which,
        "--checkpoint",
        str(checkpoint),
        "--overrides",
        json.dumps(overrides, default=repr),
        "--model",
        args.model,
        "--dtype",
        args.dtype,
    ]
    if args.smoke:
        command.append("--smoke")
    if args.cudnn_benchmark:
        command.append("--cudnn-benchmark")
    with tempfile.TemporaryDirectory(prefix="wan_cold_") as caches:
        # Empty compiler caches: a cold start must not reuse kernels an earlier run built.
        env = dict(os.environ)
        env["TORCHINDUCTOR_CACHE_DIR"] = str(Path(caches) / "inductor")
        env["TRITON_CACHE_DIR"] = str(Path(caches) / "triton")
        t0 = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=args.cold_start_timeout, env=env
        )
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-600:]}", "process_wall_s": wall}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall_s"] = wall
    return result


# --------------------------------------------------------------------------------------
# Environment, table
# --------------------------------------------------------------------------------------


def environment(workload: Workload) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "device": workload.device,
        "dtype": str(workload.dtype).removeprefix("torch."),
        "platform": platform.platform(),
    }
    try:
        import diffusers

        env["diffusers"] = diffusers.__version__
    except ImportError:  # pragma: no cover - the benchmark needs it anyway
        env["diffusers"] = None
    if workload.device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env["gpu"] = props.name
        env["gpu_memory_gib"] = props.total_memory / GIB
        env["sm_count"] = props.multi_processor_count
    else:
        env["gpu"] = None
        env["cpu"] = platform.processor() or platform.machine()
    return env


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.3f} s"


def _fmt(value: Any, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:.{digits}f}{unit}"


def _median(result: dict[str, Any], *keys: str) -> float | None:
    node: Any = result
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, (int, float)) else None


def render_table(report: dict[str, Any]) -> str:
    env = report["environment"]
    lines = [
        f"{report['workload'].get('model', 'wan2.1').replace('wan', 'Wan ')} VAE decode, {env['dtype']} on {env.get('gpu') or env['device']} "
        f"(torch {env['torch']}, CUDA {env['cuda']}, cuDNN {env['cudnn']}, diffusers {env['diffusers']}); "
        f"latent {report['workload']['latent_size']} -> {report['workload']['pixel_size']}, "
        f"medians of {report['workload']['repeats']} after {report['workload']['warmup']} warm-up",
        "",
    ]
    header = ["", "full decode", "TFLOP/s", "vs diffusers", "peak mem (GiB)", "AR0 step", "AR>=1 step", "cold start"]
    rows = [header]
    base = _median(report["diffusers"]["eager"], "full", "median_s")
    flops = report["flops"]
    labelled = [(f"ours {n}", r) for n, r in report["ours"].items()]
    labelled += [(f"diffusers {n}", r) for n, r in report["diffusers"].items()]
    for label, result in labelled:
        full = result.get("full", {})
        t = _median(full, "median_s")
        rows.append(
            [
                label,
                full.get("error", _fmt_s(t)) if isinstance(full, dict) else "-",
                f"{flops['full'] / t / 1e12:.3g}" if t else "-",
                _fmt(base / t, "x") if t and base else "-",
                _fmt(_median(full, "peak_above_baseline_gib")),
                _fmt_s(_median(result, "streaming", "ar0", "median_s")),
                _fmt_s(_median(result, "streaming", "ar_later", "median_s")),
                _fmt_s(_median(result, "cold_start", "cold_start_s")),
            ]
        )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(header))]
    for i, row in enumerate(rows):
        lines.append(" | ".join(str(c).ljust(w) for c, w in zip(row, widths)))
        if i == 0:
            lines.append("-+-".join("-" * w for w in widths))
    lines.append("")
    for name, result in report["ours"].items():
        memory = result.get("streaming", {}).get("memory_rollout")
        if memory:
            short, long = report["workload"]["memory_steps"]
            lines.append(
                f"{name}: streaming peak after {short} steps {_fmt(memory.get(f'peak_after_{short}_steps_gib'))} GiB, "
                f"after {long} steps {_fmt(memory.get(f'peak_after_{long}_steps_gib'))} GiB; "
                f"held {_fmt(memory.get(f'held_after_{short}_steps_gib'), digits=3)} / "
                f"{_fmt(memory.get(f'held_after_{long}_steps_gib'), digits=3)} GiB"
            )
        agree = result.get("agreement_with_diffusers")
        if agree and "max_abs_diff" in agree:
            lines.append(
                f"{name}: vs diffusers full decode max |diff| {agree['max_abs_diff']:.3g}, "
                f"mean {agree['mean_abs_diff']:.3g}"
            )
    lines.append(
        f"FLOPs (FlopCounterMode, meta device): full {flops['full'] / 1e12:.4g} T, "
        f"AR0 step {flops['ar0'] / 1e12:.4g} T, AR>=1 step {flops['ar_later'] / 1e12:.4g} T. "
        "Peak mem = allocated above the weights and inputs during one decode."
    )
    fast = flops.get("fast_path")
    if fast:
        rates = [
            f"{name} {fast['full'] / t / 1e12:.3g} TFLOP/s"
            for name, result in report["ours"].items()
            if env["device"] == "cuda" and (t := _median(result, "full", "median_s"))
        ]  # the fast path runs on CUDA only
        lines.append(
            f"Our fast path's own arithmetic (sub-pixel upsamplers): full {fast['full'] / 1e12:.4g} T, "
            f"AR0 step {fast['ar0'] / 1e12:.4g} T, AR>=1 step {fast['ar_later'] / 1e12:.4g} T"
            + (f"; full decode at that count: {', '.join(rates)}" if rates else "")
            + "."
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU, fp32")
    parser.add_argument("--model", choices=["wan2.1", "wan2.2"], default="wan2.1")
    parser.add_argument("--dtype", choices=sorted(_DTYPES), default="bf16", help="full-size runs")
    parser.add_argument("--json", type=Path, help="write the full report here")
    parser.add_argument("--warmup", type=int, help="warm-up runs (default 2; smoke 1)")
    parser.add_argument("--repeats", type=int, help="timed runs (default 5; smoke 2)")
    parser.add_argument(
        "--ours",
        action="append",
        type=OursVariant.parse,
        help="a variant of our decoder, NAME[:field=value,...] (repeatable; default 'ours')",
    )
    parser.add_argument("--no-cold-start", action="store_true", help="skip the cold-start subprocesses")
    parser.add_argument("--cold-start-timeout", type=float, default=300.0)
    parser.add_argument("--no-diffusers-streaming", action="store_true")
    parser.add_argument("--no-streaming", action="store_true", help="skip every streaming measurement")
    parser.add_argument("--no-channels-last", action="store_true", help="skip diffusers channels_last_3d")
    parser.add_argument(
        "--diffusers-compile",
        action="store_true",
        help="also time torch.compile of diffusers' decoder (channels_last_3d), last; its "
        "first call took 81 s (Wan 2.1, H100) and 118 s (Wan 2.2, H200)",
    )
    parser.add_argument(
        "--recompile-limit",
        type=int,
        help="dynamo's per-function recompile limit for --diffusers-compile (torch's default "
        "8 leaves part of diffusers' decoder eager); the accumulated limit is raised to 16x",
    )
    parser.add_argument(
        "--no-channels-last-eager",
        action="store_true",
        help="skip timing diffusers channels_last_3d without compile (still the compiled variant's base)",
    )
    parser.add_argument("--cudnn-benchmark", action="store_true", help="torch.backends.cudnn.benchmark = True")
    parser.add_argument("--profile-dir", type=Path, help="profile each of our variants' full decode here")
    # internal: cold-start child
    parser.add_argument("--cold-start-child", choices=["ours", "diffusers"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ours is None:
        args.ours = [OursVariant("ours")]
    return args


def raise_recompile_limit(limit: int | None) -> dict[str, Any]:
    """Set dynamo's recompile limits (per function ``limit``, accumulated ``16 * limit``)
    where asked; returns the values in force, for the report."""
    config = torch._dynamo.config
    names = ("recompile_limit", "accumulated_recompile_limit", "cache_size_limit", "accumulated_cache_size_limit")
    if limit is not None:
        for name in names:
            if hasattr(config, name):
                setattr(config, name, limit if "accumulated" not in name else 16 * limit)
    return {name: getattr(config, name) for name in names if hasattr(config, name)}


def dynamo_counters() -> dict[str, Any]:
    """dynamo's counters (graphs compiled, graph breaks, recompile-limit hits), plain."""
    from torch._dynamo.utils import counters

    return {
        group: {str(k)[:160]: v for k, v in sorted(values.items(), key=lambda kv: -kv[1])[:20]}
        for group, values in counters.items()
        if values
    }


def save_partial(args: argparse.Namespace, report: dict[str, Any]) -> None:
    """Write what is measured so far to ``--json`` (a run cut short keeps its figures)."""
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**report, "partial": True}, indent=2, default=str))


def run(args: argparse.Namespace) -> dict[str, Any]:
    workload = smoke_workload(args) if args.smoke else full_size_workload(args)
    if args.smoke:
        # Tiny tensors: extra threads only add contention (CI has two cores).
        torch.set_num_threads(1)
    if workload.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("the full-size benchmark needs a CUDA GPU; use --smoke on the CPU")
    torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    log = print if not args.quiet else (lambda *a, **k: None)

    h, w = workload.latent_size
    ratio = config_class(workload)(**workload.architecture).spatial_compression_ratio
    report: dict[str, Any] = {
        "environment": environment(workload),
        "workload": {
            "latent_size": [h, w],
            "pixel_size": [h * ratio, w * ratio],
            "full_latent_frames": workload.full_frames,
            "chunk_latent_frames": workload.chunk_frames,
            "warmup": workload.warmup,
            "repeats": workload.repeats,
            "memory_steps": list(workload.memory_steps),
            "architecture": workload.architecture,
            "model": workload.model,
            "diffusers_arguments": {
                k: v for k, v in diffusers_arguments(workload).items() if not k.startswith("latents_")
            },
            "smoke": bool(args.smoke),
        },
        "flops": {
            "full": count_flops(workload, workload.full_frames, first_chunk=True),
            "ar0": count_flops(workload, workload.chunk_frames, first_chunk=True),
            "ar_later": count_flops(workload, workload.chunk_frames, first_chunk=False),
            "method": "FlopCounterMode over our network on the meta device",
            # What our fast CUDA path performs (sub-pixel upsamplers): see count_flops.
            "fast_path": {
                "full": count_flops(workload, workload.full_frames, first_chunk=True, subpixel=True),
                "ar0": count_flops(workload, workload.chunk_frames, first_chunk=True, subpixel=True),
                "ar_later": count_flops(workload, workload.chunk_frames, first_chunk=False, subpixel=True),
            },
        },
        "goals": GOALS,
        "ours": {},
        "diffusers": {},
    }

    full_latents = make_latents(workload, workload.full_frames, seed=1)
    chunks = [make_latents(workload, workload.chunk_frames, seed=100 + i) for i in range(4)]

    with tempfile.TemporaryDirectory(prefix="wan_bench_") as tmp:
        vae_cpu = build_diffusers_vae(workload)
        checkpoint = save_safetensors(vae_cpu, Path(tmp))

        # Cold starts first, while this process holds almost no GPU memory.
        cold_starts: dict[str, Any] = {}
        if not args.no_cold_start:
            log("cold start: diffusers")
            cold_starts["diffusers"] = cold_start_subprocess(args, checkpoint, "diffusers", {})
            for variant in args.ours:
                log(f"cold start: ours {variant.describe()}")
                cold_starts[variant.name] = cold_start_subprocess(
                    args, checkpoint, "ours", variant.overrides
                )
        vae = vae_cpu.to(device=workload.device, dtype=workload.dtype)
        runner = DiffusersRunner(vae)

        # diffusers, eager (the baseline every ratio refers to)
        log("diffusers eager: full decode")
        result: dict[str, Any] = {}
        kept: dict[str, torch.Tensor] = {}
        result["full"] = guarded(
            lambda: measure_full(runner.full, full_latents, workload, keep=kept), workload.device
        )
        reference = kept.pop("out", None)
        if not (args.no_diffusers_streaming or args.no_streaming):
            log("diffusers eager: streaming")
            result["streaming"] = guarded(lambda: diffusers_streaming(runner, workload, chunks), workload.device)
        result["cold_start"] = cold_starts.get("diffusers")
        report["diffusers"]["eager"] = result
        save_partial(args, report)

        if not args.no_channels_last:
            log("diffusers channels_last_3d" + (": full decode" if not args.no_channels_last_eager else ""))
            vae_cl = to_channels_last_3d(copy.deepcopy(vae))
            runner_cl = DiffusersRunner(vae_cl, channels_last=True)
            if not args.no_channels_last_eager:
                report["diffusers"]["channels_last_3d"] = {
                    "full": guarded(lambda: measure_full(runner_cl.full, full_latents, workload), workload.device)
                }
                save_partial(args, report)
            if not args.diffusers_compile:
                del vae_cl, runner_cl

        # ours, each variant
        for variant in args.ours:
            log(f"ours {variant.describe()}")
            entry: dict[str, Any] = {"overrides": {k: repr(v) for k, v in variant.overrides.items()}}
            try:
                decoder = build_ours(workload, checkpoint, variant.overrides)
            except Exception as error:  # a variant that cannot be built is reported, not fatal
                entry["error"] = f"{type(error).__name__}: {error}"
                report["ours"][variant.name] = entry
                continue

            def decode(x: torch.Tensor) -> torch.Tensor:
                return decoder(input=x)

            ours_kept: dict[str, torch.Tensor] = {}
            entry["full"] = guarded(
                lambda: measure_full(decode, full_latents, workload, keep=ours_kept), workload.device
            )
            if reference is not None and "out" in ours_kept:
                entry["agreement_with_diffusers"] = guarded(
                    lambda: agreement(ours_kept["out"], reference), workload.device
                )
            ours_kept.clear()
            if not args.no_streaming:
                entry["streaming"] = guarded(
                    lambda: ours_streaming(decoder, workload, chunks), workload.device
                )
            if args.profile_dir is not None:
                args.profile_dir.mkdir(parents=True, exist_ok=True)
                path = args.profile_dir / f"profile_{variant.name}.txt"
                entry["profile"] = guarded(
                    lambda: profile_full_decode(decoder, full_latents, workload, path), workload.device
                )
            entry["cold_start"] = cold_starts.get(variant.name)
            report["ours"][variant.name] = entry
            save_partial(args, report)
            del decoder
            if workload.device == "cuda":
                torch.cuda.empty_cache()

        # Last: the first compiled call's length is what a run cannot predict, and a run
        # cut short during it keeps every other figure (save_partial).
        if args.diffusers_compile and not args.no_channels_last:
            log("diffusers channels_last_3d + torch.compile: full decode")
            dynamo_settings = raise_recompile_limit(args.recompile_limit)
            vae_cl.decoder = torch.compile(vae_cl.decoder)
            t0 = time.perf_counter()
            first = guarded(lambda: {"out": runner_cl.full(full_latents)}, workload.device)
            synchronize(workload.device)
            compile_first = time.perf_counter() - t0
            compiled = {
                "full": guarded(lambda: measure_full(runner_cl.full, full_latents, workload), workload.device),
                "first_call_in_process_s": compile_first,
            }
            if "error" in first:
                compiled["first_call_error"] = first["error"]
            compiled["dynamo"] = {"settings": dynamo_settings, "counters": dynamo_counters()}
            report["diffusers"]["channels_last_3d+compile"] = compiled
            save_partial(args, report)
            if not (args.no_diffusers_streaming or args.no_streaming):
                log("diffusers channels_last_3d + torch.compile: streaming")
                compiled["streaming"] = guarded(
                    lambda: diffusers_streaming(runner_cl, workload, chunks), workload.device
                )
                compiled["dynamo"]["counters_after_streaming"] = dynamo_counters()
                save_partial(args, report)
            del vae_cl, runner_cl, first
        del reference
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.quiet = False
    if args.cold_start_child:
        workload = smoke_workload(args) if args.smoke else full_size_workload(args)
        if args.smoke:
            torch.set_num_threads(1)
        torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
        result = cold_start_here(workload, args.checkpoint, args.cold_start_child, json.loads(args.overrides))
        print(json.dumps(result))
        return result
    report = run(args)
    table = render_table(report)
    report["table"] = table
    print(table)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()

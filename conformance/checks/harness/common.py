"""Small helpers several check modules share: rollout plans, bitwise snapshots, messages."""

from __future__ import annotations

from collections.abc import Iterable
import torch

from conformance.checks.harness.context import CheckContext, Decoded
from conformance.checks.harness.tolerances import Comparison

__all__ = [
    "describe_mismatch",
    "input_layouts",
    "memory_layout",
    "module_tensors",
    "plan_text",
    "rollout_plan",
]


def rollout_plan(ctx: CheckContext, steps: int, first: int = 2) -> tuple[int, ...]:
    """A plan of ``steps`` calls: a ``first``-frame first chunk, then 1, 2, 1, 1, 2, ...
    frames (multi-frame and one-frame steps in steady state), capped by max_chunk_frames."""
    later = [1, 2, 1]
    plan = [first] + [later[i % len(later)] for i in range(steps - 1)]
    return tuple(ctx.chunk_limit(n) for n in plan)


def module_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``module`` by qualified name (shared ones once)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, param in module.named_parameters():
        tensors[name] = param
    for name, buffer in module.named_buffers():
        tensors[name] = buffer
    return tensors


def describe_mismatch(
    comparison: Comparison, decoded: Decoded | None = None, *, frame_offset: int = 0
) -> str:
    """The comparison's sentence, plus which chunk and AR index the first bad frame is in."""
    text = comparison.describe(frame_offset)
    if decoded is not None and comparison.first_bad_frame is not None:
        k, local = decoded.chunk_of_frame(comparison.first_bad_frame + frame_offset)
        text += (
            f"; that frame is pixel frame {local} of chunk {k} "
            f"(decoded at AR {decoded.first_index + k} from {decoded.plan[k]} latent frame(s))"
        )
        layouts = input_layouts(decoded, upto=k) if k < len(decoded.steps) else ""
        if layouts:
            text += f"; inputs were passed as {layouts}"
    return text


def memory_layout(x: torch.Tensor) -> str:
    """How a tensor lies in memory, in words (for messages about inputs)."""
    if x.is_contiguous():
        return "contiguous" if x.storage_offset() == 0 else "a contiguous view at a storage offset"
    span = sum((size - 1) * stride for size, stride in zip(x.shape, x.stride())) + 1
    if x.storage_offset() or span != x.numel():
        return f"a non-contiguous slice of a larger tensor (strides {list(x.stride())})"
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return "channels_last_3d"
    return f"a permuted layout (strides {list(x.stride())})"


#: Chunks whose input layout a mismatch message names: the failing chunk and the ones
#: just before it (whose history it reads). A long rollout's hundreds of chunks would
#: make a message of tens of thousands of characters.
LAYOUTS_NAMED = 8


def input_layouts(decoded: Decoded, upto: int | None = None) -> str:
    """The memory layout of each chunk's input, compactly (``chunk 0: contiguous, ...``),
    up to chunk ``upto`` (the failing one) and at most :data:`LAYOUTS_NAMED` of them, the
    last ones, when any of those was not plainly contiguous (a correct decoder gives the
    same values whatever the layout); empty when every one was, since layouts then
    explain nothing."""
    steps = list(enumerate(decoded.steps))[: None if upto is None else upto + 1]
    named = steps[-LAYOUTS_NAMED:]
    layouts = [(k, memory_layout(step.raw_input)) for k, step in named]
    if all(layout == "contiguous" for _, layout in layouts):
        return ""
    parts = [f"chunk {k}: {layout}" for k, layout in layouts]
    if len(named) < len(steps):
        parts.insert(0, f"chunks 0..{named[0][0] - 1}: not listed")
    return "; ".join(parts) + (
        " (the kit varies input memory layouts as pipelines do; if only the layouts differ, "
        "the decoder ignores its input's strides)"
    )


def plan_text(plan: Iterable[int]) -> str:
    return "[" + ", ".join(str(n) for n in plan) + "]"


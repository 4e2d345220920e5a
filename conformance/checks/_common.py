"""Small helpers several check modules share: rollout plans, bitwise snapshots, messages."""

from __future__ import annotations

from collections.abc import Iterable
import torch

from conformance.harness import CheckContext, Decoded
from conformance.tolerances import Comparison

__all__ = ["bitwise_equal", "describe_mismatch", "module_tensors", "plan_text", "rollout_plan"]


def rollout_plan(ctx: CheckContext, steps: int, first: int = 2) -> tuple[int, ...]:
    """A plan of ``steps`` calls: a ``first``-frame first chunk, then 1, 2, 1, 1, 2, ...
    frames (multi-frame and one-frame steps in steady state), capped by max_chunk_frames."""
    later = [1, 2, 1]
    plan = [first] + [later[i % len(later)] for i in range(steps - 1)]
    return tuple(ctx.chunk_limit(n) for n in plan)


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype, device and bytes (so NaN payloads and -0.0 count)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.numel() == 0:
        return True
    a_bytes = a.detach().contiguous().reshape(-1).view(torch.uint8)
    b_bytes = b.detach().contiguous().reshape(-1).view(torch.uint8)
    return bool(torch.equal(a_bytes, b_bytes))


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
    return text


def plan_text(plan: Iterable[int]) -> str:
    return "[" + ", ".join(str(n) for n in plan) + "]"


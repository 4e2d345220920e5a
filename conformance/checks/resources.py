"""Checks that streaming stays streaming: resources must not grow with rollout length."""

from __future__ import annotations

from conformance.checks.registry import promise
from conformance.harness import CheckContext
from conformance.latents import LatentSequence
from conformance.outcomes import CheckFailed
from conformance.reachability import storage_bytes

__all__ = ["cache_memory_is_bounded"]


def _human(nbytes: int) -> str:
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{nbytes} B"


@promise("resources")
def cache_memory_is_bounded(ctx: CheckContext) -> None:
    """The bytes of all tensors reachable from a cache stop growing as the rollout goes on.

    Why: a cache that appends every chunk's features (``history.append(x)``, a ``torch.cat``
    that never trims) works for the ten-second clips in tests and runs out of memory an
    hour into a live stream.

    What: decodes a long rollout of one-frame steps (length set by the profile) and after
    every step sums the bytes of all distinct storages reachable from the cache (through
    lists, dicts and nested objects). Fails when the largest size in the second half of
    the rollout exceeds the largest size in the first half. Assumption: a correct decoder's
    history is bounded by fewer latent frames than half the rollout, so its cache has
    reached full size by then (periodic sizes with shorter periods are fine).
    """
    decoder = ctx.decoder()
    steps = max(4, ctx.profile.memory_rollout_steps)
    latents = ctx.latents(LatentSequence.of(0, steps))
    cache = ctx.new_cache(decoder)
    sizes = [storage_bytes(cache)]
    for k in range(steps):
        ctx.forward(decoder, latents[:, :, k : k + 1], k, cache)
        sizes.append(storage_bytes(cache))
        ctx.evidence.examples += 1
    ctx.evidence.rollouts += 1
    after_steps = sizes[1:]
    half = len(after_steps) // 2
    early, late = max(after_steps[:half]), max(after_steps[half:])
    ctx.evidence.note("cache_bytes_by_step", after_steps)
    ctx.evidence.note("cache_bytes_max_first_half", early)
    ctx.evidence.note("cache_bytes_max_second_half", late)
    if late > early:
        growth_at = next(k for k in range(half, len(after_steps)) if after_steps[k] > early)
        raise CheckFailed(
            f"the cache keeps growing over a rollout of {steps} one-frame steps: at most "
            f"{_human(early)} during steps 0..{half - 1}, but {_human(after_steps[growth_at])} "
            f"after step {growth_at} and {_human(after_steps[-1])} after the last step "
            f"(sizes by step: {after_steps}). Memory grows with rollout length; keep a bounded "
            "history"
        )

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


#: How far the memory check extends a rollout whose cache is still growing before it
#: calls the growth unbounded: a decoder with a long (but bounded) history gets up to this
#: many times the profile's rollout length to reach its full size.
EXTENSION_LIMIT = 4


def _sample(sizes: list[int], count: int = 8) -> str:
    """``{step: bytes}`` at a few evenly spaced steps, for a message of readable length."""
    picks = sorted({round(i * (len(sizes) - 1) / (count - 1)) for i in range(count)})
    return "{" + ", ".join(f"{k}: {sizes[k]}" for k in picks) + "}"


def _grows(sizes: list[int]) -> tuple[bool, int, int]:
    """(largest size in the second half > largest in the first half, those two maxima)."""
    half = len(sizes) // 2
    early, late = max(sizes[:half]), max(sizes[half:])
    return late > early, early, late


@promise("resources", exercises=("decoder_calls",))
def cache_memory_is_bounded(ctx: CheckContext) -> None:
    """The bytes of all tensors reachable from a cache stop growing as the rollout goes on.

    Why: a cache that appends every chunk's features (``history.append(x)``, a ``torch.cat``
    that never trims) works for the ten-second clips in tests and runs out of memory an
    hour into a live stream.

    What: decodes a long rollout of one-frame steps (length set by the profile) and after
    every step sums the bytes of all distinct storages reachable from the cache (through
    lists, dicts, nested objects and per-rollout modules; not the decoder's own weights). The cache counts as growing when the largest size in
    the second half of the rollout exceeds the largest size in the first half; a growing
    rollout is continued, doubling its length, up to four times the profile's length, and
    fails if it is still growing then. Assumption: a correct decoder's history is bounded
    by fewer latent frames than half of that longest rollout, so its cache has reached
    full size by then (sizes that cycle with a shorter period are fine).
    """
    decoder = ctx.decoder()
    steps = max(4, ctx.profile.memory_rollout_steps)
    longest = steps * EXTENSION_LIMIT
    cache = ctx.new_cache(decoder)
    sizes: list[int] = []  # bytes after each step
    while True:
        latents = ctx.latents(LatentSequence.of(0, steps))
        for k in range(len(sizes), steps):
            ctx.forward(decoder, latents[:, :, k : k + 1], k, cache)
            sizes.append(storage_bytes(cache, exclude=decoder))
            ctx.evidence.examples += 1
        growing, early, late = _grows(sizes)
        if not growing or steps >= longest:
            break
        steps *= 2
    ctx.evidence.rollouts += 1
    ctx.evidence.note("rollout_steps", steps)
    ctx.evidence.note("cache_bytes_by_step", sizes)
    ctx.evidence.note("cache_bytes_max_first_half", early)
    ctx.evidence.note("cache_bytes_max_second_half", late)
    if growing:
        half = len(sizes) // 2
        growth_at = next(k for k in range(half, len(sizes)) if sizes[k] > early)
        raise CheckFailed(
            f"the cache keeps growing over a rollout of {steps} one-frame steps: at most "
            f"{_human(early)} during steps 0..{half - 1}, but {_human(sizes[growth_at])} after "
            f"step {growth_at} and {_human(sizes[-1])} after the last step (bytes of all tensors "
            f"reachable from the cache at steps {_sample(sizes)}). Memory grows with rollout length; "
            "keep a bounded history"
        )

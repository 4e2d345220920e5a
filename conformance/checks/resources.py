"""Checks that streaming stays streaming: resources must not grow with rollout length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from conformance.checks.registry import promise
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed
from conformance.checks.harness.reachability import (
    describe_holder,
    live_tensors,
    reachable_tensors,
    storage_bytes,
    storage_keys,
    storage_span,
)

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


#: Where the memory check looks, in the order its messages name them.
_PLACES = ("cache", "decoder", "elsewhere", "cuda_allocator")


@dataclass
class _Sample:
    """Bytes held after one step, by place (see :func:`cache_memory_is_bounded`)."""

    step: int
    cache: int
    decoder: int
    elsewhere: int
    cuda_allocator: int | None
    elsewhere_keys: frozenset[tuple[str, int]]

    def get(self, place: str) -> int | None:
        return getattr(self, place)


def _census(ctx: CheckContext, decoder: Any, cache: Any, step: int) -> _Sample:
    """Every live tensor's bytes, split by where it is held, not counting what the kit
    itself holds (its latents and reference outputs, reachable from the check context)."""
    live = live_tensors()
    kit = storage_keys(ctx, exclude=decoder)
    in_cache = storage_keys(cache, exclude=decoder)
    in_decoder = {k: n for k, n in storage_keys(decoder).items() if k not in in_cache}
    known = set(kit) | set(in_cache) | set(in_decoder)
    elsewhere = {k: n for k, n in live.storages.items() if k not in known}
    allocated: int | None = None
    device = ctx.spec.torch_device
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)
        kit_cuda = sum(n for (dev, _), n in kit.items() if dev.startswith("cuda"))
        allocated = torch.cuda.memory_allocated(device) - kit_cuda
    return _Sample(
        step=step,
        cache=sum(in_cache.values()),
        decoder=sum(in_decoder.values()),
        elsewhere=sum(elsewhere.values()),
        cuda_allocator=allocated,
        elsewhere_keys=frozenset(elsewhere),
    )


def _place_grows(samples: list[_Sample], steps: int, place: str) -> tuple[bool, int, int]:
    """(largest bytes sampled after the rollout's first half > largest within it, both)."""
    values = [(s.step, s.get(place)) for s in samples if s.get(place) is not None]
    early = [v for k, v in values if k < steps // 2]
    late = [v for k, v in values if k >= steps // 2]
    if not early or not late:
        return False, 0, 0
    return max(late) > max(early), max(early), max(late)  # type: ignore[type-var]


_WHERE = {
    "cache": "tensors reachable from the cache",
    "decoder": "tensors reachable from the decoder's own attributes (not its parameters' sizes: "
    "those never change)",
    "elsewhere": "tensors held outside the cache and the decoder (a module global, a closure, "
    "another object), found by a census of every live tensor in the process",
    "cuda_allocator": "bytes allocated by the CUDA caching allocator, not counting the kit's "
    "own tensors (tensors native code holds show only here)",
}


@promise(exercises=("decoder_calls",))
def cache_memory_is_bounded(ctx: CheckContext) -> None:
    """The memory a rollout holds stops growing as the rollout goes on, wherever the decoder
    keeps it: in the cache, on the decoder, or anywhere else in the process.

    Why: a cache that appends every chunk's features (``history.append(x)``, a ``torch.cat``
    that never trims) works for the ten-second clips in tests and runs out of memory an
    hour into a live stream. Moving that history onto the decoder module, into a
    module-level table keyed by a handle in the cache, or into a closure the cache holds
    leaks exactly the same way.

    What: decodes a long rollout of one-frame steps (length set by the profile). After
    every step it sums the bytes of all distinct storages reachable from the cache
    (through lists, dicts, nested objects and per-rollout modules; not the decoder's own
    weights); at about eight evenly spaced steps per rollout length it also takes a census
    of every live tensor in the process (after a full garbage collection, each storage
    once), split into the cache, the decoder's attributes and everything else, minus what
    the kit itself holds (its latents and reference outputs), and on CUDA reads the
    allocator's count. A place counts as growing when the largest size after the first
    half of the rollout exceeds the largest within it; a growing rollout is continued,
    doubling its length, up to four times the profile's length, and fails if something is
    still growing then, naming where (a module global or closure when the garbage
    collector can tell). Assumption: a correct decoder's state is bounded by fewer latent
    frames than half of that longest rollout, so it has reached full size by then (sizes
    that cycle with a shorter period are fine). Nothing else in the process may allocate
    and keep tensors while the check runs.
    """
    decoder = ctx.decoder()
    base = max(4, ctx.profile.memory_rollout_steps)
    stride = max(1, base // 8)
    steps = base
    longest = base * EXTENSION_LIMIT
    cache = ctx.new_cache(decoder)
    sizes: list[int] = []  # cache bytes after each step
    samples: list[_Sample] = []
    growing_places: list[str] = []
    while True:
        for k in range(len(sizes), steps):
            latents = ctx.latents(LatentSequence.of(0, 1, start=k))
            ctx.forward(decoder, latents, k, cache)
            del latents
            sizes.append(storage_bytes(cache, exclude=decoder))
            if (k + 1) % stride == 0 or k == steps - 1:
                samples.append(_census(ctx, decoder, cache, k))
            ctx.evidence.examples += 1
        growing, early, late = _grows(sizes)
        growing_places = [p for p in _PLACES if p != "cache" and _place_grows(samples, steps, p)[0]]
        if growing:
            growing_places.insert(0, "cache")
        if not growing_places or steps >= longest:
            break
        steps *= 2
    ctx.evidence.rollouts += 1
    ctx.evidence.note("rollout_steps", steps)
    ctx.evidence.note("cache_bytes_by_step", sizes)
    ctx.evidence.note("cache_bytes_max_first_half", early)
    ctx.evidence.note("cache_bytes_max_second_half", late)
    ctx.evidence.note(
        "live_bytes_by_step",
        {s.step: {p: s.get(p) for p in _PLACES if s.get(p) is not None} for s in samples},
    )
    if not growing_places:
        return
    half = len(sizes) // 2
    lines = []
    for place in growing_places:
        if place == "cache":
            growth_at = next(k for k in range(half, len(sizes)) if sizes[k] > early)
            lines.append(
                f"the cache keeps growing: at most {_human(early)} during steps 0..{half - 1}, but "
                f"{_human(sizes[growth_at])} after step {growth_at} and {_human(sizes[-1])} after "
                f"the last step ({_WHERE['cache']}, at steps {_sample(sizes)})"
            )
            continue
        _, first, last = _place_grows(samples, steps, place)
        by_step = "{" + ", ".join(f"{s.step}: {s.get(place)}" for s in samples[:: max(1, len(samples) // 8)]) + "}"
        line = (
            f"{_WHERE[place]} keep growing: at most {_human(first)} during steps 0..{half - 1}, "
            f"{_human(last)} later (bytes at steps {by_step})"
        )
        if place == "decoder":
            line += "; " + _decoder_growth(decoder, cache)
        if place == "elsewhere":
            where = _elsewhere_growth(samples, steps, ctx, decoder, cache)
            if where:
                line += "; " + where
        lines.append(line)
    raise CheckFailed(
        f"memory grows with rollout length over a rollout of {steps} one-frame steps: "
        + "; and ".join(lines)
        + ". Keep a bounded history, and keep per-rollout state in the cache"
    )


def _decoder_growth(decoder: Any, cache: Any) -> str:
    """The decoder's largest non-parameter tensors, by path (where a history hides)."""
    params = {id(p) for p in decoder.parameters()} | {id(b) for b in decoder.buffers()}
    in_cache = set(storage_keys(cache, exclude=decoder))
    found = [
        (path, t) for path, t in reachable_tensors(decoder, "decoder")
        if id(t) not in params and (span := storage_span(t)) is not None
        and (span.device, span.start) not in in_cache
    ]
    if not found:
        return "the growing tensors are buffers or parameters of the decoder"
    paths: dict[str, int] = {}
    for path, t in found:
        head = path.split("[")[0]
        paths[head] = paths.get(head, 0) + int(t.untyped_storage().nbytes())
    top = sorted(paths.items(), key=lambda item: -item[1])[:3]
    return "held at " + ", ".join(f"{p} ({_human(n)})" for p, n in top)


def _elsewhere_growth(
    samples: list[_Sample], steps: int, ctx: CheckContext, decoder: Any, cache: Any
) -> str | None:
    """Where the newest storages held outside the cache and decoder are referenced from."""
    early = [s for s in samples if s.step < steps // 2]
    if not early:
        return None
    before = early[-1].elsewhere_keys
    new = samples[-1].elsewhere_keys - before
    if not new:
        return None
    live = live_tensors()
    candidates = [live.tensors[k] for k in new if k in live.tensors]
    if not candidates:
        return None
    target = max(candidates, key=lambda t: t.untyped_storage().nbytes())
    holder = describe_holder(target, ignore=(live, live.tensors, candidates, samples, ctx))
    return f"{len(new)} storage(s) appeared after step {early[-1].step} and stay alive" + (
        f", held by {holder}" if holder else ""
    )

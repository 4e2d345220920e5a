"""Checks that streaming stays streaming: memory must not grow with rollout length, nor
with the number of rollouts a process has served.

Memory is counted everywhere a decoder can keep it: tensors (a census of every live
tensor in the process, split by who holds it), the CUDA allocator, and Python's own heap
as :mod:`tracemalloc` sees it (NumPy arrays, ``bytes``, lists and dicts of per-frame
objects), while the check runs.
"""

from __future__ import annotations

import contextlib
import gc
import os
import tracemalloc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from conformance.checks.registry import promise
from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed
from conformance.checks.harness.reachability import (
    census_baseline,
    describe_holder,
    live_tensors,
    reachable_tensors,
    storage_bytes,
    storage_keys,
    storage_span,
)

__all__ = ["cache_memory_is_bounded", "finished_rollouts_leave_nothing_behind"]

#: Growth of Python's heap (bytes, as tracemalloc counts them) that the memory checks
#: ignore: the kit's own bookkeeping while a check runs (a list entry per step) stays
#: far below it, a per-step leak of even a few hundred bytes crosses it over a rollout.
PYTHON_SLACK = 32 * 1024

#: The kit's own files, whose Python allocations are not the decoder's.
_KIT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_KIT_FILES = _KIT_DIR + "*"


@contextlib.contextmanager
def _python_heap_traced() -> Iterator[None]:
    """Trace Python's heap allocations while the block runs (unless already traced)."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    try:
        yield
    finally:
        if started:
            tracemalloc.stop()


#: Allocations not the decoder's: the kit's own files and tracemalloc's (for attribution).
_NOT_THE_KITS = (tracemalloc.Filter(False, _KIT_FILES), tracemalloc.Filter(False, tracemalloc.__file__))

#: Bytes per step (or rollout) of the kit's own bookkeeping that stays alive while a
#: memory check runs (a list entry per step), allowed on top of :data:`PYTHON_SLACK`.
KIT_BYTES_PER_STEP = 64


def _python_heap() -> int | None:
    """Bytes of Python's heap allocated since tracing started and still alive (``None``
    when not traced)."""
    return tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else None


def _python_growth(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> str | None:
    """Where Python's heap grew between two snapshots, outside the kit's own files."""
    stats = after.filter_traces(_NOT_THE_KITS).compare_to(before.filter_traces(_NOT_THE_KITS), "lineno")
    grown = [stat for stat in stats if stat.size_diff > 0][:3]
    if not grown:
        return None
    return "allocated at " + ", ".join(
        f"{stat.traceback[0].filename}:{stat.traceback[0].lineno} (+{_human(stat.size_diff)})" for stat in grown
    )


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
_PLACES = ("cache", "decoder", "elsewhere", "cuda_allocator", "python_heap")


@dataclass
class _Sample:
    """Bytes held after one step, by place (see :func:`cache_memory_is_bounded`)."""

    step: int
    cache: int
    decoder: int
    elsewhere: int
    cuda_allocator: int | None
    elsewhere_keys: frozenset[tuple[str, int]]
    python_heap: int | None = None
    python_snapshot: tracemalloc.Snapshot | None = None
    #: Live objects the garbage collector tracks (dicts, lists, instances...; not
    #: tensors), created since the check began, by (file, line, type) of their
    #: allocation, the kit's own files left out; taken with the heap snapshot.
    objects_by_line: Counter[tuple[str, int, str]] | None = None

    def get(self, place: str) -> int | None:
        return getattr(self, place)


def _census(ctx: CheckContext, decoder: Any, cache: Any, step: int, *, snapshot: bool = False) -> _Sample:
    """Every live tensor's bytes, split by where it is held, not counting what the kit
    itself holds (its latents and reference outputs, reachable from the check context),
    and Python's heap (when traced)."""
    heap = _python_heap()
    live = live_tensors()
    kit = storage_keys(ctx, exclude=decoder, modules=False)
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
        python_heap=heap,
        python_snapshot=tracemalloc.take_snapshot() if snapshot and heap is not None else None,
        objects_by_line=_objects_by_line() if snapshot and heap is not None else None,
    )


def _objects_by_line() -> Counter[tuple[str, int, str]]:
    """Live garbage-collected objects other than tensors by where they were allocated
    (see :attr:`_Sample.objects_by_line`). Under :func:`census_baseline` the collector
    lists only objects created since the check began, so this is quick."""
    counts: Counter[tuple[str, int, str]] = Counter()
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor):
            continue  # tensors have their census; the memory-over-steps check holds outputs
        kind = type(obj)
        traceback = tracemalloc.get_object_traceback(obj)
        if traceback is not None:
            frame = traceback[0]
            if not frame.filename.startswith(_KIT_DIR):
                counts[(frame.filename, frame.lineno, kind.__qualname__)] += 1
        elif kind.__module__ != "builtins" and not kind.__module__.startswith("conformance."):
            # Python 3.11 cannot trace instances whose dict it manages (plain classes,
            # dataclasses): count those by their class instead of their line. (A
            # built-in container without a trace was recycled from a free list made
            # before tracing began: no line to give, and often the kit's own.)
            counts[(f"an unknown line (class {kind.__module__}.{kind.__qualname__})", 0, kind.__qualname__)] += 1
    return counts


def _place_grows(samples: list[_Sample], steps: int, place: str) -> tuple[bool, int, int]:
    """(largest bytes sampled after the run's first half > largest within it, both); Python's
    heap must grow by more than :data:`PYTHON_SLACK`."""
    values = [(s.step, s.get(place)) for s in samples if s.get(place) is not None]
    early = [v for k, v in values if k < steps // 2]
    late = [v for k, v in values if k >= steps // 2]
    if not early or not late:
        return False, 0, 0
    slack = PYTHON_SLACK + KIT_BYTES_PER_STEP * steps if place == "python_heap" else 0
    return max(late) > max(early) + slack, max(early), max(late)  # type: ignore[type-var,operator]


_WHERE = {
    "cache": "tensors reachable from the cache",
    "decoder": "tensors reachable from the decoder's own attributes (not its parameters' sizes: "
    "those never change)",
    "elsewhere": "tensors held outside the cache and the decoder (a module global, a closure, "
    "another object), found by a census of every live tensor in the process",
    "cuda_allocator": "bytes allocated by the CUDA caching allocator, not counting the kit's "
    "own tensors (tensors native code holds show only here)",
    "python_heap": "Python's heap as tracemalloc counts it (NumPy arrays, bytes, lists and dicts "
    "of objects)",
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

    What: decodes a long rollout of one-frame steps (96 in the default profile, 384 in
    ``thorough``). After every step it sums the bytes of all distinct storages reachable
    from the cache (through lists, dicts, nested objects and per-rollout modules; not the
    decoder's own weights); at about twelve evenly spaced steps per rollout length it also
    takes a census of every live tensor in the process (after a full garbage collection,
    each storage once), split into the cache, the decoder's attributes and everything
    else, minus what the kit itself holds (its latents and reference outputs), reads the
    CUDA allocator's count, and Python's heap as tracemalloc traces it during the check
    (NumPy arrays, bytes and other objects). A place counts as growing when the largest
    size after the first half of the rollout exceeds the largest within it (Python's
    heap: by more than 32 KiB); so growth that starts late, or comes every so many steps,
    shows. A source line outside the kit that keeps one more live Python object (a
    dict, a list, an instance; not a tensor) alive for every step of the second half
    grows too, however few bytes that is. A growing rollout is continued, doubling its length, up to four times the
    profile's length, and fails if something is still growing then, naming where (a
    module global, a class attribute or a closure when the garbage collector can tell; a
    source line for Python's heap). Assumption: a correct decoder's state is bounded by
    fewer latent frames than half of that longest rollout, so it has reached full size
    by then (sizes that cycle with a shorter period are fine: a ring buffer, a history
    compacted on a schedule). Nothing else in the process may allocate and keep memory
    while the check runs.
    """
    ctx.decoder()  # built before the baseline: what it holds from the start is no growth
    with _python_heap_traced(), census_baseline():
        _rollout_memory(ctx)


def _rollout_memory(ctx: CheckContext) -> None:
    decoder = ctx.decoder()
    base = max(4, ctx.profile.memory_rollout_steps)
    stride = max(1, base // 12)
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
            ctx.inputs.forget()  # the kit's own latents of past steps go
            if (k + 1) % stride == 0 or k == steps - 1:
                samples.append(_census(ctx, decoder, cache, k, snapshot=_attributes(k, stride, steps)))
            ctx.evidence.examples += 1
        growing, early, late = _grows(sizes)
        growing_places = [p for p in _PLACES if p != "cache" and _place_grows(samples, steps, p)[0]]
        if growing:
            growing_places.insert(0, "cache")
        between, kept = _objects_kept_per_unit(samples, steps)
        if (not growing_places and not kept) or steps >= longest:
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
    if not growing_places and not kept:
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
        lines.append(line + _where_it_grew(place, samples, steps, ctx, decoder, cache))
    if kept:
        lines.append(
            f"objects that pile up, at least one more for each of the last {between} steps: " + _kept_text(kept)
        )
    raise CheckFailed(
        f"memory grows with rollout length over a rollout of {steps} one-frame steps: "
        + "; and ".join(lines)
        + ". Keep a bounded history, and keep per-rollout state in the cache"
    )


def _attributes(k: int, stride: int, steps: int) -> bool:
    """Whether the census at step ``k`` keeps a heap snapshot: the last one of the first
    half and the last one, between which a failure says where Python's heap grew."""
    last_early = (steps // 2 - 1) // stride * stride + stride - 1
    return k == min(last_early, steps // 2 - 1) or k == steps - 1 or k == last_early


def _heap_growth(samples: list[_Sample], steps: int) -> str | None:
    """Where Python's heap grew between the first half's last census and the last one."""
    early = [s for s in samples if s.step < steps // 2 and s.python_snapshot is not None]
    last = samples[-1].python_snapshot
    if not early or last is None:
        return None
    before = early[-1].python_snapshot
    assert before is not None
    return _python_growth(before, last)


def _where_it_grew(
    place: str, samples: list[_Sample], steps: int, ctx: CheckContext, decoder: Any, cache: Any
) -> str:
    """``"; "`` and what holds the growth of ``place`` (a decoder attribute path, the
    holder of new storages, a source line of Python's heap), or ``""`` if unknown."""
    if place == "decoder":
        where: str | None = _decoder_growth(decoder, cache)
    elif place == "elsewhere":
        where = _elsewhere_growth(samples, steps, ctx, decoder, cache)
    elif place == "python_heap":
        where = _heap_growth(samples, steps)
    else:
        where = None
    return "; " + where if where else ""


#: Fewest steps (or finished rollouts) between two object counts for
#: :func:`_objects_kept_per_unit` to judge (fewer is too little evidence).
MIN_UNITS_FOR_OBJECTS = 8


def _objects_kept_per_unit(samples: list[_Sample], units: int) -> tuple[int, list[tuple[tuple[str, int, str], int]]]:
    """(steps or rollouts between the first half's last object count and the last one,
    the allocation sites outside the kit whose live objects grew by at least one for
    every one of them, with their growth).

    Why objects and not bytes: a record of a few hundred bytes per step or per finished
    rollout (a metrics dict, a list of per-step entries, a registry entry) hides under
    any byte allowance that also absorbs the interpreter's noise; but such a record is a
    container the garbage collector tracks (a dict, a list, an instance), allocated on
    one line, and a line that keeps one more of them alive for every step or rollout is
    state that grows without bound, whatever its size. Not counted: the small blocks
    torch and the interpreter allocate and recycle inside a call (strings, buffers:
    untracked, up to ~50 of them seen on a decoder's call line, neither growing nor
    shrinking), tensors (their own census), and the kit's files. A history or memo with
    a cap stops adding objects once full, and the run's doubling (up to four times the
    profile's length) gives it room to."""
    early = [s for s in samples if s.step < units // 2 and s.objects_by_line is not None]
    last = samples[-1] if samples else None
    if not early or last is None or last.objects_by_line is None:
        return 0, []
    before, after = early[-1].objects_by_line, last.objects_by_line
    assert before is not None
    between = last.step - early[-1].step
    if between < MIN_UNITS_FOR_OBJECTS:
        return between, []
    grown = [(site, count - before.get(site, 0)) for site, count in after.items()]
    kept = sorted(((site, n) for site, n in grown if n >= between), key=lambda item: -item[1])
    return between, kept


def _kept_text(kept: list[tuple[tuple[str, int, str], int]]) -> str:
    return ", ".join(
        f"{n} more {kind} allocated at {file}" + (f":{line}" if line else "") for (file, line, kind), n in kept[:3]
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


@promise(exercises=("rollouts",))
def finished_rollouts_leave_nothing_behind(ctx: CheckContext) -> None:
    """A rollout that has ended leaves nothing behind: a process that serves rollout after
    rollout holds no more memory after the hundredth than after the tenth.

    Why: a server runs hundreds of rollouts in one process. Per-rollout state registered
    where the rollout cannot take it back -- a module-level dict of caches keyed by
    request, a class attribute list of histories, a pool that hands out new buffers but
    never gets old ones back, an ever-growing memo -- costs nothing in a test that runs
    one rollout, and runs the server out of memory by evening.

    What: runs the profile's ``finished_rollouts`` rollouts (48 in the default profile)
    one after the other, each on its own latents (a multi-frame first chunk, then one
    more step), dropping each cache when it ends. At about twelve points it takes a census
    of what is still alive: every live tensor outside the decoder's parameters and the
    kit's own, split into the decoder's attributes and everything else; the CUDA
    allocator's count; Python's heap as tracemalloc traces it (NumPy arrays, bytes,
    objects). Nothing may grow with the number of finished rollouts: the largest count
    after the first half may not exceed the largest within it (Python's heap: by more
    than 32 KiB), and no source line outside the kit may keep one more live Python
    object (a dict, a list, an instance) for every rollout finished in the second half,
    which catches bookkeeping of a few hundred bytes per rollout that no byte allowance
    sees. While something still grows the run continues, doubling, up to four times as
    many rollouts, so pools and memos that fill up to a cap pass; a failure names where
    (a module global, a class attribute, a closure, a source line).
    """
    ctx.decoder()  # built before the baseline: what it holds from the start is no growth
    with _python_heap_traced(), census_baseline():
        _finished_rollouts(ctx)


def _finished_rollouts(ctx: CheckContext) -> None:
    decoder = ctx.decoder()
    base = max(4, ctx.profile.finished_rollouts)
    longest = base * EXTENSION_LIMIT
    first = ctx.chunk_limit(2)
    runs = base
    samples: list[_Sample] = []
    done = 0
    while True:
        stride = max(1, runs // 12)
        for r in range(done, runs):
            cache = ctx.new_cache(decoder)
            latents = ctx.latents(LatentSequence.of(100 + r, first + 1))
            ctx.forward(decoder, latents[:, :, :first], 0, cache, hold=False)
            ctx.forward(decoder, latents[:, :, first:], 1, cache, hold=False)
            ctx.evidence.rollouts += 1
            ctx.inputs.forget()  # the kit's own latents of a finished rollout go too
            del cache, latents
            if (r + 1) % stride == 0 or r == runs - 1:
                samples.append(_census(ctx, decoder, None, r, snapshot=_attributes(r, stride, runs)))
        done = runs
        growing = [place for place in _PLACES if place != "cache" and _place_grows(samples, runs, place)[0]]
        between, kept = _objects_kept_per_unit(samples, runs)
        if (not growing and not kept) or runs >= longest:
            break
        runs *= 2
    ctx.evidence.note("finished_rollouts", runs)
    ctx.evidence.note(
        "live_bytes_by_rollout",
        {s.step: {p: s.get(p) for p in _PLACES if p != "cache" and s.get(p) is not None} for s in samples},
    )
    if not growing and not kept:
        return
    lines = []
    for place in growing:
        _, first_max, last_max = _place_grows(samples, runs, place)
        line = (
            f"{_WHERE[place]}: at most {_human(first_max)} after the first {runs // 2} rollouts, "
            f"{_human(last_max)} after {runs}"
        )
        lines.append(line + _where_it_grew(place, samples, runs, ctx, decoder, None))
    if kept:
        lines.append(
            f"objects that outlive their rollout, at least one more for each of the last {between} "
            "finished rollouts: " + _kept_text(kept)
        )
    raise CheckFailed(
        f"memory grows with the number of finished rollouts ({runs} rollouts run to their end, "
        "each cache dropped): " + "; and ".join(lines) + ". State a rollout creates must go "
        "with its cache; pools and memos must be bounded"
    )

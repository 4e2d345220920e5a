"""Public Hypothesis strategies for streaming decoders, as composable values.

Decoder authors can use these in their own property tests; the kit's checks are built
from them. Every strategy shrinks toward the simplest case that still fails: shorter
sequences and fewer chunks (a plan shrinks toward one chunk, which trivially equals the
full decode, so a shrunk failure keeps exactly the seams that matter).
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

__all__ = [
    "ChunkCase",
    "chunk_cases",
    "chunk_plans",
    "chunk_sizes",
    "latent_lengths",
    "long_chunk_plans",
    "plan_from_cuts",
    "required_chunk_plans",
]


def latent_lengths(max_frames: int, *, min_frames: int = 1) -> st.SearchStrategy[int]:
    """Latent sequence lengths in ``[min_frames, max_frames]``, shrinking toward short."""
    return st.integers(min_value=min_frames, max_value=max_frames)


def chunk_sizes(max_frames: int) -> st.SearchStrategy[int]:
    """Latent frames in one call, ``1..max_frames``, shrinking toward one frame."""
    return st.integers(min_value=1, max_value=max_frames)


def plan_from_cuts(cuts: list[bool], max_chunk: int | None = None) -> tuple[int, ...]:
    """A partition of ``len(cuts) + 1`` frames: ``cuts[i]`` ends a chunk after frame ``i``.

    Chunks longer than ``max_chunk`` are split into pieces of at most ``max_chunk``.
    """
    plan, current = [], 1
    for cut in cuts:
        if cut:
            plan.append(current)
            current = 1
        else:
            current += 1
    plan.append(current)
    if max_chunk is not None:
        plan = [piece for n in plan for piece in _split(n, max_chunk)]
    return tuple(plan)


def _split(n: int, limit: int) -> list[int]:
    return [limit] * (n // limit) + ([n % limit] if n % limit else [])


def chunk_plans(total: int, *, max_chunk: int | None = None) -> st.SearchStrategy[tuple[int, ...]]:
    """Partitions of ``total`` latent frames into chunks (the latent frames of each call).

    Drawn as "cut after frame i?" flags, so every partition is reachable and shrinking
    removes cuts: the simplest failing plan has the fewest seams.
    """
    if total < 1:
        raise ValueError(f"a chunk plan needs at least one frame, got total={total}")
    return st.lists(st.booleans(), min_size=total - 1, max_size=total - 1).map(
        lambda cuts: plan_from_cuts(cuts, max_chunk)
    )


@dataclass(frozen=True)
class ChunkCase:
    """One chunked-vs-full example: latent sequence ``variant`` cut into ``plan``."""

    variant: int
    plan: tuple[int, ...]

    @property
    def length(self) -> int:
        return sum(self.plan)


def chunk_cases(
    max_frames: int, *, variants: int = 1, max_chunk: int | None = None
) -> st.SearchStrategy[ChunkCase]:
    """A latent sequence (length and one of ``variants`` contents) and a chunk plan for it.

    Few variants on purpose: the one-call reference decode of each (variant, length) is
    computed once and compared against every plan drawn for it.
    """

    @st.composite
    def build(draw: st.DrawFn) -> ChunkCase:
        length = draw(latent_lengths(max_frames))
        variant = draw(st.integers(min_value=0, max_value=max(0, variants - 1)))
        plan = draw(chunk_plans(length, max_chunk=max_chunk))
        return ChunkCase(variant=variant, plan=plan)

    return build()


def _alternating(total: int) -> tuple[int, ...]:
    plan: list[int] = []
    size = 2
    while sum(plan) < total:
        plan.append(min(size, total - sum(plan)))
        size = 3 - size
    return tuple(plan)


def required_chunk_plans(max_frames: int, *, max_chunk: int | None = None) -> list[tuple[int, ...]]:
    """Plans every certification tries explicitly, whatever Hypothesis draws.

    The seams real decoders get wrong: a multi-frame first chunk then one-frame chunks
    (``[3, 1, 1, ...]``: the causal first frame followed by steady state), all one-frame
    chunks, a one-frame first chunk followed by a long one, a long first chunk and a
    one-frame tail, and alternating sizes.
    """
    n = max_frames
    first = min(3, n)
    candidates = [(first,) + (1,) * (n - first), (1,) * n, _alternating(n)]
    if n > 1:
        candidates += [(1, n - 1), (n - 1, 1)]
    plans: list[tuple[int, ...]] = []
    for plan in candidates:
        if max_chunk is not None:
            plan = tuple(piece for p in plan for piece in _split(p, max_chunk))
        if plan not in plans:
            plans.append(plan)
    return plans


def long_chunk_plans(total: int, *, max_chunk: int | None = None) -> list[tuple[int, ...]]:
    """Plans for one long sequence of ``total`` latent frames, compared with one call of all
    of them: a two-frame first chunk then one-frame steps (bugs that need many steps:
    ring buffers that wrap, position counters), and a two-frame first chunk followed by
    long later chunks of six frames and of the rest (bugs only in long calls after the
    first: a fast path for big chunks that drops history, a fixed-size internal buffer).
    """
    if total < 1:
        raise ValueError(f"a chunk plan needs at least one frame, got total={total}")
    first = min(2, total)
    candidates = [(first,) + (1,) * (total - first)]
    if total >= first + 7:
        candidates.append((first, 6, total - first - 6))
    elif total > first:
        candidates.append((first, total - first))
    plans: list[tuple[int, ...]] = []
    for plan in candidates:
        if max_chunk is not None:
            plan = tuple(piece for p in plan for piece in _split(p, max_chunk))
        if plan not in plans:
            plans.append(plan)
    return plans

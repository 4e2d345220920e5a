"""Seeded latent sequences: reproducible inputs that extend and fork like rollouts do.

A :class:`LatentSequence` is a *description* of latent frames, not a tensor: a tuple of
segments ``(stream, start, count)``, where frame ``i`` of stream ``s`` is always the same
values for a given check seed. Descriptions are cheap, hashable (so full decodes can be
memoized by them) and compose: a rollout that forks continues its prefix with a new
stream, so both branches share exactly the frames they should and differ after.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["LatentSequence", "frame_generator_seed", "make_frames"]


@dataclass(frozen=True)
class LatentSequence:
    """Latent frames as ``(stream, start, count)`` segments, in order."""

    segments: tuple[tuple[int, int, int], ...] = ()

    @staticmethod
    def of(stream: int, count: int, start: int = 0) -> LatentSequence:
        return LatentSequence(((stream, start, count),) if count else ())

    @property
    def length(self) -> int:
        return sum(count for _, _, count in self.segments)

    def then(self, stream: int, count: int, start: int | None = None) -> LatentSequence:
        """This sequence followed by ``count`` frames of ``stream`` (from ``start``, or from
        where this sequence left that stream when it ends with it, else 0)."""
        if count == 0:
            return self
        if start is None:
            last = self.segments[-1] if self.segments else None
            start = last[1] + last[2] if last and last[0] == stream else 0
        segments = list(self.segments)
        if segments and segments[-1][0] == stream and segments[-1][1] + segments[-1][2] == start:
            s, a, c = segments.pop()
            segments.append((s, a, c + count))
        else:
            segments.append((stream, start, count))
        return LatentSequence(tuple(segments))

    def frames(self) -> list[tuple[int, int]]:
        """``(stream, frame index)`` for every frame, in order."""
        return [(s, a + i) for s, a, c in self.segments for i in range(c)]

    def slice(self, begin: int, end: int) -> LatentSequence:
        out = LatentSequence()
        for stream, index in self.frames()[begin:end]:
            out = out.then(stream, 1, index)
        return out

    def __repr__(self) -> str:
        parts = [f"stream {s} frames {a}..{a + c - 1}" for s, a, c in self.segments]
        return f"<{self.length} latent frames: {', '.join(parts) or 'none'}>"


def frame_generator_seed(check_seed: int, stream: int, index: int) -> int:
    """A 63-bit seed for one latent frame, mixing the three integers (splitmix-style)."""
    x = (check_seed * 0x9E3779B97F4A7C15 + stream * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB)
    x &= (1 << 64) - 1
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & ((1 << 64) - 1)
    x ^= x >> 32
    return x & ((1 << 63) - 1)


def make_frames(
    check_seed: int,
    frames: list[tuple[int, int]],
    *,
    batch: int,
    channels: int,
    size: tuple[int, int],
) -> torch.Tensor:
    """Standard-normal latents ``[batch, channels, len(frames), h, w]`` in float32 on CPU,
    each frame from its own generator so prefixes and forks are consistent."""
    h, w = size
    out = torch.empty(batch, channels, len(frames), h, w)
    for t, (stream, index) in enumerate(frames):
        generator = torch.Generator().manual_seed(frame_generator_seed(check_seed, stream, index))
        out[:, :, t] = torch.randn(batch, channels, h, w, generator=generator)
    return out

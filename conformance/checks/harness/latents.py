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

__all__ = [
    "INPUT_STYLES",
    "LatentSequence",
    "OUTLIER_FRACTION",
    "OUTLIER_RANGE",
    "frame_generator_seed",
    "make_frames",
    "styled_input",
]

#: Share of each latent frame's values (at least two per frame and batch element) drawn
#: from the tail, and the magnitude range they are drawn from (uniform, random sign).
#:
#: Why: pipelines feed normalized latents ``(z - latents_mean) / latents_std`` (Wan 2.1
#: and 2.2 ship these per-channel statistics), which are about unit-variance but heavy
#: tailed: individual values reach |x| > 6, where a Gaussian almost never goes
#: (P(|x| > 6) = 2e-9, i.e. never in the few thousand values a check decodes). A decoder
#: that clamps its history (or its input) to a "safe" range such as +-6 then decodes
#: the test inputs right and real latents wrong. Every frame therefore carries a few
#: values with 6.5 <= |x| <= 10, so every chunk seam carries some; 10 is the kit's
#: documented largest magnitude (a decoder must decode all of [-10, 10] correctly;
#: beyond that nothing is asserted). The rest of each frame stays standard normal, so
#: typical activations, and the signal the comparisons need, are unchanged.
OUTLIER_FRACTION = 0.01
OUTLIER_RANGE = (6.5, 10.0)

#: How the kit hands latents to ``forward``, in rotation (see :func:`styled_input`).
INPUT_STYLES = (
    "contiguous",
    "slice_of_larger",
    "channels_last_3d",
    "time_major_storage",
    "channels_last_slice",
    "expanded",
)


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
    """Latents ``[batch, channels, len(frames), h, w]`` in float32 on CPU, each frame from
    its own generator so prefixes and forks are consistent: standard normal, with a few
    heavy-tail values per frame and batch element (see :data:`OUTLIER_RANGE`)."""
    h, w = size
    out = torch.empty(batch, channels, len(frames), h, w)
    per_element = channels * h * w
    outliers = min(per_element, max(2, round(OUTLIER_FRACTION * per_element)))
    low, high = OUTLIER_RANGE
    for t, (stream, index) in enumerate(frames):
        generator = torch.Generator().manual_seed(frame_generator_seed(check_seed, stream, index))
        frame = torch.randn(batch, per_element, generator=generator)
        for b in range(batch):
            where = torch.randperm(per_element, generator=generator)[:outliers]
            magnitude = low + (high - low) * torch.rand(outliers, generator=generator)
            sign = torch.randint(0, 2, (outliers,), generator=generator) * 2 - 1
            frame[b, where] = magnitude * sign
        out[:, :, t] = frame.view(batch, channels, h, w)
    return out


def styled_input(x: torch.Tensor, style: str, *, time_axis: int, seed: int = 0) -> torch.Tensor:
    """``x`` (already in the decoder's layout) with the same values, laid out in memory
    the way pipelines hand latents over:

    - ``contiguous``: a fresh contiguous tensor;
    - ``slice_of_larger``: a view into a larger latent tensor, as ``latents[:, k:k+n]``
      gives: two extra frames before and one after along the time axis and one extra
      column along the last axis, filled with other values, so the view is
      non-contiguous and starts at a non-zero storage offset (a decoder that reads its
      input's memory as if it were contiguous reads the neighbours);
    - ``channels_last_3d``: ``torch.channels_last_3d`` memory format (dims 1 innermost);
    - ``time_major_storage``: storage ordered time-axis first (frames stacked, then
      permuted into place), another stride pattern pipelines produce;
    - ``channels_last_slice``: a slice, at a non-zero storage offset, of a larger tensor
      kept in ``channels_last_3d`` memory format (a pipeline holding its latents
      channels-last and cutting chunks out of them);
    - ``expanded``: every axis of size one (the batch of one, the time of a one-frame
      chunk) with stride 0, as ``expand`` produces when a pipeline broadcasts (a decoder
      that computes addresses from strides, or assumes a stride from the shape, reads
      the wrong memory).

    Every style is a valid input; a correct decoder gives the same result for all.
    """
    if style == "contiguous":
        return x.clone(memory_format=torch.contiguous_format)
    if style == "slice_of_larger":
        shape = list(x.shape)
        shape[time_axis] += 3
        shape[-1] += 1
        generator = torch.Generator().manual_seed(seed)
        big = torch.randn(shape, generator=generator).mul_(3.0).to(device=x.device, dtype=x.dtype)
        index: list[slice] = [slice(None)] * x.dim()
        index[time_axis] = slice(2, 2 + x.shape[time_axis])
        index[-1] = slice(0, x.shape[-1])
        view = big[tuple(index)]
        view.copy_(x)
        return view
    if style == "channels_last_3d":
        return x.clone(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.contiguous_format)
    if style == "channels_last_slice":
        shape = list(x.shape)
        shape[time_axis] += 3
        shape[-1] += 1
        generator = torch.Generator().manual_seed(seed)
        big = torch.randn(shape, generator=generator).mul_(3.0).to(device=x.device, dtype=x.dtype)
        if big.dim() == 5:
            big = big.contiguous(memory_format=torch.channels_last_3d)
        index = [slice(None)] * x.dim()
        index[time_axis] = slice(2, 2 + x.shape[time_axis])
        index[-1] = slice(1, 1 + x.shape[-1])
        view = big[tuple(index)]
        view.copy_(x)
        return view
    if style == "expanded":
        base = x.clone(memory_format=torch.contiguous_format)
        strides = [0 if size == 1 else stride for size, stride in zip(base.shape, base.stride())]
        return base.as_strided(base.shape, strides)
    if style == "time_major_storage":
        order = [time_axis] + [d for d in range(x.dim()) if d != time_axis]
        inverse = [order.index(d) for d in range(x.dim())]
        return x.permute(order).clone(memory_format=torch.contiguous_format).permute(inverse)
    raise ValueError(f"unknown input style {style!r}; known: {', '.join(INPUT_STYLES)}")

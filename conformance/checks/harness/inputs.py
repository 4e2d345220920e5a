"""Latents as a pipeline passes them: seeded frames, in the spec's axis order and memory layouts.

:class:`InputMaker` turns a :class:`~conformance.checks.harness.latents.LatentSequence` (a
description of frames) into canonical ``[B, C, T, h, w]`` latents in the spec's dtype and
device, scaled by the check's latent scale, and canonical latents into the tensor a
forward call is given: the spec's layout, in one of the memory layouts pipelines produce
(:data:`~conformance.checks.harness.latents.INPUT_STYLES`).
"""

from __future__ import annotations

import torch

from conformance.checks.harness.evidence import Evidence
from conformance.checks.harness.latents import (
    INPUT_STYLES,
    LatentSequence,
    frame_generator_seed,
    make_frames,
    styled_input,
)
from conformance.core.spec import AXES, DecoderSpec

__all__ = ["InputMaker", "permutation"]


def permutation(source: str, target: str) -> tuple[int, ...]:
    """Axes of ``source`` in the order ``target`` lists them (for ``Tensor.permute``)."""
    return tuple(source.index(axis) for axis in target)


class InputMaker:
    """One check's latents: frames memoized by description, layouts chosen per call."""

    def __init__(self, spec: DecoderSpec, seed: int, evidence: Evidence) -> None:
        self.spec = spec
        self.seed = seed
        #: Factor applied to every latent :meth:`latents` returns (lowered by signal seeking
        #: for decoders whose output is clamped at unit-variance latents).
        self.scale = 1.0
        self._frames: dict[tuple[int, int], torch.Tensor] = {}
        self._count = 0
        self._evidence = evidence

    def latents(self, sequence: LatentSequence, batch: int | None = None) -> torch.Tensor:
        """The frames ``sequence`` describes, canonical ``[B, C, T, h, w]`` in the spec's dtype
        and device."""
        spec = self.spec
        frames = sequence.frames()
        missing = [f for f in frames if f not in self._frames]
        if missing:
            made = make_frames(
                self.seed, missing, batch=spec.batch_size, channels=spec.latent_channels, size=spec.latent_size
            )
            for t, key in enumerate(missing):
                self._frames[key] = made[:, :, t : t + 1]
        if not frames:
            h, w = spec.latent_size
            out = torch.empty(spec.batch_size, spec.latent_channels, 0, h, w)
        else:
            out = torch.cat([self._frames[f] for f in frames], dim=2)
        if batch is not None:
            out = out[:batch]
        if self.scale != 1.0:
            out = out * self.scale
        return out.to(device=spec.torch_device, dtype=spec.dtype)

    def forget(self) -> None:
        """Drop the frames made so far (a check that runs many rollouts, each on its own
        latents, keeps the kit's memory flat)."""
        self._frames.clear()

    def to_input_layout(
        self, latents: torch.Tensor, style: str | None = None, *, autoregressive_index: int | None = None
    ) -> torch.Tensor:
        """Canonical ``BCTHW`` latents as a fresh tensor in the spec's layout, in the memory
        layout of ``style`` (see :func:`~conformance.checks.harness.latents.styled_input`).

        Without ``style`` one of :data:`INPUT_STYLES` is picked: for a forward call, by
        :meth:`input_style` of its AR index and frame count (so a replayed call gets the
        same memory layout, and a chunked decode and the one-call decode it is compared
        with mostly get different ones: a decoder that ignores strides disagrees with
        itself); otherwise in rotation. The styles used are counted in the evidence.
        """
        x = latents.permute(permutation(AXES, self.spec.layout))
        count = self._count
        self._count += 1
        if style is None:
            if autoregressive_index is not None:
                style = self.input_style(autoregressive_index, int(latents.shape[2]))
            else:
                style = INPUT_STYLES[(self.seed + count) % len(INPUT_STYLES)]
        used = self._evidence.extra.setdefault("input_styles", {})
        used[style] = used.get(style, 0) + 1
        return styled_input(x, style, time_axis=self.spec.layout.index("T"), seed=self.seed + count)

    def input_style(self, autoregressive_index: int, frames: int) -> str:
        """The memory layout a call of ``frames`` latent frames at AR ``autoregressive_index``
        is passed in: fixed per check seed, so failures replay."""
        mixed = frame_generator_seed(self.seed, autoregressive_index, frames)
        return INPUT_STYLES[mixed % len(INPUT_STYLES)]

    def from_output_layout(self, output: torch.Tensor) -> torch.Tensor:
        """A decoder output (in the spec's output layout) viewed as canonical ``BCTHW``."""
        return output.permute(permutation(self.spec.resolved_output_layout, AXES))

"""Conformance specs for the stand-in framework's decoder.

``standin_video.specs:standin_spec`` is the correct decoder; ``bug_spec(name)`` builds a
spec for one seeded bug (see :mod:`standin_video.decoder`); ``BUGS`` lists them with the
check that must catch each. The decoder returns a :class:`~standin_video.decoder.VideoFrames`
object, so each spec declares an ``output_adapter``; its network is built on the meta
device, so without a checkpoint the factory fills it with seeded random weights.
"""

from __future__ import annotations

from typing import Any

import torch

from conformance import DecoderSpec
from conformance.helpers import materialize_random

from standin_video.decoder import StandinDecoderConfig, StandinVideoDecoder, VideoFrames

__all__ = [
    "BUGS",
    "bug_cache_init_takes_no_context",
    "bug_negative_zero_frames",
    "bug_shared_graph_replay",
    "bug_spec",
    "bug_upsampler_keeps_last_chunk",
    "frames_of",
    "from_checkpoint",
    "save_random_checkpoint",
    "standin_spec",
]

#: Seed of the random weights (any seed works; fixed so that runs are reproducible).
WEIGHT_SEED = 1234

#: Seeded bug flag -> (the check that must catch it, words its message must contain).
BUGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "bug_upsampler_keeps_last_chunk": ("chunked_decode_matches_full_decode", ("chunk plan",)),
    "bug_shared_graph_replay": ("interleaved_rollouts_are_independent", ("rollout",)),
    "bug_negative_zero_frames": (
        "temporal_mappers_monotone_and_steady",
        ("get_output_temporal_size(0, 0) = -1", "must raise ValueError"),
    ),
    "bug_cache_init_takes_no_context": ("cache_init_accepts_context", ("**context",)),
}


def frames_of(output: VideoFrames) -> torch.Tensor:
    """The output adapter: a :class:`VideoFrames` holds ``[B, T, C, H, W]`` frames."""
    return output.frames


def build(config: StandinDecoderConfig) -> StandinVideoDecoder:
    """The decoder in eval mode; random weights unless the config names a checkpoint."""
    decoder = config.setup()
    if config.checkpoint_path is None:
        materialize_random(decoder, seed=WEIGHT_SEED, device=config.device, dtype=config.dtype)
    return decoder.eval()


def save_random_checkpoint(path: str, seed: int = WEIGHT_SEED) -> None:
    """Write a checkpoint of seeded random weights (what a trained one would be, for tests)."""
    decoder = StandinDecoderConfig().setup()
    materialize_random(decoder, seed=seed)
    torch.save(decoder.network.state_dict(), path)


def standin_spec(**config_changes: Any) -> DecoderSpec:
    """The correct decoder (CPU, float32, graph capture on: emulated on the CPU)."""
    config = StandinDecoderConfig(graph_capture=True, **config_changes)
    name = "standin-video" + "".join(
        f"+{key}" for key, value in sorted(config_changes.items()) if value is True
    )
    return DecoderSpec(
        name=name,
        factory=lambda: build(config),
        latent_channels=config.latent_channels,
        latent_size=(3, 4),
        layout="BCTHW",
        output_layout="BTCHW",
        output_channels=config.out_channels,
        dtype=config.dtype,
        device=config.device,
        output_adapter=frames_of,
    )


def bug_spec(flag: str) -> DecoderSpec:
    """The decoder with one seeded bug switched on."""
    if flag not in BUGS:
        raise KeyError(f"no seeded bug {flag!r}; bugs are {sorted(BUGS)}")
    return standin_spec(**{flag: True})


# One zero-argument target per seeded bug, for the command line:
#   python -m conformance certify standin_video.specs:bug_upsampler_keeps_last_chunk


def bug_upsampler_keeps_last_chunk() -> DecoderSpec:
    return bug_spec("bug_upsampler_keeps_last_chunk")


def bug_shared_graph_replay() -> DecoderSpec:
    return bug_spec("bug_shared_graph_replay")


def bug_negative_zero_frames() -> DecoderSpec:
    return bug_spec("bug_negative_zero_frames")


def bug_cache_init_takes_no_context() -> DecoderSpec:
    return bug_spec("bug_cache_init_takes_no_context")


def from_checkpoint(path: str) -> DecoderSpec:
    """The correct decoder with its weights loaded from ``path`` (a ``torch.save`` state dict)."""
    return standin_spec(checkpoint_path=path)


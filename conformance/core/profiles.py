"""How hard the kit tries: the ``quick``, ``default`` and ``thorough`` profiles.

A profile scales the number of Hypothesis examples, the latent sequence lengths, how many
rollouts run side by side, and how long the memory check's rollout is. Everything else
(what is checked, the tolerances) is the same in every profile.

Sizes are small on purpose: seam bugs show up at the first seams, so a sequence of six
latent frames with a three-frame first chunk and one-frame chunks after it exercises
everything a sixty-frame one does, at a tenth of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_PROFILE", "PROFILES", "Profile", "get_profile"]


@dataclass(frozen=True)
class Profile:
    """Effort settings for one certification run."""

    name: str
    #: Hypothesis examples for the chunked-vs-full property.
    chunk_examples: int
    #: Longest latent sequence (frames) a chunk plan partitions; also caps the state machine.
    max_sequence_frames: int
    #: Length of one long rollout of one-frame steps the chunk check compares with a single
    #: full decode: bugs that appear only after many steps (ring buffers that wrap, position
    #: counters) need more steps than random plans reach.
    long_sequence_frames: int
    #: Number of distinct latent sequences per length the chunk property draws from; small,
    #: so one full decode serves many chunk plans.
    latent_variants: int
    #: State machine: programs to run, and rule steps per program.
    state_machine_examples: int
    state_machine_steps: int
    #: Most rollouts alive at once, in the state machine and the interleaving check.
    max_rollouts: int
    #: Steps each rollout takes in the interleaving / forking / determinism checks.
    rollout_steps: int
    #: One-frame steps in the memory check's long rollout. The check assumes a correct
    #: decoder's cache reaches its largest size within the first half of this many steps
    #: (history bounded by fewer latent frames than half of it).
    memory_rollout_steps: int
    #: Size mappers are checked for every AR index below this, plus a few far ones...
    mapper_indices: int
    #: ...and every latent frame count from 1 to this (densely), plus a sparse set of
    #: counts up to ``mapper_far_frames`` (powers of two and their neighbours, so that
    #: mappers wrong only for large ``n`` -- a lookup table, a 16-bit overflow -- are seen).
    mapper_frames: int
    #: Largest latent frame count the sparse mapper queries reach.
    mapper_far_frames: int
    #: Largest AR index the sparse mapper queries reach (powers of ten and two, their
    #: neighbours): a long live stream reaches AR 10^4 within hours. The mapper query sets
    #: are the same in every profile (they cost milliseconds), so a pinned expected
    #: failure's fingerprint of a mapper check does not depend on the profile.
    mapper_far_index: int
    #: Longest single call (latent frames) the size and chunk checks make, and the length
    #: of the later chunks in their long plans; capped by ``DecoderSpec.max_chunk_frames``.
    long_call_frames: int
    #: Seconds ``outputs_survive_later_steps`` keeps the first output before its last
    #: re-verification: work still in flight (a background thread, an unsynchronized
    #: stream) that writes into a returned output is caught if it lands within this time.
    output_hold_s: float
    #: Seconds a check may run before it is reported as hanging (DecoderSpec.check_timeout_s
    #: overrides).
    check_timeout_s: float


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick",
        chunk_examples=12,
        max_sequence_frames=5,
        long_sequence_frames=12,
        latent_variants=1,
        state_machine_examples=5,
        state_machine_steps=10,
        max_rollouts=2,
        rollout_steps=4,
        memory_rollout_steps=16,
        mapper_indices=8,
        mapper_frames=64,
        mapper_far_frames=4096,
        mapper_far_index=10001,
        long_call_frames=12,
        output_hold_s=1.0,
        check_timeout_s=60.0,
    ),
    "default": Profile(
        name="default",
        chunk_examples=40,
        max_sequence_frames=6,
        long_sequence_frames=20,
        latent_variants=2,
        state_machine_examples=15,
        state_machine_steps=20,
        max_rollouts=3,
        rollout_steps=5,
        memory_rollout_steps=24,
        mapper_indices=8,
        mapper_frames=64,
        mapper_far_frames=4096,
        mapper_far_index=10001,
        long_call_frames=20,
        output_hold_s=3.0,
        check_timeout_s=120.0,
    ),
    "thorough": Profile(
        name="thorough",
        chunk_examples=200,
        max_sequence_frames=8,
        long_sequence_frames=32,
        latent_variants=3,
        state_machine_examples=60,
        state_machine_steps=30,
        max_rollouts=4,
        rollout_steps=8,
        memory_rollout_steps=48,
        mapper_indices=8,
        mapper_frames=64,
        mapper_far_frames=4096,
        mapper_far_index=10001,
        long_call_frames=32,
        output_hold_s=6.0,
        check_timeout_s=600.0,
    ),
}

DEFAULT_PROFILE = "default"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None

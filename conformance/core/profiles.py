"""How hard the kit tries: the ``quick``, ``default`` and ``thorough`` profiles.

A profile scales the number of Hypothesis examples, the latent sequence lengths and
rollout horizons, how many rollouts run side by side, and how long outputs are held.
Everything else (what is checked, the tolerances, the size-mapper queries, which are
the same in every profile so that a pinned failure's fingerprint does not depend on
it) is the same in every profile. ``default`` is written out; the others are changes
to it, so what differs is visible at a glance.

Sizes are small where small is enough: seam bugs show at the first seams, so sequences
of six latent frames cover what sixty would. Bugs that need many steps (buffers that
fill, wrap or compact; keyframes every N frames; memory that grows late) get their own
long horizons: ``horizon_frames`` latent frames compared with one decode of all of them,
``memory_rollout_steps`` steps of memory census, ``finished_rollouts`` rollouts run to
their end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    #: full decode (the long-horizon check goes much further, see ``horizon_frames``).
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
    #: decoder's memory reaches its largest size within the first half of its longest
    #: rollout (four times this, when it still grows): history bounded by fewer latent
    #: frames than twice this many.
    memory_rollout_steps: int
    #: Longest single call (latent frames) the size and chunk checks make, and the length
    #: of the later chunks in their long plans; capped by ``DecoderSpec.max_chunk_frames``.
    long_call_frames: int
    #: Seconds a returned output is held before its last re-verification: work still in
    #: flight (a background thread, an unsynchronized stream) that writes into a returned
    #: output is caught if it lands within this time (in a full run, outputs are held
    #: until the run ends, and at least this long).
    output_hold_s: float
    #: Seconds a check may run before it is reported as hanging (DecoderSpec.check_timeout_s
    #: overrides).
    check_timeout_s: float
    #: Latent frames of the long rollouts ``long_rollouts_match_full_decode`` compares with
    #: one call of all of them (``DecoderSpec.horizon_frames`` asks for more).
    horizon_frames: int
    #: Rollouts ``finished_rollouts_leave_nothing_behind`` runs to their end, one after the
    #: other, before it judges what they left behind (extended up to 4x while it grows).
    finished_rollouts: int
    #: Seconds ``outputs_ignore_time_and_global_state`` pauses between two calls of one
    #: rollout (its clock jumps cost nothing; this is the real wait).
    pause_s: float


_DEFAULT = Profile(
    name="default",
    chunk_examples=40,
    max_sequence_frames=6,
    long_sequence_frames=20,
    latent_variants=2,
    state_machine_examples=15,
    state_machine_steps=20,
    max_rollouts=3,
    rollout_steps=5,
    memory_rollout_steps=96,
    long_call_frames=20,
    output_hold_s=3.0,
    check_timeout_s=120.0,
    horizon_frames=256,
    finished_rollouts=48,
    pause_s=1.0,
)

PROFILES: dict[str, Profile] = {
    "quick": replace(
        _DEFAULT,
        name="quick",
        chunk_examples=12,
        max_sequence_frames=5,
        long_sequence_frames=12,
        latent_variants=1,
        state_machine_examples=5,
        state_machine_steps=10,
        max_rollouts=2,
        rollout_steps=4,
        memory_rollout_steps=32,
        long_call_frames=12,
        output_hold_s=1.0,
        check_timeout_s=60.0,
        horizon_frames=64,
        finished_rollouts=16,
        pause_s=0.25,
    ),
    "default": _DEFAULT,
    "thorough": replace(
        _DEFAULT,
        name="thorough",
        chunk_examples=200,
        max_sequence_frames=8,
        long_sequence_frames=32,
        latent_variants=3,
        state_machine_examples=60,
        state_machine_steps=30,
        max_rollouts=4,
        rollout_steps=8,
        memory_rollout_steps=384,
        long_call_frames=32,
        output_hold_s=6.0,
        check_timeout_s=600.0,
        horizon_frames=1024,
        finished_rollouts=200,
        pause_s=3.0,
    ),
}

DEFAULT_PROFILE = "default"


def get_profile(name: str) -> Profile:
    """The profile called ``name``; ``ValueError`` listing the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown profile {name!r}; known profiles: {', '.join(PROFILES)}") from None

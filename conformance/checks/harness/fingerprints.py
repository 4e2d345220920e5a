"""Failure fingerprints: what a failing check saw, independent of the seed.

An expected failure pinned to a fingerprint (``ExpectedFailure(reason, fingerprint=...)``)
covers exactly the failure that was declared. A fingerprint must therefore depend on the
decoder's bug and not on the random search that found it: the mapper checks list their
violations over fixed query sets (``conformance.checks.size_mappers``); the chunk check
uses :func:`seam_fingerprint`, the chunk plans that fail among a fixed battery.
"""

from __future__ import annotations

import time
from itertools import product
from typing import Any

from conformance.checks.harness.context import CheckContext
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed, DecoderError
from conformance.strategies import plan_from_cuts

__all__ = ["fingerprint_plans", "seam_fingerprint"]

#: Longest sequence of the seam battery: every partition of 1..6 latent frames (63 plans).
SEAM_BATTERY_FRAMES = 6


def fingerprint_plans(max_frames: int = SEAM_BATTERY_FRAMES, max_chunk: int | None = None) -> list[tuple[int, ...]]:
    """Every partition of 1..``max_frames`` latent frames into chunks (chunks longer than
    ``max_chunk`` split), in a fixed order."""
    plans: list[tuple[int, ...]] = []
    for total in range(1, max_frames + 1):
        for cuts in product((False, True), repeat=total - 1):
            plan = plan_from_cuts(list(cuts), max_chunk)
            if plan not in plans:
                plans.append(plan)
    return plans


def seam_fingerprint(ctx: CheckContext, decoder: Any, *, deadline: float | None = None) -> list[str]:
    """The chunk plans (of the fixed battery) whose chunked decode differs from the one-call
    decode, as ``"[2, 1, 1]"`` lines: which seams a bug breaks, whatever the seed.

    Run only after the chunk check failed (it costs up to 63 rollouts). A plan the decoder
    raises on is listed as ``"[..] raises"``, one whose output the kit rejects (wrong
    length, non-finite values) as ``"[..] rejected"``. If ``deadline`` (a
    ``time.monotonic()`` value) passes first, the last line says the battery is
    incomplete, so a pinned declaration cannot match by accident.
    """
    limit = ctx.chunk_limit(SEAM_BATTERY_FRAMES)
    plans = fingerprint_plans(limit, ctx.spec.max_chunk_frames)
    failing: list[str] = []
    for done, plan in enumerate(plans):
        if deadline is not None and time.monotonic() > deadline:
            failing.append(
                f"(incomplete: {done} of {len(plans)} plans decoded before the check's time ran out)"
            )
            break
        sequence = LatentSequence.of(0, sum(plan))
        try:
            full = ctx.full_decode(decoder, sequence)
            chunked = ctx.decode_plan(decoder, ctx.latents(sequence), plan).video()
        except DecoderError:
            failing.append(f"{list(plan)} raises")
            continue
        except CheckFailed:
            failing.append(f"{list(plan)} rejected")
            continue
        if chunked.shape != full.shape:
            failing.append(f"{list(plan)} rejected")
        elif not ctx.compare(full, chunked).ok:
            failing.append(str(list(plan)))
    return failing

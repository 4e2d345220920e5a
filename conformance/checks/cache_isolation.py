"""Checks that one rollout's state lives in its cache, and only there.

A streaming pipeline serves several rollouts with one decoder (a batch of users, a
beam, a preview and a final render). Any state that leaks between caches, or that lives
on the module, decodes one user's video with another's history: no error, wrong pixels.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from conformance.checks.harness.bitwise import bitwise_equal
from conformance.checks.harness.common import module_tensors, plan_text, rollout_plan
from conformance.checks.registry import promise
from conformance.checks.harness.calls import describe_exception
from conformance.checks.harness.context import CheckContext, Decoded
from conformance.checks.harness.latents import LatentSequence
from conformance.core.outcomes import CheckFailed, CheckSkipped
from conformance.checks.harness.reachability import StorageSpan, overlapping_spans, reachable_tensors, spans_of

__all__ = [
    "caches_are_fresh_and_unshared",
    "forked_cache_continues_identically",
    "forward_leaves_module_state_unchanged",
    "interleaved_rollouts_are_independent",
]


def _module_spans(module: torch.nn.Module) -> list[StorageSpan]:
    return spans_of([(f"decoder.{name}", t) for name, t in module_tensors(module).items()])


def _overlap_message(a: StorageSpan, b: StorageSpan, moment: str, what: str) -> str:
    return (
        f"{a.path} and {b.path} share tensor storage {moment} ({what}); "
        "each rollout's cache must own its tensors"
    )


@promise(exercises=("examples", "decoder_calls"))
def caches_are_fresh_and_unshared(ctx: CheckContext) -> None:
    """Every ``initialize_autoregressive_cache`` call returns a new cache whose tensors no
    other cache, the module, or the caller's inputs share, at creation and after steps.

    Why: the classic leaks are structural: a cache object stored on the module and
    returned again, a mutable default (``history: list = []``) shared by every cache, a
    history tensor that is a view of a module buffer or of the latents the caller passed
    in (which the caller reuses for the next chunk). Each makes rollouts write into each
    other's state, and each is visible without decoding a single pixel right.

    What: makes two caches (and a third after stepping), checks they are distinct
    ``StreamingDecoderCache`` objects, then walks every tensor reachable from each (lists,
    dicts, nested objects) and compares underlying storages (address ranges, empty ones
    skipped) between the caches, against the module's parameters and buffers, and against
    every input tensor passed to forward; at creation and after every step of two
    interleaved rollouts.
    """
    decoder = ctx.decoder()
    module_spans = _module_spans(decoder)
    caches = {"cache_a": ctx.new_cache(decoder), "cache_b": ctx.new_cache(decoder)}
    if caches["cache_a"] is caches["cache_b"]:
        raise CheckFailed(
            "initialize_autoregressive_cache returned the same object twice; every rollout "
            "needs its own cache"
        )
    inputs: list[tuple[str, torch.Tensor]] = []  # kept alive so their memory is not reused

    def audit(moment: str) -> None:
        spans = {
            name: spans_of(reachable_tensors(cache, name, exclude=decoder))
            for name, cache in caches.items()
        }
        names = list(spans)
        for i, first in enumerate(names):
            for second in names[i + 1 :]:
                for a, b in overlapping_spans(spans[first], spans[second]):
                    raise CheckFailed(_overlap_message(a, b, moment, "two different rollouts"))
            for a, b in overlapping_spans(spans[first], module_spans):
                raise CheckFailed(_overlap_message(a, b, moment, "a cache and the module's parameters/buffers"))
            for a, b in overlapping_spans(spans[first], spans_of(inputs)):
                raise CheckFailed(
                    f"{a.path} shares storage with {b.path} {moment}: the cache keeps a view of "
                    "the caller's input, which the caller may overwrite for its next chunk; "
                    "copy what you keep"
                )
        ctx.evidence.examples += 1

    audit("at creation")
    plan = rollout_plan(ctx, ctx.profile.rollout_steps)
    latents = {
        name: ctx.latents(LatentSequence.of(stream, sum(plan)))
        for stream, name in enumerate(caches)
    }
    begins = [sum(plan[:k]) for k in range(len(plan))]
    for k, n in enumerate(plan):
        for name in ("cache_a", "cache_b"):
            chunk = latents[name][:, :, begins[k] : begins[k] + n]
            step = ctx.forward(decoder, chunk, k, caches[name])
            inputs.append((f"input of {name} at AR {k}", step.raw_input))
        audit(f"after step {k} (AR {k}) of both rollouts")
    ctx.evidence.rollouts += 2

    third = ctx.new_cache(decoder)
    if any(third is cache for cache in caches.values()):
        raise CheckFailed(
            "initialize_autoregressive_cache returned a cache that is already in use by another "
            "rollout"
        )
    caches["cache_c (made after stepping)"] = third
    audit("after creating a third cache while two rollouts are in progress")
    ctx.evidence.note("caches_compared", len(caches))


def _rollout_plans(ctx: CheckContext, count: int) -> list[tuple[int, ...]]:
    return [rollout_plan(ctx, ctx.profile.rollout_steps, first=1 + i % 3) for i in range(count)]


@promise(exercises=("compared_frames",))
def interleaved_rollouts_are_independent(ctx: CheckContext) -> None:
    """Rollouts stepped in turn get exactly what each gets alone, and a rollout run after
    others gets what it got first.

    Why: history kept on the module (``self.last_frames``) instead of in the cache, or a
    cache shared behind the scenes, passes every single-rollout test and corrupts every
    real deployment that serves more than one video at a time.

    What: decodes ``max_rollouts`` rollouts (different latents, different chunk plans) one
    after another, then again interleaved step by step with one cache each, then the first
    one once more; every step's output must match the rollout decoded alone (tolerance).
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)  # latents whose output is not clamped (numeric comparisons)
    count = max(2, ctx.profile.max_rollouts)
    plans = _rollout_plans(ctx, count)
    latents = [ctx.latents(LatentSequence.of(i, sum(plan))) for i, plan in enumerate(plans)]
    alone = [ctx.decode_plan(decoder, latents[i], plans[i]) for i in range(count)]

    caches = [ctx.new_cache(decoder) for _ in range(count)]
    begins = [[sum(plan[:k]) for k in range(len(plan))] for plan in plans]
    for k in range(max(len(plan) for plan in plans)):
        for i, plan in enumerate(plans):
            if k >= len(plan):
                continue
            chunk = latents[i][:, :, begins[i][k] : begins[i][k] + plan[k]]
            step = ctx.forward(decoder, chunk, k, caches[i])
            comparison = ctx.compare(alone[i].steps[k].output, step.output)
            if not comparison.ok:
                raise CheckFailed(
                    f"rollout {i} (chunk plan {plan_text(plan)}) decoded interleaved with "
                    f"{count - 1} other rollout(s) differs from the same rollout decoded alone at "
                    f"AR {k} ({plan[k]} latent frame(s)): {comparison.describe()}. State leaks "
                    "between rollouts (history on the module, or caches sharing state), or "
                    "decoding is not deterministic."
                )
    ctx.evidence.rollouts += count
    ctx.evidence.examples += count

    again = ctx.decode_plan(decoder, latents[0], plans[0])
    for k, (first, second) in enumerate(zip(alone[0].steps, again.steps)):
        comparison = ctx.compare(first.output, second.output)
        if not comparison.ok:
            raise CheckFailed(
                f"rollout 0 (chunk plan {plan_text(plans[0])}) decoded again with a fresh cache "
                f"after {count} other rollouts differs from its first decode at AR {k}: "
                f"{comparison.describe()}. Earlier rollouts left state behind (or decoding is not "
                "deterministic)."
            )
    ctx.evidence.examples += 1
    ctx.evidence.note("rollouts_interleaved", count)
    ctx.evidence.note("chunk_plans", [list(p) for p in plans])


def _snapshot_differences(
    decoder: torch.nn.Module, snapshot: dict[str, torch.Tensor]
) -> tuple[list[str], list[str]]:
    """(changed or removed names, names new since the snapshot) for params and buffers."""
    current = module_tensors(decoder)
    changed = [
        name
        for name, saved in snapshot.items()
        if name not in current or not bitwise_equal(saved, current[name])
    ]
    new = [name for name in current if name not in snapshot]
    return changed, new


@promise(exercises=("decoder_calls",))
def forward_leaves_module_state_unchanged(ctx: CheckContext) -> None:
    """Forward leaves every parameter and buffer of the module bitwise unchanged.

    Why: a decoder that writes rollout history into a registered buffer (or updates a
    running statistic, as BatchNorm does in train mode) makes every rollout depend on the
    ones before it, and breaks any other user of the same weights.

    What: snapshots all parameters and buffers, decodes two rollouts, and after every
    step compares bitwise. A buffer that first appears during forward (a lazily built
    constant) is allowed, but must not change after it appears.
    """
    decoder = ctx.decoder()
    snapshot = {name: t.detach().clone() for name, t in module_tensors(decoder).items()}
    ctx.evidence.note("module_tensors", len(snapshot))
    plan = rollout_plan(ctx, ctx.profile.rollout_steps)
    for rollout in range(2):
        latents = ctx.latents(LatentSequence.of(rollout, sum(plan)))
        cache = ctx.new_cache(decoder)
        begin = 0
        for k, n in enumerate(plan):
            ctx.forward(decoder, latents[:, :, begin : begin + n], k, cache)
            begin += n
            changed, new = _snapshot_differences(decoder, snapshot)
            if changed:
                raise CheckFailed(
                    f"forward changed the module's parameters/buffers {changed[:8]} in rollout "
                    f"{rollout} at AR {k} ({n} latent frame(s)); rollout state belongs in the "
                    "cache, and the module must be in eval mode"
                )
            for name in new:
                snapshot[name] = module_tensors(decoder)[name].detach().clone()
            ctx.evidence.examples += 1
        ctx.evidence.rollouts += 1


@promise(exercises=("compared_frames",))
def forked_cache_continues_identically(ctx: CheckContext) -> None:
    """A deep copy of a cache taken mid-rollout continues exactly like the original would.

    Why: pipelines fork rollouts (beam search, branching previews, retries from a
    checkpoint) with ``copy.deepcopy(cache)``. A cache whose copy still shares state with
    the original (a custom ``__deepcopy__`` that returns ``self``, history held outside the
    cache) makes the branches corrupt each other.

    What: decodes a prefix, forks with ``copy.deepcopy``, then continues the original and
    the fork interleaved step by step with *different* latents; each branch must match a
    plain rollout of the same latents (tolerance). If ``deepcopy`` raises, the check is
    skipped with the reason: forking is then unsupported, not broken.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)  # latents whose output is not clamped (numeric comparisons)
    plan = rollout_plan(ctx, max(3, ctx.profile.rollout_steps))
    split = max(1, len(plan) // 2)
    prefix_frames, suffix_frames = sum(plan[:split]), sum(plan[split:])
    prefix = LatentSequence.of(0, prefix_frames)
    branches = {"original": prefix.then(1, suffix_frames), "fork": prefix.then(2, suffix_frames)}
    references: dict[str, Decoded] = {
        name: ctx.decode_plan(decoder, ctx.latents(seq), plan) for name, seq in branches.items()
    }

    cache = ctx.new_cache(decoder)
    original_latents = ctx.latents(branches["original"])
    ctx.decode_plan(decoder, original_latents[:, :, :prefix_frames], plan[:split], cache=cache)
    try:
        fork = copy.deepcopy(cache)
    except Exception as err:  # noqa: BLE001 - any failure means forking is unsupported
        ctx.evidence.note("deepcopy_supported", False)
        raise CheckSkipped(
            f"copy.deepcopy(cache) raised {describe_exception(err)}; forking rollouts is "
            "unsupported by this decoder"
        ) from err
    ctx.evidence.note("deepcopy_supported", True)
    caches: dict[str, Any] = {"original": cache, "fork": fork}
    latents = {name: ctx.latents(seq) for name, seq in branches.items()}
    begin = prefix_frames
    for k in range(split, len(plan)):
        n = plan[k]
        for name in ("original", "fork"):
            step = ctx.forward(decoder, latents[name][:, :, begin : begin + n], k, caches[name])
            comparison = ctx.compare(references[name].steps[k].output, step.output)
            if not comparison.ok:
                raise CheckFailed(
                    f"after forking with copy.deepcopy at AR {split} (chunk plan {plan_text(plan)}), "
                    f"the {name} continued with its own latents differs at AR {k} from an unforked "
                    f"rollout of the same latents: {comparison.describe()}. The fork and the "
                    "original still share state."
                )
        begin += n
        ctx.evidence.examples += 1
    ctx.evidence.rollouts += 2
    ctx.evidence.note("fork_at_ar", split)

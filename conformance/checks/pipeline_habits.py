"""What real pipelines do around a decoder, and what it must not depend on.

A streaming pipeline pauses between a rollout's calls while its denoiser runs, runs for
days while clocks jump, reseeds the global random generators for every request, and
post-processes the frames it gets back in place the moment they arrive. A decoder's
output may depend on nothing of that: only on its latents and its cache.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from collections.abc import Iterator
from typing import Any

import torch

from conformance.checks.harness.bitwise import bitwise_equal
from conformance.checks.harness.calls import describe_exception
from conformance.checks.harness.common import describe_mismatch, plan_text, rollout_plan
from conformance.checks.harness.context import CheckContext, Decoded
from conformance.checks.harness.latents import LatentSequence
from conformance.checks.harness.reachability import StorageSpan, overlapping_spans, reachable_tensors, spans_of
from conformance.checks.registry import promise
from conformance.core.outcomes import CheckFailed

__all__ = ["caller_owns_returned_outputs", "outputs_ignore_time_and_global_state"]

#: How far the clocks jump forward before each call of the perturbed rollout.
CLOCK_JUMP_S = 3600.0

#: The ``time`` functions whose clock jumps (the kit keeps its own references to the
#: real ones, taken when it was imported, so its own timing is unaffected).
_CLOCKS = ("time", "monotonic", "perf_counter")


@contextlib.contextmanager
def _clocks_ahead(offset_s: float) -> Iterator[None]:
    """``time.time``, ``time.monotonic`` and ``time.perf_counter`` (and their ``_ns``
    forms) run ``offset_s`` ahead while the block runs."""
    saved = {name: getattr(time, name) for name in _CLOCKS}
    saved_ns = {f"{name}_ns": getattr(time, f"{name}_ns") for name in _CLOCKS}
    try:
        for name, real in saved.items():
            setattr(time, name, lambda real=real: real() + offset_s)
        for name, real in saved_ns.items():
            setattr(time, name, lambda real=real: real() + int(offset_s * 1e9))
        yield
    finally:
        for name, real in {**saved, **saved_ns}.items():
            setattr(time, name, real)


@contextlib.contextmanager
def _global_generators_kept() -> Iterator[None]:
    """Restore torch's (CPU and CUDA), NumPy's and ``random``'s global generators after the
    block, whatever it seeded."""
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    python_state = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    try:
        yield
    finally:
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        random.setstate(python_state)
        if numpy is not None and numpy_state is not None:
            numpy.random.set_state(numpy_state)


def _generators_touched(before: dict[str, Any]) -> list[str]:
    """Which global generators differ from the states in ``before`` (see :func:`_generator_states`)."""
    now = _generator_states()
    touched = []
    for name, state in before.items():
        current = now.get(name)
        if name == "numpy":
            same = current is not None and all(
                (a == b).all() if hasattr(a, "shape") else a == b for a, b in zip(state, current)
            )
        elif name in ("torch", "torch.cuda"):
            same = current is not None and len(state) == len(current) and all(
                bool(torch.equal(a, b)) for a, b in zip(state, current)
            )
        else:
            same = state == current
        if not same:
            touched.append(name)
    return touched


def _generator_states() -> dict[str, Any]:
    """The states of the global generators a pipeline seeds per request."""
    states: dict[str, Any] = {"torch": [torch.random.get_rng_state()], "random": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        states["numpy"] = numpy.random.get_state()
    return states


def _reseed(seed: int) -> None:
    """Seed every global generator a pipeline reseeds per request."""
    torch.manual_seed(seed)
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed % (2**32))


@promise(exercises=("compared_frames",))
def outputs_ignore_time_and_global_state(ctx: CheckContext) -> None:
    """A rollout decodes the same whatever the time, however long the pipeline pauses
    between its calls, and whatever the global random generators hold; and it leaves
    those generators as it found them.

    Why: a pipeline pauses between a rollout's calls while its denoiser runs (seconds per
    chunk), runs for days while clocks jump (NTP, suspend, daylight saving), and reseeds
    the global generators of torch, NumPy and ``random`` for every request. A decoder
    that drops its history after an idle second, keys state on ``time.time()``, or draws
    noise from (or derives anything from) a global generator decodes differently in
    production than in its tests -- and differently for every request.

    What: decodes a rollout (a multi-frame first chunk, then one- and two-frame chunks)
    as the reference, with the global generators seeded one way; then the same latents
    with a fresh cache while, before every call, the generators of torch (CPU and CUDA),
    NumPy and ``random`` are reseeded with another value and the clocks of ``time``
    (``time``, ``monotonic``, ``perf_counter`` and their ``_ns`` forms) jump forward by
    one more hour, with one real pause of the profile's ``pause_s`` (1 s in the default
    profile) between two calls. The outputs must equal the reference: bitwise on the CPU
    (a deterministic program repeats exactly there), within the dtype's tolerance on
    accelerators; and no call may leave a global generator in another state than it found
    it (drawing from one, or reseeding it, changes the pipeline's own samples). The
    global generators are restored afterwards. Not covered: clocks read by native code,
    and ``datetime``.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    plan = rollout_plan(ctx, max(4, ctx.profile.rollout_steps), first=2)
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    bitwise_owed = ctx.device.type == "cpu" or torch.are_deterministic_algorithms_enabled()
    with _global_generators_kept():
        _reseed(20240101)
        ctx.decode_plan(decoder, latents, plan)  # warm-up: first calls may pick algorithms
        _reseed(20240101)
        reference = ctx.decode_plan(decoder, latents, plan)
        perturbed = Decoded(plan=tuple(plan))
        cache = ctx.new_cache(decoder)
        pause_before = min(2, len(plan) - 1)
        begin = 0
        touched: tuple[int, list[str]] | None = None
        for k, n in enumerate(plan):
            _reseed(7919 * (k + 1))
            if k == pause_before:
                time.sleep(ctx.profile.pause_s)
            seeded = _generator_states()
            with _clocks_ahead(CLOCK_JUMP_S * (k + 1)):
                perturbed.steps.append(ctx.forward(decoder, latents[:, :, begin : begin + n], k, cache))
            changed = _generators_touched(seeded)
            if changed and touched is None:
                touched = (k, changed)
            begin += n
        ctx.evidence.rollouts += 1
    for k, (a, b) in enumerate(zip(reference.steps, perturbed.steps)):
        comparison = ctx.compare(a.output, b.output)
        differs = not comparison.ok or (bitwise_owed and not bitwise_equal(a.output, b.output))
        if differs:
            raise CheckFailed(
                f"the output at AR {k} (chunk plan {plan_text(plan)}) changed when the pipeline "
                f"did what pipelines do between calls: reseeded the global generators of torch, "
                f"NumPy and random before every call, moved the clocks of the time module "
                f"forward by an hour before each one (now {k + 1} h ahead), and paused "
                f"{ctx.profile.pause_s:g} s before the call at AR {pause_before}: "
                + (describe_mismatch(comparison, perturbed) if not comparison.ok else
                   "the outputs differ bitwise, where a deterministic decoder repeats exactly on the CPU")
                + ". A decoder's output may depend only on its latents and its cache: no idle "
                "timeouts, no wall-clock keys, no global random generators"
            )
        ctx.evidence.examples += 1
    if touched is not None:
        k, names = touched
        raise CheckFailed(
            f"forward at AR {k} (chunk plan {plan_text(plan)}) drew from or reseeded the global "
            f"random generator(s) of {', '.join(names)}: a pipeline that seeds them per request "
            "and then samples its noise gets different samples because the decoder ran (or the "
            "same ones for every request, if the decoder reseeds them). Use a torch.Generator "
            "of your own (kept in the cache or the decoder) for any randomness"
        )
    ctx.evidence.note("clock_jump_s", CLOCK_JUMP_S)
    ctx.evidence.note("pause_s", ctx.profile.pause_s)
    ctx.evidence.note("bitwise_required", bitwise_owed)


@promise(exercises=("compared_frames",))
def caller_owns_returned_outputs(ctx: CheckContext) -> None:
    """What forward returns belongs to the caller: nothing the decoder keeps shares its
    memory, so the caller may keep it, edit it in place or hand it on, and the rollout
    decodes the same.

    Why: pipelines post-process frames in place the moment they arrive (``mul_(255)``,
    clamping, color conversion, overlays) or hand them to an encoder thread. A decoder
    that returns a view of its history buffer, keeps a reference to its output to use as
    the next chunk's context, or recycles output buffers from a pool sees those edits
    leak into the frames it decodes next -- or edits the frames the caller still holds.

    What: decodes a rollout (a multi-frame first chunk, then one- and two-frame chunks) as
    the reference; then decodes it again with a fresh cache and, after every call,
    (1) checks that the returned tensor's memory overlaps nothing reachable from the cache,
    nothing of the decoder (parameters, buffers, attributes) and no earlier output, then
    (2) overwrites it in place, as a caller may (every value mapped by ``x * -3 + 17``,
    inside ``torch.inference_mode()`` where the spec says pipelines use it). Every later
    output must still equal the reference. An output the caller cannot edit in place (an
    inference tensor while the spec says pipelines run outside inference mode, a
    broadcast view whose elements share memory) fails: the caller does not own it.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    plan = rollout_plan(ctx, max(4, ctx.profile.rollout_steps), first=2)
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    reference = ctx.decode_plan(decoder, latents, plan)
    cache = ctx.new_cache(decoder)
    edited = Decoded(plan=tuple(plan))
    earlier: list[tuple[str, torch.Tensor]] = []
    mode = torch.inference_mode() if ctx.spec.inference_mode else contextlib.nullcontext()
    begin = 0
    for k, n in enumerate(plan):
        step = ctx.forward(decoder, latents[:, :, begin : begin + n], k, cache, hold=False)
        begin += n
        edited.steps.append(step)
        shared = _sharing(step.raw_output, cache, decoder, earlier)
        if shared is not None:
            raise CheckFailed(
                f"the output returned at AR {k} (chunk plan {plan_text(plan)}) shares memory with "
                f"{shared}: a caller that edits or keeps its frames changes what the decoder "
                "keeps (or the decoder overwrites frames the caller holds). Return a tensor of "
                "its own (clone what you keep, or keep a copy)"
            )
        earlier.append((f"the output returned at AR {k}", step.raw_output))
        try:
            with mode:
                step.raw_output.mul_(-3.0).add_(17.0)
        except RuntimeError as err:  # torch refuses the edit: the caller could not make it
            raise CheckFailed(_not_editable(step.raw_output, k, plan, ctx.spec.inference_mode, err)) from err
        ctx.evidence.examples += 1
    ctx.evidence.rollouts += 1
    for k in range(1, len(plan)):
        comparison = ctx.compare(reference.steps[k].output, edited.steps[k].output)
        if not comparison.ok:
            raise CheckFailed(
                f"editing returned outputs in place changed what the decoder decodes next: in a "
                f"rollout with chunk plan {plan_text(plan)} where the caller overwrote every "
                f"output right after its call (x * -3 + 17, as in-place post-processing does), the "
                f"output at AR {k} differs from the same rollout left alone: "
                f"{describe_mismatch(comparison, edited)}. The decoder reads back memory it "
                "returned (a reference to an output kept as context, a recycled buffer)"
            )


def _not_editable(output: torch.Tensor, k: int, plan: tuple[int, ...], inference_mode: bool, err: RuntimeError) -> str:
    """Why a caller cannot edit the output returned at AR ``k`` in place, in words."""
    if output.is_inference() and not inference_mode:
        why = (
            "it is an inference tensor (made under torch.inference_mode()), which cannot be "
            "updated in place outside that mode, and the spec says pipelines call this decoder "
            "outside it (DecoderSpec.inference_mode is False)"
        )
    else:
        why = f"torch refuses the in-place edit ({describe_exception(err)})"
    return (
        f"a caller cannot edit the output returned at AR {k} (chunk plan {plan_text(plan)}) in "
        f"place, as pipelines post-processing frames do: {why}. Return an ordinary tensor of "
        "its own (compute or clone it outside inference mode, materialize broadcast views), or "
        "declare DecoderSpec.inference_mode=True if pipelines call the decoder inside "
        "torch.inference_mode()"
    )


def _sharing(output: torch.Tensor, cache: Any, decoder: torch.nn.Module, earlier: list[tuple[str, torch.Tensor]]) -> str | None:
    """What ``output``'s memory overlaps, in words, or ``None``."""
    returned = spans_of([("output", output)])
    if not returned:
        return None
    places: list[tuple[str, list[StorageSpan]]] = [
        ("the cache", spans_of(reachable_tensors(cache, "cache", exclude=decoder))),
        ("the decoder", spans_of(reachable_tensors(decoder, "decoder"))),
        ("an earlier output", spans_of(earlier)),
    ]
    for place, spans in places:
        overlaps = overlapping_spans(returned, spans)
        if overlaps:
            _, other = overlaps[0]
            return f"{place} ({other.path})" if other.path else place
    return None

"""Checks of the call itself: how forward is called, what it returns, what it must not touch."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable

import torch

from conformance.checks.harness.bitwise import bitwise_equal
from conformance.checks.harness.common import plan_text, rollout_plan
from conformance.checks.registry import promise
from conformance.checks.size_mappers import read_ratio
from conformance.checks.harness.calls import describe_exception
from conformance.checks.harness.context import CheckContext, Step
from conformance.checks.harness.latents import LatentSequence
from conformance.checks.harness.validation import device_matches
from conformance.core.interface import signature_text
from conformance.core.outcomes import CheckFailed, CheckSkipped, DecoderError

__all__ = [
    "batch_elements_are_independent",
    "cache_init_accepts_context",
    "decoding_is_deterministic",
    "forward_accepts_keyword_call",
    "input_is_not_modified",
    "output_layout_dtype_device",
    "outputs_survive_later_steps",
]


@promise(exercises=("decoder_calls",))
def forward_accepts_keyword_call(ctx: CheckContext) -> None:
    """``decoder(input=x, autoregressive_index=i, cache=c)`` works with those keywords and
    returns a 5-dimensional tensor.

    Why: pipelines call decoders with keywords only. A forward whose first parameter is
    named ``x`` or ``latents``, or that calls the index ``ar_idx``, works in its author's
    tests and raises ``TypeError`` in every pipeline.

    What: makes the keyword call at AR 0 (two latent frames) and AR 1 (one frame) on one
    cache; each must return a ``torch.Tensor`` with five dimensions.
    """
    decoder = ctx.decoder()
    cache = ctx.new_cache(decoder)
    latents = ctx.latents(LatentSequence.of(0, ctx.chunk_limit(2) + 1))
    first = ctx.chunk_limit(2)
    for ar, (begin, end) in enumerate([(0, first), (first, first + 1)]):
        try:
            ctx.forward(decoder, latents[:, :, begin:end], ar, cache)
        except DecoderError as err:
            if isinstance(err.__cause__, TypeError):
                signature = _signature(decoder.forward)
                raise CheckFailed(
                    f"the keyword call decoder(input=..., autoregressive_index={ar}, cache=...) "
                    f"failed: {err}. forward's signature is {signature}; it must accept "
                    "input, autoregressive_index and cache as keywords"
                ) from err
            raise
        ctx.evidence.examples += 1
    ctx.evidence.rollouts += 1


def _signature(fn: object) -> str:
    try:
        return signature_text(inspect.signature(fn))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(not inspectable)"


@promise(exercises=("decoder_calls",))
def output_layout_dtype_device(ctx: CheckContext) -> None:
    """Every output has the declared layout (batch, channels, frames, height, width in the
    declared order), dtype and device.

    Why: a decoder that returns ``BTCHW`` while declaring ``BCTHW`` (or float32 from a
    bfloat16 decoder, or a CPU tensor from a CUDA one) is silently permuted, upcast or
    copied by whoever consumes it; with three output channels and three frames the
    permutation is not even visible in the shape.

    What: decodes a rollout with chunks of 2, 1 and 2 latent frames (so the frame count
    varies and a swapped axis shows in some step), and checks every output's size along
    each declared axis (B = batch_size, C = output_channels, T = the mapper's count, H and W = latent size
    times the spatial ratio), its dtype and its device.
    """
    decoder = ctx.decoder()
    spatial = read_ratio(ctx, decoder, "spatial_compression_ratio")
    spec = ctx.spec
    layout = spec.resolved_output_layout
    plan = rollout_plan(ctx, 3, first=2)
    decoded = ctx.decode_plan(decoder, ctx.latents(LatentSequence.of(0, sum(plan))), plan)
    h, w = spec.latent_size
    for step in decoded.steps:
        ar, n = step.autoregressive_index, step.latent_frames
        frames = ctx.query_mapper(decoder, "output", ar, n)
        expected = {
            "B": spec.batch_size,
            "C": spec.output_channels,
            "T": frames.value,
            "H": h * spatial,
            "W": w * spatial,
        }
        raw = step.raw_output
        where = f"output at AR {ar} ({n} latent frame(s), chunk plan {plan_text(plan)})"
        for position, axis in enumerate(layout):
            if expected[axis] is not None and raw.shape[position] != expected[axis]:
                raise CheckFailed(
                    f"{where} has shape {list(raw.shape)}; declared layout {layout} expects "
                    f"{axis} = {expected[axis]} at dimension {position}, got {raw.shape[position]} "
                    f"(expected shape {[expected[a] for a in layout]})"
                )
        if raw.dtype != spec.resolved_output_dtype:
            raise CheckFailed(
                f"{where} has dtype {raw.dtype}, declared {spec.resolved_output_dtype} "
                "(DecoderSpec.output_dtype, else dtype)"
            )
        if not device_matches(raw.device, spec.torch_device):
            raise CheckFailed(f"{where} is on {raw.device}, declared device {spec.torch_device}")
        ctx.evidence.examples += 1


@promise(exercises=("decoder_calls",))
def input_is_not_modified(ctx: CheckContext) -> None:
    """Forward leaves its input tensor bitwise unchanged.

    Why: pipelines keep the latents they pass in (for the next denoising step, for
    conditioning the next chunk, for logging). An in-place normalization (``x.mul_(scale)``)
    inside the decoder silently corrupts them.

    What: decodes a rollout (multi-frame first chunk, then one- and two-frame chunks),
    keeping a bitwise copy of every input, and compares each input with its copy after
    the call (and again after the rollout ends).
    """
    decoder = ctx.decoder()
    plan = rollout_plan(ctx, max(3, ctx.profile.rollout_steps), first=3)
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    cache = ctx.new_cache(decoder)
    kept: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    begin = 0
    for k, n in enumerate(plan):
        x = ctx.to_input_layout(latents[:, :, begin : begin + n])
        saved = x.clone()
        ctx.forward(decoder, latents[:, :, begin : begin + n], k, cache, raw_input=x)
        kept.append((k, x, saved))
        begin += n
        for ar, given, copy in kept:
            if not bitwise_equal(given, copy):
                when = "by that call" if ar == k else f"by the call at AR {k}"
                raise CheckFailed(
                    f"the input passed at AR {ar} (shape {list(copy.shape)}, layout "
                    f"{ctx.spec.layout}) was modified {when} (chunk plan {plan_text(plan)}); "
                    "forward must not write to its input"
                )
        ctx.evidence.examples += 1
    ctx.evidence.rollouts += 1


def _changed_frames(raw: torch.Tensor, saved: torch.Tensor, ctx: CheckContext) -> str:
    now = ctx.from_output_layout(raw)
    before = ctx.from_output_layout(saved)
    if now.shape != before.shape:
        return f"its shape changed from {list(saved.shape)} to {list(raw.shape)}"
    differs = (now != before) & ~(torch.isnan(now) & torch.isnan(before))
    frames = torch.nonzero(differs.any(dim=(0, 1, 3, 4))).flatten().tolist()
    return f"pixel frames {frames[:10]} of it changed"


@promise(exercises=("pixel_frames",))
def outputs_survive_later_steps(ctx: CheckContext) -> None:
    """An output stays exactly as returned for as long as the caller holds it: later calls
    (same rollout or not) and work still in flight after the call returned do not change it.

    Why: returning a persistent output buffer (a static CUDA-graph output, a preallocated
    tensor reused every call) is fast and wrong: the frames a pipeline has not yet
    encoded or displayed are overwritten by the next chunk. So is returning before the
    work that fills the output is done (a background thread or an unsynchronized side
    stream still writing into it): the pipeline reads frames that change under it.

    What: decodes a rollout keeping every returned tensor exactly as returned plus a
    private bitwise copy taken when the call returned; after each later call (and after a
    call in a second rollout) every earlier output must still equal its copy, bitwise.
    Then the outputs are held: when the executor keeps outputs for the whole run (the
    command line's runs), they join the early outputs of every other check, re-verified
    after the decoder's last check and no sooner than the profile's ``output_hold_s``
    (3 s in the default profile) after they were returned -- at no extra wall time in a
    full run; a change found then fails this check, naming the call that returned the
    output. Otherwise (a pytest item) the check holds them itself for ``output_hold_s``,
    synchronizing the device and re-verifying several times while it waits.
    """
    decoder = ctx.decoder()
    plan = rollout_plan(ctx, max(3, ctx.profile.rollout_steps))
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    cache = ctx.new_cache(decoder)
    kept: list[tuple[Step, torch.Tensor, float]] = []

    def verify(after: str) -> None:
        for step, saved, returned_at in kept:
            if not bitwise_equal(step.raw_output, saved):
                age = time.monotonic() - returned_at
                raise CheckFailed(
                    f"the output returned at AR {step.autoregressive_index} (chunk plan "
                    f"{plan_text(plan)}) changed {after}, {age:.2f} s after it was returned: "
                    f"{_changed_frames(step.raw_output, saved, ctx)}. The decoder reuses an "
                    "output buffer or is still writing into it after returning; return a new, "
                    "finished tensor each call"
                )
        ctx.evidence.examples += 1

    begin = 0
    for k, n in enumerate(plan):
        step = ctx.forward(decoder, latents[:, :, begin : begin + n], k, cache, hold=False)
        kept.append((step, step.raw_output.detach().clone(), time.monotonic()))
        begin += n
        verify(f"when forward was called at AR {k}" if k else "right after the call returned")
    ctx.evidence.rollouts += 1
    other = ctx.latents(LatentSequence.of(1, 1))
    ctx.forward(decoder, other, 0, ctx.new_cache(decoder), hold=False)
    verify("when a second rollout made its first call")
    ctx.evidence.rollouts += 1
    hold = ctx.control.hold
    if hold is None:
        _hold_and_reverify(ctx, verify, first_returned=kept[0][2])
        return
    for step, saved, returned_at in kept:
        what = f"forward at AR {step.autoregressive_index} of chunk plan {plan_text(plan)}"
        hold.keep(ctx.check_id, what, step.raw_output, saved, returned_at=returned_at,
                  min_age_s=ctx.profile.output_hold_s)
    ctx.evidence.note("outputs_held_s", ctx.profile.output_hold_s)
    ctx.evidence.note("outputs_held_until", "the end of the run")


def _hold_and_reverify(ctx: CheckContext, verify: Callable[[str], None], first_returned: float) -> None:
    """Hold the outputs until ``profile.output_hold_s`` after the first was returned,
    re-verifying them at growing intervals (so a late write fails early) and at the end."""
    hold = ctx.profile.output_hold_s
    deadline = first_returned + hold
    pause = 0.1
    while True:
        _synchronize(ctx)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(pause, left))
        pause *= 2
        if ctx.cancelled:
            return
        verify(f"while the caller still held it (checked up to {hold:g} s after the first return)")
    _synchronize(ctx)
    verify(f"while the caller still held it ({hold:g} s after the first output was returned)")
    ctx.evidence.note("outputs_held_s", hold)


def _synchronize(ctx: CheckContext) -> None:
    """Wait for queued device work, so that what an unsynchronized stream writes shows."""
    device = ctx.spec.torch_device
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.synchronize(device)


@promise(exercises=("compared_frames",))
def decoding_is_deterministic(ctx: CheckContext) -> None:
    """The same latents and chunk plan give the same outputs every time: bitwise on the
    CPU (and wherever deterministic algorithms are enforced), within the dtype's
    tolerance on accelerators.

    Why: reproducibility is what makes a decoder testable and cacheable. Dropout left on
    (train mode), unseeded noise injection, or reads of uninitialized memory make two
    identical requests differ, often by far less than the rounding tolerance (0.1% noise
    hides under bfloat16's), so a tolerance cannot be the test where exact repetition is
    owed.

    What: after one warm-up decode (first calls may compile, autotune or allocate, and
    legitimately run other kernels), decodes one rollout ``DETERMINISM_REPEATS`` more
    times with fresh caches on the same decoder, and one single-call decode likewise. A
    deterministic program repeated in one process on the same shapes, strides and
    thread count executes the same operations in the same order, so on the CPU every
    repeat must equal the first, bitwise. On an accelerator, kernels may legitimately
    reduce in a run-dependent order (atomics, split-K), so repeats are compared under the
    dtype's tolerance, unless ``torch.use_deterministic_algorithms(True)`` is on; the
    evidence records whether they were bitwise equal. The warm-up decode must agree with
    the repeats within the tolerance everywhere.
    """
    decoder = ctx.decoder()
    ctx.seek_signal(decoder)
    plan = rollout_plan(ctx, ctx.profile.rollout_steps)
    latents = ctx.latents(LatentSequence.of(0, sum(plan)))
    bitwise_owed = ctx.device.type == "cpu" or torch.are_deterministic_algorithms_enabled()
    why_bitwise = (
        "on the CPU" if ctx.device.type == "cpu" else "with deterministic algorithms enforced"
    )
    all_bitwise = True
    for current_plan in (plan, (ctx.chunk_limit(3),)):
        these = latents[:, :, : sum(current_plan)]
        runs = [ctx.decode_plan(decoder, these, current_plan) for _ in range(1 + DETERMINISM_REPEATS)]
        warm_up, first = runs[0], runs[1]
        described = f"the same latents with the same chunk plan {plan_text(current_plan)}"
        for k, (a, b) in enumerate(zip(first.steps, warm_up.steps)):
            comparison = ctx.compare(a.output, b.output)
            if not comparison.ok:
                raise CheckFailed(
                    f"decoding is not deterministic: decoding {described} twice (fresh cache "
                    f"each time) gave different outputs at AR {k} in the warm-up decode and the "
                    f"next one: {comparison.describe()}. Look for dropout or noise left on, or "
                    "unseeded randomness"
                )
        for repeat, run in enumerate(runs[2:], start=2):
            for k, (a, b) in enumerate(zip(first.steps, run.steps)):
                comparison = ctx.compare(a.output, b.output)
                same = bitwise_equal(a.output, b.output)
                all_bitwise = all_bitwise and same
                if bitwise_owed and not same:
                    raise CheckFailed(
                        f"decoding {described} (fresh cache each time) is not repeatable: at AR "
                        f"{k}, decode {repeat + 1} differs from decode 2 (decode 1 was a "
                        f"warm-up) in {_differing(a.output, b.output)}. A deterministic decoder "
                        f"repeats bitwise {why_bitwise} (same process, shapes and thread "
                        "count): look for dropout or noise left on, unseeded randomness, or "
                        "reads of uninitialized memory"
                    )
                if not comparison.ok:
                    raise CheckFailed(
                        f"decoding is not deterministic: decoding {described} (fresh cache each "
                        f"time) gave different outputs at AR {k} in decodes 2 and {repeat + 1}: "
                        f"{comparison.describe()}"
                    )
        ctx.evidence.examples += 1
    ctx.evidence.note("repeats_bitwise_equal", all_bitwise)
    ctx.evidence.note("bitwise_required", bitwise_owed)


#: Decodes compared with the first after the warm-up in ``decoding_is_deterministic``.
DETERMINISM_REPEATS = 2


def _differing(a: torch.Tensor, b: torch.Tensor) -> str:
    """Where two canonical outputs of equal shape differ, in words."""
    if a.shape != b.shape:
        return f"shape: {list(a.shape)} against {list(b.shape)} (B, C, T, H, W)"
    differs = a != b
    frames = torch.nonzero(differs.any(dim=(0, 1, 3, 4))).flatten().tolist()
    largest = float((a.double() - b.double()).abs().max().item())
    scale = float(a.double().abs().max().item())
    return (
        f"{int(differs.sum().item())} of {a.numel()} elements (pixel frames "
        f"{frames[:10]}), by at most {largest:.3g} (the output's largest magnitude is "
        f"{scale:.3g})"
    )


@promise(exercises=("compared_frames",))
def batch_elements_are_independent(ctx: CheckContext) -> None:
    """With several batch elements, each element's output depends only on its own latents.

    Why: normalization over the batch (BatchNorm in train mode, a norm over the wrong
    axes) or a reshape that mixes the batch with time makes one user's video depend on
    whoever shares the batch.

    What: with ``batch_size > 1``, decodes a rollout, then again with every element but
    the first replaced by other latents, then with only the first replaced; the untouched
    elements' outputs must not change (tolerance). Skipped when ``batch_size == 1``.
    """
    decoder = ctx.decoder()  # a decoder that cannot be built fails, even with batch 1
    batch = ctx.spec.batch_size
    if batch == 1:
        raise CheckSkipped(
            "DecoderSpec.batch_size is 1; set batch_size > 1 to check batch independence"
        )
    ctx.seek_signal(decoder)
    plan = rollout_plan(ctx, 3)
    frames = sum(plan)
    base = ctx.latents(LatentSequence.of(0, frames))
    other = ctx.latents(LatentSequence.of(1, frames))
    reference = ctx.decode_plan(decoder, base, plan)
    for step in reference.steps:
        if step.output.shape[0] != batch:
            raise CheckFailed(
                f"the output at AR {step.autoregressive_index} has {step.output.shape[0]} batch "
                f"element(s) (shape {list(step.raw_output.shape)}, layout "
                f"{ctx.spec.resolved_output_layout}) for an input batch of {batch}"
            )
    cases = [
        ("elements 1..{} replaced".format(batch - 1), [0]),
        ("element 0 replaced", list(range(1, batch))),
    ]
    for description, kept in cases:
        mixed = other.clone()
        mixed[kept] = base[kept]
        decoded = ctx.decode_plan(decoder, mixed, plan)
        for k, (a, b) in enumerate(zip(reference.steps, decoded.steps)):
            comparison = ctx.compare(a.output[kept], b.output[kept])
            if not comparison.ok:
                raise CheckFailed(
                    f"batch elements {kept} changed at AR {k} when the latents of the other "
                    f"batch elements changed ({description}; batch {batch}, chunk plan "
                    f"{plan_text(plan)}): {comparison.describe()}"
                )
        ctx.evidence.examples += 1


@promise(exercises=("decoder_calls",))
def cache_init_accepts_context(ctx: CheckContext) -> None:
    """``initialize_autoregressive_cache`` accepts ``**context`` keywords, as the base
    signature does, including ones it does not use.

    Why: pipelines pass whatever they know at rollout start (batch size, resolution,
    prompt ids) to every decoder; a decoder that narrows the signature to the keys it
    needs raises ``TypeError`` in a pipeline that knows one more thing.

    What: checks the method's signature has a ``**`` parameter, calls it with the spec's
    ``cache_context``, then with that plus an unknown key, and decodes one step with the
    resulting cache.
    """
    decoder = ctx.decoder()
    method = decoder.initialize_autoregressive_cache
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        parameters = None
    if parameters is not None and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        raise CheckFailed(
            f"initialize_autoregressive_cache{_signature(method)} has no **context parameter; "
            "the base signature is initialize_autoregressive_cache(self, **context)"
        )
    ctx.new_cache(decoder)
    ctx.evidence.examples += 1
    try:
        cache = ctx.new_cache(decoder, conformance_unused_context_key=True)
    except DecoderError as err:
        raise CheckFailed(
            "initialize_autoregressive_cache(**cache_context, conformance_unused_context_key=True) "
            f"failed: {describe_exception(err.__cause__ or err)}; it must accept (and may ignore) "
            "context keys it does not use"
        ) from err
    ctx.forward(decoder, ctx.latents(LatentSequence.of(0, 1)), 0, cache)
    ctx.evidence.examples += 1
    ctx.evidence.rollouts += 1

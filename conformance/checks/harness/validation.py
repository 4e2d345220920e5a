"""Per-call validation: what every decoder call of every check must return, checked on each.

Kept apart from the checks (as Gymnasium keeps its passive environment checker apart
from its invasive checks): the promises about a single call's result -- a cache that is
a cache, an output that is a dense, finite, 5-dimensional tensor with data -- are
applied to every call the kit makes, so each check reads top to bottom about its own
promise, and no output of any check escapes them.
"""

from __future__ import annotations

from typing import Any

import torch

from conformance.checks.harness.calls import callable_name, describe_exception
from conformance.core.interface import (
    cache_problems,
    decoder_problems,
    describe_cache_problems,
    describe_decoder_problems,
)
from conformance.core.outcomes import CheckFailed, DecoderError, SpecFault
from conformance.core.spec import DecoderSpec

__all__ = [
    "adapt_output",
    "device_matches",
    "require_cache",
    "require_declared_output",
    "require_decoder",
    "require_finite",
    "require_video_tensor",
]


def require_decoder(built: Any, what: str) -> None:
    """``DecoderError`` unless ``built`` honours the interface (structurally: decoders built
    on another copy of the base classes count when they honour the contract)."""
    problems = decoder_problems(built)
    if problems:
        raise DecoderError(f"{what} returned {describe_decoder_problems(built, problems)}")


def require_cache(cache: Any) -> None:
    """``DecoderError`` unless ``cache`` is a cache as the interface defines one."""
    problems = cache_problems(cache)
    if problems:
        raise DecoderError(
            f"initialize_autoregressive_cache returned {describe_cache_problems(cache, problems)}"
        )


def adapt_output(spec: DecoderSpec, returned: Any, what: str) -> torch.Tensor:
    """``spec.output_adapter(returned)``: the decoder's output as a tensor.

    The adapter is the spec's code, so its failures are :class:`SpecFault` (the check
    cannot judge the decoder), never the decoder's.
    """
    adapter = spec.output_adapter
    if adapter is None:
        raise AssertionError("kit bug: adapt_output without an output_adapter")
    try:
        adapted = adapter(returned)
    except Exception as err:  # noqa: BLE001 - any failure of spec code is a spec fault
        raise SpecFault(
            f"DecoderSpec.output_adapter {callable_name(adapter)} raised {describe_exception(err)} "
            f"on what {what} returned ({type(returned).__name__}); fix the adapter in the spec"
        ) from err
    if not isinstance(adapted, torch.Tensor):
        raise SpecFault(
            f"DecoderSpec.output_adapter {callable_name(adapter)} returned {type(adapted).__name__} "
            f"for what {what} returned ({type(returned).__name__}); it must return the "
            f"output tensor [{', '.join(spec.resolved_output_layout)}]"
        )
    return adapted


def require_video_tensor(spec: DecoderSpec, raw: Any, what: str) -> torch.Tensor:
    """``raw`` if it is a dense 5-dimensional tensor with data; ``DecoderError`` saying what
    it is instead."""
    if not isinstance(raw, torch.Tensor):
        raise DecoderError(
            f"{what} returned {type(raw).__name__}, expected a torch.Tensor "
            f"[{', '.join(spec.resolved_output_layout)}]"
            + (
                "" if raw is None or isinstance(raw, (tuple, list)) else
                "; if it returns a video object by design, declare DecoderSpec.output_adapter "
                "to map it to that tensor"
            )
        )
    if raw.dim() != 5:
        raise DecoderError(
            f"{what} returned a {raw.dim()}-dimensional tensor of shape {list(raw.shape)}, "
            f"expected 5 dimensions ({spec.resolved_output_layout})"
        )
    if raw.device.type == "meta":
        raise DecoderError(
            f"{what} returned a tensor on the meta device, which holds no data; expected "
            f"device {spec.torch_device}"
        )
    if raw.layout != torch.strided:
        raise DecoderError(
            f"{what} returned a tensor with layout {raw.layout} (sparse or otherwise not "
            "dense); expected a dense (strided) video tensor"
        )
    return raw


def device_matches(actual: torch.device, declared: torch.device) -> bool:
    """The declared device's type, and its index when it names one."""
    return actual.type == declared.type and (declared.index is None or actual.index == declared.index)


_AXIS_NAMES = {"B": "batch", "C": "channels", "T": "frames", "H": "height", "W": "width"}


def require_declared_output(
    spec: DecoderSpec,
    raw: torch.Tensor,
    what: str,
    *,
    batch: int,
    spatial_ratio: int | None,
    dtype: torch.dtype | None = None,
) -> None:
    """``CheckFailed`` unless ``raw`` (exactly as returned) has the declared dtype, device,
    batch, channels and, when the spatial ratio is known, height and width along the
    declared output layout. Applied to every call, so a decoder whose output goes wrong
    only on some calls (after many steps, in a second rollout, for one chunk size) is
    caught by whichever check makes that call. The frame count is the size checks' job."""
    declared_dtype = dtype or spec.resolved_output_dtype
    if raw.dtype != declared_dtype:
        raise CheckFailed(
            f"{what} returned dtype {raw.dtype}, declared {declared_dtype} (DecoderSpec.output_dtype, "
            "else dtype): every call must return the declared dtype"
        )
    if not device_matches(raw.device, spec.torch_device):
        raise CheckFailed(f"{what} returned a tensor on {raw.device}, declared device {spec.torch_device}")
    h, w = spec.latent_size
    expected = {"B": batch, "C": spec.output_channels}
    if spatial_ratio is not None:
        expected.update(H=h * spatial_ratio, W=w * spatial_ratio)
    layout = spec.resolved_output_layout
    if raw.dim() != len(layout):
        raise CheckFailed(
            f"{what} returned a {raw.dim()}-d tensor of shape {list(raw.shape)}; the declared output "
            f"layout {layout} has {len(layout)} dimensions"
        )
    for position, axis in enumerate(layout):
        if axis in expected and raw.shape[position] != expected[axis]:
            shown = [expected.get(a, "T" if a == "T" else "?") for a in layout]
            raise CheckFailed(
                f"{what} returned shape {list(raw.shape)}; the declared output layout {layout} "
                f"expects {_AXIS_NAMES[axis]} {axis} = {expected[axis]} at dimension {position} "
                f"(expected {shown})"
            )


def require_finite(output: torch.Tensor, what: str, *, latent_scale: float = 1.0) -> None:
    """``CheckFailed`` naming the call, the pixel frames and the count when ``output``
    (canonical ``BCTHW``) holds a NaN or an infinity: a decoded pixel must be a number,
    and no comparison can vouch for one that is not."""
    if not output.is_floating_point() and not output.is_complex():
        return
    finite = torch.isfinite(output)
    if bool(finite.all()):
        return
    bad = ~finite
    frames = torch.nonzero(bad.any(dim=(0, 1, 3, 4))).flatten().tolist() if output.dim() == 5 else [0]
    nan = int(torch.isnan(output).sum().item())
    pos = int(torch.isposinf(output).sum().item()) if not output.is_complex() else 0
    neg = int(torch.isneginf(output).sum().item()) if not output.is_complex() else 0
    shown = ", ".join(str(f) for f in frames[:10]) + (", ..." if len(frames) > 10 else "")
    raise CheckFailed(
        f"{what} returned {int(bad.sum().item())} non-finite value(s) out of "
        f"{output.numel()} ({nan} NaN, {pos} +Inf, {neg} -Inf), in {len(frames)} of its "
        f"{output.shape[2] if output.dim() == 5 else 1} pixel frame(s), first in pixel frame "
        f"{frames[0]} of that output (frames {shown}); decoded pixels must be finite, and a "
        "NaN or infinity is never agreement with anything"
        + (f" (latents scaled by {latent_scale:g})" if latent_scale != 1.0 else "")
    )

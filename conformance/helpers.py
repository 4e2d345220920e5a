"""Helpers for writing specs of real decoders.

Real decoders are built the way frameworks build them: the network is created on the
meta device (no memory, no data) and filled from a checkpoint. The kit certifies
streaming behaviour, not trained quality, so a spec usually wants the decoder without
its multi-gigabyte checkpoint: :func:`materialize_random` gives every parameter and
buffer real storage with seeded random values at scales that keep activations of order
one, so outputs carry signal (a decoder of zeros passes comparisons vacuously).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["materialize_random"]

#: Norm layers: weight 1, bias 0 (their identity initialisation).
_NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    _NORMS = _NORMS + (nn.RMSNorm,)


def _tensors(module: nn.Module) -> Iterator[tuple[nn.Module, str, torch.Tensor, bool]]:
    """``(owner, name, tensor, is_parameter)`` for every direct parameter and buffer."""
    for owner in module.modules():
        for name, param in list(owner._parameters.items()):
            if param is not None:
                yield owner, name, param, True
        for name, buffer in list(owner._buffers.items()):
            if buffer is not None:
                yield owner, name, buffer, False


def _fan_in(owner: nn.Module, name: str, tensor: torch.Tensor) -> int:
    """Inputs feeding one output of the layer that owns ``tensor``."""
    weight = getattr(owner, "weight", None)
    if name == "bias" and isinstance(weight, torch.Tensor) and weight.dim() >= 2:
        tensor = weight
    if tensor.dim() < 2:
        return 1
    transposed = isinstance(owner, nn.modules.conv._ConvTransposeNd)
    channels = tensor.shape[0] if transposed else tensor.shape[1]
    return max(1, int(channels) * math.prod(int(d) for d in tensor.shape[2:]))


@torch.no_grad()
def materialize_random(
    module: nn.Module,
    *,
    seed: int,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    only_meta: bool = False,
) -> nn.Module:
    """Give ``module`` seeded random weights, in place; returns ``module``.

    Every parameter and buffer (or, with ``only_meta=True``, only those still on the
    meta device, i.e. never loaded) gets real storage on ``device`` (default: where it
    is, CPU for meta tensors) in ``dtype`` (default: its own floating dtype) and a value
    chosen so that activations stay of order one:

    - weights of linear and convolution layers (any tensor of two or more dimensions):
      uniform in ``[-b, b]`` with ``b = sqrt(3 / fan_in)``, unit variance per output
      when inputs have unit variance (fan-in is channels times kernel size; input
      channels of a transposed convolution);
    - their biases: uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, small next to
      the weighted sum;
    - norm layers (batch/group/layer/RMS norm): weight 1, bias 0; running mean 0 and
      running variance 1;
    - other one-dimensional floating tensors: uniform in ``[-1, 1]`` scaled by
      ``1/sqrt(numel)``; integer buffers (counters, indices): zero.

    The values depend only on ``seed`` and each tensor's qualified name and shape, not
    on the order modules were created or the device, so the same seed rebuilds the same
    decoder everywhere (values are drawn on the CPU in float32, then moved and cast).

    Buffers that a module computes in ``__init__`` from constants (rotary tables, fixed
    filters) cannot be recomputed here: give ``only_meta=True`` after building those on
    a real device, or recompute them after this call.
    """
    names = {id(owner): prefix for prefix, owner in module.named_modules(remove_duplicate=False)}
    seen: set[int] = set()
    for owner, name, tensor, is_parameter in _tensors(module):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        if only_meta and not tensor.is_meta:
            continue
        target_device = torch.device(device) if device is not None else (
            torch.device("cpu") if tensor.is_meta else tensor.device
        )
        target_dtype = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        qualified = f"{names.get(id(owner), '')}.{name}".lstrip(".")
        value = _draw(owner, name, tensor, qualified, seed, is_parameter)
        value = value.to(device=target_device, dtype=target_dtype)
        if is_parameter:
            old = owner._parameters[name]
            assert old is not None
            owner._parameters[name] = nn.Parameter(value, requires_grad=old.requires_grad)
        else:
            owner._buffers[name] = value
    return module


def _generator(seed: int, qualified: str, shape: torch.Size) -> torch.Generator:
    # A stable per-tensor seed: the run seed mixed with a hash of name and shape that
    # does not depend on Python's per-process string hashing.
    text = f"{qualified}:{tuple(shape)}"
    mixed = seed & 0xFFFFFFFFFFFF
    for char in text:
        mixed = (mixed * 1_000_003 + ord(char)) & 0xFFFFFFFFFFFF
    return torch.Generator().manual_seed(mixed)


def _draw(
    owner: nn.Module, name: str, tensor: torch.Tensor, qualified: str, seed: int, is_parameter: bool
) -> torch.Tensor:
    shape = tensor.shape
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return torch.zeros(shape, dtype=tensor.dtype)
    if isinstance(owner, _NORMS):
        if name in ("weight", "running_var"):
            return torch.ones(shape)
        return torch.zeros(shape)
    generator = _generator(seed, qualified, shape)
    uniform = torch.rand(shape, generator=generator) * 2 - 1
    if tensor.dim() >= 2:
        return uniform * math.sqrt(3.0 / _fan_in(owner, name, tensor))
    if name == "bias":
        return uniform / math.sqrt(_fan_in(owner, name, tensor))
    return uniform / math.sqrt(max(1, tensor.numel()))

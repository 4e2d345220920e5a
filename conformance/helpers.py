"""Helpers for writing specs of real decoders.

Real decoders are built the way frameworks build them: the network is created on the
meta device (no memory, no data) and filled from a checkpoint. The kit certifies
streaming behaviour, not trained quality, so a spec usually wants the decoder without
its multi-gigabyte checkpoint:

- :func:`materialize_random` gives every parameter and buffer real storage with seeded
  random values at scales that keep activations of order one, so outputs carry signal
  (a decoder of zeros passes comparisons vacuously);
- :func:`placeholder_checkpoint` provides an empty checkpoint file, for the length of a
  ``with`` block, to configs that insist on loading one (a path that must exist, a format
  read from the file name), so the network stays on the meta device for
  :func:`materialize_random` to fill.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

__all__ = ["is_norm_like", "materialize_random", "norm_role", "placeholder_checkpoint"]

#: torch's normalization layers, recognised by class (any name).
_TORCH_NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
)
if hasattr(nn, "RMSNorm"):
    _TORCH_NORMS = _TORCH_NORMS + (nn.RMSNorm,)

#: Names of a norm's scale (multiplicative: identity value 1) and shift (additive:
#: identity value 0) tensors, as torch, diffusers, the Wan and TAEHV code bases and
#: common re-implementations spell them; running statistics count as well.
SCALE_NAMES = frozenset({"weight", "gamma", "scale", "g", "running_var"})
SHIFT_NAMES = frozenset({"bias", "beta", "shift", "b", "running_mean"})

_NORM_WORD = re.compile("norm", re.IGNORECASE)

#: Layers that are never norms, whatever they are called (``self.norm_proj = nn.Linear(...)``).
_NEVER_NORMS: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd, nn.Embedding)


def is_norm_like(module: nn.Module, attribute: str = "") -> bool:
    """Whether ``module`` is a normalization layer for :func:`materialize_random`.

    The rule: one of torch's normalization classes (batch, instance, group, layer,
    local response, RMS norm), or any module whose class name or attribute name (the
    last part of its qualified name, ``attribute``) contains ``norm`` in any case
    (``RMS_norm`` of the Wan VAE, ``WanRMS_norm`` of diffusers, ``LlamaRMSNorm``,
    ``FP32LayerNorm``, a module stored as ``self.norm1``), unless it is a linear,
    convolution or embedding layer (``self.norm_proj = nn.Linear(...)`` is no norm).
    Only the norm's own per-channel tensors are affected (see :func:`norm_role`),
    never its submodules.
    """
    if isinstance(module, _TORCH_NORMS):
        return True
    if isinstance(module, _NEVER_NORMS):
        return False
    return bool(_NORM_WORD.search(type(module).__name__) or _NORM_WORD.search(attribute))


def _per_channel(tensor: torch.Tensor) -> bool:
    """At most one dimension longer than 1: a vector, however it is shaped for
    broadcasting (``[C]``, ``[C, 1, 1, 1]``, ``[1, C, 1, 1]``)."""
    return sum(1 for size in tensor.shape if size != 1) <= 1


def norm_role(module: nn.Module, attribute: str, name: str, tensor: torch.Tensor) -> str | None:
    """``"scale"`` (identity value 1), ``"shift"`` (identity value 0) or ``None`` for
    ``module``'s direct floating tensor ``name``, ``module`` being stored under
    ``attribute`` (the last part of its qualified name).

    - torch's normalization classes: ``weight`` and ``running_var`` are scales, every
      other floating tensor (``bias``, ``running_mean``) a shift, whatever their shape;
    - other norm-like modules (:func:`is_norm_like`: ``norm`` in the class or attribute
      name): a per-channel tensor (at most one dimension longer than 1, so ``[C]`` and
      a broadcast-shaped ``[C, 1, 1, 1]`` alike) named ``weight``, ``gamma``,
      ``scale`` or ``g`` (or ``running_var``) is a scale, one named ``bias``,
      ``beta``, ``shift`` or ``b`` (or ``running_mean``) a shift;
    - anything else, including a matrix held by a module named ``*norm*`` or a tensor
      with another name, has no role and is drawn like any other tensor.
    """
    if not tensor.is_floating_point():
        return None
    if isinstance(module, _TORCH_NORMS):
        return "scale" if name in ("weight", "running_var") else "shift"
    if not (_per_channel(tensor) and is_norm_like(module, attribute)):
        return None
    if name in SCALE_NAMES:
        return "scale"
    if name in SHIFT_NAMES:
        return "shift"
    return None


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

    - normalization layers get their identity: scales 1, shifts 0 (running mean 0,
      running variance 1). A layer counts as a norm by the rule of
      :func:`is_norm_like` (torch's norm classes, or ``norm`` in its class or attribute
      name, any case: the Wan VAE's ``RMS_norm``, diffusers' ``WanRMS_norm``), and a
      tensor of it by :func:`norm_role` (for a name-matched norm: per-channel, named
      ``weight``/``gamma``/``scale``/``g`` for a scale or ``bias``/``beta``/``shift``/
      ``b`` for a shift);
    - weights of linear and convolution layers (any other tensor of two or more
      dimensions): uniform in ``[-b, b]`` with ``b = sqrt(3 / fan_in)``, unit variance
      per output when inputs have unit variance (fan-in is channels times kernel size;
      input channels of a transposed convolution);
    - their biases: uniform in ``[-1/sqrt(fan_in), 1/sqrt(fan_in)]``, small next to
      the weighted sum;
    - other one-dimensional floating tensors: uniform in ``[-1, 1]`` scaled by
      ``1/sqrt(numel)``; integer buffers (counters, indices): zero.

    With ``only_meta=True`` the tensors that already hold data (loaded weights, buffers
    a module computed in ``__init__`` such as latent statistics, rotary tables, fixed
    filters) keep their values and still move with the decoder, as ``Module.to`` would
    move them: to ``device`` when given, floating ones cast to ``dtype`` when given. A
    decoder materialized for CUDA therefore has no tensor left behind on the CPU.

    The values depend only on ``seed`` and each tensor's qualified name and shape, not
    on the order modules were created or the device, so the same seed rebuilds the same
    decoder everywhere (values are drawn on the CPU in float32, then moved and cast).

    Buffers that a module computes in ``__init__`` from constants cannot be recomputed
    here: give ``only_meta=True`` after building those on a real device, or recompute
    them after this call.
    """
    names = {id(owner): prefix for prefix, owner in module.named_modules(remove_duplicate=False)}
    seen: set[int] = set()
    for owner, name, tensor, is_parameter in _tensors(module):
        if id(tensor) in seen:
            continue
        seen.add(id(tensor))
        target_device = torch.device(device) if device is not None else (
            torch.device("cpu") if tensor.is_meta else tensor.device
        )
        target_dtype = dtype if (dtype is not None and tensor.is_floating_point()) else tensor.dtype
        if only_meta and not tensor.is_meta:
            if tensor.device == target_device and tensor.dtype == target_dtype:
                continue
            value = tensor.detach().to(device=target_device, dtype=target_dtype)
        else:
            qualified = f"{names.get(id(owner), '')}.{name}".lstrip(".")
            attribute = names.get(id(owner), "").rpartition(".")[2]
            value = _draw(owner, attribute, name, tensor, qualified, seed)
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
    owner: nn.Module, attribute: str, name: str, tensor: torch.Tensor, qualified: str, seed: int
) -> torch.Tensor:
    shape = tensor.shape
    if not (tensor.is_floating_point() or tensor.is_complex()):
        return torch.zeros(shape, dtype=tensor.dtype)
    role = norm_role(owner, attribute, name, tensor)
    if role == "scale":
        return torch.ones(shape)
    if role == "shift":
        return torch.zeros(shape)
    generator = _generator(seed, qualified, shape)
    uniform = torch.rand(shape, generator=generator) * 2 - 1
    if tensor.dim() >= 2:
        return uniform * math.sqrt(3.0 / _fan_in(owner, name, tensor))
    if name == "bias":
        return uniform / math.sqrt(_fan_in(owner, name, tensor))
    return uniform / math.sqrt(max(1, tensor.numel()))


# ----------------------------------------------------------------- placeholder checkpoints


@contextmanager
def placeholder_checkpoint(filename: str, *, directory: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """An empty checkpoint (no tensors) named ``filename``, for the length of a ``with`` block.

    For decoder configs that always load a checkpoint (a path that must exist, a default
    that downloads one): build the decoder inside the block with the config pointed at
    this file, and its loader reads a valid file with no tensors, so a network built on
    the meta device stays there for :func:`materialize_random` (use ``only_meta=True``
    to keep what ``__init__`` computed)::

        with placeholder_checkpoint("vae.safetensors") as path:
            decoder = VAEDecoderConfig(checkpoint_path=path).setup()
        materialize_random(decoder, seed=0, only_meta=True)

    The format follows the suffix:

    - ``.safetensors``: a header-only safetensors file (``{}``), written byte by byte
      (no safetensors package needed);
    - ``.pt``, ``.pth``, ``.ckpt``, ``.bin``: ``torch.save({})``, an empty state dict.

    Choose ``filename`` as the config's code expects when it reads meaning into the path
    (a variant name that switches architecture or latent scaling). The file is written in
    a new temporary folder (or in ``directory``) and removed, with that folder, when the
    block ends, also when it raises: nothing is left behind, even by processes that end
    with ``os._exit`` (the kit's workers do). Build the decoder inside the block; a
    decoder that reads its checkpoint again later needs a file of its own.
    """
    if not filename or os.path.basename(filename) != filename or filename in (".", ".."):
        raise ValueError(f"placeholder_checkpoint needs a plain file name, got {filename!r}")
    suffix = Path(filename).suffix.lower()
    if suffix not in (".safetensors", ".pt", ".pth", ".ckpt", ".bin"):
        raise ValueError(
            f"placeholder_checkpoint: no empty format for {filename!r}; name it *.safetensors, "
            "*.pt, *.pth, *.ckpt or *.bin"
        )
    folder = Path(directory) if directory is not None else Path(tempfile.mkdtemp(prefix="conformance-placeholder-"))
    path = folder / filename
    try:
        if suffix == ".safetensors":
            header = b"{}      "  # JSON header padded to 8 bytes, as writers align it
            path.write_bytes(struct.pack("<Q", len(header)) + header)
        else:
            torch.save({}, path)
        yield str(path)
    finally:
        if directory is None:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

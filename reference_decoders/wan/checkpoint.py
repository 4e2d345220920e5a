"""Loading Wan 2.1 VAE decoder weights from the two published checkpoint layouts.

- ``official``: ``Wan2.1_VAE.pth`` from Wan-Video/Wan2.1, a pickled state dict whose
  decoder lives under ``decoder.*`` (``conv1``, ``middle.N``, a flat ``upsamples.N``
  list, ``head.N``) with the post-quant conv at top-level ``conv2.*``.
- ``diffusers``: ``AutoencoderKLWan`` (safetensors, usually
  ``vae/diffusion_pytorch_model.safetensors``) with ``decoder.conv_in``,
  ``decoder.mid_block``, ``decoder.up_blocks.I.resnets.J`` / ``.upsamplers.0`` and
  ``post_quant_conv.*``.

The layout is told apart from the key names; the file format from its first bytes.
Encoder-side keys (``encoder.*`` and the quant conv) are ignored. Every other key must
be exactly the set the configured network expects, with the expected shapes; anything
else is reported in one :class:`CheckpointMismatchError` naming the keys.

Pickles are read with ``torch.load(weights_only=True)``, which only rebuilds tensors and
plain containers and refuses anything that would import or call arbitrary code.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO, Literal

import torch
from torch import nn

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "Layout",
    "UnsafeCheckpointError",
    "checkpoint_key",
    "detect_layout",
    "load_decoder_weights",
    "read_state_dict",
]

Layout = Literal["official", "diffusers"]

# Key prefixes that can only come from one layout's decoder side.
_LAYOUT_MARKERS: dict[Layout, tuple[str, ...]] = {
    "official": (
        "conv2.",
        "decoder.conv1.",
        "decoder.middle.",
        "decoder.upsamples.",
        "decoder.head.",
    ),
    "diffusers": (
        "post_quant_conv.",
        "decoder.conv_in.",
        "decoder.mid_block.",
        "decoder.up_blocks.",
        "decoder.norm_out.",
        "decoder.conv_out.",
    ),
}

# Encoder-side weights a full-VAE checkpoint also carries; the decoder does not use them.
_IGNORED_PREFIXES: dict[Layout, tuple[str, ...]] = {
    "official": ("encoder.", "conv1."),
    "diffusers": ("encoder.", "quant_conv."),
}

# Residual block sub-modules: our name -> name in each layout. The official block is an
# nn.Sequential (norm, SiLU, conv, norm, SiLU, dropout, conv), hence the gaps.
_RESNET_PARTS: dict[str, dict[Layout, str]] = {
    "norm1": {"official": "residual.0", "diffusers": "norm1"},
    "conv1": {"official": "residual.2", "diffusers": "conv1"},
    "norm2": {"official": "residual.3", "diffusers": "norm2"},
    "conv2": {"official": "residual.6", "diffusers": "conv2"},
    "shortcut": {"official": "shortcut", "diffusers": "conv_shortcut"},
}

# Upsampler sub-modules: the spatial conv is the second entry of ``resample`` (after the
# parameter-free nearest upsample) in both layouts.
_UPSAMPLER_PARTS: dict[str, str] = {"conv": "resample.1", "time_conv": "time_conv"}


class CheckpointError(RuntimeError):
    """A checkpoint could not be read as Wan 2.1 VAE decoder weights."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle checkpoint needs more than tensors and plain containers to load.

    It was refused before any of its code could run.
    """


class CheckpointMismatchError(CheckpointError):
    """The checkpoint's decoder keys do not match the configured network.

    Attributes list the offending keys by their names in the checkpoint's layout.
    """

    def __init__(
        self,
        path: str,
        layout: Layout,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        self.path = path
        self.layout = layout
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched
        lines = [f"{path} ({layout} layout) does not match the configured Wan VAE decoder:"]
        lines += _listing("missing keys", missing)
        lines += _listing("unexpected keys", unexpected)
        lines += _listing(
            "mis-shaped keys",
            [f"{key}: checkpoint {list(got)}, expected {list(want)}" for key, want, got in mismatched],
        )
        if mismatched or missing:
            lines.append(
                "Do the config's architecture fields (base_dim, dim_mult, num_res_blocks, "
                "temporal_upsample, latent_channels, out_channels) match the checkpoint?"
            )
        super().__init__("\n".join(lines))


def _listing(title: str, items: list[str], limit: int = 25) -> list[str]:
    if not items:
        return []
    shown = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return [f"{len(items)} {title}:", *shown]


def checkpoint_key(name: str, layout: Layout, num_res_blocks: int) -> str:
    """Name in ``layout`` of the parameter called ``name`` in :class:`WanVAEDecoderNetwork`.

    ``num_res_blocks`` is the config field; the official layout flattens the up stages
    into one list (each stage's ``num_res_blocks + 1`` blocks, then its upsampler), so
    indices there depend on it.
    """
    official = layout == "official"
    stage_length = num_res_blocks + 2  # residual blocks + upsampler per official stage
    match name.split("."):
        case ["post_quant_conv", param]:
            return f"conv2.{param}" if official else f"post_quant_conv.{param}"
        case ["conv_in", param]:
            return f"decoder.conv1.{param}" if official else f"decoder.conv_in.{param}"
        case ["mid", "resnets", index, part, param]:
            block = f"middle.{2 * int(index)}" if official else f"mid_block.resnets.{index}"
            return f"decoder.{block}.{_RESNET_PARTS[part][layout]}.{param}"
        case ["mid", "attention", *rest]:
            block = "middle.1" if official else "mid_block.attentions.0"
            return f"decoder.{block}.{'.'.join(rest)}"
        case ["up_stages", stage, "resnets", index, part, param]:
            if official:
                block = f"upsamples.{int(stage) * stage_length + int(index)}"
            else:
                block = f"up_blocks.{stage}.resnets.{index}"
            return f"decoder.{block}.{_RESNET_PARTS[part][layout]}.{param}"
        case ["up_stages", stage, "upsampler", part, param]:
            if official:
                block = f"upsamples.{int(stage) * stage_length + num_res_blocks + 1}"
            else:
                block = f"up_blocks.{stage}.upsamplers.0"
            return f"decoder.{block}.{_UPSAMPLER_PARTS[part]}.{param}"
        case ["norm_out", param]:
            return f"decoder.head.0.{param}" if official else f"decoder.norm_out.{param}"
        case ["conv_out", param]:
            return f"decoder.head.2.{param}" if official else f"decoder.conv_out.{param}"
    raise KeyError(f"no checkpoint name known for decoder parameter {name!r}")


def detect_layout(keys: list[str], path: str = "checkpoint") -> Layout:
    """Which published layout ``keys`` follow, from prefixes only one layout uses."""
    found = {
        layout: [key for key in keys if key.startswith(markers)]
        for layout, markers in _LAYOUT_MARKERS.items()
    }
    if found["official"] and found["diffusers"]:
        raise CheckpointError(
            f"{path} mixes the official and diffusers Wan VAE layouts "
            f"(e.g. {found['official'][0]!r} and {found['diffusers'][0]!r})"
        )
    for layout, hits in found.items():
        if hits:
            return layout
    preview = ", ".join(repr(key) for key in keys[:5]) or "none"
    raise CheckpointError(
        f"{path} has no Wan 2.1 VAE decoder keys in the official (decoder.conv1, conv2, ...) "
        f"or diffusers (decoder.conv_in, post_quant_conv, ...) layout; first keys: {preview}"
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a flat ``name -> tensor`` mapping on the CPU, without running any file code.

    The format is taken from the file's first bytes, not its name: a zip archive
    (``torch.save``) or a bare pickle is read with ``weights_only=True``; anything
    else must be safetensors.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(
            f"{path} is a directory; pass the checkpoint file itself "
            "(e.g. Wan2.1_VAE.pth or vae/diffusion_pytorch_model.safetensors)"
        )
    with path.open("rb") as handle:
        head = handle.read(9)
        handle.seek(0)
        if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
            loaded = _read_pickle(handle, path)
        elif len(head) == 9 and head[8:9] == b"{":
            loaded = _read_safetensors(path)
        else:
            raise CheckpointError(
                f"{path} is neither a PyTorch checkpoint (zip or pickle) nor safetensors"
            )

    if not isinstance(loaded, Mapping):
        raise CheckpointError(
            f"{path} holds a {type(loaded).__name__}; expected a state dict (name -> tensor)"
        )
    not_tensors = [str(key) for key, value in loaded.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path} is not a flat state dict: {len(not_tensors)} entries are not tensors "
            f"(e.g. {not_tensors[:5]}); expected name -> tensor"
        )
    return {str(key): value for key, value in loaded.items()}


def _read_pickle(handle: BinaryIO, path: Path) -> object:
    # Read from the open file, not the path: torch.load hands a path ending in
    # ".safetensors" to safetensors whatever its content.
    try:
        return torch.load(handle, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(
            f"refused to load {path}: the pickle needs more than tensors and plain "
            f"containers ({_unpickler_reason(error)}), so it was not unpickled "
            "(weights_only=True; no code from it ran). Re-save it as a plain state dict "
            "or as safetensors from a trusted environment."
        ) from error
    except Exception as error:  # truncated or corrupt archives raise assorted types
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint: {error}") from error


def _unpickler_reason(error: Exception) -> str:
    """The line of torch's long weights-only message that says what was refused."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in lines:
        if "WeightsUnpickler error:" in line:
            return line.split("WeightsUnpickler error:", 1)[1].split(". Please")[0].strip()
    return lines[0] if lines else type(error).__name__


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        from safetensors.torch import load_file
    except ImportError as error:  # not a runtime dependency of the kit
        raise CheckpointError(
            f"{path} is a safetensors file, and reading it needs the 'safetensors' package "
            "(pip install safetensors)"
        ) from error
    try:
        return load_file(str(path), device="cpu")
    except Exception as error:  # safetensors raises its own error type for bad headers
        raise CheckpointError(f"could not read {path} as safetensors: {error}") from error


def load_decoder_weights(
    network: nn.Module, path: str | os.PathLike[str], num_res_blocks: int
) -> Layout:
    """Fill ``network`` (a :class:`WanVAEDecoderNetwork`) from the checkpoint at ``path``.

    Returns the detected layout. Raises :class:`CheckpointMismatchError` naming every
    missing, unexpected and mis-shaped decoder key, before touching the network.
    """
    state = read_state_dict(path)
    layout = detect_layout(list(state), str(path))
    ours = network.state_dict()
    wanted = {checkpoint_key(name, layout, num_res_blocks): name for name in ours}

    ignored = _IGNORED_PREFIXES[layout]
    missing = [key for key in wanted if key not in state]
    unexpected = [key for key in state if key not in wanted and not key.startswith(ignored)]
    mismatched = [
        (key, tuple(ours[name].shape), tuple(state[key].shape))
        for key, name in wanted.items()
        if key in state and state[key].shape != ours[name].shape
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(str(path), layout, missing, unexpected, mismatched)

    network.load_state_dict({name: state[key] for key, name in wanted.items()}, strict=True)
    return layout

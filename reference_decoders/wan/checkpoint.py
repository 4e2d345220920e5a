"""Loading Wan VAE decoder weights (Wan 2.1 and 2.2) from the two published checkpoint layouts.

- ``official``: ``Wan2.1_VAE.pth`` from Wan-Video/Wan2.1 or ``Wan2.2_VAE.pth`` from
  Wan-Video/Wan2.2, a pickled state dict whose decoder lives under ``decoder.*``
  (``conv1``, ``middle.N``, ``upsamples``, ``head.N``) with the post-quant conv at
  top-level ``conv2.*``. Wan 2.1's ``upsamples`` is one flat list of residual blocks
  and upsamplers; Wan 2.2's is one ``Up_ResidualBlock`` per stage, each holding its
  blocks and upsampler in its own ``upsamples.N`` list.
- ``diffusers``: ``AutoencoderKLWan`` (safetensors, usually
  ``vae/diffusion_pytorch_model.safetensors``) with ``decoder.conv_in``,
  ``decoder.mid_block``, ``decoder.up_blocks.I.resnets.J``, the upsampler at
  ``.upsamplers.0`` (Wan 2.1) or ``.upsampler`` (Wan 2.2, ``is_residual``), and
  ``post_quant_conv.*``.

The layout is told apart from the key names; the file format from its first bytes.
Encoder-side keys (``encoder.*`` and the quant conv) are ignored. Every other key must
be exactly the set the configured network expects, with the expected shapes; anything
else is reported in one :class:`CheckpointMismatchError` naming the keys.

Reading is safe on untrusted files:

- No code from the file runs: pickles are read with ``torch.load(weights_only=True)``,
  which only rebuilds tensors and plain containers and refuses anything that would
  import or call arbitrary code; safetensors is parsed here, as data.
- Memory is bounded before anything is decompressed or allocated: the sizes the file
  declares (a zip archive's directory, a safetensors header) are checked against the
  file and against what the configured network can use (:func:`weights_budget`). A
  bare pre-zip pickle, whose sizes are only known while unpickling, is refused.
- Only regular files are opened (a FIFO or device is refused without a blocking open),
  and every unusable path (missing, dangling link, link loop, no permission,
  directory) is a :class:`CheckpointError` naming the path and what was expected.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import stat
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal

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
    "weights_budget",
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
    """A checkpoint could not be read as Wan VAE decoder weights."""


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
                "temporal_upsample, latent_channels, out_channels, residual_up_stages, "
                "patch_size) match the checkpoint? Wan 2.2 checkpoints need "
                "Wan22VAEDecoderConfig."
            )
        super().__init__("\n".join(lines))


def _listing(title: str, items: list[str], limit: int = 25) -> list[str]:
    if not items:
        return []
    shown = [f"  {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"  ... and {len(items) - limit} more")
    return [f"{len(items)} {title}:", *shown]


def checkpoint_key(
    name: str, layout: Layout, num_res_blocks: int, residual_up_stages: bool = False
) -> str:
    """Name in ``layout`` of the parameter called ``name`` in :class:`WanVAEDecoderNetwork`.

    ``num_res_blocks`` and ``residual_up_stages`` are the config fields. The Wan 2.1
    official layout flattens the up stages into one list (each stage's
    ``num_res_blocks + 1`` blocks, then its upsampler), so indices there depend on the
    block count; Wan 2.2's (``residual_up_stages``) nests one list per stage.
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
            if official and residual_up_stages:
                block = f"upsamples.{stage}.upsamples.{index}"
            elif official:
                block = f"upsamples.{int(stage) * stage_length + int(index)}"
            else:
                block = f"up_blocks.{stage}.resnets.{index}"
            return f"decoder.{block}.{_RESNET_PARTS[part][layout]}.{param}"
        case ["up_stages", stage, "upsampler", part, param]:
            if official and residual_up_stages:
                block = f"upsamples.{stage}.upsamples.{num_res_blocks + 1}"
            elif official:
                block = f"upsamples.{int(stage) * stage_length + num_res_blocks + 1}"
            elif residual_up_stages:
                block = f"up_blocks.{stage}.upsampler"
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
        f"{path} has no Wan VAE decoder keys in the official (decoder.conv1, conv2, ...) "
        f"or diffusers (decoder.conv_in, post_quant_conv, ...) layout; first keys: {preview}"
    )


def read_state_dict(
    path: str | os.PathLike[str], max_bytes: int | None = None
) -> dict[str, torch.Tensor]:
    """Read a flat ``name -> tensor`` mapping on the CPU, without running any file code.

    The format is taken from the file's first bytes, not its name: a zip archive
    (``torch.save``) is read with ``weights_only=True``; anything else must be
    safetensors. Before any tensor is read, the sizes the file declares (the zip
    directory's uncompressed sizes, the safetensors header's offsets) are checked
    against the file and against ``max_bytes``, so memory use is bounded by what the
    caller can use, whatever the file claims or compresses to. ``None`` allows what
    the file's own size allows: a compressed archive then may not expand beyond it.

    Raises :class:`CheckpointError` for every unusable path or file (missing, not a
    regular file, unreadable, malformed, over budget), naming the path and what was
    expected.
    """
    path = Path(path)
    with _open_regular_file(path) as handle:
        file_bytes = os.fstat(handle.fileno()).st_size
        budget = file_bytes if max_bytes is None else max_bytes
        head = handle.read(9)
        handle.seek(0)
        if head.startswith(b"PK\x03\x04"):
            _check_zip_directory(handle, path, file_bytes, budget)
            handle.seek(0)
            loaded = _read_pickle(handle, path)
        elif head[:1] == b"\x80":
            raise CheckpointError(
                f"{path} is a bare pickle (the torch.save format before PyTorch 1.6); its tensor "
                "sizes are only known while unpickling, so its memory use cannot be bounded "
                "before reading. Re-save it with a current torch.save (a zip archive) or as "
                "safetensors."
            )
        elif len(head) == 9 and head[8:9] == b"{":
            loaded = _read_safetensors(handle, path, file_bytes, budget)
        else:
            raise CheckpointError(
                f"{path} is neither a PyTorch checkpoint (a torch.save zip archive) nor "
                "safetensors"
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


_EXPECTED_FILE = "a checkpoint file (e.g. Wan2.1_VAE.pth or vae/diffusion_pytorch_model.safetensors)"

# What a path that is not a regular file is, by stat type.
_NOT_REGULAR: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISDIR, "a directory; pass the checkpoint file itself"),
    (stat.S_ISFIFO, "a named pipe (FIFO), which could block forever; pass a regular file"),
    (stat.S_ISCHR, "a character device; pass a regular file"),
    (stat.S_ISBLK, "a block device; pass a regular file"),
    (stat.S_ISSOCK, "a socket; pass a regular file"),
)


def _open_regular_file(path: Path) -> io.BufferedReader:
    """``path`` opened for reading, if it is a regular file; else a CheckpointError.

    The type is checked with ``stat`` before opening, so a FIFO or device is never
    opened, and again on the open descriptor (non-blocking open), so a path swapped
    for a FIFO in between cannot block either.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise CheckpointError(_unusable_path(path, error)) from error
    _require_regular(path, mode)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except OSError as error:
        raise CheckpointError(_unusable_path(path, error)) from error
    try:
        _require_regular(path, os.fstat(descriptor).st_mode)
    except BaseException:
        os.close(descriptor)
        raise
    return os.fdopen(descriptor, "rb")


def _require_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    what = next((text for test, text in _NOT_REGULAR if test(mode)), "not a regular file")
    raise CheckpointError(f"{path} is {what}; expected {_EXPECTED_FILE}")


def _unusable_path(path: Path, error: OSError) -> str:
    reasons = {
        errno.ENOENT: "does not exist",
        errno.ELOOP: "is a symbolic link loop (too many levels of symbolic links)",
        errno.EACCES: "cannot be read: permission denied",
        errno.EPERM: "cannot be read: operation not permitted",
        errno.ENOTDIR: "is not reachable: a component of the path is not a directory",
        errno.ENAMETOOLONG: "is too long a file name",
    }
    reason = reasons.get(error.errno or 0, f"cannot be opened ({error.strerror or error})")
    if error.errno == errno.ENOENT and path.is_symlink():
        reason = f"is a dangling symbolic link (to {os.readlink(path)!r})"
    return f"{path} {reason}; expected {_EXPECTED_FILE}"


#: Headroom over the tensors' own bytes for the pickle, the archive's small records and
#: safetensors metadata (it also means no file under 16 MiB is refused for its size).
METADATA_ALLOWANCE = 16 * 2**20

# Zip compression methods torch's archive reader (miniz) can extract.
_ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}


def _check_zip_directory(handle: BinaryIO, path: Path, file_bytes: int, budget: int) -> None:
    """Refuse a torch.save archive whose directory declares more than ``budget`` bytes.

    Only the central directory is read (no member is decompressed). torch's reader
    allocates each record at its declared uncompressed size and fails if the data does
    not fit, so the declared sizes bound what reading can allocate. ``torch.save``
    stores records uncompressed; a stored record cannot be larger than the file, and a
    deflated one (a zip bomb expands ~1000x) is held to the same budget.
    """
    try:
        with zipfile.ZipFile(handle) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise CheckpointError(f"could not read {path} as a PyTorch checkpoint: {error}") from error
    declared = 0
    for member in members:
        method = _ZIP_METHODS.get(member.compress_type)
        if method is None:
            raise CheckpointError(
                f"could not read {path} as a PyTorch checkpoint: record {member.filename!r} "
                f"uses zip compression method {member.compress_type}; torch.save archives "
                "are stored (or deflated)"
            )
        if method == "stored" and member.file_size != member.compress_size:
            raise CheckpointError(
                f"could not read {path} as a PyTorch checkpoint: stored record "
                f"{member.filename!r} declares {member.file_size} bytes but occupies "
                f"{member.compress_size}"
            )
        if member.header_offset + member.compress_size > file_bytes:
            raise CheckpointError(
                f"could not read {path} as a PyTorch checkpoint: record {member.filename!r} "
                f"extends past the end of the {file_bytes}-byte file (truncated?)"
            )
        declared += member.file_size
    if declared > budget + METADATA_ALLOWANCE:
        raise CheckpointError(
            f"refused to read {path}: its zip directory declares {declared} bytes once "
            f"decompressed ({len(members)} records, {file_bytes} bytes on disk), more than "
            f"the {budget + METADATA_ALLOWANCE} bytes allowed ({_budget_words(budget)})"
        )


def _budget_words(budget: int) -> str:
    return f"a budget of {budget} bytes for tensors plus {METADATA_ALLOWANCE} for metadata"


def _read_pickle(handle: BinaryIO, path: Path) -> object:
    # Read from the open file, not the path: torch.load hands a path ending in
    # ".safetensors" to safetensors whatever its content, and the path was checked.
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


#: Largest safetensors header read (JSON text); real ones are a few hundred kilobytes.
MAX_SAFETENSORS_HEADER = 8 * 2**20

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
    "F8_E4M3": torch.float8_e4m3fn,
    "F8_E5M2": torch.float8_e5m2,
}


def _read_safetensors(
    handle: io.BufferedReader, path: Path, file_bytes: int, budget: int
) -> dict[str, torch.Tensor]:
    """Read a safetensors file from ``handle``, checking its header before any tensor.

    The format: an 8-byte little-endian header length, a JSON header mapping each name
    to its dtype, shape and byte range in the data section, then the data. Every range
    must lie in the file and match its dtype and shape, and their total must fit the
    budget; then each tensor is read into its own buffer (nothing is memory-mapped).
    """
    def refuse(reason: str) -> CheckpointError:
        return CheckpointError(f"could not read {path} as safetensors: {reason}")

    header_bytes = int.from_bytes(handle.read(8), "little")
    data_start = 8 + header_bytes
    if header_bytes > MAX_SAFETENSORS_HEADER or data_start > file_bytes:
        raise refuse(
            f"the header claims {header_bytes} bytes; the file has {file_bytes} and headers are "
            f"at most {MAX_SAFETENSORS_HEADER}"
        )
    try:
        header = json.loads(handle.read(header_bytes), object_pairs_hook=_no_duplicate_keys)
    except (ValueError, UnicodeDecodeError) as error:
        raise refuse(f"the header is not valid JSON ({error})") from error
    if not isinstance(header, dict):
        raise refuse(f"the header is a JSON {type(header).__name__}, expected an object")
    header.pop("__metadata__", None)

    entries: list[tuple[str, torch.dtype, list[int], int, int]] = []
    declared = 0
    for name, entry in header.items():
        dtype, shape, begin, end = _safetensors_entry(name, entry, refuse)
        numel = math.prod(shape)
        if not 0 <= begin <= end <= file_bytes - data_start:
            raise refuse(
                f"tensor {name!r} claims bytes {begin}..{end} of a {file_bytes - data_start}-byte "
                "data section (truncated file?)"
            )
        if end - begin != numel * dtype.itemsize:
            raise refuse(
                f"tensor {name!r} is {dtype} {shape} ({numel * dtype.itemsize} bytes) but claims "
                f"{end - begin} bytes"
            )
        declared += end - begin
        entries.append((name, dtype, shape, begin, end))
    if declared > budget + METADATA_ALLOWANCE:
        raise CheckpointError(
            f"refused to read {path}: its header declares {declared} bytes of tensors, more "
            f"than the {budget + METADATA_ALLOWANCE} bytes allowed ({_budget_words(budget)})"
        )
    if sys.byteorder != "little":
        raise refuse("safetensors data is little-endian and this machine is not")

    state = {}
    for name, dtype, shape, begin, end in entries:
        buffer = bytearray(end - begin)
        handle.seek(data_start + begin)
        if handle.readinto(buffer) != len(buffer):
            raise refuse(f"the file ended inside tensor {name!r}")
        flat = torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)
        state[name] = flat.reshape(shape)
    return state


def _safetensors_entry(
    name: str, entry: object, refuse: Callable[[str], CheckpointError]
) -> tuple[torch.dtype, list[int], int, int]:
    """dtype, shape and byte range of one header entry, or an error saying what is wrong."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise refuse(f"header entry {name!r} is not {{dtype, shape, data_offsets}}: {entry!r:.200}")
    dtype = _SAFETENSORS_DTYPES.get(entry["dtype"]) if isinstance(entry["dtype"], str) else None
    if dtype is None:
        raise refuse(
            f"tensor {name!r} has dtype {entry['dtype']!r:.40}; known: {sorted(_SAFETENSORS_DTYPES)}"
        )
    shape, offsets = entry["shape"], entry["data_offsets"]
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise refuse(f"tensor {name!r} has shape {shape!r:.80}; expected a list of sizes >= 0")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise refuse(f"tensor {name!r} has data_offsets {offsets!r:.80}; expected [begin, end]")
    return dtype, shape, offsets[0], offsets[1]


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {repeated[:5]}")
    return dict(pairs)


def weights_budget(network: nn.Module) -> int:
    """Bytes of tensors a checkpoint for ``network`` may declare: twice its parameters
    in float32.

    A published Wan VAE file holds the decoder plus an encoder that is smaller than
    it (about 0.73x the decoder's parameters for Wan 2.1, 0.27x for Wan 2.2), in float32
    (a decoder-only float64 file also fits). Anything more cannot be weights the
    decoder uses, and is refused before it is read.
    """
    return 2 * 4 * sum(value.numel() for value in network.state_dict().values())


def load_decoder_weights(
    network: nn.Module,
    path: str | os.PathLike[str],
    num_res_blocks: int,
    *,
    residual_up_stages: bool = False,
) -> Layout:
    """Fill ``network`` (a :class:`WanVAEDecoderNetwork`) from the checkpoint at ``path``.

    ``num_res_blocks`` and ``residual_up_stages`` are the network's config fields.
    Returns the detected layout. Raises :class:`CheckpointMismatchError` naming every
    missing, unexpected and mis-shaped decoder key, before touching the network.
    """
    state = read_state_dict(path, max_bytes=weights_budget(network))
    layout = detect_layout(list(state), str(path))
    ours = network.state_dict()
    wanted = {
        checkpoint_key(name, layout, num_res_blocks, residual_up_stages): name for name in ours
    }

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

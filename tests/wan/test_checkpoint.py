"""Checkpoint loading, Wan 2.1 and Wan 2.2: layout detection (the official ``Wan2.1_VAE.pth``
/ ``Wan2.2_VAE.pth`` and diffusers layouts, from the keys), key mapping, encoder ignored,
mismatches named, refusals with clear errors.

Checkpoints are written by the tests (see ``conftest``), then read by the real loader
through ``WanVAEDecoderConfig(checkpoint_path=...).setup()`` (``Wan22VAEDecoderConfig``).
The loader's safety rules do not depend on the version: they are checked once, on Wan
2.1 files.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from reference_decoders.wan import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    Wan22VAEDecoderConfig,
    WanVAEDecoder,
    WanVAEDecoderConfig,
)
from reference_decoders.wan.checkpoint import checkpoint_key, detect_layout, read_state_dict
from reference_decoders.wan.model import WanVAEDecoderNetwork

from .conftest import ParityCase
from .helpers import SMALL, VERSIONS, WAN21, WAN22, WAN22_SMALL, Version

# Names and shapes in the published Wan2.1_VAE.pth for the default architecture: a spot
# check of the official layout that does not go through any mapping code.
WAN21_PUBLISHED_OFFICIAL_KEYS: dict[str, tuple[int, ...]] = {
    "conv2.weight": (16, 16, 1, 1, 1),
    "decoder.conv1.weight": (384, 16, 3, 3, 3),
    "decoder.middle.0.residual.0.gamma": (384, 1, 1, 1),
    "decoder.middle.0.residual.2.weight": (384, 384, 3, 3, 3),
    "decoder.middle.1.norm.gamma": (384, 1, 1),
    "decoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
    "decoder.middle.1.proj.weight": (384, 384, 1, 1),
    "decoder.middle.2.residual.6.bias": (384,),
    "decoder.upsamples.0.residual.3.gamma": (384, 1, 1, 1),
    "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
    "decoder.upsamples.3.resample.1.weight": (192, 384, 3, 3),
    "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
    "decoder.upsamples.4.residual.0.gamma": (192, 1, 1, 1),
    "decoder.upsamples.7.time_conv.weight": (768, 384, 3, 1, 1),
    "decoder.upsamples.7.resample.1.weight": (192, 384, 3, 3),
    "decoder.upsamples.8.residual.2.weight": (192, 192, 3, 3, 3),
    "decoder.upsamples.11.resample.1.weight": (96, 192, 3, 3),
    "decoder.upsamples.14.residual.6.weight": (96, 96, 3, 3, 3),
    "decoder.head.0.gamma": (96, 1, 1, 1),
    "decoder.head.2.weight": (3, 96, 3, 3, 3),
}


# The same for the published Wan2.2_VAE.pth decoder, read off the official module
# structure (wan/modules/vae2_2.py: Decoder3d(dim=256, z_dim=48), Up_ResidualBlock,
# Resample keeping the width, a 12-channel head).
WAN22_PUBLISHED_OFFICIAL_KEYS: dict[str, tuple[int, ...]] = {
    "conv2.weight": (48, 48, 1, 1, 1),
    "decoder.conv1.weight": (1024, 48, 3, 3, 3),
    "decoder.middle.0.residual.0.gamma": (1024, 1, 1, 1),
    "decoder.middle.1.to_qkv.weight": (3072, 1024, 1, 1),
    "decoder.middle.2.residual.6.bias": (1024,),
    "decoder.upsamples.0.upsamples.0.residual.2.weight": (1024, 1024, 3, 3, 3),
    "decoder.upsamples.0.upsamples.3.time_conv.weight": (2048, 1024, 3, 1, 1),
    "decoder.upsamples.0.upsamples.3.resample.1.weight": (1024, 1024, 3, 3),
    "decoder.upsamples.1.upsamples.3.time_conv.bias": (2048,),
    "decoder.upsamples.2.upsamples.0.shortcut.weight": (512, 1024, 1, 1, 1),
    "decoder.upsamples.2.upsamples.0.residual.0.gamma": (1024, 1, 1, 1),
    "decoder.upsamples.2.upsamples.3.resample.1.weight": (512, 512, 3, 3),
    "decoder.upsamples.3.upsamples.0.shortcut.weight": (256, 512, 1, 1, 1),
    "decoder.upsamples.3.upsamples.2.residual.6.weight": (256, 256, 3, 3, 3),
    "decoder.head.0.gamma": (256, 1, 1, 1),
    "decoder.head.2.weight": (12, 256, 3, 3, 3),
}

PUBLISHED_OFFICIAL_KEYS = {"wan2.1": WAN21_PUBLISHED_OFFICIAL_KEYS, "wan2.2": WAN22_PUBLISHED_OFFICIAL_KEYS}


def _small_config(path: Path | str, **overrides: Any) -> WanVAEDecoderConfig:
    return WanVAEDecoderConfig(checkpoint_path=str(path), device="cpu", **{**SMALL, **overrides})


def _config(version: Version, path: Path | str, **overrides: Any) -> WanVAEDecoderConfig:
    return version.config(checkpoint_path=str(path), device="cpu", **{**version.small, **overrides})


def _expected_names(version: Version, layout: str, **architecture: Any) -> dict[str, tuple[int, ...]]:
    config = version.config(device="cpu", **architecture)
    with torch.device("meta"):
        network = WanVAEDecoderNetwork(config)
    return {
        checkpoint_key(name, layout, config.num_res_blocks, config.residual_up_stages): tuple(value.shape)  # type: ignore[arg-type]
        for name, value in network.state_dict().items()
    }


def _save_official(state: dict[str, torch.Tensor], path: Path) -> Path:
    torch.save(state, path)
    return path


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_official_names_match_the_published_layout(version: Version) -> None:
    expected = _expected_names(version, "official")
    for key, shape in PUBLISHED_OFFICIAL_KEYS[version.name].items():
        assert expected.get(key) == shape, key
    if version is WAN21:
        # conv2 (2) + conv1 (2) + middle (2 blocks x 6 + attention 5) + 12 up blocks x 6
        # + one shortcut (2) + 3 resample convs (6) + 2 time convs (4) + head (3)
        assert len(expected) == 108
    else:
        assert not any(".avg_shortcut." in key for key in expected)  # no weights there
        # conv2 (2) + conv1 (2) + middle (2 blocks x 6 + attention 5) + 12 up blocks x 6
        # + 2 width-changing shortcuts, 3 resample convs, 2 time convs (2 each) + head (3)
        assert len(expected) == 2 + 2 + 17 + 72 + 4 + 6 + 4 + 3


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_diffusers_names_match_autoencoder_kl_wan(version: Version) -> None:
    diffusers = pytest.importorskip("diffusers")
    for architecture in ({}, version.small):
        with torch.device("meta"):
            vae = diffusers.AutoencoderKLWan(**version.diffusers_arguments(**architecture))
        theirs = {
            key: tuple(value.shape)
            for key, value in vae.state_dict().items()
            if key.startswith(("decoder.", "post_quant_conv."))
        }
        assert _expected_names(version, "diffusers", **architecture) == theirs


def test_official_names_match_an_independent_rename(published_blocks_case: ParityCase) -> None:
    state = read_state_dict(published_blocks_case.official_path)
    decoder_side = {
        key: tuple(value.shape)
        for key, value in state.items()
        if not key.startswith(("encoder.", "conv1."))
    }
    version = published_blocks_case.version
    assert _expected_names(version, "official", base_dim=8, num_res_blocks=2) == decoder_side


def test_layout_is_detected_from_keys_not_file_names(small_case: ParityCase, tmp_path: Path) -> None:
    version = small_case.version
    # A safetensors file named .pth and a torch zip named .safetensors both load.
    renamed_safetensors = tmp_path / "weights.pth"
    renamed_safetensors.write_bytes(small_case.diffusers_path.read_bytes())
    renamed_pickle = tmp_path / "weights.safetensors"
    renamed_pickle.write_bytes(small_case.official_path.read_bytes())

    assert _config(version, renamed_safetensors).setup().checkpoint_layout == "diffusers"
    assert _config(version, renamed_pickle).setup().checkpoint_layout == "official"

    # The official layout saved as safetensors, and the diffusers layout as a pickle.
    safetensors_torch = pytest.importorskip("safetensors.torch")
    official_st = tmp_path / "official.safetensors"
    safetensors_torch.save_file(read_state_dict(small_case.official_path), str(official_st))
    diffusers_pt = _save_official(read_state_dict(small_case.diffusers_path), tmp_path / "d.pt")
    assert _config(version, official_st).setup().checkpoint_layout == "official"
    assert _config(version, diffusers_pt).setup().checkpoint_layout == "diffusers"


def test_both_layouts_load_the_same_weights_and_encoder_keys_are_ignored(
    small_case: ParityCase, tmp_path: Path
) -> None:
    version = small_case.version
    official = small_case.decoder("official")
    diffusers_loaded = small_case.decoder("diffusers")
    assert (official.checkpoint_layout, diffusers_loaded.checkpoint_layout) == ("official", "diffusers")
    for (name, ours), (_, theirs) in zip(
        official.state_dict().items(), diffusers_loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(ours, theirs), name

    state = read_state_dict(small_case.official_path)
    assert any(key.startswith("encoder.") for key in state) and "conv1.weight" in state
    decoder_only = {k: v for k, v in state.items() if not k.startswith(("encoder.", "conv1."))}
    full = _config(version, small_case.official_path).setup()
    stripped = _config(version, _save_official(decoder_only, tmp_path / "dec.pth")).setup()
    for (name, a), (_, b) in zip(full.state_dict().items(), stripped.state_dict().items()):
        assert torch.equal(a, b), name


def test_missing_unexpected_and_mis_shaped_keys_are_named(
    wan21_published_blocks_case: ParityCase, tmp_path: Path
) -> None:
    state = read_state_dict(wan21_published_blocks_case.official_path)
    del state["decoder.head.2.bias"]
    del state["decoder.upsamples.4.shortcut.weight"]
    state["decoder.upsamples.99.residual.0.gamma"] = torch.ones(8, 1, 1, 1)
    state["model_ema.step"] = torch.tensor(3)
    state["decoder.middle.1.proj.weight"] = torch.zeros(32, 32, 3, 3)
    path = _save_official(state, tmp_path / "broken.pth")

    with pytest.raises(CheckpointMismatchError) as caught:
        _small_config(path, num_res_blocks=2).setup()
    error = caught.value
    assert error.layout == "official"
    assert sorted(error.missing) == ["decoder.head.2.bias", "decoder.upsamples.4.shortcut.weight"]
    assert sorted(error.unexpected) == ["decoder.upsamples.99.residual.0.gamma", "model_ema.step"]
    assert error.mismatched == [("decoder.middle.1.proj.weight", (32, 32, 1, 1), (32, 32, 3, 3))]
    message = str(error)
    for key in (*error.missing, *error.unexpected, "decoder.middle.1.proj.weight", str(path)):
        assert key in message
    assert "[32, 32, 3, 3]" in message and "[32, 32, 1, 1]" in message


def test_architecture_mismatch_lists_mis_shaped_keys(wan21_small_case: ParityCase) -> None:
    small_case = wan21_small_case
    with pytest.raises(CheckpointMismatchError) as caught:
        _small_config(small_case.diffusers_path, base_dim=16).setup()
    assert caught.value.layout == "diffusers"
    assert ("decoder.conv_in.weight", (64, 16, 3, 3, 3), (32, 16, 3, 3, 3)) in caught.value.mismatched
    assert "base_dim" in str(caught.value)

    with pytest.raises(CheckpointMismatchError) as caught:
        _small_config(small_case.diffusers_path, num_res_blocks=2).setup()
    assert "decoder.up_blocks.0.resnets.2.conv1.weight" in caught.value.missing


def test_the_other_versions_checkpoint_is_named_as_such(
    wan21_small_case: ParityCase, wan22_small_case: ParityCase
) -> None:
    with pytest.raises(CheckpointMismatchError) as caught:
        Wan22VAEDecoderConfig(
            checkpoint_path=str(wan21_small_case.official_path), device="cpu", **WAN22_SMALL
        ).setup()
    assert caught.value.layout == "official"
    assert "decoder.upsamples.0.upsamples.0.residual.0.gamma" in caught.value.missing
    assert ("decoder.conv1.weight", (32, 48, 3, 3, 3), (32, 16, 3, 3, 3)) in caught.value.mismatched

    with pytest.raises(CheckpointMismatchError) as caught:
        WanVAEDecoderConfig(
            checkpoint_path=str(wan22_small_case.diffusers_path), device="cpu", **SMALL
        ).setup()
    assert "decoder.up_blocks.0.upsampler.resample.1.weight" in caught.value.unexpected
    assert "Wan22VAEDecoderConfig" in str(caught.value)


class _Payload:
    """Unpickling this would call ``exec``: writes a marker file as proof it ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


@pytest.mark.parametrize("container", ["torch.save", "bare pickle"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "payload_ran"
    state = {"decoder.conv1.weight": _Payload(marker), "conv2.weight": torch.zeros(16, 16, 1, 1, 1)}
    path = tmp_path / "Wan2.1_VAE.pth"
    if container == "torch.save":
        torch.save(state, path)
        with pytest.raises(UnsafeCheckpointError, match="refused to load") as caught:
            _small_config(path).setup()
        assert "weights_only" in str(caught.value)
    else:
        # A bare pickle is refused before unpickling: its sizes cannot be checked first.
        path.write_bytes(pickle.dumps(state, protocol=2))
        with pytest.raises(CheckpointError, match="bare pickle"):
            _small_config(path).setup()
    assert not marker.exists()

    # The payload is live: an unrestricted load would have run it.
    if container == "torch.save":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.read_text() == "ran"


def test_layout_detection_refusals() -> None:
    with pytest.raises(CheckpointError, match="mixes"):
        detect_layout(["decoder.conv1.weight", "post_quant_conv.weight"])
    with pytest.raises(CheckpointError, match="no Wan VAE decoder keys"):
        detect_layout(["encoder.conv1.weight", "transformer.blocks.0.weight"])


def test_malformed_files_are_refused_with_clear_errors(
    wan21_small_case: ParityCase, tmp_path: Path
) -> None:
    sources = (
        (wan21_small_case.official_path, "a PyTorch checkpoint"),
        (wan21_small_case.diffusers_path, "safetensors"),
    )
    for source, kind in sources:
        truncated = tmp_path / f"truncated{source.suffix}"
        truncated.write_bytes(source.read_bytes()[:-64])
        with pytest.raises(CheckpointError, match=f"could not read .* as {kind}"):
            _small_config(truncated).setup()

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="neither a PyTorch checkpoint"):
        _small_config(garbage).setup()

    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(CheckpointError, match="expected a state dict"):
        _small_config(tensor_only).setup()

    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"decoder.conv1.weight": torch.zeros(1)}, "epoch": 3}, nested)
    with pytest.raises(CheckpointError, match="not a flat state dict"):
        _small_config(nested).setup()

    legacy = tmp_path / "legacy.pth"
    torch.save({"conv2.weight": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
    with pytest.raises(CheckpointError, match="bare pickle .* Re-save it"):
        _small_config(legacy).setup()


def test_safetensors_is_read_without_the_safetensors_package(
    wan21_small_case: ParityCase, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _small_config(wan21_small_case.diffusers_path).setup().state_dict()
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    loaded = _small_config(wan21_small_case.diffusers_path).setup().state_dict()
    assert all(torch.equal(loaded[name], value) for name, value in expected.items())


def test_checkpoint_weights_are_cast_to_the_configured_dtype(wan21_small_case: ParityCase) -> None:
    decoder: WanVAEDecoder = _small_config(wan21_small_case.official_path, dtype="bf16").setup()
    assert {p.dtype for p in decoder.parameters()} == {torch.bfloat16}
    state = read_state_dict(wan21_small_case.official_path)
    assert torch.equal(
        decoder.network.conv_in.weight, state["decoder.conv1.weight"].to(torch.bfloat16)
    )


@pytest.mark.parametrize("version", VERSIONS, ids=str)
def test_official_rename_helper_round_trips_known_names(version: Version) -> None:
    """The test's own rename (used to write official files) agrees with the spot check."""
    diffusers = pytest.importorskip("diffusers")
    with torch.device("meta"):
        vae = diffusers.AutoencoderKLWan(**version.diffusers_arguments())
    renamed = version.to_official(dict(vae.state_dict()), num_res_blocks=2)
    for key, shape in PUBLISHED_OFFICIAL_KEYS[version.name].items():
        assert tuple(renamed[key].shape) == shape, key


# --- Unusable paths and hostile files: every one is a CheckpointError, in bounded memory.


def test_unusable_paths_are_checkpoint_errors_naming_the_path(tmp_path: Path) -> None:
    loop_a, loop_b = tmp_path / "loop_a.pth", tmp_path / "loop_b.pth"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    dangling = tmp_path / "dangling.pth"
    dangling.symlink_to(tmp_path / "nowhere.pth")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"x")
    cases = {
        tmp_path / "missing.pth": "does not exist",
        loop_a: "symbolic link loop",
        dangling: "dangling symbolic link",
        tmp_path: "is a directory",
        not_a_dir / "weights.pth": "not a directory",
    }
    if Path("/dev/null").exists():
        cases[Path("/dev/null")] = "character device"
    for path, reason in cases.items():
        with pytest.raises(CheckpointError) as caught:
            _small_config(path).setup()
        message = str(caught.value)
        assert str(path) in message and reason in message, message
        assert "expected a checkpoint file" in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_a_checkpoint_error(wan21_small_case: ParityCase, tmp_path: Path) -> None:
    locked = tmp_path / "locked.pth"
    locked.write_bytes(wan21_small_case.official_path.read_bytes())
    locked.chmod(0)
    with pytest.raises(CheckpointError, match="permission denied"):
        _small_config(locked).setup()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "Wan2.1_VAE.pth"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            _small_config(fifo).setup()
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            outcome.append(error)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=30)
    if worker.is_alive():  # blocked in open() or read(): a writer releases it
        os.close(os.open(fifo, os.O_WRONLY))
        worker.join(timeout=30)
        pytest.fail("loading a named pipe blocked")
    assert len(outcome) == 1 and isinstance(outcome[0], CheckpointError), outcome
    assert "named pipe" in str(outcome[0]) and str(fifo) in str(outcome[0])


#: Expansion of the zip bomb: 64 MiB of zeros deflate to ~66 kB.
BOMB_BYTES = 64 * 2**20


def _zip_bomb(path: Path, lie_about_size: bool = False) -> Path:
    """A torch.save archive of one 64 MiB zero tensor, re-zipped with deflate.

    With ``lie_about_size`` the tensor record's declared uncompressed size (local and
    central headers) says 1 kB: a bomb that passes a directory check, for the
    reader's own bound on declared sizes to stop.
    """
    raw = io.BytesIO()
    torch.save({"decoder.conv1.weight": torch.zeros(BOMB_BYTES, dtype=torch.uint8)}, raw)
    raw.seek(0)
    with zipfile.ZipFile(raw) as source, zipfile.ZipFile(
        path, "w", zipfile.ZIP_DEFLATED, compresslevel=9
    ) as bomb:
        for member in source.infolist():
            bomb.writestr(member.filename, source.read(member))
    if lie_about_size:
        data = bytearray(path.read_bytes())
        with zipfile.ZipFile(path) as bomb:
            member = next(m for m in bomb.infolist() if m.filename.endswith("/data/0"))
        struct.pack_into("<I", data, member.header_offset + 22, 1024)  # local header
        name = member.filename.encode()
        central = data.index(b"PK\x01\x02")
        while data[central + 46 : central + 46 + len(name)] != name:
            central = data.index(b"PK\x01\x02", central + 4)
        struct.pack_into("<I", data, central + 24, 1024)  # central directory entry
        path.write_bytes(bytes(data))
    return path


_MEASURE_LOAD = """
import json, sys, torch
from reference_decoders.wan import CheckpointError, WanVAEDecoderConfig
def peak():
    # This process's peak resident memory. Not ru_maxrss: Linux carries that across
    # exec from the parent, so it would start at pytest's own peak.
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024
WanVAEDecoderConfig(base_dim=8, num_res_blocks=1, device="cpu").setup()  # warm up
result = {}
for path in sys.argv[1:]:
    before = peak()
    try:
        WanVAEDecoderConfig(checkpoint_path=path, base_dim=8, num_res_blocks=1, device="cpu").setup()
        error = None
    except CheckpointError as caught:
        error = str(caught)
    result[path] = {"error": error, "growth": peak() - before}
before = peak()
try:
    torch.load(sys.argv[1], weights_only=True)  # the control: what an unchecked load costs
except Exception as error:
    result["unchecked_error"] = repr(error)
result["unchecked_growth"] = peak() - before
print(json.dumps(result))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc (VmHWM)")
def test_zip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    bomb = _zip_bomb(tmp_path / "bomb.pth")
    liar = _zip_bomb(tmp_path / "liar.pth", lie_about_size=True)
    assert bomb.stat().st_size < BOMB_BYTES // 500

    # A fresh process, so its peak resident memory is not an earlier test's.
    completed = subprocess.run(
        [sys.executable, "-c", _MEASURE_LOAD, str(bomb), str(liar)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    for path, expected in ((bomb, "zip directory declares"), (liar, "could not read")):
        outcome = result[str(path)]
        assert outcome["error"] is not None and expected in outcome["error"], outcome
        assert str(path) in outcome["error"]
        assert outcome["growth"] < BOMB_BYTES / 8, outcome
    # The measurement can see the expansion: the unchecked load (run last, so its peak
    # masks nothing) grows by the bomb's size.
    assert result["unchecked_growth"] > 0.9 * BOMB_BYTES, result


def test_archive_over_the_network_budget_is_refused_before_reading(
    small_case: ParityCase, tmp_path: Path
) -> None:
    """Stored (not compressed) but far more than the small decoder can use (the budget
    follows the configured network): an architecture mix-up, refused from the directory
    rather than read whole."""
    padded = read_state_dict(small_case.official_path)
    megabytes = 20 if small_case.version is WAN21 else 24
    padded["encoder.padding"] = torch.zeros(megabytes // 4 * 2**20)
    path = _save_official(padded, tmp_path / "padded.pth")
    assert read_state_dict(path)  # fine without a budget: nothing expands
    with pytest.raises(CheckpointError, match="zip directory declares .* more than"):
        _config(small_case.version, path).setup()


def _safetensors_file(path: Path, header: object, data: bytes = b"", length: int | None = None) -> Path:
    text = json.dumps(header).encode()
    size = len(text) if length is None else length
    path.write_bytes(size.to_bytes(8, "little") + text + data)
    return path


def test_safetensors_header_is_checked_before_any_tensor_is_read(
    wan21_small_case: ParityCase, tmp_path: Path
) -> None:
    f32 = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    cases = {
        "claims 1099511627776 bytes": ({"w": f32}, bytes(8), 2**40),
        "claims bytes 0..4000000000000": (
            {"w": {"dtype": "F32", "shape": [10**12], "data_offsets": [0, 4 * 10**12]}},
            bytes(8),
            None,
        ),
        "claims 12 bytes": ({"w": {**f32, "data_offsets": [0, 12]}}, bytes(12), None),
        "duplicate keys": (None, bytes(8), None),
        "dtype 'F128'": ({"w": {**f32, "dtype": "F128"}}, bytes(8), None),
        "expected a list of sizes": ({"w": {**f32, "shape": [-2]}}, bytes(8), None),
        "is not {dtype, shape, data_offsets}": ({"w": [1, 2]}, bytes(8), None),
        "not valid JSON": ("{", b"", None),
    }
    for index, (reason, (header, data, length)) in enumerate(cases.items()):
        path = tmp_path / f"case{index}.safetensors"
        if header is None:  # JSON with a repeated name, written by hand
            text = b'{"w": %s, "w": %s}' % (json.dumps(f32).encode(), json.dumps(f32).encode())
            path.write_bytes(len(text).to_bytes(8, "little") + text + data)
        elif isinstance(header, str):
            path.write_bytes(len(header).to_bytes(8, "little") + header.encode())
        else:
            _safetensors_file(path, header, data, length)
        with pytest.raises(CheckpointError) as caught:
            read_state_dict(path)
        assert reason in str(caught.value) and str(path) in str(caught.value), str(caught.value)

    padded = tmp_path / "padded.safetensors"
    _safetensors_file(
        padded, {"w": {"dtype": "U8", "shape": [20 * 2**20], "data_offsets": [0, 20 * 2**20]}},
        bytes(20 * 2**20),
    )
    assert read_state_dict(padded)["w"].shape == (20 * 2**20,)  # the file's size is the default
    with pytest.raises(CheckpointError, match="header declares 20971520 bytes .* more than"):
        read_state_dict(padded, max_bytes=1000)

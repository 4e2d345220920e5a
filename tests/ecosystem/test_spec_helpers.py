"""Spec helpers for real decoders: seeded random weights for meta-built networks
(conformance.helpers.materialize_random), declared output adapters (spec faults are
named as such), and decoders that pipelines call under torch.inference_mode."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from conformance import DecoderSpec, certify
from conformance.helpers import is_norm_like, materialize_random, norm_role, placeholder_checkpoint
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder, toy_spec

CHECKS = ["decoded_sizes_match_mappers", "output_layout_dtype_device", "chunked_decode_matches_full_decode"]


def _meta_network() -> nn.Module:
    with torch.device("meta"):
        return nn.Sequential(
            nn.Conv3d(16, 64, kernel_size=3, padding=1),
            nn.GroupNorm(8, 64),
            nn.SiLU(),
            nn.Conv3d(64, 64, kernel_size=3, padding=1),
            nn.BatchNorm3d(64),
            nn.SiLU(),
            nn.ConvTranspose3d(64, 32, kernel_size=(1, 2, 2), stride=(1, 2, 2)),
            nn.Conv3d(32, 3, kernel_size=1),
        )


def test_materialize_random_gives_every_meta_tensor_seeded_values_at_fan_in_scale() -> None:
    network = materialize_random(_meta_network(), seed=5)
    tensors = list(network.parameters()) + list(network.buffers())
    assert not any(t.is_meta for t in tensors)
    conv = network[3]
    fan_in = 64 * 27
    assert conv.weight.std().item() == pytest.approx(1 / math.sqrt(fan_in), rel=0.05)
    assert conv.bias.abs().max().item() <= 1 / math.sqrt(fan_in)
    transposed = network[6]
    assert transposed.weight.std().item() == pytest.approx(1 / math.sqrt(64 * 4), rel=0.05)
    for norm in (network[1], network[4]):
        assert torch.equal(norm.weight, torch.ones_like(norm.weight))
        assert torch.equal(norm.bias, torch.zeros_like(norm.bias))
    assert torch.equal(network[4].running_var, torch.ones(64))
    assert network[4].num_batches_tracked.item() == 0

    # Outputs carry signal: unit-variance latents give pixels of order one, not ~0 or ~1e3.
    latents = torch.randn(1, 16, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = network.eval()(latents)
    assert 0.1 < out.std().item() < 10


def test_materialize_random_is_reproducible_and_seeded() -> None:
    a = materialize_random(_meta_network(), seed=5)
    b = materialize_random(_meta_network(), seed=5)
    c = materialize_random(_meta_network(), seed=6)
    for (name, x), (_, y), (_, z) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(x, y), name
        if x.is_floating_point() and x.dim() >= 2:
            assert not torch.equal(x, z), name


def test_only_meta_keeps_loaded_weights_and_dtype_device_apply() -> None:
    network = _meta_network()
    loaded = torch.full((3, 32, 1, 1, 1), 0.5)
    network[7].weight = nn.Parameter(loaded.clone())
    materialize_random(network, seed=1, only_meta=True, dtype=torch.float64)
    assert torch.equal(network[7].weight, loaded)  # a real tensor: left as loaded
    assert network[0].weight.dtype == torch.float64 and network[0].weight.device.type == "cpu"
    assert network[4].num_batches_tracked.dtype == torch.int64  # integer buffers keep their dtype


# ----------------------------------------------------------------------- output adapters


@dataclass
class Clip:
    """A video object, as pipelines hand them to writers."""

    pixels: torch.Tensor  # [B, T, C, H, W]
    fps: float = 24.0


class ClipToy(ToyVideoDecoder):
    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> Clip:  # type: ignore[override]
        return Clip(super().forward(input, autoregressive_index, cache).permute(0, 2, 1, 3, 4))


class Uint8Toy(ToyVideoDecoder):
    """Returns ``[T, H, W, C]`` uint8 frames of the (single) batch element."""

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        video = super().forward(input, autoregressive_index, cache)[0]
        return ((video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 3, 0)


def _toy(cls: type, **fields: Any) -> DecoderSpec:
    config = ToyDecoderConfig()
    config._target = cls
    return toy_spec(name=cls.__name__, factory=config.setup, **fields)


def test_a_video_object_certifies_through_its_declared_adapter() -> None:
    without = certify(_toy(ClipToy), profile="quick", seed=2, check_ids=CHECKS)
    assert all(r.status == "failed" for r in without.results)
    assert "returned Clip, expected a torch.Tensor" in without.results[0].message

    spec = _toy(ClipToy, output_layout="BTCHW", output_adapter=lambda clip: clip.pixels)
    cert = certify(spec, profile="quick", seed=2, check_ids=CHECKS)
    assert [r.status for r in cert.results] == ["passed"] * len(CHECKS), [r.message for r in cert.results]


def test_a_uint8_hwc_array_adapts_to_a_batched_tensor() -> None:
    def to_bcthw(frames: torch.Tensor) -> torch.Tensor:
        return frames.permute(3, 0, 1, 2).unsqueeze(0).to(torch.float32) / 127.5 - 1

    spec = _toy(Uint8Toy, output_adapter=to_bcthw)
    cert = certify(spec, profile="quick", seed=2, check_ids=CHECKS[:2])
    assert [r.status for r in cert.results] == ["passed", "passed"], [r.message for r in cert.results]


def test_a_failing_adapter_is_a_spec_fault_not_a_decoder_failure() -> None:
    def broken(clip: Clip) -> torch.Tensor:
        return clip.frames  # type: ignore[attr-defined]  # the field is called pixels

    cert = certify(_toy(ClipToy, output_adapter=broken), profile="quick", seed=2, check_ids=CHECKS[:1])
    result = cert.results[0]
    assert result.status == "failed" and result.kind == "spec fault", result.message
    assert result.message.startswith("spec fault: DecoderSpec.output_adapter")
    assert "AttributeError" in result.message and "fix the adapter in the spec" in result.message

    cert = certify(_toy(ClipToy, output_adapter=lambda clip: clip), profile="quick", seed=2, check_ids=CHECKS[:1])
    assert cert.results[0].kind == "spec fault"
    assert "returned Clip" in cert.results[0].message and "must return the output tensor" in cert.results[0].message
    assert not cert.certified


def test_the_adapter_must_be_callable() -> None:
    with pytest.raises(ValueError, match="output_adapter must be a callable"):
        _toy(ClipToy, output_adapter="pixels")


# ----------------------------------------------------------------------- inference mode


@dataclass(kw_only=True)
class CountingCache(ToyDecoderCache):
    frames_seen: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.int64))


class InferenceModeToy(ToyVideoDecoder):
    """Written for a pipeline that runs under ``torch.inference_mode()``: its cache is made
    of inference tensors and forward updates them in place (legal only in that mode)."""

    @torch.inference_mode()
    def initialize_autoregressive_cache(self, **context: Any) -> CountingCache:
        return CountingCache()

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        out = super().forward(input, autoregressive_index, cache)
        cache.frames_seen.add_(input.shape[2])
        return out


def test_decoders_called_under_inference_mode_certify_with_the_spec_option() -> None:
    checks = CHECKS + ["forked_cache_continues_identically", "outputs_survive_later_steps"]
    today = certify(_toy(InferenceModeToy), profile="quick", seed=2, check_ids=checks[:1])
    assert today.results[0].status == "failed"
    assert "Inplace update to inference tensor outside InferenceMode" in today.results[0].message

    cert = certify(_toy(InferenceModeToy, inference_mode=True), profile="quick", seed=2, check_ids=checks)
    assert {r.check_id: r.status for r in cert.results} == dict.fromkeys(checks, "passed"), [
        r.message for r in cert.results
    ]


class GradModeRecordingToy(ToyVideoDecoder):
    """Records whether autograd was on in each cache initialization and forward call."""

    grad_seen: list[bool] = []

    def initialize_autoregressive_cache(self, **context: Any) -> ToyDecoderCache:
        GradModeRecordingToy.grad_seen.append(torch.is_grad_enabled())
        return super().initialize_autoregressive_cache(**context)

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        GradModeRecordingToy.grad_seen.append(torch.is_grad_enabled())
        return super().forward(input, autoregressive_index, cache)


@pytest.mark.parametrize("inference_mode", [False, True])
def test_the_decoder_never_runs_with_autograd_on(inference_mode: bool) -> None:
    # torch.inference_mode(False) turns autograd back on inside no_grad; the kit must not
    # use it for specs that do not ask for inference mode.
    GradModeRecordingToy.grad_seen.clear()
    cert = certify(
        _toy(GradModeRecordingToy, inference_mode=inference_mode), profile="quick", seed=2, check_ids=CHECKS[:1]
    )
    assert cert.results[0].status == "passed", cert.results[0].message
    assert GradModeRecordingToy.grad_seen and not any(GradModeRecordingToy.grad_seen)


# ----------------------------------------------------------------------- norm-like modules


class RMS_norm(nn.Module):  # noqa: N801 - named as the Wan VAE code bases name theirs
    """Shaped like the Wan VAE's RMS norm: a broadcast-shaped scale ``gamma`` [C, 1, 1, 1]
    and an optional shift ``bias``; its docstring-level promise is weight 1, bias 0."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        with torch.device("meta"):
            self.gamma = nn.Parameter(torch.empty(dim, 1, 1, 1))
            self.bias = nn.Parameter(torch.empty(dim, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=1) * x.shape[1] ** 0.5 * self.gamma + self.bias


class Scale(nn.Module):
    """No ``norm`` in its class name: a norm only where it is stored under a norm's name."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        with torch.device("meta"):
            self.weight = nn.Parameter(torch.empty(dim))


class MixingNorm(nn.Module):
    """``norm`` in the class name, but a matrix and an unknown name: no identity role."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        with torch.device("meta"):
            self.weight = nn.Parameter(torch.empty(dim, dim))
            self.mix = nn.Parameter(torch.empty(dim))


def _norms_network() -> nn.Module:
    network = nn.Module()
    network.rms = RMS_norm(8)
    network.norm_out = Scale(8)  # a norm by its attribute name
    network.scale = Scale(8)  # the same class elsewhere: not a norm
    network.mixing = MixingNorm(8)
    with torch.device("meta"):
        network.norm_proj = nn.Linear(8, 8)  # a linear layer is never a norm, whatever its name
        network.layer_norm_2d = nn.LayerNorm([4, 8])  # torch's norms: any shape
    return network


def test_norm_like_modules_get_their_identity_by_the_documented_rule() -> None:
    network = materialize_random(_norms_network(), seed=3)
    ones, zeros = torch.ones, torch.zeros
    assert torch.equal(network.rms.gamma, ones(8, 1, 1, 1))  # per-channel, broadcast-shaped
    assert torch.equal(network.rms.bias, zeros(8, 1, 1, 1))
    assert torch.equal(network.norm_out.weight, ones(8))
    assert torch.equal(network.layer_norm_2d.weight, ones(4, 8))
    assert torch.equal(network.layer_norm_2d.bias, zeros(4, 8))
    # Not norms, or not a norm's scale or shift: drawn like any other tensor.
    for tensor in (network.scale.weight, network.mixing.weight, network.mixing.mix,
                   network.norm_proj.weight, network.norm_proj.bias):
        assert tensor.std().item() > 0.01 and not torch.equal(tensor, torch.ones_like(tensor))


def test_the_norm_rule_names_each_case() -> None:
    network = _norms_network()
    assert is_norm_like(network.rms) and is_norm_like(network.mixing)
    assert is_norm_like(network.norm_out, "norm_out") and not is_norm_like(network.scale, "scale")
    assert not is_norm_like(network.norm_proj, "norm_proj")
    assert is_norm_like(nn.GroupNorm(2, 4))
    assert norm_role(network.rms, "rms", "gamma", network.rms.gamma) == "scale"
    assert norm_role(network.rms, "rms", "bias", network.rms.bias) == "shift"
    assert norm_role(network.mixing, "mixing", "weight", network.mixing.weight) is None
    assert norm_role(network.mixing, "mixing", "mix", network.mixing.mix) is None


def test_diffusers_wan_rms_norm_gets_weight_one() -> None:
    # diffusers' Wan VAE names its norm WanRMS_norm (gamma [C, 1, 1, 1] or [C, 1, 1]).
    pytest.importorskip("diffusers")
    from diffusers.models.autoencoders.autoencoder_kl_wan import WanRMS_norm

    with torch.device("meta"):
        block = nn.Sequential(WanRMS_norm(8, images=False), nn.Conv3d(8, 8, 1))
    materialize_random(block, seed=1)
    assert torch.equal(block[0].gamma, torch.ones_like(block[0].gamma))
    assert block[1].weight.std().item() > 0.01


# ----------------------------------------------------------------------- kept tensors move


class WithComputedBuffer(nn.Module):
    """Built like framework decoders: weights on meta, a buffer computed in __init__."""

    def __init__(self) -> None:
        super().__init__()
        with torch.device("meta"):
            self.conv = nn.Conv2d(4, 4, 1)
        self.register_buffer("mean", torch.arange(4, dtype=torch.float32), persistent=False)
        self.register_buffer("steps", torch.tensor(7))


def test_only_meta_moves_kept_tensors_with_the_decoder_and_keeps_their_values() -> None:
    module = materialize_random(WithComputedBuffer(), seed=1, only_meta=True, dtype=torch.float64)
    assert module.mean.dtype == torch.float64 and torch.equal(module.mean, torch.arange(4, dtype=torch.float64))
    assert module.steps.dtype == torch.int64 and module.steps.item() == 7  # integers keep their dtype
    assert module.conv.weight.dtype == torch.float64

    # A device move, checked without a GPU: the meta device stands in for CUDA here.
    module = materialize_random(WithComputedBuffer(), seed=1, only_meta=True, device="meta")
    assert {t.device.type for t in [*module.parameters(), *module.buffers()]} == {"meta"}


@pytest.mark.cuda
def test_only_meta_leaves_no_tensor_on_the_cpu_of_a_cuda_decoder() -> None:
    module = materialize_random(WithComputedBuffer(), seed=1, only_meta=True, device="cuda")
    assert {t.device.type for t in [*module.parameters(), *module.buffers()]} == {"cuda"}
    assert torch.equal(module.mean.cpu(), torch.arange(4, dtype=torch.float32))


# ----------------------------------------------------------------------- placeholder checkpoints


def test_placeholder_checkpoints_are_empty_files_of_the_named_format(tmp_path: Path) -> None:
    safetensors_torch = pytest.importorskip("safetensors.torch")
    with placeholder_checkpoint("model-lighttae.safetensors") as path:
        assert Path(path).name == "model-lighttae.safetensors"
        assert safetensors_torch.load_file(path) == {}
        assert safetensors_torch.load(Path(path).read_bytes()) == {}
    assert not Path(path).exists() and not Path(path).parent.exists()  # nothing left behind
    for suffix in (".pt", ".pth", ".ckpt", ".bin"):
        with placeholder_checkpoint(f"weights{suffix}", directory=tmp_path) as pickle_path:
            assert Path(pickle_path).parent == tmp_path
            assert torch.load(pickle_path, weights_only=True) == {}
        assert not Path(pickle_path).exists() and tmp_path.is_dir()  # the caller's folder stays


def test_a_placeholder_is_removed_when_the_build_raises() -> None:
    with pytest.raises(RuntimeError, match="build failed"):
        with placeholder_checkpoint("model.safetensors") as path:
            raise RuntimeError("build failed")
    assert not Path(path).parent.exists()


@pytest.mark.parametrize("name", ["", "sub/model.safetensors", "..", "model.onnx", "model"])
def test_a_placeholder_needs_a_plain_name_with_a_known_format(name: str) -> None:
    with pytest.raises(ValueError, match="placeholder_checkpoint"):
        with placeholder_checkpoint(name):
            pass

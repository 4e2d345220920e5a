"""The Wan feature-cache adapter (``conformance.ecosystem.wan_feat_cache``) and diffusers'
``AutoencoderKLWan`` certified through it (``conformance.ecosystem.diffusers_wan``).

Default tier: the adapter's output is diffusers' own ``decode()`` under any chunk plan,
its contract (mappers, indices, caches, no state on the wrapped module), the checks that
matter most on both configurations, what a multi-frame first chunk does without the
adapter's split, and the reproductions of ``docs/ecosystem/diffusers.md``. Slow tier: every
check through ``python -m conformance certify``.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

pytest.importorskip("diffusers")

from conformance import certify, run_check  # noqa: E402
from conformance.bases import StreamingVideoDecoder  # noqa: E402
from conformance.ecosystem import diffusers_wan  # noqa: E402
from conformance.ecosystem.wan_feat_cache import WanFeatCache, WanFeatCacheDecoder, wrap  # noqa: E402
from tests.support import REPO_ROOT  # noqa: E402
from tests.support.fenced import reproduction  # noqa: E402

PLANS = ([6], [1, 5], [3, 3], [2, 1, 1, 2], [1] * 6, [4, 1, 1])
SIDE = {"wan2.1": 4, "wan2.2": 2}


@pytest.fixture(scope="module", params=diffusers_wan.MODELS)
def model(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def decoder(model: str) -> WanFeatCacheDecoder:
    return diffusers_wan.build(model)


def latents(decoder: WanFeatCacheDecoder, frames: int, side: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(1, decoder.config.latent_channels, frames, side, side, generator=generator)


def decode(decoder: nn.Module, z: torch.Tensor, plan: list[int]) -> torch.Tensor:
    cache, out, start = decoder.initialize_autoregressive_cache(), [], 0
    for index, n in enumerate(plan):
        out.append(decoder(z[:, :, start:start + n], autoregressive_index=index, cache=cache))
        start += n
    return torch.cat(out, dim=2)


@torch.no_grad()
def test_the_adapter_decodes_what_diffusers_decode_does_under_any_chunk_plan(model: str, decoder: WanFeatCacheDecoder) -> None:
    z = latents(decoder, 6, SIDE[model])
    reference = decoder.vae.decode(z).sample  # diffusers' own frame-by-frame decode
    assert reference.shape[2] == 21
    for plan in PLANS:
        assert (decode(decoder, z, plan) - reference).abs().max().item() < 1e-5, plan


def test_the_adapter_is_a_streaming_video_decoder_with_honest_mappers(decoder: WanFeatCacheDecoder) -> None:
    assert isinstance(decoder, StreamingVideoDecoder)
    assert decoder.temporal_compression_ratio == 4
    assert decoder.spatial_compression_ratio == (16 if decoder.config.latent_channels == 48 else 8)
    assert [decoder.get_output_temporal_size(0, n) for n in (1, 2, 3)] == [1, 5, 9]
    assert [decoder.get_output_temporal_size(5, n) for n in (1, 2)] == [4, 8]
    assert decoder.get_input_temporal_size(0, 9) == 3 and decoder.get_input_temporal_size(1, 8) == 2
    for call in (lambda: decoder.get_output_temporal_size(0, 0), lambda: decoder.get_output_temporal_size(1, -1),
                 lambda: decoder.get_input_temporal_size(0, 4), lambda: decoder.get_input_temporal_size(1, 3),
                 lambda: decoder.get_input_temporal_size(1, 0)):
        with pytest.raises(ValueError):
            call()


@torch.no_grad()
def test_rollouts_live_in_their_caches_and_nothing_stays_on_the_module(model: str) -> None:
    decoder = diffusers_wan.build(model)  # a fresh one: diffusers' decode() (used above) keeps state on it
    before = {name: value for name, value in vars(decoder.vae).items() if not name.startswith("_modules")}
    z = latents(decoder, 3, SIDE[model])
    cache = decoder.initialize_autoregressive_cache(height=4, width=4)  # context is accepted
    assert isinstance(cache, WanFeatCache)
    first = decoder(z[:, :, :2], autoregressive_index=0, cache=cache)
    fork = copy.deepcopy(cache)
    second = decoder(z[:, :, 2:], autoregressive_index=1, cache=cache)
    assert torch.equal(decoder(z[:, :, 2:], autoregressive_index=1, cache=fork), second)
    assert cache.next_index == 2 and first.shape[2] == 5 and second.shape[2] == 4
    assert not hasattr(decoder.vae, "_feat_map") and not hasattr(decoder.vae, "_conv_idx")
    after = {name: value for name, value in vars(decoder.vae).items() if not name.startswith("_modules")}
    assert after.keys() == before.keys()


@torch.no_grad()
def test_calls_that_cannot_continue_a_rollout_are_refused_and_leave_it_usable(model: str, decoder: WanFeatCacheDecoder) -> None:
    z = latents(decoder, 3, SIDE[model])
    cache = decoder.initialize_autoregressive_cache()
    with pytest.raises(ValueError, match="needs? .*cache|continues a rollout"):
        decoder(z, autoregressive_index=1)
    with pytest.raises(ValueError, match="expected autoregressive_index 0"):
        decoder(z, autoregressive_index=1, cache=cache)
    with pytest.raises(ValueError, match="latents shaped"):
        decoder(z.transpose(1, 2), autoregressive_index=0, cache=cache)
    with pytest.raises(TypeError, match="WanFeatCache"):
        decoder(z, autoregressive_index=0, cache={"feat_map": []})
    with pytest.raises(TypeError, match="must be an int"):
        decoder(z, autoregressive_index=0.0, cache=cache)
    decoder(z[:, :, :1], autoregressive_index=0, cache=cache)
    snapshot = list(cache.feat_map)
    with pytest.raises(ValueError, match="latent size"):
        decoder(latents(decoder, 1, SIDE[model] * 2), autoregressive_index=1, cache=cache)
    assert cache.next_index == 1 and all(a is b for a, b in zip(cache.feat_map, snapshot))
    assert decoder(z[:, :, 1:], autoregressive_index=1, cache=cache).shape[2] == 8


@torch.no_grad()
def test_a_pipeline_layout_gives_the_same_video() -> None:
    channels_first = diffusers_wan.build("wan2.1")
    frames_first = wrap(channels_first.vae, layout="BTCHW")
    z = latents(channels_first, 3, 4)
    assert torch.equal(decode(channels_first, z, [2, 1]).transpose(1, 2),
                       torch.cat([frames_first(z[:, :, :2].transpose(1, 2), 0, c := frames_first.initialize_autoregressive_cache()),
                                  frames_first(z[:, :, 2:].transpose(1, 2), 1, c)], dim=1))


class OfficialStyle(nn.Module):
    """Laid out like the official Wan 2.1 VAE (``wan/modules/vae.py``): the conv before the
    decoder is ``conv2``, and the decoder takes no ``first_chunk`` keyword."""

    class Decoder(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor, feat_cache: Any = None, feat_idx: list[int] = [0]) -> torch.Tensor:  # noqa: B006 - as the official code
            return self.inner(x, feat_cache=feat_cache, feat_idx=feat_idx)

    def __init__(self, vae: nn.Module) -> None:
        super().__init__()
        self.conv2 = vae.post_quant_conv
        self.decoder = OfficialStyle.Decoder(vae.decoder)


@torch.no_grad()
def test_the_official_layout_is_found_too() -> None:
    diffusers_21 = diffusers_wan.build("wan2.1")
    official = wrap(OfficialStyle(diffusers_21.vae))
    z = latents(diffusers_21, 4, 4)
    assert torch.equal(decode(official, z, [2, 1, 1]), decode(diffusers_21, z, [2, 1, 1]))
    without_conv = nn.Module()
    without_conv.decoder = diffusers_21.vae.decoder
    with pytest.raises(TypeError, match="conv before the decoder"):
        wrap(without_conv)
    with pytest.raises(TypeError, match="no decoder module at .decoder"):
        wrap(nn.Module())


CHECKS = ["chunked_decode_matches_full_decode", "rollout_state_machine", "interleaved_rollouts_are_independent"]


@pytest.mark.parametrize("target", ["wan21_small_cpu", "wan22_small_cpu"])
def test_the_seam_and_rollout_checks_pass_through_the_adapter(target: str) -> None:
    spec = getattr(diffusers_wan, target)()
    cert = certify(spec, profile="quick", seed=11, check_ids=CHECKS)
    assert {r.check_id: r.status for r in cert.results} == dict.fromkeys(CHECKS, "passed"), [
        r.message for r in cert.results
    ]


def test_a_multi_frame_first_chunk_without_the_split_is_caught() -> None:
    wan21 = run_check(diffusers_wan.wan21_first_chunk_as_is_small_cpu(), "decoded_sizes_match_mappers", profile="quick", seed=3)
    assert wan21.status == "failed" and wan21.kind == "broken promise", wan21.message
    assert re.search(r"forward returned (\d+) pixel frames but get_output_temporal_size\(0, \1\) = ", wan21.message)
    wan22 = run_check(diffusers_wan.wan22_first_chunk_as_is_small_cpu(), "decoded_sizes_match_mappers", profile="quick", seed=3)
    assert wan22.status == "failed" and wan22.kind == "decoder error", wan22.message
    assert "RuntimeError: The size of tensor a" in wan22.message


def test_the_reproductions_on_the_diffusers_page_hold() -> None:
    page = (REPO_ROOT / "docs" / "ecosystem" / "diffusers.md").read_text()
    program, printed = reproduction(page, "## Reproduce it without the kit")
    assert program.count("AutoencoderKLWan(") == 2 and printed.count("\n") == 5
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == printed


# ----------------------------------------------------------------------- slow: every check


@pytest.mark.slow
def test_diffusers_certifies_through_the_adapter_and_not_as_is(tmp_path: Path) -> None:
    targets = [f"conformance.ecosystem.diffusers_wan:{name}" for name in (
        "wan21_small_cpu", "wan22_small_cpu", "wan21_first_chunk_as_is_small_cpu", "wan22_first_chunk_as_is_small_cpu")]
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "conformance", "certify", *targets, "--profile", "quick", "--seed", "5",
                           "--report", str(report)], capture_output=True, text=True, timeout=1200, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    runs = {run["decoder"]: run for run in json.loads(report.read_text())["decoders"]}
    failed = {name: sorted(c["id"] for c in run["checks"] if c["status"] == "failed") for name, run in runs.items()}
    assert runs["diffusers-wan2.1-vae-feat-cache-small-cpu"]["certified"], failed
    assert runs["diffusers-wan2.2-vae-feat-cache-small-cpu"]["certified"], failed
    # The frame count of a multi-frame first chunk is wrong: the size, layout, seam and
    # rollout checks see it. cache_none_matches_fresh_cache passes: its one-shot calls are
    # judged against the same call with a fresh cache, and its control rollout shows the
    # seam bug is not the one-shot call's doing.
    assert failed["diffusers-wan2.1-vae-feat-cache-small-cpu-first-chunk-as-is"] == sorted([
        "decoded_sizes_match_mappers", "output_layout_dtype_device", "chunked_decode_matches_full_decode",
        "long_rollouts_match_full_decode", "rollout_state_machine"])
    as_is_22 = runs["diffusers-wan2.2-vae-feat-cache-small-cpu-first-chunk-as-is"]["checks"]
    assert len(failed["diffusers-wan2.2-vae-feat-cache-small-cpu-first-chunk-as-is"]) >= 10
    assert all("RuntimeError: The size of tensor a" in c["message"] for c in as_is_22 if c["kind"] == "decoder error")

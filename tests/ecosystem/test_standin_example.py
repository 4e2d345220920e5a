"""The worked example (``examples/flashdreams_standin``): a decoder built the way
frameworks build theirs, certified, with each seeded real-world bug caught by the check
meant for it and a message that points at the fix. (Installed next to the kit in a
fresh environment: ``test_side_by_side_install.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conformance import run_check
from conformance.checks.harness.latents import LatentSequence

from tests.support.standin import standin_modules

specs, video = standin_modules("standin_video.specs", "standin_video.decoder")
SEED = 11


@pytest.mark.parametrize("flag", sorted(specs.BUGS))
def test_each_seeded_bug_is_caught_with_a_message_pointing_at_the_fix(flag: str) -> None:
    check_id, words = specs.BUGS[flag]
    result = run_check(specs.bug_spec(flag), check_id, profile="quick", seed=SEED)
    assert result.status == "failed", result.message
    assert all(word in result.message for word in words), result.message
    # The same check passes on the decoder without the bug: the bug is what it caught.
    assert run_check(specs.standin_spec(), check_id, profile="quick", seed=SEED).status == "passed"


def test_the_upsampler_bug_breaks_uneven_plans_only() -> None:
    spec = specs.bug_spec("bug_upsampler_keeps_last_chunk")
    decoder = spec.factory()
    latents = torch.randn(1, 4, 6, 3, 4, generator=torch.Generator().manual_seed(0))

    def decode(plan: list[int]) -> torch.Tensor:
        cache, outputs, begin = decoder.initialize_autoregressive_cache(), [], 0
        for index, n in enumerate(plan):
            outputs.append(decoder(input=latents[:, :, begin : begin + n], autoregressive_index=index, cache=cache).frames)
            begin += n
        return torch.cat(outputs, dim=1)

    with torch.no_grad():
        full = decode([6])
        assert torch.allclose(decode([2, 2, 2]), full, atol=1e-5)
        assert not torch.allclose(decode([2, 1, 1, 2]), full, atol=1e-3)


def test_the_network_is_built_on_meta_and_loaded_from_a_checkpoint(tmp_path: Path) -> None:
    unloaded = video.StandinDecoderConfig().setup()
    assert all(p.is_meta for p in unloaded.parameters())

    path = tmp_path / "standin.pt"
    specs.save_random_checkpoint(str(path))
    loaded_spec = specs.from_checkpoint(str(path))
    loaded = loaded_spec.factory()
    random = specs.standin_spec().factory()
    assert not any(p.is_meta for p in loaded.parameters())
    for (name, a), (_, b) in zip(loaded.state_dict().items(), random.state_dict().items()):
        assert torch.equal(a, b), name  # the checkpoint holds the same seeded weights

    result = run_check(loaded_spec, "chunked_decode_matches_full_decode", profile="quick", seed=SEED)
    assert result.status == "passed", result.message


def test_the_video_object_carries_signal() -> None:
    spec = specs.standin_spec()
    decoder = spec.factory()
    latents = torch.randn(1, 4, 3, 3, 4, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = decoder(input=latents, autoregressive_index=0, cache=decoder.initialize_autoregressive_cache())
    assert isinstance(out, video.VideoFrames)
    assert out.frames.shape == (1, 5, 3, 6, 8)  # 1 + 2 * (3 - 1) frames, 2x spatial, BTCHW
    assert 0.05 < out.frames.std().item() < 1
    assert LatentSequence.of(0, 3).length == 3

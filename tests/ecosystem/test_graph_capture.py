"""Graph-captured decoders with real ``torch.cuda.CUDAGraph`` capture and replay.

The same decoders as ``tests/zoo/graph_capture.py`` (whose CPU emulation runs in every
CI run through the zoo tables), rebuilt on CUDA: the kit must catch each broken replay
wrapper with the check meant for it and certify the correct one. The stand-in
framework's decoder (``examples/flashdreams_standin``) is certified with its graph
capture on CUDA too, and its shared-replay bug caught. Skipped without a GPU.
"""

from __future__ import annotations

import pytest
import torch

from conformance import certify, run_check

from tests.zoo import graph_capture
from tests.zoo.conftest import SEED
from tests.support.standin import standin_modules

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CASES = graph_capture.on_device("cuda")


@pytest.mark.parametrize(
    ("spec_factory", "must_fail"),
    [pytest.param(f, m, id=f.__name__) for f, m in CASES],
)
def test_real_cuda_graph_replay_bugs_are_caught_and_the_correct_wrapper_certified(
    spec_factory: object, must_fail: frozenset[str] | None
) -> None:
    spec = spec_factory()  # type: ignore[operator]
    if must_fail is None:
        cert = certify(spec, profile="quick", seed=SEED)
        failed = {r.check_id: r.message for r in cert.results if r.status not in ("passed", "skipped")}
        assert cert.certified, failed
        return
    for check_id in sorted(must_fail):
        result = run_check(spec, check_id, profile="quick", seed=SEED)
        assert result.status == "failed", (check_id, result.status, result.message)


def test_the_standin_decoder_certifies_with_cuda_graph_capture() -> None:
    (specs,) = standin_modules("standin_video.specs")
    spec = specs.standin_spec(device="cuda")
    cert = certify(spec, profile="quick", seed=SEED)
    failed = {r.check_id: r.message for r in cert.results if r.status not in ("passed", "skipped")}
    assert cert.certified, failed

    broken = specs.standin_spec(device="cuda", bug_shared_graph_replay=True)
    result = run_check(broken, "interleaved_rollouts_are_independent", profile="quick", seed=SEED)
    assert result.status == "failed", result.message

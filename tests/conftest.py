"""Settings shared by the whole test suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.cuda`` skips a test on a machine without a CUDA GPU, with one reason.

    The marker does the skipping, so a test says what it needs once, and a GPU run
    (``pytest -m cuda``) selects exactly the tests that need the GPU.
    """
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marked cuda)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Run every test on one torch intra-op thread, restoring the setting at the end.

    The suite decodes tiny tensors (4x4 latents, small configs), where splitting an op
    across threads costs more than the op. On a busy 2-core CI box, spinning OpenMP
    workers competing with other jobs made single decodes up to 100x slower (one toy
    forward: 40 ms with 2 threads against 0.14 ms with 1) and whole directories 3-6x
    slower. Outcomes do not depend on it: the kit compares with tolerances that hold for
    any kernel choice. In-process pytester runs inherit the setting; tests that start
    subprocesses give them OMP_NUM_THREADS=1 themselves.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def _not_in_github_actions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the kit's GitHub Actions output (job summary, ``::error`` annotations) out of
    the suite's own CI job: tests that certify a broken decoder on purpose would otherwise
    annotate the pull request. Tests of that output set the variables themselves."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)

"""Fixtures shared by the delivery tests (plugin, command line, reports)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Decode on one intra-op thread, restoring the setting afterwards.

    The decoders here work on 4x4 latents, where splitting an op across threads costs
    more than the op; on a busy 2-core machine that made these tests several times
    slower. The checks compare with tolerances, so outcomes do not depend on it.
    In-process pytester runs inherit the setting; subprocesses get OMP_NUM_THREADS=1.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Fixtures for the workflow tests: certificates, discovery, the downstream example, xdist."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_intra_op_thread() -> Iterator[None]:
    """Decode on one intra-op thread (tiny decoders: threads only add overhead on a busy
    2-core machine); in-process pytester runs inherit it, subprocesses get OMP_NUM_THREADS=1."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

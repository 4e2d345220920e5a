"""Engine tests decode tiny tensors: one torch thread is as fast and avoids OpenMP
oversubscription (spinning workers slow small ops ~100x) when CI boxes are shared."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)

"""Bitwise equality of tensors: the comparison wherever rounding cannot enter."""

from __future__ import annotations

import torch

__all__ = ["bitwise_equal"]


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same shape, dtype, device and bytes (so NaN payloads and -0.0 count)."""
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        return False
    if a.numel() == 0:
        return True
    a_bytes = a.detach().contiguous().reshape(-1).view(torch.uint8)
    b_bytes = b.detach().contiguous().reshape(-1).view(torch.uint8)
    return bool(torch.equal(a_bytes, b_bytes))

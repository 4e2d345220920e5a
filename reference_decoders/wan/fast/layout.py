"""Which form the fast path runs a causal 3x3x3 conv in (measured rules).

A 3x3x3 causal conv over frames ``t..t+2`` is the 3x3 conv2d of the three frames stacked
along channels. Both forms compute the same function; this only picks the faster one,
counting what each form costs around the conv too: the stacked buffer is written three
times over (``[T, H, W, 3C]``), the conv3d one once (``[T + 2, H, W, C]``).

Measured with cuDNN 9.19, bf16, channels-last (``benchmarks/NOTES.md``, experiment 1 on
an H100 for Wan 2.1's widths; ``benchmarks/kernel_configs.py`` on the decode's own
shapes for Wan 2.2's): the stacked form is much faster for 96 channels (521 vs 244
TFLOP/s at 480x832) and 384 channels (775 vs 596 at 120x208), slower for 192 channels
(561 vs 612 at 240x416) and for a single frame at 384 channels and more (268 vs 402 at
60x104).
"""

from __future__ import annotations

__all__ = ["use_stacked_conv"]


def use_stacked_conv(in_channels: int, frames: int, pixels: int = 0) -> bool:
    """True to run the conv as a time-stacked conv2d over ``frames`` frames of ``pixels``
    pixels, False for conv3d."""
    if in_channels == 192:
        return False
    if frames == 1 and in_channels >= 384:
        return False
    return True

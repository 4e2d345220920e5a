"""Which form the fast path runs a causal 3x3x3 conv in (measured rules).

A 3x3x3 causal conv over frames ``t..t+2`` is the 3x3 conv2d of the three frames stacked
along channels. Both forms compute the same function; this only picks the faster one,
counting what each form costs around the conv too: the stacked buffer is written three
times over (``[T, H, W, 3C]``), the conv3d one once (``[T + 2, H, W, C]``).

Measured with cuDNN 9.19, bf16, channels-last, on an H100 (``benchmarks/kernel_configs.py``
on every conv shape of a one-latent-frame tile, conv and input kernel timed together;
``benchmarks/results/kernel_configs_h100.json``; table in benchmarks/NOTES.md):

- narrow inputs (16, 48, 96 channels): stacked, by far for 96 (2.20 vs 3.74 ms for conv
  plus input at 4x480x832; cuDNN's 3-D kernel reaches 245 TFLOP/s there, its 2-D one 522);
- 384 channels over 2+ frames: stacked (0.70 vs 0.79 ms at 2x120x208);
- 192 channels, 384 over a single frame, and Wan 2.2's 256, 512 and 1024: conv3d (cuDNN's
  3-D kernels run these at 690-817 TFLOP/s, as fast as or faster than the stacked form,
  and its input is written once instead of three times: e.g. 4.59 vs 4.98 ms for 256
  channels at 4x352x640, 4.26 vs 4.48 for 512 at 4x176x320).
"""

from __future__ import annotations

__all__ = ["use_stacked_conv"]


def use_stacked_conv(in_channels: int, frames: int, pixels: int = 0) -> bool:
    """True to run the conv as a time-stacked conv2d over ``frames`` frames of ``pixels``
    pixels, False for conv3d (the rule above; ``pixels`` is not needed by it)."""
    if in_channels < 192:
        return True
    return in_channels == 384 and frames > 1

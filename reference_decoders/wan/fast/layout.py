"""Which convolution layout the fast path runs a causal 3x3x3 conv in.

A 3x3x3 causal conv over frames ``t..t+2`` is the 3x3 conv2d of the three frames stacked
along channels. cuDNN (9.19, H100, bf16, channels-last) runs the stacked 2-D form much
faster for 96 channels (521 vs 244 TFLOP/s at 480x832) and 384 channels (775 vs 596 at
120x208), slower for 192 channels (561 vs 612 at 240x416) and for a single frame at
384 channels (268 vs 402 at 60x104); see benchmarks/NOTES.md, experiment 1. Both forms
compute the same function; this only picks the faster one.
"""

from __future__ import annotations

__all__ = ["implicit_gemm_accepts", "use_implicit_gemm", "use_stacked_conv"]


def use_stacked_conv(in_channels: int, frames: int) -> bool:
    """True to run the conv as a time-stacked conv2d, False for conv3d."""
    if in_channels == 192:
        return False
    if frames == 1 and in_channels >= 384:
        return False
    return True


def implicit_gemm_accepts(in_channels: int) -> bool:
    """Whether the implicit GEMM can run a conv of this input width at all: its channel
    blocks are 16, 32 or 64 wide and must divide the width."""
    return in_channels % 16 == 0


def use_implicit_gemm(in_channels: int, out_channels: int, frames: int) -> bool:
    """True to run a 3x3x3 conv as the Triton implicit GEMM (:mod:`.implicit_gemm`),
    False for cuDNN. Applied only in half precision on Hopper GPUs.

    Measured on an H200 (bf16, every 3x3x3 conv of a Wan 2.1 step and the widest Wan
    2.2 convs; ``benchmarks/conv_kernels.py``, table in ``benchmarks/NOTES.md``): cuDNN
    was faster on every shape of a full decode's one-latent-frame tiles, by 8-45 %,
    and the kernel won only the 192->384 conv of a 3-latent-frame step, with a tile that
    computed wrong values (TMA, 128-byte rows). Until a correct tile beats cuDNN on a
    shape, every conv stays on cuDNN; the kernel runs where a caller asks for it.
    """
    return False

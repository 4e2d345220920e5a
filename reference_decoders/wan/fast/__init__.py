"""Fast execution of the Wan decoder on CUDA: channels-last, Triton-fused norms, cuDNN
convolutions in their fastest form, sub-pixel upsampling, temporal tiling.

:class:`~reference_decoders.wan.fast.network.FastWanNetwork` runs the same function as
the eager :class:`~reference_decoders.wan.model.WanVAEDecoderNetwork` with its weights;
:class:`~reference_decoders.wan.WanVAEDecoder` uses it when :func:`fast_path_support`
says it can (see ``WanVAEDecoderConfig.fast_path``). Triton is imported only then, so
the package imports without it.

- :mod:`.kernels`: the Triton kernels (each conv's whole input buffer and new history
  in one pass, with the residual add, RMS norm and SiLU fused in; the attention's norm;
  bias + residual add; sub-pixel gather with Wan 2.2's spread shortcut).
- :mod:`.layout`: which form a 3x3x3 conv runs in (measured rules).
- :mod:`.weights`: the conv weights rearranged for those forms (plain torch).
- :mod:`.network`: the executor.
"""

from __future__ import annotations

import importlib.util
import os

import torch

__all__ = ["FAST_DTYPES", "fast_path_support"]

#: Dtypes the fast path computes in (the kernels accumulate in float32 and round once).
FAST_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def fast_path_support(device: torch.device, dtype: torch.dtype) -> str | None:
    """None if the fast path can run on ``device`` in ``dtype``, else the reason it cannot.

    It needs CUDA and Triton. On the CPU it runs only under Triton's interpreter
    (``TRITON_INTERPRET=1``), which is for testing the kernels' logic, not for speed.
    """
    if dtype not in FAST_DTYPES:
        return f"it computes in {', '.join(str(d) for d in FAST_DTYPES)}, not {dtype}"
    if importlib.util.find_spec("triton") is None:
        return "Triton is not installed"
    if device.type == "cuda":
        return None
    if device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1":
        return None
    return (
        f"it needs a CUDA device (got {device.type}; TRITON_INTERPRET=1 allows the CPU for tests)"
    )

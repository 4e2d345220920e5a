"""A CPU model of the fast path's peak GPU memory: live tensor bytes at every launch.

Runs the fast path under Triton's interpreter (``TRITON_INTERPRET=1``, Triton and
numpy < 2.4 importable) on a small decoder and, at every convolution, matrix product
and Triton-kernel launch of the executor, adds up the storages of all live tensors
(weights excluded; a convolution's or gather's output counted as alive). The largest
sum is where the GPU peaks too, since the GPU allocates the same tensors at the same
points; cuDNN workspaces are not modelled. Used to find and check issue 22's peak-memory
fix without a GPU (the GPU figure of the version before it: 3.80 GiB against 3.66).

    TRITON_INTERPRET=1 python benchmarks/live_memory.py [--tree DIR] [--model wan2.1|wan2.2]
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--model", choices=["wan2.1", "wan2.2"], default="wan2.1")
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # conformance
    import reference_decoders.wan as wan
    from reference_decoders.wan.fast import kernels, network

    torch.set_num_threads(1)
    cls = wan.Wan22VAEDecoderConfig if args.model == "wan2.2" else wan.WanVAEDecoderConfig
    h, w = (6, 10) if args.model == "wan2.2" else (12, 20)
    decoder = cls(device="cpu", dtype=torch.float32, fast_path=True, base_dim=16, num_res_blocks=2).setup()
    if not decoder.uses_fast_path:
        raise SystemExit("needs the fast path: set TRITON_INTERPRET=1 with Triton installed")
    weights = {t.untyped_storage().data_ptr() for t in [*decoder.parameters(), *decoder.buffers()]}
    state = {"on": False, "peak": 0, "where": ""}

    def live_bytes() -> int:
        storages = {}
        for obj in gc.get_objects():
            if type(obj) is torch.Tensor:
                s = obj.untyped_storage()
                if s.data_ptr() not in weights and s.nbytes():
                    storages[s.data_ptr()] = s.nbytes()
        return sum(storages.values())

    def watched(name: str, fn, output_is_new: bool):  # type: ignore[no-untyped-def]
        def call(*a, **k):  # type: ignore[no-untyped-def]
            before = live_bytes() if state["on"] else 0
            result = fn(*a, **k)
            if state["on"]:
                new = result.untyped_storage().nbytes() if output_is_new and isinstance(result, torch.Tensor) else 0
                if before + new > state["peak"]:
                    state["peak"], state["where"] = before + new, name
            return result

        return call

    for name in ("conv2d", "conv3d", "linear"):
        setattr(network.F, name, watched(name, getattr(network.F, name), True))
    for name in ("conv_input", "norm_into", "add_bias_residual_", "subpixel_gather"):
        if hasattr(kernels, name):
            setattr(kernels, name, watched(name, getattr(kernels, name), name == "subpixel_gather"))

    latents = torch.randn(1, 6, decoder.config.latent_channels, h, w)
    state["on"] = True
    decoder(input=latents[:, :3])
    full = state["peak"], state["where"]
    state.update(on=False, peak=0)
    cache = decoder.initialize_autoregressive_cache()
    decoder(input=latents[:, :3], autoregressive_index=0, cache=cache)
    state["on"] = True
    decoder(input=latents[:, 3:], autoregressive_index=1, cache=cache)
    print(
        f"{args.model} [{Path(wan.__file__).resolve().parent}]: full decode {full[0] / 2**20:.3f} MiB "
        f"(at {full[1]}), AR>=1 step {state['peak'] / 2**20:.3f} MiB (at {state['where']})"
    )


if __name__ == "__main__":
    main()

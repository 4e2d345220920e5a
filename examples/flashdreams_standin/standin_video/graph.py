"""Replaying one captured step: a real CUDA graph on CUDA, an emulation elsewhere.

A CUDA graph records kernels that read and write fixed addresses. Replaying it reruns
those kernels on whatever the *static* tensors hold at that moment, so the caller must
copy each call's inputs (and its rollout's state) into the static tensors before the
replay and copy the results out afterwards. :class:`EmulatedGraph` reproduces exactly
that contract on the CPU (the captured function reads the static inputs and writes the
static outputs in place), so the replay bugs it enables show up without a GPU.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["EmulatedGraph", "StepGraph", "capture_step"]


class EmulatedGraph:
    """The CUDA-graph contract on any device: ``replay()`` reruns the captured function,
    which reads the static inputs and writes the static outputs in place."""

    def __init__(self, step: Callable[[], None]) -> None:
        self._step = step

    def replay(self) -> None:
        self._step()


class StepGraph:
    """A captured step with its static tensors: ``inputs`` and ``outputs`` by name."""

    def __init__(
        self,
        replayer: EmulatedGraph | torch.cuda.CUDAGraph,
        inputs: dict[str, torch.Tensor],
        outputs: dict[str, torch.Tensor],
    ) -> None:
        self._replayer = replayer
        self.inputs = inputs
        self.outputs = outputs

    def replay(self) -> None:
        self._replayer.replay()


def capture_step(
    fn: Callable[..., dict[str, torch.Tensor]], static_inputs: dict[str, torch.Tensor]
) -> StepGraph:
    """Capture ``fn(**static_inputs)`` (returning named outputs) over the given static
    tensors: every replay reads whatever they hold then.

    On CUDA the step is warmed up on a side stream and captured in a
    ``torch.cuda.CUDAGraph``; its outputs are the graph's own static tensors. Elsewhere
    the step is emulated: each replay runs ``fn`` and copies into static outputs.
    """
    device = next(iter(static_inputs.values())).device
    if device.type == "cuda":
        stream = torch.cuda.Stream(device)
        stream.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                fn(**static_inputs)
        torch.cuda.current_stream(device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = fn(**static_inputs)
        return StepGraph(graph, static_inputs, static_outputs)
    first = fn(**static_inputs)
    static_outputs = {name: tensor.clone() for name, tensor in first.items()}

    def step() -> None:
        for name, tensor in fn(**static_inputs).items():
            static_outputs[name].copy_(tensor)

    return StepGraph(EmulatedGraph(step), static_inputs, static_outputs)

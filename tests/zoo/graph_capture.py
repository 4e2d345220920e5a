"""Graph-captured decoders: the steady-state step (AR >= 1) captured once per chunk length
and replayed, as decoders deployed with CUDA graphs do.

A CUDA graph replays recorded kernels on fixed addresses: before each replay the caller
copies the call's latents and its rollout's state into the graph's static input tensors,
and afterwards copies the new state and the output out of the static output tensors.
:class:`StepGraph` gives that contract everywhere: a real ``torch.cuda.CUDAGraph`` for
CUDA tensors, and on the CPU an emulation whose replay reruns the step on the static
inputs and writes the static outputs in place, so the replay bugs below show up in CI
without a GPU (``tests/ecosystem/test_graph_capture.py`` runs the real ones on CUDA).

The bugs are the three ways real replay wrappers go wrong: state kept in the wrapper's
static tensors for every rollout, the static output buffer returned as the output, and
the first rollout's state tensors captured as the graph's inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from reference_decoders.toy import ToyDecoderCache

from ._base import PlainToy, broken, correct

__all__ = ["StepGraph", "capture"]

Tensors = dict[str, torch.Tensor]


class StepGraph:
    """One captured step: ``inputs`` and ``outputs`` are its static tensors by name."""

    def __init__(self, replay: Callable[[], None], inputs: Tensors, outputs: Tensors, graph: Any = None) -> None:
        self._replay = replay
        self.inputs = inputs
        self.outputs = outputs
        self.graph = graph  # the torch.cuda.CUDAGraph on CUDA (kept alive with its pool)

    def replay(self) -> None:
        self._replay()


def capture(step: Callable[..., Tensors], inputs: Tensors) -> StepGraph:
    """Capture ``step(**inputs)`` over ``inputs`` used as the static tensors (not copied).

    CUDA: warm up on a side stream, then record a ``torch.cuda.CUDAGraph``; its outputs
    are the tensors the recording allocated. Elsewhere: each replay reruns ``step`` on
    the static inputs and copies into static outputs allocated at capture.
    """
    device = next(iter(inputs.values())).device
    if device.type == "cuda":
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(2):
                step(**inputs)
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = step(**inputs)
        return StepGraph(graph.replay, inputs, outputs, graph)
    outputs = {name: tensor.clone() for name, tensor in step(**inputs).items()}

    def replay() -> None:
        for name, tensor in step(**inputs).items():
            outputs[name].copy_(tensor)

    return StepGraph(replay, inputs, outputs)


class GraphedToy(PlainToy):
    """The toy with its steady-state step captured per chunk length and replayed correctly.

    Correct and unusual: at every replay it copies the latents and *this* rollout's
    history into the graph's static inputs, and copies the new history and the output
    out into tensors the cache and the caller own.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._graphs: dict[tuple[int, ...], StepGraph] = {}

    def _steady_step(self, latents: torch.Tensor, latent_history: torch.Tensor, pixel_history: torch.Tensor) -> Tensors:
        """The AR >= 1 step as a function of tensors only (what a graph can record)."""
        scratch = ToyDecoderCache(latent_history=latent_history, pixel_history=pixel_history, next_index=1)
        rgb = PlainToy.forward(self, latents, 1, scratch)
        assert scratch.latent_history is not None and scratch.pixel_history is not None
        return {"rgb": rgb, "latent_history": scratch.latent_history, "pixel_history": scratch.pixel_history}

    def _graph_for(self, latents: torch.Tensor, cache: ToyDecoderCache, *, static_state: Tensors | None = None) -> StepGraph:
        key = tuple(latents.shape)
        graph = self._graphs.get(key)
        if graph is None:
            assert cache.latent_history is not None and cache.pixel_history is not None
            state = static_state or {
                "latent_history": cache.latent_history.clone(),
                "pixel_history": cache.pixel_history.clone(),
            }
            graph = capture(self._steady_step, {"latents": latents.clone(), **state})
            self._graphs[key] = graph
        return graph

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        if autoregressive_index == 0 or cache is None or cache.latent_history is None:
            return super().forward(input, autoregressive_index, cache)
        return self._replay(input.to(self.config.dtype), cache)

    def _replay(self, latents: torch.Tensor, cache: ToyDecoderCache) -> torch.Tensor:
        graph = self._graph_for(latents, cache)
        graph.inputs["latents"].copy_(latents)
        graph.inputs["latent_history"].copy_(cache.latent_history)
        graph.inputs["pixel_history"].copy_(cache.pixel_history)
        graph.replay()
        cache.latent_history = graph.outputs["latent_history"].clone()
        cache.pixel_history = graph.outputs["pixel_history"].clone()
        return graph.outputs["rgb"].clone()


class GraphReplaySharedAcrossRollouts(GraphedToy):
    """The replay wrapper, shared by all rollouts, keeps the rollout state in its static
    tensors; a cache only points at them.

    Real bug: to save the copies, a rollout's first replay copies its state into the
    wrapper's static history and points the cache at it; later replays read and update
    it in place. One rollout at a time decodes correctly; interleaved rollouts continue
    from each other's state, and a deep-copied (forked) cache is ignored.
    """

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self._state: Tensors | None = None

    def _replay(self, latents: torch.Tensor, cache: ToyDecoderCache) -> torch.Tensor:
        assert cache.latent_history is not None and cache.pixel_history is not None
        if self._state is None or self._state["latent_history"].shape != cache.latent_history.shape:
            self._state = {"latent_history": cache.latent_history.clone(), "pixel_history": cache.pixel_history.clone()}
            self._graphs.clear()
        state = self._state
        graph = self._graph_for(latents, cache, static_state=state)
        if cache.latent_history is not state["latent_history"] and cache.next_index == 1:
            state["latent_history"].copy_(cache.latent_history)  # the rollout's first replay
            state["pixel_history"].copy_(cache.pixel_history)
        cache.latent_history, cache.pixel_history = state["latent_history"], state["pixel_history"]
        graph.inputs["latents"].copy_(latents)
        graph.replay()
        state["latent_history"].copy_(graph.outputs["latent_history"])
        state["pixel_history"].copy_(graph.outputs["pixel_history"])
        return graph.outputs["rgb"].clone()


class GraphStaticOutputReturned(GraphedToy):
    """The replay returns the graph's static output tensor itself.

    Real bug: ``return graph.outputs["rgb"]`` without a clone. Every output handed out is
    the same buffer, so the next replay rewrites the frames the caller still holds.
    Caught by ``outputs_survive_later_steps`` and ``caller_owns_returned_outputs``.
    """

    def _replay(self, latents: torch.Tensor, cache: ToyDecoderCache) -> torch.Tensor:
        super()._replay(latents, cache)
        return self._graph_for(latents, cache).outputs["rgb"]


class GraphCapturedFirstRolloutState(GraphedToy):
    """The graph is captured with the first rollout's cache tensors as its state inputs,
    and replays never copy another rollout's state in.

    Real bug: capture ran on the first real call (``capture(step, cache.history)``), so
    the recorded kernels read that rollout's tensors forever; the wrapper then updates
    them in place. The first rollout is right; every later rollout decodes from the
    first one's history.
    """

    def _replay(self, latents: torch.Tensor, cache: ToyDecoderCache) -> torch.Tensor:
        assert cache.latent_history is not None and cache.pixel_history is not None
        graph = self._graph_for(
            latents,
            cache,
            static_state={"latent_history": cache.latent_history, "pixel_history": cache.pixel_history},
        )
        graph.inputs["latents"].copy_(latents)
        graph.replay()
        graph.inputs["latent_history"].copy_(graph.outputs["latent_history"])
        graph.inputs["pixel_history"].copy_(graph.outputs["pixel_history"])
        return graph.outputs["rgb"].clone()


DECODERS = (GraphedToy, GraphReplaySharedAcrossRollouts, GraphStaticOutputReturned, GraphCapturedFirstRolloutState)

graphed_toy = correct(GraphedToy)
graph_replay_shared_across_rollouts = broken(
    GraphReplaySharedAcrossRollouts,
    must_fail={"interleaved_rollouts_are_independent", "forked_cache_continues_identically"},
    hints=("interleaved", "fork", "rollout"),
)
graph_static_output_returned = broken(
    GraphStaticOutputReturned,
    must_fail={"outputs_survive_later_steps", "caller_owns_returned_outputs"},
    hints=("buffer", "later step", "shares memory"),
)
graph_captured_first_rollout_state = broken(
    GraphCapturedFirstRolloutState,
    must_fail={"interleaved_rollouts_are_independent"},
    hints=("rollout",),
)

CASES = [graph_replay_shared_across_rollouts, graph_static_output_returned, graph_captured_first_rollout_state]
CORRECT_CASES = [graphed_toy]


def on_device(device: str) -> list[tuple[Any, frozenset[str] | None]]:
    """Each graph case rebuilt with the toy on ``device`` (e.g. ``"cuda"``, where the
    capture is a real ``torch.cuda.CUDAGraph``): ``(spec factory, checks that must fail)``,
    ``None`` for the correct decoder."""
    from ._base import toy_spec_factory

    table: list[tuple[type[GraphedToy], frozenset[str] | None]] = [
        (GraphedToy, None),
        *[(case_class, case.must_fail) for case_class, case in zip(DECODERS[1:], CASES)],
    ]
    return [
        (
            toy_spec_factory(f"{(case.name if must_fail else graphed_toy.name)}-{device}", cls,
                             config={"device": device}, device=device),
            must_fail,
        )
        for (cls, must_fail), case in zip(table, [graphed_toy, *CASES])
    ]


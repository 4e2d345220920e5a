"""Failure messages name what their evidence supports, and nothing it does not."""

from __future__ import annotations

import torch

from conformance.checks.harness.common import input_layouts
from conformance.checks.harness.context import Decoded
from conformance.checks.harness.driver import Step


def _decoded(*inputs: torch.Tensor) -> Decoded:
    steps = [
        Step(output=torch.zeros(1, 3, 1, 8, 8), raw_output=torch.zeros(1, 3, 1, 8, 8), raw_input=x,
             autoregressive_index=k, latent_frames=int(x.shape[2]))
        for k, x in enumerate(inputs)
    ]
    return Decoded(plan=tuple(int(x.shape[2]) for x in inputs), steps=steps)


def test_contiguous_inputs_get_no_layout_hint() -> None:
    # A seam bug with plainly contiguous inputs has nothing to do with layouts.
    assert input_layouts(_decoded(torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 4, 1, 2, 2))) == ""


def test_a_strided_input_is_named_with_the_layout_hint() -> None:
    wide = torch.zeros(1, 4, 3, 2, 2)
    text = input_layouts(_decoded(torch.zeros(1, 4, 2, 2, 2), wide[:, :, 1:2]))
    assert "chunk 0: contiguous" in text
    assert "chunk 1: a contiguous view at a storage offset" in text or "chunk 1: a non-contiguous" in text
    assert "if only the layouts differ" in text


def test_a_mapper_violation_leads_with_the_count_a_pipeline_meets_first() -> None:
    from conformance.checks.size_mappers import MapperViolations

    found = MapperViolations(indices=[0, 1], counts=[-1, 0, 1, 2])
    kind = "n < 1 neither rejected nor 0"
    found.add(kind, 0, -1, "get_output_temporal_size(0, -1) = -7")
    found.add(kind, 0, 0, "get_output_temporal_size(0, 0) = -3")

    assert "e.g. get_output_temporal_size(0, 0) = -3" in found.message("queried")

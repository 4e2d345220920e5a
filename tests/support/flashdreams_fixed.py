"""flashdreams 0.1.0's decoders with each bug the kit found fixed, to prove the findings.

Used by ``tests/ecosystem/test_published_flashdreams.py`` inside a throwaway environment
where the published framework is installed (this module imports it at import time): a
copy of each decoder with the fixes described in ``docs/ecosystem/flashdreams.md``
must certify, so every failure the kit reports on the published decoders is the
framework's and none is the kit's.

The fixes, each a subclass of the framework's own class swapped onto the built decoder:

- mappers: ``get_output_temporal_size`` raises ``ValueError`` for fewer than one latent
  frame (the published one returns ``1 + (n - 1) * 4``, negative for ``n < 1``);
- cache initialization accepts the interface's ``**context``;
- Wan's temporal upsampler keeps the last two frames of *everything it has seen* after
  a one-frame chunk, not just that chunk's one frame;
- decoding runs under ``torch.no_grad()`` instead of ``torch.inference_mode()``
  (``WanVAE.decode``, ``TeahvVAEDecoder.forward``, ``TAEHV.decode``), so the frames returned are ordinary
  tensors a caller may edit in place.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

import torch
from torch import nn

from conformance.core.spec import DecoderSpec
from conformance.ecosystem import flashdreams as fd

_vae = fd.wan_vae_module()
_taehv = fd.taehv_module()
_cuda_graph = importlib.import_module("flashdreams.infra.cuda_graph")


def _at_least_one_frame(decoder_class: type) -> type:
    """A subclass of ``decoder_class`` (same layout, so a built decoder's class can be
    swapped) whose output mapper raises ``ValueError`` for fewer than one latent frame, as
    the interface's mappers promise, and whose cache initializer takes ``**context``."""

    def get_output_temporal_size(self: Any, autoregressive_index: int, input_temporal_size: int) -> int:
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        return decoder_class.get_output_temporal_size(self, autoregressive_index, input_temporal_size)

    def initialize_autoregressive_cache(self: Any, **context: Any) -> Any:
        return decoder_class.initialize_autoregressive_cache(self)

    return type(
        f"Fixed{decoder_class.__name__}",
        (decoder_class,),
        {
            "get_output_temporal_size": get_output_temporal_size,
            "initialize_autoregressive_cache": initialize_autoregressive_cache,
            "forward": _without_inference_mode(decoder_class.forward),
            "__module__": __name__,
        },
    )


def _without_inference_mode(method: Any) -> Any:
    """``method`` under ``torch.no_grad()`` where the framework decorated it with
    ``@torch.inference_mode()`` (torch's decorators keep the plain function as
    ``__wrapped__``), so what it returns is an ordinary tensor."""
    return torch.no_grad()(getattr(method, "__wrapped__", method))


FixedWanVAEDecoder = _at_least_one_frame(_vae.WanVAEDecoder)
FixedTeahvVAEDecoder = _at_least_one_frame(_taehv.TeahvVAEDecoder)


class FixedWanVAE(_vae.WanVAE):
    decode = _without_inference_mode(_vae.WanVAE.decode)


class FixedTAEHV(_taehv.TAEHV):
    decode = _without_inference_mode(_taehv.TAEHV.decode)


class FixedResample(_vae.Resample):
    def _upsample3d_step(self, x: torch.Tensor, state: dict[int, torch.Tensor]) -> torch.Tensor:
        previous = state.get(id(self))
        # History is the last CACHE_T frames of everything seen, whatever this chunk's length.
        history = None if previous is None else torch.cat([previous, x], dim=2)[:, :, -_vae.CACHE_T :]
        out = super()._upsample3d_step(x, state)
        if history is not None:
            _cuda_graph.set_or_copy(state, id(self), history)
        return out


def _fixed(decoder: nn.Module) -> nn.Module:
    decoder.__class__ = FixedTeahvVAEDecoder if isinstance(decoder, _taehv.TeahvVAEDecoder) else FixedWanVAEDecoder
    for module in decoder.modules():
        if type(module) is _vae.Resample:
            module.__class__ = FixedResample
        elif type(module) is _vae.WanVAE:
            module.__class__ = FixedWanVAE
        elif type(module) is _taehv.TAEHV:
            module.__class__ = FixedTAEHV
    return decoder


def fixed_spec(model: str) -> DecoderSpec:
    published = fd.spec(model)
    return dataclasses.replace(
        published, name=published.name + "-fixed", factory=lambda: _fixed(published.factory())
    )


def all_cpu() -> list[DecoderSpec]:
    return [fixed_spec(model) for model in fd.MODELS]

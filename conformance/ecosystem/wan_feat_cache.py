"""An adapter for the Wan VAE family's feature-cache streaming convention.

The official Wan VAE (``wan/modules/vae.py``, ``vae2_2.py``) and diffusers'
``AutoencoderKLWan`` decode a video chunk by chunk through their 3D decoder with a
*feature cache*: a list with one slot per causal convolution (``_feat_map``, reset by
``clear_cache()``), and a one-element list of the next slot's index (``_conv_idx``),
passed as ``decoder(x, feat_cache=..., feat_idx=[0], first_chunk=...)``. Every causal
convolution reads its slot (the last input frames of the previous chunk) and writes it
back; each temporal upsampler marks its slot ``"Rep"`` on the rollout's first call and
skips time doubling there (the causal first frame). Many world-model repositories copy
this convention to decode latents as they are generated.

:class:`WanFeatCacheDecoder` wraps such a VAE as a ``StreamingVideoDecoder`` (it derives
from :mod:`conformance.bases`, so a framework's pipeline accepts it):

- the per-rollout cache (:class:`WanFeatCache`) owns the feature cache list; the adapter
  passes it, with a fresh ``feat_idx=[0]``, on every call and never touches the wrapped
  module's own ``_feat_map``, ``_conv_idx`` or ``clear_cache()``: nothing is kept on the
  module between calls or rollouts (diffusers' and the official decoders keep their
  per-call state only in the lists they are handed; their ``decode()`` keeps it on the
  module, which is why the adapter does not call it);
- the mappers are the convention's honest sizes: ``1 + 4 (n - 1)`` pixel frames for the
  rollout's first ``n`` latent frames, ``4 n`` after that, ``ValueError`` for ``n < 1``
  and for pixel counts no step can produce;
- the convention's first call must be a single latent frame: its upsamplers skip time
  doubling for the whole first call, so a first chunk of ``n > 1`` frames decodes to
  ``n`` frames instead of ``4 n - 3`` (Wan 2.1) or raises (Wan 2.2, whose residual
  shortcut does double time). With ``split_first_chunk=True`` (the default) the adapter
  decodes the first latent frame alone and the rest of that chunk as a steady-state
  chunk, which is what diffusers' own ``decode()`` does (frame by frame);
  ``split_first_chunk=False`` passes every chunk as it comes, as repositories that copy
  the convention often do, to show what that costs.

The wrapped VAE's other steps are its own: the 1x1x1 convolution before the decoder
(``post_quant_conv`` in diffusers, ``conv2`` in the official code), its ``unpatchify``
for 2x2 output patches (Wan 2.2), and the clamp to ``[-1, 1]``. Latents are what the
VAE's ``decode()`` takes (un-normalized: pipelines apply the latent mean and standard
deviation before decoding).
"""

from __future__ import annotations

import inspect
import operator
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from conformance.bases import DecoderConfig, StreamingDecoderCache, StreamingVideoDecoder

__all__ = ["WanFeatCache", "WanFeatCacheConfig", "WanFeatCacheDecoder", "wrap"]

#: Where the 1x1x1 convolution before the decoder lives, in the order tried.
PRE_DECODER_CONVS = ("post_quant_conv", "conv2")


class _FeatSlots(list):  # type: ignore[type-arg]
    """The feature cache: a list that reads ``None`` past its end and grows on writes, so
    the adapter need not know how many causal convolutions the wrapped decoder has."""

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int) and index >= len(self):
            return None
        return super().__getitem__(index)

    def __setitem__(self, index: Any, value: Any) -> None:
        if isinstance(index, int) and index >= len(self):
            self.extend([None] * (index + 1 - len(self)))
        super().__setitem__(index, value)


@dataclass(kw_only=True)
class WanFeatCache(StreamingDecoderCache):
    """One rollout's state: the feature cache (tensors of the last input frames of each
    causal convolution, ``"Rep"`` markers of the upsamplers) and where the rollout is."""

    feat_map: list[Any] = field(default_factory=_FeatSlots)
    next_index: int = 0
    batch_size: int | None = None
    latent_size: tuple[int, int] | None = None


def _resolve_layout(layout: str) -> str:
    if layout not in ("BCTHW", "BTCHW"):
        raise ValueError(f"layout must be 'BCTHW' (the VAE's own) or 'BTCHW', got {layout!r}")
    return layout


@dataclass(kw_only=True)
class WanFeatCacheConfig(DecoderConfig):
    """How to drive one wrapped VAE; ``setup(vae=module)`` builds the adapter."""

    _target: type = field(default_factory=lambda: WanFeatCacheDecoder)
    latent_channels: int = 16
    layout: str = "BCTHW"
    """Axes of the latents taken and the pixels returned: the VAE's own ``BCTHW``, or the
    streaming pipelines' ``BTCHW``."""
    decoder_attribute: str = "decoder"
    pre_decoder_conv: str | None = None
    """Attribute of the 1x1x1 convolution applied before the decoder; ``None`` tries
    ``post_quant_conv`` (diffusers) then ``conv2`` (official Wan)."""
    patch_size: int | None = None
    """Output patch side (2 for Wan 2.2); ``None`` reads ``vae.config.patch_size``."""
    temporal_compression_ratio: int = 4
    spatial_compression_ratio: int | None = None
    """``None`` reads ``vae.spatial_compression_ratio``, else 8 x the patch side."""
    clamp: tuple[float, float] | None = (-1.0, 1.0)
    split_first_chunk: bool = True


class WanFeatCacheDecoder(StreamingVideoDecoder):
    """A Wan-family VAE driven through its feature-cache convention (see the module)."""

    def __init__(self, config: WanFeatCacheConfig, vae: nn.Module) -> None:
        super().__init__(config)
        self.config: WanFeatCacheConfig = config
        _resolve_layout(config.layout)
        self.vae = vae
        decoder = getattr(vae, config.decoder_attribute, None)
        if not isinstance(decoder, nn.Module):
            raise TypeError(
                f"{type(vae).__name__} has no decoder module at .{config.decoder_attribute}"
            )
        self._takes_first_chunk = "first_chunk" in _parameters(decoder.forward)
        names = (config.pre_decoder_conv,) if config.pre_decoder_conv else PRE_DECODER_CONVS
        self._pre_conv_name = next((n for n in names if isinstance(getattr(vae, n, None), nn.Module)), None)
        if self._pre_conv_name is None:
            raise TypeError(f"{type(vae).__name__} has none of {names} (the conv before the decoder)")
        patch = config.patch_size
        if patch is None:
            patch = getattr(getattr(vae, "config", None), "patch_size", None) or 1
        self._patch = int(patch)
        self._unpatchify = _unpatchify_of(vae) if self._patch > 1 else None
        spatial = config.spatial_compression_ratio
        if spatial is None:
            found = getattr(vae, "spatial_compression_ratio", None)
            spatial = found if isinstance(found, int) else 8 * self._patch
        self._spatial = int(spatial)

    # ------------------------------------------------------------------ the interface

    @property
    def spatial_compression_ratio(self) -> int:
        return self._spatial

    @property
    def temporal_compression_ratio(self) -> int:
        return self.config.temporal_compression_ratio

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        index = _index(autoregressive_index)
        if input_temporal_size < 1:
            raise ValueError(f"need at least one latent frame, got {input_temporal_size}")
        ratio = self.temporal_compression_ratio
        return 1 + ratio * (input_temporal_size - 1) if index == 0 else ratio * input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        index = _index(autoregressive_index)
        ratio = self.temporal_compression_ratio
        if index == 0:
            if output_temporal_size >= 1 and (output_temporal_size - 1) % ratio == 0:
                return 1 + (output_temporal_size - 1) // ratio
            form = f"1 + {ratio} (n - 1)"
        else:
            if output_temporal_size >= ratio and output_temporal_size % ratio == 0:
                return output_temporal_size // ratio
            form = f"{ratio} n"
        raise ValueError(
            f"no step at autoregressive index {autoregressive_index} yields {output_temporal_size} "
            f"pixel frames (it yields {form} for n >= 1 latent frames)"
        )

    def initialize_autoregressive_cache(self, **context: Any) -> WanFeatCache:
        """A fresh rollout; ``context`` is accepted and unused (sizes come from step 0)."""
        return WanFeatCache()

    @torch.no_grad()
    def forward(
        self, input: torch.Tensor, autoregressive_index: int = 0, cache: WanFeatCache | None = None
    ) -> torch.Tensor:
        """Decode one chunk of latents to pixels, continuing ``cache``'s rollout (a fresh
        one-chunk rollout when ``cache`` is None, at index 0 only)."""
        if cache is None:
            if _index(autoregressive_index) != 0:
                raise ValueError(
                    f"autoregressive_index {autoregressive_index} continues a rollout: pass its "
                    "cache (initialize_autoregressive_cache() at index 0, then the same object)"
                )
            cache = self.initialize_autoregressive_cache()
        index = self._check(input, autoregressive_index, cache)
        latents = input if self.config.layout == "BCTHW" else input.transpose(1, 2)
        # Work on a copy of the feature cache: a call that raises leaves the rollout as it was.
        slots = _FeatSlots(cache.feat_map)
        x = getattr(self.vae, self._pre_conv_name)(latents)
        if index == 0 and self.config.split_first_chunk and x.shape[2] > 1:
            parts = [self._decode(x[:, :, :1], slots, first=True), self._decode(x[:, :, 1:], slots, first=False)]
            video = torch.cat(parts, dim=2)
        else:
            video = self._decode(x, slots, first=index == 0)
        if self._unpatchify is not None:
            video = self._unpatchify(video, patch_size=self._patch)
        if self.config.clamp is not None:
            video = video.clamp(*self.config.clamp)
        cache.feat_map = slots
        cache.next_index = index + 1
        cache.batch_size = int(input.shape[0])
        cache.latent_size = (int(input.shape[3]), int(input.shape[4]))
        return video if self.config.layout == "BCTHW" else video.transpose(1, 2)

    # ------------------------------------------------------------------ internals

    def _decode(self, x: torch.Tensor, slots: list[Any], *, first: bool) -> torch.Tensor:
        decoder = getattr(self.vae, self.config.decoder_attribute)
        keywords: dict[str, Any] = {"feat_cache": slots, "feat_idx": [0]}
        if self._takes_first_chunk:
            keywords["first_chunk"] = first
        return decoder(x, **keywords)

    def _check(self, input: Any, autoregressive_index: Any, cache: Any) -> int:
        if not isinstance(cache, WanFeatCache):
            raise TypeError(
                f"cache must be a WanFeatCache from initialize_autoregressive_cache(), got "
                f"{type(cache).__name__}"
            )
        channels = self.config.latent_channels
        axes = self.config.layout
        expected = f"latents shaped [{', '.join(axes.replace('C', str(channels)))}]"
        if not isinstance(input, torch.Tensor) or input.dim() != 5 or not input.is_floating_point():
            raise ValueError(f"expected floating-point {expected}, got {_describe(input)}")
        if input.shape[axes.index("C")] != channels:
            raise ValueError(f"expected {expected}, got shape {tuple(input.shape)}")
        if min(input.shape) < 1:
            raise ValueError(f"expected {expected} with every size >= 1, got shape {tuple(input.shape)}")
        index = _index(autoregressive_index)
        if index != cache.next_index:
            raise ValueError(
                f"expected autoregressive_index {cache.next_index} (the next step of this rollout), "
                f"got {autoregressive_index}; a new rollout needs a new cache"
            )
        size = (int(input.shape[3]), int(input.shape[4]))
        if cache.latent_size is not None and cache.latent_size != size:
            raise ValueError(f"expected latent size {cache.latent_size} (this rollout's), got {size}")
        if cache.batch_size is not None and cache.batch_size != input.shape[0]:
            raise ValueError(f"expected batch size {cache.batch_size} (this rollout's), got {input.shape[0]}")
        return index


def _parameters(function: Callable[..., Any]) -> set[str]:
    try:
        return set(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return set()


def _unpatchify_of(vae: nn.Module) -> Callable[..., torch.Tensor]:
    """The wrapped VAE's own ``unpatchify(x, patch_size)`` (both diffusers' and the
    official Wan 2.2 module define one next to the model)."""
    for klass in type(vae).__mro__:
        function = getattr(sys.modules.get(klass.__module__), "unpatchify", None)
        if callable(function):
            return function
    raise TypeError(
        f"{type(vae).__name__} decodes 2x2 patches but its module defines no unpatchify(x, "
        "patch_size); pass a VAE whose module does, or patch_size=1"
    )


def _index(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("autoregressive_index must be an int, got bool")
    try:
        index = operator.index(value)
    except TypeError:
        raise TypeError(f"autoregressive_index must be an int, got {type(value).__name__}") from None
    if index < 0:
        raise ValueError(f"autoregressive_index must be >= 0, got {index}")
    return index


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def wrap(vae: nn.Module, **config: Any) -> WanFeatCacheDecoder:
    """``WanFeatCacheConfig(**config).setup(vae=vae)``: the adapter around ``vae``."""
    return WanFeatCacheConfig(**config).setup(vae=vae)

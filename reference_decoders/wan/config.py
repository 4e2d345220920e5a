"""Configuration of the Wan VAE streaming decoders (Wan 2.1 and Wan 2.2).

:class:`WanVAEDecoderConfig`'s defaults describe the published Wan 2.1 video VAE decoder
(the one behind ``Wan2.1_VAE.pth`` and diffusers' ``AutoencoderKLWan``);
:class:`Wan22VAEDecoderConfig`'s the Wan 2.2 one (``Wan2.2_VAE.pth``, the TI2V-5B VAE:
48 latent channels, residual up stages, a 2x2 output patch). Both are one family: every
architecture knob is a field, so tests and the CPU conformance run can build a small
decoder with the same structure; the published checkpoints only load into the default
shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import torch

from conformance.bases import DecoderConfig

if TYPE_CHECKING:
    from reference_decoders.wan.decoder import WanVAEDecoder

__all__ = [
    "WAN21_LATENTS_MEAN",
    "WAN21_LATENTS_STD",
    "WAN22_LATENTS_MEAN",
    "WAN22_LATENTS_STD",
    "Wan22VAEDecoderConfig",
    "WanVAEDecoderConfig",
]

# Per-channel statistics of the Wan 2.1 latent space, as published with the VAE (and as
# diffusers' AutoencoderKLWan config defaults). A diffusion model emits latents in the
# normalized space; the decoder maps them back with ``z * std + mean``.
WAN21_LATENTS_MEAN: tuple[float, ...] = (
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
    0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
)  # fmt: skip
WAN21_LATENTS_STD: tuple[float, ...] = (
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160,
)  # fmt: skip

# The same for the 48 channels of the Wan 2.2 latent space (published with Wan2.2_VAE.pth
# in Wan-Video/Wan2.2 and in the TI2V-5B diffusers VAE config).
WAN22_LATENTS_MEAN: tuple[float, ...] = (
    -0.2289, -0.0052, -0.1323, -0.2339, -0.2799, 0.0174, 0.1838, 0.1557,
    -0.1382, 0.0542, 0.2813, 0.0891, 0.1570, -0.0098, 0.0375, -0.1825,
    -0.2246, -0.1207, -0.0698, 0.5109, 0.2665, -0.2108, -0.2158, 0.2502,
    -0.2055, -0.0322, 0.1109, 0.1567, -0.0729, 0.0899, -0.2799, -0.1230,
    -0.0313, -0.1649, 0.0117, 0.0723, -0.2839, -0.2083, -0.0520, 0.3748,
    0.0152, 0.1957, 0.1433, -0.2944, 0.3573, -0.0548, -0.1681, -0.0667,
)  # fmt: skip
WAN22_LATENTS_STD: tuple[float, ...] = (
    0.4765, 1.0364, 0.4514, 1.1677, 0.5313, 0.4990, 0.4818, 0.5013,
    0.8158, 1.0344, 0.5894, 1.0901, 0.6885, 0.6165, 0.8454, 0.4978,
    0.5759, 0.3523, 0.7135, 0.6804, 0.5833, 1.4146, 0.8986, 0.5659,
    0.7069, 0.5338, 0.4889, 0.4917, 0.4069, 0.4999, 0.6866, 0.4093,
    0.5709, 0.6065, 0.6415, 0.4944, 0.5726, 1.2042, 0.5458, 1.6887,
    0.3971, 1.0600, 0.3943, 0.5537, 0.5444, 0.4089, 0.7468, 0.7744,
)  # fmt: skip

_DTYPE_NAMES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def _decoder_class() -> type[WanVAEDecoder]:
    # Imported lazily: the decoder module imports this one.
    from reference_decoders.wan.decoder import WanVAEDecoder

    return WanVAEDecoder


@dataclass(kw_only=True)
class WanVAEDecoderConfig(DecoderConfig):
    """Everything needed to build a :class:`~reference_decoders.wan.WanVAEDecoder`.

    Weights:
        checkpoint_path: an official ``Wan2.1_VAE.pth`` or a diffusers
            ``AutoencoderKLWan`` safetensors file; the layout is detected from the keys.
            ``None`` builds the network with seeded random weights (``seed``).
        seed: seed of the random initialisation, used when ``checkpoint_path`` is None.

    Placement:
        device: ``None`` picks ``"cuda"`` when available, else ``"cpu"``.
        dtype: a ``torch.dtype`` or a name such as ``"bf16"``; ``None`` picks bfloat16 on
            CUDA and float32 elsewhere.

    Architecture (published values by default):
        latent_channels: channels of the latent video (``z_dim``).
        base_dim: width of the last up stage; the others are ``base_dim * dim_mult``.
        dim_mult: width multipliers, listed from the pixel end as in the published
            config; the decoder walks them in reverse.
        num_res_blocks: the published config's count; each decoder up stage has
            ``num_res_blocks + 1`` residual blocks (three by default).
        temporal_upsample: for each up stage but the last, whether its upsampler doubles
            time as well as space. The number of up stages is ``len(dim_mult)``.
        out_channels: pixel channels.
        residual_up_stages: Wan 2.2's up stages: an upsampler keeps its stage's width
            (Wan 2.1's halves it), and each upsampling stage adds a parameter-free
            shortcut that spreads its input's channels over the upsampled pixels and
            frames (diffusers' ``is_residual``).
        patch_size: the last convolution emits ``out_channels * patch_size**2``
            channels, each ``patch_size x patch_size`` group of which becomes a patch of
            pixels (Wan 2.2: 2, so 16x spatial compression on top of the stages' 8x).
        latents_mean, latents_std: per-channel latent statistics used to undo the
            normalization the diffusion model works in.

    Execution (same function either way, up to rounding):
        fast_path: run the network through :mod:`reference_decoders.wan.fast`
            (channels-last, Triton-fused norms, cuDNN's fastest conv forms, temporal
            tiling). ``None`` uses it wherever it can run (CUDA with Triton, in bf16,
            fp16 or fp32); ``True`` requires it (``ValueError`` at setup if it cannot
            run); ``False`` always runs the eager modules of :mod:`.model`.
        tile_latent_frames: the fast path decodes a chunk this many latent frames at a
            time, carrying the history between tiles: peak memory is set by the tile,
            not by the chunk length (1 keeps a 480x832 decode under 4 GiB on top of
            the weights; larger tiles are a few percent faster). With 1, every tile runs
            the same kernels on the same shapes, so a streamed decode equals the
            one-call decode bit for bit whatever the chunk plan.
    """

    _target: type[WanVAEDecoder] = field(default_factory=_decoder_class)

    checkpoint_path: str | None = None
    seed: int = 0
    device: str | torch.device | None = None
    dtype: torch.dtype | str | None = None

    latent_channels: int = 16
    base_dim: int = 96
    dim_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    temporal_upsample: tuple[bool, ...] = (True, True, False)
    out_channels: int = 3
    residual_up_stages: bool = False
    patch_size: int = 1
    latents_mean: tuple[float, ...] = WAN21_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN21_LATENTS_STD

    fast_path: bool | None = None
    tile_latent_frames: int = 1

    def setup(self, **kwargs: Any) -> WanVAEDecoder:
        """Build the decoder (``_target(self, **kwargs)``), typed as a WanVAEDecoder."""
        return cast("WanVAEDecoder", super().setup(**kwargs))

    def resolved_device(self) -> torch.device:
        """The device the decoder lives on: ``device``, or CUDA when available."""
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def resolved_dtype(self) -> torch.dtype:
        """The parameter and compute dtype: ``dtype``, or bf16 on CUDA and fp32 elsewhere."""
        if self.dtype is None:
            return torch.bfloat16 if self.resolved_device().type == "cuda" else torch.float32
        if isinstance(self.dtype, torch.dtype):
            dtype = self.dtype
        elif isinstance(self.dtype, str) and self.dtype.lower() in _DTYPE_NAMES:
            dtype = _DTYPE_NAMES[self.dtype.lower()]
        else:
            raise ValueError(
                f"dtype must be a torch floating dtype or one of {sorted(_DTYPE_NAMES)}, "
                f"got {self.dtype!r}"
            )
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        return dtype

    @property
    def num_upsamplers(self) -> int:
        """Up stages that upsample: every stage but the last."""
        return len(self.dim_mult) - 1

    @property
    def spatial_compression_ratio(self) -> int:
        return 2**self.num_upsamplers * self.patch_size

    @property
    def temporal_compression_ratio(self) -> int:
        return 2 ** sum(bool(flag) for flag in self.temporal_upsample)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent architecture field.

        Called by the decoder rather than in ``__post_init__`` so that a config can be
        edited field by field (``derive_config``) before it is built.
        """
        if self.latent_channels < 1:
            raise ValueError(f"latent_channels must be >= 1, got {self.latent_channels}")
        if self.out_channels < 1:
            raise ValueError(f"out_channels must be >= 1, got {self.out_channels}")
        if self.base_dim < 1:
            raise ValueError(f"base_dim must be >= 1, got {self.base_dim}")
        if not self.dim_mult or any(m < 1 for m in self.dim_mult):
            raise ValueError(f"dim_mult must be non-empty positive integers, got {self.dim_mult}")
        if self.tile_latent_frames < 1:
            raise ValueError(f"tile_latent_frames must be >= 1, got {self.tile_latent_frames}")
        if self.num_res_blocks < 0:
            raise ValueError(f"num_res_blocks must be >= 0, got {self.num_res_blocks}")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        if len(self.temporal_upsample) != self.num_upsamplers:
            raise ValueError(
                f"temporal_upsample needs one flag per upsampling stage "
                f"(len(dim_mult) - 1 = {self.num_upsamplers}), got {self.temporal_upsample}"
            )
        mults = tuple(reversed(self.dim_mult))
        for stage in range(self.num_upsamplers):
            width = self.base_dim * mults[stage + 1]
            if not self.residual_up_stages and width % 2:
                # A Wan 2.1 upsampler halves its stage's width, so that width must be even.
                raise ValueError(
                    f"up stage {stage} has odd width base_dim * {mults[stage + 1]} = {width}; "
                    "its upsampler halves the channels, so it must be even"
                )
            # A residual stage's shortcut spreads its input's channels over the factor
            # new positions per pixel (4, or 8 with time), evenly.
            in_width = self.base_dim * mults[stage]
            factor = 4 * (2 if self.temporal_upsample[stage] else 1)
            if self.residual_up_stages and (width * factor) % in_width:
                raise ValueError(
                    f"up stage {stage}'s shortcut cannot spread {in_width} channels evenly over "
                    f"{width} channels x {factor} positions; choose dim_mult so that "
                    f"{in_width} divides {width * factor}"
                )
        for name in ("latents_mean", "latents_std"):
            values = getattr(self, name)
            if len(values) != self.latent_channels:
                raise ValueError(
                    f"{name} has {len(values)} values but latent_channels is {self.latent_channels}"
                )


@dataclass(kw_only=True)
class Wan22VAEDecoderConfig(WanVAEDecoderConfig):
    """:class:`WanVAEDecoderConfig` with the published Wan 2.2 (TI2V-5B) VAE decoder as default.

    48 latent channels, stage widths 1024, 1024, 1024, 512, 256 (``base_dim`` 256,
    diffusers' ``decoder_base_dim``), residual up stages and a 2x2 output patch: latents
    ``[B, T, 48, h, w]`` decode to ``[B, T', 3, 16h, 16w]``. ``checkpoint_path`` takes an
    official ``Wan2.2_VAE.pth`` or the diffusers TI2V-5B VAE safetensors.
    """

    latent_channels: int = 48
    base_dim: int = 256
    residual_up_stages: bool = True
    patch_size: int = 2
    latents_mean: tuple[float, ...] = WAN22_LATENTS_MEAN
    latents_std: tuple[float, ...] = WAN22_LATENTS_STD

"""The Wan 2.1 and Wan 2.2 video VAE decoders as exact, chunk-invariant streaming decoders.

``WanVAEDecoderConfig().setup()`` builds the published Wan 2.1 architecture,
``Wan22VAEDecoderConfig().setup()`` the Wan 2.2 (TI2V-5B) one (random weights, or a
checkpoint in the official or diffusers layout via ``checkpoint_path``). Any chunk
plan, including a first chunk of several latent frames, yields the frames that decoding
the rollout one latent frame at a time yields.

- :mod:`.config`: the config and the published latent statistics.
- :mod:`.model`: the network.
- :mod:`.decoder`: the :class:`StreamingVideoDecoder` wrapper and its per-rollout cache.
- :mod:`.checkpoint`: layout detection, key mapping and safe loading.
- :mod:`.specs`: conformance-kit specs (small CPU, full-size CUDA).
"""

from reference_decoders.wan.checkpoint import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
)
from reference_decoders.wan.config import Wan22VAEDecoderConfig, WanVAEDecoderConfig
from reference_decoders.wan.decoder import WanVAEDecoder, WanVAEDecoderCache

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "UnsafeCheckpointError",
    "Wan22VAEDecoderConfig",
    "WanVAEDecoder",
    "WanVAEDecoderCache",
    "WanVAEDecoderConfig",
]

"""How the conformance kit should drive the acme decoders: one ``DecoderSpec`` each.

These are the targets registered in ``pyproject.toml`` (entry-point group
``flashdreams.conformance.decoders``) and used by ``tests/test_conformance.py``.
``conformance`` is imported inside the functions, so importing this module does not
need the kit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from acme_video.decoder import AcmeDecoderConfig, AcmeFastDecoder

if TYPE_CHECKING:
    from conformance import DecoderSpec

__all__ = ["causal_spec", "fast_spec"]


def causal_spec() -> DecoderSpec:
    """The production decoder: time-major latents and pixels, a batch of two (so the
    batch independence check runs), float32 on the CPU, 4x4 latents (enough to exercise
    every promise, cheap enough to run thousands of examples)."""
    from conformance import DecoderSpec

    config = AcmeDecoderConfig()
    return DecoderSpec(
        name="acme-causal",
        factory=config.setup,
        latent_channels=config.latent_channels,
        latent_size=(4, 4),
        layout="BTCHW",
        output_channels=config.out_channels,
        batch_size=2,
    )


def fast_spec() -> DecoderSpec:
    """The buffer-reusing variant, with its known bug declared: the check that guards
    it must keep failing (reported as an expected failure); if someone fixes the bug,
    certification fails until this declaration is removed."""
    from conformance import DecoderSpec

    config = AcmeDecoderConfig()
    return DecoderSpec(
        name="acme-fast",
        factory=lambda: AcmeFastDecoder(config),
        latent_channels=config.latent_channels,
        latent_size=(4, 4),
        layout="BTCHW",
        output_channels=config.out_channels,
        expected_failures={
            "outputs_survive_later_steps": "the output buffer is reused every call; callers "
            "copy what they keep (ACME-42)",
            "caller_owns_returned_outputs": "the same reused output buffer (ACME-42)",
        },
    )

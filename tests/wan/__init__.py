"""Tests of the bundled Wan 2.1 VAE streaming decoder (reference_decoders.wan)."""

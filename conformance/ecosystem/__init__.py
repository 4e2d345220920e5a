"""Specs and adapters for decoders that live in other projects' code.

Each module describes the streaming decoders of one published project to the kit and
imports that project only when a spec is built, so every module here imports without it:

- :mod:`conformance.ecosystem.flashdreams`: NVIDIA's published ``flashdreams`` framework
  (Wan 2.1 and Wan 2.2 VAE decoders, TAEHV), the truth about each decoder and a
  regression gate declaring its known bugs (``docs/ecosystem/flashdreams.md``);
- :mod:`conformance.ecosystem.wan_feat_cache`: an adapter for the chunk-by-chunk
  feature-cache convention of the official Wan VAE and diffusers' ``AutoencoderKLWan``
  (``feat_cache`` lists, ``clear_cache()``, ``_feat_map``, ``_conv_idx``);
- :mod:`conformance.ecosystem.diffusers_wan`: diffusers' ``AutoencoderKLWan`` through that
  adapter (``docs/ecosystem/diffusers.md``).
"""

"""Plain values every layer of the kit shares, and nothing that runs a decoder.

- :mod:`.spec` ``DecoderSpec`` and all of its validation; loading ``MODULE:ATTR`` targets;
- :mod:`.results` the statuses, ``CheckResult``, ``Certification``, ``DecoderRun``;
- :mod:`.outcomes` what a check raises: broken promise, decoder error, skip, spec fault;
- :mod:`.profiles` effort profiles and the one ``DEFAULT_PROFILE``;
- :mod:`.discovery` decoders registered under the entry-point group;
- :mod:`.interface` what counts as a decoder and a cache, judged by the contract;
- :mod:`.ratios` how an error is said against its tolerance, everywhere.
"""

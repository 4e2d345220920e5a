"""Plain values every layer of the kit shares, and nothing that runs a decoder.

- :mod:`.spec` ``DecoderSpec`` and all of its validation;
- :mod:`.targets` ``MODULE:ATTR`` targets and the ones installed packages register;
- :mod:`.results` the statuses, ``CheckResult``, ``Certification``, ``DecoderRun``;
- :mod:`.outcomes` what a check raises, and the one list of failure kinds;
- :mod:`.profiles` effort profiles and the one ``DEFAULT_PROFILE``;
- :mod:`.interface` what counts as a decoder and a cache, judged by the contract;
- :mod:`.values` text and JSON made safe to write, spec fields, decoder configs;
- :mod:`.replay` the commands that replay a run; :mod:`.links` each check's page;
- :mod:`.exit_codes` what each exit status means; :mod:`.version` the kit's version;
- :mod:`.ratios` how an error is said against its tolerance; :mod:`.suggest` did-you-mean.
"""

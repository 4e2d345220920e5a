"""Running checks: the one run loop and the executors it drives.

- :mod:`.loop` the run loop every front end uses (:class:`~.loop.TargetRun`,
  :func:`~.loop.certify_targets`, the library's :func:`~.loop.certify`), and the exit code;
- :mod:`.executors` where checks run: in supervised worker processes (:mod:`.workers`)
  or in this process;
- :mod:`.execute` one check in this process: how it ended, vacuity, expectations, replay;
- :mod:`.expectations` the strict expected-failure policy;
- :mod:`.plan` which checks, in which order, with which seeds;
- :mod:`.decoders` the decoder a check gets from the spec's factory;
- :mod:`.environment` what a decoder's checks run on;
- :mod:`.preconditions` why a decoder cannot be certified here, before any check.
"""

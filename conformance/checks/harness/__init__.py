"""What the checks drive a decoder with: the machinery, apart from the promises.

- :mod:`.context` :class:`~.context.CheckContext`, the only way a check touches a decoder;
- :mod:`.driver` pipeline-style calls: decoder, caches, forward;
- :mod:`.calls` guarded calls; :mod:`.validation` what every call must return;
- :mod:`.control` how a running check is watched and stopped;
- :mod:`.inputs` and :mod:`.latents` seeded latents in the spec's layouts;
- :mod:`.tolerances` the rounding model and comparisons; :mod:`.evidence` what a check
  exercised; :mod:`.reachability` every tensor a cache can reach;
- :mod:`.search` Hypothesis runs; :mod:`.fingerprints` seed-independent failure
  fingerprints; :mod:`.common` helpers the promise modules share.
"""

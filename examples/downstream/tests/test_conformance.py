"""Conformance of the acme decoders: one ordinary pytest test per (decoder, check).

``conformance_tests`` returns a parametrized test; bind it to a ``test_*`` name. Run
``pytest -k chunked`` for one check, ``pytest -m conformance`` for only these,
``--conformance-profile=thorough`` before a release, ``--conformance-seed=N`` to replay.
"""

from conformance import conformance_tests

from acme_video.specs import causal_spec

# A spec object...
test_acme_causal = conformance_tests(causal_spec())
# ...or the same MODULE:ATTR target the command line and the entry point use.
test_acme_fast = conformance_tests("acme_video.specs:fast_spec")

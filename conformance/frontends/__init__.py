"""How people and CI ask for a certification: the pytest plugin's pieces.

``conformance.frontends.pytest_plugin`` stays the pytest11 entry point (options, session seed and profile,
header, hooks); :mod:`~conformance.frontends.pytest_items` holds the collectors and one
item per check; :mod:`~conformance.frontends.pytest_certificate` gathers every check's
result (from pytest-xdist workers too) into ``DecoderRun`` records and writes the JSON
report and Markdown certificate of a pytest run. The command line is ``conformance.frontends.cli``.
"""

"""The checks: one named function per promise of the streaming decoder contract.

- :mod:`.catalog` every check id and category, and their order (torch-free);
- :mod:`.registry` the :class:`~.registry.Check` record and the ``@promise`` decorator;
- :mod:`.suite` every check function, ``ALL_CHECKS``, ``get_check``, and the validation of
  a spec's expected failures;
- one module per category of promises: :mod:`.size_mappers`, :mod:`.cache_isolation`,
  :mod:`.chunking`, :mod:`.forward_contract`, :mod:`.finiteness`,
  :mod:`.pipeline_promises`, :mod:`.pipeline_habits`, :mod:`.resources`, :mod:`.state_machine`;
- :mod:`.harness`: what the checks drive a decoder with.
"""

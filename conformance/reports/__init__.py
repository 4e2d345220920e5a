"""Reports: one record per decoder run (:class:`~conformance.core.results.DecoderRun`), thin renderers.

They take results, never a front end's arguments.

- :mod:`.record`: the record as the JSON schema's dict, and what the renderers share;
- :mod:`.json_report`: the JSON report's text;
- :mod:`.text`: terminal lines and pytest failure text;
- :mod:`.markdown`: the Markdown certificate;
- :mod:`.junit`: pytest/JUnit ``conformance_*`` properties;
- :mod:`.github`: GitHub Actions job summary and annotations;
- :mod:`.outputs`: output paths checked before the run, a placeholder claiming them,
  atomic writes after it.
"""

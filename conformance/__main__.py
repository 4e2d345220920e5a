"""``python -m conformance``: the kit's command line (see :mod:`conformance.frontends.cli`)."""

import os
import sys

from conformance.frontends import cli

if __name__ == "__main__":
    code = cli.main()
    if cli.decoders_ran_in_this_process():
        # ``--in-process``: decoder code ran here, and threads it left behind could hang
        # the interpreter's shutdown or abort it (exit 134) after the report was written.
        # The verdict is final: leave with it.
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)
    raise SystemExit(code)

"""Supervised worker processes: the decoder runs in a child process, the verdict is made outside.

A decoder under test can do anything to the process it runs in: call ``os._exit``, raise
``SystemExit`` from a thread, segfault, be killed by the OOM killer, spin in native code
holding the GIL, leave threads that abort the interpreter at exit. None of that may decide
the exit code or the report. So the command line runs every decoder in a worker process
(:mod:`~conformance.workers.worker`) that the parent (:mod:`~conformance.workers.supervisor`)
drives over a private pipe of named JSON messages (:mod:`~conformance.workers.protocol`), and
the parent alone owns the clocks, the results and the report.

- :mod:`.protocol` message names, framing and the protocol version;
- :mod:`.worker` the child: loads the target, says ``hello``, runs checks, streams events;
- :mod:`.supervisor` the parent: spawns, watches deadlines, dumps stacks, kills, turns a
  dead worker into a failed check and carries on in a fresh one;
- :mod:`.capture` bounded tails of a worker's stdout and stderr;
- :mod:`.devices` which GPU an xdist worker uses (kept here from ``conformance.workers``).

The names that used to live in ``conformance.workers`` (the xdist GPU helpers) are
re-exported unchanged.
"""

from __future__ import annotations

from conformance.workers.devices import (
    claim_worker_gpu,
    claimed_device,
    worker_device_index,
    xdist_worker_number,
)

__all__ = ["claim_worker_gpu", "claimed_device", "worker_device_index", "xdist_worker_number"]

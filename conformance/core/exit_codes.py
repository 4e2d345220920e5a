"""The exit statuses of a certification run and what each means: their one home.

``certify``'s ``--help``, the README and the engine's verdict all read this table, so a
CI job can tell a broken decoder (1) from a broken kit (3) from a refused run (2).
"""

from __future__ import annotations

__all__ = [
    "EXIT_CERTIFIED",
    "EXIT_CODES",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_CERTIFIED",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
]

EXIT_CERTIFIED = 0
EXIT_NOT_CERTIFIED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INCONCLUSIVE = 4
#: 128 + SIGINT, the shell's code for a run ended by Ctrl-C.
EXIT_INTERRUPTED = 130
#: 128 + SIGTERM: the run was stopped by SIGTERM or SIGHUP (a CI runner cancelling the
#: job, ``timeout``, a closed terminal); the partial report says so.
EXIT_TERMINATED = 143

#: Every exit status and what it means (printed by ``--help``).
EXIT_CODES: dict[int, str] = {
    EXIT_CERTIFIED: "certified: every decoder passed a complete run",
    EXIT_NOT_CERTIFIED: "not certified: a check failed (a crash or hang of the decoder included), "
    "the decoder could not be built, or only a --check subset ran",
    EXIT_USAGE: "usage error, unloadable target or invalid spec, or a precondition failed "
    "before any check ran (report path not writable, device not available)",
    EXIT_INTERNAL: "internal error of the conformance kit (please report it)",
    EXIT_INCONCLUSIVE: "inconclusive: a check ran out of time without evidence of a fault "
    "(slow or loaded machine); nothing certified",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); the partial report certifies nothing",
    EXIT_TERMINATED: "terminated (SIGTERM or SIGHUP); the partial report certifies nothing",
}

"""Live progress of a certification run, for people watching a terminal.

Each check's line is printed the moment the check finishes (failures in full, wrapped,
with their docs page and replay command), and each decoder ends with its verdict. On a
terminal, one status line below them shows the check in progress, the examples and
decoder calls done so far and the call running now, redrawn a few times a second and
erased before the next printed line; when the output is a pipe or a file there is no
status line, so logs stay clean. ``quiet`` prints verdicts only; ``verbose`` also says
when targets load and when a worker process is replaced.

Machine-readable output (the JSON report, Markdown, JUnit) is never affected: those are
written from the finished records, not from this stream.
"""

from __future__ import annotations

import shutil
import sys
import time
from typing import Any, TextIO

from conformance.checks.catalog import CHECK_IDS
from conformance.reports.text import (
    DETAILED,
    check_line,
    failure_lines,
    header_lines,
    pin_lines,
    verdict_line,
    wrap,
)

__all__ = ["LiveProgress"]

#: Seconds between redraws of the status line.
REDRAW_S = 0.2


class LiveProgress:
    """An ``on_event`` handler for :func:`conformance.engine.loop.certify_targets`."""

    def __init__(self, out: TextIO | None = None, *, quiet: bool = False, verbose: bool = False,
                 tty: bool | None = None, profile: str = "default") -> None:
        self.out = out or sys.stdout
        self.profile = profile
        self.quiet = quiet
        self.verbose = verbose
        if tty is None:
            try:
                tty = self.out.isatty()
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty and not quiet
        self._status = ""
        self._drawn = 0.0
        self._unbuilt = False
        self._id_width = 0
        self._started = 0.0
        self._decoders = 0

    # ------------------------------------------------------------------ events

    def __call__(self, name: str, payload: dict[str, Any]) -> None:
        handler = getattr(self, f"_on_{name}", None)
        if handler is not None:
            handler(payload)

    def _on_loading(self, payload: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f"Loading {payload['target']} in a worker process ...")
        else:
            self._show(f"loading {payload['target']} ...")

    def _on_decoder_started(self, payload: dict[str, Any]) -> None:
        run = payload["run"]
        cert = run.certification
        self._id_width = max(len(check_id) for check_id in CHECK_IDS)
        self._started = time.monotonic()
        self._unbuilt = False
        if self.quiet:
            return
        if self._decoders:
            self._print("")
        self._decoders += 1
        for line in header_lines(cert.decoder, target=run.target, profile=cert.profile, seed=cert.seed,
                                 environment=cert.environment):
            self._print(line)
        self._print("")

    def _on_check_started(self, payload: dict[str, Any]) -> None:
        self._show(f"{payload['check_id']} ...")

    def _on_progress(self, payload: dict[str, Any]) -> None:
        if not self.tty or time.monotonic() - self._drawn < REDRAW_S:
            return
        done = ", ".join(
            f"{payload[key]} {label}"
            for key, label in (("examples", "examples"), ("decoder_calls", "calls"))
            if payload.get(key)
        )
        call = payload.get("call")
        text = f"{payload['check_id']}" + (f"  {done}" if done else "") + (f"  [{call}]" if call else "")
        self._show(text)

    def _on_check_finished(self, payload: dict[str, Any]) -> None:
        if self.quiet:
            return
        result = payload["result"]
        if self._unbuilt and result.status == "not_run":
            return  # said once, when the build failed
        self._print(check_line(result, id_width=self._id_width, label_width=5))
        for line in pin_lines(result, indent=" " * 9):
            self._print(line)
        if result.status in DETAILED:
            run_target = payload.get("target")
            for line in failure_lines(result, target=run_target, seed=result.evidence.get("run_seed", 0),
                                      profile=self.profile):
                self._print(line)

    def _on_build_failed(self, payload: dict[str, Any]) -> None:
        self._unbuilt = True
        for line in wrap(str(payload["problem"]), width=100, indent="  "):
            self._print(line)
        self._print("  No check was run; each is reported as not run.")

    def _on_worker_replaced(self, payload: dict[str, Any]) -> None:
        if self.verbose:
            self._print(f"  (a fresh worker process was started before {payload['check_id']})")

    def _on_decoder_finished(self, payload: dict[str, Any]) -> None:
        run = payload["run"]
        if not self.quiet:
            for note in run.notes if self.verbose else []:
                for line in wrap(f"note: {note}", width=100, indent="  "):
                    self._print(line)
            self._print("")
        self._print(verdict_line(run))

    # ------------------------------------------------------------------ output

    def _show(self, text: str) -> None:
        """Redraw the status line (terminals only)."""
        if not self.tty:
            return
        width = 100
        try:
            width = shutil.get_terminal_size((100, 20)).columns
        except (OSError, ValueError):
            pass
        text = ("  ... " + text)[: max(10, width - 1)]
        self.out.write("\r" + text + " " * max(0, len(self._status) - len(text)))
        self.out.flush()
        self._status = text
        self._drawn = time.monotonic()

    def clear(self) -> None:
        """Erase the status line, if one is drawn."""
        if self.tty and self._status:
            self.out.write("\r" + " " * len(self._status) + "\r")
            self.out.flush()
            self._status = ""

    def _print(self, line: str) -> None:
        self.clear()
        print(line, file=self.out, flush=True)

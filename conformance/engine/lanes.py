"""One decoder's checks over several executors at once, each result what a serial run gives.

Checks are independent by construction: each has its own seed, derived from the run's
seed and its id (:func:`conformance.engine.plan.check_seed`), and its own isolated
decoder, so where and alongside what a check runs cannot change its result. A machine
with idle cores (or a GPU busy with small calls) then certifies faster with several
lanes: each lane is an executor with a worker process of its own. The run's first
executor, already open and with the decoder built, is lane 0; further lanes open, load
the target and build the decoder in their own threads, and join in as soon as they are
ready. Lanes take checks from one queue, the slowest kinds first (they bound the run's
length); the thread that called :meth:`Lanes.run` receives every event and result, in
the order they happen, and alone decides.

It also applies the stop rules that end a hopeless run early, the verdict unchanged:
after ``max_worker_losses`` checks whose worker crashed or hung, or ``maxfail`` failed
checks, the checks not yet started are reported ``not_run`` with the reason.

After its last check, each lane re-verifies the outputs its worker kept
(:mod:`conformance.checks.harness.holding`); a late change amends
``outputs_survive_later_steps``, the promise it breaks.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.core.outcomes import FailureKind
from conformance.core.results import CheckResult
from conformance.engine.executors import Executor
from conformance.engine.stops import stopped_result

__all__ = ["FIRST", "Lanes", "StopRules", "late_change_message"]

EventHandler = Callable[[str, dict[str, Any]], None]

#: The check whose promise a late change of a kept output breaks. It starts first: its
#: outputs must be held ``output_hold_s`` before the end-of-run re-verification, and the
#: rest of the run is that wait.
HOLDING_CHECK = "outputs_survive_later_steps"

#: Started first: the holding check, then the checks that usually take longest, so that
#: no lane waits for one at the end.
FIRST = (HOLDING_CHECK, "rollout_state_machine", "chunked_decode_matches_full_decode", "cache_memory_is_bounded")


@dataclass(frozen=True)
class StopRules:
    """When a run stops starting checks for a decoder (``None``: never for that reason)."""

    #: Checks whose worker process crashed or hung before the rest are not run.
    max_worker_losses: int | None = 2
    #: Failed checks (failed or error) before the rest are not run (pytest's ``--maxfail``).
    maxfail: int | None = None


def dispatch_order(check_ids: Sequence[str]) -> list[str]:
    """``check_ids`` with the slow ones first (see :data:`FIRST`), the rest in order."""
    return [c for c in FIRST if c in check_ids] + [c for c in check_ids if c not in FIRST]


def late_change_message(change: dict[str, Any]) -> str:
    """What an output changed after its return, re-verified at the end of the run, says."""
    return (
        f"an output kept by the caller changed after it was returned: the output of "
        f"{change['what']} (returned during {change['check_id']}) had changed "
        f"{float(change['age_s']):.1f} s later, when it was re-verified at the end of the run: "
        f"{change['changed']}. The decoder reuses an output buffer or is still writing into "
        "it after returning (a background thread, an unsynchronized stream); return a new, "
        "finished tensor each call"
    )


class Lanes:
    """Runs ``check_ids`` of decoder ``index`` over lanes (see the module docstring)."""

    def __init__(
        self,
        index: int,
        check_ids: Sequence[str],
        *,
        first: Executor,
        more: Callable[[], Executor] | None,
        release: Callable[[Executor], None],
        count: int,
        emit: EventHandler,
        on_result: Callable[[CheckResult], None],
        rules: StopRules,
    ) -> None:
        self.index = index
        self.check_ids = list(check_ids)
        self.first = first
        self.more = more
        self.release = release
        self.count = max(1, min(count, len(self.check_ids)))
        self.emit = emit
        self.on_result = on_result
        self.rules = rules
        self.executors: list[Executor] = []
        self.notes: list[str] = []
        self._work: queue.Queue[str] = queue.Queue()
        self._reports: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stop = threading.Event()
        #: The check each lane is running, with its executor (for stopping it early).
        self._in_flight: dict[str, tuple[str, Executor]] = {}
        #: Checks stopped while in flight by a stop rule, with the rule's reason.
        self._cut_short: dict[str, str] = {}

    def run(self) -> tuple[dict[str, CheckResult], dict[str, str | None], list[dict[str, Any]]]:
        """Run the checks: ``(results by check id, config text by lane, late changes)``.

        On Ctrl-C (or any :class:`KeyboardInterrupt`) every lane's worker is killed and
        the interrupt re-raised; the caller marks what did not run.
        """
        for check_id in dispatch_order(self.check_ids):
            self._work.put(check_id)
        threads = [threading.Thread(target=self._lane, args=(self.first, True), name="conformance-lane-0",
                                    daemon=True)]
        for number in range(1, self.count if self.more is not None else 1):
            threads.append(threading.Thread(target=self._lane, args=(None, False),
                                            name=f"conformance-lane-{number}", daemon=True))
        for thread in threads:
            thread.start()
        results: dict[str, CheckResult] = {}
        configs: dict[str, str | None] = {}
        late: list[dict[str, Any]] = []
        losses = failures = 0
        running = len(threads)
        try:
            while running:
                try:
                    report = self._reports.get(timeout=0.2)
                except queue.Empty:
                    continue
                kind = report[0]
                if kind == "event":
                    self.emit(report[1], report[2])
                elif kind == "result":
                    _, check_id, result, config, decided = report
                    if check_id in self._cut_short and (
                        result.kind in (FailureKind.CRASH, FailureKind.TIMEOUT) or result.status == "error"
                    ):
                        result = stopped_result(check_id, self._cut_short[check_id])
                    results[check_id] = result
                    configs[check_id] = config
                    if result.kind in (FailureKind.CRASH, FailureKind.TIMEOUT):
                        losses += 1
                    if result.status in ("failed", "error"):
                        failures += 1
                    if check_id != HOLDING_CHECK:  # final only once kept outputs are re-verified
                        self.on_result(result)
                    self._apply_rules(losses, failures, results)
                    decided.set()  # the lane may take its next check: the rules have seen this one
                elif kind == "late":
                    late += report[1]
                elif kind == "note":
                    self.notes.append(report[1])
                elif kind == "done":
                    running -= 1
        except KeyboardInterrupt:
            self._stop.set()
            for executor in list(self.executors):
                executor.kill()
            for thread in threads:
                thread.join(5.0)
            raise
        finally:
            for executor in self.executors:
                if executor is not self.first:
                    self.release(executor)
        for check_id in self.check_ids:  # what no lane could take (every lane went down)
            if check_id not in results:
                results[check_id] = stopped_result(check_id, "no worker process could run it (see the notes)")
                if check_id != HOLDING_CHECK:
                    self.on_result(results[check_id])
        return results, configs, late

    def _apply_rules(self, losses: int, failures: int, results: dict[str, CheckResult]) -> None:
        reason = None
        if self.rules.max_worker_losses is not None and losses >= self.rules.max_worker_losses:
            reason = (
                f"stopped after {losses} checks whose worker process crashed or hung "
                f"(at most {self.rules.max_worker_losses}); the decoder is not certified either way"
            )
        elif self.rules.maxfail is not None and failures >= self.rules.maxfail:
            reason = f"stopped after {failures} failed checks (--maxfail {self.rules.maxfail})"
        if reason is None or self._stop.is_set():
            return
        self._stop.set()
        self.notes.append(reason)
        if losses >= (self.rules.max_worker_losses or losses + 1):
            # Worker processes keep dying on this decoder: the checks still in flight would
            # most likely die or hang as well, so they are stopped now rather than waited
            # for (a stall limit each). What they would have said cannot certify it anyway.
            for check_id, executor in list(self._in_flight.values()):
                self._cut_short[check_id] = reason
                executor.kill()
        while True:
            try:
                check_id = self._work.get_nowait()
            except queue.Empty:
                return
            results[check_id] = stopped_result(check_id, reason)
            if check_id != HOLDING_CHECK:
                self.on_result(results[check_id])

    # ------------------------------------------------------------------ one lane (its own thread)

    def _lane(self, executor: Executor | None, ready: bool) -> None:
        report = self._reports.put
        try:
            if executor is None:
                executor = self._open_lane()
                if executor is None:
                    return
            self.executors.append(executor)

            def emit(name: str, payload: dict[str, Any]) -> None:
                report(("event", name, payload))

            ran = False
            while not self._stop.is_set():
                try:
                    check_id = self._work.get_nowait()
                except queue.Empty:
                    break
                lane = threading.current_thread().name
                self._in_flight[lane] = (check_id, executor)
                try:
                    result, config = executor.run(self.index, check_id, emit, hold=True)
                except Exception as err:  # noqa: BLE001 - a kit bug: that check's error, the lane goes on
                    result, config = _kit_error(check_id, err), None
                finally:
                    self._in_flight.pop(lane, None)
                ran = True
                decided = threading.Event()
                report(("result", check_id, result, config, decided))
                decided.wait()
            for note in executor.notes:
                report(("note", note))
            executor.notes.clear()
            if ran and not self._stop.is_set():
                report(("late", executor.finish(self.index)))
        except Exception as err:  # noqa: BLE001 - never lose the run to one lane
            report(("note", f"a lane stopped: {type(err).__name__}: {err}"))
        finally:
            report(("done",))

    def _open_lane(self) -> Executor | None:
        """A further executor, opened, checked to load the same decoders, decoder built."""
        assert self.more is not None
        executor = self.more()
        try:
            described = executor.described or executor.open()
        except Exception as err:  # noqa: BLE001 - the lane is only a speed-up
            self._reports.put(("note", f"a further worker process could not load the target: {err}"))
            executor.close()
            return None
        if [d["name"] for d in described] != [d["name"] for d in self.first.described]:
            executor.close()
            self._reports.put(("note", "a further worker process loaded different decoders from the "
                                       "target; the checks ran in fewer worker processes"))
            return None
        problem, _, _ = executor.build(self.index)
        if problem is not None or self._stop.is_set():
            executor.close()
            return None
        return executor


def _kit_error(check_id: str, err: BaseException) -> CheckResult:
    return CheckResult(
        check_id, "error",
        f"internal error in the conformance kit while running {check_id} ({type(err).__name__}: {err}); "
        "please report it", 0.0,
    )

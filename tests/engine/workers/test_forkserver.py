"""Workers forked from the fork server behave as plainly started ones, and nothing outlives its run.

The fork server (``conformance.engine.workers.forkserver``) makes a worker start cost a
fork instead of a torch import. These tests hold it to the promises of a plainly started
worker: the same decoders are loaded, crashes are reported with their signal, the extra
environment reaches the worker, a changed environment gets a fresh server, the switch
turns it off, and when the supervising process dies the server and its workers leave.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conformance.engine.loop import certify_targets
from conformance.engine.plan import RunOptions
from conformance.engine.workers import forkserver
from conformance.engine.workers.process import EOF_EVENT, WorkerProcess, describe_exit
from tests.support import REPO_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server is used on Linux only")


def _hello(worker: WorkerProcess) -> dict[str, object]:
    message = worker.next_event(120)
    assert message is not None, "no hello within 120 s"
    return message


def _gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie waiting for a reaper counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def test_a_forked_worker_loads_the_same_decoders_as_a_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    forked = WorkerProcess("reference_decoders.toy:toy_spec")
    try:
        forked_hello = _hello(forked)
    finally:
        forked.bye()
    monkeypatch.setenv(forkserver.ENVIRONMENT_SWITCH, "0")
    plain = WorkerProcess("reference_decoders.toy:toy_spec")
    try:
        plain_hello = _hello(plain)
    finally:
        plain.bye()

    assert forked.forked and not plain.forked
    assert forked_hello["msg"] == plain_hello["msg"] == "hello"
    assert forked_hello["specs"] == plain_hello["specs"]
    assert forked.process.returncode == plain.process.returncode == 0


def test_a_forked_worker_that_segfaults_is_reported_with_its_signal() -> None:
    worker = WorkerProcess("tests.zoo.process:forward_segfaults")
    try:
        assert worker.forked
        assert _hello(worker)["msg"] == "hello"
        worker.send("build", spec_index=0)
        worker.send(
            "run", spec_index=0, check_id="forward_accepts_keyword_call", profile="quick", run_seed=1, hold=False
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            message = worker.next_event(1)
            if message is not None and message["msg"] == EOF_EVENT:
                break
        code = worker.exit_code()
    finally:
        worker.kill()
    assert code == -signal.SIGSEGV
    assert "SIGSEGV" in describe_exit(code)


def test_a_crashing_decoder_gets_the_same_verdict_forked_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    options = RunOptions(profile="quick", seed=3, check_ids=["input_is_not_modified", "cache_init_accepts_context"], jobs=1)
    forked = certify_targets(["tests.zoo.process:forward_segfaults"], options)
    monkeypatch.setenv(forkserver.ENVIRONMENT_SWITCH, "0")
    plain = certify_targets(["tests.zoo.process:forward_segfaults"], options)

    def verdicts(outcome) -> list[tuple[str, str, object]]:  # type: ignore[no-untyped-def]
        return [(r.check_id, r.status, r.kind) for run in outcome.runs for r in run.certification.results]

    assert verdicts(forked) == verdicts(plain)
    assert ("input_is_not_modified", "failed") in [(c, s) for c, s, _ in verdicts(forked)]


def test_the_extra_environment_reaches_a_forked_worker_and_a_new_environment_gets_a_new_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "env_named.py").write_text(
        "import os\n"
        "from reference_decoders.toy import toy_spec\n"
        "def spec():\n"
        "    return toy_spec(name='named-' + os.environ['ZOO_SPEC_NAME'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    names, servers = [], []
    for value in ("first", "second"):
        worker = WorkerProcess("env_named:spec", env={"ZOO_SPEC_NAME": value})
        try:
            assert worker.forked
            names.append(_hello(worker)["specs"][0]["name"])  # type: ignore[index]
            servers.append(next(iter(forkserver._servers.values())))
        finally:
            worker.bye()

    assert names == ["named-first", "named-second"]
    first, second = servers
    assert first is not second
    first.process.wait(10)  # retired, and closed once its worker had left


def test_when_the_supervising_process_dies_the_server_and_its_workers_leave() -> None:
    script = (
        "import sys, time\n"
        "from conformance.engine.workers import forkserver\n"
        "from conformance.engine.workers.process import WorkerProcess\n"
        "worker = WorkerProcess('reference_decoders.toy:toy_spec')\n"
        "assert worker.forked and worker.next_event(120) is not None\n"
        "server = next(iter(forkserver._servers.values()))\n"
        "print(server.process.pid, worker.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert supervisor.stdout is not None
    line = supervisor.stdout.readline()
    assert line, "the supervising process did not start its worker"
    server_pid, worker_pid = map(int, line.split())
    supervisor.kill()
    supervisor.wait()

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (_gone(server_pid) and _gone(worker_pid)):
        time.sleep(0.2)
    assert _gone(server_pid), "the fork server outlived its supervising process"
    assert _gone(worker_pid), "a forked worker outlived its supervising process"

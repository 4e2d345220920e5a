"""The supervised executor's parts: the decoder runs in a child process, the verdict is made outside.

A decoder under test can do anything to the process it runs in: call ``os._exit``, raise
``SystemExit`` from a thread, segfault, be killed by the OOM killer, spin in native code
holding the GIL, leave threads that abort the interpreter at exit. None of that may decide
the exit code or the report. So every check runs in a worker process that the parent
drives over a private pipe of named JSON messages, and the parent alone owns the clocks,
the results and the report.

- :mod:`.protocol` message names, framing and the protocol version;
- :mod:`.worker` the child's entry point: arms itself, then hands over to :mod:`.serve`
  (load the target, say hello, build decoders, run checks, stream events);
- :mod:`.process` one worker process as the parent holds it (pipes, events, tails);
- :mod:`.forkserver` and :mod:`.zygote` workers forked from a process that imported torch
  once (Linux; a start or restart costs a fork, not a torch import);
- :mod:`.supervisor` the executor: hello, build, one check with its clocks, crash to
  result, replacement;
- :mod:`.capture` bounded tails of a worker's stdout and stderr;
- :mod:`.devices` which GPU a worker uses.
"""

"""Running Hypothesis inside a check: settings, seeding, and failure reports people can use.

Every property and state machine the kit runs goes through :func:`run_property` /
:func:`run_machine`, which:

- pin every setting that matters (a downstream project's loaded Hypothesis profile must
  not change what certification means): no deadline (first-call warm-up, CUDA or
  compilation would trip one), no example database (a run is replayed from its seed, not
  from files), one reported bug, no ``explain`` phase (it re-runs the decoder many times
  to annotate the report);
- seed Hypothesis with the check's seed, so the same seed replays the same examples;
- turn a failure into a :class:`~conformance.core.outcomes.CheckFailed` whose message carries
  the shrunk example (or state machine program) Hypothesis reported, and the seed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, given, seed, settings
from hypothesis.errors import Flaky
from hypothesis.stateful import RuleBasedStateMachine, run_state_machine_as_test
from hypothesis.strategies import SearchStrategy

from conformance.checks.harness.context import CheckContext
from conformance.core.outcomes import CheckCancelled, CheckFailed

__all__ = ["hypothesis_settings", "run_machine", "run_property"]

#: Health checks the kit turns off, and why:
#: - too_slow: it times data generation, which the GIL shares with the decoder's own
#:   threads and with any abandoned (timed-out) check still unwinding; a slow *decoder*
#:   is not a slow *strategy*, and the kit's strategies are tiny.
#: - large_base_example / data_too_large: state machine programs are long by design
#:   (several rollouts, many steps); their size is set by the profile, not by accident.
SUPPRESSED_HEALTH_CHECKS = (
    HealthCheck.too_slow,
    HealthCheck.large_base_example,
    HealthCheck.data_too_large,
)


def hypothesis_settings(*, max_examples: int, stateful_step_count: int | None = None) -> settings:
    """Settings for one kit property; every value pinned, nothing inherited that matters."""
    extra: dict[str, Any] = {}
    if stateful_step_count is not None:
        extra["stateful_step_count"] = stateful_step_count
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=False,
        suppress_health_check=SUPPRESSED_HEALTH_CHECKS,
        report_multiple_bugs=False,
        phases=(Phase.explicit, Phase.generate, Phase.shrink),
        print_blob=False,
        verbosity=Verbosity.normal,
        **extra,
    )


def run_property(
    ctx: CheckContext,
    function: Callable[..., None],
    *,
    max_examples: int,
    **strategies: SearchStrategy[Any],
) -> None:
    """Run ``function`` as a Hypothesis property over ``strategies`` (keyword arguments),
    with the kit's settings and the check's seed."""

    @functools.wraps(function)
    def tracked(*args: Any, **kwargs: Any) -> None:
        if ctx.cancelled:  # the runner gave up on this check: stop searching
            raise CheckCancelled("check cancelled during its Hypothesis search")
        try:
            function(*args, **kwargs)
        except CheckFailed as err:
            ctx.note_failure(err)
            raise

    test = given(**strategies)(tracked)
    test = seed(ctx.seed)(hypothesis_settings(max_examples=max_examples)(test))
    _run(ctx, test, kind="example")


def run_machine(
    ctx: CheckContext, machine: type[RuleBasedStateMachine], *, max_examples: int, steps: int
) -> None:
    """Run a state machine with the kit's settings and seed; failures carry the program."""
    seeded = seed(ctx.seed)(machine)
    _run(
        ctx,
        lambda: run_state_machine_as_test(
            seeded, settings=hypothesis_settings(max_examples=max_examples, stateful_step_count=steps)
        ),
        kind="program",
    )


def _run(ctx: CheckContext, test: Callable[[], None], *, kind: str) -> None:
    with ctx.capture_hypothesis_reports() as reported:
        try:
            test()
        except Flaky as err:
            raise CheckFailed(
                "the decoder gave different results when Hypothesis replayed the same "
                f"{kind}: it is not deterministic (or depends on state left by earlier calls). "
                f"{_first_failure(err)}\n" + _example_block(kind, reported, err, ctx)
            ) from err
        except CheckFailed as err:
            raise type(err)(f"{err}\n" + _example_block(kind, reported, err, ctx)) from err


def _first_failure(err: BaseException) -> str:
    inner = getattr(err, "exceptions", None)
    if inner:
        return f"First failure: {inner[0]}"
    return str(err)


def _example_block(kind: str, reported: list[str], err: BaseException, ctx: CheckContext) -> str:
    notes = [n for n in getattr(err, "__notes__", []) if n.strip()]
    lines = [line for line in reported + notes if line.strip()]
    text = "\n".join("    " + l for line in lines for l in str(line).splitlines())
    header = (
        "Minimal failing state machine program (Hypothesis, shrunk):"
        if kind == "program"
        else "Minimal failing example (Hypothesis, shrunk):"
    )
    return f"{header}\n{text or '    (not reported)'}\nHypothesis seed for this check: {ctx.seed}"

"""Certify a decoder from a test module: ``test_x = conformance_tests(spec_or_target)``.

The command-line option ``--conformance-decoder`` suits a one-off run; a decoder's own
repository usually wants its certification to be part of its test suite, without
anyone remembering an option. This helper returns an ordinary parametrized pytest test,
one per (decoder, check), answered like the plugin's items: a target string runs in a
supervised worker process with the command line's thread policy (a decoder that exits,
crashes or hangs fails its check; pytest goes on), spec objects in this process; every
report says which. It honours ``--conformance-profile``, ``--conformance-seed`` and
``--conformance-in-process``.

It is re-exported as ``conformance.conformance_tests`` (loaded lazily, so importing
``conformance`` alone does not import pytest).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from conformance.checks.catalog import CHECK_IDS, checks_of
from conformance.core.replay import pytest_command
from conformance.core.spec import DecoderSpec
from conformance.core.targets import TargetError, load_target
from conformance.frontends.pytest_items import (
    ConformanceFailure,
    InvalidSpecError,
    run_conformance_check,
    validate_spec_for_collection,
)
from conformance.frontends.pytest_session import session_profile, session_seed

__all__ = ["conformance_tests"]


def conformance_tests(
    spec_or_target: DecoderSpec | Sequence[DecoderSpec] | str,
    *,
    checks: Sequence[str] | None = None,
    profile: str | None = None,
    seed: int | None = None,
) -> Callable[..., None]:
    """Return a parametrized pytest test that runs the kit's checks on a decoder.

    Bind it to a ``test_*`` name in a test module; pytest then collects one test per
    (decoder, check), with ids ``<decoder name>-<check id>``::

        from conformance import conformance_tests

        test_toy = conformance_tests("reference_decoders.toy:toy_spec")
        test_seams = conformance_tests(my_spec, checks=["chunked_decode_matches_full_decode"])

    Select with ``-k`` as usual (``-k chunked_decode``); ``-m conformance`` selects every
    conformance test.

    Args:
        spec_or_target: a ``MODULE:ATTR`` target string (its checks run in a supervised
            worker process), a ``DecoderSpec`` or a list of them (run in this process). A
            target is loaded now, at collection: a bad one fails collection of this test
            module with the loader's message (no traceback through the kit).
        checks: check ids or categories to run (default: all, in the kit's order); an
            unknown one fails collection the same way, naming the closest known ones.
        profile: Hypothesis profile; default: ``--conformance-profile``, else "default".
        seed: Hypothesis seed; default: ``--conformance-seed``, else the session's seed
            (printed in the pytest header).
    """
    target = spec_or_target if isinstance(spec_or_target, str) else None
    problem = None
    try:
        specs = _resolve_specs(spec_or_target)
        for spec in specs:
            validate_spec_for_collection(spec)
    except (TargetError, InvalidSpecError) as error:
        problem = f"conformance_tests({spec_or_target!r}): the decoder could not be loaded:\n{error}"
    check_ids = list(CHECK_IDS)
    if problem is None and checks is not None:
        try:
            chosen = {check_id for selector in checks for check_id in checks_of(selector)}
            check_ids = [check_id for check_id in CHECK_IDS if check_id in chosen]
        except KeyError as error:
            problem = (
                f"conformance_tests(checks=...): {error.args[0]} "
                "(python -m conformance --list-checks lists them)"
            )
    if problem is not None:
        # A collection error of this module with just the message (pytest prints a
        # CollectError's text alone), not a chained traceback through the kit.
        raise pytest.Collector.CollectError(problem)
    source: str | list[DecoderSpec] = target if target is not None else specs
    names = [spec.name for spec in specs]

    def label(index: int) -> str:
        name = names[index]
        return name if names.count(name) == 1 else f"{name}#{index}"

    cases = [(index, check_id) for index in range(len(specs)) for check_id in check_ids]
    ids = [f"{label(index)}-{check_id}" for index, check_id in cases]

    with warnings.catch_warnings():
        # Registered by the plugin; unknown only when it is disabled (-p no:conformance).
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        conformance_mark = pytest.mark.conformance

    @conformance_mark
    @pytest.mark.parametrize("conformance_case", cases, ids=ids)
    def test_conformance(conformance_case: tuple[int, str], request: pytest.FixtureRequest) -> None:
        index, check_id = conformance_case
        config = request.config
        used_seed = seed if seed is not None else session_seed(config)
        used_profile = profile or session_profile(config)
        replay = [pytest_command(nodeid=request.node.nodeid, rootdir=config.rootpath, seed=used_seed,
                                 profile=used_profile)]
        try:
            run_conformance_check(
                request.node, source, index, check_id, seed=used_seed, profile=used_profile, replay=replay
            )
        except ConformanceFailure as failure:
            text = str(failure)
        else:
            return
        # Failed outside the ``except`` block, so pytest shows the message once, not
        # again as the context of a second exception; no traceback through the kit.
        pytest.fail(text, pytrace=False)

    test_conformance.__doc__ = f"Conformance checks of {', '.join(names)} (conformance kit)."
    # For the certificate of the run: which decoders and checks this test plans.
    test_conformance.conformance_plan = (target, names)  # type: ignore[attr-defined]
    return test_conformance


def _resolve_specs(spec_or_target: Any) -> list[DecoderSpec]:
    if isinstance(spec_or_target, str):
        return list(load_target(spec_or_target))
    if isinstance(spec_or_target, DecoderSpec):
        return [spec_or_target]
    if (
        isinstance(spec_or_target, (list, tuple))
        and spec_or_target
        and all(isinstance(spec, DecoderSpec) for spec in spec_or_target)
    ):
        return list(spec_or_target)
    raise TypeError(
        "conformance_tests() expects a DecoderSpec, a non-empty list of DecoderSpec or a "
        f"'MODULE:ATTR' target string, got {type(spec_or_target).__name__}: {spec_or_target!r}"
    )

"""Certify a decoder from a test module: ``test_x = conformance_tests(spec_or_target)``.

The command-line option ``--conformance-decoder`` suits a one-off run; a decoder's own
repository usually wants its certification to be part of its test suite, without
anyone remembering an option. This helper returns an ordinary parametrized pytest test
that runs each check through the same engine call and outcome mapping as the plugin
(:mod:`conformance.plugin`), and honours ``--conformance-profile`` and
``--conformance-seed``.

It is re-exported as ``conformance.conformance_tests`` (loaded lazily, so importing
``conformance`` alone does not import pytest).
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from conformance.frontends.pytest_items import (
    ConformanceFailure,
    InvalidSpecError,
    apply_result,
    run_in_session,
    validate_spec_for_collection,
)
from conformance.plugin import session_profile, session_seed

if TYPE_CHECKING:
    from conformance.core.spec import DecoderSpec

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
        spec_or_target: a ``DecoderSpec``, a list of them, or a ``MODULE:ATTR`` target
            string. A target is loaded now, at collection: a bad one fails collection of
            this test module with the loader's message (no traceback through the kit).
        checks: check ids to run (default: all, in the kit's order); an unknown id
            fails collection the same way, naming the closest known ids.
        profile: Hypothesis profile; default: ``--conformance-profile``, else "default".
        seed: Hypothesis seed; default: ``--conformance-seed``, else the session's seed
            (printed in the pytest header).
    """
    from conformance.checks import ALL_CHECKS, get_check

    from conformance.core.spec import TargetError

    target = spec_or_target if isinstance(spec_or_target, str) else None
    problem = None
    try:
        specs = _resolve_specs(spec_or_target)
        for spec in specs:
            validate_spec_for_collection(spec)
    except (TargetError, InvalidSpecError) as error:
        problem = f"conformance_tests({spec_or_target!r}): the decoder could not be loaded:\n{error}"
    if problem is None and checks is not None:
        unknown = [check_id for check_id in checks if check_id not in [c.id for c in ALL_CHECKS]]
        if unknown:
            from conformance.frontends.suggest import did_you_mean

            known = [c.id for c in ALL_CHECKS]
            hints = ", ".join(f"{check_id!r}{did_you_mean(check_id, known)}" for check_id in unknown)
            problem = (
                f"conformance_tests(checks=...): unknown check id {hints} "
                "(python -m conformance certify --list-checks lists them)"
            )
    if problem is not None:
        # A collection error of this module with just the message (pytest prints a
        # CollectError's text alone), not a chained traceback through the kit.
        raise pytest.Collector.CollectError(problem)
    check_ids = [check.id for check in ALL_CHECKS] if checks is None else [get_check(c).id for c in checks]
    names = [spec.name for spec in specs]

    def label(index: int) -> str:
        name = names[index]
        return name if names.count(name) == 1 else f"{name}#{index}"

    cases = [(spec, check_id) for spec in specs for check_id in check_ids]
    ids = [f"{label(i)}-{check_id}" for i in range(len(specs)) for check_id in check_ids]

    with warnings.catch_warnings():
        # Registered by the plugin; unknown only when it is disabled (-p no:conformance).
        warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
        conformance_mark = pytest.mark.conformance

    @conformance_mark
    @pytest.mark.parametrize("conformance_case", cases, ids=ids)
    def test_conformance(
        conformance_case: tuple[DecoderSpec, str], request: pytest.FixtureRequest
    ) -> None:
        spec, check_id = conformance_case
        config = request.config
        used_seed = seed if seed is not None else session_seed(config)
        used_profile = profile or session_profile(config)
        result = run_in_session(
            config, spec, check_id, target, profile=used_profile, seed=used_seed
        )
        replay = [
            f"pytest {shlex.quote(request.node.nodeid)} --conformance-seed={used_seed} "
            f"--conformance-profile={used_profile}"
        ]
        try:
            apply_result(
                result, request.node, seed=used_seed, profile=used_profile, target=target,
                replay=replay, spec=spec,
            )
        except ConformanceFailure as failure:
            text = str(failure)
        else:
            return
        # Failed outside the ``except`` block, so pytest shows the message once, not
        # again as the context of a second exception; no traceback through the kit.
        pytest.fail(text, pytrace=False)

    test_conformance.__doc__ = f"Conformance checks of {', '.join(names)} (conformance kit)."
    test_conformance.conformance_target = target  # type: ignore[attr-defined]  # for the certificate
    return test_conformance


def _resolve_specs(spec_or_target: Any) -> list[DecoderSpec]:
    from conformance.core.spec import DecoderSpec, load_target

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

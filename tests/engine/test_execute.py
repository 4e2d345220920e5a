"""Running one check in this process: every check runs and is reported, whatever the decoder does."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

import conformance.engine.inprocess as inprocess
from conformance import ALL_CHECKS, Certification, certify, run_check
from conformance.checks.registry import Check
from conformance.core.outcomes import CheckSkipped
from reference_decoders.toy import toy_spec

from tests.support.decoders import (
    RELEASE_HUNG,
    DropsHistoryAtSeams,
    FactoryRaises,
    ForwardHangs,
    ForwardRaises,
    ForwardReturnsTuple,
    spec_for,
)

ALL_IDS = [check.id for check in ALL_CHECKS]
DECODING_CHECKS = [
    "decoded_sizes_match_mappers",
    "chunked_decode_matches_full_decode",
    "forward_accepts_keyword_call",
    "rollout_state_machine",
]


@pytest.fixture(scope="module", autouse=True)
def _release_hung_threads() -> Iterator[None]:
    yield
    RELEASE_HUNG.set()


def test_factory_that_raises_runs_no_check_and_says_why_once_per_check() -> None:
    certification = certify(spec_for(FactoryRaises, "factory-raises"), profile="quick", seed=0)
    assert [r.check_id for r in certification.results] == ALL_IDS
    for result in certification.results:
        assert result.status == "not_run", (result.check_id, result.message)
        assert "could not be built" in result.message and "FileNotFoundError" in result.message
        assert "weights.safetensors" in result.message
    assert not certification.certified


def test_forward_that_raises_fails_decoding_checks_naming_the_call() -> None:
    certification = certify(spec_for(ForwardRaises, "forward-raises"), profile="quick", seed=0)
    assert "error" not in {r.status for r in certification.results}
    for check_id in DECODING_CHECKS:
        result = certification.result(check_id)
        assert result.status == "failed"
        assert "forward at AR 0" in result.message and "RuntimeError: out of cheese" in result.message
    assert certification.result("temporal_mappers_round_trip").status == "passed"
    assert certification.result("ratios_are_positive_constant_ints").status == "passed"


def test_wrong_return_type_is_a_failure_saying_what_was_expected() -> None:
    result = run_check(spec_for(ForwardReturnsTuple, "tuple"), "forward_accepts_keyword_call", profile="quick", seed=0)
    assert result.status == "failed"
    assert "returned tuple" in result.message and "expected a torch.Tensor" in result.message


def test_hanging_forward_times_out_and_the_other_checks_still_run() -> None:
    # A timeout long enough for the mapper check on a loaded machine (it makes ~10^5 calls).
    spec = spec_for(ForwardHangs, "hangs", check_timeout_s=3.0)
    chosen = ["temporal_mappers_monotone_and_steady", "forward_accepts_keyword_call", "decoding_is_deterministic"]
    started = time.perf_counter()
    certification = certify(spec, profile="quick", seed=0, check_ids=chosen)
    assert time.perf_counter() - started < 30  # two timeouts, not two hangs
    statuses = {r.check_id: r.status for r in certification.results}
    assert statuses == {
        "temporal_mappers_monotone_and_steady": "passed",
        "forward_accepts_keyword_call": "failed",
        "decoding_is_deterministic": "failed",
    }
    message = certification.result("forward_accepts_keyword_call").message
    assert "did not return within 3 s" in message and "forward at AR 0" in message


def _fake_check(monkeypatch: pytest.MonkeyPatch, function) -> str:  # type: ignore[no-untyped-def]
    check = Check(id="forward_accepts_keyword_call", category="forward_contract", function=function)
    monkeypatch.setattr(inprocess, "get_check", lambda check_id: check)
    return check.id


def test_a_bug_in_the_kit_is_an_error_with_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def buggy(ctx) -> None:  # type: ignore[no-untyped-def]
        ctx.evidence.examples += 1
        {}["missing"]

    check_id = _fake_check(monkeypatch, buggy)
    result = run_check(toy_spec(), check_id, seed=0)
    assert result.status == "error"
    assert "internal error in the conformance kit" in result.message
    assert "KeyError" in result.message and "Traceback" in result.message


def test_a_pass_that_exercised_nothing_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    check_id = _fake_check(monkeypatch, lambda ctx: None)
    result = run_check(toy_spec(), check_id, seed=0)
    assert result.status == "failed" and "exercised nothing" in result.message


def test_skip_keeps_its_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def skip(ctx) -> None:  # type: ignore[no-untyped-def]
        raise CheckSkipped("deepcopy unsupported: because")

    check_id = _fake_check(monkeypatch, skip)
    result = run_check(toy_spec(), check_id, seed=0)
    assert (result.status, result.message) == ("skipped", "deepcopy unsupported: because")


def test_expected_failures_become_xfailed_and_stale_ones_fail() -> None:
    spec = spec_for(
        DropsHistoryAtSeams,
        "expected",
        expected_failures={
            "chunked_decode_matches_full_decode": "seams drop history (bug 7)",
            "temporal_mappers_round_trip": "believed broken",
        },
    )
    checks = ["chunked_decode_matches_full_decode", "temporal_mappers_round_trip", "rollout_state_machine"]
    certification = certify(spec, profile="quick", seed=0, check_ids=checks)
    xfailed = certification.result("chunked_decode_matches_full_decode")
    assert xfailed.status == "xfailed"
    assert "seams drop history (bug 7)" in xfailed.message and "chunked decode differs" in xfailed.message
    stale = certification.result("temporal_mappers_round_trip")
    assert stale.status == "failed" and "stale expected failure" in stale.message
    assert certification.result("rollout_state_machine").status == "failed"  # not declared
    assert not certification.certified


def test_an_expected_failure_does_not_cover_a_crash() -> None:
    # Strict expectations (tests/workflow/test_workflow_strictness.py has the other cases).
    spec = spec_for(ForwardRaises, "crash", expected_failures={"forward_accepts_keyword_call": "known"})
    result = certify(spec, profile="quick", seed=0, check_ids=["forward_accepts_keyword_call"]).results[0]
    assert result.status == "failed"
    assert "failed in another way" in result.message and "out of cheese" in result.message


def test_xfailed_alone_does_not_block_certification() -> None:
    spec = spec_for(
        DropsHistoryAtSeams, "xfail-only", expected_failures={"chunked_decode_matches_full_decode": "known"}
    )
    certification = certify(spec, profile="quick", seed=0, check_ids=["chunked_decode_matches_full_decode"])
    assert certification.counts()["xfailed"] == 1
    assert all(result.ok for result in certification.results)
    # ... but a run of some checks only never certifies.
    assert certification.subset and not certification.certified


def test_a_subset_run_never_certifies() -> None:
    certification = certify(toy_spec(), profile="quick", seed=0, check_ids=["forward_accepts_keyword_call"])
    assert certification.results[0].status == "passed"
    assert certification.subset and not certification.complete and not certification.certified


def test_unknown_expected_failure_ids_are_rejected_up_front() -> None:
    spec = toy_spec(expected_failures={"no_such_check": "typo"})
    with pytest.raises(ValueError, match="no_such_check"):
        certify(spec)
    with pytest.raises(ValueError, match="no_such_check"):
        run_check(spec, "forward_accepts_keyword_call")


def test_bad_profile_and_check_ids_are_rejected() -> None:
    with pytest.raises(ValueError, match="quick"):
        certify(toy_spec(), profile="fast")
    with pytest.raises(KeyError, match="forward_accepts_keyword_call"):
        certify(toy_spec(), check_ids=["forward_accepts"])


def test_seed_is_recorded_and_replays_exactly() -> None:
    checks = ["chunked_decode_matches_full_decode", "rollout_state_machine"]
    first = certify(toy_spec(), profile="quick", check_ids=checks)
    assert isinstance(first.seed, int)
    again = certify(toy_spec(), profile="quick", seed=first.seed, check_ids=checks)
    for a, b in zip(first.results, again.results):
        assert a.evidence == b.evidence
    # A check run alone sees exactly what it saw inside the full run.
    alone = run_check(toy_spec(), "rollout_state_machine", profile="quick", seed=first.seed)
    assert alone.evidence == first.result("rollout_state_machine").evidence


def test_a_failure_carries_its_replay_command_apart_from_its_message() -> None:
    result = run_check(spec_for(ForwardRaises, "r"), "chunked_decode_matches_full_decode", profile="quick", seed=11)
    assert result.status == "failed"
    assert result.replay == (
        "python -m conformance certify <TARGET> --check chunked_decode_matches_full_decode "
        "--seed 11 --profile quick"
    )
    assert "Replay" not in result.message  # built from data where it is shown, never parsed back
    assert "Minimal failing example (Hypothesis, shrunk):" in result.message
    assert "plan=(" in result.message  # the shrunk call itself, whatever Hypothesis calls it


def test_certification_records_the_environment() -> None:
    certification = certify(toy_spec(), profile="quick", seed=3, check_ids=["forward_accepts_keyword_call"])
    assert isinstance(certification, Certification)
    env = certification.environment
    for key in ("kit_version", "python", "torch", "hypothesis", "platform", "device", "dtype"):
        assert key in env
    assert env["device"] == "cpu" and env["dtype"] == "float32"
    assert (certification.seed, certification.profile, certification.decoder) == (3, "quick", "toy-causal")


def test_a_timeout_while_shrinking_still_reports_the_bug_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from hypothesis import strategies as st

    from conformance.core.outcomes import CheckFailed
    from conformance.checks.harness.search import run_property

    release = threading.Event()

    def search_that_cannot_finish_shrinking(ctx) -> None:  # type: ignore[no-untyped-def]
        calls = []

        def prop(x: int) -> None:
            ctx.evidence.examples += 1
            calls.append(x)
            if len(calls) > 1:  # every example after the first blocks: shrinking never ends
                release.wait(timeout=30)
            raise CheckFailed(f"example {x} is wrong")

        run_property(ctx, prop, max_examples=10, x=st.integers())

    check_id = _fake_check(monkeypatch, search_that_cannot_finish_shrinking)
    try:
        result = run_check(toy_spec(check_timeout_s=2.0), check_id, seed=0)
    finally:
        release.set()
    assert result.status == "failed"
    assert "is wrong" in result.message and "did not finish" in result.message


def test_cache_context_keys_may_be_any_name_even_the_call_helpers_own() -> None:
    from reference_decoders.toy import ToyDecoderConfig, ToyVideoDecoder

    class TakesAnyContext(ToyVideoDecoder):
        def initialize_autoregressive_cache(self, **context):  # type: ignore[no-untyped-def]
            return super().initialize_autoregressive_cache()

    spec = toy_spec(
        factory=lambda: TakesAnyContext(ToyDecoderConfig()),
        cache_context={"fn": print, "what": "a prompt"},
    )
    certification = certify(spec, profile="quick", seed=0, check_ids=["cache_init_accepts_context",
                                                                     "forward_accepts_keyword_call"])
    assert [r.status for r in certification.results] == ["passed", "passed"], certification.results


def test_an_oversized_latent_size_is_refused_when_the_spec_is_made_naming_it() -> None:
    with pytest.raises(ValueError, match="toy-causal.*latent_size"):
        toy_spec(latent_size=(8192, 8192))


def test_the_failing_fixed_program_is_shrunk_to_the_steps_that_matter() -> None:
    from tests.zoo.chunking import history_dropped_at_seams

    result = run_check(history_dropped_at_seams(), "rollout_state_machine", profile="quick", seed=3)
    assert result.status == "failed"
    program = result.message.split("Failing program", 1)[1].split("Hypothesis seed", 1)[0]
    steps = [line.strip() for line in program.splitlines()[1:] if line.strip()]
    # A seam bug needs one rollout and two steps; the fixed program's forks and other
    # rollouts have nothing to do with it and are shrunk away.
    assert not any("fork(" in step for step in steps), steps
    assert len(steps) <= 3, steps

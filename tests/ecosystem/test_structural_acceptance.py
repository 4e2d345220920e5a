"""The kit judges any implementation of the interface, whichever copy of the base classes
it derives from (conformance.core.interface), and names everything a non-decoder lacks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from conformance import DecoderSpec, certify
from conformance.bases import DecoderConfig, StreamingDecoder, StreamingDecoderCache, StreamingVideoDecoder
from conformance.checks.harness.context import CheckContext
from conformance.core.interface import cache_problems, decoder_problems
from conformance.core.outcomes import DecoderError
from conformance.core.profiles import get_profile
from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder

from tests.support.standin import standin_modules

foreign_decoder, foreign_specs, foreign_video = standin_modules(
    "flashdreams.infra.decoder", "standin_video.specs", "standin_video.decoder"
)


def _context(spec: DecoderSpec) -> CheckContext:
    return CheckContext(spec, get_profile("quick"), check_id="structural", seed=1, run_seed=1)


def _spec(factory: Any, **fields: Any) -> DecoderSpec:
    return DecoderSpec(name="structural", factory=factory, latent_channels=4, latent_size=(2, 2), **fields)


def test_the_stand_in_base_is_another_copy_with_the_same_names() -> None:
    # The situation of the issue: same qualified names, other class objects.
    theirs, ours = foreign_decoder.StreamingVideoDecoder, StreamingVideoDecoder
    assert theirs is not ours
    assert theirs.__qualname__ == ours.__qualname__
    assert theirs.__module__ == "flashdreams.infra.decoder.base"
    assert not issubclass(foreign_video.StandinVideoDecoder, ours)


def test_a_decoder_on_another_copy_of_the_interface_is_certified() -> None:
    cert = certify(foreign_specs.standin_spec(), profile="quick", seed=11)
    failed = {r.check_id: r.message for r in cert.results if r.status not in ("passed", "skipped")}
    assert cert.certified, failed


def test_its_seeded_bug_fails_on_its_merits_not_on_its_base_class() -> None:
    cert = certify(
        foreign_specs.bug_spec("bug_negative_zero_frames"),
        profile="quick",
        seed=11,
        check_ids=["temporal_mappers_monotone_and_steady", "chunked_decode_matches_full_decode"],
    )
    status = {r.check_id: r.status for r in cert.results}
    assert status == {
        "temporal_mappers_monotone_and_steady": "failed",
        "chunked_decode_matches_full_decode": "passed",
    }, [r.message for r in cert.results]


class _NotQuiteADecoder(nn.Module):
    """Ratios and one mapper, a forward with the wrong keyword, no cache initializer."""

    spatial_compression_ratio = 2
    temporal_compression_ratio = 4

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return input_temporal_size

    def forward(self, input: torch.Tensor, ar_idx: int = 0, cache: Any = None) -> torch.Tensor:
        return input


def test_one_message_names_everything_missing() -> None:
    ctx = _context(_spec(_NotQuiteADecoder))
    with pytest.raises(DecoderError) as caught:
        ctx.decoder()
    message = str(caught.value)
    assert f"returned _NotQuiteADecoder (a torch.nn.Module from {__name__}), which does not honour the StreamingVideoDecoder interface" in message
    assert "lacks get_input_temporal_size, initialize_autoregressive_cache" in message
    assert "forward does not accept keyword 'autoregressive_index'" in message
    assert message.count("\n") == 0


class _GenericStreamer(StreamingDecoder):  # type: ignore[misc, type-arg]
    """The framework's generic template, not a video decoder: no ratios, no mappers."""

    def initialize_autoregressive_cache(self, **context: Any) -> Any:
        return None

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        return input


def test_a_plain_streaming_decoder_is_named_as_outside_the_contract() -> None:
    ctx = _context(_spec(lambda: _GenericStreamer(DecoderConfig())))
    with pytest.raises(DecoderError) as caught:
        ctx.decoder()
    message = str(caught.value)
    assert "_GenericStreamer (a torch.nn.Module from" in message
    assert "lacks spatial_compression_ratio" in message
    assert "derives from StreamingDecoder, the framework's generic streaming template" in message
    assert "outside the contract" in message


def test_a_config_returned_instead_of_a_decoder_is_named() -> None:
    problems = decoder_problems(ToyDecoderConfig())
    assert problems == ["it is not a torch.nn.Module"]
    assert "not an instance" in decoder_problems(foreign_video.StandinVideoDecoder)[0]


class _Wrapper(nn.Module):
    """A wrapper that serves the wrapped decoder's members through ``__getattr__``
    (as compile and offload wrappers do), with a forward taking ``**kwargs``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["inner"], name)

    def forward(self, **kwargs: Any) -> Any:
        return self.inner(**kwargs)


class _RaisingRatio(_NotQuiteADecoder):
    @property
    def spatial_compression_ratio(self) -> int:  # type: ignore[override]
        raise RuntimeError("not configured")


def test_structural_acceptance_has_no_false_alarms() -> None:
    toy = ToyDecoderConfig().setup()
    assert decoder_problems(toy) == []
    assert decoder_problems(_Wrapper(toy)) == []
    # A cache initializer that needs a keyword the spec's cache_context supplies.
    class NeedsBatch(type(toy)):  # type: ignore[misc]
        def initialize_autoregressive_cache(self, *, batch_size: int, **context: Any) -> Any:
            return ToyDecoderCache()

    config = ToyDecoderConfig()
    config._target = NeedsBatch
    assert decoder_problems(config.setup()) == []
    # A ratio property that raises exists; its value is the ratio check's business.
    assert not any("spatial_compression_ratio" in p for p in decoder_problems(_RaisingRatio()))


def test_caches_are_judged_by_the_spec_not_by_class_identity() -> None:
    foreign_cache = foreign_video.StandinCache()
    assert not isinstance(foreign_cache, StreamingDecoderCache)
    assert cache_problems(foreign_cache) == []
    assert cache_problems(ToyDecoderCache()) == []

    @dataclass
    class PlainDataclassCache:
        frames: list[torch.Tensor]

    assert cache_problems(PlainDataclassCache(frames=[])) == []
    assert "None" in cache_problems(None)[0]
    assert "dict" in cache_problems({"history": None})[0]
    assert "not a cache instance" in cache_problems(ToyDecoderCache)[0]


class _DictCacheToy(nn.Module):
    spatial_compression_ratio = 1
    temporal_compression_ratio = 1

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return output_temporal_size

    def initialize_autoregressive_cache(self, **context: Any) -> dict[str, Any]:
        return {}

    def forward(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        return input


def test_a_cache_that_is_not_a_cache_is_one_clear_decoder_error() -> None:
    ctx = _context(_spec(_DictCacheToy))
    decoder = ctx.decoder()  # the decoder itself honours the interface
    with pytest.raises(DecoderError, match="initialize_autoregressive_cache returned the cache dict"):
        ctx.new_cache(decoder)


class _HostileMembers(ToyVideoDecoder):
    """Members that raise on lookup: the structural check must name them, not crash."""

    @property
    def forward(self) -> Any:  # type: ignore[override]
        raise RuntimeError("forward unavailable")

    @property
    def get_input_temporal_size(self) -> Any:  # type: ignore[override]
        raise KeyError("mapper table missing")


class _CallOverride(nn.Module):
    """A decoder whose call shape is its own ``__call__`` (forward left unimplemented)."""

    spatial_compression_ratio = 1
    temporal_compression_ratio = 1

    def get_output_temporal_size(self, autoregressive_index: int, input_temporal_size: int) -> int:
        return input_temporal_size

    def get_input_temporal_size(self, autoregressive_index: int, output_temporal_size: int) -> int:
        return output_temporal_size

    def initialize_autoregressive_cache(self, **context: Any) -> Any:
        return ToyDecoderCache()

    def __call__(self, input: torch.Tensor, autoregressive_index: int = 0, cache: Any = None) -> torch.Tensor:
        return input


def test_hostile_or_unusual_members_get_named_never_crash_the_kit() -> None:
    config = ToyDecoderConfig()
    config._target = _HostileMembers
    assert decoder_problems(config.setup()) == [
        "get_input_temporal_size is not callable",
        "forward cannot be looked up",
    ]
    assert decoder_problems(_CallOverride()) == []
    assert "forward does not accept keywords 'autoregressive_index', 'cache'" in (
        decoder_problems(nn.Linear(2, 2))[-1]
    )


def test_string_annotations_are_shown_as_written() -> None:
    from conformance.core.interface import signature_text
    import inspect

    def forward(x: torch.Tensor, idx: int = 0, state: ToyDecoderCache | None = None) -> torch.Tensor:
        return x

    # This module postpones its annotations (``from __future__ import annotations``), as
    # the framework's do: each annotation is the string written.
    assert inspect.signature(forward).return_annotation == "torch.Tensor"
    assert signature_text(inspect.signature(forward)) == (
        "(x: torch.Tensor, idx: int = 0, state: ToyDecoderCache | None = None) -> torch.Tensor"
    )

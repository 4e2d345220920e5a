"""DecoderSpec validation and target loading: bad input gets a message saying what was expected."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from conformance import DecoderSpec, TargetError, load_target
from reference_decoders.toy import toy_spec


def test_defaults_follow_the_contract() -> None:
    spec = toy_spec()
    assert spec.layout == "BCTHW"
    assert spec.output_layout is None and spec.resolved_output_layout == "BCTHW"
    assert spec.output_channels == 3 and spec.batch_size == 1
    assert spec.dtype == torch.float32 and spec.resolved_output_dtype == torch.float32
    assert spec.device == "cpu" and dict(spec.cache_context) == {}
    assert spec.atol is None and spec.rtol is None and dict(spec.expected_failures) == {}
    assert spec.check_timeout_s is None and spec.max_chunk_frames is None


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"layout": "BCTH"}, ["layout", "permutation"]),
        ({"layout": "bcthw"}, ["layout"]),
        ({"output_layout": "BCTHX"}, ["output_layout"]),
        ({"latent_size": (4,)}, ["latent_size"]),
        ({"latent_size": (0, 4)}, ["latent_size"]),
        ({"latent_channels": 0}, ["latent_channels"]),
        ({"batch_size": True}, ["batch_size"]),
        ({"dtype": "float32"}, ["dtype"]),
        ({"device": "gpu-please"}, ["device"]),
        ({"atol": -1.0}, ["atol"]),
        ({"check_timeout_s": 0}, ["check_timeout_s"]),
        ({"max_chunk_frames": 0}, ["max_chunk_frames"]),
        ({"factory": "not callable"}, ["factory"]),
        ({"expected_failures": {"x": 1}}, ["expected_failures"]),
        ({"name": ""}, ["name"]),
    ],
)
def test_invalid_fields_are_rejected_with_the_field_named(overrides: dict, words: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        toy_spec(**overrides)
    for word in words:
        assert word in str(info.value)


def test_mappings_are_read_only_copies() -> None:
    context = {"batch_size": 1}
    spec = toy_spec(cache_context=context)
    context["batch_size"] = 2
    assert spec.cache_context["batch_size"] == 1
    with pytest.raises(TypeError):
        spec.cache_context["x"] = 1  # type: ignore[index]
    hash(spec)  # specs stay usable as dict keys


@pytest.fixture
def target_module() -> types.ModuleType:
    module = types.ModuleType("engine_targets_for_tests")
    module.spec = toy_spec()  # type: ignore[attr-defined]
    module.many = lambda: [toy_spec(name="a"), toy_spec(name="b")]  # type: ignore[attr-defined]
    module.tuple_of = (toy_spec(name="c"),)  # type: ignore[attr-defined]
    module.empty = lambda: []  # type: ignore[attr-defined]
    module.number = 3  # type: ignore[attr-defined]
    module.broken = lambda: 1 / 0  # type: ignore[attr-defined]
    module.ns = types.SimpleNamespace(inner=toy_spec(name="inner"))  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_load_target_accepts_spec_list_tuple_callable_and_dotted_path(target_module: types.ModuleType) -> None:
    name = target_module.__name__
    assert [s.name for s in load_target(f"{name}:spec")] == ["toy-causal"]
    assert [s.name for s in load_target(f"{name}:many")] == ["a", "b"]
    assert [s.name for s in load_target(f"{name}:tuple_of")] == ["c"]
    assert [s.name for s in load_target(f"{name}:ns.inner")] == ["inner"]
    assert [s.name for s in load_target("reference_decoders.toy:toy_spec")] == ["toy-causal"]


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("no_colon_here", ["MODULE:ATTR"]),
        ("a:b:c", ["MODULE:ATTR"]),
        (":attr", ["MODULE:ATTR"]),
        ("module_that_does_not_exist_xyz:spec", ["importing", "ModuleNotFoundError"]),
        ("{mod}:missing", ["no attribute", "missing"]),
        ("{mod}:number", ["int", "DecoderSpec"]),
        ("{mod}:empty", ["DecoderSpec"]),
        ("{mod}:broken", ["ZeroDivisionError", "calling"]),
    ],
)
def test_load_target_errors_say_what_failed(target_module: types.ModuleType, target: str, words: list[str]) -> None:
    with pytest.raises(TargetError) as info:
        load_target(target.format(mod=target_module.__name__))
    for word in words:
        assert word in str(info.value)


def test_spec_and_default_target_are_importable_from_the_package_root() -> None:
    import conformance

    assert conformance.DecoderSpec is DecoderSpec
    assert isinstance(load_target(conformance.DEFAULT_TARGET)[0], DecoderSpec)

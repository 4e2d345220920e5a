"""Scaffolding shared by the zoo: case records, spec builders and the plain toy base.

Every broken decoder in the zoo is a correct decoder with exactly one bug injected, so
that when the kit catches it we know *which* promise caught it. Most are derived from
:class:`PlainToy`, the bundled toy decoder minus its own index-order guard: real
decoders rarely validate the autoregressive index, and a guard that raises would let a
check "catch" a cache bug by accident instead of by comparing outputs. ``PlainToy`` is
itself in the list of correct decoders, so every bug below is the only difference
between a certified decoder and a broken one.

A case is a zero-argument callable returning a :class:`conformance.DecoderSpec`, so
``tests.zoo.<module>:<case>`` is also a valid ``MODULE:ATTR`` target for the CLI and the
pytest plugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from reference_decoders.toy import ToyDecoderCache, ToyDecoderConfig, ToyVideoDecoder

if TYPE_CHECKING:
    from conformance import DecoderSpec

__all__ = [
    "LATENT_SIZE",
    "filled",
    "BrokenCase",
    "CorrectCase",
    "PlainToy",
    "broken",
    "correct",
    "toy_spec_factory",
]

#: Latent (height, width) every zoo spec uses: small enough for thousands of calls.
LATENT_SIZE = (4, 4)


@dataclass(frozen=True)
class BrokenCase:
    """A decoder with one injected bug, and the checks that must report it as failed.

    ``hints`` are words of which at least one must appear (case-insensitively) in each
    failure message: a failure has to point at the problem, not just exist. They are
    deliberately loose alternatives so the engine may word its messages freely.
    ``unbuildable`` marks decoders that cannot even be built (the factory fails, or builds
    something that is not a streaming video decoder): the kit says so once, no check
    runs (every one is ``not_run`` with the reason), the decoder is not certified, and
    none counts towards per-check coverage. ``kit_gaps`` maps a check id to a reported kit finding (see ``tests/zoo/README.md``)
    for checks the kit still gets wrong on this decoder: a ``must_fail`` check that does
    not catch the bug yet, or any check that reports an internal kit ``error`` for it.
    While the kit is wrong the proof test reports an expected failure naming the
    finding; once fixed, the ordinary assertions apply and the entry should be deleted.
    """

    name: str
    spec_factory: Callable[[], DecoderSpec]
    must_fail: frozenset[str]
    bug: str
    hints: tuple[str, ...] = ()
    unbuildable: bool = False
    kit_gaps: Mapping[str, str] = field(default_factory=dict, compare=False)
    #: Profile the proof tests run this case with (``None``: the zoo's ``PROFILE``). Set to
    #: ``"default"`` for bugs the default profile must catch but the quick one cannot
    #: afford to look for (a write 2 s after return, a mapper wrong only at AR 10^4).
    profile: str | None = None

    def __call__(self) -> DecoderSpec:
        return self.spec_factory()


@dataclass(frozen=True)
class CorrectCase:
    """A correct decoder (often an unusual one) that the kit must certify.

    ``must_skip`` lists the checks that cannot apply to it (for example forking when
    its cache cannot be deep-copied): the kit must report them skipped with a reason,
    never a vacuous pass. Any other skip is a finding.
    ``kit_gaps`` maps a check id to a reported kit finding for checks that still raise
    a false alarm on this decoder (an expected failure while it does; every other check
    is still held to the ordinary rule).
    """

    name: str
    spec_factory: Callable[[], DecoderSpec]
    why: str
    must_skip: frozenset[str] = field(default_factory=frozenset)
    kit_gaps: Mapping[str, str] = field(default_factory=dict, compare=False)

    def __call__(self) -> DecoderSpec:
        return self.spec_factory()


class PlainToy(ToyVideoDecoder):
    """The bundled toy decoder without its autoregressive-index bookkeeping.

    Correct: it decodes exactly like :class:`ToyVideoDecoder`, it just trusts the
    caller's index instead of asserting it matches ``cache.next_index``.
    """

    def _check_call(
        self, input: torch.Tensor, autoregressive_index: int, cache: ToyDecoderCache | None
    ) -> ToyDecoderCache:
        if cache is not None:
            cache.next_index = autoregressive_index
        return super()._check_call(input, autoregressive_index, cache)


def filled(history: torch.Tensor | None) -> torch.Tensor:
    """A cache history that the toy's ``forward`` has just written (never ``None`` then)."""
    if history is None:
        raise AssertionError("the toy decoder left a history empty after a step")
    return history


def toy_spec_factory(
    name: str,
    decoder_cls: type[ToyVideoDecoder],
    *,
    config: dict[str, Any] | None = None,
    **spec_fields: Any,
) -> Callable[[], DecoderSpec]:
    """A zero-argument spec builder for a toy-derived decoder class.

    The factory builds a new decoder (from a new config) on every call, as the kit
    expects. ``config`` patches :class:`ToyDecoderConfig`; ``spec_fields`` patch the spec.
    """
    config_changes = dict(config or {})

    def build() -> DecoderSpec:
        from conformance import DecoderSpec

        probe = ToyDecoderConfig(**config_changes)
        fields: dict[str, Any] = dict(
            name=name,
            factory=lambda: decoder_cls(ToyDecoderConfig(**config_changes)),
            latent_channels=probe.latent_channels,
            latent_size=LATENT_SIZE,
            output_channels=probe.output_channels,
            dtype=probe.dtype,
        )
        fields.update(spec_fields)
        return DecoderSpec(**fields)

    build.__name__ = build.__qualname__ = re.sub(r"\W", "_", name)
    return build


def _kebab(class_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", class_name).lower()


def _summary(obj: Any) -> str:
    doc = (obj.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def broken(
    decoder_cls: type[ToyVideoDecoder],
    *,
    must_fail: set[str],
    hints: tuple[str, ...] = (),
    kit_gaps: Mapping[str, str] | None = None,
    config: dict[str, Any] | None = None,
    profile: str | None = None,
    unbuildable: bool = False,
    **spec_fields: Any,
) -> BrokenCase:
    """Register a toy-derived broken decoder; its docstring's first paragraph is the bug."""
    name = "zoo-" + _kebab(decoder_cls.__name__)
    return BrokenCase(
        name=name,
        spec_factory=toy_spec_factory(name, decoder_cls, config=config, **spec_fields),
        must_fail=frozenset(must_fail),
        bug=_summary(decoder_cls),
        hints=hints,
        kit_gaps=dict(kit_gaps or {}),
        profile=profile,
        unbuildable=unbuildable,
    )


def correct(
    decoder_cls: type[ToyVideoDecoder],
    *,
    name: str | None = None,
    must_skip: set[str] = frozenset(),  # type: ignore[assignment]
    kit_gaps: Mapping[str, str] | None = None,
    config: dict[str, Any] | None = None,
    **spec_fields: Any,
) -> CorrectCase:
    """Register a toy-derived correct decoder; its docstring's first paragraph says why."""
    name = name or "zoo-ok-" + _kebab(decoder_cls.__name__)
    return CorrectCase(
        name=name,
        spec_factory=toy_spec_factory(name, decoder_cls, config=config, **spec_fields),
        why=_summary(decoder_cls),
        must_skip=frozenset(must_skip),
        kit_gaps=dict(kit_gaps or {}),
    )

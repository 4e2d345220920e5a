"""Decoders that installed packages register for certification (entry points).

A package that ships a streaming decoder registers its spec under the entry-point group
``flashdreams.conformance.decoders``; the value is an ordinary target::

    # the decoder package's pyproject.toml
    [project.entry-points."flashdreams.conformance.decoders"]
    acme-causal = "acme_video.specs:causal_spec"

Then ``python -m conformance certify --installed`` and ``pytest --conformance-installed``
certify every registered decoder, without anyone listing targets by hand: a CI job or a
reviewer runs one command for whatever is installed.

Loading goes through :func:`conformance.core.spec.load_target`, so a registered target means
exactly what it means on the command line. One registration that cannot be loaded (an
import error, a typo in the value, an invalid spec) is reported as unloadable with the
reason, and the others are still certified.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from conformance.core.spec import DecoderSpec, TargetError, load_target

__all__ = [
    "ENTRY_POINT_GROUP",
    "LoadedDecoders",
    "RegisteredDecoder",
    "Unloadable",
    "load_installed",
    "no_decoders_registered_message",
    "registered_decoders",
]

#: The entry-point group a package registers its decoder specs under.
ENTRY_POINT_GROUP = "flashdreams.conformance.decoders"


@dataclass(frozen=True)
class RegisteredDecoder:
    """One entry point of the group: its name, its ``MODULE:ATTR`` target, its package."""

    name: str
    target: str
    distribution: str | None

    @property
    def label(self) -> str:
        """How messages name it: ``name = target (from distribution)``."""
        origin = f" (from {self.distribution})" if self.distribution else ""
        return f"{self.name} = {self.target}{origin}"


@dataclass(frozen=True)
class Unloadable:
    """A registered decoder whose target could not be loaded, and why."""

    name: str
    target: str
    distribution: str | None
    error: str


@dataclass(frozen=True)
class LoadedDecoders:
    """What :func:`load_installed` found: specs by target, and the registrations that failed."""

    loaded: list[tuple[RegisteredDecoder, list[DecoderSpec]]]
    unloadable: list[Unloadable]

    @property
    def specs(self) -> list[tuple[str, DecoderSpec]]:
        """``(target, spec)`` for every loaded spec, in registration order."""
        return [(entry.target, spec) for entry, specs in self.loaded for spec in specs]


def registered_decoders() -> list[RegisteredDecoder]:
    """Every entry point in :data:`ENTRY_POINT_GROUP`, sorted by name then target.

    ``importlib.metadata`` reads the ``entry_points.txt`` of every distribution on
    ``sys.path`` each time, so a package installed (or a path added) during the process
    is seen. A target with extras (``mod:attr [extra]``) keeps only ``mod:attr``.
    """
    found = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = getattr(entry_point, "dist", None)
        found.append(
            RegisteredDecoder(
                name=entry_point.name,
                target=entry_point.value.split("[", 1)[0].strip(),
                distribution=None if distribution is None else distribution.metadata["Name"],
            )
        )
    unique = {(entry.name, entry.target): entry for entry in found}  # a path listed twice
    return sorted(unique.values(), key=lambda entry: (entry.name, entry.target))


def load_installed(entries: list[RegisteredDecoder] | None = None) -> LoadedDecoders:
    """Load every registered decoder's specs; one failure never stops the others.

    A registration fails to load when its target cannot be loaded
    (:class:`~conformance.core.spec.TargetError`: bad syntax, import error, missing attribute,
    wrong type) or names an unknown check in ``expected_failures``.
    """
    from conformance.engine.runner import validate_expected_failures

    loaded: list[tuple[RegisteredDecoder, list[DecoderSpec]]] = []
    unloadable: list[Unloadable] = []
    for entry in registered_decoders() if entries is None else entries:
        try:
            specs = load_target(entry.target)
            for spec in specs:
                validate_expected_failures(spec)
        except (TargetError, ValueError) as error:
            unloadable.append(Unloadable(entry.name, entry.target, entry.distribution, str(error)))
        else:
            loaded.append((entry, specs))
    return LoadedDecoders(loaded, unloadable)


def no_decoders_registered_message() -> str:
    """What to tell someone who asked for the installed decoders when there are none."""
    return (
        f"no decoders are registered under the entry-point group {ENTRY_POINT_GROUP!r}. "
        "A package registers its decoder spec in its pyproject.toml:\n"
        f'    [project.entry-points."{ENTRY_POINT_GROUP}"]\n'
        '    my-decoder = "my_package.specs:my_spec"\n'
        "and must then be installed (pip install -e .) in this environment"
    )

"""Decoders that installed packages register for certification (entry points).

A package that ships a streaming decoder registers its spec under the entry-point group
``flashdreams.conformance.decoders``; the value is an ordinary target::

    # the decoder package's pyproject.toml
    [project.entry-points."flashdreams.conformance.decoders"]
    acme-causal = "acme_video.specs:causal_spec"

Then ``python -m conformance certify --installed`` and ``pytest --conformance-installed``
certify every registered decoder, without anyone listing targets by hand: a CI job or a
reviewer runs one command for whatever is installed. A registered target means exactly
what it means on the command line (:mod:`conformance.core.targets`); reading the
registrations imports nothing of the registering packages.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

__all__ = ["ENTRY_POINT_GROUP", "RegisteredDecoder", "no_decoders_registered_message", "registered_decoders"]

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


def no_decoders_registered_message() -> str:
    """What to tell someone who asked for the installed decoders when there are none."""
    return (
        f"no decoders are registered under the entry-point group {ENTRY_POINT_GROUP!r}. "
        "A package registers its decoder spec in its pyproject.toml:\n"
        f'    [project.entry-points."{ENTRY_POINT_GROUP}"]\n'
        '    my-decoder = "my_package.specs:my_spec"\n'
        "and must then be installed (pip install -e .) in this environment"
    )

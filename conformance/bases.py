"""The one place the kit and its bundled decoders get the interface base classes from.

Decoder frameworks (NVIDIA's flashdreams and projects built like it) ship their own
top-level ``flashdreams`` package, with their own copy of ``flashdreams.infra.decoder``.
This kit must install next to such a distribution without overwriting or shadowing it,
so its distribution installs no ``flashdreams`` files at all: it carries the interface
under the private name ``conformance._flashdreams`` (built from this repository's
``flashdreams/`` folder) and resolves, once per process:

1. ``FLASHDREAMS_CONFORMANCE_INTERFACE=bundled`` forces the private copy;
   ``=installed`` requires an importable ``flashdreams.infra.decoder`` (error otherwise);
2. otherwise (``auto``, the default) an importable ``flashdreams.infra.decoder`` that
   provides the interface's names, and whose configs the bundled decoders' configs can
   derive from (see ``_usable``), is used: whichever distribution provides it (the
   framework, this repository's checkout, or the optional ``flashdreams-interface``
   distribution in ``packaging/``), so bundled decoders subclass the framework's classes;
3. else the kit's private copy.

Which copy was chosen never matters to the checks: they judge decoders structurally
(:mod:`conformance.core.interface`), so decoders built on any copy certify on their merits.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from types import ModuleType
from typing import TYPE_CHECKING

from torch import nn

__all__ = [
    "BUNDLED_PACKAGE",
    "ENVIRONMENT_VARIABLE",
    "PUBLIC_PACKAGE",
    "SOURCE",
    "SOURCE_NOTE",
    "DecoderConfig",
    "InstantiateConfig",
    "StreamingDecoder",
    "StreamingDecoderCache",
    "StreamingVideoDecoder",
]

#: Environment variable choosing the interface copy: ``auto`` (default), ``installed``, ``bundled``.
ENVIRONMENT_VARIABLE = "FLASHDREAMS_CONFORMANCE_INTERFACE"
#: The public package name decoder frameworks install.
PUBLIC_PACKAGE = "flashdreams"
#: The kit's private copy of the interface (the repository's ``flashdreams/`` folder).
BUNDLED_PACKAGE = "conformance._flashdreams"

_NAMES = ("DecoderConfig", "StreamingDecoder", "StreamingDecoderCache", "StreamingVideoDecoder")


def _load(root: str) -> tuple[ModuleType, ModuleType]:
    """``(ROOT.infra.decoder, ROOT.infra.config)``; ``ImportError`` if a name is missing."""
    decoder = importlib.import_module(f"{root}.infra.decoder")
    missing = [name for name in _NAMES if not hasattr(decoder, name)]
    if missing:
        raise ImportError(f"{root}.infra.decoder has no {', '.join(missing)}")
    config = importlib.import_module(f"{root}.infra.config")
    if not hasattr(config, "InstantiateConfig"):
        raise ImportError(f"{root}.infra.config has no InstantiateConfig")
    return decoder, config


def _usable(decoder: ModuleType) -> None:
    """``ImportError`` unless the bundled decoders can build on ``decoder``'s classes:
    configs are keyword-only dataclasses with ``setup()``, caches are dataclasses, and a
    config subclass with defaulted fields can be made (no required fields of its own)."""
    config_cls: type = decoder.DecoderConfig
    if not (dataclasses.is_dataclass(config_cls) and callable(getattr(config_cls, "setup", None))):
        raise ImportError(f"{decoder.__name__}.DecoderConfig is not a dataclass with setup()")
    if not dataclasses.is_dataclass(decoder.StreamingDecoderCache):
        raise ImportError(f"{decoder.__name__}.StreamingDecoderCache is not a dataclass")
    if not issubclass(decoder.StreamingVideoDecoder, nn.Module):
        raise ImportError(f"{decoder.__name__}.StreamingVideoDecoder is not a torch.nn.Module")
    try:
        probe = dataclasses.make_dataclass(
            "_Probe", [("probe", int, dataclasses.field(default=0))], bases=(config_cls,), kw_only=True
        )
        probe()
    except Exception as err:  # noqa: BLE001 - any failure means the bundled configs cannot derive
        raise ImportError(
            f"{decoder.__name__}.DecoderConfig cannot be subclassed by the bundled decoders' "
            f"configs ({type(err).__name__}: {err})"
        ) from err


def _bundled() -> tuple[ModuleType, ModuleType]:
    try:
        return _load(BUNDLED_PACKAGE)
    except ModuleNotFoundError as err:
        if err.name is None or not BUNDLED_PACKAGE.startswith(err.name):
            raise
    # A source tree used without installing the kit (PYTHONPATH=checkout): the private
    # name exists only in installed copies, and the public folder is right there.
    return _load(PUBLIC_PACKAGE)


def _resolve() -> tuple[ModuleType, ModuleType, str, str]:
    choice = os.environ.get(ENVIRONMENT_VARIABLE, "auto").strip().lower() or "auto"
    if choice not in ("auto", "installed", "bundled"):
        raise ImportError(
            f"{ENVIRONMENT_VARIABLE}={choice!r}: expected 'auto', 'installed' or 'bundled'"
        )
    if choice == "bundled":
        decoder, config = _bundled()
        return decoder, config, decoder.__name__, f"forced by {ENVIRONMENT_VARIABLE}=bundled"
    try:
        decoder, config = _load(PUBLIC_PACKAGE)
        _usable(decoder)
    except ImportError as err:
        if choice == "installed":
            raise ImportError(
                f"{ENVIRONMENT_VARIABLE}=installed, but the installed {PUBLIC_PACKAGE} does not "
                f"provide the interface: {type(err).__name__}: {err}"
            ) from err
        decoder, config = _bundled()
        return decoder, config, decoder.__name__, (
            f"no usable {PUBLIC_PACKAGE}.infra.decoder ({type(err).__name__}: {err}); "
            "using the kit's bundled copy"
        )
    return decoder, config, decoder.__name__, f"{PUBLIC_PACKAGE} from {decoder.__file__}"


if TYPE_CHECKING:
    # For type checkers: the interface as this repository defines it.
    from flashdreams.infra.config import InstantiateConfig
    from flashdreams.infra.decoder import (
        DecoderConfig,
        StreamingDecoder,
        StreamingDecoderCache,
        StreamingVideoDecoder,
    )

    SOURCE: str
    SOURCE_NOTE: str
else:
    _decoder_module, _config_module, SOURCE, SOURCE_NOTE = _resolve()
    DecoderConfig = _decoder_module.DecoderConfig
    StreamingDecoder = _decoder_module.StreamingDecoder
    StreamingDecoderCache = _decoder_module.StreamingDecoderCache
    StreamingVideoDecoder = _decoder_module.StreamingVideoDecoder
    InstantiateConfig = _config_module.InstantiateConfig
    #: The module the classes came from (``flashdreams.infra.decoder`` or the private copy).
    SOURCE = SOURCE
    #: Why that copy was chosen, for reports and ``--version``-style diagnostics.
    SOURCE_NOTE = SOURCE_NOTE

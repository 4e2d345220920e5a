"""Where a check's decoders come from: the spec's factory, built once up front to learn
whether it builds at all and what its config is.

Before any check of a decoder runs, the executor builds one decoder: a factory that
raises, returns something that is not a decoder, or leaves torch's process-wide
defaults changed is reported once for the decoder (its checks are not run), never once
per check. The config text (``str(decoder.config)``) of that build goes into the
report.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from conformance.checks.harness.calls import callable_name, guarded_call
from conformance.checks.harness.control import RunControl
from conformance.checks.harness.validation import require_decoder
from conformance.core.outcomes import DecoderError
from conformance.core.values import decoder_config_text

__all__ = ["DecoderSource"]


class DecoderSource:
    """A spec's factory, with the problem of its first build and the config it reported."""

    def __init__(self, factory: Callable[[], torch.nn.Module]) -> None:
        self.factory = factory
        self.config_text: str | None = None
        self._checked = False
        self.problem: str | None = None
        # Messages name the spec's factory, not this wrapper.
        self.__wrapped__ = factory
        for name in ("__name__", "__qualname__", "__module__", "__doc__"):
            try:
                setattr(self, name, getattr(factory, name))
            except (AttributeError, TypeError):
                pass

    def check_build(self) -> str | None:
        """Build one decoder (once): ``None``, or why the decoder cannot be built (one line).

        Only the factory's own failure counts here (it raised, returned something that is
        not a decoder, or changed torch's process-wide defaults); whether what it built
        honours the contract in use is for the checks.
        """
        if self._checked:
            return self.problem
        self._checked = True
        what = f"factory {callable_name(self.factory)}()"
        try:
            decoder = guarded_call(RunControl(), what, self.factory)
        except DecoderError as err:
            self.problem = f"the decoder could not be built: {err}"
            return self.problem
        try:
            require_decoder(decoder, what)
        except DecoderError as err:
            self.problem = (
                f"the factory does not build a streaming video decoder, so no check can run: {err}"
            )
            return self.problem
        self.config_text = _config_text(decoder)
        del decoder
        return None

    def __call__(self) -> Any:
        """A fresh decoder for one check."""
        return self.factory()


def _config_text(decoder: Any) -> str | None:
    try:
        return decoder_config_text(decoder)
    except Exception:  # noqa: BLE001 - the config is for the report only
        return None

"""``InstantiateConfig``: a dataclass config whose ``setup()`` builds its ``_target``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(kw_only=True)
class InstantiateConfig:
    """A config naming the class it builds; ``setup(**kw)`` returns ``_target(self, **kw)``."""

    _target: type

    def setup(self, **kwargs: Any) -> Any:
        return self._target(self, **kwargs)

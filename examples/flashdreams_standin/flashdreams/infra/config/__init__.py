"""Configs that build what they describe (stand-in framework; a package, not a module)."""

from flashdreams.infra.config.instantiate import InstantiateConfig

__all__ = ["InstantiateConfig"]

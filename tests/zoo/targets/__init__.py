"""Target modules that misbehave when imported (see tests/supervision)."""

"""Moved to :mod:`conformance.checks.latents`; this path is an alias kept for one release."""

import sys

from conformance.checks import latents as _moved

sys.modules[__name__] = _moved

"""Moved to :mod:`conformance.core.interface`; this path is an alias kept for one release."""

import sys

from conformance.core import interface as _moved

sys.modules[__name__] = _moved

"""Moved to :mod:`conformance.core.outcomes`; this path is an alias kept for one release."""

import sys

from conformance.core import outcomes as _moved

sys.modules[__name__] = _moved

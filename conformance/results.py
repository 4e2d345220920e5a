"""Moved to :mod:`conformance.core.results`; this path is an alias kept for one release."""

import sys

from conformance.core import results as _moved

sys.modules[__name__] = _moved

"""Moved to :mod:`conformance.core.ratios`; this path is an alias kept for one release."""

import sys

from conformance.core import ratios as _moved

sys.modules[__name__] = _moved

"""Moved to :mod:`conformance.core.spec`; this path is an alias kept for one release."""

import sys

from conformance.core import spec as _moved

sys.modules[__name__] = _moved

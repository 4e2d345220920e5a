"""Moved to :mod:`conformance.core.profiles`; this path is an alias kept for one release."""

import sys

from conformance.core import profiles as _moved

sys.modules[__name__] = _moved

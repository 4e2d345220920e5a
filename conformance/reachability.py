"""Moved to :mod:`conformance.checks.reachability`; this path is an alias kept for one release."""

import sys

from conformance.checks import reachability as _moved

sys.modules[__name__] = _moved

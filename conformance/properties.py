"""Moved to :mod:`conformance.checks.search`; this path is an alias kept for one release."""

import sys

from conformance.checks import search as _moved

sys.modules[__name__] = _moved

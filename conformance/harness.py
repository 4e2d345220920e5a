"""Moved to :mod:`conformance.checks.context`; this path is an alias kept for one release."""

import sys

from conformance.checks import context as _moved

sys.modules[__name__] = _moved

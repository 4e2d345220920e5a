"""Moved to :mod:`conformance.checks.tolerances`; this path is an alias kept for one release."""

import sys

from conformance.checks import tolerances as _moved

sys.modules[__name__] = _moved

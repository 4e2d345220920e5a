"""Moved to :mod:`conformance.checks.evidence`; this path is an alias kept for one release."""

import sys

from conformance.checks import evidence as _moved

sys.modules[__name__] = _moved

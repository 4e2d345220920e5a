"""Moved to :mod:`conformance.checks.fingerprints`; this path is an alias kept for one release."""

import sys

from conformance.checks import fingerprints as _moved

sys.modules[__name__] = _moved

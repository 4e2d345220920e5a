"""Moved to :mod:`conformance.core.discovery`; this path is an alias kept for one release."""

import sys

from conformance.core import discovery as _moved

sys.modules[__name__] = _moved

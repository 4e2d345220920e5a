"""Moved to :mod:`conformance.engine.runner`; this path is an alias kept for one release."""

import sys

from conformance.engine import runner as _moved

sys.modules[__name__] = _moved

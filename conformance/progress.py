"""Moved to :mod:`conformance.frontends.progress`; this path is an alias kept for one release."""

import sys

from conformance.frontends import progress as _moved

sys.modules[__name__] = _moved

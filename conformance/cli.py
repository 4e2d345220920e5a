"""Moved to :mod:`conformance.frontends.cli`; this path is an alias kept for one release."""

import sys

from conformance.frontends import cli as _moved

sys.modules[__name__] = _moved

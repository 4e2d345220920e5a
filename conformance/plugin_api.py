"""Moved to :mod:`conformance.frontends.pytest_api`; this path is an alias kept for one release."""

import sys

from conformance.frontends import pytest_api as _moved

sys.modules[__name__] = _moved

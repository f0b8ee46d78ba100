"""Shared fixtures for the algebra tests.

The reference implementation is the ``clifford`` package. Its numba kernels take seconds to JIT per
operation and layout; on the handful of small multivectors used here pure Python is far faster, so
the JIT is disabled for the test session (set before ``numba`` is first imported).
"""

from __future__ import annotations

import os
import sys

if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_DISABLE_JIT", "1")

import pytest

from algebra_helpers import BACKENDS
from algebras import get_algebra


@pytest.fixture(params=BACKENDS)
def backend(request):
    return get_algebra(request.param)


@pytest.fixture(autouse=True, scope="session")
def _private_algebra_cache(tmp_path_factory):
    """Keep derived tables / bases of test-only algebras out of the user's cache directory."""
    mp = pytest.MonkeyPatch()
    mp.setenv("GATR_ALGEBRA_CACHE", str(tmp_path_factory.mktemp("algebra-cache")))
    yield
    mp.undo()

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from testbed import SEGWIRE, Bed  # noqa: E402


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("integration tests need root (network namespaces)")
    if not SEGWIRE.exists():
        raise pytest.UsageError(f"{SEGWIRE} not built (run tools/test, or set SEGWIRE_BUILD)")


@pytest.fixture
def bed():
    with Bed() as b:
        yield b

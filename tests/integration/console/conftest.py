import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from console_harness import EXAMPLE_POLICY, Console  # noqa: E402


@pytest.fixture
def policy_dir(tmp_path):
    d = tmp_path / "policy"
    shutil.copytree(EXAMPLE_POLICY, d)
    return d


@pytest.fixture
def console(tmp_path, policy_dir):
    c = Console(tmp_path, policy_dir=policy_dir).start()
    yield c
    c.stop()


@pytest.fixture
def token(console):
    return console.token()

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from console_harness import EXAMPLE_POLICY, Console  # noqa: E402
from pg_harness import PgCluster  # noqa: E402


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


@pytest.fixture(scope="session")
def pg_cluster():
    """One real PostgreSQL server for the session (a fresh database per Console)."""
    c = PgCluster()
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def any_console(request, tmp_path, policy_dir):
    """The Console on each store: tests of behaviour that must not depend on it."""
    database = None
    if request.param == "postgresql":
        database = request.getfixturevalue("pg_cluster").new_database()
    c = Console(tmp_path, policy_dir=policy_dir, database=database).start()
    yield c
    c.stop()

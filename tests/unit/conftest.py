"""The databases behind the ledger and the work-item queue: SQLite and PostgreSQL.

`url` runs a test on a SQLite file (`[sqlite]`) and on a fresh database of a throwaway
PostgreSQL cluster (`[postgresql]`): Debian's server binaries, one cluster per session (per
xdist worker), started when a test first needs it (about a second) and removed at the end;
one `CREATE DATABASE` per test. Without the binaries the PostgreSQL tests skip, saying what to
install; as root in CI they fail instead (`nox -s tests` installs the package as root).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gestic.errors import PgClusterError
from gestic.tools import pgcluster

from ..conftest import in_ci

BACKENDS = ("sqlite", "postgresql")
_databases = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[pgcluster.PgCluster]:
    """The session's throwaway PostgreSQL cluster."""
    if pgcluster.find_bindir() is None:
        message = f"the PostgreSQL tests need the server: {pgcluster.INSTALL_HINT}"
        if os.geteuid() == 0 and in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        # The server speaks Bogotá time: what the ledger reads back must still be UTC.
        cluster = pgcluster.start(settings={"timezone": "America/Bogota"})
    except PgClusterError as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: pgcluster.PgCluster) -> Iterator[str]:
    """A fresh, empty PostgreSQL database of its own for this test."""
    name = f"test_{next(_databases)}"
    pg_cluster.create_database(name)
    yield pg_cluster.url(name)
    pg_cluster.drop_database(name)


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test's own database: a SQLite file, then a PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_url"))
    return f"sqlite:///{tmp_path / 'ledger.db'}"

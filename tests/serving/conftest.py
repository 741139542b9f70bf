"""Fixtures for the serving tests: clue stores on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import pytest

from pg_server import PgServer, find_binaries


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the session; skipped only when no PostgreSQL binaries are installed."""
    binaries = find_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin or on PATH); "
                    "`apt-get install postgresql` to run the PostgreSQL half of the clue-store tests")
    server = PgServer(binaries).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def clue_db_url(request, tmp_path) -> str:
    """An empty clue-store database: a SQLite file, then a fresh database on the PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'clues.db'}"
    return request.getfixturevalue("pg_server").new_database()

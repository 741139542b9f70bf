"""Fixtures for the serving tests: clue stores on SQLite and on a throwaway PostgreSQL server, and the
running service on each."""

from __future__ import annotations

import sys
from pathlib import Path

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


# -- the running service (tests/serving/test_service.py, test_ui.py) -------------------------------------


@pytest.fixture(scope="session")
def service_data(tiny_warehouse, tiny_trained, tmp_path_factory):
    """The tiny warehouse and models of tests/conftest.py, the bundle as a file, the clues screened with it."""
    from served import build_service_data

    return build_service_data(tiny_warehouse, tiny_trained[1].bundle, tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="session")
def launched(service_data, tmp_path_factory, request):
    """Both servers started side by side (start-up takes seconds): SQLite with `yibao serve`, PostgreSQL
    (when installed) with `bentoml serve serving.service:Screening`. backend -> Served, not yet ready."""
    from served import Served, bentoml_argv, free_port, launch_server, seed_store, server_env

    running: dict = {}
    backends = ["sqlite"] + (["postgresql"] if find_binaries() is not None else [])
    try:
        for backend in backends:
            folder = tmp_path_factory.mktemp(f"served_{backend}")
            db_url = (f"sqlite:///{folder / 'clues.db'}" if backend == "sqlite"
                      else request.getfixturevalue("pg_server").new_database())
            tokens, ids = seed_store(db_url, service_data)
            port = free_port()
            if backend == "sqlite":
                argv = [str(Path(sys.executable).with_name("yibao")), "serve", "--warehouse",
                        str(service_data.warehouse), "--db", db_url, "--bundle", str(service_data.bundle),
                        "--port", str(port), "--dev"]  # a simulated warehouse made with the development key
            else:
                argv = bentoml_argv(port)
            proc = launch_server(argv, server_env(service_data, db_url), folder / "server.log")
            running[backend] = Served(backend, f"http://127.0.0.1:{port}", db_url, tokens, ids,
                                      folder / "server.log", service_data, proc)
        yield running
    finally:
        for served in running.values():
            served.stop()


def _ready(launched: dict, backend: str):
    from served import wait_ready

    if backend not in launched:
        pytest.skip("PostgreSQL is not installed: `apt-get install postgresql` to run the service on it")
    served = launched[backend]
    wait_ready(served.proc, int(served.base_url.rsplit(":", 1)[1]), served.log_path)
    return served


@pytest.fixture(scope="session")
def served_sqlite(launched):
    """The service on a SQLite clue store, started with `yibao serve`."""
    return _ready(launched, "sqlite")


@pytest.fixture(scope="session")
def served_postgresql(launched):
    """The service on a PostgreSQL clue store, started with `bentoml serve serving.service:Screening`."""
    return _ready(launched, "postgresql")


@pytest.fixture(params=["sqlite", "postgresql"])
def served(request):
    """The running service, once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"served_{request.param}")


@pytest.fixture(scope="module")
def served_alone(service_data, tmp_path_factory):
    """A server of its own on a fresh SQLite clue store (for the API fuzz test, which moves and comments
    clues at random and must not disturb the shared servers' clues)."""
    from served import bentoml_argv, serving_alone

    folder = tmp_path_factory.mktemp("served_alone")
    with serving_alone(service_data, folder, lambda port, _db: bentoml_argv(port),
                       {"YIBAO_JOB_DIR": str(folder / "jobs")}) as served:
        yield served


# -- the main job on `small` (tests/serving/test_end_to_end_small.py, test_evidence.py) --------------------


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> dict:
    """``yibao demo --preset small --seed 7`` in a subprocess, as the README runs it: the demo's JSON answer
    with ``workdir``, ``warehouse``, ``tracking_uri`` and ``bundle`` (the trained scorer bundle) added."""
    from served import run_yibao

    work = tmp_path_factory.mktemp("demo_small")
    uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    demo = run_yibao("demo", "--preset", "small", "--seed", "7", "--workdir", str(work), "--tracking-uri", uri)
    return demo | {"workdir": work, "warehouse": Path(demo["warehouse"]), "tracking_uri": uri,
                   "bundle": work / "report" / "scorer_bundle.joblib"}

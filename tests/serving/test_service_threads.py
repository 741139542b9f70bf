"""The service process runs every native thread pool with one thread, and the clue routes on a few (serving/service.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import anyio
import anyio.to_thread

POOLS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_PROBE = """
import json, threadpoolctl
import serving.service  # what `bentoml serve serving.service:Screening` imports first
import lightgbm, sklearn.isotonic, numpy  # what scoring loads
print(json.dumps([{"api": p["internal_api"], "path": p["filepath"], "threads": p["num_threads"]}
                  for p in threadpoolctl.threadpool_info()]))
"""


def _pools_after_import(**env) -> list[dict]:
    clean = {k: v for k, v in os.environ.items() if k not in POOLS} | {"YIBAO_DEV": "1"} | env
    out = subprocess.run([sys.executable, "-c", _PROBE], env=clean, capture_output=True, text=True, timeout=120,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_service_process_runs_openmp_and_blas_on_one_thread():
    pools = _pools_after_import()
    apis = {p["api"] for p in pools}
    assert "openmp" in apis and "openblas" in apis, pools  # LightGBM's OpenMP and numpy's OpenBLAS are there
    assert all(p["threads"] == 1 for p in pools), pools


def test_a_thread_count_set_at_launch_is_kept():
    pools = _pools_after_import(OMP_NUM_THREADS="2")
    assert {p["threads"] for p in pools if p["api"] == "openmp"} == {2}, pools


def test_the_clue_routes_get_the_configured_number_of_threads(monkeypatch):
    monkeypatch.setenv("YIBAO_DEV", "1")  # the service refuses the public pseudonym key on import otherwise
    from serving.service import CLUE_THREADS, ClueThreads

    calls = []

    async def app(scope, receive, send):
        calls.append(anyio.to_thread.current_default_thread_limiter().total_tokens)

    async def main(mw):
        await mw({"type": "http", "path": "/api/clues"}, None, None)
        await mw({"type": "http", "path": "/api/clues"}, None, None)

    anyio.run(main, ClueThreads(app, threads=3))
    monkeypatch.setenv("YIBAO_CLUE_THREADS", "5")
    anyio.run(main, ClueThreads(app))
    monkeypatch.delenv("YIBAO_CLUE_THREADS")
    anyio.run(main, ClueThreads(app))
    assert calls == [3, 3, 5, 5, CLUE_THREADS, CLUE_THREADS] and CLUE_THREADS < 40  # anyio's default: 40

"""Benchmark of the service over HTTP (run on demand; figures go to docs/benchmarks.md, section "Serving").

    .venv/bin/python benchmarks/bench_serving.py --warehouse data/small/warehouse.duckdb \\
        --bundle /tmp/small/bundle.joblib [--clients 1,16] [--duration 30] [--workers 1] [--threads 4]

1. Samples ``--visits`` settlements (seeded) among those with ``--lookback`` days of data before them and
   rebuilds each as the visit a hospital system would post (settlement, fee lines, diagnoses, visit row);
   with ``--unseen`` under new settlement and visit ids, so that the warehouse has never seen them and the
   service computes their model features online.
2. Makes a throwaway SQLite clue store with one analyst account (the token every request carries).
3. Starts the real server, ``python -m bentoml serve serving.service:Screening``, in a subprocess on a
   free port, and waits until it answers.
4. For each number of clients, starts a separate load-generator process (this script with
   ``--load-generator``; with ``--generator-processes P`` the clients are split over P such processes, so
   that the generator's own GIL does not queue the answers it times): that many threads, each a closed
   loop of ``POST /precheck`` over one kept-alive connection (stdlib ``http.client``), cycling through
   the visits, for ``--duration`` seconds after ``--warmup`` seconds. It reports latency percentiles as
   the client sees them (request sent to answer read), requests/s, the pre-check's own time as the server reports it (``milliseconds``: rules + model, without HTTP),
   and the CPU time per request of the server's processes and of the load generators.
5. The same with ``GET /api/me`` (token check and routing, no pre-check work): what the HTTP stack alone
   costs, the ceiling the pre-check's own work is subtracted from.

The load generator runs on the same machine and takes CPU from the server; the figures include that.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--warehouse", type=Path)
    p.add_argument("--bundle", type=Path, help="Scorer bundle file (default: the registered champion).")
    p.add_argument("--visits", type=int, default=500)
    p.add_argument("--lookback", type=int, default=180)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--unseen", action="store_true",
                   help="Post each visit under new settlement and visit ids, as a visit the warehouse has not seen "
                        "(its model features are then computed online).")
    p.add_argument("--clients", default="1,16", help="Comma-separated numbers of concurrent clients.")
    p.add_argument("--duration", type=float, default=30.0, help="Measured seconds per client count.")
    p.add_argument("--warmup", type=float, default=5.0, help="Unmeasured seconds before each measurement.")
    p.add_argument("--workers", type=int, default=1, help="Server processes.")
    p.add_argument("--threads", type=int, default=4, help="Request threads per server process.")
    p.add_argument("--generator-processes", type=int, default=1,
                   help="Load-generator processes the clients are split over (each runs its share as threads).")
    # internal: the load generator
    p.add_argument("--load-generator", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--token-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--visits-file", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--n-clients", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--endpoint", default="precheck", choices=["precheck", "me"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.load_generator:
        print(json.dumps(_generate_load(args)))
        return 0
    if args.warehouse is None:
        p.error("--warehouse is required")
    print(json.dumps(_run(args), ensure_ascii=False, indent=1))
    return 0


def _run(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    visits, n_hot = _sample_visits(args)
    (work / "visits.json").write_text(json.dumps(visits, ensure_ascii=False), encoding="utf-8")
    token = _make_store(work / "clues.db")
    (work / "token").write_text(token, encoding="utf-8")
    os.chmod(work / "token", 0o600)
    port = _free_port()
    env = {**os.environ, "YIBAO_WAREHOUSE": str(args.warehouse.resolve()),
           "YIBAO_CLUE_DB": f"sqlite:///{work / 'clues.db'}", "YIBAO_SERVE_WORKERS": str(args.workers),
           "YIBAO_SERVE_THREADS": str(args.threads), "BENTOML_DO_NOT_TRACK": "true"}
    if not (args.warehouse.with_name(args.warehouse.stem + ".pseudonym.key").is_file()
            or os.environ.get("YIBAO_PSEUDONYM_KEY") or os.environ.get("YIBAO_PSEUDONYM_KEY_FILE")):
        env["YIBAO_DEV"] = "1"  # a simulated warehouse without its own key was made with the development key
    if args.bundle:
        env["YIBAO_BUNDLE"] = str(args.bundle.resolve())
    argv = [sys.executable, "-m", "bentoml", "serve", "serving.service:Screening", "--host", "127.0.0.1",
            "--port", str(port), "--working-dir", str(ROOT)]
    log = (work / "server.log").open("wb")
    t0 = time.perf_counter()
    server = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    out: dict = {"machine": _machine(), "date": dt.date.today().isoformat(), "warehouse": str(args.warehouse),
                 "rows": _rows(args.warehouse), "bundle": str(args.bundle) if args.bundle else "champion",
                 "server": {"workers": args.workers, "threads": args.threads},
                 "visits": {"sampled": len(visits), "with_model_features": n_hot, "unseen": args.unseen, "lookback_days": args.lookback,
                            "seed": args.seed}}
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, work / "server.log")
        out["server"]["start_seconds"] = round(time.perf_counter() - t0, 1)
        out["server"]["status"] = _status(url, token)
        out["precheck"] = {}
        out["http_stack_only"] = {}
        for endpoint, key in (("precheck", "precheck"), ("me", "http_stack_only")):
            for n in [int(x) for x in args.clients.split(",")]:
                procs = []
                server_cpu = _cpu_tree_s(server.pid)
                n_procs = max(1, min(args.generator_processes, n))
                for g in range(n_procs):  # the clients split as evenly as can be over the generator processes
                    cmd = [sys.executable, __file__, "--load-generator", "--url", url, "--token-file",
                           str(work / "token"), "--visits-file", str(work / "visits.json"),
                           "--n-clients", str(n // n_procs + (g < n % n_procs)), "--duration", str(args.duration),
                           "--warmup", str(args.warmup), "--seed", str(args.seed + 1000 * g), "--endpoint", endpoint]
                    procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
                parts = []
                for proc in procs:
                    stdout, _ = proc.communicate()
                    if proc.returncode:
                        raise RuntimeError(f"load generator exited {proc.returncode}")
                    parts.append(json.loads(stdout))
                r = out[key][str(n)] = _summary(parts, n, args.duration) | {"generator_processes": n_procs}
                sent = sum(p["sent"] for p in parts)  # warm-up included, as the CPU times are
                if server_cpu is not None and sent:
                    r["server_cpu_ms_per_request"] = round((_cpu_tree_s(server.pid) - server_cpu) / sent * 1000, 2)
                    r["generator_cpu_ms_per_request"] = round(sum(p["cpu_s"] for p in parts) / sent * 1000, 2)
                print(f"{endpoint} {n:>3} clients: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, p99 {r['p99_ms']} ms, "
                      f"{r['requests_per_s']} req/s, errors {r['errors']}, server p50/p99 {r.get('server_p50_ms')}/"
                      f"{r.get('server_p99_ms')} ms", file=sys.stderr)
        out["server"]["rss_mb"] = _rss_tree_mb(server.pid)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    out["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    return out


def _generate_load(args) -> dict:
    """One load-generator process: ``--n-clients`` threads, each a closed loop over one kept-alive connection.

    The client is the standard library's ``http.client`` (request line, headers and body in one write),
    not httpx: it costs the shared cores about a third of the CPU per request, CPU that a hospital
    system's client would spend on its own machine."""
    import http.client
    from urllib.parse import urlsplit

    token = args.token_file.read_text(encoding="utf-8").strip()
    bodies = [json.dumps(v).encode("utf-8") for v in json.loads(args.visits_file.read_text(encoding="utf-8"))]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    where = urlsplit(args.url)
    start_at = time.perf_counter() + args.warmup
    stop_at = start_at + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.n_clients)]
    errors = [0] * args.n_clients
    sent = [0] * args.n_clients
    model = [0] * args.n_clients
    server_ms: list[list[float]] = [[] for _ in range(args.n_clients)]

    def client(k: int) -> None:
        i = random.Random(args.seed + k).randrange(len(bodies))
        c = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
        try:
            while True:
                t = time.perf_counter()
                if t >= stop_at:
                    return
                try:
                    if args.endpoint == "me":
                        c.request("GET", "/api/me", headers=headers)
                    else:
                        c.request("POST", "/precheck", body=bodies[i % len(bodies)], headers=headers)
                    r = c.getresponse()
                    data = r.read()
                    elapsed = time.perf_counter() - t
                    ok = r.status == 200
                    if ok and t >= start_at and args.endpoint == "precheck":
                        answer = json.loads(data)
                        model[k] += answer["model_score_available"]
                        server_ms[k].append(answer["milliseconds"])
                except (OSError, http.client.HTTPException):
                    ok, elapsed = False, time.perf_counter() - t
                    c.close()
                    c = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
                sent[k] += 1
                if t >= start_at:
                    latencies[k].append(elapsed)
                    errors[k] += not ok
                i += 1
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.n_clients)]
    cpu0 = time.process_time()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return {"latencies_s": [x for per in latencies for x in per], "server_ms": [x for per in server_ms for x in per],
            "errors": sum(errors), "with_model_score": sum(model), "sent": sum(sent), "cpu_s": time.process_time() - cpu0}


def _summary(parts: list[dict], n_clients: int, duration: float) -> dict:
    """Percentiles and throughput over the raw figures of one or more load-generator processes."""
    lat = sorted(x for part in parts for x in part["latencies_s"])
    n = len(lat)

    def pct(q: float) -> float | None:
        return round(lat[min(n - 1, int(q * n))] * 1000, 1) if n else None

    inner = sorted(x for part in parts for x in part["server_ms"])
    server = {f"server_p{q}_ms": round(inner[min(len(inner) - 1, int(q / 100 * len(inner)))], 1)
              for q in (50, 95, 99)} if inner else {}
    return server | {"clients": n_clients, "requests": n, "errors": sum(p["errors"] for p in parts),
                     "seconds": duration, "requests_per_s": round(n / duration, 1), "p50_ms": pct(0.50),
                     "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": round(lat[-1] * 1000, 1) if n else None,
                     "mean_ms": round(sum(lat) / n * 1000, 1) if n else None,
                     "with_model_score": sum(p["with_model_score"] for p in parts)}


def _sample_visits(args) -> tuple[list[dict], int]:
    import duckdb

    from serving.scoring import HOT_DAYS, visit_from_warehouse

    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        first, last = con.execute("SELECT min(setl_time), max(setl_time) FROM setl_d").fetchone()
        ids = [r[0] for r in con.execute(
            "SELECT setl_id FROM setl_d WHERE refd_setl_flag <> '1' AND setl_time >= ? ORDER BY setl_id",
            [first + dt.timedelta(days=args.lookback)]).fetchall()]
        sample = random.Random(args.seed).sample(ids, min(args.visits, len(ids)))
        visits = [visit_from_warehouse(con, s) for s in sample]
    hot_from = (last - dt.timedelta(days=HOT_DAYS)).isoformat(sep=" ")
    if args.unseen:
        visits = [_renamed(v, f"UNSEEN{i:06d}") for i, v in enumerate(visits)]
        return visits, 0
    return visits, sum(v["setl"]["setl_time"] >= hot_from for v in visits)


def _renamed(visit: dict, new_id: str) -> dict:
    """The visit under new settlement and visit ids (nothing else changed)."""
    keys = {"setl_id": new_id, "mdtrt_id": "M" + new_id}
    return {part: ([r | {k: v for k, v in keys.items() if k in r} for r in rows] if isinstance(rows, list)
                   else rows | {k: v for k, v in keys.items() if k in rows})
            for part, rows in visit.items()}


def _make_store(path: Path) -> str:
    from serving.clues.store import open_store

    with open_store(f"sqlite:///{path}") as store:
        return store.create_user("bench", "analyst")


def _wait_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout} s")


def _status(url: str, token: str) -> dict:
    import httpx

    s = httpx.get(f"{url}/api/status", headers={"Authorization": f"Bearer {token}"}, timeout=30).json()
    return {k: s.get(k) for k in ("model", "model_levels", "rules_realtime", "settlement_features", "setup_seconds")}


def _rows(warehouse: Path) -> dict:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("setl_d", "fee_list_d", "psn_info", "feat_setl")}


def _rss_tree_mb(pid: int) -> float | None:
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    try:
        proc = psutil.Process(pid)
        return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)
    except psutil.Error:
        return None


def _cpu_tree_s(pid: int) -> float | None:
    """CPU seconds (user + system) used so far by a process and its children (the server's workers)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover
        return None
    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
        return sum(t.user + t.system for t in (p.cpu_times() for p in procs))
    except psutil.Error:
        return None


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())

"""Soak and fault test of the service (持续负载与故障测试): mixed traffic at a fixed rate, a worker killed mid-run.

    .venv/bin/python benchmarks/soak.py --demo /tmp/sv/demo --rate 30 --minutes 2 --workers 2 \\
        [--exports 8] [--kill-at 0.5] [--generator-processes 2] [--out soak.json] \\
        [--precheck-workers 2 --desk-nice 10]

1. Takes a demo's warehouse, scorer bundle and clue store (``yibao demo --workdir DIR``; or ``--warehouse``,
   ``--bundle``, ``--clues-db``). The clue store is copied, so the demo's stays as it was; the soak's users
   (an analyst, an administrator, four export analysts) are added to the copy.
2. Starts the real server (``python -m bentoml serve serving.service:Screening``) with ``--workers``; with
   ``--precheck-workers N`` also the hospitals' interface alone (``serving.service:Precheck``, as ``yibao
   serve --precheck-only``) with N processes, which then gets the pre-checks; ``--desk-nice`` lowers the
   first server's CPU priority, and that of its session's CPU group (Linux autogroup), as a service
   manager's CPU weight would.
3. Sends mixed traffic at ``--rate`` requests per second for ``--minutes`` from ``--generator-processes``
   separate processes, open loop: request *i* of a process is due at ``t0 + i / rate``; its latency is
   counted from when it was due, so a server that falls behind shows it. Pre-checks (hospitals' systems)
   and clue requests (investigators) go out on separate connections (``--generator-threads`` each), so that
   slow clue requests do not hold up the pre-checks in the generator. Mix (``--mix``): pre-check of
   sampled visits, clue list pages, clue details, statistics, comments and workflow transitions; every
   comment and transition carries a unique text and an ``Idempotency-Key``, and a request that gets no
   answer (connection reset, time-out) is sent again with the same key, up to 5 times.
4. ``--exports`` evidence packages with their PDF are started at once at 20 % of the run (by four
   analysts, two each: the per-user limit), polled and downloaded; the pre-check's p99 is reported inside
   and outside the time they run.
5. At ``--kill-at`` of the run one server worker is killed with SIGKILL; BentoML starts a new one.
6. Afterwards, from the clue store: every acknowledged comment and transition is there exactly once
   (0 lost, 0 doubled); unacknowledged ones (no answer after all retries) are counted apart. The RSS of the
   server's processes is sampled every 5 s: its trend is reported (MB per minute over the second half).

Prints a summary and writes it as JSON (``--out``). The load generators run on the same machine as the
server and take CPU from it; so do other programs on a shared machine (the load average is reported).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_MIX = "precheck=0.55,clue_list=0.12,clue_detail=0.12,statistics=0.06,comment=0.09,transition=0.06"
RETRIES = 5
EXPORT_USERS = 4


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", type=Path, help="A `yibao demo --workdir` folder (warehouse, bundle, clue store).")
    p.add_argument("--warehouse", type=Path)
    p.add_argument("--bundle", type=Path)
    p.add_argument("--clues-db", type=Path, help="SQLite clue store to copy (default: the demo's).")
    p.add_argument("--rate", type=float, default=30.0, help="Requests per second, all generators together.")
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2, help="Server processes.")
    p.add_argument("--threads", type=int, default=4, help="Request threads per server process.")
    p.add_argument("--precheck-workers", type=int, default=0,
                   help="Serve the pre-check from a server of its own (serving.service:Precheck, as `yibao serve "
                        "--precheck-only`) with this many processes; 0: the one server answers every route.")
    p.add_argument("--desk-nice", type=int, default=0,
                   help="CPU priority (nice) of the server that answers the clue routes (yibao serve --nice).")
    p.add_argument("--generator-processes", type=int, default=2)
    p.add_argument("--generator-threads", type=int, default=16,
                   help="Connections per generator process, for the pre-check and again for the clue routes.")
    p.add_argument("--mix", default=DEFAULT_MIX)
    p.add_argument("--exports", type=int, default=8, help="Evidence packages (with PDF) started at 20%% of the run.")
    p.add_argument("--kill-at", type=float, default=0.5, help="Fraction of the run at which a worker is killed "
                                                              "(negative: none).")
    p.add_argument("--visits", type=int, default=300)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path)
    # internal: one load-generator process
    p.add_argument("--generator", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.generator:
        return _generator(json.loads(args.generator.read_text("utf-8")))
    out = _run(args)
    text = json.dumps(out, ensure_ascii=False, indent=2)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    _print_summary(out)
    return 0 if out["verdict"]["ok"] else 1


# -- the run ------------------------------------------------------------------------------------------


def _run(args) -> dict:
    warehouse, bundle, clues_db = _inputs(args)
    work = Path(tempfile.mkdtemp(prefix="yibao-soak-"))
    db = work / "clues.db"
    _copy_sqlite(clues_db, db)
    users, pool = _prepare_store(db, args)
    visits = _sample_visits(warehouse, args.visits, args.seed)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    precheck_port = _free_port() if args.precheck_workers > 0 else port
    precheck_url = f"http://127.0.0.1:{precheck_port}"
    env = {**os.environ, "YIBAO_WAREHOUSE": str(warehouse), "YIBAO_CLUE_DB": f"sqlite:///{db}",
           "YIBAO_BUNDLE": str(bundle), "YIBAO_SERVE_WORKERS": str(args.workers),
           "YIBAO_SERVE_THREADS": str(args.threads), "YIBAO_JOB_DIR": str(work / "jobs"), "BENTOML_DO_NOT_TRACK": "true"}
    if not os.environ.get("YIBAO_EVIDENCE_KEY"):
        from serving.evidence_export import generate_keypair

        env["YIBAO_EVIDENCE_KEY"] = str(generate_keypair(work / "keys")[0])
    t_start = time.perf_counter()
    server = _start_server("Screening", port, env | {"YIBAO_SERVE_NICE": str(args.desk_nice)}, work / "server.log")
    servers = [server]
    if args.precheck_workers > 0:
        servers.append(_start_server("Precheck", precheck_port, env | {"YIBAO_SERVE_WORKERS": str(args.precheck_workers)},
                                     work / "precheck-server.log"))
    out: dict = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": _machine(),
                 "command": " ".join(sys.argv), "warehouse": str(warehouse), "rows": _rows(warehouse),
                 "server": {"workers": args.workers, "threads": args.threads, "precheck_workers": args.precheck_workers,
                            "desk_nice": args.desk_nice},
                 "load": {"rate": args.rate, "minutes": args.minutes, "mix": _mix(args.mix),
                          "generator_processes": args.generator_processes, "exports": args.exports}}
    try:
        from bench_serving import _wait_ready  # the sibling script (benchmarks/ is on sys.path when run)

        _wait_ready(url, server, work / "server.log", timeout=600)
        if len(servers) > 1:
            _wait_ready(precheck_url, servers[1], work / "precheck-server.log", timeout=600)
        if args.desk_nice:
            out["server"]["desk_group_nice"] = _group_nice(server.pid, args.desk_nice)
        out["server"]["start_seconds"] = round(time.perf_counter() - t_start, 1)
        duration = args.minutes * 60
        t0 = time.time() + 3.0  # every generator starts on the same second
        procs = []
        for g in range(args.generator_processes):
            spec = {"url": url, "precheck_url": precheck_url, "t0": t0, "duration": duration, "rate": args.rate / args.generator_processes,
                    "threads": args.generator_threads, "mix": _mix(args.mix), "seed": args.seed + 1000 * g,
                    "index": g, "tokens": {"analyst": users["soak-analyst"], "admin": users["soak-admin"]},
                    "visits": str(work / "visits.json"), "clues": pool["all"], "own_clues": pool["moves"][g::args.generator_processes],
                    "results": str(work / f"gen-{g}.jsonl")}
            (work / "visits.json").write_text(json.dumps(visits, ensure_ascii=False), encoding="utf-8")
            (work / f"gen-{g}.json").write_text(json.dumps(spec), encoding="utf-8")
            procs.append(subprocess.Popen([sys.executable, __file__, "--generator", str(work / f"gen-{g}.json")]))
        rss: list[tuple[float, float]] = []
        cpu0 = sum(_cpu_tree_s(x.pid) for x in servers)
        events: dict = {}
        exporter = threading.Thread(target=_exports, args=(url, users, pool["all"], args.exports, t0 + 0.2 * duration,
                                                           events), daemon=True)
        exporter.start()
        killed = False
        while any(p.poll() is None for p in procs):
            now = time.time()
            rss.append((now - t0, _sum_or_none([_rss_tree_mb(x.pid) for x in servers])))
            if not killed and args.kill_at >= 0 and now >= t0 + args.kill_at * duration:
                events["kill"] = _kill_a_worker(server.pid) | {"at_s": round(now - t0, 1)}
                killed = True
            time.sleep(5)
        exporter.join(timeout=600)
        out["generators_exit"] = [p.returncode for p in procs]
        results = [json.loads(line) for g in range(args.generator_processes)
                   for line in (work / f"gen-{g}.jsonl").read_text("utf-8").splitlines() if line.strip()]
        out["routes"] = _route_figures(results, duration)
        out["exports"] = events.get("exports", {})
        out["precheck_during_exports"] = _precheck_in_window(results, events.get("exports", {}), t0)
        out["kill"] = events.get("kill")
        kill_at = (events.get("kill") or {}).get("at_s")
        out["rss"] = _rss_trend(rss, duration, kill_at)
        cpu = sum(_cpu_tree_s(x.pid) for x in servers) - cpu0
        out["server"]["cpu_ms_per_request"] = round(cpu * 1000 / max(1, len(results)), 2)
    finally:
        for x in servers:
            os.killpg(x.pid, signal.SIGTERM)
        for x in servers:
            try:
                x.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(x.pid, signal.SIGKILL)
    out["writes"] = _check_writes(db, results)
    out["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["server"]["log_errors"] = sum(" [ERROR] " in line for name in ("server.log", "precheck-server.log")
                                      if (work / name).is_file()
                                      for line in (work / name).read_text("utf-8", errors="replace").splitlines())
    out["workdir"] = str(work)
    out["verdict"] = _verdict(out)
    return out


def _inputs(args) -> tuple[Path, Path, Path]:
    if args.demo:
        demo = args.demo
        warehouse = args.warehouse or next(demo.rglob("warehouse.duckdb"))
        bundle = args.bundle or next(iter(sorted(demo.rglob("scorer_bundle.joblib"))), None)
        clues_db = args.clues_db or next(iter(sorted(demo.rglob("clues.db"))), None)
    else:
        warehouse, bundle, clues_db = args.warehouse, args.bundle, args.clues_db
    missing = [n for n, v in (("warehouse", warehouse), ("bundle", bundle), ("clue store", clues_db)) if v is None]
    if missing:
        raise SystemExit(f"soak: no {', '.join(missing)} found; give --demo DIR or --warehouse/--bundle/--clues-db")
    return Path(warehouse).resolve(), Path(bundle).resolve(), Path(clues_db).resolve()


def _copy_sqlite(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database, its write-ahead log included (sqlite3's backup)."""
    import sqlite3

    a, b = sqlite3.connect(f"file:{src}?mode=ro", uri=True), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()


def _prepare_store(db: Path, args) -> tuple[dict[str, str], dict[str, list[int]]]:
    """Users of the soak and the clues it reads and moves (the movable ones still new, one set per generator)."""
    from serving.clues.store import SYSTEM, open_store

    with open_store(f"sqlite:///{db}") as store:
        users = {"soak-analyst": store.create_user("soak-analyst", "analyst"),
                 "soak-admin": store.create_user("soak-admin", "admin")}
        users |= {f"soak-export-{i}": store.create_user(f"soak-export-{i}", "analyst") for i in range(EXPORT_USERS)}
        items = store.list(SYSTEM, limit=1000)["items"]
    fresh = [c["id"] for c in items if c["state"] == "new" and c["entity_type"] != "ring"]
    n_moves = min(len(fresh), 20 * args.generator_processes)
    return users, {"all": [c["id"] for c in items], "moves": fresh[:n_moves]}


def _sample_visits(warehouse: Path, n: int, seed: int) -> list[dict]:
    """Visits as a hospital system posts them: half recent (scored by the model), half from any time."""
    import duckdb

    from serving.scoring import visit_from_warehouse

    with duckdb.connect(str(warehouse), read_only=True) as con:
        recent = [r[0] for r in con.execute("SELECT setl_id FROM feat_setl ORDER BY setl_time DESC LIMIT 5000").fetchall()]
        anytime = [r[0] for r in con.execute("SELECT setl_id FROM setl_d WHERE refd_setl_flag <> '1' "
                                             "ORDER BY setl_id").fetchall()]
        rng = random.Random(seed)
        ids = rng.sample(recent, min(n // 2, len(recent))) + rng.sample(anytime, min(n - n // 2, len(anytime)))
        return [visit_from_warehouse(con, s) for s in ids]


# -- a load generator (one process) -------------------------------------------------------------------


def _start_server(service: str, port: int, env: dict, log: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "bentoml", "serve", f"serving.service:{service}", "--host", "127.0.0.1",
            "--port", str(port), "--working-dir", str(ROOT)]
    return subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)


def _group_nice(pid: int, niceness: int) -> bool:
    """Where Linux groups processes by session for the CPU (autogroup), ``nice`` counts only within a
    group and every group gets an equal share: the server's session (started with its own) gets
    ``niceness`` as a whole, as a service manager's CPU weight would. False where there is no autogroup."""
    try:
        Path(f"/proc/{pid}/autogroup").write_text(str(niceness))
        return True
    except OSError:
        return False


def _sum_or_none(values: list[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(values)


def _generator(spec: dict) -> int:
    """Requests at a fixed rate from ``spec['threads']`` connections for the pre-check and as many for the
    clue routes; one JSON line per request.

    Two sets of connections because two kinds of client send them: hospitals' systems pre-check visits,
    investigators' browsers work the clue list. With one set, slow clue requests held every connection and
    pre-checks that were due waited in the generator for one; their latency then measured the clue routes,
    not the pre-check (seen with py-spy: the server's pre-check threads idle while the pre-check's p99 was
    seconds)."""
    visits = json.loads(Path(spec["visits"]).read_text("utf-8"))
    rng = random.Random(spec["seed"])
    routes, weights = zip(*spec["mix"].items())
    n = int(spec["duration"] * spec["rate"])
    address = {kind: spec[key].removeprefix("http://").split(":") for kind, key in
               (("precheck", "precheck_url"), ("clues", "url"))}
    kinds = rng.choices(routes, weights=weights, k=n)
    queues = {"precheck": [i for i in range(n) if kinds[i] == "precheck"],
              "clues": [i for i in range(n) if kinds[i] != "precheck"]}
    lock = threading.Lock()
    out = Path(spec["results"]).open("w", encoding="utf-8")
    movers = _Movers(spec["own_clues"], spec["index"])
    seq = iter(range(10**9))

    def worker(k: int, slots: list[int], to: str) -> None:
        host, port = address[to]
        conn = _Conn(host, int(port))
        local = random.Random(spec["seed"] * 100 + k)
        while True:
            with lock:
                if not slots:
                    return
                i = slots.pop(0)
            due = spec["t0"] + i / spec["rate"]
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            kind = kinds[i]
            record = {"route": kind, "due": due}
            with lock:
                number = next(seq)
            try:
                record |= _request(conn, kind, spec, visits, local, movers, number)
            except Exception as e:  # noqa: BLE001  (recorded, never fatal to the generator)
                record |= {"status": None, "error": f"{type(e).__name__}: {str(e)[:120]}"}
            record["latency_ms"] = round((time.time() - due) * 1000, 2)
            with lock:
                out.write(json.dumps(record, ensure_ascii=False) + "\n")

    threads = [threading.Thread(target=worker, args=(k + j * spec["threads"], slots, to), daemon=True)
               for j, (to, slots) in enumerate(queues.items()) for k in range(spec["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.close()
    return 0


class _Conn:
    """One kept-alive HTTP connection, reopened after a failure."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.c = host, port, None

    def call(self, method: str, path: str, token: str, body: dict | None = None,
             headers: dict | None = None) -> tuple[int, bytes, dict]:
        if self.c is None:
            self.c = http.client.HTTPConnection(self.host, self.port, timeout=30)
        h = {"Authorization": f"Bearer {token}", **(headers or {})}
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            h["Content-Type"] = "application/json"
        try:
            self.c.request(method, path, body=data, headers=h)
            r = self.c.getresponse()
            return r.status, r.read(), dict(r.getheaders())
        except (OSError, http.client.HTTPException):
            self.c.close()
            self.c = None
            raise


class _Movers:
    """The clues one generator moves: new → assigned → verifying, then dismissed ⇄ verifying."""

    def __init__(self, clue_ids: list[int], index: int) -> None:
        self.free = list(clue_ids)
        self.state = {c: "new" for c in clue_ids}
        self.lock = threading.Lock()

    def take(self) -> tuple[int, str] | None:
        with self.lock:
            if not self.free:
                return None
            clue = self.free.pop(0)
        nxt = {"new": "assigned", "assigned": "verifying", "verifying": "dismissed", "dismissed": "verifying"}
        return clue, nxt[self.state[clue]]

    def give_back(self, clue: int, state: str | None) -> None:
        with self.lock:
            if state is not None:
                self.state[clue] = state
            self.free.append(clue)


def _request(conn: _Conn, kind: str, spec: dict, visits: list, rng: random.Random, movers: _Movers,
             number: int) -> dict:
    tokens = spec["tokens"]
    if kind == "precheck":
        return _send(conn, "POST", "/precheck", tokens["analyst"], rng.choice(visits) | {"mode": rng.choice(["pre", "during"])})
    if kind == "clue_list":
        q = f"?limit=50&offset={rng.randrange(0, max(1, len(spec['clues']) - 50))}&sort={rng.choice(['priority', 'age', 'amount'])}"
        return _send(conn, "GET", "/api/clues" + q, tokens["analyst"])
    if kind == "clue_detail":
        return _send(conn, "GET", f"/api/clues/{rng.choice(spec['clues'])}", tokens["analyst"])
    if kind == "statistics":
        return _send(conn, "GET", "/api/statistics", tokens["analyst"])
    tag = f"soak-{spec['index']}-{number}"
    if kind == "comment":
        clue = rng.choice(spec["clues"])
        r = _send(conn, "POST", f"/api/clues/{clue}/comments", tokens["analyst"], {"text": f"核查意见 {tag}"}, key=tag)
        return r | {"write": {"kind": "comment", "tag": tag, "clue": clue}}
    taken = movers.take()
    if taken is None:  # every clue of this generator is being moved: count it as a read of one
        return _send(conn, "GET", f"/api/clues/{rng.choice(spec['clues'])}", tokens["admin"]) | {"route": "clue_detail"}
    clue, to_state = taken
    body = {"to_state": to_state, "reason": f"流转 {tag}"} | ({"assignee": "soak-admin"} if to_state == "assigned" else {})
    r = _send(conn, "POST", f"/api/clues/{clue}/transitions", tokens["admin"], body, key=tag)
    state = to_state if r["status"] == 200 else None
    if r["status"] == 409 or r["status"] is None:  # out of step (or unknown): read where the clue is
        try:
            status, data, _ = conn.call("GET", f"/api/clues/{clue}", tokens["admin"])
            state = json.loads(data)["state"] if status == 200 else None
        except Exception:  # noqa: BLE001
            state = None
    movers.give_back(clue, state)
    return r | {"write": {"kind": "transition", "tag": tag, "clue": clue, "to": to_state}}


def _send(conn: _Conn, method: str, path: str, token: str, body: dict | None = None, *, key: str | None = None) -> dict:
    """One request, sent again (same idempotency key) after a connection failure; its status and tries."""
    headers = {"Idempotency-Key": key} if key else None
    last = None
    for attempt in range(RETRIES + 1):
        try:
            status, data, h = conn.call(method, path, token, body, headers)
        except (OSError, http.client.HTTPException) as e:
            last = f"{type(e).__name__}"
            time.sleep(min(2.0, 0.2 * 2**attempt))
            continue
        out = {"status": status, "tries": attempt + 1}
        if h.get("Idempotent-Replayed") == "true" or h.get("idempotent-replayed") == "true":
            out["replayed"] = True
        if status >= 500:
            out["error"] = data[:200].decode("utf-8", errors="replace")
        return out
    return {"status": None, "tries": RETRIES + 1, "error": last}


# -- evidence exports ---------------------------------------------------------------------------------


def _exports(url: str, users: dict, clues: list[int], n: int, at: float, events: dict) -> None:
    """``n`` evidence packages (PDF) started together at ``at`` by the export analysts, two each."""
    import httpx

    if n <= 0:
        return
    time.sleep(max(0.0, at - time.time()))
    started, jobs, refused = time.time(), [], 0
    for i in range(n):
        token = users[f"soak-export-{i % EXPORT_USERS}"]
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            r = c.post(f"/api/clues/{clues[i % len(clues)]}/evidence/jobs", params={"pdf": "true"})
            if r.status_code == 202:
                jobs.append((token, r.json(), time.time()))
            else:
                refused += 1
    done, failed, seconds, poll_errors = 0, 0, [], defaultdict(int)
    for token, job, t in jobs:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            deadline = time.time() + 900
            while job["state"] in ("queued", "running") and time.time() < deadline:
                time.sleep(2)
                try:
                    r = c.get(job["status_url"])
                except httpx.HTTPError as e:
                    poll_errors[type(e).__name__] += 1
                    continue
                if r.status_code != 200:
                    poll_errors[str(r.status_code)] += 1
                    continue
                job = r.json()
            if job["state"] == "done" and c.get(job["download_url"]).status_code == 200:
                done += 1
                seconds.append(round(time.time() - t, 1))
            else:
                failed += 1
    events["exports"] = {"requested": n, "accepted": len(jobs), "refused_429": refused, "done": done,
                         "failed": failed, "window_s": [round(started, 3), round(time.time(), 3)],
                         "seconds_to_done": seconds, "poll_errors": dict(poll_errors)}


# -- the fault ----------------------------------------------------------------------------------------


def _kill_a_worker(server_pid: int) -> dict:
    import psutil

    workers = [p for p in psutil.Process(server_pid).children(recursive=True)
               if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]
    if not workers:
        return {"killed": None, "note": "no worker found"}
    victim = workers[0]
    os.kill(victim.pid, signal.SIGKILL)
    return {"killed": victim.pid, "workers_before": len(workers)}


# -- figures ------------------------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * len(s)))], 1)


def _route_figures(results: list[dict], duration: float) -> dict:
    by = defaultdict(list)
    for r in results:
        by[r["route"]].append(r)
    out = {}
    for route, rs in sorted(by.items()):
        lat = [r["latency_ms"] for r in rs if r["status"] is not None and r["status"] < 500]
        out[route] = {"requests": len(rs), "per_s": round(len(rs) / duration, 1),
                      "p50_ms": _pct(lat, 0.5), "p95_ms": _pct(lat, 0.95), "p99_ms": _pct(lat, 0.99),
                      "max_ms": max(lat) if lat else None,
                      "status": dict(sorted(defaultdict(int, {str(k): sum(1 for r in rs if r["status"] == k)
                                                              for k in {r["status"] for r in rs}}).items())),
                      "server_errors": sum(1 for r in rs if r["status"] is not None and r["status"] >= 500),
                      "no_answer": sum(1 for r in rs if r["status"] is None),
                      "retried": sum(1 for r in rs if r.get("tries", 1) > 1)}
    every = [r["latency_ms"] for r in results if r["status"] is not None and r["status"] < 500]
    out["all"] = {"requests": len(results), "per_s": round(len(results) / duration, 1), "p50_ms": _pct(every, 0.5),
                  "p99_ms": _pct(every, 0.99), "server_errors": sum(v["server_errors"] for v in out.values()),
                  "no_answer": sum(v["no_answer"] for v in out.values())}
    return out


def _precheck_in_window(results: list[dict], exports: dict, t0: float) -> dict:
    window = exports.get("window_s")
    if not window:
        return {}
    inside = [r["latency_ms"] for r in results if r["route"] == "precheck" and r["status"] == 200
              and window[0] <= r["due"] <= window[1]]
    outside = [r["latency_ms"] for r in results if r["route"] == "precheck" and r["status"] == 200
               and not window[0] <= r["due"] <= window[1]]
    by_10s: dict[int, list[float]] = defaultdict(list)  # when in the window the slow ones fall
    for r in results:
        if r["route"] == "precheck" and r["status"] == 200 and window[0] <= r["due"] <= window[1]:
            by_10s[int((r["due"] - window[0]) // 10) * 10].append(r["latency_ms"])
    return {"window_s": [round(window[0] - t0, 1), round(window[1] - t0, 1)],
            "inside": {"n": len(inside), "p50_ms": _pct(inside, 0.5), "p99_ms": _pct(inside, 0.99)},
            "outside": {"n": len(outside), "p50_ms": _pct(outside, 0.5), "p99_ms": _pct(outside, 0.99)},
            "inside_p99_by_10s": {f"+{k}s": _pct(v, 0.99) for k, v in sorted(by_10s.items())}}


def _rss_trend(samples: list[tuple[float, float | None]], duration: float, kill_at: float | None,
               restart_s: float = 90.0) -> dict:
    """RSS of the server's processes: first, max, last, and its slope (MB/min) in the steady stretches:
    after the first fifth of the run until the kill, and from ``restart_s`` after the kill to the end (a
    killed worker's memory goes, its successor's comes back while it loads)."""
    pts = [(t, m) for t, m in samples if m is not None and t >= 0]
    if len(pts) < 4:
        return {"samples": len(pts)}
    end_before = kill_at if kill_at is not None else duration
    stretches = {"before_kill": [(t, m) for t, m in pts if 0.2 * duration <= t < end_before]}
    if kill_at is not None:
        stretches["after_restart"] = [(t, m) for t, m in pts if t >= kill_at + restart_s]
    out = {"samples": len(pts), "first_mb": pts[0][1], "max_mb": max(m for _, m in pts), "last_mb": pts[-1][1]}
    for name, part in stretches.items():
        if len(part) >= 4 and len({t for t, _ in part}) > 1:
            fit = statistics.linear_regression([t for t, _ in part], [m for _, m in part])
            out[f"{name}_mb_per_min"] = round(fit.slope * 60, 1)
            out[f"{name}_span_s"] = [round(part[0][0]), round(part[-1][0])]
    return out


def _check_writes(db: Path, results: list[dict]) -> dict:
    """Acknowledged comments and transitions in the store exactly once; none twice."""
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        comments = defaultdict(int)
        for (text,) in con.execute("SELECT text FROM clue_comment WHERE text LIKE '核查意见 soak-%'"):
            comments[text.removeprefix("核查意见 ")] += 1
        moves = defaultdict(int)
        for (reason,) in con.execute("SELECT reason FROM clue_transition WHERE reason LIKE '流转 soak-%'"):
            moves[reason.removeprefix("流转 ")] += 1
    finally:
        con.close()
    out = {}
    for kind, stored in (("comment", comments), ("transition", moves)):
        writes = [r for r in results if (r.get("write") or {}).get("kind") == kind]
        acked = [r["write"]["tag"] for r in writes if r["status"] == 200]
        unanswered = [r["write"]["tag"] for r in writes if r["status"] is None]
        out[kind] = {"sent": len(writes), "acknowledged": len(acked),
                     "lost": sum(1 for t in acked if stored.get(t, 0) == 0),
                     "doubled": sum(1 for n in stored.values() if n > 1),
                     "replayed_answers": sum(1 for r in writes if r.get("replayed")),
                     "unanswered": len(unanswered), "unanswered_stored": sum(1 for t in unanswered if stored.get(t)),
                     "refused": dict(sorted(defaultdict(int, {str(s): sum(1 for r in writes if r["status"] == s)
                                                               for s in {r["status"] for r in writes}
                                                               if s not in (200, None)}).items()))}
    return out


def _verdict(out: dict) -> dict:
    w = out["writes"]
    checks = {"no_server_errors": out["routes"]["all"]["server_errors"] == 0,
              "no_lost_or_doubled_writes": all(w[k]["lost"] == 0 and w[k]["doubled"] == 0 for k in w),
              "every_request_answered": out["routes"]["all"]["no_answer"] == 0}
    return {"ok": all(checks.values()), **checks}


def _print_summary(out: dict) -> None:
    m = out["machine"]
    print(f"soak {out['date']}: {out['load']['rate']} req/s for {out['load']['minutes']} min, "
          f"{out['server']['workers']} workers; load average {m['loadavg_start']} → {m['loadavg_end']}, "
          f"{m['cpus']} cores; server start {out['server'].get('start_seconds')} s")
    print(f"{'route':<12} {'req':>6} {'req/s':>6} {'p50':>8} {'p95':>8} {'p99':>8} {'max':>8}  5xx  none retried")
    for route, r in out["routes"].items():
        if route == "all":
            continue
        print(f"{route:<12} {r['requests']:>6} {r['per_s']:>6} {r['p50_ms']!s:>8} {r['p95_ms']!s:>8} "
              f"{r['p99_ms']!s:>8} {r['max_ms']!s:>8} {r['server_errors']:>4} {r['no_answer']:>5} {r['retried']:>7}")
    a = out["routes"]["all"]
    print(f"{'all':<12} {a['requests']:>6} {a['per_s']:>6} {a['p50_ms']!s:>8} {'':>8} {a['p99_ms']!s:>8}")
    print(f"exports: {out.get('exports')}")
    print(f"pre-check during / outside exports: {out.get('precheck_during_exports')}")
    print(f"kill: {out.get('kill')}")
    print(f"RSS: {out.get('rss')}")
    print(f"writes: {json.dumps(out['writes'], ensure_ascii=False)}")
    print(f"server log ERROR lines: {out['server']['log_errors']}; verdict: {out['verdict']}")


# -- helpers ------------------------------------------------------------------------------------------


def _mix(text: str) -> dict[str, float]:
    mix = {k.strip(): float(v) for k, v in (part.split("=") for part in text.split(","))}
    known = {"precheck", "clue_list", "clue_detail", "statistics", "comment", "transition"}
    if set(mix) - known:
        raise SystemExit(f"--mix: unknown routes {sorted(set(mix) - known)}; known: {sorted(known)}")
    return mix


def _rows(warehouse: Path) -> dict:
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("setl_d", "fee_list_d", "psn_info")}


def _rss_tree_mb(pid: int) -> float | None:
    import psutil

    try:
        proc = psutil.Process(pid)
        return round(sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20, 1)
    except psutil.Error:
        return None


def _cpu_tree_s(pid: int) -> float:
    """CPU seconds used so far by the server, its workers and their background processes (the living ones)."""
    import psutil

    try:
        procs = [psutil.Process(pid)]
        procs += procs[0].children(recursive=True)
        return sum(t.user + t.system + t.children_user + t.children_system for t in (p.cpu_times() for p in procs))
    except psutil.Error:
        return 0.0


def _machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())

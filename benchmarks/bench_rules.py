"""Benchmark of the rule engine (run on demand; figures go to docs/benchmarks.md, section "Rules").

    .venv/bin/python benchmarks/bench_rules.py --warehouse /tmp/r3/small.duckdb [--visits 500] [--json]

1. Batch: all enabled rules over the whole warehouse (``run_rules``: writes ``rule_hits`` into it), wall time
   and hits per rule.
2. Precheck: ``--visits`` settlements sampled at random (seeded) among those with at least ``--lookback``
   days of history before them; each is rebuilt as a visit dict from the warehouse and checked by one
   long-lived :class:`Prechecker` (history from its in-memory store, the visit's own settlement left out
   of it). Latency per visit (in-process, parsing of the visit dict included) as p50/p95/p99/max — wall
   time and the calling thread's CPU time (DuckDB runs single-threaded in the calling thread, so CPU time
   is what the check costs when other processes share the cores) —, overall, by care type and by number
   of rules run; with ``--repeat N`` the sample is checked N times and each percentile is reported as the
   best and the median over the passes. Also the checker's set-up time and the memory its store takes.
   ``--engine`` picks how the checker evaluates the rules (``auto``: the Python kernels where a rule has
   one, its SQL otherwise; ``sql``; ``python``); ``--compare`` also checks every sampled visit with a
   second, ``engine="sql"`` checker and reports any visit whose hits differ (every column but hit_time).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from dataclasses import fields
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.rules.config import load_config  # noqa: E402
from models.rules.engine import run_rules  # noqa: E402
from models.rules.precheck import ENGINES, Hit, Prechecker, Visit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, required=True)
    parser.add_argument("--visits", type=int, default=500)
    parser.add_argument("--lookback", type=int, default=180)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=1, help="Passes over the sampled visits (precheck).")
    parser.add_argument("--store-path", type=Path, help="Precheck's history store in this DuckDB file, not in memory.")
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="How precheck evaluates the rules.")
    parser.add_argument("--compare", action="store_true",
                        help="Also check the sampled visits with engine='sql' and report differing hits.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object only.")
    args = parser.parse_args(argv)

    out: dict = {"machine": _machine(), "warehouse": str(args.warehouse), "rows": _rows(args.warehouse)}
    if not args.skip_batch:
        t0 = time.perf_counter()
        report = run_rules(args.warehouse, load_config())
        out["batch"] = {"seconds": round(time.perf_counter() - t0, 1), "hits": report.hits,
                        "amount_at_risk": float(report.amount_at_risk),
                        "rules": {r.rule_id: {"hits": r.hits, "seconds": r.seconds} for r in report.rules}}
        _say(args, f"batch: {out['batch']['seconds']} s, {report.hits:,} hits")
    out["precheck"] = _precheck(args)
    out["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    return 0


def _precheck(args) -> dict:
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        start = con.execute("SELECT min(setl_time) FROM setl_d").fetchall()[0][0]
        ids = [r[0] for r in con.execute(
            "SELECT setl_id FROM setl_d WHERE refd_setl_flag <> '1' AND setl_time >= ? ORDER BY setl_id",
            [start + __import__("datetime").timedelta(days=args.lookback)]).fetchall()]
        rng = random.Random(args.seed)
        sample = rng.sample(ids, min(args.visits, len(ids)))
        visits = [_visit(con, sid) for sid in sample]
    rss0 = _rss_mb()
    checker = Prechecker(args.warehouse, lookback_days=args.lookback, store_path=args.store_path,
                         engine=args.engine)
    rss = _rss_mb()
    t = time.perf_counter()
    checker.check(visits[0])  # the first call warms DuckDB's caches; it is timed separately
    first = (time.perf_counter() - t) * 1000
    runs = []
    for _ in range(args.repeat):
        times, cpu, by_type, by_rules, n_hits = [], [], {}, {}, 0
        for raw in visits:
            t, c = time.perf_counter(), time.thread_time()
            visit = Visit.from_dict(raw)
            hits = checker.check(visit)
            dt, dc = (time.perf_counter() - t) * 1000, (time.thread_time() - c) * 1000
            times.append(dt)
            cpu.append(dc)
            by_type.setdefault(_care(raw["setl"]["med_type"]), []).append(dt)
            n = len(checker.relevant_rules(visit))
            by_rules.setdefault("0" if n == 0 else "1-2" if n <= 2 else "3-5" if n <= 5 else "6+", []).append(dt)
            n_hits += len(hits)
        runs.append({"ms": _pcts(times), "cpu_ms": _pcts(cpu), "hits": n_hits,
                     "by_care_type": {k: _pcts(v) | {"n": len(v)} for k, v in sorted(by_type.items())},
                     "by_rules_run": {k: _pcts(v) | {"n": len(v)} for k, v in sorted(by_rules.items())}})
    relevant = [checker.relevant_rules(Visit.from_dict(raw)) for raw in visits]
    n_rules = [len(r) for r in relevant]
    kernels = set(checker.kernel_rules())
    compared = _compare(args, checker, visits) if args.compare else None
    checker.close()
    out = {"visits": len(visits), "lookback_days": args.lookback, "engine": args.engine,
           "setup_seconds": checker.setup_seconds, "index_seconds": checker.index_seconds,
           "index_mb": round(checker.index_bytes / 2**20), "kernel_rules": sorted(kernels),
           "store": str(args.store_path or "memory"), "store_rss_mb": round(rss - rss0),
           "first_ms": round(first, 1), "repeats": len(runs),
           "rules_run": {"mean": round(statistics.mean(n_rules), 2), "max": max(n_rules),
                         "none": sum(1 for n in n_rules if n == 0),
                         "visits_running_sql": sum(1 for r in relevant if set(r) - kernels)}}
    if compared is not None:
        out["compare_with_sql"] = compared
    for key in ("ms", "cpu_ms"):  # over the repeats: the best and the median of each percentile
        out[key] = {p: {"best": min(r[key][p] for r in runs), "median": round(statistics.median(r[key][p] for r in runs), 1)}
                    for p in ("p50", "p95", "p99", "max")}
    return out | {"runs": runs}


def _compare(args, checker: Prechecker, visits: list[dict]) -> dict:
    """Check *visits* again with an ``engine="sql"`` checker: visits whose hits differ (all columns but
    hit_time), with the first few differences."""
    def columns(h: Hit) -> tuple:
        return tuple(json.dumps(getattr(h, f.name), sort_keys=True, ensure_ascii=False, default=str)
                     if f.name == "detail" else getattr(h, f.name) for f in fields(h) if f.name != "hit_time")

    differ, hits, examples = 0, 0, []
    with Prechecker(args.warehouse, lookback_days=args.lookback, store_path=args.store_path, engine="sql") as sql:
        for raw in visits:
            a, b = sorted(map(columns, sql.check(raw))), sorted(map(columns, checker.check(raw)))
            hits += len(a)
            if a != b:
                differ += 1
                if len(examples) < 5:
                    examples.append({"setl_id": raw["setl"]["setl_id"], "sql": [str(x) for x in a if x not in b],
                                     "checker": [str(x) for x in b if x not in a]})
    _say(args, f"compared with engine=sql: {differ} of {len(visits)} visits differ ({hits} hits)")
    return {"visits": len(visits), "differing_visits": differ, "sql_hits": hits, "examples": examples}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    except (OSError, StopIteration):  # pragma: no cover
        return 0.0


def _visit(con, setl_id: str) -> dict:
    def rows(sql):
        cur = con.execute(sql, [setl_id])
        names = [d[0] for d in cur.description]
        return [{k: _clean(v) for k, v in zip(names, r) if k != "_ingest_batch"} for r in cur.fetchall()]

    setl = rows("SELECT * FROM setl_d WHERE setl_id = ?")[0]
    mdtrt = rows("SELECT m.* FROM mdtrt_d m JOIN setl_d s USING (mdtrt_id) WHERE s.setl_id = ?")
    return {"setl": setl, "mdtrt": mdtrt[0] if mdtrt else None,
            "lines": rows("SELECT * FROM fee_list_d WHERE setl_id = ?"),
            "diagnoses": rows("SELECT * FROM setl_list_diag_d WHERE setl_id = ?")}


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def _care(med_type: str) -> str:
    return {"21": "inpatient", "41": "pharmacy", "13": "emergency"}.get(med_type, "outpatient")


def _pcts(xs: list[float]) -> dict:
    s = sorted(xs)

    def q(p):
        return round(s[min(len(s) - 1, max(0, math.ceil(p * len(s)) - 1))], 1)

    return {"p50": q(0.50), "p95": q(0.95), "p99": q(0.99), "max": round(s[-1], 1)}


def _rows(path: Path) -> dict:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                for t in ("setl_d", "fee_list_d", "psn_info")}


def _machine() -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cores": cores, "cpu": cpu, "memory_gb": round(mem, 1), "python": platform.python_version(),
            "duckdb": duckdb.__version__, "loadavg_start": [round(x, 2) for x in os.getloadavg()]}


def _say(args, msg: str) -> None:
    if not args.json:
        print(msg, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())

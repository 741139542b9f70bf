"""Benchmark of the feature build: time and peak memory per feature table and in total.

Run on demand (never in the test suite), on a warehouse that `yibao ingest` filled:

    .venv/bin/yibao simulate --preset city --out /tmp/r4/city
    .venv/bin/yibao ingest /tmp/r4/city --warehouse /tmp/r4/city.duckdb --dev
    .venv/bin/python benchmarks/bench_features.py --warehouse /tmp/r4/city.duckdb [--engine duckdb|spark]

The build runs in a child process so that its peak memory (max RSS) is its own. After each step (each
staging table, then each feature table) the child prints the step's seconds and the process's peak RSS
so far (a running maximum: the peak of a step is at most the figure printed after it). With
``--engine spark`` the JVM's memory is not in that figure (it is a separate process). Prints a JSON
summary at the end; record the figures in docs/benchmarks.md under "Features".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from features.warehouse import cores

_CHILD = r"""
import json, resource, sys, time
from features.build import build_features
steps, last = [], [time.perf_counter()]
def tick(step, done, total):
    now = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    steps.append({"step": step, "seconds": round(now - last[0], 2), "peak_rss_gib": round(rss, 2)})
    print(f"  {step:<16} {now - last[0]:7.2f} s   peak RSS so far {rss:5.2f} GiB", file=sys.stderr, flush=True)
    last[0] = now
t0 = time.perf_counter()
report = build_features(sys.argv[1], engine=sys.argv[2], progress=tick, memory_limit=sys.argv[3] or None,
                        threads=int(sys.argv[4]) if sys.argv[4] else None)  # --threads: default every core
out = report.to_dict() | {"steps": steps, "total_seconds": round(time.perf_counter() - t0, 1),
       "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)}
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--engine", default="duckdb", choices=("duckdb", "spark"))
    ap.add_argument("--memory-limit", default="", help="cap DuckDB's memory, e.g. 4GB (default: 60 %% of RAM)")
    ap.add_argument("--threads", default="", help="DuckDB threads for the build (default: every core; the "
                    "features are the same to the last bit on any number)")
    args = ap.parse_args()
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(args.warehouse), args.engine, args.memory_limit,
                           args.threads],
                          check=False, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"feature build failed ({proc.returncode})")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    import duckdb

    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        out["input_rows"] = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                             for t in ("setl_d", "fee_list_d", "mdtrt_d", "psn_info")}
    out["machine"] = (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores usable, "
                      f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                      f"load average {os.getloadavg()[0]:.1f}")
    out["memory_limit"] = args.memory_limit or "60% of RAM"
    out["threads"] = int(args.threads) if args.threads else cores()
    print(f"features ({args.engine}, {out['threads']} thread(s), memory limit {out['memory_limit']}) on {args.warehouse}: {out['total_seconds']} s, peak RSS {out['peak_rss_gib']} GiB")
    for t, r in out["tables"].items():
        print(f"  {t:<16} {r['rows']:>10,} rows {r['columns']:>4} columns {r['seconds']:7.2f} s")
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

"""The investigators' work queue and clue page, timed in process on a demo's warehouse and clue store.

    python benchmarks/bench_clue_queue.py --warehouse data/demo/warehouse.duckdb --db sqlite:///data/demo/clues.db

Works on copies of both (the store is migrated and gets audit rows). Reports the median and the slowest of
``--repeat`` runs, in milliseconds: the list with and without filters and a column sort, the statistics
with the same filters, the Excel export of every clue, and a clue's claims with and without the rule-hit
lines (``serving.evidence.rule_hit_lines``) for the top clues.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def _timed(fn, repeat: int) -> dict:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": round(statistics.median(times), 1), "max_ms": round(max(times), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--db", required=True, help="sqlite:///path of the clue store (copied first)")
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--clues", type=int, default=10, help="how many top clues to open")
    args = ap.parse_args()

    import duckdb

    from serving.clues.export import clue_list_xlsx
    from serving.clues.store import SYSTEM, open_store
    from serving.evidence import claims, rule_hit_lines

    work = Path(tempfile.mkdtemp(prefix="bench-clue-queue-"))
    wh = work / "warehouse.duckdb"
    shutil.copy(args.warehouse, wh)
    shutil.copy(args.db.removeprefix("sqlite:///"), work / "clues.db")
    store = open_store(f"sqlite:///{work / 'clues.db'}")
    filters = {"risk_level": "high", "min_amount": 1000, "max_amount": 1e7, "q": "H2201", "region": "2201"}
    out: dict = {"clues": store.statistics(SYSTEM)["total"]}
    out["list"] = _timed(lambda: store.list(SYSTEM), args.repeat)
    out["list_filtered_sorted"] = _timed(lambda: store.list(SYSTEM, sort="due", order="desc", **filters), args.repeat)
    out["statistics"] = _timed(lambda: store.statistics(SYSTEM), args.repeat)
    out["statistics_filtered"] = _timed(lambda: store.statistics(SYSTEM, **filters), args.repeat)
    out["export_all_xlsx"] = _timed(lambda: clue_list_xlsx(store.export_list(SYSTEM)["items"]), max(3, args.repeat // 5))
    top = [store.get(c["id"], SYSTEM) for c in store.list(SYSTEM, limit=args.clues)["items"]]
    con = duckdb.connect(str(wh), read_only=True)
    out["claims_per_clue"] = _timed(lambda: [claims(wh, c["evidence"].get("setl_id") or [], con=con) for c in top],
                                    max(3, args.repeat // 5))
    out["rule_hit_lines_per_clue"] = _timed(lambda: [rule_hit_lines(con, c) for c in top], max(3, args.repeat // 5))
    for k in ("claims_per_clue", "rule_hit_lines_per_clue"):
        out[k] = {m: round(v / len(top), 1) for m, v in out[k].items()}
    con.close()
    store.close()
    shutil.rmtree(work)
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

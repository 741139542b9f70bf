"""Benchmark of the foundation: simulation time and peak memory, ingest throughput.

Run on demand (never in the test suite):

    .venv/bin/python benchmarks/bench_foundation.py --preset city --workdir bench

To time the ingest alone on a region simulated earlier (``yibao simulate --preset city --seed 7 --out DIR``),
pass ``--region DIR``: the simulation step is skipped and the region is left in place.

Each step runs in its own process so that its peak memory (max RSS) is its own. Prints one line of
figures per step and a JSON summary at the end; record them in docs/benchmarks.md.

The speed of the shared machine drifts by a third or more within a day. So that figures taken at
different times can be compared, the ingest is followed by a reference step on the same data: a bare copy
of the fee lines' Parquet into a new DuckDB file (``CREATE TABLE AS SELECT *``, no checks, insertion order
not kept, as the ingest does), the floor of any load. ``ingest.over_bare_copy`` is the ingest's time over that floor's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb


def _run_step(code: str) -> tuple[float, float]:
    """Run python code in a child process; return (seconds, that process's peak RSS in GiB)."""
    peak_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-peak-{os.getpid()}"
    code += (f"\nimport resource; open({str(peak_file)!r}, 'w').write("
             f"str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    secs = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"step failed ({proc.returncode}): {code}")
    peak_kib = int(peak_file.read_text())
    peak_file.unlink()
    return secs, peak_kib / 1024 / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="city")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workdir", type=Path, default=Path("bench"))
    ap.add_argument("--keep", action="store_true", help="keep the region and warehouse afterwards")
    ap.add_argument("--region", type=Path, help="ingest this existing simulated region instead of simulating one "
                    "(not deleted afterwards; must not be inside --workdir)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    region, wh = work / "region", work / "warehouse.duckdb"
    if args.region is not None:
        region = args.region.resolve()
        if not (region / "simulation.json").is_file():
            raise SystemExit(f"{region} is not a simulated region (no simulation.json)")
        if region == work or work in region.parents:
            raise SystemExit("--region must not be inside --workdir (the workdir is emptied first)")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    out = {"preset": args.preset, "seed": args.seed, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
           f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}"}

    if args.region is None:
        secs, peak = _run_step(f"from pathlib import Path; from training.simulator import simulate; "
                               f"simulate({args.preset!r}, seed={args.seed}, out=Path({str(region)!r}))")
        rows = json.loads((region / "simulation.json").read_text())["rows"]
        out["simulate"] = {"seconds": round(secs, 1), "peak_rss_gib": round(peak, 2), "rows": rows}
        print(f"simulate {args.preset}: {secs:.1f} s, peak RSS {peak:.2f} GiB, "
              f"{rows['setl_d']:,} settlements, {rows['fee_list_d']:,} fee lines", flush=True)
    else:
        sim = json.loads((region / "simulation.json").read_text())
        rows = sim["rows"]
        out["region"] = str(region)
        out["preset"], out["seed"] = sim.get("preset", "?"), sim.get("seed", "?")
        print(f"region {region}: {rows['setl_d']:,} settlements, {rows['fee_list_d']:,} fee lines "
              f"(simulation skipped)", flush=True)

    secs, peak2 = _run_step(f"from pathlib import Path; from features.config import Settings; "
                            f"from features.ingest import ingest; "
                            f"ingest(Path({str(region)!r}), Settings(warehouse=Path({str(wh)!r})))")
    total_rows = sum(rows.values())
    out["ingest"] = {"seconds": round(secs, 1), "peak_rss_gib": round(peak2, 2),
                     "fee_lines_per_s": round(rows["fee_list_d"] / secs), "rows_per_s": round(total_rows / secs)}
    print(f"ingest: {secs:.1f} s, {rows['fee_list_d'] / secs:,.0f} fee lines/s, {total_rows / secs:,.0f} rows/s "
          f"(all tables)", flush=True)

    fee = region / "fee_list_d"
    fee_glob = str(fee / "*.parquet") if fee.is_dir() else str(region / "fee_list_d.parquet")
    if fee.is_dir() or Path(fee_glob).is_file():
        floor = work / "bare_copy.duckdb"
        secs_floor, _ = _run_step(f"import duckdb; con = duckdb.connect({str(floor)!r}); con.execute('SET enable_progress_bar = false'); "
                                  f"con.execute('SET preserve_insertion_order = false'); "
                                  f"con.execute(\"CREATE TABLE fee_list_d AS SELECT * FROM read_parquet({fee_glob!r})\"); "
                                  f"con.execute('CHECKPOINT'); con.close()")
        floor.unlink(missing_ok=True)
        out["ingest"]["bare_copy_seconds"] = round(secs_floor, 1)
        out["ingest"]["over_bare_copy"] = round(out["ingest"]["seconds"] / secs_floor, 2)
        print(f"reference: bare copy of the fee lines {secs_floor:.1f} s "
              f"(ingest = {out['ingest']['over_bare_copy']}x that)", flush=True)

    secs, _ = _run_step(f"from pathlib import Path; from features.config import Settings; "
                        f"from features.ingest import ingest; "
                        f"ingest(Path({str(region)!r}), Settings(warehouse=Path({str(wh)!r})))")
    out["reingest_noop_seconds"] = round(secs, 1)
    con = duckdb.connect(str(wh), read_only=True)
    out["warehouse_fee_lines"] = con.execute("select count(*) from fee_list_d").fetchone()[0]
    con.close()
    print(f"re-ingest (no-op): {secs:.1f} s; warehouse fee lines {out['warehouse_fee_lines']:,}")
    print(json.dumps(out, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Benchmark of an incremental run (``yibao run --since auto``): one more month on a screened region.

Run on demand (never in the test suite):

    .venv/bin/python benchmarks/bench_since.py --lake LAKE --month 2025-12 --bundle B --workdir /tmp/benchsince \
        [--engine duckdb|spark] [--whole]

LAKE is a region written as a lake (``yibao simulate --preset city --layout lake``), B a scorer bundle (the
``report/scorer_bundle.joblib`` of a ``yibao demo``). The lake is cut in two by settlement month, as a
医保局 receives it: the months before ``--month`` and the rest, the reference tables and ``psn_info`` in
both (an extract carries them every time; the second ingest finds them unchanged). Folders of hard links,
no copy. Then, each in a child process with ``--force`` off:

1. ``yibao run`` over the first part: the region screened so far;
2. ``yibao run --since auto`` over the second part, on that warehouse: the month added;
3. with ``--whole``, ``yibao run`` over the whole lake in a fresh folder, for comparison.

Prints the time per stage of each run, the share of the whole run the month cost, and the peak memory (the
summed resident memory of the child's process tree); record the figures in docs/benchmarks.md. Each run's
stderr and its whole ``yibao run --json`` report are kept in the workdir (``run<i>.log``, ``run<i>.json``);
the rules' time per rule is in the warehouse's ``rule_runs``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import YIBAO, _run  # noqa: E402 - the child-process runner and its memory sampler


def cut(lake: Path, month: str, out: Path) -> tuple[Path, Path]:
    """Hard-linked folders of the lake's months before ``month`` and of the rest (reference tables in both)."""
    first, second = out / "first", out / "second"
    for part in (first, second):
        shutil.rmtree(part, ignore_errors=True)
    for path in sorted(p for p in lake.rglob("*") if p.is_file()):
        rel = path.relative_to(lake)
        months = [x for x in rel.parts if x.startswith("month=")]
        if len(rel.parts) == 1:
            continue  # simulation.json and the like: not tables
        targets = [first, second] if not months else [first if months[0] < f"month={month}" else second]
        for to in targets:
            (to / rel).parent.mkdir(parents=True, exist_ok=True)
            os.link(path, to / rel)
    return first, second


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lake", type=Path, required=True, help="a region written as a lake (yibao simulate --layout lake)")
    ap.add_argument("--month", required=True, help="the month added, YYYY-MM: earlier months are screened first")
    ap.add_argument("--bundle", type=Path, required=True, help="scorer bundle for the screen stage")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/benchsince"))
    ap.add_argument("--engine", default="duckdb", choices=("duckdb", "spark"))
    ap.add_argument("--whole", action="store_true", help="also run the whole lake at once, for comparison")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; lake {args.lake}",
          flush=True)
    first, second = cut(args.lake, args.month, args.workdir)
    common = ["--engine", args.engine, "--bundle", str(args.bundle), "--dev", "--json"]
    work = args.workdir / "work"
    shutil.rmtree(work, ignore_errors=True)
    plan = [("first months", first, work, []), (f"+ {args.month} since auto", second, work, ["--since", "auto"])]
    if args.whole:
        shutil.rmtree(args.workdir / "whole", ignore_errors=True)
        plan.append(("whole lake", args.lake, args.workdir / "whole", []))
    runs = {}
    for i, (name, source, out, extra) in enumerate(plan):
        load = os.getloadavg()[0]
        report, wall, peak = _run([YIBAO, "run", "--source", str(source), "--out", str(out), *common, *extra],
                                  args.workdir / f"run{i}.log")
        # the whole report (each stage's tables and summary) beside the log, to read a stage's parts later
        (args.workdir / f"run{i}.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
        stages = {s["stage"]: s for s in report["stages"]}
        rows = stages["ingest"]["summary"].get("tables", {}).get("setl_d", {})
        runs[name] = {"seconds": report["seconds"], "wall": round(wall, 1), "peak_gib": round(peak, 2),
                      "load_before": round(load, 2), "stages": {k: s["seconds"] for k, s in stages.items()},
                      "since": {k: s["summary"].get("since") for k, s in stages.items() if "since" in s["summary"]},
                      "settlements_loaded": rows.get("loaded")}
        print(f"{name}: " + ", ".join(f"{k} {s} s" for k, s in runs[name]["stages"].items())
              + f"; pipeline {report['seconds']} s, wall {wall:.1f} s, peak {peak:.2f} GiB, "
              f"settlements loaded {rows.get('loaded')} (load before {load:.2f})", flush=True)
    names = list(runs)
    print("\n" + "stage".ljust(10) + "".join(n[:22].rjust(24) for n in names))
    for stage in [*runs[names[0]]["stages"], "pipeline"]:
        vals = [runs[n]["seconds"] if stage == "pipeline" else runs[n]["stages"].get(stage) for n in names]
        print(stage.ljust(10) + "".join(f"{v:>24.1f}" if v is not None else " " * 24 for v in vals))
    if args.whole:
        share = runs[names[1]]["seconds"] / runs[names[2]]["seconds"]
        print(f"\nthe month added cost {share:.0%} of the whole run")
    print(json.dumps({"lake": str(args.lake), "month": args.month, "engine": args.engine, "runs": runs},
                     ensure_ascii=False))


if __name__ == "__main__":
    main()

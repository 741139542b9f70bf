"""Benchmark of retraining and screening: wall time and peak memory, with the headline figures.

Run on demand (never in the test suite), on a warehouse with rules, graph and features (`yibao demo`
builds one for `small` in data/demo/):

    .venv/bin/python benchmarks/bench_models.py --warehouse data/demo/warehouse.duckdb
    .venv/bin/python benchmarks/bench_models.py --warehouse CITY.duckdb --bundle small-bundle.joblib --screen-only

Training runs in a child process (its own peak RSS), logging to a throwaway MLflow store; then screening
runs in another child with the bundle training produced (or ``--bundle``). Prints a JSON summary; record
the figures in docs/benchmarks.md under "Models" and "Serving" (screening).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

_TRAIN = r"""
import json, resource, sys, time
from training.train import TrainConfig, train
t0 = time.perf_counter()
r = train(sys.argv[1], TrainConfig(seed=int(sys.argv[4])), tracking_uri=sys.argv[2], out_dir=sys.argv[3])
print(json.dumps({"seconds": round(time.perf_counter() - t0, 1), "headline": r.report["headline"],
                  "levels": {k: v["metrics"] | {"mode": v["mode"]["mode"]} for k, v in r.report["levels"].items()},
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)}))
"""

_SCREEN = r"""
import json, resource, sys, time
from models.bundle import ScorerBundle
from models.screening import screen
t0 = time.perf_counter()
b = ScorerBundle.load(sys.argv[2])
r = screen(sys.argv[1], b)
print(json.dumps(r.to_dict() | {"seconds": round(time.perf_counter() - t0, 1),
                  "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)}))
"""


def _child(code: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, *args], check=False, stdout=subprocess.PIPE, text=True)
    if proc.returncode:
        raise SystemExit(f"child failed ({proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, help="screen with this bundle (default: the one training produced)")
    ap.add_argument("--screen-only", action="store_true", help="skip training (needs --bundle)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-models-"))
    out: dict = {"warehouse": str(args.warehouse)}
    if not args.screen_only:
        out["train"] = _child(_TRAIN, str(args.warehouse), f"sqlite:///{work / 'mlflow.db'}", str(work / "report"),
                              str(args.seed))
        print(f"train: {out['train']['seconds']} s, peak {out['train']['peak_rss_gib']} GiB", file=sys.stderr)
    bundle = args.bundle or work / "report" / "scorer_bundle.joblib"
    out["screen"] = _child(_SCREEN, str(args.warehouse), str(bundle))
    print(f"screen: {out['screen']['seconds']} s, peak {out['screen']['peak_rss_gib']} GiB", file=sys.stderr)
    import duckdb

    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        out["input_rows"] = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchall()[0][0]
                             for t in ("setl_d", "fee_list_d", "psn_info", "fixmedins")}
    out["machine"] = (f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores usable, "
                      f"load average {os.getloadavg()[0]:.1f} at the end")
    print(json.dumps(out, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()

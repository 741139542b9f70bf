"""Benchmark of the declared pipeline on Spark: time per stage with 1 and 2 executor cores, and the speed-up.

Run on demand (never in the test suite):

    .venv/bin/python benchmarks/bench_pipeline.py --source CITY --bundle B --workdir /tmp/benchpipe \
        [--cores 1,2] [--duckdb] [--driver-memory 12g] [--stages rules,graph,features,screen] \
        [--prepare ingest]

CITY is an extract folder or lake (``yibao simulate --preset city``), B a scorer bundle (the
``report/scorer_bundle.joblib`` of a ``yibao demo``). The extract is ingested once on DuckDB into
``WORKDIR/base`` — or run through the ``--prepare`` stages, to time the later ones alone; then, for each
core count N, a copy of that warehouse runs the other stages with ``yibao run --engine spark --spark-master local[N] --force`` in
a child process (one SparkContext per process), and with ``--duckdb`` once more on DuckDB. ``local[N]``
is one JVM whose executor has N cores. To time the ingest itself (on Spark: a Parquet lake's first load),
give ``--stages ingest,… --prepare ''``: every run then starts from an empty folder. ``local[N]``
is one JVM whose executor has N cores: the Spark parts of a stage scale with N, the parts the stage report
says stay on the driver (``on_spark``) do not. Memory is the peak of the summed resident memory of the
child's process tree (Python, the JVM, its Python workers), sampled every 0.2 s.

Prints one line per run and stage, a table of the speed-ups, whether every table's fingerprint is the same
across the runs, and a JSON summary; record the figures in docs/benchmarks.md ("The pipeline on Spark").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
YIBAO = str(Path(sys.executable).with_name("yibao"))


class _TreeMemory:
    """The peak of the summed RSS of a process and its descendants, sampled in a thread."""

    def __init__(self, pid: int, every: float = 0.2) -> None:
        self.peak = 0
        self._proc = psutil.Process(pid)
        self._stop = threading.Event()
        self._every = every
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._proc, *self._proc.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            self._stop.wait(self._every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**30


def _run(cmd: list[str], log: Path) -> tuple[dict, float, float]:
    """Run ``cmd`` (a ``yibao run --json``), return its report, wall seconds and peak tree RSS in GiB."""
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
        memory = _TreeMemory(proc.pid)
        out, _ = proc.communicate()
        peak = memory.stop()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"失败 failed ({proc.returncode}): {' '.join(cmd)}\n see {log}")
    return json.loads(out), wall, peak


def _base(source: Path, workdir: Path, prepare: list[str]) -> Path | None:
    """The extract run once on DuckDB through the ``prepare`` stages (reused when already there); None when
    there are none (every run starts from an empty folder)."""
    if not prepare:
        return None
    base = workdir / ("base" if prepare == ["ingest"] else "base-" + "-".join(prepare))
    if (base / "warehouse.duckdb").is_file():
        print(f"{','.join(prepare)}: reusing {base / 'warehouse.duckdb'}", flush=True)
        return base
    report, wall, peak = _run([YIBAO, "run", "--source", str(source), "--out", str(base), "--stages",
                               ",".join(prepare), "--dev", "--force", "--json"], workdir / "base.log")
    print(", ".join(f"{s['stage']} {s['seconds']} s" for s in report["stages"])
          + f" (DuckDB, the base): wall {wall:.1f} s, peak {peak:.2f} GiB", flush=True)
    return base


def _copy(base: Path | None, to: Path) -> None:
    shutil.rmtree(to, ignore_errors=True)
    to.mkdir(parents=True)
    for f in base.iterdir() if base is not None else ():
        if f.is_file() and f.name.startswith("warehouse."):  # the warehouse, its key and identity vault
            shutil.copy2(f, to / f.name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, required=True, help="extract folder or lake (yibao simulate)")
    ap.add_argument("--bundle", type=Path, required=True, help="scorer bundle for the screen stage")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/benchpipe"))
    ap.add_argument("--cores", default="1,2", help="executor cores to try, comma-separated (local[N])")
    ap.add_argument("--stages", default="rules,graph,features,screen")
    ap.add_argument("--driver-memory", default="12g", help="spark.driver.memory (local mode: the one JVM)")
    ap.add_argument("--duckdb", action="store_true", help="also run the stages on DuckDB, for comparison")
    ap.add_argument("--prepare", default="ingest",
                    help="stages run once on DuckDB into the base every timed run starts from (e.g. "
                         "ingest,rules,graph,features to time the screen stage alone)")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    print(f"machine: {platform.node()} {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; source {args.source}",
          flush=True)
    base = _base(args.source, args.workdir, [s.strip() for s in args.prepare.split(",") if s.strip()])

    runs: dict[str, dict] = {}
    plan = ([("duckdb", ["--engine", "duckdb"])] if args.duckdb else []) + [
        (f"spark-{n}", ["--engine", "spark", "--spark-master", f"local[{n}]",
                        "--spark-conf", f"spark.driver.memory={args.driver_memory}"])
        for n in (int(c) for c in args.cores.split(","))]
    for name, engine_args in plan:
        folder = args.workdir / name
        _copy(base, folder)
        load = os.getloadavg()[0]
        source = ["--source", str(args.source), "--dev"] if "ingest" in stages else []
        report, wall, peak = _run([YIBAO, "run", *source, "--out", str(folder), "--stages", ",".join(stages),
                                   *engine_args, "--bundle", str(args.bundle), "--force", "--json"],
                                  args.workdir / f"{name}.log")
        per_stage = {s["stage"]: s["seconds"] for s in report["stages"]}
        tables = {t: v.get("fingerprint") for s in report["stages"] for t, v in s["tables"].items()}
        tables |= {"clue list": s["summary"]["clue_fingerprint"] for s in report["stages"]
                   if "clue_fingerprint" in s.get("summary", {})}
        runs[name] = {"wall": round(wall, 1), "pipeline": report["seconds"], "stages": per_stage,
                      "peak_gib": round(peak, 2), "load_before": round(load, 2), "tables": tables,
                      "engines": {s["stage"]: s["engine"] for s in report["stages"]}}
        print(f"{name}: " + ", ".join(f"{k} {v} s" for k, v in per_stage.items())
              + f"; pipeline {report['seconds']} s, wall {wall:.1f} s, peak {peak:.2f} GiB (load before {load:.2f})",
              flush=True)

    names = list(runs)
    both = {"spark-1", "spark-2"} <= set(runs)

    def seconds(run: str, stage: str) -> float | None:
        return runs[run]["pipeline"] if stage == "pipeline" else runs[run]["stages"].get(stage)

    print("\n" + "stage".ljust(10) + "".join(n.rjust(12) for n in names)
          + ("   speed-up spark-1 -> spark-2" if both else ""))
    for stage in stages + ["pipeline"]:
        vals = [seconds(n, stage) for n in names]
        line = stage.ljust(10) + "".join(f"{v:>12.1f}" if v is not None else " " * 12 for v in vals)
        if both and seconds("spark-1", stage) and seconds("spark-2", stage):
            line += f"   {seconds('spark-1', stage) / seconds('spark-2', stage):.2f}x"
        print(line)
    first = runs[names[0]]["tables"]
    differ = sorted({t for n in names[1:] for t in set(first) | set(runs[n]["tables"])
                     if runs[n]["tables"].get(t) != first.get(t)})
    print(f"\ntables with the same fingerprint in every run: {len(first) - len(differ)} of {len(first)}"
          + (f"; differ: {', '.join(differ)}" if differ else ""))
    print(json.dumps({"source": str(args.source), "runs": {n: {k: v for k, v in r.items() if k != "tables"}
                                                            for n, r in runs.items()},
                      "tables_differ": differ}, ensure_ascii=False))


if __name__ == "__main__":
    main()

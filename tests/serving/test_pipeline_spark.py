"""One declared pipeline on both engines (issue 17): ``--engine spark`` writes the tables DuckDB writes.

Equality is the pipeline's own per-table fingerprint (``serving.pipeline.fingerprint``): row count and an
order-independent hash of every column, each DOUBLE/FLOAT cut to 9 significant digits first (the
tolerance: a sum over the same values in another order may differ in its last bits; 9 digits keep every
amount under ten million yuan to the fen; ``serving.pipeline._significant``). No column is left out but those saying when or in which run
a row was written (``RUN_COLUMNS``: ``run_id``, ``hit_time``, ...). On a difference the test names the
columns that differ and shows rows.

The rules, the graph, the features and the screening are compared through a real standalone cluster (a
master and a worker started from the pyspark package), the features built there from the graph built
there and screened there; the screen stage (settlement and entity scores in ``mapInPandas``, every clue
field by field, an incremental screen) through a local session as well. (A third test ran
the same comparison in a local session as well: 157 s of the suite for what the cluster test checks.)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pytest

from features.catalogue import SNAPSHOTS, TABLES
from features.config import load_settings
from serving.pipeline import RUN_COLUMNS, run_pipeline
from features.warehouse import copy_warehouse


BATCH = ("ingest", "rules", "graph", "features")

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def on_duckdb(tiny_region, tmp_path_factory):
    """The tiny region through ingest → rules → graph → features on DuckDB: (warehouse, report)."""
    s = load_settings(warehouse=tmp_path_factory.mktemp("duckdb_run") / "warehouse.duckdb")
    return s.warehouse, run_pipeline(s, source=tiny_region, stages=BATCH)


@pytest.mark.slow
def test_settlement_scores_from_mapinpandas_are_duckdbs(on_duckdb, tiny_trained, spark, tmp_path):
    """The screen stage on both engines: ``setl_scores`` (the settlement booster over every settlement; on
    Spark in ``mapInPandas``) with the same fingerprint, and the same clue list."""
    reference, _ = on_duckdb
    bundle = tiny_trained[1].bundle.save(tmp_path / "bundle.joblib")
    reports = {}
    for engine in ("duckdb", "spark"):
        warehouse = tmp_path / engine / "warehouse.duckdb"
        warehouse.parent.mkdir()
        copy_warehouse(reference, warehouse)
        reports[engine] = run_pipeline(load_settings(warehouse=warehouse), stages=("screen",), engine=engine,
                                       spark=spark if engine == "spark" else None, bundle_path=bundle).stage("screen")
    on_duck, on_spark = reports["duckdb"], reports["spark"]
    assert (on_duck.engine, on_spark.engine) == ("duckdb", "spark") and "mapInPandas" in on_spark.on_spark
    with duckdb.connect(str(reference), read_only=True) as con:
        settlements = con.execute("SELECT count(*) FROM feat_setl").fetchone()[0]
    assert on_duck.tables["setl_scores"]["rows"] == settlements == on_spark.summary["settlements_scored"]
    assert on_duck.tables["setl_scores"] == on_spark.tables["setl_scores"], _differences(
        tmp_path / "duckdb" / "warehouse.duckdb", tmp_path / "spark" / "warehouse.duckdb", "setl_scores")
    # the entities scored on the executors (region percentiles, scores, the list's choice): the same clues,
    # reasons and evidence as DuckDB's, to the last bit
    assert "entity scores" in on_spark.on_spark
    duck_list, spark_list = on_duck.summary["clue_list"], on_spark.summary["clue_list"]
    assert len(duck_list) > 0 and {c["entity_type"] for c in duck_list} >= {"psn", "prac", "fixmedins"}
    assert [(c["entity_type"], c["entity_id"]) for c in spark_list] == [(c["entity_type"], c["entity_id"])
                                                                       for c in duck_list]
    assert spark_list == duck_list
    assert on_spark.summary["candidates"] == on_duck.summary["candidates"]
    # an incremental screen (yibao run --since) scores the settlements from then on in place of their rows
    again = run_pipeline(load_settings(warehouse=tmp_path / "spark" / "warehouse.duckdb"), stages=("screen",),
                         engine="spark", spark=spark, bundle_path=bundle, since="2025-10-01").stage("screen")
    assert again.summary["since"] == "2025-10-01 00:00:00"
    assert 0 < again.summary["settlements_scored"] == settlements
    assert again.tables["setl_scores"] == on_duck.tables["setl_scores"]


@pytest.mark.slow
def test_a_level_without_rows_screens_alike(on_duckdb, tiny_trained, spark, tmp_path):
    """A region without pharmacies (an extract of hospitals only): Spark's screening of the other levels gives
    DuckDB's clue list, and no pharmacy clue."""
    from models.screening import screen

    reference, _ = on_duckdb
    bundle = tiny_trained[1].bundle
    warehouse = tmp_path / "warehouse.duckdb"
    copy_warehouse(reference, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM feat_pharmacy")
    from features.spark import ParquetExports

    exports = ParquetExports(spark)
    try:
        on_spark = screen(warehouse, bundle, exports=exports)
    finally:
        exports.close()
    on_duck = screen(warehouse, bundle)
    assert "pharmacy" not in on_spark.by_type and on_spark.by_type == on_duck.by_type
    assert on_spark.clues == on_duck.clues and on_spark.candidates == on_duck.candidates


@pytest.mark.slow
def test_a_standalone_spark_cluster_runs_the_pipeline_alike(on_duckdb, tiny_region, tiny_trained, tmp_path,
                                                           spark_test_conf):
    """``yibao run --source … --engine spark --spark-master spark://…`` (every stage, into a new warehouse)
    against a master and a worker started here from the pyspark package (a process of its own: one
    SparkContext per process); all of it stopped after. Every table of the first four stages as on DuckDB:
    the contract tables and the quarantine ingested on Spark; for the graph,
    ``graph_edges`` and ``graph_covisit_pairs`` (counted on Spark) and everything built from them on the
    driver (communities, membership, ring candidates, node features, the build log's counts); the screen's
    settlement scores and its clue list (fingerprint: every clue, rank, score, reason and piece of evidence)
    as DuckDB's screening of the DuckDB warehouse."""
    from spark_cluster import StandaloneCluster

    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)")
    reference, duck = on_duckdb
    out = tmp_path / "work"
    out.mkdir()  # a new warehouse: the region ingested on the cluster too (typed Parquet, a first load)
    bundle = tiny_trained[1].bundle.save(tmp_path / "bundle.joblib")
    on_duck = tmp_path / "duck" / "warehouse.duckdb"
    on_duck.parent.mkdir()
    copy_warehouse(reference, on_duck)
    duck_screen = run_pipeline(load_settings(warehouse=on_duck), stages=("screen",), bundle_path=bundle).stage("screen")
    cluster = StandaloneCluster(workers=1, cores=2)
    with cluster:
        assert len(cluster.alive()) >= 2  # a master and a worker
        conf = spark_test_conf | {"spark.sql.shuffle.partitions": "1", "spark.executor.memory": "1g"}
        done = subprocess.run([str(Path(sys.executable).with_name("yibao")), "run", "--source", str(tiny_region),
                               "--out", str(out), "--dev", "--stages", "ingest,rules,graph,features,screen",
                               "--engine", "spark", "--spark-master",
                               cluster.master_url, "--force", "--json", "--bundle", str(bundle),
                               *[f"--spark-conf={k}={v}" for k, v in conf.items()]],
                              capture_output=True, text=True, timeout=900, cwd=tmp_path)
        log = "\n".join((cluster.root / f"{n}.log").read_text(errors="replace")[-2000:] for n in ("master", "worker0"))
        assert done.returncode == 0, done.stderr[-4000:] + log
        # the driver's start-up notes stay out of the user's terminal (features/spark_log4j2.properties)
        assert "Setting default log level" not in done.stderr and "NativeCodeLoader" not in done.stderr, done.stderr
        assert "Launching executor" in log or "Asked to launch executor" in log  # the work ran on the worker
    assert cluster.alive() == []  # master, worker and executors are gone

    import json

    report = json.loads(done.stdout)
    stages = {st["stage"]: st for st in report["stages"]}
    per_stage = ", ".join(f"{n} {st['seconds']} s" for n, st in stages.items())
    print(f"\nstandalone cluster: yibao run {report['seconds']} s ({per_stage})")
    assert {n: st["engine"] for n, st in stages.items()} == {"ingest": "spark", "rules": "spark", "graph": "spark",
                                                             "features": "spark", "screen": "spark"}
    screen = stages["screen"]
    assert screen["tables"]["setl_scores"] == duck_screen.tables["setl_scores"]
    assert (screen["summary"]["clues"], screen["summary"]["candidates"]) == (
        duck_screen.summary["clues"], duck_screen.summary["candidates"]) and duck_screen.summary["clues"] > 0
    assert screen["summary"]["clue_fingerprint"] == duck_screen.summary["clue_fingerprint"]
    assert "DuckDB" in stages["rules"]["on_spark"]  # the part of the rule stage that is not on Spark is named
    assert "driver" in stages["graph"]["on_spark"]  # so is the graph's: communities and the rest
    assert stages["graph"]["summary"]["counts"]["visits"] == duck.stage("graph").summary["counts"]["visits"]
    assert stages["ingest"]["summary"]["totals"] == duck.stage("ingest").summary["totals"]
    assert "fee_list_d" in stages["rules"]["summary"]["lake_tables"]  # read from the lake the ingest wrote
    for stage in ("ingest", "rules", "graph", "features"):
        want, got = duck.stage(stage).tables, stages[stage]["tables"]
        differ = sorted(t for t in set(want) | set(got) if want.get(t) != got.get(t))
        assert not differ, "; ".join(_differences(reference, out / "warehouse.duckdb", t) for t in differ)
    assert duck.stage("rules").tables["rule_hits"]["rows"] > 100
    # the graph compared is not empty: every layer has pairs, and there are communities and ring candidates
    graph = duck.stage("graph")
    assert min(graph.summary["counts"]["pairs_per_layer"].values()) > 0
    assert {t for t in graph.tables} >= {"graph_edges", "graph_covisit_pairs", "graph_communities", "graph_membership",
                                        "ring_candidates", "graph_node_features"}
    assert graph.tables["ring_candidates"]["rows"] > 0 and graph.tables["graph_communities"]["rows"] > 0
    # every feature table and every snapshot read by the online features (feat_setl_peer_stats)
    assert {t for t in duck.stage("features").tables if t.startswith("feat_")} == set(TABLES) | set(SNAPSHOTS)
    with duckdb.connect(str(reference), read_only=True) as a, \
            duckdb.connect(str(out / "warehouse.duckdb"), read_only=True) as b:
        for table in ("rule_hits", *duck.stage("features").tables):
            assert a.execute(f"DESCRIBE {table}").fetchall() == b.execute(f"DESCRIBE {table}").fetchall(), table


def _differences(a: Path, b: Path, table: str) -> str:
    """Which columns of ``table`` differ between two warehouses, with examples (for a failing assertion)."""
    with duckdb.connect(str(a), read_only=True) as ca, duckdb.connect(str(b), read_only=True) as cb:
        cols = [c for (c,) in ca.execute(f"SELECT column_name FROM (DESCRIBE {table})").fetchall()
                if c not in RUN_COLUMNS]
        order = ", ".join(f'"{c}"' for c in cols)
        da = ca.execute(f'SELECT * FROM "{table}" ORDER BY {order}').df()
        db = cb.execute(f'SELECT * FROM "{table}" ORDER BY {order}').df()
    if len(da) != len(db):
        return f"{table}: {len(da)} rows on DuckDB, {len(db)} on Spark"
    out = []
    for col in cols:
        x, y = da[col], db[col]
        if x.dtype.kind in "fiu" and y.dtype.kind in "fiu":
            xv, yv = x.to_numpy(float), y.to_numpy(float)
            same = (np.isnan(xv) & np.isnan(yv)) | np.isclose(xv, yv, rtol=1e-9, atol=1e-12)
        else:
            same = np.array([str(p) == str(q) for p, q in zip(x, y)])
        if not same.all():
            out.append(f"{col}: {(~same).sum()} rows, e.g. {list(zip(x[~same][:2], y[~same][:2]))}")
    return f"{table} differs in " + ("; ".join(out) or "no column on a sorted read (a rounding edge?)")

"""Ingest on Spark (``features.ingest_spark``): the same warehouse, quarantine, held rows and vault as DuckDB's.

The region is ``tiny`` in the ``mixed`` dialect (codes written per institution in other forms: the canonical
codes must come out alike), damaged the way real extracts are (``damage.py``: every bad-input kind that
Parquet text can carry), landed as a lake does — text columns, two part files per table in partition
folders — and loaded into two new warehouses, one per engine. Typed Parquet (amounts, times) goes through
Spark in the standalone-cluster test of the whole pipeline (``tests/serving/test_pipeline_spark.py``).
"""

from __future__ import annotations

import duckdb
import pytest

from damage import damage_region
from features.config import load_settings
from features.contract import TABLES
from features.warehouse import HELD_TABLES
from serving.pipeline import fingerprint

pytest.importorskip("pyspark")


@pytest.fixture(scope="module")
def damaged_lake(tmp_path_factory):
    """``tiny`` (seed 11, mixed dialect) damaged, as a lake of text Parquet: two part files per table."""
    from training.simulator import simulate

    root = tmp_path_factory.mktemp("lake")
    simulate("tiny", seed=11, out=root / "clean", dialect="mixed")
    expected = damage_region(root / "clean", root / "damaged", seed=3, fmt="parquet")
    lake = root / "lake"
    with duckdb.connect() as con:
        for path in sorted((root / "damaged").glob("*.parquet")):
            table = path.stem
            (n,) = con.execute(f"SELECT count(*) FROM '{path}'").fetchone()
            for half, (lo, hi) in enumerate(((0, n // 2), (n // 2, n))):
                part = lake / table / f"month=h{half}" / "part-00000.parquet"
                part.parent.mkdir(parents=True)
                con.execute(f"COPY (SELECT * FROM '{path}' LIMIT {hi - lo} OFFSET {lo}) TO '{part}' (FORMAT parquet)")
    return lake, expected


@pytest.mark.slow
def test_spark_ingest_loads_and_quarantines_as_duckdb(damaged_lake, spark, tmp_path):
    from features.ingest import ingest
    from features.ingest_spark import ingest_spark, spark_ingest_blocker
    from features.spark import current_lake, lake_folder

    lake, expected = damaged_lake
    settings = {engine: load_settings(warehouse=tmp_path / engine / "warehouse.duckdb", as_of="2026-01-01")
                for engine in ("duckdb", "spark")}
    for s in settings.values():
        s.warehouse.parent.mkdir()
    assert spark_ingest_blocker(lake, settings["spark"]) is None
    on_duck = ingest(lake, settings["duckdb"])
    on_spark = ingest_spark(lake, settings["spark"], spark)

    # the reports, table by table: rows in, loaded, quarantined (per reason), held, code rewrites, notes
    assert on_spark.tables == on_duck.tables
    assert on_duck.total("quarantined") >= sum(map(len, expected.values())) > 20 and on_duck.total("held") > 0
    reasons = {code for _, code in on_duck.reason_counts}
    assert reasons >= {"duplicate_key", "missing_parent", "sum_mismatch", "bad_certno", "future_date", "code_as_float"}
    assert any(t.code_rewrites for t in on_duck.tables)  # the dialect's codes were put in canonical form
    # the warehouse: every contract table, the quarantine (ids, reasons, masked raw rows), the held rows
    with duckdb.connect(str(settings["duckdb"].warehouse), read_only=True) as a, \
            duckdb.connect(str(settings["spark"].warehouse), read_only=True) as b:
        for table in (*TABLES, "quarantine"):
            assert fingerprint(a, table) == fingerprint(b, table), table
        for table in HELD_TABLES:
            held = f"SELECT count(*), sum(hash(h)) FROM (SELECT * EXCLUDE (_held_batch) FROM held.{table}) h"
            assert a.execute(held).fetchone() == b.execute(held).fetchone(), table
    # the identity vault: the same clear identities of the same loaded persons
    vaults = []
    for s in settings.values():
        with duckdb.connect(str(s.identity_vault), read_only=True) as v:
            vaults.append(v.execute("SELECT count(*), sum(hash(p)) FROM (SELECT * EXCLUDE (_ingest_batch) "
                                    "FROM psn_identity) p").fetchone())
    assert vaults[0] == vaults[1] and vaults[0][0] > 1000
    # Spark's own copy of what it loaded, in the warehouse's lake folder
    assert (lake_folder(settings["spark"].warehouse) / "fee_list_d").is_dir()
    with duckdb.connect(str(settings["spark"].warehouse), read_only=True) as con:
        assert current_lake(con) == lake_folder(settings["spark"].warehouse)  # the later stages read it
    # a second load goes to DuckDB: the blocker says why
    assert "仓库已有数据" in spark_ingest_blocker(lake, settings["spark"])


@pytest.mark.slow
def test_a_refused_parent_holds_its_children_alike(tiny_region, spark, tmp_path):
    """A lake whose ``fixmedins`` file was cut off in the copy: the table is refused with its cause, and
    the doctors and stock books pointing at it are held (``parent_held``, naming the refusal), on both
    engines alike."""
    from features.ingest import ingest
    from features.ingest_spark import ingest_spark

    lake = tmp_path / "lake"
    with duckdb.connect() as con:
        for table in ("fixmedins", "practitioner", "stock_moves", "hilist"):
            (lake / table).mkdir(parents=True)
            con.execute(f"COPY (SELECT * FROM '{tiny_region / table}/*.parquet') "
                        f"TO '{lake / table / 'part-00000.parquet'}' (FORMAT parquet)")
    cut = lake / "fixmedins" / "part-00000.parquet"
    cut.write_bytes(cut.read_bytes()[:-10])
    reports, warehouses = {}, {}
    for engine in ("duckdb", "spark"):
        s = load_settings(warehouse=tmp_path / engine / "warehouse.duckdb", as_of="2026-01-01")
        s.warehouse.parent.mkdir()
        reports[engine] = ingest(lake, s) if engine == "duckdb" else ingest_spark(lake, s, spark)
        warehouses[engine] = s.warehouse
    on_duck, on_spark = reports["duckdb"], reports["spark"]
    assert on_spark.tables == on_duck.tables
    assert on_duck.table("fixmedins").status == "error" and "PAR1" in on_duck.table("fixmedins").error
    assert on_duck.table("practitioner").held == on_duck.table("practitioner").rows_in > 0
    with duckdb.connect(str(warehouses["duckdb"]), read_only=True) as a, \
            duckdb.connect(str(warehouses["spark"]), read_only=True) as b:
        assert fingerprint(a, "quarantine") == fingerprint(b, "quarantine")
        why = "SELECT DISTINCT reason_code FROM quarantine WHERE table_name = 'practitioner'"
        assert a.execute(why).fetchall() == b.execute(why).fetchall() == [("parent_held",)]
        for table in ("practitioner", "stock_moves"):
            held = f"SELECT count(*), sum(hash(h)) FROM (SELECT * EXCLUDE (_held_batch) FROM held.{table}) h"
            assert a.execute(held).fetchone() == b.execute(held).fetchone(), table

"""The same feature SQL on Spark: transpiles, and gives the same tables as DuckDB on the tiny region."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from features.build import build_features, feature_select, final_select, rule_hits_select, stage_blocks
from features.catalogue import TABLES

sqlglot = pytest.importorskip("sqlglot")


def test_every_block_transpiles_to_spark():
    from features.spark import to_spark

    sqls = [sql for _, sql in stage_blocks()] + [rule_hits_select("psn_no")]
    for t in TABLES.values():
        sqls += [feature_select(t, "TIMESTAMP '2024-01-01 00:00:00'"),
                 final_select(t, "c", "rh", None, [], "TIMESTAMP '2024-01-01 00:00:00'")]
    for sql in sqls:
        out = to_spark(sql.replace("{{ as_of }}", "TIMESTAMP '2024-01-01 00:00:00'"))
        assert "DATEDIFF" in out or "DATE_DIFF" not in sql.upper()


def _tiny_pair(tiny_region, tmp: Path) -> tuple[Path, Path]:
    """Two identical warehouses of the tiny region, with some rule hits and graph features to join."""
    from features.config import Settings
    from features.ingest import ingest

    a = tmp / "duck.duckdb"
    ingest(tiny_region, Settings(warehouse=a))
    with duckdb.connect(str(a)) as con:
        con.execute("""CREATE TABLE rule_hits AS
            SELECT 'R_' || typology_id AS rule_id, typology_id, 'setl' AS entity_type, setl_id AS entity_id, setl_id,
                   mdtrt_id, psn_no, fixmedins_code, NULL AS prac_code, CAST(medfee_sumamt / 3 AS DECIMAL(18, 2))
                   AS amount_at_risk, TIMESTAMP '2030-01-01 00:00:00' AS hit_time
            FROM setl_d, (VALUES ('dead_person'), ('phantom_purchase')) t(typology_id)
            WHERE right(setl_id, 1) IN ('3', '7')""")
        con.execute("""CREATE TABLE graph_node_features AS
            SELECT 'psn' AS node_type, psn_no AS node_id, CAST(length(psn_no) AS BIGINT) AS degree,
                   1.0 / (1 + CAST(right(psn_no, 2) AS INTEGER)) AS pagerank, 'c' AS community_id
            FROM psn_info""")
    b = tmp / "spark.duckdb"
    shutil.copy(a, b)
    return a, b


@pytest.mark.slow
def test_duckdb_and_spark_give_the_same_features(tiny_region, tmp_path, spark):
    a, b = _tiny_pair(tiny_region, tmp_path)
    ra = build_features(a, engine="duckdb")
    rb = build_features(b, engine="spark", spark=spark)
    assert ra.as_of == rb.as_of and ra.rule_hits and ra.graph
    for name, spec in TABLES.items():
        with duckdb.connect(str(a), read_only=True) as ca, duckdb.connect(str(b), read_only=True) as cb:
            assert ca.execute(f"DESCRIBE {name}").fetchall() == cb.execute(f"DESCRIBE {name}").fetchall(), name
            da = ca.execute(f"SELECT * FROM {name} ORDER BY {spec.key}").df()
            db = cb.execute(f"SELECT * FROM {name} ORDER BY {spec.key}").df()
        assert len(da) == len(db) == ra.table(name).rows > 0, name
        for col in da.columns:
            x, y = da[col], db[col]
            if x.dtype.kind in "fiu":
                xv, yv = x.to_numpy(float), y.to_numpy(float)
                same = (np.isnan(xv) & np.isnan(yv)) | np.isclose(xv, yv, rtol=1e-9, atol=1e-12)
            else:
                same = ((x == y) | (x.isna() & y.isna())).to_numpy()
            assert same.all(), f"{name}.{col}: {(~same).sum()} rows differ, e.g. " \
                               f"{list(zip(x[~same][:3], y[~same][:3]))}"

"""The Spark engine of the feature build: the same feature SQL on Spark (``--engine spark``).

The SQL of ``features/sql`` is DuckDB's dialect; here it is transpiled to Spark SQL with sqlglot. The
warehouse tables the SQL reads are exported from DuckDB to Parquet (``COPY``) into a temporary
folder and registered as temp views; each staging block becomes a cached temp view; each feature table
is written to Parquet and loaded back into the warehouse, replacing the table of the same name. On a
cluster the exports would be the lake's own Parquet tables; locally (``local[2]``) this is how the
equality test checks that both engines give the same features.

Spark is an optional dependency (``pip install .[spark]``; Java 17). Timestamps are handled as
``TIMESTAMP_NTZ`` with the session time zone set to UTC, so hours and days are the local wall-clock
values the extract carries, as in DuckDB.

>>> print(to_spark("SELECT DATE_DIFF('day', a, b) AS d FROM t"))
SELECT DATEDIFF(DAY, a, b) AS d FROM t
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import duckdb

from features.build import GRAPH_TABLE, RULE_HIT_COLUMNS, Engine, _has_table
from features.contract import TABLES

__all__ = ["SparkEngine", "spark_session", "to_spark"]

# Contract tables the feature SQL reads.
SOURCE_TABLES = ("setl_d", "mdtrt_d", "fee_list_d", "psn_info", "fixmedins", "practitioner", "hilist", "stock_moves")


def to_spark(sql: str) -> str:
    """Transpile one DuckDB SELECT to Spark SQL."""
    import sqlglot

    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


def spark_session(master: str = "local[2]", *, app_name: str = "yibao-features", shuffle_partitions: int = 8,
                  conf: dict[str, str] | None = None):
    """A SparkSession configured for the feature SQL (UTC session, NTZ timestamps, no UI); ``conf`` adds
    or overrides settings."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder
    for k, v in (conf or {}).items():
        builder = builder.config(k, v)
    spark = (builder.master(master).appName(app_name)
             .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
             .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
             .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class SparkEngine(Engine):
    """Feature SQL on Spark over Parquet exports of the warehouse; results written back into it."""

    name = "spark"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, spark=None, workdir: Path | None = None) -> None:
        self.con = con
        self.own_session = spark is None
        self.spark = spark if spark is not None else spark_session()
        self.tmp = Path(tempfile.mkdtemp(prefix="yibao-spark-", dir=workdir))
        self.views: list[str] = []
        for name in SOURCE_TABLES:
            self._export(name, self._contract_select(name))
        if _has_table(con, "rule_hits"):
            cols = ", ".join(f"CAST({n} AS {t}) AS {n}" for n, t in RULE_HIT_COLUMNS)
            self._export("rule_hits", f"SELECT {cols} FROM rule_hits")
        if _has_table(con, GRAPH_TABLE):
            self._export(GRAPH_TABLE, f"SELECT * FROM {GRAPH_TABLE}")

    def has_table(self, name: str) -> bool:
        return name in self.views

    def stage(self, name: str, select_sql: str) -> None:
        df = self.spark.sql(to_spark(select_sql))
        self.spark.catalog.dropTempView(name)
        if name.startswith("stg_"):
            # staging tables are read by several levels: compute once, now (timings belong to this step)
            df = df.cache()
            df.count()
        df.createOrReplaceTempView(name)
        self.views.append(name)

    def columns(self, name: str) -> list[tuple[str, str]]:
        return [(c, t.lower()) for c, t in self.spark.table(name).dtypes]

    def empty_rule_hits(self) -> None:
        cols = ", ".join(f"CAST(NULL AS {t}) AS {n}" for n, t in RULE_HIT_COLUMNS)
        self._export("rule_hits", f"SELECT {cols} WHERE 1 = 0")

    def write(self, table: str, select_sql: str) -> int:
        out = self.tmp / "out" / table
        self.spark.sql(to_spark(select_sql)).write.mode("overwrite").parquet(str(out))
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet('{out}/*.parquet')")
        return self.con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        for name in self.views:
            try:
                self.spark.catalog.uncacheTable(name)
            except Exception:  # noqa: BLE001 - a view that never cached is fine to leave
                pass
            self.spark.catalog.dropTempView(name)
        self.views = []
        if self.own_session:
            self.spark.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ----------------------------------------------------------------------------------

    def _contract_select(self, name: str) -> str:
        spec = TABLES[name]
        if _has_table(self.con, name):
            return f"SELECT {', '.join(spec.names)} FROM {name}"
        # a table the warehouse lacks (an extract without stock_moves): empty, with the contract types
        return f"SELECT {', '.join(f'CAST(NULL AS {f.sql_type}) AS {f.name}' for f in spec.fields)} WHERE 1 = 0"

    def _export(self, name: str, select_sql: str) -> None:
        path = self.tmp / "in" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
        self.spark.read.parquet(str(path)).createOrReplaceTempView(name)
        self.views.append(name)

"""The Spark engine (``--engine spark``): the same SQL on Spark, over Parquet exports of the warehouse.

The SQL of ``features/sql`` and ``models/rules/sql`` is DuckDB's dialect; :func:`to_spark`
(``features.spark_sql``) transpiles it to Spark SQL. The warehouse tables the SQL reads are exported from
DuckDB to Parquet (``COPY``) once into a folder (:class:`ParquetExports`) and registered as temp views;
the rule, graph and feature stages of a pipeline run read the same exports (the graph's use of them:
``features.graph.spark``). Here each staging block becomes a cached temp view and each feature table is
written to Parquet and loaded back into the warehouse, replacing the table of the same name: nothing is
collected to the driver. On a cluster the
exports would be the lake's own Parquet tables; locally (``local[2]``) and on a standalone cluster this is
how the equality tests check that both engines give the same tables.

Spark is an optional dependency (``pip install .[spark]``; Java 17). Timestamps are handled as
``TIMESTAMP_NTZ`` with the session time zone set to UTC, so hours and days are the local wall-clock
values the extract carries, as in DuckDB.

>>> print(to_spark("SELECT DATE_DIFF('day', a, b) AS d FROM t"))
SELECT DATEDIFF(DAY, a, b) AS d FROM t
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from features.build import GRAPH_TABLE, RULE_HIT_COLUMNS, Engine, _has_table
from features.contract import TABLES
from features.spark_sql import to_spark, to_spark_steps

__all__ = ["SparkEngine", "ParquetExports", "spark_session", "to_spark", "stepwise", "lake_folder", "current_lake"]

DRIVER_LOG_CONFIG = Path(__file__).with_name("spark_log4j2.properties")  # errors only: no start-up notes
# Contract tables the feature SQL reads.
SOURCE_TABLES = ("setl_d", "mdtrt_d", "fee_list_d", "psn_info", "fixmedins", "practitioner", "hilist", "stock_moves")


def spark_session(master: str = "local[2]", *, app_name: str = "yibao-features", shuffle_partitions: int = 8,
                  conf: dict[str, str] | None = None):
    """A SparkSession configured for the transpiled SQL (UTC session, NTZ timestamps, no UI, the driver logging
    errors only: :data:`DRIVER_LOG_CONFIG`); ``conf`` adds or overrides settings."""
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.master(master).appName(app_name)
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
               .config("spark.sql.parquet.inferTimestampNTZ.enabled", "true")
               .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
               .config("spark.driver.memory", "2g"))
    conf = dict(conf or {})
    # the driver's log: errors only (features/spark_log4j2.properties), unless the options name a file of their own
    options = conf.get("spark.driver.extraJavaOptions", "")
    if "log4j2.configurationFile" not in options:
        conf["spark.driver.extraJavaOptions"] = f"{options} -Dlog4j2.configurationFile={DRIVER_LOG_CONFIG.as_uri()}".strip()
    for k, v in conf.items():
        builder = builder.config(k, v)
    # The Python of the executors' workers (mapInPandas) is read from PYSPARK_PYTHON when the context
    # starts (default: whatever `python3` is on PATH): make it this one, with LightGBM and joblib. On a
    # cluster the same environment must be at the same path on every worker.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class ParquetExports:
    """Warehouse tables exported to Parquet in one folder and registered as Spark temp views (导出).

    A contract table is exported once; a table a later stage rewrites (``rule_hits``, ``graph_*``) is
    exported again with ``fresh=True``. ``close()`` drops the views and, when the folder was made here,
    removes it."""

    def __init__(self, spark, folder: Path | None = None) -> None:
        self.spark = spark
        self.own_folder = folder is None
        self.folder = Path(tempfile.mkdtemp(prefix="yibao-spark-")) if folder is None else Path(folder)
        self.views: set[str] = set()
        self.from_lake: set[str] = set()  # contract tables read from the Spark ingest's lake, not exported

    def export(self, con: duckdb.DuckDBPyConnection, name: str, select_sql: str | None = None, *,
               fresh: bool = False) -> None:
        """``select_sql`` (default: the whole table ``name``) as the Spark view ``name``."""
        if name in self.views and not fresh:
            return
        path = self.folder / "in" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"COPY ({select_sql or f'SELECT * FROM {name}'}) TO '{path}' (FORMAT parquet)")
        self.spark.read.parquet(str(path)).createOrReplaceTempView(name)
        self.views.add(name)

    def contract(self, con: duckdb.DuckDBPyConnection, names) -> None:
        """Contract tables with their warehouse columns (``TableSpec.stored_fields``: the birth year, not the
        birth date); one the warehouse lacks (an extract without ``stock_moves``) as an empty table with
        the warehouse types. Where a Spark ingest wrote the warehouse's tables to its lake folder and no
        ingest has run since (:func:`current_lake`), the views read the lake's Parquet: nothing is exported."""
        lake = current_lake(con)
        for name in names:
            spec = TABLES[name]
            if name in self.views:
                continue
            if lake is not None and any((lake / name).glob("*.parquet")):
                cols = [f.column for f in spec.stored_fields]
                self.spark.read.parquet(str(lake / name)).select(*cols).createOrReplaceTempView(name)
                self.views.add(name)
                self.from_lake.add(name)
            elif _has_table(con, name):
                self.export(con, name, f"SELECT {', '.join(f.column for f in spec.stored_fields)} FROM {name}")
            else:
                self.export(con, name, "SELECT " + ", ".join(f"CAST(NULL AS {f.column_type}) AS {f.column}"
                                                             for f in spec.stored_fields) + " WHERE 1 = 0")

    def out(self, *parts: str) -> Path:
        """A folder under the exports for what Spark writes."""
        return self.folder.joinpath("out", *parts)

    def close(self) -> None:
        for name in self.views:
            self.spark.catalog.dropTempView(name)
        self.views = set()
        if self.own_folder:
            shutil.rmtree(self.folder, ignore_errors=True)


LAKE_BATCH = "_batch"  # the file in a lake folder naming the ingest run that wrote it


def lake_folder(warehouse: Path) -> Path:
    """Where a Spark ingest writes the warehouse's tables as Parquet: ``<warehouse file>.lake``, beside it."""
    return Path(warehouse).with_name(Path(warehouse).name + ".lake")


def current_lake(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The lake folder a Spark ingest wrote the contract tables of ``con``'s warehouse to
    (:func:`lake_folder`), when the warehouse's last ingest run is the one that wrote it
    (a later run may have corrected, added or released rows): then it holds what the warehouse holds."""
    (path,) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    if not path:
        return None
    lake = lake_folder(Path(path))
    marker = lake / LAKE_BATCH
    if not marker.is_file() or not _has_table(con, "ingest_log"):
        return None
    (last,) = con.execute("SELECT max(batch_no) FROM ingest_log").fetchone()
    return lake if last is not None and marker.read_text().strip() == str(last) else None


@contextmanager
def stepwise(spark, sql: str, prefix: str) -> Iterator[str]:
    """Run the top-level CTEs of one DuckDB-dialect SELECT on Spark as temp views named ``prefix + name``
    (``features.spark_sql.to_spark_steps``) and yield the final SELECT, in Spark SQL, that reads them. A step
    read more than once is computed once and its lineage cut (``localCheckpoint``): Spark would otherwise
    inline it, and run it, at every read. The views are dropped on leaving.
    """
    steps, final = to_spark_steps(sql, prefix)
    made = []
    try:
        for step in steps:
            df = spark.sql(step.sql)
            if step.uses > 1:
                df = df.localCheckpoint(eager=True)
            df.createOrReplaceTempView(step.view)
            made.append((step.view, df))
        yield final
    finally:
        for view, df in made:
            spark.catalog.dropTempView(view)
            df.unpersist()


class SparkEngine(Engine):
    """Feature SQL on Spark over Parquet exports of the warehouse; results written back into it.

    ``exports`` shares the exports of a pipeline run (the rule stage's); without it the engine exports
    into a folder of its own, with ``spark`` or a local session of its own."""

    name = "spark"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, spark=None, exports: ParquetExports | None = None) -> None:
        self.con = con
        self.own_session = spark is None and exports is None
        self.spark = exports.spark if exports is not None else spark if spark is not None else spark_session()
        self.own_exports = exports is None
        self.exports = exports if exports is not None else ParquetExports(self.spark)
        self.exports.contract(con, SOURCE_TABLES)
        self.views: list[str] = list(SOURCE_TABLES)
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
        out = self.exports.out("features", table)
        self.spark.sql(to_spark(select_sql)).write.mode("overwrite").parquet(str(out))
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM read_parquet('{out}/*.parquet')")
        return self.con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        for name in self.views:
            if name in self.exports.views:
                continue  # the exports' views: the exports drop them
            try:
                self.spark.catalog.uncacheTable(name)
            except Exception:  # noqa: BLE001 - a view that never cached is fine to leave
                pass
            self.spark.catalog.dropTempView(name)
        self.views = []
        if self.own_exports:
            self.exports.close()
        if self.own_session:
            self.spark.stop()

    def _export(self, name: str, select_sql: str) -> None:
        self.exports.export(self.con, name, select_sql, fresh=True)
        self.views.append(name)

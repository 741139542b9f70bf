"""The graph stage's claim-sized part on Spark (``--engine spark``): its inputs and the projection's pairs.

What grows with the claims is reading the graph's tables from them (``features.graph.edges``: visits,
drug purchases, drug shops, edges) and the projection's self-joins (``features.graph.projection``: persons
at the same hub on the same days, at the same counter within minutes, buying the same drug at the same
shops) with their null models. Both are SQL written once in DuckDB's dialect; here Spark runs them,
transpiled (``features.spark_sql.to_spark``), over the Parquet exports of the warehouse the rule and
feature stages read (``features.spark.ParquetExports``). Each result is written by Spark to Parquet and
read back by DuckDB: nothing is collected to the driver through Spark.

What comes back: the drug purchases (the resale evidence reads them), per layer the counted person pairs
with their expected counts, and — once the pairs are scored — the visits of the persons in the projection
(the communities' statistics and evidence read those only; the set of persons is what goes to the
executors). Scoring those pairs (a Poisson tail each) and the communities' statistics stay on the driver,
as with ``--engine duckdb`` (``features.graph.build``); community detection and the members' betweenness run
per block of components on the executors (``map_blocks``). The edges stay on Spark: ``graph_edges``, the
node numbering of PageRank and the node features are SQL there (``features.graph.nodes``: ``number``,
``frame``, ``query``, ``store``), and only PageRank's walk runs on the driver, on the edges as numbers.

>>> VIEW_PREFIX + "visits"
'graph_in_visits'
"""

from __future__ import annotations

import duckdb
import pandas as pd

from features.graph.edges import INPUT_ORDER, graph_inputs_sql, typed_input
from features.spark import stepwise
from features.spark_sql import to_spark

__all__ = ["SparkGraphInputs", "GRAPH_SOURCES", "VIEW_PREFIX", "numbered"]

GRAPH_SOURCES = ("setl_d", "mdtrt_d", "fee_list_d", "fixmedins")  # the contract tables the graph's SQL reads
VIEW_PREFIX = "graph_in_"  # the Spark views of the graph's inputs: graph_in_visits, ...
_CACHED = ("visits", "drug_purchases", "drug_shops", "edges")  # read more than once
_WRITTEN = ("edges",)  # of those, computed once into Parquet and read from there (not held in Spark's memory)
_ARROW_TYPES = {"string": "string", "long": "int64", "double": "float64", "boolean": "bool", "int": "int32"}


def numbered(df, keys: list[str]):
    """``df`` with a column ``i``: each row's place, from 0, in the order of ``keys`` (ascending, NULLs last;
    the keys must tell every row apart), computed once (``localCheckpoint``). As ``row_number() OVER (ORDER
    BY keys) - 1`` without moving every row to one partition (which that window does): a sort into ranges,
    each range's row count (one row per partition to the driver), and each row's place in its range plus
    the rows of the ranges before it."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = [F.col(k).asc_nulls_last() for k in keys]
    ranged = df.orderBy(*order).withColumn("_range", F.spark_partition_id()).localCheckpoint(eager=True)
    offsets, before = [], 0
    for part, rows in sorted(tuple(r) for r in ranged.groupBy("_range").count().collect()):
        offsets.append((part, before))
        before += rows
    spark = df.sparkSession
    offset = spark.createDataFrame(offsets, schema="_range int, _before long")
    out = (ranged.join(F.broadcast(offset), "_range")
           .withColumn("i", F.col("_before") + F.row_number().over(Window.partitionBy("_range").orderBy(*order)) - 1)
           .drop("_range", "_before"))
    return out.localCheckpoint(eager=True)


class SparkGraphInputs:
    """The graph's inputs as Spark views over the exports, and a :data:`features.graph.projection.PairQuery`
    (``self(sql)``) that runs one projection SELECT on Spark and returns its rows through Parquet and DuckDB.

    ``con`` is the warehouse (DuckDB reads Spark's output back on it); ``exports`` the pipeline run's
    :class:`features.spark.ParquetExports`. ``close()`` drops the views and their cache."""

    def __init__(self, con: duckdb.DuckDBPyConnection, exports, *, min_spend: float) -> None:
        self.con, self.exports, self.spark = con, exports, exports.spark
        self.prefix = VIEW_PREFIX
        exports.contract(con, GRAPH_SOURCES)
        self.sql = graph_inputs_sql(min_spend=min_spend)
        self.views: list[str] = []
        self._kept: list = []
        self._written = 0
        for name in _CACHED:
            df = self.spark.sql(to_spark(self.sql[name]))
            if name in _WRITTEN:  # the edges: claim-sized, read by the last steps only
                out = exports.out("graph", f"input_{name}")
                df.write.mode("overwrite").parquet(str(out))
                df = self.spark.read.parquet(str(out))
            else:
                df = df.cache()
            df.createOrReplaceTempView(VIEW_PREFIX + name)
            self.views.append(VIEW_PREFIX + name)

    def table(self, name: str, *, persons: set[str] | None = None) -> pd.DataFrame:
        """Input table ``name`` (``visits``, ``drug_purchases``, ``drug_shops``, ``edges``), computed by Spark,
        read back by DuckDB in :data:`features.graph.edges.INPUT_ORDER` with the DuckDB reader's types;
        with ``persons`` (sent to the executors: a small set, the projection's persons) only their rows."""
        df = self.spark.table(VIEW_PREFIX + name) if name in _CACHED else self.spark.sql(to_spark(self.sql[name]))
        if persons is not None:
            keep = self.spark.createDataFrame(pd.DataFrame({"psn_no": sorted(persons)}, dtype=object),
                                              schema="psn_no string")
            df = df.join(keep, on="psn_no", how="left_semi")
        return typed_input(name, self._through_parquet(df, name, INPUT_ORDER[name]))

    def count(self, name: str) -> int:
        """The number of rows of input table ``name`` (counted on Spark)."""
        return self.spark.table(VIEW_PREFIX + name).count() if name in _CACHED else \
            self.spark.sql(to_spark(self.sql[name])).count()

    def map_blocks(self, frame: pd.DataFrame, fn, schema: str) -> pd.DataFrame:
        """``fn`` over the rows of each ``block`` of ``frame`` on the executors (``applyInPandas``: one call per
        block, blocks side by side), the rows back ordered by all their columns
        (``features.graph.communities.MapBlocks``)."""
        self._written += 1
        parts = max(1, min(frame["block"].nunique(), self.spark.sparkContext.defaultParallelism * 4))
        rows = self.spark.createDataFrame(frame).repartition(parts, "block")
        out = self.exports.out("graph", f"blocks_{self._written}")
        rows.groupBy("block").applyInPandas(fn, schema).write.mode("overwrite").parquet(str(out))
        return self.con.execute(f"SELECT * FROM read_parquet('{out}/*.parquet') ORDER BY ALL").df()

    def __call__(self, sql: str) -> pd.DataFrame:
        """One projection SELECT (over the ``graph_in_`` views) on Spark; its rows ordered by pair. Its CTEs run
        as steps, each read more than once computed once (``features.spark.stepwise``: the layers' visit
        and hub tables are read two to four times each)."""
        self._written += 1
        name = f"pairs_{self._written}"
        with stepwise(self.spark, sql, f"graph_{name}__") as final:
            return self._through_parquet(self.spark.sql(final), name, "psn_a, psn_b")

    # the verbs of features.graph.nodes: SQL where the edges are

    def number(self, name: str, sql: str, order: str) -> None:
        """The rows of the SELECT ``sql`` computed once on Spark as the temp view ``name``, numbered ``i`` from 0
        in ``order`` (:func:`numbered`)."""
        df = numbered(self.spark.sql(to_spark(sql)), [k.strip() for k in order.split(",")])
        df.createOrReplaceTempView(name)
        self.views.append(name)
        self._kept.append(df)

    def frame(self, name: str, df: pd.DataFrame, schema: str) -> None:
        """The rows of ``df`` (node-sized at most) as the temp view ``name`` with ``schema``: written by the
        driver as one Parquet file beside the exports, which the executors read (a pandas frame handed to
        ``createDataFrame`` would go through the JVM row by row: 303,353 PageRank scores took a minute)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = [c.split() for c in schema.split(", ")]
        self._written += 1
        out = self.exports.out("graph", f"frame_{self._written}")
        out.mkdir(parents=True, exist_ok=True)
        arrow = pa.schema([(c, _ARROW_TYPES[t]) for c, t in cols])
        pq.write_table(pa.Table.from_pandas(df[[c for c, _ in cols]], schema=arrow, preserve_index=False),
                       out / "part-00000.parquet")
        self.spark.read.schema(schema).parquet(str(out)).createOrReplaceTempView(name)
        self.views.append(name)

    def query(self, sql: str, *, order: str | None = None) -> pd.DataFrame:
        """The rows of the SELECT ``sql`` computed on Spark, through Parquet (in ``order`` when given)."""
        self._written += 1
        return self._through_parquet(self.spark.sql(to_spark(sql)), f"query_{self._written}", order)

    def store(self, table: str, sql: str, columns: tuple[tuple[str, str], ...]) -> None:
        """The rows of the SELECT ``sql`` written by Spark to Parquet and taken into the warehouse table
        ``table`` (``columns``: names and DuckDB types) by DuckDB, not through pandas."""
        out = self.exports.out("graph", table)
        with stepwise(self.spark, sql, f"graph_{table}__") as final:  # a CTE read twice is computed once
            self.spark.sql(final).write.mode("overwrite").parquet(str(out))
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT "
                         + ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in columns)
                         + f" FROM read_parquet('{out}/*.parquet')")

    def close(self) -> None:
        for view in self.views:
            try:
                if self.spark.catalog.isCached(view):
                    self.spark.catalog.uncacheTable(view)
            finally:
                self.spark.catalog.dropTempView(view)
        for df in self._kept:
            df.unpersist()
        self.views, self._kept = [], []

    def _through_parquet(self, df, name: str, order: str | None) -> pd.DataFrame:
        out = self.exports.out("graph", name)
        df.write.mode("overwrite").parquet(str(out))
        return self.con.execute(f"SELECT * FROM read_parquet('{out}/*.parquet')"
                                + (f" ORDER BY {order}" if order else "")).df()

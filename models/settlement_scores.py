"""Settlement scores (结算单评分): P(fraud) of every settlement by the model's settlement scorer, as a table.

The screening ranks entities (persons, doctors, institutions, pharmacies, rings); a province also scores
every settlement (全量结算单据). The screen stage of the pipeline writes ``setl_scores`` (``setl_id``,
``p_fraud``) from ``feat_setl`` with the bundle's settlement scorer (the champion's LightGBM booster):

- DuckDB: in this process, ``CHUNK_ROWS`` settlements at a time;
- Spark: the same bundle shipped to the executors, scored in ``mapInPandas`` over the Parquet export of
  ``feat_setl``, written by the executors to Parquet and loaded into the warehouse — no settlement passes
  through the driver.

Both call :meth:`models.bundle.ScorerBundle.score` on the settlement features, so the numbers are the same.
A bundle without a settlement scorer writes no table.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from models.bundle import ScorerBundle

__all__ = ["SCORE_TABLE", "CHUNK_ROWS", "score_settlements", "score_settlements_spark"]

SCORE_TABLE = "setl_scores"
CHUNK_ROWS = 200_000


def score_settlements(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle) -> int | None:
    """Write ``setl_scores`` on DuckDB; return its row count (None: the bundle scores no settlements)."""
    if "setl" not in bundle.scorers:
        return None
    features = bundle.features["setl"]
    con.execute(f"CREATE OR REPLACE TABLE {SCORE_TABLE} (setl_id VARCHAR, p_fraud DOUBLE)")
    cur = con.cursor()
    cur.execute(f"SELECT setl_id, {', '.join(features)} FROM feat_setl")
    while True:
        chunk = cur.fetch_df_chunk(CHUNK_ROWS // 2048 or 1)
        if chunk.empty:
            break
        scored = _scored(bundle, chunk)  # noqa: F841 - read by the INSERT below
        con.execute(f"INSERT INTO {SCORE_TABLE} SELECT * FROM scored")
    cur.close()
    return con.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()[0]


def score_settlements_spark(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle, exports) -> int | None:
    """Write ``setl_scores`` with Spark (``exports``: the run's :class:`features.spark.ParquetExports`)."""
    if "setl" not in bundle.scorers:
        return None
    features = bundle.features["setl"]
    exports.export(con, "feat_setl", f"SELECT setl_id, {', '.join(features)} FROM feat_setl", fresh=True)
    out = exports.out("scores", SCORE_TABLE)

    def score(batches):  # runs on the executors: the bundle travels with the function
        for batch in batches:
            yield _scored(bundle, batch)

    (exports.spark.table("feat_setl").mapInPandas(score, "setl_id string, p_fraud double")
     .write.mode("overwrite").parquet(str(out)))
    con.execute(f"CREATE OR REPLACE TABLE {SCORE_TABLE} AS SELECT * FROM read_parquet('{out}/*.parquet')")
    return con.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()[0]


def _scored(bundle: ScorerBundle, batch: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"setl_id": batch["setl_id"].astype(str).to_numpy(),
                         "p_fraud": bundle.score("setl", batch).astype(float)})

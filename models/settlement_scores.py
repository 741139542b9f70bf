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

With ``since`` (an incremental run) only the settlements from then on are scored: their rows replace the
ones they had, the scores of settlements no longer in ``feat_setl`` (refunded since) are removed and the
others are kept.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import numpy as np
import pandas as pd

from models.bundle import ScorerBundle

__all__ = ["SCORE_TABLE", "CHUNK_ROWS", "score_settlements", "score_settlements_spark"]

SCORE_TABLE = "setl_scores"
CHUNK_ROWS = 200_000


def score_settlements(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle, *, since: datetime | None = None) \
        -> int | None:
    """Write ``setl_scores`` on DuckDB; return its row count (None: the bundle scores no settlements)."""
    if "setl" not in bundle.scorers:
        return None
    features = bundle.features["setl"]
    where = _keep_earlier(con, since)
    cur = con.cursor()
    # Arrow batches made one float matrix each: a pandas frame of 107 columns per chunk cost more than the
    # model (city: 5.6 s of 15 s). DOUBLE as the frame had them (NULL as NaN; counts converted alike).
    select = f"SELECT setl_id, {', '.join(f'CAST({f} AS DOUBLE) AS {f}' for f in features)} FROM feat_setl {where}"
    for batch in cur.sql(select).to_arrow_reader(CHUNK_ROWS):
        if batch.num_rows == 0:
            continue
        # column-major (a row per feature, transposed): filling it copies whole columns; LightGBM reads
        # either layout (the row-major np.column_stack cost 0.2 s a chunk, the model 0.3 s)
        matrix = np.stack([c.to_numpy(zero_copy_only=False) for c in batch.columns[1:]]).T
        scored = _scored(bundle, batch.column(0).to_numpy(zero_copy_only=False),  # noqa: F841 - read below
                         pd.DataFrame(matrix, columns=features, copy=False))
        con.execute(f"INSERT INTO {SCORE_TABLE} SELECT * FROM scored")
    cur.close()
    return con.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()[0]


def score_settlements_spark(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle, exports, *,
                            since: datetime | None = None) -> int | None:
    """Write ``setl_scores`` with Spark (``exports``: the run's :class:`features.spark.ParquetExports`)."""
    if "setl" not in bundle.scorers:
        return None
    features = bundle.features["setl"]
    where = _keep_earlier(con, since)
    exports.export(con, "feat_setl", f"SELECT setl_id, {', '.join(features)} FROM feat_setl {where}", fresh=True)
    out = exports.out("scores", SCORE_TABLE)

    def score(batches):  # runs on the executors: the bundle travels with the function
        for batch in batches:
            yield _scored(bundle, batch["setl_id"].to_numpy(), batch)

    (exports.spark.table("feat_setl").mapInPandas(score, "setl_id string, p_fraud double")
     .write.mode("overwrite").parquet(str(out)))
    con.execute(f"INSERT INTO {SCORE_TABLE} SELECT * FROM read_parquet('{out}/*.parquet')")
    return con.execute(f"SELECT count(*) FROM {SCORE_TABLE}").fetchone()[0]


def _keep_earlier(con: duckdb.DuckDBPyConnection, since: datetime | None) -> str:
    """Make ``setl_scores`` ready for new rows: empty, or (``since``) holding only the scores of settlements
    before ``since`` still in ``feat_setl``; return the WHERE clause of the settlements to score."""
    exists = con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND "
                         f"schema_name = 'main' AND table_name = '{SCORE_TABLE}'").fetchall()
    if since is None or not exists:
        con.execute(f"CREATE OR REPLACE TABLE {SCORE_TABLE} (setl_id VARCHAR, p_fraud DOUBLE)")
        return ""
    moment = f"TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}'"
    con.execute(f"DELETE FROM {SCORE_TABLE} s WHERE NOT EXISTS (SELECT 1 FROM feat_setl f "
                f"WHERE f.setl_id = s.setl_id AND f.setl_time < {moment})")
    return f"WHERE setl_time >= {moment}"


def _scored(bundle: ScorerBundle, setl_ids: np.ndarray, features: pd.DataFrame) -> pd.DataFrame:
    """``setl_scores`` rows of one batch: the settlements and their P(fraud) from their feature rows."""
    return pd.DataFrame({"setl_id": setl_ids.astype(str), "p_fraud": bundle.score("setl", features).astype(float)})

"""Entity screening on Spark (``yibao run --engine spark``): persons, doctors, institutions and pharmacies
scored on the executors; only the clue list's entities reach the driver.

A province has tens of millions of insured persons: the DuckDB screening (:func:`models.screening.screen`)
reads every person's feature row into one process. On Spark each entity level's rows (the SELECT of
:func:`models.levels.entity_frame_sql`, exported to Parquet) are scored where they lie:

1. **Region percentiles.** A region-scaled level (``ScorerBundle.region_scaled``) is scored on each feature's
   percentile among the region's rows, ties at their mid-rank (``models.bundle.RegionScale``). The rows are
   unpivoted to (entity, feature, value); Spark takes each value's rank among its feature's values (one
   window per feature: ``rank() - 1`` values below it, and the count of its equals) and gathers each
   entity's percentiles back into one row: ``(2 × below + equal) / (2 × n)``, the
   same integers divided the same way as ``RegionScale``, so the same doubles.
2. **Scores.** ``mapInPandas`` scores the rows with the bundle (shipped to the executors), applies the
   region's calibration, and computes each candidate's amount at risk and priority with the functions of
   :mod:`models.ranking`. Each level's scores and model input are written by the executors to Parquet.
3. **The list.** Spark keeps the candidates that pass the list's bar (``min_p``, ``min_rule_amount``, a ring
   candidate) and takes the ``max_clues`` with the highest priority in the ranking's order: only those come
   to the driver, with their model input for the reasons (SHAP); the driver reads their feature rows from
   the warehouse by key. Rings (communities of the graph, a few thousand in a province) are screened on the
   driver as on DuckDB, and the two are ranked together there: the first ``max_clues`` of the union are the
   first ``max_clues`` of (the entities' first ``max_clues`` + the rings).

The scores are the DuckDB screening's: the same clue list (``tests/serving/test_pipeline_spark.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from models.bundle import ScorerBundle
from models.calibration import RegionCalibration, apply_calibration
from models.levels import LEVELS, entity_frame_sql, has_table
from models.ranking import amount_at_risk

__all__ = ["ENTITY_LEVELS", "SparkCandidates", "spark_candidates"]

ENTITY_LEVELS = ("psn", "prac", "fixmedins", "pharmacy")  # scored on Spark; rings on the driver
CANDIDATE_COLUMNS = ("entity_type", "entity_id", "p_fraud", "p_model", "rule_amount", "exposure", "graph_candidate",
                     "graph_risk", "amount_at_risk", "priority")
_SCHEMA = ("entity_type string, entity_id string, p_fraud double, p_model double, rule_amount double, "
           "exposure double, graph_candidate boolean, graph_risk double, amount_at_risk double, priority double")


@dataclass
class SparkCandidates:
    """What the driver gets: the best ``max_clues`` candidates of the Spark levels that pass the list's bar
    (``top``: :data:`CANDIDATE_COLUMNS`, best first), how many entities were scored (``counted``), and per
    level the model input of those entities (``model_input``: index = entity id, columns = the features)."""

    top: pd.DataFrame
    counted: int
    model_input: dict[str, pd.DataFrame]


def spark_candidates(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle, exports, levels, *,
                     calibration: RegionCalibration | None, min_p: float, min_rule_amount: float,
                     max_clues: int, progress=None) -> SparkCandidates:
    """Score the entity ``levels`` on Spark (``exports``: the pipeline run's ``features.spark.ParquetExports``)
    and return the candidates for the clue list (the module docstring). ``progress(text, done, total)``: one
    call per level scored."""
    from pyspark.sql import functions as F

    spark = exports.spark
    tick = progress or (lambda *_: None)
    has_labels = has_table(con, "labels")
    scored = {}
    for i, level in enumerate(levels):
        tick(f"评分 {level} (Spark)", i, len(levels) + 1)
        view = f"screen_{level}"
        exports.export(con, view, _level_sql(con, level, bundle.features[level], has_labels), fresh=True)
        out = exports.out("screen", level)
        rows = _scored_rows(spark.table(view), level, bundle, calibration)
        rows.write.mode("overwrite").parquet(str(out))
        scored[level] = spark.read.schema(rows.schema).parquet(str(out))  # a level without rows writes no file
    tick("选出线索 the list's entities (Spark)", len(levels), len(levels) + 1)
    candidates = None
    for level in levels:
        part = scored[level].select(*CANDIDATE_COLUMNS)
        candidates = part if candidates is None else candidates.unionByName(part)
    counted = candidates.count()
    bar = (F.col("p_fraud") >= min_p) | (F.col("rule_amount") >= min_rule_amount) | F.col("graph_candidate")
    top = (candidates.where(bar & (F.col("priority") > 0))
           .orderBy(F.desc("priority"), F.desc("p_fraud"), "entity_type", "entity_id")
           .limit(max_clues).toPandas())
    top = top.astype({"graph_candidate": bool})
    model_input = {}
    for level in levels:
        ids = top.loc[top["entity_type"] == level, "entity_id"].tolist()
        feats = bundle.features[level]
        rows = (scored[level].where(F.col("entity_id").isin(ids))
                .select("entity_id", *[F.col(_column(i)).alias(f) for i, f in enumerate(feats)]).toPandas())
        model_input[level] = rows.set_index("entity_id")
    return SparkCandidates(top, int(counted), model_input)


def _level_sql(con: duckdb.DuckDBPyConnection, level: str, features: list[str], has_labels: bool) -> str:
    """The export of one level: the entity id, its money, whether it is a ring candidate and each feature as
    DOUBLE (cast by DuckDB, as ``DataFrame`` conversion reads them: the same doubles on both engines), the
    features named by position (``f0``, ``f1``…) so that no feature name meets Spark's quoting."""
    lv = LEVELS[level]
    columns = {c for c, in con.execute(f"SELECT column_name FROM (DESCRIBE {lv.table})").fetchall()}
    missing = [f for f in features if f not in columns]
    if missing:
        raise ValueError(f"{level}: 缺少特征列 (missing feature columns) {missing[:8]}"
                         f"{' …' if len(missing) > 8 else ''}")
    candidate = ("coalesce(CAST(in_ring_candidates AS DOUBLE), 0) > 0" if "in_ring_candidates" in columns
                 else "false")
    feats = ", ".join(f'CAST("{f}" AS DOUBLE) AS {_column(i)}' for i, f in enumerate(features))
    return (f"SELECT CAST({lv.key} AS VARCHAR) AS entity_id, coalesce(CAST(rule_amount AS DOUBLE), 0) AS rule_amount, "
            f"coalesce(CAST({lv.exposure} AS DOUBLE), 0) AS exposure, {candidate} AS graph_candidate, {feats} "
            f"FROM ({entity_frame_sql(level, has_labels)})")


def _column(i: int) -> str:
    return f"f{i}"


def _scored_rows(rows, level: str, bundle: ScorerBundle, calibration: RegionCalibration | None):
    """A level's rows scored on the executors: :data:`CANDIDATE_COLUMNS` and the model input (``f0``…)."""
    features = bundle.features[level]
    names = [_column(i) for i in range(len(features))]
    scaled = level in getattr(bundle, "region_scaled", ())
    if scaled:
        rows = _region_percentiles(rows, names)
    share = float(bundle.shares.get(level, 0.0) or 0.0)
    schema = _SCHEMA + "".join(f", {n} double" for n in names)

    def score(batches):  # on the executors: the bundle travels with the function
        for b in batches:
            X = b[names].set_axis(features, axis=1).astype(float)
            p = apply_calibration(bundle.score_input(level, X) if scaled else bundle.score(level, X), calibration)
            rule = b["rule_amount"].fillna(0).to_numpy(dtype=float)
            expo = b["exposure"].to_numpy(dtype=float)
            amount = amount_at_risk(rule, expo, share)
            yield pd.DataFrame({
                "entity_type": level, "entity_id": b["entity_id"].astype(str).to_numpy(), "p_fraud": p,
                "p_model": p, "rule_amount": rule, "exposure": expo,
                "graph_candidate": b["graph_candidate"].fillna(False).to_numpy(dtype=bool), "graph_risk": 0.0,
                "amount_at_risk": amount, "priority": np.round(p * amount, 2)}
            ).join(X.set_axis(names, axis=1).reset_index(drop=True))

    return rows.mapInPandas(score, schema)


def _region_percentiles(rows, names: list[str]):
    """``rows`` with each feature column replaced by its mid-rank percentile among the region's non-missing
    values of that feature (``RegionScale``); missing stays missing."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pairs = F.explode(F.array(*[F.struct(F.lit(i).alias("k"), F.col(n).alias("v")) for i, n in enumerate(names)]))
    long = (rows.select("entity_id", pairs.alias("x"))
            .select("entity_id", "x.k", (F.col("x.v") + F.lit(0.0)).alias("v"))  # -0.0 + 0.0 is 0.0: one value
            .where(F.col("v").isNotNull() & ~F.isnan("v")))
    # rank() - 1: the values below; the rows of one (k, v) and of one k: the same partitioning by k, one sort
    ordered = Window.partitionBy("k").orderBy("v")
    below = F.rank().over(ordered) - 1
    equal = F.count(F.lit(1)).over(Window.partitionBy("k", "v"))
    whole = F.count(F.lit(1)).over(Window.partitionBy("k"))
    pct = long.select("entity_id", "k", ((below * 2 + equal).cast("double") / (whole * 2).cast("double")).alias("pct"))
    # back to one row per entity: a map feature → percentile (cheaper than a pivot: one aggregate, not one per
    # feature), read out column by column
    per_entity = pct.groupBy("entity_id").agg(F.map_from_entries(F.collect_list(F.struct("k", "pct"))).alias("m"))
    wide = per_entity.select("entity_id", *[F.col("m")[i].alias(n) for i, n in enumerate(names)])
    return rows.drop(*names).join(wide, "entity_id", "left")

"""The entity levels (层级) and their rows: feature rows of the warehouse joined to their labels.

Training reads them (``training.train``) and so does the screening (``models.screening``), which is why
they live under ``models/``: nothing under ``models/`` or ``features/`` imports from ``training/`` or ``serving/``.

A *level* is where fraud lives and where a clue points: the settlement (结算, scored for pre-checks and
batch scoring), the insured person (参保人), the doctor (医师), the hospital or clinic (定点医疗机构), the
retail pharmacy (定点零售药店) and the ring (团伙: a co-visit community of the graph). Each level reads
one table of the warehouse and the labels at its own entity type:

| level | rows from | key | labels (`labels.entity_type`) | exposure (元) | rule amount at risk |
|---|---|---|---|---|---|
| setl | feat_setl | setl_id | setl, its visit (mdtrt) or one of its lines | fund_amt | its rh_amt_* to verify |
| psn | feat_psn | psn_no | psn | fund_amt_365 | its rh_amt_* to verify |
| prac | feat_prac | prac_code | prac | fund_amt_365 | its own typologies' rh_amt_* to verify |
| fixmedins | feat_fixmedins | fixmedins_code | fixmedins | fund_amt_365 | its own typologies' rh_amt_* to verify |
| pharmacy | feat_pharmacy | fixmedins_code | fixmedins | fund_amt_365 | its own typologies' rh_amt_* to verify |
| ring | graph_communities (3+ members) | community_id | ring: most members belong to one labelled ring or card pool | fund_amount | members' rh_amt_* to verify |

Exposure is what the fund paid at every level (one definition of 涉及金额's basis, ``docs/clues.md``).

The *rule amount* of a row (``rule_amount``) is what its rule hits put at risk that needs verifying: the
hits of the typologies settled by deduction (``deduction_typologies`` of rules.yaml: 两库 claim edits, price
caps) are left out — they are evidence, recovered line by line without an investigation. A provider (doctor,
hospital or clinic, pharmacy) counts only the typologies it commits itself — those living in its billing
lines, its admissions and its schemes (``PROVIDER_TYPOLOGY_LEVELS``); a patient's over-supply, a stolen card
or a third party's injury seen in its claims is the patient's clue, not the provider's.

Rows without a label are taken as clean when ``unlabelled="clean"`` (the simulator labels every fraud it
plants, and a region's verified clue outcomes plus its inspections are the best negatives there are), or
left out of training when ``unlabelled="drop"``.

Feature columns are every numeric column except keys, timestamps, ``age_days`` (time since the as-of
date: it would teach the model the calendar) and ``g_ppr_fraud`` (personalised PageRank from the known
frauds: it is built from the labels, so a model evaluated on the same labels would be judged on them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

__all__ = ["Level", "LEVELS", "LevelData", "EXCLUDED_FEATURES", "load_level", "load_levels", "entity_frame_sql",
           "has_table", "feature_columns", "ring_truth", "UNLABELLED_POLICIES"]

EXCLUDED_FEATURES = ("age_days", "g_ppr_fraud", "size_rank")
UNLABELLED_POLICIES = ("clean", "drop")


@dataclass(frozen=True)
class Level:
    """One entity level: where its rows come from and which columns carry money."""

    name: str
    zh: str
    table: str
    key: str
    label_type: str
    exposure: str
    time_column: str | None = None


LEVELS: dict[str, Level] = {
    "setl": Level("setl", "结算", "feat_setl", "setl_id", "setl", "fund_amt", "setl_time"),
    "psn": Level("psn", "参保人", "feat_psn", "psn_no", "psn", "fund_amt_365"),
    "prac": Level("prac", "医师", "feat_prac", "prac_code", "prac", "fund_amt_365"),
    "fixmedins": Level("fixmedins", "定点医疗机构", "feat_fixmedins", "fixmedins_code", "fixmedins",
                       "fund_amt_365"),
    "pharmacy": Level("pharmacy", "定点零售药店", "feat_pharmacy", "fixmedins_code", "fixmedins", "fund_amt_365"),
    "ring": Level("ring", "团伙", "graph_communities", "community_id", "ring", "fund_amount"),
}


@dataclass
class LevelData:
    """Rows of one level: ``frame`` (keys, money, label, all columns), ``X`` (features), ``y`` (0/1)."""

    level: Level
    frame: pd.DataFrame
    features: list[str]
    # What the scorer reads when it is not the raw features: each region's rows as region percentiles
    # (models.bundle.RegionScale), for the region-scaled levels.
    scaled: pd.DataFrame | None = None

    @property
    def X(self) -> pd.DataFrame:
        return self.frame[self.features] if self.scaled is None else self.scaled

    @property
    def y(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=int)

    @property
    def ids(self) -> pd.Series:
        return self.frame[self.level.key]


def feature_columns(frame: pd.DataFrame, key: str) -> list[str]:
    """Numeric columns that are features (see the module docstring for what is left out)."""
    out = []
    for c in frame.columns:
        if (c in (key, "label", "label_amount", "rule_amount", "exposure") or c in EXCLUDED_FEATURES
                or c.startswith("truth_")):
            continue
        if pd.api.types.is_bool_dtype(frame[c]) or pd.api.types.is_numeric_dtype(frame[c]):
            out.append(c)
    return out


def load_levels(warehouse: Path | duckdb.DuckDBPyConnection, *, unlabelled: str = "clean",
                levels: tuple[str, ...] = tuple(LEVELS)) -> dict[str, LevelData]:
    """:func:`load_level` for several levels on one connection."""
    con, own = _connection(warehouse)
    try:
        return {name: load_level(con, name, unlabelled=unlabelled) for name in levels}
    finally:
        if own:
            con.close()


def load_level(warehouse: Path | duckdb.DuckDBPyConnection, level: str, *,
               unlabelled: str = "clean", ids: list[str] | None = None) -> LevelData:
    """Rows, features and labels of one level (see the module docstring); ``ids``: only these entities (an
    entity level's keys: the clues of a screening whose scores came from Spark)."""
    if level not in LEVELS:
        raise ValueError(f"未知层级 (unknown level) {level!r}; 可选: {', '.join(LEVELS)}")
    if unlabelled not in UNLABELLED_POLICIES:
        raise ValueError(f"unlabelled must be one of {UNLABELLED_POLICIES}, not {unlabelled!r}")
    lv = LEVELS[level]
    con, own = _connection(warehouse)
    try:
        if not has_table(con, lv.table):
            step = "yibao graph build" if level == "ring" else "yibao features build"
            raise FileNotFoundError(f"仓库中没有表 {lv.table} (table missing): 先运行 {step}")
        has_labels = has_table(con, "labels")
        if ids is not None and level in ("setl", "ring"):
            raise ValueError(f"ids: only for an entity level read from one feature table, not {level}")
        if level == "ring":
            frame = _ring_frame(con, has_labels)
        elif level == "setl":
            frame = _setl_frame(con, has_labels)
        else:
            frame = _entity_frame(con, lv, has_labels, ids)
    finally:
        if own:
            con.close()
    if unlabelled == "drop":
        frame = frame[frame["labelled"]].reset_index(drop=True)
    frame = frame.drop(columns=["labelled"])
    frame["label"] = frame["label"].astype(int)
    frame["exposure"] = frame[lv.exposure].astype(float).fillna(0.0)
    return LevelData(lv, frame, feature_columns(frame, lv.key))


def ring_truth(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per community: the labelled ring most of its persons belong to (``ring_id``), the share of its
    persons in that ring, and the ring's fraud type. A community is a true ring when the share ≥ 0.5.

    Card pools (空刷) count as rings too: the cards with two or more labelled ``phantom_purchase``
    settlements at one pharmacy form the group ``POOL:<fixmedins_code>`` (as ``yibao graph eval`` reads
    them), so a community the graph types ``phantom_purchase`` is judged against its pool."""
    pools = """
              UNION
              SELECT s.psn_no, 'POOL:' || s.fixmedins_code, 'phantom_purchase'
              FROM labels l JOIN setl_d s ON l.entity_type = 'setl' AND s.setl_id = l.entity_id
              WHERE l.label = 1 AND l.fraud_type = 'phantom_purchase'
              GROUP BY s.psn_no, s.fixmedins_code HAVING count(*) >= 2""" if has_table(con, "setl_d") else ""
    return con.sql(f"""
        WITH m AS (SELECT community_id, node_id FROM graph_membership WHERE node_type IN ('psn', 'person')),
        r AS (SELECT DISTINCT entity_id, ring_id, fraud_type FROM labels
              WHERE entity_type = 'psn' AND label = 1 AND ring_id IS NOT NULL{pools}),
        n AS (SELECT community_id, count(*) AS n_persons FROM m GROUP BY 1),
        hit AS (SELECT m.community_id, r.ring_id, any_value(r.fraud_type) AS fraud_type,
                       count(DISTINCT m.node_id) AS k
                FROM m JOIN r ON r.entity_id = m.node_id GROUP BY 1, 2)
        SELECT n.community_id, arg_max(hit.ring_id, hit.k) AS ring_id,
               arg_max(hit.fraud_type, hit.k) AS fraud_type,
               coalesce(max(hit.k), 0) / n.n_persons AS ring_share
        FROM n LEFT JOIN hit USING (community_id) GROUP BY n.community_id, n.n_persons
    """).df()


def has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the warehouse has a table or view ``name``."""
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    return bool(rows[0][0])


# -- private helpers ------------------------------------------------------------------------------


def _connection(warehouse) -> tuple[duckdb.DuckDBPyConnection, bool]:
    if isinstance(warehouse, duckdb.DuckDBPyConnection):
        return warehouse, False
    path = Path(warehouse)
    if not path.is_file():
        raise FileNotFoundError(f"仓库文件不存在 (warehouse not found): {path}")
    return duckdb.connect(str(path), read_only=True), True


def _labels_cte(has_labels: bool) -> str:
    if has_labels:
        return "lab AS (SELECT entity_type, entity_id, label, fraud_type, CAST(amount AS DOUBLE) AS amount FROM labels)"
    return ("lab AS (SELECT NULL::VARCHAR AS entity_type, NULL::VARCHAR AS entity_id, NULL::INTEGER AS label, "
            "NULL::VARCHAR AS fraud_type, NULL::DOUBLE AS amount WHERE false)")


# Typologies a provider (doctor, hospital or clinic, pharmacy) commits itself, by where the typology lives
# (features.contract.FRAUD_TYPES): its billing lines, its admissions and its schemes. The others live with the
# insured person (a dead person's card, card theft, over-supply drawn from several places, a third party's
# injury, care away from home) or a ring; the provider only served the claim.
PROVIDER_TYPOLOGY_LEVELS = ("line", "mdtrt", "fixmedins")
PROVIDER_LEVELS = ("prac", "fixmedins", "pharmacy")


def verification_typologies(level: str) -> list[str]:
    """The typologies whose rule amounts count towards ``level``'s rule amount (the module docstring)."""
    from features.contract import FRAUD_TYPES
    from models.rules.config import load_config

    deduct = load_config().deduction_typologies
    return [t for t, (_, where) in FRAUD_TYPES.items() if t not in deduct
            and (level not in PROVIDER_LEVELS or where in PROVIDER_TYPOLOGY_LEVELS)]


def verification_amount_sql(alias: str = "f", level: str = "psn") -> str:
    """SQL of a feature row's rule amount at risk that needs verifying (the module docstring).

    >>> [("rh_amt_card_theft" in verification_amount_sql("f", lv)) for lv in ("psn", "fixmedins")]
    [True, False]
    """
    terms = [f"coalesce({alias}.rh_amt_{t}, 0)" for t in verification_typologies(level)]
    return "(" + " + ".join(terms) + ")"


def _entity_frame(con: duckdb.DuckDBPyConnection, lv: Level, has_labels: bool,
                  ids: list[str] | None = None) -> pd.DataFrame:
    sql = entity_frame_sql(lv.name, has_labels)
    if ids is None:
        return con.sql(sql).df()
    return con.execute(f"SELECT * FROM ({sql}) WHERE {lv.key} IN (SELECT unnest(?)) ORDER BY {lv.key}",
                       [list(ids)]).df()


def entity_frame_sql(level: str, has_labels: bool) -> str:
    """The SELECT (DuckDB) of an entity level's rows (``psn``, ``prac``, ``fixmedins``, ``pharmacy``): its
    feature table with ``label``, ``label_amount``, ``fraud_types``, ``labelled`` and ``rule_amount``, in key
    order. :func:`load_level` reads it; the Spark screening (``models.screening_spark``) exports it."""
    lv = LEVELS[level]
    if lv.name in ("setl", "ring"):
        raise ValueError(f"{level} is not an entity level read from one feature table")
    return f"""
        WITH {_labels_cte(has_labels)},
        l AS (SELECT entity_id, max(label) AS label, sum(amount) FILTER (WHERE label = 1) AS label_amount,
                     string_agg(DISTINCT fraud_type, ',') FILTER (WHERE label = 1) AS fraud_types
              FROM lab WHERE entity_type = '{lv.label_type}' GROUP BY 1)
        SELECT f.*, coalesce(l.label, 0) AS label, coalesce(l.label_amount, 0) AS label_amount,
               l.fraud_types, l.entity_id IS NOT NULL AS labelled, {verification_amount_sql("f", lv.name)} AS rule_amount
        FROM {lv.table} f LEFT JOIN l ON l.entity_id = f.{lv.key}
        ORDER BY f.{lv.key}
    """


def _setl_frame(con: duckdb.DuckDBPyConnection, has_labels: bool) -> pd.DataFrame:
    return con.sql(f"""
        WITH {_labels_cte(has_labels)},
        by_setl AS (
            SELECT entity_id AS setl_id, label, fraud_type, amount FROM lab WHERE entity_type = 'setl'
            UNION ALL
            SELECT s.setl_id, lab.label, lab.fraud_type, lab.amount
            FROM lab JOIN feat_setl s ON lab.entity_type = 'mdtrt' AND s.mdtrt_id = lab.entity_id
            UNION ALL
            SELECT f.setl_id, lab.label, lab.fraud_type, lab.amount
            FROM lab JOIN fee_list_d f ON lab.entity_type = 'line' AND f.bkkp_sn = lab.entity_id),
        l AS (SELECT setl_id, max(label) AS label, sum(amount) FILTER (WHERE label = 1) AS label_amount,
                     string_agg(DISTINCT fraud_type, ',') FILTER (WHERE label = 1) AS fraud_types
              FROM by_setl GROUP BY 1)
        SELECT f.*, coalesce(l.label, 0) AS label, coalesce(l.label_amount, 0) AS label_amount,
               l.fraud_types, l.setl_id IS NOT NULL AS labelled, {verification_amount_sql("f", "setl")} AS rule_amount
        FROM feat_setl f LEFT JOIN l USING (setl_id)
        ORDER BY f.setl_time, f.setl_id
    """).df()


def _ring_frame(con: duckdb.DuckDBPyConnection, has_labels: bool) -> pd.DataFrame:
    stats = con.sql("SELECT * FROM graph_communities WHERE size >= 3 ORDER BY community_id").df()
    if "fund_amount" not in stats:
        raise FileNotFoundError("graph_communities 缺少 fund_amount（旧版关系图）: 先运行 yibao graph build "
                                "(the graph was built by an older version: rebuild it)")
    rules = con.sql(f"""
        SELECT m.community_id, sum(coalesce({verification_amount_sql("p", "psn")}, 0)) AS rule_amount
        FROM graph_membership m LEFT JOIN feat_psn p ON p.psn_no = m.node_id
        WHERE m.node_type IN ('psn', 'person') GROUP BY 1
    """).df() if has_table(con, "feat_psn") else pd.DataFrame(columns=["community_id", "rule_amount"])
    frame = stats.merge(rules, on="community_id", how="left")
    frame["rule_amount"] = frame["rule_amount"].fillna(0.0)
    if has_labels:
        truth = ring_truth(con)
        frame = frame.merge(truth, on="community_id", how="left")
        frame["label"] = (frame["ring_share"].fillna(0) >= 0.5).astype(int)
        frame["fraud_types"] = frame["fraud_type"].where(frame["label"] == 1)
        frame = frame.drop(columns=["fraud_type"])
        frame["labelled"] = True
    else:
        frame["label"], frame["fraud_types"], frame["labelled"] = 0, None, False
        frame["ring_id"], frame["ring_share"] = None, 0.0
    frame["label_amount"] = np.where(frame["label"] == 1, frame["fund_amount"], 0.0)
    # Derived from the labels, not features of the community.
    frame = frame.rename(columns={"ring_share": "truth_ring_share"})
    for c in ("in_ring_candidates",):
        frame[c] = frame[c].astype(float)
    return frame

"""Evaluation of the rule hits against the labels (规则评估): precision and recall per typology id.

Hits are compared with the ``labels`` at the level the rule hits (its ``entity_type``): line hits with
line labels, settlement hits with settlement labels, and so on. A typology whose rules hit more than one
kind of entity (过度检查: doctors and institutions) is scored at each of them, each with its own hits. A hit
also rolls up to the coarser levels through the keys it carries (``setl_id``, ``mdtrt_id``, ``psn_no``,
``fixmedins_code``), so a settlement-level rule is also scored against person labels where the typology
has them.

* precision = distinct entities hit that are labelled positive for that typology / distinct entities hit
* other fraud = hit entities that are not positive for the typology but are positive for another one
  (at the same level, or — for line, settlement and visit hits — their settlement or visit is)
* recall = positives hit / positives
* amount caught = the labelled amount of the positives hit; amount at risk = what the hits say

>>> score = TypeScore("dead_person", "setl", "setl", hits=10, true_positives=9, other_fraud=1,
...                   positives=12, found=9, amount_at_risk=100.0, amount_caught=90.0, amount_labelled=120.0)
>>> round(score.precision, 2), score.recall
(0.9, 0.75)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from features.contract import FRAUD_TYPES
from features.warehouse import connect

__all__ = ["TypeScore", "EvalReport", "evaluate", "LEVEL_KEY"]

# Where a hit's entity at each level is: the hit column that holds it.
LEVEL_KEY = {
    "line": "CASE WHEN entity_type = 'line' THEN entity_id END",
    "setl": "setl_id",
    "mdtrt": "mdtrt_id",
    "psn": "psn_no",
    "fixmedins": "fixmedins_code",
    "prac": "prac_code",
}
_FINER = {"line": 0, "setl": 1, "mdtrt": 1, "psn": 2, "fixmedins": 2, "prac": 2}


@dataclass(frozen=True)
class TypeScore:
    """Scores of one typology id at one level."""

    typology_id: str
    level: str
    hit_level: str  # the entity_type of the rule's hits
    hits: int
    true_positives: int
    other_fraud: int
    positives: int
    found: int
    amount_at_risk: float
    amount_caught: float
    amount_labelled: float
    rules: tuple[str, ...] = ()

    @property
    def precision(self) -> float | None:
        return self.true_positives / self.hits if self.hits else None

    @property
    def recall(self) -> float | None:
        return self.found / self.positives if self.positives else None

    @property
    def headline(self) -> bool:
        """Scored at the rule's own level (the figure the targets apply to)."""
        return self.level == self.hit_level

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"typology_zh": FRAUD_TYPES[self.typology_id][0], "precision": self.precision,
                               "recall": self.recall, "headline": self.headline}


@dataclass(frozen=True)
class EvalReport:
    warehouse: str
    scores: tuple[TypeScore, ...]
    untyped_hits: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def headline(self) -> tuple[TypeScore, ...]:
        return tuple(s for s in self.scores if s.headline)

    def score(self, typology_id: str, level: str | None = None) -> TypeScore:
        for s in self.scores:
            if s.typology_id == typology_id and (s.headline if level is None else s.level == level):
                return s
        raise KeyError((typology_id, level))

    def to_dict(self) -> dict[str, Any]:
        return {"warehouse": self.warehouse, "scores": [s.to_dict() for s in self.scores], "notes": list(self.notes)}


def evaluate(warehouse: Path, *, hits_table: str = "rule_hits",
             con: duckdb.DuckDBPyConnection | None = None) -> EvalReport:
    """Score the hits in *hits_table* against the warehouse's ``labels`` (simulated truth or verified clues)."""
    if con is None:
        with connect(Path(warehouse), read_only=True) as own:
            return evaluate(warehouse, hits_table=hits_table, con=own)
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "labels" not in names or not con.execute("SELECT count(*) FROM labels").fetchall()[0][0]:
        raise ValueError(f"{warehouse}: no labels (评估需要标签: simulated truth or verified clues)")
    if hits_table not in names:
        raise ValueError(f"{warehouse}: no {hits_table} table; run `yibao rules run` first")
    levels = con.execute(f"""
        SELECT typology_id, entity_type, count(*) AS n, list(DISTINCT rule_id ORDER BY rule_id) AS rules
        FROM {hits_table} GROUP BY ALL ORDER BY typology_id, n DESC""").fetchall()
    by_type: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
    for typology, entity_type, _, rules in levels:  # commonest entity type first
        by_type.setdefault(typology, []).append((entity_type, tuple(rules)))
    label_levels = dict(con.execute("""
        SELECT fraud_type, list(DISTINCT entity_type) FROM labels WHERE label = 1 GROUP BY 1""").fetchall())
    scores = []
    for typology, kinds in sorted(by_type.items(), key=lambda kv: list(FRAUD_TYPES).index(kv[0])):
        hit_level, rules = kinds[0][0], tuple(sorted({r for _, rs in kinds for r in rs}))
        if len(kinds) == 1:
            own = [(hit_level, None)]  # every hit of the typology
        else:  # each kind of entity with its own hits
            own = [(lv, lv) for lv, _ in kinds if lv in LEVEL_KEY]
        for level, only in own:
            scores.append(_score(con, hits_table, typology, level, level, rules, only_entity=only))
        hit_levels = {lv for lv, _ in kinds}
        for level in sorted(lv for lv in label_levels.get(typology, []) if lv not in hit_levels and lv in LEVEL_KEY
                            and _FINER[lv] > _FINER.get(hit_level, 0)):
            scores.append(_score(con, hits_table, typology, level, hit_level, rules))
    return EvalReport(warehouse=str(warehouse), scores=tuple(scores))


def _score(con, table: str, typology: str, level: str, hit_level: str, rules: tuple[str, ...],
           only_entity: str | None = None) -> TypeScore:
    key = LEVEL_KEY[level]
    same_visit = level in ("line", "setl", "mdtrt")
    row = con.execute(f"""
        WITH h AS (
            SELECT {key} AS eid, any_value(setl_id) AS setl_id, any_value(mdtrt_id) AS mdtrt_id,
                   sum(amount_at_risk) AS amount
            FROM {table} WHERE typology_id = $t AND {key} IS NOT NULL
              AND (CAST($only AS VARCHAR) IS NULL OR entity_type = CAST($only AS VARCHAR))
            GROUP BY 1
        ), pos AS (
            SELECT entity_id, sum(amount) AS amount FROM labels
            WHERE entity_type = $level AND fraud_type = $t AND label = 1 GROUP BY 1
        ), other AS (
            SELECT DISTINCT entity_id FROM labels
            WHERE label = 1 AND fraud_type <> $t
              AND (entity_type = $level OR ($same_visit AND entity_type IN ('setl', 'mdtrt')))
        ), scored AS (
            SELECT h.*, pos.entity_id IS NOT NULL AS tp, pos.amount AS label_amount,
                   pos.entity_id IS NULL AND (h.eid IN (SELECT entity_id FROM other)
                                              OR h.setl_id IN (SELECT entity_id FROM other)
                                              OR h.mdtrt_id IN (SELECT entity_id FROM other)) AS other_fraud
            FROM h LEFT JOIN pos ON pos.entity_id = h.eid
        )
        SELECT count(*), count(*) FILTER (WHERE tp), count(*) FILTER (WHERE other_fraud),
               (SELECT count(*) FROM pos), coalesce(sum(amount), 0),
               coalesce(sum(label_amount) FILTER (WHERE tp), 0), (SELECT coalesce(sum(amount), 0) FROM pos)
        FROM scored""", {"t": typology, "level": level, "same_visit": same_visit, "only": only_entity}).fetchone()
    hits, tp, other, positives, amount, caught, labelled = row
    return TypeScore(typology_id=typology, level=level, hit_level=hit_level, hits=int(hits), true_positives=int(tp),
                     other_fraud=int(other), positives=int(positives), found=int(tp), amount_at_risk=float(amount),
                     amount_caught=float(caught), amount_labelled=float(labelled), rules=rules)

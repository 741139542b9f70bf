"""Evaluation of a clue ranking (评估): how much fraud, and how much money, a list of k clues catches.

Investigators verify a fixed number of clues a month, so the figures that matter are at their capacity
``k`` (50 / 100 / 500 clues): precision@k (share of the k clues that are frauds), recall@k (share of the
fraudulent entities in the list), **amount-weighted recall@k** (share of the defrauded money the list
reaches), recall per typology, and the lift of the combined ranking over two baselines — the rules alone
(entities ranked by the amount their rule hits put at risk) and ranking by amount paid.

Money is counted once, in a *ledger* of fraud cases at each typology's own level (``FRAUD_TYPES``: a
fee line for 限性别, a visit for 分解住院, a person for 盗刷, an institution for 虚假诊疗, a ring for
结伙就医). A case is reached by the entities that an investigation would start from:

| case level | reached by |
|---|---|
| line, visit (mdtrt) | the institution or pharmacy that billed it, the visit's chief doctor |
| settlement | the person and the institution or pharmacy |
| person | the person, and the ring they belong to |
| institution, doctor | that entity |
| ring | the ring's community, its members and its doctors |

>>> import numpy as np
>>> y = np.array([1, 0, 1, 0, 0]); order = np.array([0, 2, 1, 3, 4])
>>> precision_at_k(y[order], 2), recall_at_k(y[order], 2)
(1.0, 1.0)
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, roc_auc_score

from features.contract import FRAUD_TYPES

__all__ = ["CAPACITIES", "precision_at_k", "recall_at_k", "fraud_ledger", "ledger_reach",
           "evaluate_ranking", "level_metrics", "calibration_table"]

CAPACITIES = (50, 100, 500)


def precision_at_k(y_sorted: np.ndarray, k: int) -> float:
    top = np.asarray(y_sorted)[:k]
    return float(top.mean()) if len(top) else 0.0


def recall_at_k(y_sorted: np.ndarray, k: int) -> float:
    y = np.asarray(y_sorted)
    total = y.sum()
    return float(y[:k].sum() / total) if total else 0.0


def wilson_interval(successes: float, n: int, *, z: float = 1.96) -> list[float] | None:
    """95 % Wilson score interval of a proportion ``successes / n`` (None for n = 0): honest with few cases,
    where the normal approximation gives intervals beyond 0 or 1."""
    if n <= 0:
        return None
    phat = successes / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(float(max(0.0, centre - half)), 4), round(float(min(1.0, centre + half)), 4)]


def auc_interval(auc: float, positives: int, negatives: int, *, z: float = 1.96) -> list[float]:
    """95 % interval of a ROC-AUC by Hanley and McNeil's standard error (1982): wide with a handful of
    positives, which is when a reader needs it."""
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives)
    half = z * np.sqrt(max(var, 0.0))
    return [round(float(max(0.0, auc - half)), 4), round(float(min(1.0, auc + half)), 4)]


def level_metrics(y: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """ROC-AUC (with its 95 % interval) and PR-AUC of one level's scores (None when only one class is present)."""
    y = np.asarray(y)
    if len(np.unique(y)) < 2:  # one class only: nothing to rank
        return {"roc_auc": None, "roc_auc_ci": None, "pr_auc": None, "n": int(len(y)), "positives": int(y.sum())}
    auc = float(roc_auc_score(y, score))
    return {"roc_auc": round(auc, 4), "roc_auc_ci": auc_interval(auc, int(y.sum()), int(len(y) - y.sum())),
            "pr_auc": round(float(average_precision_score(y, score)), 4),
            "n": int(len(y)), "positives": int(y.sum())}


def calibration_table(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> pd.DataFrame:
    """Observed fraud rate against mean predicted probability, in quantile bins."""
    frac, mean = calibration_curve(np.asarray(y), np.asarray(p), n_bins=bins, strategy="quantile")
    return pd.DataFrame({"mean_predicted": np.round(mean, 4), "observed": np.round(frac, 4)})


def fraud_ledger(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Fraud cases at their typology's own level with the entities that reach them.

    One row per (case, reaching entity): ``case_id, fraud_type, amount, entity_type, entity_id``;
    ``entity_type`` is ``psn``, ``prac``, ``fixmedins`` (institutions and pharmacies) or ``ring``
    (a ring id of the labels; communities map to it through :func:`models.levels.ring_truth`).
    """
    own = pd.DataFrame([(t, lv) for t, (_, lv) in FRAUD_TYPES.items()], columns=["fraud_type", "own_level"])
    con.register("_own_level", own)
    try:
        return con.sql("""
            WITH c AS (
                SELECT l.entity_type || ':' || l.entity_id || ':' || l.fraud_type AS case_id, l.entity_type,
                       l.entity_id, l.fraud_type, CAST(l.amount AS DOUBLE) AS amount, l.ring_id
                FROM labels l JOIN _own_level o ON o.fraud_type = l.fraud_type AND o.own_level = l.entity_type
                WHERE l.label = 1),
            line AS (SELECT c.case_id, s.fixmedins_code, s.prac_code FROM c
                     JOIN fee_list_d f ON c.entity_type = 'line' AND f.bkkp_sn = c.entity_id
                     JOIN feat_setl s ON s.setl_id = f.setl_id),
            visit AS (SELECT DISTINCT c.case_id, s.fixmedins_code, s.prac_code FROM c
                      JOIN feat_setl s ON c.entity_type = 'mdtrt' AND s.mdtrt_id = c.entity_id),
            setl AS (SELECT c.case_id, s.fixmedins_code, s.psn_no FROM c
                     JOIN feat_setl s ON c.entity_type = 'setl' AND s.setl_id = c.entity_id),
            reach AS (
                SELECT case_id, 'fixmedins' AS entity_type, fixmedins_code AS entity_id FROM line
                UNION SELECT case_id, 'prac', prac_code FROM line WHERE prac_code IS NOT NULL
                UNION SELECT case_id, 'fixmedins', fixmedins_code FROM visit
                UNION SELECT case_id, 'prac', prac_code FROM visit WHERE prac_code IS NOT NULL
                UNION SELECT case_id, 'psn', psn_no FROM setl
                UNION SELECT case_id, 'fixmedins', fixmedins_code FROM setl
                UNION SELECT case_id, entity_type, entity_id FROM c WHERE entity_type IN ('psn', 'prac', 'fixmedins')
                UNION SELECT case_id, 'ring', ring_id FROM c WHERE entity_type = 'psn' AND ring_id IS NOT NULL
                UNION SELECT c.case_id, 'ring', c.entity_id FROM c WHERE c.entity_type = 'ring'
                UNION SELECT c.case_id, m.entity_type, m.entity_id FROM c
                      JOIN labels m ON c.entity_type = 'ring' AND m.ring_id = c.entity_id
                      AND m.entity_type IN ('psn', 'prac') AND m.label = 1)
            SELECT c.case_id, c.fraud_type, c.amount, r.entity_type, r.entity_id
            FROM c JOIN reach r USING (case_id)
            ORDER BY c.case_id, r.entity_type, r.entity_id
        """).df()
    finally:
        con.unregister("_own_level")


def ledger_reach(ranked: pd.DataFrame, ledger: pd.DataFrame, k: int) -> pd.DataFrame:
    """Cases reached by the first ``k`` clues of ``ranked`` (``entity_type, ledger_id``); one row per case
    with ``fraud_type, amount, reached``."""
    top = ranked.head(k)
    keys = set(zip(top["ledger_type"], top["ledger_id"]))
    hit = [(t, i) in keys for t, i in zip(ledger["entity_type"], ledger["entity_id"])]
    per_case = ledger.assign(reached=hit).groupby(["case_id", "fraud_type"], as_index=False).agg(
        amount=("amount", "first"), reached=("reached", "max"))
    return per_case


def evaluate_ranking(ranked: pd.DataFrame, ledger: pd.DataFrame, *,
                     capacities: tuple[int, ...] = CAPACITIES) -> dict:
    """Figures of one ranking (best first; columns ``label, ledger_type, ledger_id``) at each capacity."""
    y = ranked["label"].to_numpy(dtype=int)
    total_money = float(ledger.groupby("case_id")["amount"].first().sum())
    out: dict = {"n_candidates": int(len(ranked)), "n_fraud_entities": int(y.sum()),
                 "fraud_money": round(total_money, 2), "at": {}}
    for k in capacities:
        cases = ledger_reach(ranked, ledger, k)
        money = float(cases.loc[cases["reached"], "amount"].sum())
        per_type = {t: round(float(g.loc[g["reached"], "amount"].sum() / g["amount"].sum()), 4)
                    if g["amount"].sum() else 0.0
                    for t, g in cases.groupby("fraud_type")}  # no labelled case (a new region): none
        out["at"][str(k)] = {
            "precision": round(precision_at_k(y, k), 4),
            "precision_ci": wilson_interval(float(y[:k].sum()), int(min(k, len(y)))),
            "recall": round(recall_at_k(y, k), 4),
            "recall_ci": wilson_interval(float(y[:k].sum()), int(y.sum())),
            "amount_recall": round(money / total_money, 4) if total_money else 0.0,
            "money_caught": round(money, 2),
            "cases_reached": int(cases["reached"].sum()),
            "typology_amount_recall": {t: float(v) for t, v in per_type.items()},
        }
    return out

"""Clue ranking (线索排序): expected recovery = P(fraud) × amount at risk, one row per entity.

Every level's scores meet here: a person, doctor, institution, pharmacy or ring becomes one candidate
clue whose *amount at risk* (涉嫌金额) is the larger of

- what the rules put at risk for it (``rule_amount``: the 两库 and typology rule hits' amounts), and
- the share of its fund payments that is typically recovered from a confirmed fraud at its level
  (``recovery_share`` × ``exposure``; the share is learned from labelled frauds, see
  :func:`recovery_share`).

``priority = p_fraud × amount_at_risk`` is the expected recovery in yuan, so a clue list sorted by it
spends investigators' time where the money is. Ties are broken by entity type and id, so the same scores
give the same list.

>>> import pandas as pd
>>> s = pd.DataFrame({"entity_type": ["psn", "fixmedins"], "entity_id": ["P1", "H1"],
...                   "p_fraud": [0.9, 0.3], "rule_amount": [100.0, 0.0], "exposure": [500.0, 1e6]})
>>> rank_clues(s, {"psn": 0.5, "fixmedins": 0.02})[["entity_id", "amount_at_risk", "priority"]].values.tolist()
[['H1', 20000.0, 6000.0], ['P1', 250.0, 225.0]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["ENTITY_ZH", "RISK_CUTS", "risk_level", "recovery_share", "amount_at_risk", "rank_clues"]

ENTITY_ZH = {"psn": "参保人", "prac": "医师", "fixmedins": "定点医疗机构", "pharmacy": "定点零售药店",
             "ring": "团伙", "setl": "结算"}
# 风险等级: P(fraud) from which a clue or a settlement is high / medium risk (else low).
RISK_CUTS: tuple[tuple[float, str], ...] = ((0.7, "high"), (0.4, "medium"), (0.0, "low"))


def risk_level(p: float | None) -> str | None:
    """high / medium / low from P(fraud) (:data:`RISK_CUTS`); None without a score.

    >>> risk_level(0.75), risk_level(0.1), risk_level(None)
    ('high', 'low', None)
    """
    if p is None:
        return None
    return next(level for cut, level in RISK_CUTS if p >= cut)


def recovery_share(label_amount: pd.Series, exposure: pd.Series, label: pd.Series) -> float:
    """Median share of fund payments that labelled frauds at one level turned out to be (0–1).

    >>> recovery_share(pd.Series([50.0, 10.0, 0.0]), pd.Series([100.0, 100.0, 100.0]), pd.Series([1, 1, 0]))
    0.3
    """
    pos = (np.asarray(label) == 1) & (np.asarray(exposure, dtype=float) > 0)
    if not pos.any():
        return 0.0
    share = np.asarray(label_amount, dtype=float)[pos] / np.asarray(exposure, dtype=float)[pos]
    return float(np.clip(np.median(share), 0.0, 1.0))


def amount_at_risk(rule_amount, exposure, share) -> np.ndarray:
    """The larger of the rules' amount and ``share`` × exposure, per entity (yuan, 2 decimals)."""
    rule = np.nan_to_num(np.asarray(rule_amount, dtype=float))
    expo = np.nan_to_num(np.asarray(exposure, dtype=float))
    return np.round(np.maximum(rule, share * expo), 2)


def rank_clues(scores: pd.DataFrame, shares: dict[str, float]) -> pd.DataFrame:
    """Candidate clues, best first: ``scores`` has ``entity_type, entity_id, p_fraud, rule_amount,
    exposure`` (more columns pass through); ``shares`` maps entity type → recovery share. Adds
    ``amount_at_risk``, ``priority`` and ``rank`` (1 = first)."""
    out = scores.copy()
    share = out["entity_type"].map(shares).fillna(0.0).to_numpy(dtype=float)
    out["amount_at_risk"] = amount_at_risk(out["rule_amount"], out["exposure"], share)
    out["priority"] = np.round(out["p_fraud"].to_numpy(dtype=float) * out["amount_at_risk"].to_numpy(), 2)
    out = out.sort_values(["priority", "p_fraud", "entity_type", "entity_id"],
                          ascending=[False, False, True, True], kind="mergesort").reset_index(drop=True)
    out["rank"] = np.arange(1, len(out) + 1)
    return out

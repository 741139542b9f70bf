"""Credit ratings (医保信用评价, 分级分类) of designated medical institutions and retail pharmacies.

Every institution starts at ``base_score`` (100) and loses points for five factors, each capped, with
the weights in ``models/credit.yaml`` (吉医保联〔2024〕3号 (十二), 甘政办发〔2023〕58号: credit levels
tied to how often an institution is inspected):

============================  ==============  ===================================================
factor                        中文            value
============================  ==============  ===================================================
``confirmed_violations``      查实违规        confirmed clues and their confirmed amount (元)
``open_high_risk_clues``      未办结高风险线索  high-risk clues still new, assigned or verifying
``rule_hit_ratio``            规则命中占比     rule-hit amount at risk / fund usage (365 days)
``model_risk``                模型风险         P(fraud) of the scorer bundle
``handling``                  整改情况         share of the confirmed amount not recovered (追回)
============================  ==============  ===================================================

The score maps to a grade A/B/C/D by the thresholds of the config; every rating carries its factors,
their values and the points they cost, in Chinese. :func:`rate_institutions` is pure (frames in, a
frame out); :func:`institutions_from_warehouse`, :func:`clue_outcomes` and :func:`save_ratings` do the
reading and writing, and ``save_ratings`` keeps the history in the warehouse table ``credit_ratings``
so a change of grade between runs is visible (``previous_grade``).

>>> inst = pd.DataFrame({"fixmedins_code": ["H1", "H2"], "fixmedins_type": "hospital",
...                      "fund_amt": [1e6, 1e6], "rule_amt": [0.0, 80_000.0], "p_fraud": [0.1, 0.9]})
>>> clues = pd.DataFrame({"entity_id": ["H2"], "state": ["closed"], "risk_level": ["high"],
...                       "confirmed_amount": [50_000.0], "recovered_amount": [25_000.0]})
>>> r = rate_institutions(inst, clues)
>>> r[["fixmedins_code", "score", "grade"]].to_dict("records")
[{'fixmedins_code': 'H1', 'score': 100.0, 'grade': 'A'}, {'fixmedins_code': 'H2', 'score': 44.4, 'grade': 'D'}]
>>> print(r.loc[1, "explanation_zh"])
信用评分 44.4 (D 严重失信): 查实违规 1 起, 查实 50,000 元 -20.0; 规则命中金额占基金用量 8.0% -15.6; 模型风险 P(欺诈)=0.90 -15.0; 查实金额追回 50% (未追回 25,000 元) -5.0
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import duckdb
import numpy as np
import pandas as pd
import yaml

__all__ = [
    "DEFAULT_CREDIT_CONFIG",
    "FACTORS",
    "GRADE_ZH",
    "CreditConfig",
    "load_credit_config",
    "rate_institutions",
    "institutions_from_warehouse",
    "clue_outcomes",
    "save_ratings",
    "rating_history",
]

DEFAULT_CREDIT_CONFIG = Path(__file__).with_name("credit.yaml")
FACTORS: dict[str, str] = {
    "confirmed_violations": "查实违规",
    "open_high_risk_clues": "未办结高风险线索",
    "rule_hit_ratio": "规则命中占比",
    "model_risk": "模型风险",
    "handling": "整改情况",
}
GRADE_ZH: dict[str, str] = {"A": "守信", "B": "基本守信", "C": "失信风险", "D": "严重失信"}
CONFIRMED_STATES = ("confirmed", "transferred_police", "transferred_discipline", "transferred_health", "closed")
OPEN_STATES = ("new", "assigned", "verifying")
_CLUE_COLUMNS = ("id", "entity_type", "entity_id", "state", "risk_level", "p_fraud", "amount_at_risk", "priority",
                 "confirmed_amount", "recovered_amount")


@dataclass(frozen=True)
class CreditConfig:
    """The weights and thresholds of ``credit.yaml``, read once."""

    base_score: float = 100.0
    factors: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))
    grades: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({"A": 90, "B": 75, "C": 60}))
    inspection_weight: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"A": 1, "B": 2, "C": 4, "D": 8}))
    source: str = ""

    def grade(self, score: float) -> str:
        """The first grade whose minimum ``score`` reaches (config order), else ``D``."""
        for g, low in self.grades.items():
            if score >= low:
                return g
        return "D"

    def factor(self, name: str, key: str, default: float = 0.0) -> float:
        return float(self.factors.get(name, {}).get(key, default))


def load_credit_config(path: Path | None = None) -> CreditConfig:
    """Read ``credit.yaml`` (default: the one beside this module) into a :class:`CreditConfig`."""
    path = Path(path or DEFAULT_CREDIT_CONFIG)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = set(raw.get("factors", {})) - set(FACTORS)
    if unknown:
        raise ValueError(f"{path}: 未知信用因素 (unknown credit factors) {sorted(unknown)}; 可选: {list(FACTORS)}")
    grades = raw.get("grades") or {"A": 90, "B": 75, "C": 60}
    lows = list(grades.values())
    if any(a <= b for a, b in zip(lows, lows[1:])) or set(grades) - set(GRADE_ZH):
        raise ValueError(f"{path}: grades must be A/B/C with strictly decreasing minimum scores, got {grades}")
    weights = raw.get("inspection_weight") or {"A": 1, "B": 2, "C": 4, "D": 8}
    if set(weights) != set(GRADE_ZH) or any(float(w) <= 0 for w in weights.values()):
        raise ValueError(f"{path}: inspection_weight needs a positive weight for each of A, B, C, D, got {weights}")
    return CreditConfig(
        base_score=float(raw.get("base_score", 100)),
        factors=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in (raw.get("factors") or {}).items()}),
        grades=MappingProxyType({k: float(v) for k, v in grades.items()}),
        inspection_weight=MappingProxyType({k: float(v) for k, v in weights.items()}),
        source=str(path),
    )


def rate_institutions(institutions: pd.DataFrame, clues: pd.DataFrame | None = None, *,
                      config: CreditConfig | None = None) -> pd.DataFrame:
    """One rating (信用评价) per row of ``institutions``: score 0–100, grade A–D, factors, explanation.

    ``institutions``: ``fixmedins_code`` and optionally ``fixmedins_name``, ``fixmedins_type``,
    ``admdvs``, ``fund_amt`` (fund usage, 元), ``rule_amt`` (rule-hit amount at risk, 元), ``p_fraud``
    (NaN or absent: the model factor costs nothing and says so). ``clues``: one row per clue with
    ``entity_id`` (the institution code), ``state``, ``risk_level``, ``confirmed_amount``,
    ``recovered_amount``. Rows come back in the input order.
    """
    cfg = config or load_credit_config()
    inst = institutions.reset_index(drop=True).copy()
    for col, default in (("fixmedins_name", ""), ("fixmedins_type", ""), ("admdvs", ""), ("fund_amt", 0.0),
                         ("rule_amt", 0.0), ("p_fraud", np.nan)):
        if col not in inst:
            inst[col] = default
    outcome = _clue_counts(clues, inst["fixmedins_code"])
    rows = []
    for r, o in zip(inst.itertuples(index=False), outcome.itertuples(index=False)):
        factors = [
            _confirmed(cfg, o.n_confirmed, o.confirmed_amount),
            _open_high(cfg, o.n_open_high),
            _rule_ratio(cfg, float(r.rule_amt or 0), float(r.fund_amt or 0)),
            _model(cfg, r.p_fraud),
            _handling(cfg, o.confirmed_amount, o.recovered_amount),
        ]
        score = round(max(0.0, min(100.0, cfg.base_score + sum(f["points"] for f in factors))), 1)
        grade = cfg.grade(score)
        costly = [f"{f['value_zh']} {f['points']:+.1f}" for f in factors if f["points"] < 0]
        rows.append({
            "fixmedins_code": r.fixmedins_code, "fixmedins_name": r.fixmedins_name,
            "fixmedins_type": r.fixmedins_type, "admdvs": r.admdvs, "score": score, "grade": grade,
            "grade_zh": GRADE_ZH[grade], "factors": factors,
            "explanation_zh": f"信用评分 {score:.1f} ({grade} {GRADE_ZH[grade]}): "
                              + ("; ".join(costly) if costly else "无扣分项"),
        })
    return pd.DataFrame(rows, columns=["fixmedins_code", "fixmedins_name", "fixmedins_type", "admdvs", "score",
                                       "grade", "grade_zh", "factors", "explanation_zh"])


def institutions_from_warehouse(warehouse: Path | duckdb.DuckDBPyConnection, bundle=None) -> pd.DataFrame:
    """Every designated institution and pharmacy of the warehouse with fund usage, rule-hit amount and,
    with a :class:`models.bundle.ScorerBundle`, its P(fraud).

    Fund usage and rule amounts come from ``feat_fixmedins`` / ``feat_pharmacy`` (365 days before
    ``as_of``; 0 for an institution without features)."""
    con, own = (duckdb.connect(str(warehouse), read_only=True), True) if isinstance(warehouse, (str, Path)) \
        else (warehouse, False)
    try:
        tables = set(con.sql("SELECT table_name FROM information_schema.tables").df()["table_name"])
        feats = [f"SELECT fixmedins_code, fund_amt_365, rh_amt_hits FROM {t}"
                 for t in ("feat_fixmedins", "feat_pharmacy") if t in tables]
        union = " UNION ALL ".join(feats) or \
            "SELECT NULL::VARCHAR AS fixmedins_code, NULL::DOUBLE AS fund_amt_365, NULL::DOUBLE AS rh_amt_hits"
        frame = con.sql(f"""
            SELECT f.fixmedins_code, f.fixmedins_name, f.fixmedins_type, f.admdvs,
                   coalesce(x.fund_amt_365, 0)::DOUBLE AS fund_amt, coalesce(x.rh_amt_hits, 0)::DOUBLE AS rule_amt
            FROM fixmedins f LEFT JOIN ({union}) x USING (fixmedins_code)
            WHERE f.fixmedins_type IN ('hospital', 'clinic', 'pharmacy')
            ORDER BY f.fixmedins_code""").df()
        frame["p_fraud"] = np.nan
        if bundle is not None:
            from models.levels import load_level

            for level in ("fixmedins", "pharmacy"):
                if level not in bundle.levels:
                    continue
                d = load_level(con, level)
                p = pd.Series(bundle.score(level, d.frame), index=d.ids.astype(str).to_numpy())
                hit = frame["fixmedins_code"].isin(p.index)
                frame.loc[hit, "p_fraud"] = frame.loc[hit, "fixmedins_code"].map(p).astype(float)
    finally:
        if own:
            con.close()
    return frame


def clue_outcomes(store, account) -> pd.DataFrame:
    """Every institution and pharmacy clue of a :class:`serving.clues.store.ClueStore` that ``account`` (the
    store's system account, ``serving.clues.store.SYSTEM``) sees: id, state, risk level, P(fraud), amounts at
    risk, confirmed and recovered, priority."""
    rows = []
    for entity_type in ("fixmedins", "pharmacy"):
        offset = 0
        while True:
            page = store.list(account, entity_type=entity_type, limit=1000, offset=offset, sort="age")
            rows += [{k: c[k] for k in _CLUE_COLUMNS} for c in page["items"]]
            offset += len(page["items"])
            if not page["items"] or offset >= page["total"]:
                break
    return pd.DataFrame(rows, columns=list(_CLUE_COLUMNS))


def save_ratings(warehouse: Path, ratings: pd.DataFrame, *, rated_at: datetime | None = None) -> pd.DataFrame:
    """Append ``ratings`` to the warehouse table ``credit_ratings`` and return them with the previous
    run's ``previous_score`` / ``previous_grade`` (NaN/None for an institution rated for the first time)."""
    rated_at = rated_at or datetime.now().replace(microsecond=0)
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("""CREATE TABLE IF NOT EXISTS credit_ratings (
            rated_at TIMESTAMP, fixmedins_code VARCHAR, fixmedins_name VARCHAR, fixmedins_type VARCHAR,
            admdvs VARCHAR, score DOUBLE, grade VARCHAR, previous_score DOUBLE, previous_grade VARCHAR,
            factors VARCHAR, explanation_zh VARCHAR)""")
        prev = con.sql("""SELECT fixmedins_code, arg_max(score, rated_at) AS previous_score,
                                 arg_max(grade, rated_at) AS previous_grade
                          FROM credit_ratings GROUP BY 1""").df()
        out = ratings.merge(prev, on="fixmedins_code", how="left")
        rows = out.assign(rated_at=rated_at, factors=out["factors"].map(lambda f: json.dumps(f, ensure_ascii=False)))
        rows = rows[["rated_at", "fixmedins_code", "fixmedins_name", "fixmedins_type", "admdvs", "score", "grade",
                     "previous_score", "previous_grade", "factors", "explanation_zh"]]
        con.register("_new_ratings", rows)
        con.execute("INSERT INTO credit_ratings SELECT * FROM _new_ratings")
    finally:
        con.close()
    out["previous_grade"] = out["previous_grade"].where(out["previous_grade"].notna(), None)
    return out


def rating_history(warehouse: Path, fixmedins_code: str | None = None) -> pd.DataFrame:
    """The ``credit_ratings`` rows (all, or of one institution), newest first."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        where = "WHERE fixmedins_code = ?" if fixmedins_code else ""
        return con.execute(f"SELECT * FROM credit_ratings {where} ORDER BY rated_at DESC, fixmedins_code",
                           [fixmedins_code] if fixmedins_code else []).df()
    finally:
        con.close()


# -- private helpers ------------------------------------------------------------------------------


def _clue_counts(clues: pd.DataFrame | None, codes: pd.Series) -> pd.DataFrame:
    base = pd.DataFrame({"entity_id": codes.astype(str).to_numpy()})
    cols = ["n_confirmed", "confirmed_amount", "recovered_amount", "n_open_high"]
    if clues is None or clues.empty:
        return base.assign(**{c: 0.0 for c in cols})
    c = clues.copy()
    confirmed = c["state"].isin(CONFIRMED_STATES) & c["confirmed_amount"].notna()
    c["n_confirmed"] = confirmed.astype(float)
    c["confirmed_amount"] = c["confirmed_amount"].where(confirmed, 0.0).fillna(0.0).astype(float)
    c["recovered_amount"] = c["recovered_amount"].where(confirmed, 0.0).fillna(0.0).astype(float)
    c["n_open_high"] = (c["state"].isin(OPEN_STATES) & (c["risk_level"] == "high")).astype(float)
    agg = c.groupby(c["entity_id"].astype(str))[cols].sum().reset_index()
    return base.merge(agg, on="entity_id", how="left").fillna(0.0)


def _linear(value: float, start: float, full: float) -> float:
    if full <= start:
        return float(value >= start)
    return float(np.clip((value - start) / (full - start), 0.0, 1.0))


def _factor(name: str, value, value_zh: str, points: float) -> dict:
    return {"factor": name, "factor_zh": FACTORS[name], "value": value, "value_zh": value_zh,
            "points": round(-abs(points), 1) if points else 0.0}


def _confirmed(cfg: CreditConfig, n: float, amount: float) -> dict:
    pts = min(cfg.factor("confirmed_violations", "max", 40),
              n * cfg.factor("confirmed_violations", "per_case", 15)
              + amount / 10_000 * cfg.factor("confirmed_violations", "per_10k_yuan", 1.0))
    text = f"查实违规 {int(n)} 起, 查实 {amount:,.0f} 元" if n else "无查实违规"
    return _factor("confirmed_violations", {"cases": int(n), "amount": round(float(amount), 2)}, text, pts)


def _open_high(cfg: CreditConfig, n: float) -> dict:
    pts = min(cfg.factor("open_high_risk_clues", "max", 15), n * cfg.factor("open_high_risk_clues", "per_clue", 8))
    return _factor("open_high_risk_clues", int(n), f"未办结高风险线索 {int(n)} 条" if n else "无未办结高风险线索", pts)


def _rule_ratio(cfg: CreditConfig, rule_amt: float, fund_amt: float) -> dict:
    ratio = rule_amt / fund_amt if fund_amt > 0 else (1.0 if rule_amt > 0 else 0.0)
    share = _linear(ratio, cfg.factor("rule_hit_ratio", "start", 0.01), cfg.factor("rule_hit_ratio", "full", 0.10))
    pts = share * cfg.factor("rule_hit_ratio", "max", 20)
    return _factor("rule_hit_ratio", round(ratio, 4), f"规则命中金额占基金用量 {ratio:.1%}", pts)


def _model(cfg: CreditConfig, p) -> dict:
    if p is None or pd.isna(p):
        return _factor("model_risk", None, "无模型评分", 0.0)
    share = _linear(float(p), cfg.factor("model_risk", "start", 0.3), cfg.factor("model_risk", "full", 0.9))
    return _factor("model_risk", round(float(p), 4), f"模型风险 P(欺诈)={float(p):.2f}",
                   share * cfg.factor("model_risk", "max", 15))


def _handling(cfg: CreditConfig, confirmed: float, recovered: float) -> dict:
    if confirmed <= 0:
        return _factor("handling", None, "无待整改查实金额", 0.0)
    done = min(1.0, recovered / confirmed)
    return _factor("handling", round(done, 4),
                   f"查实金额追回 {done:.0%} (未追回 {confirmed - min(recovered, confirmed):,.0f} 元)",
                   (1 - done) * cfg.factor("handling", "max", 10))

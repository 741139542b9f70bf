"""Credit ratings (models/credit.py) from hand-built inputs and the rating history (CLI: tests/serving/test_inspection_cli.py)."""

from __future__ import annotations

import json
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from models.credit import CreditConfig, load_credit_config, rate_institutions, rating_history, save_ratings


def _inst(**cols) -> pd.DataFrame:
    base = {"fixmedins_code": ["H1"], "fixmedins_type": ["hospital"], "admdvs": ["220102"],
            "fund_amt": [1_000_000.0], "rule_amt": [0.0], "p_fraud": [np.nan]}
    return pd.DataFrame(base | {k: [v] for k, v in cols.items()})


def _clues(*rows) -> pd.DataFrame:
    return pd.DataFrame([dict(zip(("entity_id", "state", "risk_level", "confirmed_amount", "recovered_amount"), r))
                         for r in rows])


def _points(rating: pd.Series) -> dict[str, float]:
    return {f["factor"]: f["points"] for f in rating["factors"]}


def test_a_clean_institution_is_a_with_nothing_deducted():
    r = rate_institutions(_inst()).iloc[0]
    assert (r["score"], r["grade"], r["grade_zh"]) == (100.0, "A", "守信")
    assert set(_points(r).values()) == {0.0}
    assert r["explanation_zh"] == "信用评分 100.0 (A 守信): 无扣分项"
    assert [f["value_zh"] for f in r["factors"]][-2:] == ["无模型评分", "无待整改查实金额"]


def test_each_factor_costs_points_by_the_config():
    cfg = load_credit_config()
    r = rate_institutions(_inst(rule_amt=55_000.0, p_fraud=0.6), _clues(
        ("H1", "confirmed", "high", 20_000.0, 5_000.0),      # 查实: 15 + 2 points; 75% not recovered
        ("H1", "new", "high", None, None),                   # open high-risk: 8
        ("H1", "verifying", "medium", None, None),           # not high: 0
        ("H1", "dismissed", "high", None, None),             # dismissed: nothing
        ("H9", "confirmed", "high", 1e6, 0.0),               # another institution
    ), config=cfg).iloc[0]
    pts = _points(r)
    assert pts == {"confirmed_violations": -17.0, "open_high_risk_clues": -8.0,
                   "rule_hit_ratio": -10.0,                  # 5.5% of fund usage: halfway from 1% to 10%
                   "model_risk": -7.5,                       # 0.6: halfway from 0.3 to 0.9
                   "handling": -7.5}
    assert r["score"] == 50.0 and r["grade"] == "D"
    assert "查实违规 1 起, 查实 20,000 元 -17.0" in r["explanation_zh"]
    assert "查实金额追回 25% (未追回 15,000 元) -7.5" in r["explanation_zh"]


def test_caps_grades_and_full_recovery():
    cfg = CreditConfig(factors={"confirmed_violations": {"per_case": 15, "per_10k_yuan": 1, "max": 40},
                                "handling": {"max": 10}}, grades={"A": 90, "B": 75, "C": 60})
    many = _clues(*[("H1", "closed", "high", 100_000.0, 100_000.0)] * 4)
    r = rate_institutions(_inst(), many, config=cfg).iloc[0]
    assert _points(r)["confirmed_violations"] == -40.0 and _points(r)["handling"] == 0.0
    assert (r["score"], r["grade"]) == (60.0, "C")                      # capped: 4 cases would cost 100
    assert [cfg.grade(s) for s in (95, 90, 80, 60, 59.9)] == ["A", "A", "B", "C", "D"]
    assert rate_institutions(_inst(fund_amt=0.0, rule_amt=10.0)).iloc[0]["grade"] == "B"   # rule hits, no fund: 100%


def test_bad_config_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("factors:\n  charm: {max: 3}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="charm"):
        load_credit_config(p)
    p.write_text("grades: {A: 60, B: 75, C: 90}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="decreasing"):
        load_credit_config(p)


def test_history_keeps_the_previous_grade(tmp_path):
    import duckdb

    wh = tmp_path / "w.duckdb"
    duckdb.connect(str(wh)).close()
    first = save_ratings(wh, rate_institutions(_inst()), rated_at=datetime(2026, 11, 1))
    assert first["previous_grade"].tolist() == [None]
    worse = rate_institutions(_inst(), _clues(("H1", "closed", "high", 300_000.0, 0.0)))
    second = save_ratings(wh, worse, rated_at=datetime(2026, 11, 22))
    assert second[["previous_grade", "grade", "previous_score"]].to_dict("records") == [
        {"previous_grade": "A", "grade": "D", "previous_score": 100.0}]
    h = rating_history(wh, "H1")
    assert h["grade"].tolist() == ["D", "A"] and json.loads(h["factors"][0])[0]["factor_zh"] == "查实违规"

"""Sampling rules of the flight-inspection plan (models/inspection.py) on a hand-built set of institutions."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from models.inspection import (InspectionConfig, inspection_lift, institution_risk, load_inspection_config,
                               plan_inspection, read_code_list, risk_signals_from_warehouse)


def _institutions() -> pd.DataFrame:
    """Two regions with 6 hospitals/clinics each (fund 6..1 million, H?01 largest) and 12 pharmacies."""
    rows = []
    for region in ("220102", "220103"):
        for i in range(1, 7):
            rows.append({"fixmedins_code": f"H{region[-1]}{i:02d}", "fixmedins_type": "hospital" if i < 4 else "clinic",
                         "admdvs": region, "fund_amt": (7 - i) * 1e6, "fixmedins_name": f"医院{region}-{i}",
                         "grade": "A", "risk": 0.1})
    for i in range(1, 13):
        rows.append({"fixmedins_code": f"P{i:02d}", "fixmedins_type": "pharmacy", "admdvs": "220102",
                     "fund_amt": (13 - i) * 1e4, "fixmedins_name": f"药店{i}", "grade": "A", "risk": 0.1})
    return pd.DataFrame(rows)


CFG = InspectionConfig(candidates_per_region=3, institutions_per_region=2, pharmacy_top_n=10, pharmacies_drawn=2,
                       lookbacks_per_region=1)


def _picked(plan, selection: str) -> list[str]:
    t = plan.targets
    return t.loc[t["selection"] == selection, "fixmedins_code"].tolist()


def test_ranked_draw_only_from_the_top_by_fund_usage_per_region():
    seen = Counter()
    for seed in range(60):
        plan = plan_inspection(_institutions(), seed=seed, config=CFG)
        t = plan.targets[plan.targets["selection"] == "ranked_draw"]
        assert t.groupby("region").size().to_dict() == {"220102": 2, "220103": 2}
        assert t["fund_rank"].le(3).all()
        seen.update(t["fixmedins_code"])
    assert set(seen) == {"H201", "H202", "H203", "H301", "H302", "H303"}   # every listed one gets drawn
    t = plan.targets
    assert t.loc[t["fixmedins_code"] == "H201", "fund_rank"].tolist() in ([], [1])


def test_two_of_the_top_ten_pharmacies():
    seen = set()
    for seed in range(80):
        picked = _picked(plan_inspection(_institutions(), seed=seed, config=CFG), "pharmacy_draw")
        assert len(picked) == 2 and len(set(picked)) == 2
        seen.update(picked)
    assert seen == {f"P{i:02d}" for i in range(1, 11)}                     # P11, P12 are outside the top 10


def test_lookback_one_per_region_from_previously_inspected_only():
    before = ["H205", "H206", "H306", "P01"]
    for seed in range(20):
        plan = plan_inspection(_institutions(), seed=seed, config=CFG, previously_inspected=before)
        t = plan.targets[plan.targets["selection"] == "lookback"]
        assert sorted(t["region"]) == ["220102", "220103"]
        assert set(t["fixmedins_code"]) <= {"H205", "H206", "H306"}        # a pharmacy is no look-back target
        assert "回头看" in t["reason_zh"].iloc[0]
    assert _picked(plan_inspection(_institutions(), seed=1, config=CFG), "lookback") == []


def test_exclusions_apply_to_every_draw_but_not_to_designated_targets():
    recent = ["H201", "H202", "P01", "P02", "H205"]
    for seed in range(30):
        plan = plan_inspection(_institutions(), seed=seed, config=CFG, inspected_recently=recent,
                               previously_inspected=["H205", "H206"], designated=["H202"])
        t = plan.targets
        drawn = t[t["selection"] != "designated"]
        assert not drawn["fixmedins_code"].isin(recent).any()
        region2 = drawn[(drawn["selection"] == "ranked_draw") & (drawn["region"] == "220102")]
        assert set(region2["fixmedins_code"]) <= {"H203", "H204", "H206"}  # the list moves up past H205
        assert _picked(plan, "lookback") in (["H206"], [])
        assert _picked(plan, "designated") == ["H202"]
        assert plan.summary()["excluded"] == 5


def test_designated_targets_come_first_with_their_reason_and_are_not_drawn_again():
    plan = plan_inspection(_institutions(), seed=3, config=CFG, designated={"H201": "线索 #12 高风险", "P12": ""})
    t = plan.targets
    assert t["fixmedins_code"].iloc[:2].tolist() == ["H201", "P12"]
    assert t["reason_zh"].iloc[0] == "指定检查: 线索 #12 高风险"
    assert "大数据筛查" in t["reason_zh"].iloc[1]
    assert t["fixmedins_code"].is_unique
    with pytest.raises(ValueError, match="not found"):
        plan_inspection(_institutions(), seed=3, config=CFG, designated=["NOPE"])


def test_same_seed_same_plan_whatever_the_row_order():
    inst = _institutions()
    a = plan_inspection(inst, seed=42, config=CFG, previously_inspected=["H205", "H306"]).targets
    b = plan_inspection(inst.sample(frac=1, random_state=1), seed=42, config=CFG,
                        previously_inspected=["H306", "H205"]).targets
    pd.testing.assert_frame_equal(a, b)
    plans = {tuple(plan_inspection(inst, seed=s, config=CFG).targets["fixmedins_code"]) for s in range(10)}
    assert len(plans) > 1


def test_weighting_by_credit_and_risk_changes_the_probabilities():
    inst = _institutions()
    inst.loc[inst["fixmedins_code"] == "H203", ["grade", "risk"]] = ["D", 0.95]
    n = 150

    def share(weighting: str) -> float:
        cfg = InspectionConfig(candidates_per_region=3, institutions_per_region=1, weighting=weighting,
                               pharmacies_drawn=0, lookbacks_per_region=0)
        return np.mean(["H203" in _picked(plan_inspection(inst, seed=s, config=cfg), "ranked_draw") for s in range(n)])

    assert abs(share("none") - 1 / 3) < 0.12
    assert share("credit") > 0.65                                         # 8 / (8 + 1 + 1)
    assert share("risk") > 0.7                                           # 0.95 / (0.95 + 0.1 + 0.1)
    with pytest.raises(ValueError, match="grade"):
        plan_inspection(inst.drop(columns="grade"), seed=0, config=InspectionConfig(weighting="credit"))
    with pytest.raises(ValueError, match="risk"):
        plan_inspection(inst.drop(columns="risk"), seed=0, config=InspectionConfig(weighting="risk"))
    with pytest.raises(ValueError, match="weighting"):
        InspectionConfig(weighting="loudest")


def test_lift_counts_fraud_found_by_weighted_and_uniform_plans():
    inst = _institutions()
    fraud = ["H203", "H303"]
    inst.loc[inst["fixmedins_code"].isin(fraud), "risk"] = 0.9
    out = inspection_lift(inst, fraud, seeds=30, config=CFG, weightings=["risk"])
    assert out["plan_size"] == 6 and out["fraud_institutions"] == 2
    assert out["plans"]["risk"]["mean_found"] > out["plans"]["none"]["mean_found"]
    assert out["plans"]["risk"]["share_more"] > out["plans"]["risk"]["share_fewer"]
    json.dumps(out)


def test_config_file_and_code_lists(tmp_path):
    from models.credit import load_credit_config

    cfg = load_inspection_config(credit_config=load_credit_config(), weighting="credit")
    assert cfg.pharmacies_drawn == 2 and cfg.pharmacy_top_n == 10 and cfg.weighting == "credit"
    assert dict(cfg.grade_weights) == {"A": 1.0, "B": 2.0, "C": 4.0, "D": 8.0}
    (tmp_path / "a.csv").write_text("year,fixmedins_code\n2023,H201\n2024,H302\n", encoding="utf-8")
    (tmp_path / "b.txt").write_text("# 2023 国家飞检\nH201\n\nP01\n", encoding="utf-8")
    assert read_code_list(tmp_path / "a.csv") == ["H201", "H302"]
    assert read_code_list(tmp_path / "b.txt") == ["H201", "P01"]


def test_institution_risk_combines_label_free_shares():
    signals = pd.DataFrame({
        "fixmedins_code": ["H1", "H2", "H3", "P1", "P2"],
        "fund_amt": [1e6, 1e6, 1e6, 5e4, 0.0],
        "billing_rule_amt": [0.0, 100_000.0, 3e6, 0.0, 10.0],
        "stock_gap_ratio": [np.nan, 0.0, 0.0, 0.2, np.nan],
        "dialysis_over_3_share": [0.0, 0.5, np.nan, np.nan, np.nan],
    })
    r = institution_risk(signals.iloc[::-1]).set_index("fixmedins_code")
    assert r.loc["H1", "risk"] == 0.0 and r.loc["H1", "risk_zh"].endswith("无疑点信号")
    assert r.loc["H2", "billing_rule_share"] == pytest.approx(0.1)
    assert r.loc["H2", "risk"] == pytest.approx(1 - 0.9 * 0.5)                # either signal may be real
    assert r.loc["H3", "billing_rule_share"] == 1.0 == r.loc["H3", "risk"]     # shares are clipped to 1
    assert r.loc["P1", "risk"] == pytest.approx(0.2) and "进销存" in r.loc["P1", "risk_zh"]
    assert r.loc["P2", "risk"] == 1.0                                          # rule hits without fund usage
    assert institution_risk(signals[["fixmedins_code"]])["risk"].eq(0).all()  # no signal columns: no risk


def test_risk_signals_from_warehouse_count_only_the_institutions_own_rule_hits(tmp_path):
    import duckdb

    wh = tmp_path / "w.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("""CREATE TABLE fixmedins AS SELECT * FROM (VALUES ('H1', 'hospital'), ('P1', 'pharmacy'),
                   ('X1', 'agency')) t(fixmedins_code, fixmedins_type)""")
    con.execute("""CREATE TABLE feat_fixmedins AS SELECT 'H1' AS fixmedins_code, 1e6::DOUBLE AS fund_amt_365,
                   0.0::DOUBLE AS stock_gap_ratio, 0.25::DOUBLE AS dialysis_weeks_over_3_share""")
    con.execute("""CREATE TABLE feat_pharmacy AS SELECT 'P1' AS fixmedins_code, 5e4::DOUBLE AS fund_amt_365,
                   0.3::DOUBLE AS stock_gap_ratio""")
    con.execute("""CREATE TABLE rule_hits AS SELECT * FROM (VALUES ('H1', 'line', 1000.0), ('H1', 'mdtrt', 500.0),
                   ('H1', 'fixmedins', 2000.0), ('H1', 'setl', 9e5), ('H1', 'psn', 9e5), ('P1', 'setl', 100.0))
                   t(fixmedins_code, entity_type, amount_at_risk)""")
    con.close()
    s = risk_signals_from_warehouse(wh).set_index("fixmedins_code")
    assert list(s.index) == ["H1", "P1"]
    assert s.loc["H1", "billing_rule_amt"] == 3500.0 and s.loc["P1", "billing_rule_amt"] == 0.0
    assert s.loc["H1", "dialysis_over_3_share"] == 0.25 and pd.isna(s.loc["P1", "dialysis_over_3_share"])
    r = institution_risk(s.reset_index()).set_index("fixmedins_code")["risk"]
    assert r["H1"] == pytest.approx(1 - (1 - 0.0035) * 0.75) and r["P1"] == pytest.approx(0.3)

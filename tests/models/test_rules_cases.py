"""Every rule on hand-built cases (tests/models/rules_mini.py): a hit, a near miss, a refund.

A refunded settlement (refd_setl_flag '1') and the settlement it cancels never produce hits: a refunded
violation is not money lost.
"""

from __future__ import annotations

import json

import pytest

# rule id -> (the settlement or entity that must be hit, settlements that must not be hit)
CASES = {
    "liangku_gender": ("GENDER-HIT", ["GENDER-NEAR", "GENDER-REFUND", "RF-GENDER-REFUND"]),
    "liangku_age": ("AGE-HIT", ["AGE-NEAR", "AGE-REFUND", "RF-AGE-REFUND"]),
    "liangku_insurance_type": ("INS-HIT", ["INS-NEAR", "INS-REFUND", "RF-INS-REFUND"]),
    "liangku_care_setting": ("CARE-HIT", ["CARE-NEAR", "CARE-REFUND"]),
    "liangku_institution_level": ("LEVEL-HIT", ["LEVEL-NEAR", "LEVEL-REFUND"]),
    "liangku_course_length": ("COURSE-HIT", ["COURSE-NEAR", "COURSE-REFUND"]),
    "liangku_duplicate_charge": ("DUP-HIT", ["DUP-NEAR", "DUP-REFUND"]),
    "liangku_frequency": ("FREQ-HIT", ["FREQ-NEAR", "FREQ-REFUND"]),
    "liangku_period_frequency": ("PERIOD-HIT", ["PERIOD-NEAR", "PERIOD-REFUND", "PERIOD-HIT-1"]),
    "liangku_primary_secondary_surgery": ("SURG-HIT", ["SURG-NEAR", "SURG-REFUND"]),
    "price_over_cap": ("PRICE-HIT", ["PRICE-NEAR", "PRICE-REFUND"]),
    "dead_person": ("DEAD-HIT", ["DEAD-NEAR", "DEAD-REFUND"]),
    "split_admission": ("SPLIT-HIT", ["SPLIT-NEAR", "SPLIT-OTHER", "SPLIT-REFUND", "SPLIT-HIT-1"]),
    "bed_hold": ("STAY-BEDHOLD", ["STAY-THEFT", "STAY-BEDHOLD-REFUND"]),
    "card_theft": ("BUY-THEFT", ["BUY-BEDHOLD", "BUY-THEFT-NEAR", "BUY-THEFT-REFUND", "BUY-BEDHOLD-REFUND"]),
    "over_prescription": ("RX-HIT", ["RX-NEAR", "RX-REFUND", "RX-HIT-1"]),
    "third_party_liability": ("THIRD-HIT", ["THIRD-NEAR", "THIRD-REFUND"]),
}
# The evidence lines and amount of each hit: lines of the hit settlement (or, for the line rules, the one line).
EVIDENCE = {
    "liangku_gender": (["GENDER-HIT-L00"], 20.0),
    "liangku_course_length": (["COURSE-HIT-L14", "COURSE-HIT-L15"], 40.0),
    "liangku_duplicate_charge": (["DUP-HIT-L01"], 50.0),
    "liangku_frequency": (["FREQ-HIT-L03"], 45.0),  # the charge off the regular 07:00 posting time
    "liangku_primary_secondary_surgery": (["SURG-HIT-L01"], 1000.0),
    "price_over_cap": (["PRICE-HIT-L00"], 24.0),
    "split_admission": (["SPLIT-HIT-L00"], 20.0),
    "over_prescription": (["RX-HIT-L00"], 36.0),  # the 90 yuan refill times the 60 of 150 days over the need
    "third_party_liability": (["THIRD-HIT-L00"], 10.0),
}


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_hit_near_miss_and_refund(case_hits, rule_id):
    hit_setl, clean = CASES[rule_id]
    hits = case_hits[case_hits.rule_id == rule_id]
    hits = hits[~hits.setl_id.str.contains("-VIOL-")]  # the look-alike cases: test_rules_lookalikes.py
    assert list(hits.setl_id) == [hit_setl], hits[["setl_id", "message_zh"]].to_string()
    assert not set(hits.setl_id) & set(clean)


@pytest.mark.parametrize("rule_id", sorted(EVIDENCE))
def test_evidence_and_amount_at_risk(case_hits, rule_id):
    lines, amount = EVIDENCE[rule_id]
    hit = case_hits[(case_hits.rule_id == rule_id) & (case_hits.setl_id == CASES[rule_id][0])].iloc[0]
    assert list(hit.evidence) == lines
    assert float(hit.amount_at_risk) == amount


def test_institution_level_rule(case_hits):
    hits = case_hits[case_hits.rule_id == "vbp_noncompliance"]
    assert list(hits.entity_id) == ["V1"] and list(hits.entity_type) == ["fixmedins"]
    detail = json.loads(hits.detail.iloc[0])
    assert detail["nonselected_share"] == 0.65 and detail["quantity"] == 200
    assert float(hits.amount_at_risk.iloc[0]) == 2600.0  # the 130 non-selected units at 20 yuan


def test_every_hit_carries_its_rule_basis_and_message(case_hits):
    from features.contract import ENTITY_TYPES, FRAUD_TYPES
    from models.rules import pack_version
    from models.rules.config import load_config

    from schemes_mini import SCHEME_RULES  # the institution schemes have their own region (test_rules_schemes)

    config = load_config()
    assert set(case_hits.rule_id) == {r.id for r in config.enabled_rules} - SCHEME_RULES
    for hit in case_hits.itertuples():
        rule = config.rule(hit.rule_id)
        assert (hit.rule_version, hit.typology_id, hit.severity) == (rule.version, rule.typology_id, rule.severity)
        assert hit.pack_version == pack_version()
        assert hit.entity_type in ENTITY_TYPES and hit.typology_id in FRAUD_TYPES
        assert hit.basis_zh and "{" not in hit.basis_zh and "{" not in hit.message_zh
        assert len(hit.hit_id) == 32 and hit.run_id and hit.event_time is not None
        assert isinstance(json.loads(hit.detail), dict)
    liangku = case_hits[case_hits.rule_id.str.startswith("liangku_")]
    assert liangku.basis_zh.str.contains("知识点 b").all()  # the knowledge point: batch and spreadsheet row


def test_messages_speak_to_the_doctor(case_hits):
    msg = dict(zip(case_hits.rule_id, case_hits.message_zh))
    assert msg["liangku_gender"] == "“限女性药”限女性使用，本患者为男性，医保基金不予支付。"
    assert msg["split_admission"].startswith("患者2025-03-08出院后7天即再次入住同一机构")
    assert "已收4次" in msg["liangku_frequency"]
    assert "65.0%" in msg["vbp_noncompliance"] and "42.0%" in msg["vbp_noncompliance"]


def test_an_age_hit_keeps_no_birth_date(case_hits):
    # the age in days on the fee's day is the birth date once the fee's date is subtracted: a hit keeps
    # it only for a limit in days (新生儿), where it is the evidence; the warehouse keeps no birth date
    hit = case_hits[(case_hits.rule_id == "liangku_age") & case_hits.psn_no.str.startswith("P-AGE-HIT")]
    detail = json.loads(hit.detail.iloc[0])
    assert detail["age_years"] == 30 and detail["age_max"] >= 1 and detail["age_days"] is None

"""precheck(visit): the same rule SQL on one visit and the person's history; the same hits as the batch run."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from models.rules.precheck import Prechecker, Visit, VisitError, precheck

# The batch hits of these settlements must come back from precheck, with the same hit ids. Card theft
# cannot: the stay it needs is settled only at discharge, after the purchase (see docs/rules.md).
SAME_AS_BATCH = ["GENDER-HIT", "AGE-HIT", "INS-HIT", "CARE-HIT", "LEVEL-HIT", "COURSE-HIT", "DUP-HIT", "FREQ-HIT",
                 "PERIOD-HIT", "SURG-HIT", "PRICE-HIT", "DEAD-HIT", "SPLIT-HIT", "STAY-BEDHOLD", "RX-HIT",
                 "THIRD-HIT"]


@pytest.fixture(scope="module")
def checker(case_warehouse):
    with Prechecker(case_warehouse) as c:
        yield c


@pytest.mark.parametrize("setl_id", SAME_AS_BATCH)
def test_precheck_gives_the_batch_hits(checker, case_region_rows, case_hits, setl_id):
    hits = checker.check(case_region_rows.visit_dict(setl_id))
    batch = case_hits[(case_hits.setl_id == setl_id) & (case_hits.rule_id != "vbp_noncompliance")]
    assert sorted(h.hit_id for h in hits) == sorted(batch.hit_id)
    assert {h.message_zh for h in hits} == set(batch.message_zh)
    assert all(h.run_id == "precheck" for h in hits)


@pytest.mark.parametrize("setl_id", ["GENDER-NEAR", "SPLIT-NEAR", "RX-NEAR", "PERIOD-NEAR", "BUY-THEFT-NEAR"])
def test_near_misses_stay_clean(checker, case_region_rows, setl_id):
    assert checker.check(case_region_rows.visit_dict(setl_id)) == []


def test_a_refund_visit_has_no_hits(checker, case_region_rows):
    visit = case_region_rows.visit_dict("GENDER-HIT")
    visit["setl"] = visit["setl"] | {"refd_setl_flag": "1"}
    assert checker.check(visit) == []


def test_lookback_bounds_the_history(case_warehouse, case_region_rows):
    visit = case_region_rows.visit_dict("SPLIT-HIT")  # the earlier stay ended 7 days before
    assert [h.rule_id for h in precheck(visit, warehouse=case_warehouse)] == ["split_admission"]
    assert precheck(visit, warehouse=case_warehouse, lookback_days=3) == []


def test_hit_to_dict_is_plain(checker, case_region_rows):
    (hit,) = checker.check(case_region_rows.visit_dict("PRICE-HIT"))
    d = hit.to_dict()
    assert d["rule_id"] == "price_over_cap" and d["evidence"] == ["PRICE-HIT-L00"] and d["amount_at_risk"] == 24.0
    assert d["detail"]["excess"] == 4.0 and isinstance(d["event_time"], str)
    assert hit.amount_at_risk == Decimal("24.00")


def test_only_the_rules_that_can_fire_run(checker, case_region_rows):
    outpatient = Visit.from_dict(case_region_rows.visit_dict("PRICE-HIT"))
    assert checker.relevant_rules(outpatient) == ("price_over_cap",)
    stay = Visit.from_dict(case_region_rows.visit_dict("FREQ-HIT"))
    assert {"liangku_frequency", "split_admission", "bed_hold"} <= set(checker.relevant_rules(stay))


def test_a_visit_before_settlement_needs_only_keys_and_lines():
    visit = Visit.from_dict({
        "setl": {"setl_id": "S9", "mdtrt_id": "M9", "psn_no": "P9", "fixmedins_code": "H3", "med_type": "11",
                 "setl_time": "2025-03-01 10:00:00"},
        "lines": [{"bkkp_sn": "L1", "fee_ocur_time": "2025-03-01 09:30:00", "hilist_code": "X", "hilist_name": "药",
                   "list_type": "101", "med_chrgitm_type": "09", "cnt": 2, "pric": "3.5",
                   "det_item_fee_sumamt": 7}]})
    assert visit.setl.medfee_sumamt == Decimal("7.00") and visit.setl.refd_setl_flag == "0"
    assert visit.lines[0].psn_no == "P9" and visit.mdtrt.begntime == datetime(2025, 3, 1, 10)


@pytest.mark.parametrize("change, where", [
    (lambda v: v["lines"][0].update(pric="12,50"), "visit.lines[0].pric"),
    (lambda v: v["lines"][0].pop("hilist_code"), "visit.lines[0].hilist_code"),
    (lambda v: v["setl"].update(setl_time="yesterday"), "visit.setl.setl_time"),
    (lambda v: v["setl"].update(fixmedins_code=3.0), "visit.setl.fixmedins_code"),
    (lambda v: v["diagnoses"][0].pop("diag_code"), "visit.diagnoses[0].diag_code"),
    (lambda v: v["lines"][0].update(setl_id="OTHER"), "visit.lines[0].setl_id"),
])
def test_a_malformed_visit_names_the_field(case_region_rows, change, where):
    visit = case_region_rows.visit_dict("PRICE-HIT")
    change(visit)
    with pytest.raises(VisitError) as err:
        Visit.from_dict(visit)
    assert str(err.value).startswith(where + ":"), str(err.value)

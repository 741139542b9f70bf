"""Honest look-alikes are not flagged, the violations they resemble are — on both engines.

The cases are ``rules_mini.lookalike_cases`` (part of the case warehouse): ``*-ALIKE-*`` is honest care
that resembles a violation (a chemotherapy cycle 14 days after the last, a cut at home, a death in hospital
settled a week later, a refill at the pharmacy), ``*-VIOL-*`` the violation next to it. Each is checked by
the batch run (every rule's SQL over the warehouse) and by the kernels (``Prechecker(engine="python")``)
on every settlement of the case's person; and each look-alike is shown to be kept clean by the rule's own
exemption or threshold: with that one parameter changed, both engines flag it.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from models.rules.precheck import Prechecker

LOOKALIKES = {
    "split_admission": ["SPLIT-ALIKE-CHEMO", "SPLIT-ALIKE-STAGED", "SPLIT-ALIKE-TRANSFER"],
    "third_party_liability": ["THIRD-ALIKE-HOME", "THIRD-ALIKE-CUT", "THIRD-ALIKE-SPORTS", "THIRD-ALIKE-PAID"],
    "dead_person": ["DEAD-ALIKE-LATE"],
    "over_prescription": ["RX-ALIKE-EARLY", "RX-ALIKE-SHOP", "RX-ALIKE-ONEPLACE", "RX-ALIKE-COURSE", "RX-NEAR",
                          "RX-ALIKE-SWAP", "RX-ALIKE-WARD"],
}
VIOLATIONS = {
    "split_admission": ["SPLIT-VIOL-CANCER"],
    "third_party_liability": ["THIRD-VIOL-PLACE", "THIRD-VIOL-Y96"],
    "over_prescription": ["RX-VIOL-SHOP", "RX-VIOL-STOCKED"],
}
# The look-alike, the parameters that keep it clean, and values without that protection.
GUARDS = [
    ("SPLIT-ALIKE-CHEMO", "split_admission", {"planned_care_prefixes": ["Z99.9"]}),
    ("SPLIT-ALIKE-STAGED", "split_admission", {"related_diagnosis": "any"}),
    ("SPLIT-ALIKE-TRANSFER", "split_admission", {"same_institution": False}),
    ("THIRD-ALIKE-HOME", "third_party_liability", {"work_place_characters": "06"}),
    ("THIRD-ALIKE-SPORTS", "third_party_liability", {"work_place_characters": "36"}),
    ("RX-ALIKE-ONEPLACE", "over_prescription", {"min_prescribers": 1}),
    ("RX-ALIKE-COURSE", "over_prescription", {"min_elapsed_days": 10}),
    ("RX-NEAR", "over_prescription", {"min_excess_days": 15, "tolerance": 0.1}),
    ("RX-ALIKE-SWAP", "over_prescription", {"min_backed_share": 0.0}),
]


def _person_settlements(region, setl_id: str) -> list[str]:
    psn = next(s["psn_no"] for s in region.rows["setl_d"] if s["setl_id"] == setl_id)
    return [s["setl_id"] for s in region.rows["setl_d"] if s["psn_no"] == psn and s["refd_setl_flag"] == "0"]


@pytest.fixture(scope="module")
def kernels(case_warehouse):
    with Prechecker(case_warehouse, engine="python", sessions=1) as checker:
        yield checker


@pytest.mark.parametrize("rule_id, setl_id", [(r, s) for r, ids in LOOKALIKES.items() for s in ids])
def test_a_lookalike_is_not_flagged(case_hits, case_region_rows, kernels, rule_id, setl_id):
    settlements = _person_settlements(case_region_rows, setl_id)
    batch = case_hits[(case_hits.rule_id == rule_id) & case_hits.setl_id.isin(settlements)]
    assert batch.empty, batch[["setl_id", "message_zh"]].to_string()
    for s in settlements:
        assert [h for h in kernels.check(case_region_rows.visit_dict(s)) if h.rule_id == rule_id] == [], s


@pytest.mark.parametrize("rule_id, setl_id", [(r, s) for r, ids in VIOLATIONS.items() for s in ids])
def test_the_violation_it_resembles_is_flagged(case_hits, case_region_rows, kernels, rule_id, setl_id):
    settlements = _person_settlements(case_region_rows, setl_id)
    batch = case_hits[(case_hits.rule_id == rule_id) & case_hits.setl_id.isin(settlements)]
    assert list(batch.setl_id) == [setl_id], batch[["setl_id", "message_zh"]].to_string()
    found = [h for h in kernels.check(case_region_rows.visit_dict(setl_id)) if h.rule_id == rule_id]
    assert [h.hit_id for h in found] == list(batch.hit_id)


@pytest.mark.parametrize("setl_id, rule_id, unguarded", GUARDS)
def test_each_lookalike_is_kept_clean_by_its_rule(case_warehouse, case_region_rows, setl_id, rule_id, unguarded):
    from models.rules.config import load_config

    config = load_config()
    changed = replace(config, rules=tuple(
        replace(r, params=MappingProxyType({**r.params, **unguarded}), precheck_when=MappingProxyType({}))
        if r.id == rule_id else r for r in config.rules))
    for engine in ("sql", "python"):
        with Prechecker(case_warehouse, config=changed, engine=engine, sessions=1) as checker:
            flagged = [s for s in _person_settlements(case_region_rows, setl_id)
                       if any(h.rule_id == rule_id for h in checker.check(case_region_rows.visit_dict(s)))]
        assert flagged, engine


def test_a_third_party_hit_names_who_should_pay(case_hits):
    liable = dict(zip(case_hits.setl_id, case_hits.message_zh))
    assert "应由交通事故责任方支付" in liable["THIRD-HIT"]
    assert "应由工伤保险支付" in liable["THIRD-VIOL-PLACE"] and "应由工伤保险支付" in liable["THIRD-VIOL-Y96"]


def test_over_prescription_puts_the_excess_at_risk(case_hits):
    import json

    hit = case_hits[case_hits.rule_id == "over_prescription"].set_index("setl_id").loc["RX-VIOL-SHOP"]
    detail = json.loads(hit.detail)
    assert (detail["window_supply_days"], detail["elapsed_days"], detail["prescribers"]) == (120.0, 90.0, 2)
    assert detail["institutions"] == 3 and detail["supply_ratio"] == 1.33 and detail["excess_days"] == 30.0
    assert float(hit.amount_at_risk) == 22.5  # the 90 yuan refill times the 30 of 120 days over the need

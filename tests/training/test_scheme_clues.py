"""The institution-scheme rules (issue 16) turn into clues: every institution, pharmacy or doctor they hit on
the tiny region is on the clue list, with the typology, the rule as a source and at least the rule's amount.
"""

from __future__ import annotations

import duckdb

SCHEME_RULES = ("drug_substitution", "phantom_purchase", "over_examination", "fake_treatment")


def test_every_scheme_hit_becomes_a_clue_with_its_amount(tiny_warehouse, tiny_trained):
    from models.bundle import ScorerBundle
    from models.screening import screen

    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        hits = con.execute("""
            SELECT h.rule_id, h.typology_id, h.entity_type, h.entity_id, h.amount_at_risk, f.fixmedins_type
            FROM rule_hits h LEFT JOIN fixmedins f ON f.fixmedins_code = h.entity_id
            WHERE list_contains(?, h.rule_id)""", [list(SCHEME_RULES)]).fetchall()
    assert {h[0] for h in hits} == set(SCHEME_RULES)  # the tiny region has every scheme
    _, result = tiny_trained
    clues = screen(tiny_warehouse, ScorerBundle.load(result.report_dir / "scorer_bundle.joblib"), run_id="s1").clues
    by_entity = {(c["entity_type"], c["entity_id"]): c for c in clues}
    for rule_id, typology, entity_type, entity_id, amount, kind in hits:
        level = "pharmacy" if kind == "pharmacy" else entity_type
        clue = by_entity.get((level, entity_id))
        assert clue is not None, (rule_id, entity_id)
        assert typology in clue["typologies"] and "rule" in clue["sources"]
        assert clue["amount_at_risk"] >= float(amount)
        assert any(h["rule_id"] == rule_id for h in clue["rule_hits"])


def test_a_provider_is_judged_on_the_typologies_it_commits_itself(tiny_warehouse):
    """A hospital's rule amount counts its billing, admissions and schemes, not its patients' over-supply or
    stolen cards (those are the patients' clues); a person's counts every typology but the deductions."""
    import numpy as np

    from models.levels import load_level, verification_typologies

    provider, person = verification_typologies("fixmedins"), verification_typologies("psn")
    assert {"split_admission", "bed_hold", "over_examination", "drug_substitution"} <= set(provider)
    assert not {"over_prescription", "card_theft", "dead_person", "third_party_liability"} & set(provider)
    assert {"over_prescription", "card_theft", "third_party_liability"} <= set(person)
    assert not {"duplicate_charge", "price_over_cap"} & set(person)  # settled by deduction
    frame = load_level(tiny_warehouse, "fixmedins").frame
    own = sum(frame[f"rh_amt_{t}"].fillna(0) for t in provider)
    assert np.allclose(frame["rule_amount"], own)
    assert (frame["rh_amt_over_prescription"].fillna(0) > 0).any()  # seen in its claims, not counted


def test_every_ring_candidate_of_the_graph_is_a_clue(tiny_warehouse, tiny_trained):
    """A community the graph itself calls a ring candidate is a clue on that evidence (source ``graph``),
    whatever the ring model says: on a region with few labelled rings that model cannot tell rings apart."""
    from models.bundle import ScorerBundle
    from models.screening import screen

    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        candidates = {r[0] for r in con.execute(
            "SELECT community_id FROM graph_communities WHERE in_ring_candidates AND size >= 3").fetchall()}
    assert candidates  # the tiny region has rings
    _, result = tiny_trained
    bundle = ScorerBundle.load(result.report_dir / "scorer_bundle.joblib")
    # no model score and no rule amount is enough here: what is left is the graph's own evidence
    clues = screen(tiny_warehouse, bundle, run_id="s2", min_p=1.01, min_rule_amount=1e12).clues
    assert {c["entity_id"] for c in clues if c["entity_type"] == "ring"} == candidates
    assert {c["entity_type"] for c in clues} == {"ring"} and all(c["sources"] == ["graph"] for c in clues)

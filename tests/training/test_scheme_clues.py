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

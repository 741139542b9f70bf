"""Outcomes back to the rules: investigators decide screened clues, and `yibao rules list` shows each rule's
confirmation rate (查实率), equal to a hand count over the decided clues."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from serving.clues.access import User

ADMIN = User("admin1", "admin")


def test_rules_list_shows_confirmation_rates_that_match_a_hand_count(service_data, tmp_path):
    from serving.cli import app
    from serving.clues.store import open_store

    url = f"sqlite:///{tmp_path / 'clues.db'}"
    screened = [c for c in service_data.clues if c["rule_hits"]]
    assert len(screened) >= 4
    with open_store(url, identity_vault=service_data.vault) as store:
        store.upsert_clues("screen-test", service_data.clues)
        ids = {c["clue_key"]: c["id"] for c in store.list(ADMIN, limit=1000)["items"]}
        hand: dict[str, list[int]] = {}
        by_typology: dict[str, list[int]] = {}
        by_level: dict[str, list[int]] = {}
        for i, c in enumerate(screened):
            clue_id = ids[f"{c['entity_type']}:{c['entity_id']}"]
            store.transition(clue_id, "assigned", ADMIN)
            confirmed = i % 3 != 2  # two confirmed, then one dismissed, ...
            if confirmed:
                store.transition(clue_id, "verifying", ADMIN, "现场核查")
                store.transition(clue_id, "confirmed", ADMIN, "查实", confirmed_amount=100.0)
            else:
                store.transition(clue_id, "dismissed", ADMIN, "核查无问题")
            for counts, keys in ((hand, {h["rule_id"] for h in c["rule_hits"]}), (by_typology, set(c["typologies"])),
                                 (by_level, {c["entity_type"]})):
                for key in keys:
                    n_k = counts.setdefault(key, [0, 0])
                    n_k[0] += 1
                    n_k[1] += confirmed

    runner = CliRunner()
    res = runner.invoke(app, ["rules", "list", "--json"], env={"YIBAO_CLUE_DB": url})
    assert res.exit_code == 0, res.output
    listed = json.loads(res.stdout)
    rules = {r["id"]: r for r in listed["rules"]}
    shown = {rid: [r["outcomes"]["decided"], r["outcomes"]["confirmed"]] for rid, r in rules.items() if r["outcomes"]}
    assert shown == {rid: nk for rid, nk in hand.items() if rid in rules}
    for rid, (n, k) in shown.items():
        o = rules[rid]["outcomes"]
        assert o["rate"] == k / n and o["low"] <= o["rate"] <= o["high"] and o["text_zh"].startswith(f"{k}/{n} = ")

    # per typology and per model level (the clue's entity type), the same hand count
    for view, counts in (("typology", by_typology), ("level", by_level)):
        got = {k: [o["decided"], o["confirmed"]] for k, o in listed[f"outcomes_by_{view}"].items()}
        assert got == counts and len(counts) >= 2, view

    res = runner.invoke(app, ["rules", "list"], env={"YIBAO_CLUE_DB": url})
    assert res.exit_code == 0 and "查实率" in res.output and "按违规类型" in res.output and "按模型层级" in res.output

"""Code coverage: codes that match nothing are named, and a rule family gone silent is warned about."""

from __future__ import annotations

import duckdb

from models.rules.config import DEFAULT_CONFIG, load_config
from models.rules.coverage import unmatched_in_warehouse
from models.rules.engine import run_rules
from features.warehouse import copy_warehouse

_DUPLICATE_PACK_ITEMS = """(SELECT hilist_code FROM rule_pack WHERE rule_kind = 'duplicate_charge'
                           UNION SELECT related_code FROM rule_pack WHERE rule_kind = 'duplicate_charge')"""


def test_a_rule_family_whose_codes_the_extract_writes_otherwise_is_warned_about(tiny_warehouse, tmp_path):
    wh = tmp_path / "w.duckdb"
    copy_warehouse(tiny_warehouse, wh)
    config = load_config(DEFAULT_CONFIG)
    before = run_rules(wh, config)
    assert before.rule("liangku_duplicate_charge").hits > 0
    assert not [r for r in before.silent_rules if r.level == "warning"]

    # the extract writes these service items as 9-digit 价格项目 codes the ingest could not place
    with duckdb.connect(str(wh)) as con:
        con.execute(f"""UPDATE fee_list_d SET hilist_code = substr(hilist_code, 3, 9)
                        WHERE hilist_code IN {_DUPLICATE_PACK_ITEMS}""")
    after = run_rules(wh, config)

    assert after.rule("liangku_duplicate_charge").hits == 0
    warned = {(r.rule_id, r.code_kind) for r in after.silent_rules if r.level == "warning"}
    assert ("liangku_duplicate_charge", "item") in warned
    assert not any(kind == "drug" for _, kind in warned)  # the drug codes still match
    forms = {c.form for c in after.unmatched_codes}
    assert forms == {"price_code"}
    assert unmatched_in_warehouse(wh) == list(after.unmatched_codes)
    assert sum(c.lines for c in after.unmatched_codes) > 0

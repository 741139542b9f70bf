"""The rule kernels (models/rules/kernels) give exactly the hits of the rule SQL they re-implement.

Both paths of :class:`Prechecker` run on the same visits — ``engine="sql"`` (each rule's own SQL, the
reference) and ``engine="python"`` (the kernels) — with every rule run on every visit (``precheck_when``
switched off, so each kernel meets every kind of visit, not only those its gate lets through), and must
agree on every column of every hit but ``hit_time``: id, evidence, amount at risk, message, basis, detail.
"""

from __future__ import annotations

import json
import random
from dataclasses import fields, replace
from datetime import datetime, timedelta
from types import MappingProxyType

import duckdb
import pytest

from models.rules.kernels import KERNELS
from rules_mini import warehouse_visit

from models.rules.precheck import Hit, Prechecker

SAMPLE = 300  # settlements of the tiny region checked both ways, besides those the batch run hit
UNGATED = 80  # of which checked with every rule


def _ungated(config):
    return replace(config, rules=tuple(replace(r, precheck_when=MappingProxyType({})) for r in config.rules))


def _columns(hit: Hit) -> tuple:
    """Every column of a hit but hit_time (the clock), detail as canonical JSON."""
    return tuple(json.dumps(getattr(hit, f.name), sort_keys=True, ensure_ascii=False, default=str)
                 if f.name == "detail" else getattr(hit, f.name) for f in fields(hit) if f.name != "hit_time")


def _same(sql: Prechecker, python: Prechecker, visit: dict) -> list:
    expected, got = sql.check(visit), python.check(visit)
    a, b = sorted(map(_columns, expected)), sorted(map(_columns, got))
    assert a == b, f"{visit['setl']['setl_id']}:\n sql    {sorted(set(a) - set(b))}\n python {sorted(set(b) - set(a))}"
    return got


@pytest.fixture(scope="module")
def case_checkers(case_warehouse):
    from models.rules.config import load_config

    config = _ungated(load_config())
    with Prechecker(case_warehouse, config=config, engine="sql", sessions=1) as sql, \
            Prechecker(case_warehouse, config=config, engine="python", sessions=1) as python:
        yield sql, python


def test_every_realtime_rule_has_a_kernel(case_checkers):
    sql, python = case_checkers
    assert set(python.kernel_rules()) == {r.id for r in python.rules} and sql.kernel_rules() == ()


def test_kernels_give_the_sql_hits_on_the_cases(case_checkers, case_region_rows):
    sql, python = case_checkers
    rules = set()
    for setl in case_region_rows.rows["setl_d"]:
        rules |= {h.rule_id for h in _same(sql, python, case_region_rows.visit_dict(setl["setl_id"]))}
    assert rules == set(KERNELS) - {"card_theft"}  # card theft needs a stay settled before the purchase


def test_kernels_give_the_sql_hits_before_settlement(case_checkers, case_region_rows):
    """The visit as a pre-check sends it: no visit row, no amounts, and a person the store does not know."""
    sql, python = case_checkers
    for setl in case_region_rows.rows["setl_d"]:
        visit = case_region_rows.visit_dict(setl["setl_id"])
        visit["mdtrt"] = None
        for k in ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay", "begndate", "enddate"):
            visit["setl"].pop(k, None)
        _same(sql, python, visit)
        stranger = {**visit, "setl": visit["setl"] | {"psn_no": "NOBODY"},
                    "lines": [ln | {"psn_no": "NOBODY"} for ln in visit["lines"]],
                    "diagnoses": [d | {"psn_no": "NOBODY"} for d in visit["diagnoses"]]}
        _same(sql, python, stranger)


def test_kernels_give_the_sql_hits_when_settled_late(case_checkers, case_region_rows):
    """Every case settled 15 days after its care: more of the person's settlements are history by then —
    the stay a pharmacy purchase fell in is settled, so card theft fires in precheck too."""
    sql, python = case_checkers
    rules = set()
    for setl in case_region_rows.rows["setl_d"]:
        visit = case_region_rows.visit_dict(setl["setl_id"])
        visit["setl"]["setl_time"] = _as_datetime(visit["setl"]["setl_time"]) + timedelta(days=15)
        rules |= {h.rule_id for h in _same(sql, python, visit)}
    assert "card_theft" in rules


def test_kernels_give_the_sql_hits_on_the_tiny_region(tiny_warehouse):
    """The settlements the batch run hit and a seeded sample of the others; the first UNGATED of them with
    every rule run on them, the rest with the rules their ``precheck_when`` keeps (as the service runs)."""
    from models.rules.config import load_config

    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        hit = [r[0] for r in con.execute("SELECT DISTINCT setl_id FROM rule_hits WHERE setl_id IS NOT NULL "
                                         "ORDER BY 1").fetchall()]
        ids = [r[0] for r in con.execute("SELECT setl_id FROM setl_d ORDER BY setl_id").fetchall()]
        sample = sorted(set(hit) | set(random.Random(7).sample(ids, min(SAMPLE, len(ids)))))
        random.Random(7).shuffle(sample)
        visits = [warehouse_visit(con, s) for s in sample]
    found: dict[str, int] = {}
    for config, part in ((load_config(), visits), (_ungated(load_config()), visits[:UNGATED])):
        with Prechecker(tiny_warehouse, config=config, engine="sql", sessions=1) as sql, \
                Prechecker(tiny_warehouse, config=config, engine="python", sessions=1) as python:
            for visit in part:
                for h in _same(sql, python, visit):
                    found[h.rule_id] = found.get(h.rule_id, 0) + 1
    assert len(visits) >= SAMPLE and sum(found.values()) > 100, found
    assert len(found) >= 12, found  # the sample exercises most kernels


def test_a_rule_without_kernel_runs_its_sql(case_warehouse, case_region_rows, monkeypatch):
    """A partial set of kernels is correct: auto falls back to the SQL, python refuses to start."""
    visit = case_region_rows.visit_dict("STAY-BEDHOLD")
    with Prechecker(case_warehouse, engine="sql", sessions=1) as sql:
        expected = sorted(map(_columns, sql.check(visit)))
    monkeypatch.delitem(KERNELS, "bed_hold")
    with Prechecker(case_warehouse, engine="auto", sessions=1) as auto:
        assert "bed_hold" not in auto.kernel_rules() and "bed_hold" in auto.relevant_rules(visit)
        assert sorted(map(_columns, auto.check(visit))) == expected
        assert "bed_hold" in {h.rule_id for h in auto.check(visit)}
    with pytest.raises(ValueError, match="no kernel for rule.*bed_hold"):
        Prechecker(case_warehouse, engine="python", sessions=1)
    with pytest.raises(ValueError, match="engine must be one of"):
        Prechecker(case_warehouse, engine="duckdb", sessions=1)


def _as_datetime(value) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def test_a_rule_pointed_at_other_sql_runs_that_sql(case_warehouse, case_region_rows, tmp_path):
    """A config whose rule names another SQL file than the one its kernel re-implements: the SQL runs."""
    from models.rules.config import SQL_DIR, load_config

    config = load_config()
    custom = tmp_path / "liangku_gender.sql"
    custom.write_text((SQL_DIR / "liangku_gender.sql").read_text(encoding="utf-8"), encoding="utf-8")
    config = replace(config, rules=tuple(replace(r, sql_path=custom) if r.id == "liangku_gender" else r
                                         for r in config.rules))
    with Prechecker(case_warehouse, config=config, sessions=1) as auto:
        assert "liangku_gender" not in auto.kernel_rules() and auto.sql_store
        assert [h.rule_id for h in auto.check(case_region_rows.visit_dict("GENDER-HIT"))] == ["liangku_gender"]
    with pytest.raises(ValueError, match="no kernel for rule.*liangku_gender"):
        Prechecker(case_warehouse, config=config, engine="python", sessions=1)


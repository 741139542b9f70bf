"""Exemptions (白名单): covered hits are set aside, not lost; they come back when the exemption ends."""

from __future__ import annotations
from datetime import date, timedelta

import duckdb
import pytest
from typer.testing import CliRunner

from models.rules.config import DEFAULT_CONFIG, load_config
from models.rules.engine import run_rules
from models.rules.exemptions import ExemptionError, add_exemption, list_exemptions, revoke_exemption
from features.warehouse import copy_warehouse

FAR = (date.today() + timedelta(days=365)).isoformat()


@pytest.fixture()
def wh(tiny_warehouse, tmp_path):
    path = tmp_path / "w.duckdb"
    copy_warehouse(tiny_warehouse, path)
    return path


def _hits(path, table="rule_hits"):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table}").df()


def _exempt(path, **kw):
    args = dict(reason="已核实，非违规", created_by="analyst1", approved_by="chief2", expires_on=FAR)
    return add_exemption(path, **(args | kw))


def test_a_rule_institution_pair_is_set_aside_and_comes_back_when_revoked(wh):
    config = load_config(DEFAULT_CONFIG)
    run_rules(wh, config)
    before = _hits(wh)
    rule, inst = before.groupby(["rule_id", "fixmedins_code"]).size().idxmax()
    covered = set(before.loc[(before.rule_id == rule) & (before.fixmedins_code == inst), "hit_id"])

    e = _exempt(wh, scope="fixmedins_code", value=inst, rule_id=rule)
    report = run_rules(wh, config)

    after, aside = _hits(wh), _hits(wh, "rule_hits_exempted")
    assert report.exempted == len(covered)
    assert set(aside.hit_id) == covered and set(aside.exemption_id) == {e.exemption_id}
    assert set(after.hit_id) == set(before.hit_id) - covered  # the other hits are untouched
    assert set(aside.columns) >= set(before.columns)  # kept whole

    revoke_exemption(wh, e.exemption_id, revoked_by="chief2", reason="复核发现确有违规")
    run_rules(wh, config)
    assert set(_hits(wh).hit_id) == set(before.hit_id) and _hits(wh, "rule_hits_exempted").empty
    with duckdb.connect(str(wh), read_only=True) as con:
        assert [a for (a,) in con.execute("SELECT action FROM rule_exemption_log ORDER BY logged_at, action").fetchall()] == [
            "add", "revoke"]


def test_a_code_exemption_covers_the_hits_whose_lines_carry_the_code(wh):
    config = load_config(DEFAULT_CONFIG)
    run_rules(wh, config)
    with duckdb.connect(str(wh), read_only=True) as con:
        code, n = con.execute("""
            SELECT l.hilist_code, count(DISTINCT h.hit_id) FROM rule_hits h
            JOIN fee_list_d l ON list_contains(h.evidence, l.bkkp_sn)
            WHERE h.rule_id LIKE 'liangku_%' GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1""").fetchone()
    written = code[2:] if code.startswith("00") and code.isdigit() else code.lower()  # any form: canonicalised
    _exempt(wh, scope="hilist_code", value=written)
    report = run_rules(wh, config)
    assert report.exempted >= n > 0
    with duckdb.connect(str(wh), read_only=True) as con:
        assert con.execute("""SELECT count(*) FROM rule_hits h JOIN fee_list_d l
                              ON list_contains(h.evidence, l.bkkp_sn) WHERE l.hilist_code = ?""", [code]).fetchone() == (0,)


def test_an_expired_exemption_covers_nothing(wh):
    config = load_config(DEFAULT_CONFIG)
    run_rules(wh, config)
    inst = _hits(wh).fixmedins_code.dropna().iloc[0]
    _exempt(wh, scope="fixmedins_code", value=inst, expires_on=date.today().isoformat(),
            today=date.today())
    assert list_exemptions(wh, today=date.today() + timedelta(days=1)) == []
    assert len(list_exemptions(wh, include_ended=True, today=date.today() + timedelta(days=1))) == 1


@pytest.mark.parametrize("change,field", [
    ({"approved_by": "analyst1"}, "approved_by"), ({"expires_on": "2000-01-01"}, "expires_on"),
    ({"scope": "region"}, "scope"), ({"reason": " "}, "reason"), ({"value": ""}, "value"),
    ({"rule_id": "no_such_rule", "known_rules": {"split_admission"}}, "rule"),
])
def test_an_exemption_needs_a_reason_another_approver_and_a_future_expiry(wh, change, field):
    kw = {"scope": "psn_no", "value": "P1"} | change
    with pytest.raises(ExemptionError, match=field):
        _exempt(wh, **kw)


def test_precheck_does_not_remind_an_exempted_hit(wh):
    from models.rules.precheck import Prechecker
    from rules_mini import warehouse_visit

    config = load_config(DEFAULT_CONFIG)
    run_rules(wh, config)
    hits = _hits(wh)
    row = hits[hits.rule_id.str.startswith("liangku_") & (hits.entity_type == "line")].iloc[0]
    with duckdb.connect(str(wh), read_only=True) as con:
        visit = warehouse_visit(con, row.setl_id)
    with Prechecker(wh) as checker:
        assert row.hit_id in {h.hit_id for h in checker.check(visit)}
    code = [ln["hilist_code"] for ln in visit["lines"] if ln["bkkp_sn"] == row.entity_id][0]
    _exempt(wh, scope="hilist_code", value=code, rule_id=row.rule_id)
    with Prechecker(wh) as checker:
        assert row.hit_id not in {h.hit_id for h in checker.check(visit)}
        assert len(checker.exemptions) == 1


def test_cli_add_list_revoke(wh):
    from serving.cli import app

    runner = CliRunner()
    base = ["--warehouse", str(wh)]
    out = runner.invoke(app, ["rules", "exempt", "add", "--scope", "fixmedins_code", "--value", "H1",
                              "--rule", "split_admission", "--reason", "计划性化疗", "--by", "a1", "--approver", "c2",
                              "--expires", FAR, "--json", *base])
    assert out.exit_code == 0, out.output
    listed = runner.invoke(app, ["rules", "exempt", "list", "--json", *base])
    assert '"value": "H1"' in listed.stdout
    same = runner.invoke(app, ["rules", "exempt", "add", "--scope", "psn_no", "--value", "P", "--reason", "x",
                               "--by", "a1", "--approver", "a1", "--expires", FAR, *base])
    assert same.exit_code == 2 and "审批人" in same.output

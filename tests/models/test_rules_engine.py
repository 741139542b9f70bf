"""The batch run: idempotent hit ids, incremental --since runs, disabled rules, the run log."""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import duckdb
import pytest

from models.rules.config import load_config
from models.rules.engine import RuleSqlError, run_rules


def _hits(path):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("SELECT rule_id, hit_id, setl_id, run_id, event_time FROM rule_hits").df()


def test_rerun_replaces_and_never_duplicates(case_copy):
    before = _hits(case_copy)
    report = run_rules(case_copy)
    after = _hits(case_copy)
    assert report.hits == len(after) == len(before)
    assert set(after.hit_id) == set(before.hit_id) and after.hit_id.is_unique
    assert set(after.run_id) == {report.run_id}
    with duckdb.connect(str(case_copy), read_only=True) as con:
        runs = con.execute("SELECT run_id, hits, pack_version, rules FROM rule_runs ORDER BY started_at").fetchall()
    assert runs[-1][0] == report.run_id and runs[-1][1] == report.hits
    assert "split_admission" in runs[-1][3]


def test_since_judges_only_later_settlements_but_reads_history(case_copy):
    first = _hits(case_copy)
    report = run_rules(case_copy, since="2025-07-01")
    after = _hits(case_copy)
    new_run = after[after.run_id == report.run_id]
    assert (new_run.event_time >= "2025-07-01").all()
    # hits before the window are kept, hits in it were replaced, nothing is duplicated
    assert set(after.hit_id) == set(first.hit_id) and after.hit_id.is_unique
    # over-prescription needs the earlier prescriptions (before --since) as history
    report = run_rules(case_copy, since="2025-04-29", rule_ids=["over_prescription"])
    assert [r.hits for r in report.rules] == [1]


def test_full_run_removes_hits_of_disabled_rules(case_copy):
    config = load_config()
    rules = tuple(replace(r, enabled=False) if r.id == "split_admission" else r for r in config.rules)
    report = run_rules(case_copy, replace(config, rules=rules))
    assert report.removed_rules == ("split_admission",)
    assert "split_admission" not in set(_hits(case_copy).rule_id)


def test_thresholds_come_from_the_config(case_copy):
    config = load_config()
    strict = tuple(replace(r, params=MappingProxyType({**r.params, "max_gap_days": 5}))
                   if r.id == "split_admission" else r for r in config.rules)
    report = run_rules(case_copy, replace(config, rules=strict), rule_ids=["split_admission"])
    assert report.rules[0].hits == 0  # the 7-day readmission is no longer within the window


def test_a_broken_rule_sql_names_its_file(case_copy, tmp_path, monkeypatch):
    config = load_config()
    bad = tmp_path / "bad.sql"
    bad.write_text("SELECT 'line' AS entity_type, no_such_column FROM claim_line", encoding="utf-8")
    rules = tuple(replace(r, sql_path=bad) if r.id == "liangku_gender" else r for r in config.rules)
    with pytest.raises(RuleSqlError, match=r"bad\.sql: rule liangku_gender: Binder Error.*no_such_column"):
        run_rules(case_copy, replace(config, rules=rules))
    bad.write_text("SELECT 'line' AS entity_type FROM claim_line", encoding="utf-8")
    with pytest.raises(RuleSqlError, match="has no column 'entity_id'"):
        run_rules(case_copy, replace(config, rules=rules))
    rules = tuple(replace(r, sql_path=bad) if r.id == "price_over_cap" else r for r in config.rules)
    with pytest.raises(RuleSqlError, match=r"rule price_over_cap: the SQL uses \[\], the config gives \['tolerance_yuan'\]"):
        run_rules(case_copy, replace(config, rules=rules))


def test_unknown_rule_and_bad_since(case_copy):
    with pytest.raises(KeyError):
        run_rules(case_copy, rule_ids=["no_such_rule"])
    with pytest.raises(ValueError, match="--since"):
        run_rules(case_copy, since="last tuesday")

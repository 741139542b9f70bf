"""The rule config: read once into frozen objects; a malformed one names file, line, rule and field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.rules.config import (DEFAULT_CONFIG, DETERMINISTIC_TYPOLOGY_IDS, RuleConfigError, load_config,
                                 set_enabled)
from models.rules.engine import check_rules, load_pack_temp, prepare_session


def test_committed_config_covers_every_deterministic_typology():
    config = load_config()
    assert {r.typology_id for r in config.rules} == set(DETERMINISTIC_TYPOLOGY_IDS)
    assert all(r.enabled for r in config.rules)
    assert config.rule("split_admission").params["max_gap_days"] == 15
    assert config.hosp_level["05"] == 2 and config.hosp_level["11"] == 0
    with pytest.raises(Exception):
        config.rules[0].id = "x"  # frozen


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CONFIG.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "rules.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if needle in line)


@pytest.mark.parametrize("old, new, rule_id, field, message", [
    ("severity: high\n    basis_zh: 《医疗保障基金使用监督管理条例》第十五条 不得分解住院",
     "severity: urgent\n    basis_zh: 《医疗保障基金使用监督管理条例》第十五条 不得分解住院",
     "split_admission", "severity", "must be one of high, medium, low"),
    ("max_gap_days: 15", "max_gap_dayz: 15", "split_admission", "params", "uses $max_gap_days"),
    ("typology_id: bed_hold", "typology_id: bedhold", "bed_hold", "typology_id", "unknown typology id"),
    ("    enabled: true\n    version: 1\n    severity: high\n    basis_zh: 吉医保联〔2024〕14号",
     "    enabled: yes please\n    version: 1\n    severity: high\n    basis_zh: 吉医保联〔2024〕14号",
     "dead_person", "enabled", "must be true or false"),
    ("tolerance_yuan: 0.01", "tolerance_yuan: 0.01\n      tolerence: 1", "price_over_cap", "params.tolerence",
     "not used by price_over_cap.sql"),
    ("precheck_when: {person_died: true}", "precheck_when: {person_dead: true}", "dead_person",
     "precheck_when.person_dead", "unknown condition"),
    ("precheck_when: {line: {in_pack: [gender]}}", "precheck_when: {line: {in_pak: [gender]}}", "liangku_gender",
     "precheck_when.line.in_pak", "unknown line condition"),
    ("precheck_when: {med_type: $purchase_med_types,", "precheck_when: {med_type: $purchase_med_typez,", "card_theft",
     "precheck_when.med_type", "$purchase_med_typez is not a parameter"),
    ("precheck_when: {diag_prefix: $injury_prefixes}", "precheck_when: {diag_prefix: S}", "third_party_liability",
     "precheck_when.diag_prefix", "non-empty list"),
])
def test_malformed_rule_names_file_line_rule_and_field(tmp_path, old, new, rule_id, field, message):
    path = _broken(tmp_path, old, new)
    with pytest.raises(RuleConfigError) as err:
        load_config(path)
    e = err.value
    assert (e.file, e.rule_id, e.field) == (str(path), rule_id, field)
    assert message in str(e) and str(path) in str(e)
    assert e.line is not None and e.line > 1


def test_line_number_points_at_the_bad_field(tmp_path):
    path = _broken(tmp_path, "severity: medium\n    basis_zh: 《医疗保障基金使用监督管理条例》第十五条 不得超量开药",
                   "severity: severe\n    basis_zh: 《医疗保障基金使用监督管理条例》第十五条 不得超量开药")
    with pytest.raises(RuleConfigError) as err:
        load_config(path)
    assert err.value.line == _line_of(path, "severity: severe")
    assert re.match(rf"{re.escape(str(path))}:{err.value.line}, 规则 rule over_prescription, 字段 field severity",
                    str(err.value))


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = _broken(tmp_path, "  - id: bed_hold\n", "  - id: bed_hold\n   name_zh: [unclosed\n")
    with pytest.raises(RuleConfigError, match="YAML syntax") as err:
        load_config(path)
    assert err.value.line is not None


def test_duplicate_id_and_missing_field(tmp_path):
    path = _broken(tmp_path, "id: card_theft", "id: bed_hold")
    with pytest.raises(RuleConfigError, match="the same id appears twice"):
        load_config(path)
    path = _broken(tmp_path, "    name_zh: 分解住院\n", "")
    with pytest.raises(RuleConfigError) as err:
        load_config(path)
    assert (err.value.rule_id, err.value.field) == ("split_admission", "name_zh")


def test_message_placeholder_must_be_a_detail_field(tmp_path):
    import duckdb

    path = _broken(tmp_path, "message_zh: 患者{prev_discharge}出院后", "message_zh: 患者{prev_dischage}出院后")
    config = load_config(path)  # the placeholder is checked against the SQL when the rules are bound
    con = duckdb.connect()
    for table in ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info", "fixmedins", "hilist",
                  "stock_moves"):  # the base views read them all (stock_moves: stock_backing)
        from features.warehouse import table_ddl
        from features.contract import TABLES

        con.execute(table_ddl(TABLES[table]))
    load_pack_temp(con)
    prepare_session(con, config)
    with pytest.raises(RuleConfigError) as err:
        check_rules(con, [config.rule("split_admission")])
    assert err.value.field == "message_zh" and "{prev_dischage}" in str(err.value)
    assert "prev_discharge" in str(err.value)  # lists the fields there are


def test_enable_disable_keeps_comments(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8"), encoding="utf-8")
    config = set_enabled(path, "bed_hold", False)
    assert not config.rule("bed_hold").enabled and config.rule("card_theft").enabled
    text = path.read_text(encoding="utf-8")
    assert "# 规则库配置" in text and text.count("enabled: false") == 1
    assert set_enabled(path, "bed_hold", True).rule("bed_hold").enabled
    assert path.read_text(encoding="utf-8") == DEFAULT_CONFIG.read_text(encoding="utf-8")
    with pytest.raises(KeyError):
        set_enabled(path, "no_such_rule", False)

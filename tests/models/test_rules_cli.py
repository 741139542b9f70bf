"""``yibao rules ...`` through typer's CliRunner, with --json (only JSON on stdout)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from models.rules.config import DEFAULT_CONFIG
from serving.cli import app


@pytest.fixture()
def cli(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the user config copy (data/rules.yaml) and yibao.toml are looked up here
    monkeypatch.delenv("YIBAO_RULES_CONFIG", raising=False)
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> dict:
        res = runner.invoke(app, ["rules", *args, "--json"])
        assert res.exit_code == code, res.output
        return json.loads(res.stdout)

    return run


def test_list_and_summary(cli):
    rules = cli("list")
    assert rules["config"] == str(DEFAULT_CONFIG) and len(rules["rules"]) == 22
    split = next(r for r in rules["rules"] if r["id"] == "split_admission")
    assert split["typology_zh"] == "分解住院" and split["params"]["max_gap_days"] == 15 and split["enabled"]
    summary = cli("list", "--summary")
    assert summary["points"] == 15618
    by_file = {f["file"]: f for f in summary["files"]}
    assert (by_file["batch8-1-item-frequency.xlsx"]["points"], by_file["batch8-1-item-frequency.xlsx"]["published"]) \
        == (67, 69)
    assert all(f["matches"] for name, f in by_file.items() if name != "batch8-1-item-frequency.xlsx")


def test_run_since_and_disable(cli, case_copy, tmp_path):
    report = cli("run", "--warehouse", str(case_copy))
    # 23: RX-VIOL-STOCKED (over-prescription at a pharmacy whose stock records back it) is the latest case
    assert report["hits"] == 23 and {r["rule_id"] for r in report["rules"]} >= {"bed_hold", "card_theft"}
    report = cli("run", "--warehouse", str(case_copy), "--since", "2025-07-01", "--rule", "bed_hold")
    assert report["since"] == "2025-07-01 00:00:00" and [r["hits"] for r in report["rules"]] == [1]

    switched = cli("disable", "bed_hold")
    user_copy = tmp_path / "data" / "rules.yaml"
    assert switched == {"config": "data/rules.yaml", "created": True, "rule_id": "bed_hold", "enabled": False}
    assert user_copy.is_file() and DEFAULT_CONFIG.read_text(encoding="utf-8").count("enabled: false") == 0
    listed = cli("list")
    assert listed["config"] == "data/rules.yaml"
    assert not next(r for r in listed["rules"] if r["id"] == "bed_hold")["enabled"]
    report = cli("run", "--warehouse", str(case_copy))
    assert report["removed_rules"] == ["bed_hold"]
    assert cli("enable", "bed_hold")["enabled"] is True


def test_backtest_diffs_a_proposed_config(cli, case_warehouse, tmp_path):
    proposed = tmp_path / "proposed.yaml"
    text = DEFAULT_CONFIG.read_text(encoding="utf-8").replace("max_gap_days: 15", "max_gap_days: 5")
    proposed.write_text(text, encoding="utf-8")
    report = cli("backtest", "--config", str(proposed), "--warehouse", str(case_warehouse))
    diffs = {d["rule_id"]: d for d in report["rules"]}
    split = diffs["split_admission"]
    assert split["status"] == "changed" and split["param_changes"] == {"max_gap_days": [15, 5]}
    # SPLIT-HIT and SPLIT-VIOL-CANCER (the look-alike cases), both readmitted after 7 days
    assert (split["current_hits"], split["proposed_hits"], split["only_current"]) == (2, 0, 2)
    assert split["amount_delta"] == -40.0
    assert all(d["status"] == "same" and d["hits_delta"] == 0 for r, d in diffs.items() if r != "split_admission")
    assert report["current_eval"] is None  # the case warehouse has no labels


def test_errors_are_clear(cli, tmp_path, case_warehouse):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("severity: medium", "severity: x", 1),
                   encoding="utf-8")
    res = CliRunner().invoke(app, ["rules", "list", "--config", str(bad)])
    assert res.exit_code == 2 and "字段 field severity" in res.output and "bad.yaml:" in res.output
    res = CliRunner().invoke(app, ["rules", "run", "--warehouse", str(tmp_path / "none.duckdb")])
    assert res.exit_code == 2 and "warehouse not found" in res.output
    res = CliRunner().invoke(app, ["rules", "eval", "--warehouse", str(case_warehouse)])
    assert res.exit_code == 2 and "no labels" in res.output
    res = CliRunner().invoke(app, ["rules", "disable", "no_such_rule"])
    assert res.exit_code == 2 and "unknown rule" in res.output


@pytest.mark.slow
def test_eval_on_tiny(cli, tiny_warehouse):
    report = cli("eval", "--warehouse", str(tiny_warehouse))
    headline = [s for s in report["scores"] if s["headline"]]
    # 20 typologies, over-examination at two levels; its doctors with 1-3 visits are too few to judge
    assert len(headline) == 21 and all(s["recall"] >= 0.6 for s in headline if s["level"] != "prac")
    assert all(s["precision"] == 1.0 for s in headline if s["typology_id"] in ("dead_person", "duplicate_charge"))

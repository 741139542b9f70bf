"""``yibao rules shadow``: a changed rule runs beside the live one on new data and raises no clue."""

from __future__ import annotations

import json

import duckdb
from typer.testing import CliRunner

from models.rules.config import DEFAULT_CONFIG, load_config
from models.rules.shadow import shadow_report
from serving.cli import app


def _rules(*args: str, code: int = 0) -> dict:
    res = CliRunner().invoke(app, ["rules", *args, "--json"])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout) if code == 0 else {"output": " ".join(res.output.split())}


def test_a_shadow_runs_beside_the_live_rule_and_raises_no_clue(case_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("YIBAO_RULES_CONFIG", raising=False)
    wh = ("--warehouse", str(case_copy))
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(DEFAULT_CONFIG.read_text(encoding="utf-8").replace("max_gap_days: 15", "max_gap_days: 5"),
                        encoding="utf-8")
    split = _rules("shadow", "start", "split_admission", "--config", str(proposed), "--by", "ana", "--since",
                   "2025-01-01", "--days", "30", "--note", "再入院间隔 15 → 5 天", *wh)
    assert split["rule_id"] == "split_admission" and split["data_from"] == "2025-01-01 00:00:00"
    # the committed config, unchanged: the shadow must find exactly the live rule's hits
    same = _rules("shadow", "start", "bed_hold", "--config", str(DEFAULT_CONFIG), "--by", "ana", "--since",
                  "2025-01-01", *wh)
    assert same["rule_id"] == "bed_hold" and same["days"] == 30  # the default observation period
    again = _rules("shadow", "start", "split_admission", "--config", str(proposed), "--by", "ana", *wh, code=2)
    assert "已有影子运行" in again["output"]
    waiting = {r["shadow"]["rule_id"]: r for r in _rules("shadow", "report", *wh)["shadows"]}
    assert waiting["split_admission"]["status_zh"].startswith("待运行") and waiting["split_admission"]["shadow_hits"] == 0

    run = _rules("run", *wh)
    assert {s["rule_id"]: (s["hits"], s["error"]) for s in run["shadows"]} == {"split_admission": (0, None),
                                                                                "bed_hold": (1, None)}
    with duckdb.connect(str(case_copy), read_only=True) as con:
        live = con.execute("SELECT DISTINCT psn_no FROM rule_hits WHERE rule_id = 'split_admission'").fetchall()
        (shadow_rows,), = con.execute("SELECT count(*) FROM rule_hits WHERE run_id LIKE 'shadow-%'").fetchall()
    assert len(live) == 2 and shadow_rows == 0  # the live rule still fires; nothing of the shadow is a hit

    reports = {r["shadow"]["rule_id"]: r for r in _rules("shadow", "report", *wh)["shadows"]}
    s = reports["split_admission"]
    assert (s["live_hits"], s["shadow_hits"], s["only_live"], s["only_shadow"], s["both"]) == (2, 0, 2, 0, 0)
    assert s["param_changes"] == {"max_gap_days": [15, 5]} and s["live_amount"] > 0 == s["shadow_amount"]
    assert s["days_observed"] > 30 and s["complete"] and s["status_zh"] == "观察期已满"
    b = reports["bed_hold"]
    assert b["live_hits"] == b["shadow_hits"] == b["both"] == 1 and b["only_live"] == b["only_shadow"] == 0
    assert b["param_changes"] == {}

    # the clue store's decided clues: one confirmed clue of a person the change would no longer flag
    (hit_person,), other = live[0], "NOT-HIT"
    decided = [{"entity_type": t, "entity_id": i, "rule_ids": r, "confirmed": c} for t, i, r, c in (
        ("psn", hit_person, ["split_admission", "bed_hold"], True), ("psn", other, ["split_admission"], False),
        ("fixmedins", "H-ELSE", ["card_theft"], True))]
    rep, = shadow_report(case_copy, load_config(), "split_admission", decided=decided)
    assert (rep.decided_clues, rep.decided_dropped, rep.confirmed_dropped) == (1, 1, 1)
    rep, = shadow_report(case_copy, load_config(), "bed_hold", decided=decided)
    assert rep.decided_dropped == 0

    stopped = _rules("shadow", "stop", "split_admission", "--by", "ana", "--reason", "不采用", *wh)
    assert stopped["stopped_by"] == "ana"
    assert [s["rule_id"] for s in _rules("run", *wh)["shadows"]] == ["bed_hold"]
    assert [r["shadow"]["rule_id"] for r in _rules("shadow", "report", *wh)["shadows"]] == ["bed_hold"]
    assert len(_rules("shadow", "report", "--all", *wh)["shadows"]) == 2
    with duckdb.connect(str(case_copy), read_only=True) as con:
        log = con.execute("SELECT action, actor FROM rule_shadow_log ORDER BY logged_at, action DESC").fetchall()
    assert log == [("start", "ana"), ("start", "ana"), ("stop", "ana")]


def test_a_shadow_needs_a_rule_of_the_proposed_config_and_a_name(case_copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    wh = ("--warehouse", str(case_copy))
    out = _rules("shadow", "start", "no_such_rule", "--config", str(DEFAULT_CONFIG), "--by", "ana", *wh, code=2)
    assert "没有规则 no_such_rule" in out["output"]
    out = _rules("shadow", "start", "bed_hold", "--config", str(DEFAULT_CONFIG), "--by", " ", *wh, code=2)
    assert "登记人" in out["output"]
    assert "没有进行中的影子运行" in _rules("shadow", "stop", "bed_hold", "--by", "ana", *wh, code=2)["output"]

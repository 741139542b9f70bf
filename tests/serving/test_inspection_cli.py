"""``yibao credit`` and ``yibao inspection plan|lift`` on the tiny warehouse (the session fixture with features)."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner
from features.warehouse import copy_warehouse


def test_cli_credit_and_inspection_on_tiny(tiny_warehouse, tiny_trained, tmp_path):
    from serving.cli import app

    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, wh)
    bundle = tiny_trained[1].report_dir / "scorer_bundle.joblib"
    runner = CliRunner()
    res = runner.invoke(app, ["credit", "--warehouse", str(wh), "--bundle", str(bundle), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["institutions"] == len(out["ratings"]) > 0 and sum(out["by_grade"].values()) == out["institutions"]
    assert all(r["explanation_zh"].startswith("信用评分") and r["previous_grade"] is None for r in out["ratings"])
    res = runner.invoke(app, ["credit", "--warehouse", str(wh), "--json"])
    assert all(r["previous_grade"] for r in json.loads(res.stdout)["ratings"])

    codes = [r["fixmedins_code"] for r in out["ratings"] if r["fixmedins_type"] != "pharmacy"]
    (tmp_path / "recent.txt").write_text(codes[0] + "\n", encoding="utf-8")
    (tmp_path / "before.csv").write_text("fixmedins_code\n" + "\n".join(codes[1:4]) + "\n", encoding="utf-8")
    args = ["inspection", "plan", "--warehouse", str(wh), "--seed", "2026", "--exclude", str(tmp_path / "recent.txt"),
            "--lookback-from", str(tmp_path / "before.csv"), "--out", str(tmp_path / "plan"), "--json"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    plan = json.loads(res.stdout)
    assert codes[0] not in {t["fixmedins_code"] for t in plan["targets"]}
    assert plan["by_selection"]["pharmacy_draw"] == 2 and plan["by_selection"]["lookback"] >= 1
    csv = pd.read_csv(tmp_path / "plan" / "plan-2026.csv", dtype=str)
    assert csv["fixmedins_code"].tolist() == [t["fixmedins_code"] for t in plan["targets"]]
    assert "随机种子 (公开): <b>2026</b>" in (tmp_path / "plan" / "plan-2026.html").read_text(encoding="utf-8")
    assert json.loads(runner.invoke(app, args).stdout)["targets"] == plan["targets"]      # same seed, same plan

    res = runner.invoke(app, ["inspection", "lift", "--warehouse", str(wh), "--bundle", str(bundle), "--seeds", "5",
                              "--json"])
    assert res.exit_code == 0, res.output
    lift = json.loads(res.stdout)
    assert set(lift["plans"]) == {"none", "risk", "credit", "credit_rules_only"} and lift["plan_size"] > 0

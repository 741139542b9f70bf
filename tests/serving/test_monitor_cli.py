"""``yibao monitor`` on the tiny warehouse (the session fixture with features) with its trained bundle:
score and feature drift reported with their numbers; a JSON summary; a plain table."""

from __future__ import annotations

import json

from typer.testing import CliRunner


def test_cli_monitor_reports_drift_with_its_numbers(tiny_warehouse, tiny_trained):
    from models.bundle import ScorerBundle
    from serving.cli import app

    bundle = tiny_trained[1].report_dir / "scorer_bundle.joblib"
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "--warehouse", str(tiny_warehouse), "--bundle", str(bundle), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["months"] and out["tests"]["feature_drift"] == len(ScorerBundle.load(bundle).features["setl"])
    (score,) = [f for f in out["findings"] if f["kind"] == "score_drift"]
    assert "PSI=" in score["message_zh"] and "临界值" in score["message_zh"] and score["threshold"] >= 0.1
    assert all(f["after"] > f["threshold"] for f in out["findings"] if f["kind"] == "feature_drift")
    assert out["alarms"] == sum(f["level"] == "alarm" for f in out["findings"])

    res = runner.invoke(app, ["monitor", "--warehouse", str(tiny_warehouse), "--notices"])
    assert res.exit_code == 0, res.output
    assert "监测" in res.output and "检验数" in res.output

"""The `yibao` command line end to end: the main job and the foundation commands, with --json."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from serving.cli import app

runner = CliRunner()


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
def test_main_job_runs_every_built_step(small_demo):
    """The README's main job, ``yibao demo --preset small --seed 7 --json``, run once per session by the
    ``small_demo`` fixture (tests/serving/conftest.py) and shared with the end-to-end and evidence tests."""
    out, work = small_demo, small_demo["workdir"]
    steps = out["steps"]
    assert steps["simulate"]["rows"]["fee_list_d"] > 100_000
    assert all(t["quarantined"] == 0 for t in steps["ingest"]["tables"].values())
    assert steps["rules"]["hits"] > 0 and steps["rules"]["amount_at_risk"] > 0
    assert steps["graph"]["counts"]["communities"] > 0
    assert steps["features"]["tables"]["feat_psn"]["rows"] == steps["simulate"]["rows"]["psn_info"]
    assert (work / "warehouse.duckdb").is_file()
    assert steps["train"]["model_version"] == "1" and (work / "report" / "report.html").is_file()
    assert steps["promote"]["promoted"]  # the first model becomes champion
    assert steps["screen"]["clues"] > 0 and steps["screen"]["upsert"]["new"] == steps["screen"]["clues"]
    assert out["clues"] and (work / "clues.db").is_file()
    noise = [ln for ln in out["_stderr"].splitlines()
             if any(w in ln for w in ("Warning", "WARNING", " INFO ", "mlflow", "Registered model", "Created version"))]
    assert not noise, noise[:5]  # the libraries' own lines only with `yibao --verbose`


@pytest.mark.slow
def test_features_built_again_are_the_same_to_the_last_bit(small_demo, tmp_path):
    """Same seed, same clue list: the feature build of ``small`` is exact, not merely close. With DuckDB's
    parallel sums ``amt_365`` differed by up to 6e-11 between builds, and the demo wrote 347 or 348 clues."""
    import shutil

    import duckdb

    from features.build import build_features

    copy = tmp_path / "again.duckdb"
    shutil.copy(small_demo["warehouse"], copy)
    tables = ("feat_psn", "feat_prac", "feat_fixmedins", "feat_pharmacy")
    build_features(copy, tables=tables)
    con = duckdb.connect()
    con.execute(f"ATTACH '{small_demo['warehouse']}' AS demo (READ_ONLY); ATTACH '{copy}' AS again (READ_ONLY)")
    for table in tables:
        (rows,), = con.execute(f"SELECT count(*) FROM demo.{table}").fetchall()
        (differ,), = con.execute(f"SELECT count(*) FROM (SELECT * FROM demo.{table} "
                                 f"EXCEPT ALL SELECT * FROM again.{table})").fetchall()
        assert rows > 0 and differ == 0, (table, differ)


def test_simulate_ingest_quarantine_with_json(tmp_path):
    region, wh = tmp_path / "r", tmp_path / "w.duckdb"
    sim = _json(runner.invoke(app, ["simulate", "--preset", "tiny", "--persons", "300", "--seed", "2", "--out",
                                    str(region), "--json"]))
    assert sim["rows"]["psn_info"] == 300
    ing = _json(runner.invoke(app, ["ingest", str(region), "--warehouse", str(wh), "--dev", "--json"]))
    assert ing["tables"]["fee_list_d"]["loaded"] == sim["rows"]["fee_list_d"]
    again = _json(runner.invoke(app, ["ingest", str(region), "--warehouse", str(wh), "--dev", "--json"]))
    assert again["tables"]["fee_list_d"]["unchanged"] == sim["rows"]["fee_list_d"]
    q = _json(runner.invoke(app, ["quarantine", "--warehouse", str(wh), "--json"]))
    assert q["rows"] == []


def test_simulate_a_lake_and_ingest_it(tmp_path):
    """``--layout lake``: the table gains a partitions column; the lake ingests like a plain folder; a CSV
    lake is refused with a clear error."""
    region = tmp_path / "lake"
    r = runner.invoke(app, ["simulate", "--preset", "tiny", "--persons", "200", "--seed", "2", "--out", str(region),
                            "--layout", "lake"])
    assert r.exit_code == 0 and "分区 partitions" in r.output and "数据湖分区" in r.output
    assert list((region / "setl_d").glob("month=*/region=*/part-00000.parquet"))
    ing = _json(runner.invoke(app, ["ingest", str(region), "--warehouse", str(tmp_path / "w.duckdb"), "--dev",
                                    "--json"]))
    assert ing["tables"]["setl_d"]["loaded"] > 0 and ing["tables"]["setl_d"]["quarantined"] == 0
    r = runner.invoke(app, ["simulate", "--preset", "tiny", "--persons", "200", "--out", str(tmp_path / "c"),
                            "--layout", "lake", "--format", "csv"])
    assert r.exit_code == 2 and "Parquet" in r.output


def test_clear_errors_for_missing_inputs(tmp_path):
    r = runner.invoke(app, ["ingest", str(tmp_path / "nowhere"), "--warehouse", str(tmp_path / "w.duckdb")])
    assert r.exit_code == 2 and "source folder not found" in r.output
    r = runner.invoke(app, ["quarantine", "--warehouse", str(tmp_path / "none.duckdb")])
    assert r.exit_code == 2 and "warehouse not found" in r.output
    r = runner.invoke(app, ["simulate", "--preset", "county", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "unknown preset" in r.output


def test_the_clue_table_reads_at_80_columns(monkeypatch):
    """At 80 columns the reason keeps most of the width and the name sits under the entity; wide terminals
    get every column."""
    from serving import cli_screen

    clue = {"entity_type": "fixmedins", "entity_id": "H22010300003", "entity_name": "宽城区第3人民医院",
            "p_fraud": 0.14, "amount_at_risk": 269081.0, "sources": ["rule"],
            "reasons": [{"text_zh": "该定点医疗机构规则命中涉及金额(元) 48,031.82 元，同类中位数 150,631.87 元"}]}
    for width, has_sources in ((80, False), (160, True)):
        import io

        from rich.console import Console

        out = Console(width=width, record=True, file=io.StringIO())
        monkeypatch.setattr(cli_screen, "console", out)
        cli_screen.print_clues([clue])
        text = out.export_text()
        assert all(len(line) <= width for line in text.splitlines())
        assert "宽城区第3人民医院" in text and "37,671" in text
        assert ("来源" in text) == has_sources
    doctor = clue | {"entity_type": "prac", "entity_id": "D2201020000680",
                     "entity_name": "医师 D2201020000680（南关区社区卫生服务中心17）"}
    out = Console(width=80, record=True, file=io.StringIO())
    monkeypatch.setattr(cli_screen, "console", out)
    cli_screen.print_clues([doctor])
    assert out.export_text().count("D2201020000680") == 1  # the id once, the institution under it


def test_the_ingest_table_reads_at_80_columns(tmp_path):
    region, wh = tmp_path / "r", tmp_path / "w.duckdb"
    runner.invoke(app, ["simulate", "--preset", "tiny", "--persons", "200", "--seed", "3", "--out", str(region)])
    r = runner.invoke(app, ["ingest", str(region), "--warehouse", str(wh), "--dev"], env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    table = [ln for ln in r.output.splitlines() if ln.startswith(("┃", "│"))]
    assert table and all(len(ln) <= 80 for ln in table)
    assert any("fee_list_d" in ln for ln in table) and any("setl_list_diag_d" in ln for ln in table)  # whole names
    assert "各表均为 0" in r.output  # the all-zero columns are named, not shown


def test_the_run_table_reads_at_80_columns():
    """`yibao run`'s table at 80 columns: every table's name whole (``feat_setl`` and ``feat_setl_peer_stats``
    told apart), the status and engine under the stage, the fingerprint cut to 8 characters; wide terminals
    get the whole fingerprint and a column each."""
    import io

    from rich.console import Console

    from serving.cli_run import _stage_table
    from serving.pipeline import PipelineReport, StageReport

    tables = {name: {"rows": 1_234_567, "fingerprint": "0123456789abcdef"}
              for name in ("feat_setl", "feat_setl_peer_stats", "rule_hits_exempted")}
    report = PipelineReport("/data/work/warehouse.duckdb", "spark", [
        StageReport("features", "ran", 31.3, tables, engine="spark"),
        StageReport("screen", "skipped", 0.0, {"setl_scores": tables["feat_setl"]})], 42.0)
    for width, narrow in ((80, True), (160, False)):
        out = Console(width=width, record=True, file=io.StringIO())
        out.print(_stage_table(report, narrow=narrow))
        text = out.export_text()
        assert all(len(line) <= width for line in text.splitlines())
        assert all(name in text for name in tables)
        assert ("0123456789abcdef" in text) == (not narrow) and "01234567" in text
        assert "已运行 spark" in text if narrow else "已运行" in text and "spark" in text
        assert "已是最新" in text


def test_a_run_without_a_registered_model_says_what_to_do(tiny_warehouse, tmp_path):
    """A bureau's first `yibao run` reaches the screen stage before anyone trained a model: a clear error that
    names the registry and the commands that register one (MLflow's own was a traceback), exit code 2."""
    from features.warehouse import copy_warehouse

    work = tmp_path / "work"
    work.mkdir()
    copy_warehouse(tiny_warehouse, work / "warehouse.duckdb")
    registry = f"sqlite:///{tmp_path / 'empty-registry.db'}"
    r = runner.invoke(app, ["run", "--out", str(work), "--stages", "screen", "--tracking-uri", registry, "--dev"])
    assert r.exit_code == 2, r.output
    assert "没有模型 yibao-fraud" in r.output and "yibao train" in r.output and "--bundle" in r.output
    assert "empty-registry.db" in r.output and "Traceback" not in r.output


def test_the_command_line_runs_as_a_module_too():
    # `python -m serving.cli` once failed on a circular import (the sub-command modules import serving.cli)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "serving.cli", "rules", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Usage" in done.stdout

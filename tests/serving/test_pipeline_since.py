"""Incremental pipeline runs (yibao run --since): what a region loaded month by month judges equals the
whole region judged from the same moment.

The `tiny` region is written as a lake (month=YYYY-MM/region=... folders) and cut in two: the months before
December (with a November partition held back, as a late delivery) and the rest. The first part is run
whole; the second with ``since``. What the incremental run judges must equal what the whole region
(``tiny_warehouse``, the same seed written as folders) judged from the same moment gives, and what it does
not judge must be left as the first run wrote it.
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from features.config import load_settings
from features.warehouse import copy_warehouse
from models.bundle import BUNDLE_FILE
from models.rules.config import DEFAULT_CONFIG, load_config
from serving.cli import app
from serving.pipeline import PipelineError, fingerprint, run_pipeline

SINCE = datetime(2025, 12, 1)
LATE = "month=2025-11"  # this month's first region folder arrives with the December delivery
STAGES = ("ingest", "rules", "graph", "features", "screen")
RULES = load_config(DEFAULT_CONFIG)  # as the session's tiny warehouse was run


def _cut(lake: Path, out: Path) -> tuple[Path, Path]:
    """The lake's months before SINCE (less one late partition), and the rest (reference tables in both)."""
    first, second = out / "first", out / "second"
    late_region = sorted(p.name for p in (lake / "setl_d" / LATE).iterdir())[0]
    for table in lake.iterdir():
        if not table.is_dir():
            continue
        months = [p for p in table.iterdir() if p.name.startswith("month=")]
        if not months:  # reference tables and psn_info (by region): delivered with every extract
            shutil.copytree(table, first / table.name)
            shutil.copytree(table, second / table.name)
            continue
        for month in months:
            for region in month.iterdir():
                late = month.name == LATE and region.name == late_region
                to = second if late or month.name >= f"month={SINCE:%Y-%m}" else first
                shutil.copytree(region, to / table.name / month.name / region.name)
    return first, second


@pytest.fixture(scope="module")
def months(tiny_trained, tmp_path_factory) -> dict:
    from training.simulator import simulate

    root = tmp_path_factory.mktemp("since")
    simulate("tiny", seed=7, out=root / "lake", layout="lake")
    first, second = _cut(root / "lake", root)
    bundle = tiny_trained[1].report_dir / BUNDLE_FILE
    settings = load_settings(warehouse=root / "w" / "warehouse.duckdb", clue_db=f"sqlite:///{root / 'w.db'}")
    run_pipeline(settings, source=first, stages=STAGES, bundle_path=bundle, fingerprints=False, rules_config=RULES)
    shutil.copytree(root / "w", root / "after_first")  # the warehouse as the first month's run left it
    report = run_pipeline(settings, source=second, stages=STAGES, bundle_path=bundle, since=SINCE, rules_config=RULES)
    return {"report": report, "warehouse": settings.warehouse, "first": root / "after_first" / "warehouse.duckdb",
            "root": root, "second": second}


@pytest.fixture(scope="module")
def whole(months, tiny_warehouse, tiny_trained, tmp_path_factory) -> Path:
    """The whole region loaded at once (the session's tiny warehouse), then judged from the same moment.

    Rules judged by period (an institution's or a doctor's excess over the visits judged) give one hit per
    run over what that run judged, so the whole region is judged from the incremental run's moment too."""
    wh = tmp_path_factory.mktemp("whole") / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, wh)
    settings = load_settings(warehouse=wh, clue_db=f"sqlite:///{wh.parent / 'clues.db'}")
    run_pipeline(settings, stages=("rules", "features", "screen"), since=_late_start(months), force=True,
                 bundle_path=tiny_trained[1].report_dir / BUNDLE_FILE, rules_config=RULES, fingerprints=False)
    return wh


def _prints(warehouse: Path, sql: dict[str, str]) -> dict[str, tuple[int, str]]:
    """Fingerprints of SELECTs over the warehouse (as tables in memory: the pipeline's fingerprint reads one)."""
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{warehouse}' AS w (READ_ONLY)")
        con.execute("SET search_path = 'w.main'")
        for name, q in sql.items():
            con.execute(f"CREATE TABLE memory.main.{name} AS {q}")
        con.execute("USE memory")
        return {name: fingerprint(con, name) for name in sql}


def _late_start(months: dict) -> datetime:
    with duckdb.connect() as con:
        return con.execute(f"SELECT min(setl_time) FROM read_parquet('{months['second']}/setl_d/{LATE}/*/*.parquet')"
                           ).fetchone()[0]


@pytest.mark.slow
def test_since_moves_back_to_the_late_settlements_and_says_so(months):
    report = months["report"]
    late = _late_start(months)
    assert late < SINCE
    for stage in ("rules", "features", "screen"):
        summary = report.stage(stage).summary
        assert summary["since"] == late.isoformat(sep=" "), stage
        assert "moved back" in summary["since_note"]
    assert "since" not in report.stage("graph").summary  # the graph is built whole


@pytest.mark.slow
def test_what_the_incremental_run_judged_equals_the_whole_region_judged_from_then(months, whole):
    since = f"TIMESTAMP '{_late_start(months)}'"
    judged = {
        "hits": f"SELECT * FROM rule_hits WHERE event_time >= {since}",
        "setl": f"SELECT * FROM feat_setl WHERE setl_time >= {since}",
        "scores": f"SELECT s.* FROM setl_scores s JOIN feat_setl f USING (setl_id) WHERE f.setl_time >= {since}",
        "psn": "SELECT * FROM feat_psn",
        "graph": "SELECT * FROM graph_node_features",
    }
    got, want = _prints(months["warehouse"], judged), _prints(whole, judged)
    assert got["hits"][0] > 0 and got["setl"][0] > 0 and got["scores"][0] == got["setl"][0]
    assert got == want


@pytest.mark.slow
def test_what_it_did_not_judge_is_kept(months, whole):
    since = f"TIMESTAMP '{_late_start(months)}'"
    kept = {"setl": f"SELECT * FROM feat_setl WHERE setl_time < {since} AND setl_id NOT IN "
                    f"(SELECT setl_id FROM setl_d WHERE refd_setl_flag = '1' UNION ALL "
                    f"SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1')",
            "scores": f"SELECT s.* FROM setl_scores s JOIN feat_setl f USING (setl_id) WHERE f.setl_time < {since}"}
    assert _prints(months["warehouse"], kept) == _prints(months["first"], kept)
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{months['warehouse']}' AS now (READ_ONLY)")
        con.execute(f"ATTACH '{months['first']}' AS first (READ_ONLY)")
        (lost,) = con.execute(f"""SELECT count(*) FROM (SELECT * FROM first.rule_hits WHERE event_time < {since}
                                  EXCEPT SELECT * FROM now.rule_hits)""").fetchone()
        assert lost == 0  # every earlier hit is still there, as it was
        # hits dated before the moment that the run added: of a late settlement's earlier fee lines, or a
        # period hit (an institution's months of stock, say) that takes in the months judged
        added = con.execute(f"""SELECT h.rule_id, h.setl_id, s.setl_time FROM now.rule_hits h
                                LEFT JOIN now.setl_d s USING (setl_id)
                                WHERE h.event_time < {since} AND h.hit_id NOT IN (SELECT hit_id FROM first.rule_hits)
                                """).fetchall()
        assert all(setl is None or when >= _late_start(months) for _, setl, when in added), added
    with duckdb.connect(str(months["warehouse"]), read_only=True) as con:  # every settlement that counts has a row
        (missing,) = con.execute("""SELECT count(*) FROM setl_d s WHERE refd_setl_flag <> '1'
            AND setl_id NOT IN (SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL)
            AND setl_id NOT IN (SELECT setl_id FROM feat_setl)""").fetchone()
        assert missing == 0
        assert con.execute("SELECT count(*) FROM setl_scores").fetchone() == \
            con.execute("SELECT count(*) FROM feat_setl").fetchone()


@pytest.mark.slow
def test_auto_judges_what_was_loaded_since_and_a_rerun_skips(months, tmp_path):
    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(months["first"], wh)
    settings = load_settings(warehouse=wh, clue_db=f"sqlite:///{tmp_path / 'clues.db'}")
    result = CliRunner().invoke(app, ["run", "--source", str(months["second"]), "--out", str(tmp_path),
                                      "--stages", "ingest,rules", "--since", "auto", "--dev", "--json"])
    assert result.exit_code == 0, result.output
    rules = {st["stage"]: st for st in json.loads(result.stdout)["stages"]}["rules"]
    assert rules["summary"]["since"] == _late_start(months).isoformat(sep=" ")
    again = run_pipeline(settings, source=months["second"], stages=("ingest", "rules"), since="auto",
                         fingerprints=False, rules_config=RULES)
    assert [s.status for s in again.stages] == ["skipped", "skipped"]
    forced = run_pipeline(settings, stages=("rules",), since="auto", force=True, fingerprints=False,
                          rules_config=RULES)
    assert forced.stage("rules").summary["since"] is None  # nothing new: the stage runs whole
    assert "no settlement was loaded" in forced.stage("rules").summary["since_note"]


def test_a_bad_since_is_a_clear_error(tmp_path):
    s = load_settings(warehouse=tmp_path / "w.duckdb")
    with pytest.raises(PipelineError, match="--since"):
        run_pipeline(s, stages=("rules",), since="last month")
    (tmp_path / "warehouse.duckdb").touch()
    result = CliRunner().invoke(app, ["run", "--out", str(tmp_path), "--stages", "rules", "--since", "2025-13-01"])
    assert result.exit_code == 2 and "--since" in result.output

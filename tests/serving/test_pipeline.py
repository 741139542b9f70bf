"""The declared batch pipeline: stages in order, skipped when up to date, same content twice."""

from __future__ import annotations

import pytest

from features.config import load_settings
from serving.pipeline import PipelineError, run_pipeline
from features.warehouse import copy_warehouse

BATCH = ("ingest", "rules", "graph", "features")


@pytest.mark.slow
def test_two_runs_of_the_same_extract_give_the_same_tables_and_a_rerun_skips(tiny_region, tmp_path):
    first = load_settings(warehouse=tmp_path / "a" / "warehouse.duckdb")
    second = load_settings(warehouse=tmp_path / "b" / "warehouse.duckdb")
    a = run_pipeline(first, source=tiny_region, stages=BATCH)
    b = run_pipeline(second, source=tiny_region, stages=reversed(BATCH))  # order given does not matter

    assert [s.stage for s in a.stages] == list(BATCH) and {s.status for s in a.stages} == {"ran"}
    for sa, sb in zip(a.stages, b.stages):
        assert sa.tables == sb.tables, sa.stage  # row counts and content fingerprints
    assert a.stage("ingest").tables["fee_list_d"]["rows"] > 10_000
    assert a.stage("rules").tables["rule_hits"]["rows"] > 0

    again = run_pipeline(first, source=tiny_region, stages=BATCH)
    assert [s.status for s in again.stages] == ["skipped"] * 4
    assert again.stage("features").tables == a.stage("features").tables
    forced = run_pipeline(first, source=tiny_region, stages=("rules",), force=True)
    assert forced.stage("rules").status == "ran"
    assert forced.stage("rules").tables == a.stage("rules").tables


def test_a_changed_rule_config_reruns_the_rules_and_what_follows(tiny_warehouse, tmp_path):
    from dataclasses import replace

    from models.rules.config import load_config

    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, wh)
    s = load_settings(warehouse=wh)
    run_pipeline(s, stages=("rules", "graph"))
    config = load_config()
    fewer = replace(config, rules=tuple(replace(r, enabled=False) if r.id == "price_over_cap" else r
                                        for r in config.rules), sha256="changed")
    rep = run_pipeline(s, stages=("rules", "graph"), rules_config=fewer)
    assert [st.status for st in rep.stages] == ["ran", "ran"]
    assert rep.stage("rules").summary["typologies"].get("price_over_cap") is None


def test_unknown_stage_and_missing_source_are_clear_errors(tmp_path):
    s = load_settings(warehouse=tmp_path / "w.duckdb")
    with pytest.raises(PipelineError, match="unknown stage"):
        run_pipeline(s, stages=("ingest", "train"))
    with pytest.raises(PipelineError, match="--source"):
        run_pipeline(s, stages=("ingest",))


def test_a_fingerprint_does_not_hang_on_the_last_bits_of_a_value():
    """Sums in another order differ in their last bits, worth more as the value grows: 95/128 = 0.7421875
    (half way at the 6th decimal) as 0.7421874999999999 or 0.7421875000000001, a sum of squares of twelve
    billion (city, feat_setl_peer_stats.m2_amt) as …502.751474 or …502.751484. The same fingerprint; a
    real difference, a share off by 1e-6 or an amount off by a fen, is not."""
    import duckdb

    from serving.pipeline import fingerprint

    con = duckdb.connect()
    tables = {"a": [(0.7421874999999999, 12166768502.751474, 0.0)], "b": [(0.7421875000000001, 12166768502.751484, 0.0)],
              "share": [(0.742188, 12166768502.751474, 0.0)], "fen": [(0.7421875, 1216676.85, None)],
              "fen2": [(0.7421875, 1216676.86, None)]}
    for name, rows in tables.items():
        con.execute(f"CREATE TABLE {name} (share DOUBLE, amount DOUBLE, other DOUBLE)")
        con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?)", rows)
    prints = {name: fingerprint(con, name) for name in tables}
    assert prints["a"] == prints["b"]
    assert len({prints[n] for n in ("a", "share", "fen", "fen2")}) == 4

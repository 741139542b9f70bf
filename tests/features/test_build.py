"""Feature build on DuckDB: hand-computed values on a mini warehouse, shape and completeness on tiny."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.build import FeatureBuildError, as_of_literal, build_features, stage_blocks
from features.catalogue import TABLES, markdown
from features.warehouse import ensure_schema, write_rows

DOCS = Path(__file__).resolve().parents[2] / "docs" / "features.md"

# -- a hand-built mini warehouse --------------------------------------------------------------------
# Items: D1 a non-selected 集采 drug (25.00), D2 the selected one (12.50), E1 an exam (50.00).
HILIST = [
    dict(hilist_code="D1", hilist_name="阿莫西林胶囊", list_type="101", chrgitm_lv="01", generic_name="阿莫西林",
         vbp_flag="0", vbp_group="G1", med_chrgitm_type="09"),
    dict(hilist_code="D2", hilist_name="阿莫西林胶囊(中选)", list_type="101", chrgitm_lv="01", generic_name="阿莫西林",
         vbp_flag="1", vbp_group="G1", med_chrgitm_type="09"),
    dict(hilist_code="E1", hilist_name="X线摄影", list_type="201", chrgitm_lv="01", med_chrgitm_type="03"),
]
ITEM = {h["hilist_code"]: h for h in HILIST}
PRICE = {"D1": 25.0, "D2": 12.5, "E1": 50.0}
FIXMEDINS = [
    dict(fixmedins_code="H1", fixmedins_name="市医院", fixmedins_type="hospital", admdvs="220102", hosp_lv="05",
         beds=10),
    dict(fixmedins_code="C1", fixmedins_name="社区1", fixmedins_type="clinic", admdvs="220102", hosp_lv="11"),
    dict(fixmedins_code="C2", fixmedins_name="社区2", fixmedins_type="clinic", admdvs="220102", hosp_lv="11"),
    dict(fixmedins_code="C3", fixmedins_name="社区3", fixmedins_type="clinic", admdvs="220103", hosp_lv="11"),
    dict(fixmedins_code="P1", fixmedins_name="大药房", fixmedins_type="pharmacy", admdvs="220102"),
]
PERSONS = [
    dict(psn_no="PSN1", gend="1", brdy="1980-01-01", insutype="310", insu_admdvs="220102"),
    dict(psn_no="PSN2", gend="2", brdy="1940-01-01", insutype="390", insu_admdvs="220102", die_date="2024-05-01"),
    dict(psn_no="PSN3", gend="2", brdy="1960-06-30", insutype="390", insu_admdvs="110105"),
]
PRACTITIONERS = [
    dict(prac_code="DR1", fixmedins_code="H1", caty="A03"),
    dict(prac_code="DR2", fixmedins_code="C1", caty="A02"),
]
# setl_id, psn, institution, med_type, settlement time, [(item, cnt, prd_days)], doctor, refund of
SETTLEMENTS = [
    # pharmacy P1: 100.00 (Sat), 200.00 (Sun 20:30), 50.00 (Tue) are round, 37.50 is not
    ("SP1", "PSN1", "P1", "41", "2024-06-01 10:00:00", [("D1", 4, None)], None, None),
    ("SP2", "PSN1", "P1", "41", "2024-06-02 20:30:00", [("D1", 8, None)], None, None),
    ("SP3", "PSN1", "P1", "41", "2024-06-04 11:00:00", [("D1", 2, None)], None, None),
    ("SP4", "PSN1", "P1", "41", "2024-06-05 11:00:00", [("D2", 3, None)], None, None),
    # clinics: 1, 2 and 3 exams per visit (peer group: the three clinics)
    ("SC1", "PSN1", "C1", "11", "2024-04-05 09:00:00", [("E1", 1, None)], "DR2", None),
    ("SC2", "PSN1", "C2", "11", "2024-04-15 09:00:00", [("E1", 2, None)], None, None),
    ("SC3", "PSN1", "C3", "11", "2024-04-16 09:00:00", [("E1", 3, None)], None, None),
    # PSN1 admitted at H1 from 04-01 to 04-10; the clinic visit SC1 on 04-05 falls inside the stay
    ("SH1", "PSN1", "H1", "21", "2024-04-10 10:00:00", [("E1", 1, None)], "DR1", None),
    # PSN2 died on 2024-05-01 and still settles
    ("SH2", "PSN2", "H1", "11", "2024-05-10 09:00:00", [("E1", 1, None)], "DR1", None),
    # PSN3: the same drug twice, 30 days' supply each, 10 days apart
    ("SH3", "PSN3", "H1", "11", "2024-03-01 09:00:00", [("D1", 1, 30)], "DR1", None),
    ("SH4", "PSN3", "H1", "11", "2024-03-11 09:00:00", [("D1", 1, 30)], "DR1", None),
    # a settlement and its refund: neither counts
    ("SO1", "PSN1", "H1", "11", "2024-06-10 09:00:00", [("E1", 2, None)], "DR1", None),
    ("SR1", "PSN1", "H1", "11", "2024-06-10 12:00:00", [("E1", -2, None)], "DR1", "SO1"),
]
STOCK = [dict(fixmedins_code="P1", hilist_code="D1", month="2024-06", opening_qty=2.0, in_qty=3.0, out_qty=5.0,
              closing_qty=0.0)]
AS_OF = "2024-06-30"


def _mini_tables() -> dict[str, pd.DataFrame]:
    setl, mdtrt, fee = [], [], []
    for n, (sid, psn, inst, med, t, lines, dr, refund_of) in enumerate(SETTLEMENTS):
        amt = sum(PRICE[i] * c for i, c, _ in lines)
        begin = "2024-04-01 08:00:00" if sid == "SH1" else t
        mdtrt.append(dict(mdtrt_id="M" + sid, psn_no=psn, fixmedins_code=inst, med_type=med, begntime=begin,
                          endtime=t, chfpdr_code=dr, adm_dept_codg="A03", ipt_days=9 if sid == "SH1" else 0))
        setl.append(dict(setl_id=sid, mdtrt_id="M" + sid, psn_no=psn, fixmedins_code=inst, med_type=med,
                         insutype="310", setl_time=t, medfee_sumamt=amt, fund_pay_sumamt=0, hifp_pay=0, psn_pay=amt,
                         acct_pay=0, insu_admdvs=next(p["insu_admdvs"] for p in PERSONS if p["psn_no"] == psn),
                         refd_setl_flag="1" if refund_of else "0", init_setl_id=refund_of))
        for k, (item, cnt, prd) in enumerate(lines):
            fee.append(dict(bkkp_sn=f"F{n}{k}", setl_id=sid, mdtrt_id="M" + sid, psn_no=psn, fixmedins_code=inst,
                            fee_ocur_time=t, hilist_code=item, hilist_name=ITEM[item]["hilist_name"],
                            list_type=ITEM[item]["list_type"], med_chrgitm_type=ITEM[item]["med_chrgitm_type"],
                            cnt=cnt, pric=PRICE[item], det_item_fee_sumamt=PRICE[item] * cnt, chrgitm_lv="01",
                            bilg_dr_code=dr, prd_days=prd))
    return {"fixmedins": pd.DataFrame(FIXMEDINS), "psn_info": pd.DataFrame(PERSONS),
            "practitioner": pd.DataFrame(PRACTITIONERS), "hilist": pd.DataFrame(HILIST),
            "mdtrt_d": pd.DataFrame(mdtrt), "setl_d": pd.DataFrame(setl), "fee_list_d": pd.DataFrame(fee),
            "stock_moves": pd.DataFrame(STOCK)}


def make_mini_warehouse(path: Path) -> Path:
    with duckdb.connect(str(path)) as con:
        ensure_schema(con)
        for name, df in _mini_tables().items():
            con.register("df", df)
            write_rows(con, name, "df")
            con.unregister("df")
    return path


@pytest.fixture
def mini(tmp_path) -> Path:
    return make_mini_warehouse(tmp_path / "mini.duckdb")


def _row(warehouse: Path, table: str, key: str, value: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        df = con.execute(f"SELECT * FROM {table} WHERE {key} = ?", [value]).df()
    assert len(df) == 1, (table, value)
    return df.iloc[0].to_dict()


def test_pharmacy_features_by_hand(mini):
    report = build_features(mini, as_of=AS_OF)
    assert report.as_of == "2024-06-30 23:59:59" and not report.rule_hits and not report.graph
    p = _row(mini, "feat_pharmacy", "fixmedins_code", "P1")
    assert p["n_setl_30"] == 4 and p["amt_30"] == pytest.approx(387.5)
    assert p["round_share"] == pytest.approx(0.75)  # 3 of 4 purchases at round amounts
    assert p["weekend_share"] == pytest.approx(0.5)
    assert p["evening_share"] == pytest.approx(0.25)
    # 进销存: D1 billed 14 against opening 2 + in 3 → 9; D2 billed 3 with no stock record → 3
    assert p["has_stock_records"] == 1
    assert p["stock_gap_qty"] == pytest.approx(12.0)
    assert p["stock_gap_ratio"] == pytest.approx(12 / 17)
    # 集采: D1 (non-selected) 350.00 of the 387.50 spent on the G1 group
    assert p["vbp_nonselected_share"] == pytest.approx(350 / 387.5)
    assert p["rh_n_hits"] == 0 and p["rh_amt_phantom_purchase"] == 0


def test_institution_peer_z_score_and_percentile(mini):
    build_features(mini, as_of=AS_OF, tables=["feat_fixmedins"])
    z = math.sqrt(2 / 3)  # population std of (1, 2, 3)
    c3 = _row(mini, "feat_fixmedins", "fixmedins_code", "C3")
    c1 = _row(mini, "feat_fixmedins", "fixmedins_code", "C1")
    assert c3["peer_group"] == "clinic" and c3["peer_group_size"] == 3  # fewer than 5: type only
    assert c3["exams_per_visit"] == pytest.approx(3.0)
    assert c3["z_exams_per_visit"] == pytest.approx(1 / z)
    assert c1["z_exams_per_visit"] == pytest.approx(-1 / z)
    assert (c1["pct_exams_per_visit"], c3["pct_exams_per_visit"]) == (0.0, 1.0)
    h1 = _row(mini, "feat_fixmedins", "fixmedins_code", "H1")
    # alone in its group: z is 0, not NaN; the refunded settlement and its refund do not count
    assert h1["z_exams_per_visit"] == 0.0 and h1["n_setl_365"] == 4 and h1["n_refund_365"] == 1


def test_person_features_by_hand(mini):
    build_features(mini, as_of=AS_OF, tables=["feat_psn", "feat_setl"])
    p2 = _row(mini, "feat_psn", "psn_no", "PSN2")
    assert p2["is_dead"] == 1 and p2["n_setl_after_death"] == 1 and p2["amt_after_death"] == pytest.approx(50)
    p3 = _row(mini, "feat_psn", "psn_no", "PSN3")
    # 60 days supplied over 10 + 30 calendar days
    assert p3["max_supply_ratio"] == pytest.approx(1.5) and p3["excess_supply_days"] == pytest.approx(20)
    assert p3["is_insured_elsewhere"] == 1 and p3["max_admdvs_distance"] == 3
    p1 = _row(mini, "feat_psn", "psn_no", "PSN1")
    assert p1["n_setl_during_own_stay"] == 1 and p1["n_refund_365"] == 1
    assert p1["n_distinct_pharmacies_365"] == 1 and p1["n_distinct_fixmedins_365"] == 4
    assert p1["refill_gap_mean"] is None or math.isnan(p1["refill_gap_mean"])  # no chronic care: nullable
    sc1 = _row(mini, "feat_setl", "setl_id", "SC1")
    assert sc1["is_during_other_stay"] == 1 and sc1["exam_share"] == 1.0
    sh1 = _row(mini, "feat_setl", "setl_id", "SH1")
    assert sh1["n_elsewhere_during_stay"] == 1 and sh1["stay_days"] == 9 and sh1["is_inpatient"] == 1
    with duckdb.connect(str(mini), read_only=True) as con:
        ids = {r[0] for r in con.execute("SELECT setl_id FROM feat_setl").fetchall()}
    assert "SO1" not in ids and "SR1" not in ids and len(ids) == 11


def test_as_of_cuts_the_history(mini):
    build_features(mini, as_of="2024-06-03", tables=["feat_pharmacy"])
    p = _row(mini, "feat_pharmacy", "fixmedins_code", "P1")
    assert p["n_setl_365"] == 2 and p["round_share"] == 1.0


def test_rule_hits_and_graph_columns_join(mini):
    with duckdb.connect(str(mini)) as con:
        con.execute("CREATE TABLE rule_hits AS SELECT * FROM (VALUES "
                    "('R1', 'phantom_purchase', 'fixmedins', 'P1', 'SP1', 'MSP1', 'PSN1', 'P1', NULL, 10.0, now()), "
                    "('R1', 'phantom_purchase', 'fixmedins', 'P1', 'SP2', 'MSP2', 'PSN1', 'P1', NULL, 20.0, now())"
                    ") t(rule_id, typology_id, entity_type, entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code, "
                    "prac_code, amount_at_risk, hit_time)")
        con.execute("CREATE TABLE graph_node_features AS SELECT * FROM (VALUES "
                    "('pharmacy', 'P1', 5, 0.25, 'c1'), ('psn', 'PSN1', 2, 0.5, 'c1')) "
                    "t(node_type, node_id, degree, pagerank, community_id)")
    report = build_features(mini, as_of=AS_OF)
    assert report.rule_hits and report.graph
    p = _row(mini, "feat_pharmacy", "fixmedins_code", "P1")
    assert p["rh_n_phantom_purchase"] == 2 and p["rh_amt_phantom_purchase"] == pytest.approx(30)
    assert p["g_degree"] == 5 and p["g_pagerank"] == 0.25 and "g_community_id" not in p
    assert _row(mini, "feat_psn", "psn_no", "PSN1")["g_degree"] == 2
    assert _row(mini, "feat_setl", "setl_id", "SP1")["rh_n_hits"] == 1
    assert math.isnan(_row(mini, "feat_psn", "psn_no", "PSN2")["g_degree"])  # not in the graph: NULL


def test_without_rule_hits_leaves_no_table_behind(mini):
    build_features(mini, as_of=AS_OF, tables=["feat_prac"])
    with duckdb.connect(str(mini), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        dr1 = con.execute("SELECT n_visits_365, rh_n_hits FROM feat_prac WHERE prac_code = 'DR1'").fetchone()
    assert "rule_hits" not in tables and not any(t.startswith(("stg_", "fx_")) for t in tables)
    assert dr1 == (4, 0)  # SH1, SH2, SH3, SH4 (SO1 was refunded)


def test_errors_are_plain(tmp_path, mini):
    with pytest.raises(FeatureBuildError, match="warehouse not found"):
        build_features(tmp_path / "none.duckdb")
    with pytest.raises(FeatureBuildError, match="unknown engine"):
        build_features(mini, engine="flink")
    with pytest.raises(FeatureBuildError, match="not a date"):
        build_features(mini, as_of="yesterday")
    assert as_of_literal("2024-01-02 03:04:05") == "TIMESTAMP '2024-01-02 03:04:05'"
    assert [n for n, _ in stage_blocks()][-1] == "stg_stock_gap"


# -- the tiny simulated region --------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_warehouse(tiny_region, tmp_path_factory) -> Path:
    """The tiny region ingested into a warehouse (shared, read by the feature tests)."""
    from features.config import Settings
    from features.ingest import ingest

    path = tmp_path_factory.mktemp("feat") / "tiny.duckdb"
    ingest(tiny_region, Settings(warehouse=path))
    return path


@pytest.fixture(scope="session")
def tiny_features(tiny_warehouse) -> Path:
    build_features(tiny_warehouse)
    return tiny_warehouse


def test_one_row_per_entity_on_tiny(tiny_features):
    expected = {
        "feat_setl": "SELECT COUNT(*) FROM setl_d s WHERE refd_setl_flag <> '1' AND setl_id NOT IN "
                     "(SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL)",
        "feat_psn": "SELECT COUNT(*) FROM psn_info",
        "feat_prac": "SELECT COUNT(*) FROM practitioner",
        "feat_fixmedins": "SELECT COUNT(*) FROM fixmedins WHERE fixmedins_type <> 'pharmacy'",
        "feat_pharmacy": "SELECT COUNT(*) FROM fixmedins WHERE fixmedins_type = 'pharmacy'",
    }
    with duckdb.connect(str(tiny_features), read_only=True) as con:
        for table, sql in expected.items():
            key = TABLES[table].key
            n, n_keys = con.execute(f"SELECT COUNT(*), COUNT(DISTINCT {key}) FROM {table}").fetchone()
            assert n == n_keys == con.execute(sql).fetchone()[0] > 0, table


def test_columns_typed_and_complete_on_tiny(tiny_features):
    with duckdb.connect(str(tiny_features), read_only=True) as con:
        for name, spec in TABLES.items():
            cols = con.execute(f"DESCRIBE {name}").fetchall()
            assert [c[0] for c in cols] == [c.name for c in spec.columns], name
            want = {"key": "VARCHAR", "timestamp": "TIMESTAMP", "bigint": "BIGINT", "double": "DOUBLE"}
            assert all(c[1] == want[s.dtype] for c, s in zip(cols, spec.columns)), name
            required = [c for c in spec.columns if not c.nullable]
            checks = [f"COUNT(*) FILTER (WHERE {c.name} IS NULL"
                      + (f" OR isnan(CAST({c.name} AS DOUBLE)))" if c.dtype in ("bigint", "double") else ")")
                      for c in required]
            bad = con.execute(f"SELECT {', '.join(checks)} FROM {name}").fetchone()
            assert not any(bad), {c.name: n for c, n in zip(required, bad) if n}


def test_features_separate_known_offenders_on_tiny(tiny_features):
    """A sanity check, not a model: labelled offenders stand out on the feature meant for them."""
    with duckdb.connect(str(tiny_features), read_only=True) as con:
        dead = con.execute("SELECT AVG(f.n_setl_after_death) FILTER (WHERE l.label = 1), "
                           "AVG(f.n_setl_after_death) FILTER (WHERE l.label = 0) FROM feat_psn f JOIN labels l "
                           "ON l.entity_id = f.psn_no AND l.entity_type = 'psn' AND l.fraud_type = 'dead_person'"
                           ).fetchone()
    assert dead[0] > 0 and dead[1] == 0


def test_docs_list_every_column():
    text = DOCS.read_text(encoding="utf-8")
    assert markdown() in text, "docs/features.md is stale: regenerate with python -m features.catalogue"


def test_cli_build_json(mini):
    import json

    from typer.testing import CliRunner

    from serving.cli import app

    res = CliRunner().invoke(app, ["features", "build", "--warehouse", str(mini), "--as-of", AS_OF,
                                   "--table", "feat_pharmacy", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["engine"] == "duckdb" and out["tables"]["feat_pharmacy"]["rows"] == 1
    res = CliRunner().invoke(app, ["features", "build", "--warehouse", str(mini), "--engine", "flink"])
    assert res.exit_code == 2 and "unknown engine" in res.output


def test_features_are_the_same_on_one_and_two_threads_whatever_the_row_order(tiny_features, tmp_path):
    """The build adds in an order of its own (DECIMAL money, windows ordered by key: features/sql/_stage.sql),
    not the threads' or the rows': one thread on the warehouse as ingested and two threads on the same rows
    stored in another order give the same tables to the bit. With DOUBLE sums both differed (``amt_365``)."""
    import shutil

    from features.catalogue import SNAPSHOTS

    one, two = tmp_path / "one.duckdb", tmp_path / "two.duckdb"
    shutil.copy(tiny_features, one)
    shutil.copy(tiny_features, two)
    with duckdb.connect(str(two)) as con:
        for table in ("setl_d", "fee_list_d", "mdtrt_d", "psn_info", "practitioner", "fixmedins", "hilist"):
            con.execute(f"CREATE TEMP TABLE shuffled AS SELECT * FROM {table} ORDER BY hash(rowid * 7919 + 13)")
            con.execute(f"DELETE FROM {table}")
            con.execute(f"INSERT INTO {table} SELECT * FROM shuffled")
            con.execute("DROP TABLE shuffled")
    build_features(one, threads=1)
    build_features(two, threads=2)
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{one}' AS one (READ_ONLY); ATTACH '{two}' AS two (READ_ONLY)")
        for table in (*TABLES, *SNAPSHOTS):
            (rows,), = con.execute(f"SELECT count(*) FROM one.{table}").fetchall()
            (differ,), = con.execute(
                f"SELECT count(*) FROM (SELECT * FROM one.{table} "
                f"EXCEPT ALL SELECT * FROM two.{table})").fetchall()
            assert rows > 0 and differ == 0, (table, differ)

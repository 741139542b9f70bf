"""Referential integrity at ingest (issue 20): no row loads without its parent, a refused table says why and
fails the command, held rows load when their parent does, corrections apply with their history.

The mini region (conftest.py) is damaged a little per test; every count is checked against what the
damage must do, and the warehouse is checked for orphans (a row whose parent is not in it) after each run.
"""

from __future__ import annotations

import gzip
import json

import duckdb
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from features.contract import TABLES
from features.ingest import IngestError, ingest, list_quarantine
from features.pseudonym import pseudonymise

from conftest import AS_OF, CERTNOS, KEY, mini_region, orphans, row_count, set_row, with_check_digit, write_region

CLAIMS_BELOW_SETTLEMENTS = ("fee_list_d", "setl_list_diag_d")


def outstanding(settings) -> set[tuple[str, str, str, str]]:
    q = list_quarantine(settings.warehouse, limit=None)
    return {(r.table_name, r.row_key, r.field, r.reason_code) for r in q.itertuples()}


def counts(settings) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM main.{t}").fetchone()[0] for t in TABLES}


def held_rows(settings) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return {t: n for t, spec in TABLES.items() if spec.parents
                and (n := con.execute(f"SELECT count(*) FROM held.{t}").fetchone()[0])}


def assert_adds_up(report) -> None:
    for t in report.tables:
        assert t.rows_in == t.loaded + t.corrected + t.quarantined + t.refused + t.unchanged, t


def rewrite_csv(path, *, delimiter: str | None = None, header=None, cut: int = 0) -> None:
    """Rewrite a CSV written by ``write_region``: another delimiter, another header, the last bytes cut."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    if header is not None:
        lines[0] = header(lines[0])
    text = "\n".join(lines)
    if delimiter is not None:
        text = text.replace(",", delimiter)
    data = text.encode("utf-8")
    path.write_bytes(data[:len(data) - cut] if cut else data)


def cli_ingest(src, settings, *extra):
    from serving.cli import app

    result = CliRunner().invoke(app, ["ingest", str(src), "--warehouse", str(settings.warehouse), "--json", *extra],
                                env={"YIBAO_PSEUDONYM_KEY": KEY, "YIBAO_AS_OF": AS_OF})
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.output


# -- the case of the issue ------------------------------------------------------------------------------


def test_quarantined_settlement_person_and_refused_table_hold_their_children_until_corrected(region, write, settings):
    set_row(region, "setl_d", "S005", med_type="99")  # a quarantined settlement
    set_row(region, "psn_info", "PSN003", gend="9")  # a quarantined person
    src = write(region, name="a")
    rewrite_csv(src / "mdtrt_d.csv", header=lambda h: h.replace("ipt_days", "med_type"))  # a refused table

    code, report, _ = cli_ingest(src, settings)

    assert code == 1  # a refused table fails the command, after the other tables are loaded
    tables = report["tables"]
    assert tables["mdtrt_d"]["refused"] == tables["mdtrt_d"]["rows_in"] == 4
    assert "列名重复" in report["errors"]["mdtrt_d"] and "med_type" in report["errors"]["mdtrt_d"]
    for t in ("fixmedins", "practitioner", "hilist", "psn_info", "mdtrt_d", "setl_d", "fee_list_d",
              "setl_list_diag_d", "stock_moves", "labels"):
        c = tables[t]
        assert c["rows_in"] == c["loaded"] + c["corrected"] + c["quarantined"] + c["refused"] + c["unchanged"], t
    # Every settlement points at a visit of the refused table: all of them and everything below wait.
    assert (tables["setl_d"]["loaded"], tables["setl_d"]["quarantined"], tables["setl_d"]["held"]) == (0, 5, 4)
    assert (tables["fee_list_d"]["held"], tables["setl_list_diag_d"]["held"]) == (10, 5)
    assert (tables["psn_info"]["loaded"], tables["psn_info"]["quarantined"]) == (2, 1)
    assert orphans(settings.warehouse) == {}
    assert counts(settings)["setl_d"] == counts(settings)["fee_list_d"] == 0
    q = list_quarantine(settings.warehouse, limit=None)
    why = {(r.row_key, r.field): r.reason for r in q.itertuples() if r.reason_code == "parent_held"}
    assert "S005" in why[("F0009", "setl_id")] and "unknown_code" in why[("F0009", "setl_id")]
    assert "PSN003" in why[("S003", "psn_no")] and "unknown_code" in why[("S003", "psn_no")]
    assert "拒收" in why[("S001", "mdtrt_id")] and "列名重复" in why[("S001", "mdtrt_id")]

    # The corrected parents alone: the visits, the person and the settlement.
    fixed = mini_region()
    fix = write({"mdtrt_d": fixed["mdtrt_d"], "psn_info": [r for r in fixed["psn_info"] if r["psn_no"] == "PSN003"],
                 "setl_d": [r for r in fixed["setl_d"] if r["setl_id"] == "S005"]}, name="b")
    code, again, _ = cli_ingest(fix, settings)

    assert code == 0
    got = {t: (c["loaded"], c["released"]) for t, c in again["tables"].items() if c["loaded"] or c["released"]}
    assert got == {"psn_info": (1, 0), "mdtrt_d": (4, 0), "setl_d": (1, 4), "fee_list_d": (0, 10),
                   "setl_list_diag_d": (0, 5)}
    assert counts(settings) == row_count(fixed)
    assert orphans(settings.warehouse) == {} and held_rows(settings) == {}
    assert outstanding(settings) == set()  # held rows released, fixed rows' old entries too
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT DISTINCT _ingest_batch FROM fee_list_d").fetchall() == [(2,)]
        assert con.execute("SELECT med_type FROM setl_d WHERE setl_id = 'S005'").fetchone() == ("11",)


def test_refused_settlements_hold_their_lines_and_the_error_names_the_delimiter(region, write, settings):
    src = write(region)
    rewrite_csv(src / "setl_d.csv", delimiter=";")

    code, report, output = cli_ingest(src, settings)

    assert code == 1
    error = report["errors"]["setl_d"]
    assert "分隔符是分号" in error and "缺少必填列" not in error
    assert "被拒收" in output and "setl_d" in output
    setl = report["tables"]["setl_d"]
    assert (setl["rows_in"], setl["refused"], setl["loaded"], setl["quarantined"]) == (5, 5, 0, 0)
    for t in CLAIMS_BELOW_SETTLEMENTS:
        c = report["tables"][t]
        assert (c["loaded"], c["quarantined"], c["held"]) == (0, c["rows_in"], c["rows_in"]), t
    assert orphans(settings.warehouse) == {}

    write({"setl_d": region["setl_d"]}, name="fixed")
    code, again, _ = cli_ingest(src.parent / "fixed", settings)
    assert code == 0
    assert {t: again["tables"][t]["released"] for t in CLAIMS_BELOW_SETTLEMENTS} == {"fee_list_d": 10,
                                                                                   "setl_list_diag_d": 5}
    assert counts(settings) == row_count(region) and outstanding(settings) == set()


# -- why a table is refused ------------------------------------------------------------------------------


def _truncated_gzip(src):
    path = src / "setl_d.csv"
    data = gzip.compress(path.read_bytes())
    (src / "setl_d.csv.gz").write_bytes(data[:len(data) // 2])
    path.unlink()


def _truncated_parquet(src):
    path = src / "setl_d.parquet"
    data = path.read_bytes()
    path.write_bytes(data[:-200])


REFUSALS = {
    # cause -> (format, damage of setl_d, words the error must hold, rows counted as refused)
    "tab_delimiter": ("csv", lambda src: rewrite_csv(src / "setl_d.csv", delimiter="\t"), ["分隔符是制表符"], 5),
    "duplicate_header": ("csv", lambda src: rewrite_csv(src / "setl_d.csv", header=lambda h: h.replace("age", "gend")),
                         ["列名重复", "gend", "第 18 列和第 20 列"], 5),
    "missing_required": ("csv", lambda src: rewrite_csv(src / "setl_d.csv", header=lambda h: h.replace("med_type",
                                                                                                    "medical_type")),
                         ["缺少必填列", "med_type"], 5),
    "empty_file": ("csv", lambda src: (src / "setl_d.csv").write_bytes(b""), ["文件为空"], 0),
    "blank_first_line": ("csv", lambda src: (src / "setl_d.csv").write_bytes(b"\n" + (src / "setl_d.csv").read_bytes()),
                         ["首行为空"], 5),
    "no_header": ("csv", lambda src: rewrite_csv(src / "setl_d.csv", header=lambda h: "S000,M001,PSN001,H001,11"),
                  ["首行不是表头"], 5),
    "truncated_csv": ("csv", lambda src: rewrite_csv(src / "setl_d.csv", cut=30), ["不完整", "最后一行没有换行符"], 5),
    "truncated_gzip": ("csv", _truncated_gzip, ["压缩文件不完整"], 0),
    "truncated_parquet": ("parquet", _truncated_parquet, ["Parquet 文件", "不完整", "PAR1"], 0),
}


@pytest.mark.parametrize("cause", list(REFUSALS))
def test_a_refused_table_names_its_cause_counts_its_rows_and_holds_its_children(region, write, settings, cause):
    fmt, damage, words, rows = REFUSALS[cause]
    src = write(region, fmt=fmt)
    damage(src)

    report = ingest(src, settings)

    setl = report.table("setl_d")
    assert setl.status == "error" and not report.ok, setl
    assert all(w in setl.error for w in words), setl.error
    assert (setl.rows_in, setl.refused, setl.loaded) == (rows, rows, 0)
    assert_adds_up(report)
    for t in CLAIMS_BELOW_SETTLEMENTS:
        assert report.table(t).held == len(region[t]) and report.table(t).loaded == 0
    assert counts(settings)["mdtrt_d"] == 4  # the tables above go on
    assert orphans(settings.warehouse) == {}


def test_a_line_cut_short_inside_the_file_is_quarantined_not_the_table(region, write, settings):
    src = write(region)
    path = src / "setl_list_diag_d.csv"
    lines = path.read_text(encoding="utf-8").split("\n")
    lines[2] = lines[2].rsplit(",", 2)[0]  # two fields short, but the file ends properly
    path.write_text("\n".join(lines), encoding="utf-8")
    report = ingest(src, settings)
    assert report.table("setl_list_diag_d").status == "ok"
    assert outstanding(settings) == {("setl_list_diag_d", "S001|I10.x00", None, "malformed_line")}


def test_a_last_record_without_line_break_that_parses_is_not_a_truncated_file(region, write, settings):
    region["hilist"][2]["generic_name"] = "血常规\n（五分类）"  # a quoted line break in the last record
    src = write(region)
    path = src / "hilist.csv"
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    report = ingest(src, settings)
    assert report.table("hilist").status == "ok"
    assert outstanding(settings) == {("hilist", "110200000001", "generic_name", "control_character")}


# -- held by an earlier run, released by a later one ---------------------------------------------------------


def test_children_of_a_parent_quarantined_by_an_earlier_run_are_held_with_its_reason(region, write, settings):
    claims = ("mdtrt_d", "setl_d", "fee_list_d", "setl_list_diag_d")
    bad = mini_region()
    set_row(bad, "psn_info", "PSN002", brdy="1992-02-30")
    ingest(write({t: rows for t, rows in bad.items() if t not in claims}, name="reference"), settings)

    report = ingest(write({t: region[t] for t in claims}, name="claims"), settings)

    assert report.table("mdtrt_d").held == 1  # M002: PSN002's visit
    line = list_quarantine(settings.warehouse, table="mdtrt_d").iloc[0]
    assert line.reason_code == "parent_held" and "已于第 1 批被隔离（bad_type）" in line.reason
    # S002 and its refund S004 point at PSN002 and at the held visit M002; their lines and diagnosis follow.
    assert {(r[0], r[1]) for r in outstanding(settings) if r[3] == "parent_held"} >= {
        ("setl_d", "S002"), ("setl_d", "S004"), ("fee_list_d", "F0004"), ("fee_list_d", "F0008"),
        ("setl_list_diag_d", "S002|J06.900")}
    assert orphans(settings.warehouse) == {}

    later = ingest(write({"psn_info": region["psn_info"]}, name="fixed"), settings)
    assert {t.table: t.released for t in later.tables if t.released} == {
        "mdtrt_d": 1, "setl_d": 2, "fee_list_d": 4, "setl_list_diag_d": 1}
    assert counts(settings) == row_count(region) and outstanding(settings) == set()


def test_a_held_row_sent_again_replaces_its_held_version(region, write, settings):
    set_row(region, "setl_d", "S003", med_type="99")
    src = write(region, name="a")
    ingest(src, settings)
    set_row(region, "fee_list_d", "F0006", bilg_dr_code="D002")  # the held line, corrected while it waits
    again = ingest(write(region, name="b"), settings)
    assert again.table("fee_list_d").held == 1 and held_rows(settings) == {"fee_list_d": 1, "setl_list_diag_d": 1}
    set_row(region, "setl_d", "S003", med_type="41")
    ingest(write({"setl_d": region["setl_d"]}, name="c"), settings)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT bilg_dr_code FROM fee_list_d WHERE bkkp_sn = 'F0006'").fetchone() == ("D002",)
    assert counts(settings) == row_count(region) and orphans(settings.warehouse) == {}


# -- content -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_control_characters_and_private_use_characters_are_quarantined(region, write, settings, fmt):
    set_row(region, "hilist", "110200000001", hilist_name="血常\x01规")
    set_row(region, "hilist", "001102000010000", hilist_name="床位\n费")  # a line break inside a quoted value
    set_row(region, "practitioner", "D002", title="住院\x85医师")  # C1 control (NEL)
    set_row(region, "practitioner", "R001", caty="药学\ue000")  # private use: another system shows another glyph
    set_row(region, "hilist", "XA01AAA012A001", generic_name="阿莫\t西林")  # a tab is allowed

    report = ingest(write(region, fmt=fmt), settings)

    assert outstanding(settings) == {
        ("hilist", "110200000001", "hilist_name", "control_character"),
        ("hilist", "001102000010000", "hilist_name", "control_character"),
        ("practitioner", "D002", "title", "control_character"),
        ("practitioner", "R001", "caty", "broken_encoding"),
    }
    q = list_quarantine(settings.warehouse, table="hilist").set_index("row_key")
    assert q.loc["110200000001", "value"] == "血常?规" and "U+0001" in q.loc["110200000001", "reason"]
    assert "U+000A" in q.loc["001102000010000", "reason"]
    assert report.table("hilist").loaded == 1 and report.table("practitioner").loaded == 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT generic_name FROM hilist").fetchone() == ("阿莫\t西林",)


# -- corrections ---------------------------------------------------------------------------------------------


def test_corrections_are_applied_with_their_history_and_mark_what_to_rederive(region, write, settings):
    ingest(write(region, name="a"), settings)
    new_certno = with_check_digit("22010220150720009")
    set_row(region, "setl_d", "S003", hosp_lv="05")
    set_row(region, "fee_list_d", "F0006", bilg_dr_code="D001")
    set_row(region, "mdtrt_d", "M002", chfpdr_code="D001")
    set_row(region, "psn_info", "PSN003", certno=new_certno, psn_name="王小六")
    src = write(region, name="b")

    kept = ingest(src, settings)  # without the flag: quarantined, the warehouse keeps what it has
    assert {t.table: t.quarantined for t in kept.tables if t.quarantined} == {
        "psn_info": 1, "mdtrt_d": 1, "setl_d": 1, "fee_list_d": 1}
    assert {r[3] for r in outstanding(settings)} == {"changed_after_load"}

    applied = ingest(src, settings, apply_corrections=True)

    assert_adds_up(applied)
    assert {t.table: t.corrected for t in applied.tables if t.corrected} == {
        "psn_info": 1, "mdtrt_d": 1, "setl_d": 1, "fee_list_d": 1}
    assert all(t.loaded == t.quarantined == 0 for t in applied.tables)
    assert outstanding(settings) == set()  # the corrections' entries are released
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT hosp_lv, _ingest_batch FROM setl_d WHERE setl_id = 'S003'").fetchone() == ("05", 3)
        assert con.execute("SELECT bilg_dr_code FROM fee_list_d WHERE bkkp_sn = 'F0006'").fetchone() == ("D001",)
        assert con.execute("SELECT certno FROM psn_info WHERE psn_no = 'PSN003'").fetchone() == (
            pseudonymise([new_certno], KEY)[0],)
        versions = con.execute("SELECT table_name, row_key, version, loaded_batch, replaced_batch, changed_fields, "
                               "old_row FROM row_versions ORDER BY 1").fetchall()
        rederive = con.execute("SELECT table_name, row_key, setl_id FROM ingest_rederive WHERE batch_no = 3 "
                               "ORDER BY ALL").fetchall()
    assert [v[:6] for v in versions] == [
        ("fee_list_d", "F0006", 1, 1, 3, "bilg_dr_code"), ("mdtrt_d", "M002", 1, 1, 3, "chfpdr_code"),
        ("psn_info", "PSN003", 1, 1, 3, "certno"), ("setl_d", "S003", 1, 1, 3, "hosp_lv")]
    old = {v[0]: json.loads(v[6]) for v in versions}
    assert old["setl_d"]["hosp_lv"] is None and old["fee_list_d"]["bilg_dr_code"] is None
    assert old["psn_info"]["certno"] == pseudonymise([CERTNOS["PSN003"]], KEY)[0]  # never the clear ID
    assert rederive == [("fee_list_d", "F0006", "S003"), ("mdtrt_d", "M002", "S002"), ("mdtrt_d", "M002", "S004"),
                        ("psn_info", "PSN003", "S003"), ("setl_d", "S003", "S003")]
    assert applied.rederive == 3 and applied.rederive_examples == ("S002", "S003", "S004")
    with duckdb.connect(str(settings.identity_vault), read_only=True) as con:
        assert con.execute("SELECT certno, psn_name FROM psn_identity WHERE psn_no = 'PSN003'").fetchone() == (
            new_certno, "王小六")

    again = ingest(src, settings, apply_corrections=True)  # the same corrections again: nothing to do
    assert all(t.corrected == 0 and t.unchanged == t.rows_in for t in again.tables)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM row_versions").fetchone() == (4,)


def test_a_second_correction_is_version_two(region, write, settings):
    ingest(write(region, name="a"), settings)
    for i, lv in enumerate(("05", "04"), start=1):
        set_row(region, "setl_d", "S003", hosp_lv=lv)
        ingest(write({"setl_d": region["setl_d"]}, name=f"fix{i}"), settings, apply_corrections=True)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        rows = con.execute("SELECT version, json_extract_string(old_row, '$.hosp_lv') FROM row_versions "
                           "WHERE row_key = 'S003' ORDER BY version").fetchall()
        assert con.execute("SELECT hosp_lv FROM setl_d WHERE setl_id = 'S003'").fetchone() == ("04",)
    assert rows == [(1, None), (2, "05")]


def test_a_correction_that_fails_a_check_is_not_applied(region, write, settings):
    ingest(write(region, name="a"), settings)
    set_row(region, "setl_d", "S003", hosp_lv="05", med_type="99")
    report = ingest(write({"setl_d": region["setl_d"]}, name="b"), settings, apply_corrections=True)
    assert report.table("setl_d").corrected == 0 and report.table("setl_d").quarantined == 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT hosp_lv FROM setl_d WHERE setl_id = 'S003'").fetchone() == (None,)


def test_an_ingest_that_changes_the_warehouse_makes_later_pipeline_stages_run_again(region, write, settings):
    from serving.pipeline import _state, run_pipeline

    src = write(region, name="a")
    run_pipeline(settings, source=src, stages=("ingest",), fingerprints=False)
    before = _state(settings.warehouse)["ingest"]
    assert run_pipeline(settings, source=src, stages=("ingest",), fingerprints=False).stages[0].status == "skipped"

    ingest(src, settings)  # a no-op: nothing moves
    assert _state(settings.warehouse)["ingest"] == before
    set_row(region, "setl_d", "S003", hosp_lv="05")
    ingest(write({"setl_d": region["setl_d"]}, name="b"), settings, apply_corrections=True)
    after = _state(settings.warehouse)["ingest"]
    # The rules, graph and feature stages read the ingest's finish time: it moved, so they run again.
    assert after["finished"] > before["finished"] and after["inputs"] == before["inputs"]


def test_one_warehouse_one_key(region, write, settings):
    from dataclasses import replace

    ingest(write(region), settings)
    with pytest.raises(IngestError, match="另一把假名化密钥") as err:
        ingest(write(region), replace(settings, pseudonym_key="another-key"))
    assert "another-key" not in str(err.value) and KEY not in str(err.value)


def test_parquet_region_with_damage_leaves_no_orphan(write, settings, tmp_path):
    region = mini_region()
    set_row(region, "mdtrt_d", "M001", med_type="99")
    set_row(region, "fixmedins", "H002", fixmedins_type="hospitall")
    src = write_region(region, tmp_path / "pq", fmt="parquet", folder=True, parts=2)
    report = ingest(src, settings)
    assert_adds_up(report)
    assert orphans(settings.warehouse) == {}
    # H002's practitioner, stock and visit M003 (and S003, F0006, its diagnosis), M001's S001 and its lines
    assert {t.table: t.loaded for t in report.tables} == {
        "fixmedins": 1, "practitioner": 2, "hilist": 3, "psn_info": 3, "mdtrt_d": 2, "setl_d": 3,
        "fee_list_d": 6, "setl_list_diag_d": 2, "stock_moves": 0, "labels": 2}
    assert pq.read_table(src / "fee_list_d").num_rows == 10

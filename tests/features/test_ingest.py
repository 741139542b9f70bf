"""Ingest: every bad-input kind of the contract lands in quarantine, the rest loads, twice is a no-op."""

from __future__ import annotations

import json
from datetime import date
from types import SimpleNamespace

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from features.config import Settings
from features.contract import LOAD_ORDER, TABLES
from features.ingest import IngestError, IngestReport, ingest, list_quarantine, quarantine_counts
from features.pseudonym import pseudonymise

from conftest import (AS_OF, CERTNOS, KEY, held_children, mini_region, orphans, row_count, set_row, with_check_digit,
                      write_region)


def wrong_check_digit(certno: str) -> str:
    return certno[:-1] + ("0" if certno[-1] != "0" else "1")


def quarantined(settings, table: str | None = None) -> set[tuple[str, str, str, str]]:
    q = list_quarantine(settings.warehouse, table=table, limit=None)
    return {(r.table_name, r.row_key, r.field, r.reason_code) for r in q.itertuples()}


def warehouse_counts(settings) -> dict[str, int]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def assert_invariant(report: IngestReport) -> None:
    for t in report.tables:
        assert t.rows_in == t.loaded + t.corrected + t.quarantined + t.refused + t.unchanged, t


def assert_only(report: IngestReport, settings, expected: set[tuple[str, str, str, str]]) -> None:
    """Exactly the rows named in ``expected`` are quarantined (with at least those reasons); all else loads."""
    assert_invariant(report)
    got = quarantined(settings)
    assert expected <= got, f"missing {expected - got}; got {got}"
    rows = {(t, k) for t, k, _, _ in expected}
    assert {(t, k) for t, k, _, _ in got} == rows
    for t in report.tables:
        bad = len({k for tt, k in rows if tt == t.table})
        assert (t.quarantined, t.loaded) == (bad, t.rows_in - bad), t


# -- clean input -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt,folder,parts", [("csv", False, 1), ("csv", True, 3), ("parquet", True, 2)])
def test_clean_region_loads_every_row(region, write, settings, fmt, folder, parts):
    report = ingest(write(region, fmt=fmt, folder=folder, parts=parts), settings)

    assert report.ok and not report.problems
    assert_invariant(report)
    assert {t.table: t.loaded for t in report.tables} == row_count(region)
    assert warehouse_counts(settings) == row_count(region)
    assert quarantined(settings) == set()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        codes = {r[0] for r in con.execute("SELECT hilist_code FROM hilist").fetchall()}
        total = con.execute("SELECT medfee_sumamt, typeof(medfee_sumamt), setl_time FROM setl_d "
                            "WHERE setl_id = 'S001'").fetchone()
        month = con.execute("SELECT min(month) FROM stock_moves").fetchone()[0]
        negative_lines = con.execute("SELECT count(*) FROM fee_list_d WHERE cnt < 0").fetchone()[0]
    assert "001102000010000" in codes  # leading zeros kept
    assert str(total[0]) == "215.00" and total[1] == "DECIMAL(18,2)" and str(total[2]) == "2024-05-05 10:30:00"
    assert month == "2024-05"
    assert negative_lines == 2  # a refund settlement's lines may be negative


# -- one test per bad-input kind ---------------------------------------------------------------------


# kind -> (damage, expected quarantine entries, whether a typed Parquet file can carry it). Every kind
# damages rows of its own, so all kinds go into one extract that is ingested once per format.
DAMAGES = {
    "missing_required": (
        lambda r: set_row(r, "mdtrt_d", "M003", begntime=None),
        {("mdtrt_d", "M003", "begntime", "missing_required")}, True,
    ),
    "missing_required_blank": (
        lambda r: set_row(r, "fixmedins", "H002", fixmedins_name="  "),
        {("fixmedins", "H002", "fixmedins_name", "missing_required")}, True,
    ),
    "bad_type_time": (
        lambda r: set_row(r, "setl_d", "S001", setl_time="2024/05/05 10:30"),
        {("setl_d", "S001", "setl_time", "bad_type")}, False,
    ),
    "bad_type_amount": (
        lambda r: set_row(r, "fee_list_d", "F0006", pric="12,50"),
        {("fee_list_d", "F0006", "pric", "bad_type")}, False,
    ),
    "bad_type_date": (
        lambda r: set_row(r, "psn_info", "PSN002", brdy="1992-02-30"),
        {("psn_info", "PSN002", "brdy", "bad_type")}, False,
    ),
    "code_as_float_scientific": (
        lambda r: set_row(r, "fee_list_d", "F0003", hilist_code="1.1020e+11"),
        {("fee_list_d", "F0003", "hilist_code", "code_as_float")}, True,
    ),
    "code_as_float_trailing_zero": (
        lambda r: set_row(r, "hilist", "001102000010000", list_type="201.0"),
        {("hilist", "001102000010000", "list_type", "code_as_float")}, True,
    ),
    "missing_parent": (
        lambda r: set_row(r, "fee_list_d", "F0002", mdtrt_id="M999"),
        {("fee_list_d", "F0002", "mdtrt_id", "missing_parent")}, True,
    ),
    "missing_parent_settlement": (
        lambda r: set_row(r, "setl_list_diag_d", "S003|J06.900", setl_id="S999"),
        {("setl_list_diag_d", "S999|J06.900", "setl_id", "missing_parent")}, True,
    ),
    "sum_fund_plus_personal": (
        lambda r: set_row(r, "setl_d", "S003", fund_pay_sumamt="5.00"),
        {("setl_d", "S003", "medfee_sumamt", "sum_mismatch")}, True,
    ),
    "sum_count_times_price": (
        lambda r: set_row(r, "fee_list_d", "F0009", pric="31.00"),
        {("fee_list_d", "F0009", "det_item_fee_sumamt", "sum_mismatch")}, True,
    ),
    "sum_settlement_vs_lines": (
        lambda r: set_row(r, "setl_d", "S005", medfee_sumamt="95.00", psn_pay="45.00"),
        {("setl_d", "S005", "medfee_sumamt", "sum_mismatch")}, True,
    ),
    "negative_line_outside_refund": (
        # The settlement is made to agree with its lines again: only the line is wrong.
        lambda r: (set_row(r, "fee_list_d", "F0005", cnt="-1", det_item_fee_sumamt="-12.50"),
                   set_row(r, "setl_d", "S002", medfee_sumamt="17.50", fund_pay_sumamt="0.00", hifp_pay="0.00",
                        psn_pay="17.50")),
        {("fee_list_d", "F0005", "cnt", "negative_outside_refund"),
         ("fee_list_d", "F0005", "det_item_fee_sumamt", "negative_outside_refund")}, True,
    ),
    "negative_settlement_outside_refund": (
        lambda r: set_row(r, "setl_d", "S004", refd_setl_flag="0"),
        {("setl_d", "S004", "medfee_sumamt", "negative_outside_refund")}
        | {("fee_list_d", b, f, "negative_outside_refund") for b in ("F0007", "F0008")
           for f in ("cnt", "det_item_fee_sumamt")}, True,
    ),
    "future_date": (
        lambda r: set_row(r, "fee_list_d", "F0001", fee_ocur_time="2025-03-01 10:00:00"),
        {("fee_list_d", "F0001", "fee_ocur_time", "future_date")}, True,
    ),
    "unknown_code": (
        lambda r: set_row(r, "mdtrt_d", "M004", med_type="99"),
        {("mdtrt_d", "M004", "med_type", "unknown_code")}, True,
    ),
    "unknown_code_project_list": (
        lambda r: set_row(r, "fixmedins", "H001", fixmedins_type="hospitall"),
        {("fixmedins", "H001", "fixmedins_type", "unknown_code")}, True,
    ),
    "mojibake": (
        lambda r: set_row(r, "hilist", "XA01AAA012A001",
                       hilist_name="阿莫西林胶囊".encode("utf-8").decode("cp1252", errors="replace")),
        {("hilist", "XA01AAA012A001", "hilist_name", "broken_encoding")}, True,
    ),
    "replacement_character": (
        lambda r: set_row(r, "practitioner", "D001", title="主治\ufffd师"),
        {("practitioner", "D001", "title", "broken_encoding")}, True,
    ),
    "gbk_garble": (
        lambda r: set_row(r, "mdtrt_d", "M002", dscg_maindiag_name="锟斤拷锟斤拷"),
        {("mdtrt_d", "M002", "dscg_maindiag_name", "broken_encoding")}, True,
    ),
    "bad_certno": (
        lambda r: set_row(r, "psn_info", "PSN003", certno=wrong_check_digit(CERTNOS["PSN003"])),
        {("psn_info", "PSN003", "certno", "bad_certno")}, True,
    ),
    "bad_certno_length": (
        lambda r: set_row(r, "psn_info", "PSN001", certno="22010219800101"),
        {("psn_info", "PSN001", "certno", "bad_certno")}, True,
    ),
    "duplicate_key": (
        lambda r: r["fee_list_d"].append(dict(r["fee_list_d"][3])),
        {("fee_list_d", "F0004", "bkkp_sn", "duplicate_key")}, True,
    ),
    "duplicate_composite_key": (
        lambda r: r["setl_list_diag_d"].append(dict(r["setl_list_diag_d"][0], maindiag_flag="0")),
        {("setl_list_diag_d", "S001|J18.900", "setl_id|diag_code", "duplicate_key")}, True,
    ),
}


@pytest.fixture(scope="module", params=["csv", "parquet"])
def damaged(request, tmp_path_factory) -> SimpleNamespace:
    """The mini region with every kind of damage that the format can carry, ingested once."""
    fmt = request.param
    region, expected = mini_region(), set()
    for damage, exp, typed_ok in DAMAGES.values():
        if fmt == "csv" or typed_ok:
            damage(region)
            expected |= exp
    expected |= held_children(region, expected)  # what points at a quarantined row is held with it
    base = tmp_path_factory.mktemp(f"damaged-{fmt}")
    settings = Settings(warehouse=base / "warehouse.duckdb", pseudonym_key=KEY, as_of=AS_OF)
    report = ingest(write_region(region, base / "src", fmt=fmt), settings)
    return SimpleNamespace(fmt=fmt, region=region, report=report, settings=settings, expected=expected,
                           got=quarantined(settings))


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_bad_input_goes_to_quarantine(damaged, kind):
    _, expected, typed_ok = DAMAGES[kind]
    if damaged.fmt == "parquet" and not typed_ok:
        pytest.skip("a typed Parquet column cannot carry this value")
    assert expected <= damaged.got
    for table, _, _, code in expected:
        assert dict(damaged.report.table(table).reasons)[code] >= 1


def test_only_the_damaged_rows_are_quarantined(damaged):
    report = damaged.report
    assert_invariant(report)
    bad = {(t, k) for t, k, _, _ in damaged.expected}
    assert {(t, k) for t, k, _, _ in damaged.got} == bad
    for t in report.tables:
        n_bad = quarantined_rows(damaged.region[t.table], t.table, damaged.expected)
        assert (t.rows_in, t.quarantined, t.loaded) == (len(damaged.region[t.table]), n_bad, t.rows_in - n_bad), t
    assert warehouse_counts(damaged.settings) == {t.table: t.loaded for t in report.tables}
    assert orphans(damaged.settings.warehouse) == {}


def quarantined_rows(rows, table: str, expected) -> int:
    """Rows of ``table`` that ``expected`` keeps out: every row of a key quarantined for a reason of its
    own (or held), and the repeats of a repeated key."""
    out = {k for t, k, _, r in expected if t == table and r != "duplicate_key"}
    repeated = {k for t, k, _, r in expected if t == table and r == "duplicate_key"}
    n, seen = 0, set()
    for row in rows:
        key = "|".join((row.get(k) or "").strip() for k in TABLES[table].key)
        n += key in out or (key in repeated and key in seen)
        seen.add(key)
    return n


def test_quarantine_row_has_position_file_reason_and_raw_row(region, write, settings):
    set_row(region, "fee_list_d", "F0003", hilist_code="1.1020e+11")  # row 3, in part-00000
    set_row(region, "fee_list_d", "F0009", med_chrgitm_type="999")  # row 9, in part-00002
    ingest(write(region, fmt="csv", folder=True, parts=3), settings)
    q = list_quarantine(settings.warehouse, table="fee_list_d").set_index("row_key")
    assert q.loc["F0003", "row_number"] == 3
    assert q.loc["F0003", "field"] == "hilist_code"
    assert q.loc["F0003", "value"] == "1.1020e+11"
    assert q.loc["F0003", "reason"] == "fee_list_d 第3行 字段 hilist_code: 编码被读成浮点数 (1.1020e+11)，应为字符串编码"
    assert q.loc["F0003", "source_file"].endswith("fee_list_d/part-00000.csv")
    assert json.loads(q.loc["F0003", "raw"])["hilist_name"] == "血常规"
    assert q.loc["F0009", "row_number"] == 9
    assert q.loc["F0009", "source_file"].endswith("fee_list_d/part-00002.csv")


def test_csv_invalid_utf8_bytes_quarantine_the_line_only(region, write, settings):
    region["setl_list_diag_d"][1]["diag_name"] = "高血压".encode("utf-8") + b"\xff\xfe"
    set_row(region, "fee_list_d", "F0010", list_type="999")  # a later bad row keeps its true position
    src = write(region, fmt="csv")
    report = ingest(src, settings)

    assert_only(report, settings, {("setl_list_diag_d", "S001|I10.x00", "diag_name", "broken_encoding"),
                                   ("fee_list_d", "F0010", "list_type", "unknown_code")})
    q = list_quarantine(settings.warehouse, reason="broken_encoding").iloc[0]
    assert q.row_number == 2 and q.value == "高血压??"
    assert "csv_line" in json.loads(q.raw)
    assert list_quarantine(settings.warehouse, table="fee_list_d").iloc[0].row_number == 10
    diag = report.table("setl_list_diag_d")
    assert (diag.rows_in, diag.loaded, diag.quarantined) == (5, 4, 1)


def test_invalid_bytes_in_later_lines_keep_row_numbers(region, write, settings):
    for i in (1, 3):
        region["fee_list_d"][i]["hilist_name"] = b"bad\xc3\x28"
    region["fee_list_d"][1]["hilist_name"] = b"bad\xff"
    set_row(region, "fee_list_d", "F0006", mdtrt_id="M999")  # row 6, after two unreadable lines
    report = ingest(write(region, fmt="csv"), settings)
    q = list_quarantine(settings.warehouse, table="fee_list_d").set_index("row_key")
    assert q.loc["F0002", "row_number"] == 2 and q.loc["F0004", "row_number"] == 4
    assert q.loc["F0006", "row_number"] == 6 and q.loc["F0006", "reason_code"] == "missing_parent"
    assert q.loc["F0002", "reason_code"] == "broken_encoding" and q.loc["F0002", "field"] == "hilist_name"
    # The settlements of the unreadable lines cannot be totalled: they are not blamed for it.
    assert {t for t, *_ in quarantined(settings)} == {"fee_list_d"}
    assert report.table("fee_list_d").quarantined == 3
    assert_invariant(report)


def test_malformed_csv_line(region, write, settings, tmp_path):
    src = write(region)
    path = src / "practitioner.csv"
    path.write_text(path.read_text(encoding="utf-8") + "D009,H001,A03,内科,主任医师,extra\n", encoding="utf-8")
    report = ingest(src, settings)
    q = list_quarantine(settings.warehouse, table="practitioner").iloc[0]
    assert (q.row_key, q.reason_code, q.row_number) == ("D009", "malformed_line", 4)
    assert "列数多于表头" in q.reason
    assert report.table("practitioner").loaded == 3


def test_parquet_code_column_written_as_double_is_code_as_float(region, write, settings):
    src = write(region, fmt="parquet")
    t = pq.read_table(src / "hilist.parquet")
    t = t.set_column(t.schema.get_field_index("chrgitm_lv"), "chrgitm_lv", pa.array([1.0, 1.0, 1.0]))
    pq.write_table(t, src / "hilist.parquet")
    report = ingest(src, settings)
    q = list_quarantine(settings.warehouse, table="hilist")
    assert set(q.reason_code) == {"code_as_float"} and set(q.value) == {"1.0"} and len(q) == 3
    assert report.table("hilist").quarantined == 3


def test_parquet_float_amounts_that_do_not_fit_are_bad_type(region, write, settings):
    # Typed float columns are checked without a cast: NaN, infinities and amounts of 1e16 yuan or more
    # (beyond DECIMAL(18,2)) fail, the largest float below 1e16 loads.
    set_row(region, "setl_d", "S001", acct_pay="nan")
    set_row(region, "setl_d", "S002", acct_pay="-inf")
    set_row(region, "setl_d", "S003", hifp_pay="1e16")
    set_row(region, "setl_d", "S004", age="inf")
    set_row(region, "setl_d", "S005", hifp_pay="9999999999999998")
    report = ingest(write(region, fmt="parquet"), settings)
    got = {(k, f, c) for _, k, f, c in quarantined(settings, "setl_d")}
    assert got == {("S001", "acct_pay", "bad_type"), ("S002", "acct_pay", "bad_type"),
                   ("S003", "hifp_pay", "bad_type"), ("S004", "age", "bad_type")}
    assert report.table("setl_d").loaded == 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        (hifp,) = con.execute("SELECT hifp_pay FROM setl_d WHERE setl_id = 'S005'").fetchone()
    assert hifp > 9_999_999_999_999_990  # DuckDB's float-to-decimal conversion is not exact this far out


def test_row_failing_several_checks_counts_once(region, write, settings):
    set_row(region, "psn_info", "PSN002", gend="9", certno=wrong_check_digit(CERTNOS["PSN002"]), brdy="x")
    report = ingest(write(region), settings)
    got = quarantined(settings, "psn_info")
    assert {c for _, _, _, c in got} == {"unknown_code", "bad_certno", "bad_type"}
    assert report.table("psn_info").quarantined == 1
    assert dict(report.table("psn_info").reasons) == {"bad_certno": 1, "bad_type": 1, "unknown_code": 1}
    assert_invariant(report)


def test_parent_loaded_by_an_earlier_extract(region, write, settings):
    reference = {t: region[t] for t in ("fixmedins", "practitioner", "hilist", "psn_info")}
    claims = {t: region[t] for t in ("mdtrt_d", "setl_d", "fee_list_d", "setl_list_diag_d")}
    first = ingest(write(reference, name="ref"), settings)
    assert first.missing_claim_tables == ("mdtrt_d", "setl_d", "fee_list_d", "setl_list_diag_d")
    second = ingest(write(claims, name="claims"), settings)
    assert quarantined(settings) == set()
    assert second.table("setl_d").loaded == 5
    assert "psn_info" in second.missing_tables and second.missing_claim_tables == ()


def test_missing_parent_table_holds_its_children_until_it_arrives(region, write, settings):
    institutions = region.pop("fixmedins")
    report = ingest(write(region, name="a"), settings)
    assert_invariant(report)
    below = ("practitioner", "mdtrt_d", "setl_d", "fee_list_d", "setl_list_diag_d", "stock_moves")
    for name in below:  # institutions' rows, and what points at them in turn
        t = report.table(name)
        assert (t.loaded, t.quarantined, t.held) == (0, t.rows_in, t.rows_in), t
    assert any("fixmedins" in n for n in report.table("practitioner").notes)
    assert report.table("hilist").loaded == 3 and report.table("psn_info").loaded == 3
    assert {r for *_, r in quarantined(settings)} == {"missing_parent", "parent_held"}

    later = ingest(write({"fixmedins": institutions}, name="b"), settings)
    assert {t.table: t.released for t in later.tables if t.released} == {t: len(region[t]) for t in below}
    assert warehouse_counts(settings) == row_count(region | {"fixmedins": institutions})
    assert quarantined(settings) == set()  # every entry released
    assert len(list_quarantine(settings.warehouse, include_released=True, limit=None)) > 0
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT DISTINCT _ingest_batch FROM fee_list_d").fetchall() == [(2,)]
        assert sum(con.execute(f"SELECT count(*) FROM held.{t}").fetchone()[0] for t in below) == 0


# -- idempotence ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_second_ingest_of_the_same_extract_changes_nothing(region, write, settings, fmt):
    set_row(region, "fee_list_d", "F0003", list_type="999")
    set_row(region, "setl_d", "S003", fund_pay_sumamt="5.00")
    region["fee_list_d"].append(dict(region["fee_list_d"][4]))
    region["fee_list_d"].append(dict(region["fee_list_d"][4]))  # the same duplicate twice
    src = write(region, fmt=fmt)
    first = ingest(src, settings)
    counts, q1 = warehouse_counts(settings), list_quarantine(settings.warehouse, limit=None)
    # F0003, the two repeats of F0005, and F0006 held with its settlement S003 (as is S003's diagnosis)
    assert first.table("fee_list_d").quarantined == 4 and first.table("fee_list_d").held == 1 and len(q1) == 6

    second = ingest(src, settings)
    assert_invariant(second)
    for t in second.tables:
        assert (t.loaded, t.quarantined, t.unchanged) == (0, 0, t.rows_in), t
    assert second.reason_counts == {}
    assert warehouse_counts(settings) == counts
    q2 = list_quarantine(settings.warehouse, limit=None)
    assert len(q2) == len(q1)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        log = con.execute("SELECT batch_no, batch_id, finished_at IS NOT NULL, report IS NOT NULL "
                          "FROM ingest_log ORDER BY started_at").fetchall()
        assert log == [(1, first.batch_id, True, True), (2, second.batch_id, True, True)]
        assert (first.batch_no, second.batch_no) == (1, 2)
        assert con.execute("SELECT DISTINCT _ingest_batch FROM fee_list_d").fetchall() == [(1,)]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_corrected_row_is_quarantined_not_lost(region, write, settings, fmt):
    ingest(write(region, fmt=fmt, name="a"), settings)
    before = warehouse_counts(settings)
    new_certno = with_check_digit("22010220150720009")
    set_row(region, "setl_d", "S003", hosp_lv="05")
    set_row(region, "fee_list_d", "F0006", bilg_dr_code="D001")
    set_row(region, "psn_info", "PSN003", certno=new_certno, psn_name="王小六")  # the name is never compared
    src = write(region, fmt=fmt, name="b")
    second = ingest(src, settings)
    assert_invariant(second)
    assert quarantined(settings) == {
        ("setl_d", "S003", "hosp_lv", "changed_after_load"),
        ("fee_list_d", "F0006", "bilg_dr_code", "changed_after_load"),
        ("psn_info", "PSN003", "certno", "changed_after_load"),
    }
    for t in second.tables:
        n = 1 if t.table in ("setl_d", "fee_list_d", "psn_info") else 0
        assert (t.loaded, t.quarantined, t.unchanged) == (0, n, t.rows_in - n), t
    assert warehouse_counts(settings) == before
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:  # the loaded version stays
        assert con.execute("SELECT hosp_lv FROM setl_d WHERE setl_id = 'S003'").fetchone() == (None,)
    q = list_quarantine(settings.warehouse, limit=None)
    person = q[q.row_key == "PSN003"].iloc[0]
    assert "第 1 批入库" in person.reason and "certno" in person.reason
    assert not any(new_certno in str(v) for v in q.astype(str).to_numpy().ravel())  # masked everywhere
    third = ingest(src, settings)
    assert third.reason_counts == {} and len(list_quarantine(settings.warehouse, limit=None)) == 3
    assert all(t.unchanged == t.rows_in for t in third.tables)


def test_batch_numbers_continue_in_a_warehouse_made_before_them(region, write, settings):
    settings.warehouse.parent.mkdir(parents=True)
    with duckdb.connect(str(settings.warehouse)) as con:  # the ingest log as it was before batch numbers
        con.execute("CREATE TABLE ingest_log (batch_id VARCHAR, source VARCHAR, started_at TIMESTAMP, "
                    "finished_at TIMESTAMP, report VARCHAR)")
        con.execute("INSERT INTO ingest_log VALUES ('20240101T000000-abcd0123', 'old', now(), now(), '{}')")
    report = ingest(write(region), settings)
    assert report.batch_no == 1 and report.to_dict()["batch_no"] == 1
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*), max(batch_no) FROM ingest_log").fetchone() == (2, 1)


def test_fixed_row_loads_on_a_later_ingest(region, write, settings):
    set_row(region, "setl_d", "S002", med_type="99")
    ingest(write(region, name="a"), settings)
    set_row(region, "setl_d", "S002", med_type="11")
    report = ingest(write(region, name="b"), settings)
    assert report.table("setl_d").loaded == 1 and report.table("setl_d").unchanged == 4


# -- privacy ----------------------------------------------------------------------------------------


def test_resident_ids_and_names_never_reach_the_warehouse(region, write, settings):
    set_row(region, "psn_info", "PSN003", certno=wrong_check_digit(CERTNOS["PSN003"]))
    ingest(write(region), settings)
    secrets = set(CERTNOS.values()) | {CERTNOS["PSN003"][:-1]} | {"张三", "李四", "王小五"}
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        for table, column in con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND data_type = 'VARCHAR'"
        ).fetchall():
            for (v,) in con.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL').fetchall():
                assert not any(s in v for s in secrets), (table, column, v)
        psn = dict(con.execute("SELECT psn_no, certno FROM psn_info").fetchall())
        assert con.execute("SELECT count(psn_name) FROM psn_info").fetchone()[0] == 0
    assert psn["PSN001"] == pseudonymise([CERTNOS["PSN001"]], KEY)[0]
    assert psn["PSN001"].startswith("P") and len(psn["PSN001"]) == 33
    data = settings.warehouse.read_bytes()
    assert not any(c.encode() in data for c in CERTNOS.values())

    q = list_quarantine(settings.warehouse, table="psn_info").iloc[0]
    assert q.value == CERTNOS["PSN003"][:6] + "*" * 11 + q.value[-1]
    assert json.loads(q.raw)["certno"] == q.value and json.loads(q.raw)["psn_name"] == "王**"

    with duckdb.connect(str(settings.identity_vault), read_only=True) as con:
        vault = {r[0]: r[1:] for r in con.execute(
            "SELECT psn_no, certno_pseudonym, certno, psn_name FROM psn_identity").fetchall()}
    assert vault["PSN001"] == (psn["PSN001"], CERTNOS["PSN001"], "张三")
    assert "PSN003" not in vault  # quarantined rows keep only the masked form


# -- problems with whole files or tables ---------------------------------------------------------------


def test_source_folder_must_exist(settings, tmp_path):
    with pytest.raises(IngestError, match="不存在"):
        ingest(tmp_path / "nope", settings)
    (tmp_path / "empty").mkdir()
    with pytest.raises(IngestError, match="no contract table"):
        ingest(tmp_path / "empty", settings)


def test_unreadable_file_is_named_and_other_tables_go_on(region, write, settings):
    src = write(region, fmt="parquet")
    (src / "hilist.parquet").write_bytes(b"this is not parquet")
    report = ingest(src, settings)
    hilist = report.table("hilist")
    assert hilist.status == "error" and "hilist.parquet" in hilist.error
    assert report.table("fee_list_d").loaded == 10
    assert "hilist" in report.errors and not report.ok
    assert_invariant(report)


def test_required_column_missing_from_a_file(region, write, settings):
    for row in region["fee_list_d"]:
        del row["pric"]
    report = ingest(write(region, fmt="csv", folder=True, parts=2), settings)
    fee = report.table("fee_list_d")
    assert fee.status == "error" and "pric" in fee.error and "part-00000.csv" in fee.error
    assert fee.loaded == 0 and warehouse_counts(settings)["fee_list_d"] == 0
    assert report.table("setl_d").loaded == 5  # the settlement-total check just has no lines to use
    assert any("pric" in p for p in report.problems)


def test_two_sources_for_one_table(region, write, settings):
    src = write(region)
    write({"hilist": region["hilist"]}, fmt="parquet", folder=True, name="src")
    report = ingest(src, settings)
    assert report.table("hilist").status == "error" and "hilist" in report.table("hilist").error


def test_column_names_are_matched_lower_case_and_values_trimmed(region, write, settings):
    for row in region["fixmedins"]:
        row["FIXMEDINS_NAME"] = row.pop("fixmedins_name")
        row["remark"] = "备注"  # extra column: kept in the staged row, not in the warehouse
    set_row(region, "setl_d", "S002", med_type=" 11 ", setl_id="S002  ")
    report = ingest(write(region), settings)
    assert quarantined(settings) == set()
    assert report.table("fixmedins").loaded == 2 and report.table("setl_d").loaded == 5
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        cols = [r[0] for r in con.execute("DESCRIBE fixmedins").fetchall()]
        name = con.execute("SELECT fixmedins_name FROM fixmedins WHERE fixmedins_code = 'H001'").fetchone()[0]
        med_type = con.execute("SELECT med_type FROM setl_d WHERE setl_id = 'S002'").fetchone()[0]
    assert cols == [*TABLES["fixmedins"].names, "_ingest_batch"]
    assert name == "长春市第一医院" and med_type == "11"


# -- reporting ---------------------------------------------------------------------------------------


def test_report_progress_and_counts(region, write, settings):
    set_row(region, "setl_d", "S002", med_type="99")
    calls = []
    report = ingest(write(region), settings, progress=lambda t, d, n: calls.append((t, d, n)))
    assert calls == [(t, i, len(LOAD_ORDER)) for i, t in enumerate(LOAD_ORDER, start=1)]
    d = json.loads(json.dumps(report.to_dict(), ensure_ascii=False))
    assert d["tables"]["setl_d"]["quarantined"] == 1 and d["tables"]["setl_d"]["reasons"] == {"unknown_code": 1}
    held = "上级记录被隔离或整表被拒收（暂存，上级记录入库后自动入库）"
    assert d["reasons"] == [  # the settlement's lines and diagnosis wait for it
        {"table": "setl_d", "reason_code": "unknown_code", "reason": "编码不在国家编码表中", "rows": 1},
        {"table": "fee_list_d", "reason_code": "parent_held", "reason": held, "rows": 2},
        {"table": "setl_list_diag_d", "reason_code": "parent_held", "reason": held, "rows": 1}]
    assert d["totals"]["rows_in"] == sum(row_count(region).values())
    assert d["totals"]["quarantined"] == 4 and d["totals"]["held"] == 3 and d["totals"]["refused"] == 0

    counts = quarantine_counts(settings.warehouse)
    assert counts.to_dict("records") == [
        {"table": "fee_list_d", "reason_code": "parent_held", "reason": held, "rows": 2},
        {"table": "setl_d", "reason_code": "unknown_code", "reason": "编码不在国家编码表中", "rows": 1},
        {"table": "setl_list_diag_d", "reason_code": "parent_held", "reason": held, "rows": 1}]
    assert len(list_quarantine(settings.warehouse, table="setl_d", reason="unknown_code")) == 1
    line = list_quarantine(settings.warehouse, table="fee_list_d").iloc[0]
    assert "S002" in line.reason and "第2行被隔离（unknown_code）" in line.reason
    assert len(list_quarantine(settings.warehouse, table="mdtrt_d")) == 0
    with pytest.raises(ValueError):
        list_quarantine(settings.warehouse, reason="no_such_reason")


def test_quarantine_helpers_on_missing_warehouse(tmp_path):
    with pytest.raises(FileNotFoundError):
        quarantine_counts(tmp_path / "none.duckdb")


# -- birth dates: the year in the warehouse, the date in the identity vault ---------------------------


def _vault_birth_dates(settings) -> dict:
    with duckdb.connect(str(settings.identity_vault), read_only=True) as con:
        return dict(con.execute("SELECT psn_no, brdy FROM psn_identity").fetchall())


def test_the_warehouse_keeps_the_birth_year_and_the_vault_the_date(region, write, settings):
    set_row(region, "psn_info", "PSN003", gend="9")  # quarantined: its raw row must not show the date either
    report = ingest(write(region), settings)
    assert report.table("psn_info").loaded == 2
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert dict(con.execute("SELECT psn_no, birth_year FROM psn_info").fetchall()) == {"PSN001": 1980, "PSN002": 1992}
        columns = {t: [r[0] for r in con.execute(f"DESCRIBE {t}").fetchall()] for t in ("psn_info", "setl_d")}
        dated = con.execute("SELECT count(*) FROM duckdb_columns() WHERE data_type = 'DATE' "
                            "AND (column_name ILIKE '%brdy%' OR column_name ILIKE '%birth%')").fetchone()[0]
        setl_years = {r[0] for r in con.execute("SELECT DISTINCT birth_year FROM setl_d").fetchall()}
    assert "brdy" not in columns["psn_info"] and not {"brdy", "age"} & set(columns["setl_d"]) and dated == 0
    assert setl_years <= {1980, 1992, 2015, None}
    assert _vault_birth_dates(settings) == {"PSN001": date(1980, 1, 1), "PSN002": date(1992, 3, 15)}
    raw = json.loads(list_quarantine(settings.warehouse, table="psn_info").iloc[0].raw)
    assert raw["brdy"] == "2015-**-**" and "2015-07-20" not in json.dumps(raw)


def test_a_birth_date_corrected_within_its_year_is_a_correction(region, write, settings):
    ingest(write(region, name="a"), settings)
    set_row(region, "psn_info", "PSN002", brdy="1992-03-16")  # the warehouse's birth year does not change
    src = write(region, name="b")
    held = ingest(src, settings)
    assert quarantined(settings, "psn_info") == {("psn_info", "PSN002", "brdy", "changed_after_load")}
    assert held.table("psn_info").corrected == 0 and _vault_birth_dates(settings)["PSN002"] == date(1992, 3, 15)
    applied = ingest(src, settings, apply_corrections=True)
    assert applied.table("psn_info").corrected == 1
    assert _vault_birth_dates(settings)["PSN002"] == date(1992, 3, 16)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT birth_year FROM psn_info WHERE psn_no = 'PSN002'").fetchone() == (1992,)
        old = json.loads(con.execute("SELECT old_row FROM row_versions WHERE row_key = 'PSN002'").fetchone()[0])
    assert old["birth_year"] == 1992 and "brdy" not in old  # the old version keeps no date either


def test_a_warehouse_made_before_is_refused_by_the_rules_then_migrated_by_ingest(region, write, settings):
    from features.warehouse import OldWarehouseError, birth_dates_view

    src = write(region)
    ingest(src, settings)
    with duckdb.connect(str(settings.warehouse)) as con:  # the old layout: exact dates in the warehouse
        con.execute(f"ATTACH '{settings.identity_vault}' AS v")
        con.execute("ALTER TABLE psn_info ADD COLUMN brdy DATE")
        con.execute("UPDATE psn_info p SET brdy = v.brdy FROM v.psn_identity v WHERE v.psn_no = p.psn_no")
        con.execute("ALTER TABLE v.psn_identity DROP COLUMN brdy")
        for table in ("main.setl_d", "held.setl_d"):
            con.execute(f"ALTER TABLE {table} ADD COLUMN brdy DATE")
            con.execute(f"ALTER TABLE {table} ADD COLUMN age DOUBLE")
        con.execute("UPDATE setl_d s SET brdy = p.brdy, age = 40 FROM psn_info p WHERE p.psn_no = s.psn_no")
        for table in ("main.psn_info", "main.setl_d", "held.setl_d"):
            con.execute(f"ALTER TABLE {table} DROP COLUMN birth_year")
    with duckdb.connect(str(settings.warehouse), read_only=True) as con, pytest.raises(OldWarehouseError,
                                                                                    match="yibao ingest"):
        birth_dates_view(con)
    report = ingest(src, settings)  # the same extract: nothing new, but the layout is migrated
    assert any("迁移" in n for n in report.table("psn_info").notes)
    assert all(t.unchanged == t.rows_in for t in report.tables if t.status == "ok")
    assert _vault_birth_dates(settings)["PSN002"] == date(1992, 3, 15)
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT birth_year FROM psn_info WHERE psn_no = 'PSN002'").fetchone() == (1992,)
        for schema, table in (("main", "psn_info"), ("main", "setl_d"), ("held", "setl_d")):
            cols = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE schema_name = ? "
                                              "AND table_name = ?", [schema, table]).fetchall()}
            assert "brdy" not in cols and "age" not in cols and "birth_year" in cols, (schema, table)
        assert dict(con.execute("SELECT setl_id, birth_year FROM setl_d").fetchall())["S001"] == 1980
        birth_dates_view(con)
        assert con.execute("SELECT brdy FROM psn_birth WHERE psn_no = 'PSN001'").fetchone() == (date(1980, 1, 1),)

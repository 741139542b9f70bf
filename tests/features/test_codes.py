"""Canonical codes: the same extract written with codes in other forms loads the same warehouse."""

from __future__ import annotations

import duckdb
import pytest
from conftest import mini_region

from features.codes import CodeMap, canonical, code_form, item_code_forms
from features.ingest import ingest

BED = "001102000010000"  # 床位费, the mini region's national service-item code


@pytest.mark.parametrize("written", list(item_code_forms(BED).values()) + ["１１０２０００".join(["00", "010000"]),
                                                                            "1102000010000_B2", "001102000010000a"])
def test_every_written_form_of_a_service_item_is_the_national_code(written):
    assert canonical("list", written).code == BED


@pytest.mark.parametrize("written,expected", [
    ("J18.900", "J18.900"), ("J18900", "J18.900"), ("j18.9", "J18.900"), ("J18", "J18"), ("i10.X00", "I10.x00"),
    ("Ｊ１８．９００", "J18.900"), (" S72.000 ", "S72.000"), ("M8140/3", "M8140/3"),
])
def test_icd_forms(written, expected):
    assert canonical("icd", written).code == expected


def test_codes_that_cannot_be_placed_are_left_and_said():
    assert canonical("list", "1.1020e+12").code == "1.1020e+12"  # a float: quarantined as code_as_float
    assert canonical("list", "0012010000100001").code == "0012010000100001"  # 16 digits: not guessed
    c = canonical("list", "310100001", known={BED})
    assert (c.code, c.unresolved) == ("310100001", "price_code_unmatched")
    assert canonical("list", "110200001", known={BED}).code == BED
    assert canonical("list", "110200001").unresolved == "price_code_unmatched"  # no catalogue: not guessed
    assert code_form("1102000010000-a") == "local_suffix"


def test_code_map_stops_caching_at_its_bound(monkeypatch):
    monkeypatch.setattr(CodeMap, "MAX_CACHED", 2)
    m = CodeMap("plain")
    assert [m(x) for x in ("a", "b", "c", "c")] == ["A", "B", "C", "C"]
    assert len(m._cache) == 2


def _dialect(region):
    """The mini region as another extract writes it: items without their leading zeros or with a local
    suffix, the catalogue's bed code as a 9-digit 价格项目 code, a lower-case drug code with padding,
    diagnoses without the dot or in lower case, full-width digits."""
    for row in region["fee_list_d"]:
        if row["hilist_code"] == BED:
            row["hilist_code"] = BED[2:] if row["bkkp_sn"] != "F0002" else BED + "-a"
        elif row["hilist_code"].startswith("XA01"):
            row["hilist_code"] = " " + row["hilist_code"].lower()
    for row in region["stock_moves"]:
        row["hilist_code"] = "ＸＡ０１ＡＡＡ０１２Ａ００１"
    for row in region["hilist"]:
        if row["hilist_code"] == BED:
            row["hilist_code"] = BED[2:]
    for row in region["setl_list_diag_d"]:
        row["diag_code"] = row["diag_code"].replace(".", "") if row["setl_id"] != "S002" else row["diag_code"].lower()
    for row in region["mdtrt_d"]:
        if row["dscg_maindiag_code"]:
            row["dscg_maindiag_code"] = row["dscg_maindiag_code"].lower()
    return region


def _rows(warehouse, sql):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return sorted(con.execute(sql).fetchall())


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_an_extract_in_another_dialect_loads_the_national_codes(region, write, settings, tmp_path, fmt):
    from features.config import Settings

    national = Settings(warehouse=tmp_path / "n.duckdb", pseudonym_key=settings.pseudonym_key, as_of=settings.as_of)
    ingest(write(mini_region(), fmt=fmt, name="national"), national)
    report = ingest(write(_dialect(region), fmt=fmt), settings)

    assert report.ok and report.total("quarantined") == 0
    for table, cols in {"fee_list_d": "bkkp_sn, hilist_code", "hilist": "hilist_code, hilist_name",
                        "stock_moves": "month, hilist_code", "setl_list_diag_d": "setl_id, diag_code",
                        "mdtrt_d": "mdtrt_id, dscg_maindiag_code"}.items():
        assert _rows(settings.warehouse, f"SELECT {cols} FROM {table}") == \
            _rows(national.warehouse, f"SELECT {cols} FROM {table}"), table
    # the code as written is kept beside it, the local suffix on its own
    kept = dict(_rows(settings.warehouse, "SELECT bkkp_sn, [hilist_code_raw, hilist_code_suffix] FROM fee_list_d"))
    assert kept["F0002"] == [BED + "-a", "-A"]
    assert kept["F0001"] == [" xa01aaa012a001", None] if fmt == "parquet" else kept["F0001"][1] is None
    assert kept["F0003"] == [None, None]  # already canonical: nothing kept twice
    assert _rows(national.warehouse, "SELECT DISTINCT hilist_code_raw FROM fee_list_d") == [(None,)]
    rewrites = {(t["table"], t["field"], t["rewrite"]): t["rows"] for t in report.to_dict()["code_rewrites"]}
    assert rewrites[("hilist", "hilist_code", "lost_zeros")] == 1
    assert rewrites[("fee_list_d", "hilist_code", "local_suffix")] == 1
    assert rewrites[("stock_moves", "hilist_code", "fullwidth")] == 2
    assert rewrites[("setl_list_diag_d", "diag_code", "icd_form")] == 4  # J18900 and the like
    assert rewrites[("setl_list_diag_d", "diag_code", "case")] == 1  # j06.900
    # the national extract loaded over it changes nothing: same canonical content
    again = ingest(write(mini_region(), fmt=fmt, name="national"), settings)
    assert again.total("loaded") == 0 and again.total("quarantined") == 0


def test_price_codes_map_only_when_the_catalogue_makes_them_unambiguous(region, write, settings):
    region["hilist"].append({**region["hilist"][1], "hilist_code": "001102000010001", "hilist_name": "床位费(加床)"})
    region["hilist"].append({**region["hilist"][2], "hilist_code": "003101000010000", "hilist_name": "某治疗"})
    region["fee_list_d"][1]["hilist_code"] = "110200001"  # two catalogue codes extend it: left, reported
    region["fee_list_d"][2]["hilist_code"] = "310100001"  # one does: mapped
    report = ingest(write(region), settings)

    codes = dict(_rows(settings.warehouse, "SELECT bkkp_sn, hilist_code FROM fee_list_d"))
    assert codes["F0002"] == "110200001" and codes["F0003"] == "003101000010000"
    (left,) = report.table("fee_list_d").code_unresolved
    assert left == ("hilist_code", "price_code_ambiguous", 1, ("110200001",))
    assert any("110200001" in p for p in report.problems)


def test_a_checked_clean_label_needs_no_typology(region, write, settings):
    region["labels"].append({"entity_type": "setl", "entity_id": "S002", "label": "0", "fraud_type": None,
                             "amount": "0.00", "source": "verified_clue", "decided_at": "2024-07-02 09:00:00"})
    region["labels"].append({"entity_type": "setl", "entity_id": "S003", "label": "1", "fraud_type": None,
                             "amount": "37.50", "source": "verified_clue", "decided_at": "2024-07-02 09:00:00"})
    report = ingest(write(region), settings)

    t = report.table("labels")
    assert (t.loaded, t.quarantined, dict(t.reasons)) == (3, 1, {"missing_required": 1})
    assert _rows(settings.warehouse, "SELECT entity_id, fraud_type FROM labels WHERE label = 0") == [
        ("S001", "price_over_cap"), ("S002", None)]

"""Ingest of CSV written the way Chinese tools write it: GBK/GB18030, UTF-8 with BOM, CRLF, slashed dates.

Every variant of the mini region must load into exactly the warehouse rows of the plain UTF-8 CSV; bytes
that are neither are refused (whole file) or quarantined (a line), never loaded as mojibake.
"""

from __future__ import annotations

import gzip
import re

import duckdb
import pytest

from features.contract import TABLES
from features.encoding import detect_encoding, utf8_copy
from features.ingest import ingest, list_quarantine

_DATE = re.compile(r"\b([0-9]{4})-([0-9]{2})-([0-9]{2})\b")


def recode(src, *, encoding: str = "utf-8", crlf: bool = False, dates: str | None = None) -> None:
    """Rewrite every CSV file under ``src`` in ``encoding`` (a file that GBK cannot write goes out as
    GB18030, as real exports do), with CRLF line ends and slashed dates (``slash`` 2024/05/01,
    ``slash_short`` 2024/5/1) as asked."""
    for path in src.rglob("*.csv"):
        text = path.read_text(encoding="utf-8")
        if dates == "slash":
            text = _DATE.sub(r"\1/\2/\3", text)
        elif dates == "slash_short":
            text = _DATE.sub(lambda m: f"{m[1]}/{int(m[2])}/{int(m[3])}", text)
        if crlf:
            text = text.replace("\n", "\r\n")
        try:
            path.write_bytes(text.encode(encoding))
        except UnicodeEncodeError:
            path.write_bytes(text.encode("gb18030"))


def warehouse_rows(settings) -> dict[str, list[tuple]]:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return {t: sorted(con.execute(f"SELECT * EXCLUDE (_ingest_batch) FROM {t}").fetchall(), key=repr)
                for t in TABLES}


def quarantined(settings) -> set[tuple[str, str, str, str]]:
    q = list_quarantine(settings.warehouse, limit=None)
    return {(r.table_name, r.row_key, r.field, r.reason_code) for r in q.itertuples()}


@pytest.fixture
def baseline(region, write, settings, tmp_path):
    """The warehouse rows of the mini region as plain UTF-8 CSV (with a GB18030-only character)."""
    region["fixmedins"][1]["fixmedins_name"] = "康民大药房（刘䶮店）"  # U+4DAE: 4 bytes in GB18030, not in GBK
    base = settings.__class__(warehouse=tmp_path / "base" / "w.duckdb", pseudonym_key=settings.pseudonym_key,
                              as_of=settings.as_of)
    report = ingest(write(region, name="plain"), base)
    assert report.ok and not report.problems
    return warehouse_rows(base)


@pytest.mark.parametrize("encoding,crlf,dates", [
    ("gbk", False, None),
    ("gb18030", True, "slash"),
    ("utf-8-sig", True, "slash_short"),
    ("utf-8", True, "slash"),
    ("gbk", True, "slash_short"),
])
def test_local_csv_loads_the_same_rows_as_plain_utf8(baseline, region, write, settings, encoding, crlf, dates):
    region["fixmedins"][1]["fixmedins_name"] = "康民大药房（刘䶮店）"
    src = write(region, folder=True, parts=2)
    recode(src, encoding=encoding, crlf=crlf, dates=dates)
    if encoding.startswith("gb"):
        assert detect_encoding(src / "psn_info" / "part-00000.csv").encoding == "gb18030"
        with pytest.raises(UnicodeDecodeError):
            (src / "psn_info" / "part-00000.csv").read_bytes().decode("utf-8")

    report = ingest(src, settings)

    assert report.ok and not report.problems
    assert quarantined(settings) == set()
    assert warehouse_rows(settings) == baseline


def test_gbk_bytes_that_are_valid_utf8_are_read_as_gbk(region, write, settings):
    # Hanzi whose GBK bytes form 2-byte UTF-8 sequences: as UTF-8 the file reads 'Â·Ã¦' and the like.
    chars = [c for c in "卢路鲁陆楼芦炉录驴盲茫猫茅忙" if _valid_utf8(c.encode("gbk"))]
    assert len(chars) >= 8
    names = ["".join(chars[:4]), "".join(chars[4:8])]
    region["fixmedins"][0]["fixmedins_name"], region["fixmedins"][1]["fixmedins_name"] = names
    region["fixmedins"][0]["specialties"] = None
    src = write({"fixmedins": region["fixmedins"]})
    path = src / "fixmedins.csv"
    data = path.read_text(encoding="utf-8").encode("gbk")
    path.write_bytes(data)
    assert _valid_utf8(data)  # the trap: it decodes as UTF-8 without error

    report = ingest(src, settings)

    assert report.table("fixmedins").loaded == 2 and quarantined(settings) == set()
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        loaded = sorted(r[0] for r in con.execute("SELECT fixmedins_name FROM fixmedins").fetchall())
    assert loaded == sorted(names)


def test_utf8_with_greek_letters_and_symbols_stays_utf8(tmp_path):
    path = tmp_path / "hilist.csv"
    path.write_text("hilist_code,hilist_name\nXA01,注射用重组人干扰素α-2b 10μg\nXA02,体温计 ±0.1°C\n"
                    "XA03,阿卜杜·热合曼\n", encoding="utf-8")
    assert detect_encoding(path).encoding == "utf-8"
    path.write_text("code,range\nL01,36.0-37.2°C ±0.1\nL02,αβ\n", encoding="utf-8")  # valid GBK too, no hanzi
    assert detect_encoding(path).encoding == "utf-8"


def test_gbk_line_with_a_broken_character_is_quarantined_alone(region, write, settings):
    src = write(region)
    recode(src, encoding="gbk")
    path = src / "setl_list_diag_d.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace("高血压".encode("gbk"), "高血".encode("gbk") + b"\xd1")  # a lead byte cut off
    path.write_bytes(b"\n".join(lines))

    report = ingest(src, settings)

    assert quarantined(settings) == {("setl_list_diag_d", "S001|I10.x00", "diag_name", "broken_encoding")}
    q = list_quarantine(settings.warehouse, table="setl_list_diag_d").iloc[0]
    assert q.row_number == 2 and "GB18030/GBK" in q.reason
    assert report.table("setl_list_diag_d").loaded == 4
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT diag_name FROM setl_list_diag_d WHERE setl_id = 'S002'").fetchone() == (
            "急性上呼吸道感染",)


def test_file_in_neither_encoding_is_refused_with_its_byte_offset(region, write, settings):
    src = write(region)
    path = src / "hilist.csv"
    data = re.sub(rb"[\x80-\xff]+", b"\xff\xfe\x80\x80", path.read_bytes())  # every name: bytes of no encoding
    path.write_bytes(data)
    first = data.index(b"\xff")

    report = ingest(src, settings)

    hilist = report.table("hilist")
    assert hilist.status == "error" and "hilist.csv" in hilist.error
    assert f"第 {first} 字节" in hilist.error and "UTF-8" in hilist.error and "GB18030" in hilist.error
    assert report.table("fixmedins").loaded == 2  # the other tables go on


def test_utf16_file_is_refused(region, write, settings):
    src = write(region)
    path = src / "practitioner.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16"))
    report = ingest(src, settings)
    assert report.table("practitioner").status == "error" and "UTF-16" in report.table("practitioner").error


def test_nul_bytes_quarantine_their_line_and_never_reach_the_warehouse(region, write, settings):
    region["practitioner"][1]["title"] = b"\xe4\xbd\x8f\x00\xe9\x99\xa2"  # '住\0院'
    src = write(region)
    report = ingest(src, settings)

    assert quarantined(settings) == {("practitioner", "D002", "title", "broken_encoding")}
    q = list_quarantine(settings.warehouse, table="practitioner").iloc[0]
    assert q.row_number == 2 and "NUL" in q.reason
    assert report.table("practitioner").loaded == 2
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM practitioner WHERE contains(title, chr(0))").fetchone() == (0,)


def test_file_of_nul_bytes_is_refused(region, write, settings):
    src = write(region)
    path = src / "fixmedins.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16-le"))  # no byte-order mark
    report = ingest(src, settings)
    assert report.table("fixmedins").status == "error" and "NUL" in report.table("fixmedins").error


def test_gzipped_gbk_csv(region, write, settings, tmp_path):
    src = write({"fixmedins": region["fixmedins"]})
    plain = src / "fixmedins.csv"
    with gzip.open(src / "fixmedins.csv.gz", "wb") as fh:
        fh.write(plain.read_text(encoding="utf-8").encode("gbk"))
    plain.unlink()
    report = ingest(src, settings)
    assert report.table("fixmedins").loaded == 2
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert ("长春市第一医院",) in con.execute("SELECT fixmedins_name FROM fixmedins").fetchall()


def test_gbk_is_read_through_a_copy_beside_the_warehouse_that_is_removed(region, write, settings, monkeypatch):
    import features.ingest

    made = []

    def copy(path, text, target):
        made.append(target)
        return utf8_copy(path, text, target)

    monkeypatch.setattr(features.ingest, "utf8_copy", copy)
    src = write(region)
    recode(src, encoding="gbk")
    ingest(src, settings)
    assert len(made) == sum(not p.read_bytes().isascii() for p in src.glob("*.csv")) >= 5  # ASCII is UTF-8 too
    assert {p.parent for p in made} == {settings.warehouse.parent.resolve()}
    assert not [p for p in made if p.exists()]


def test_slashed_times_are_the_same_values_and_other_forms_stay_bad(region, write, settings):
    rows = region["setl_d"]
    rows[0]["setl_time"] = "2024/05/05 10:30:00"
    rows[1]["begndate"] = "2024/5/3"
    rows[2]["setl_time"] = "2024/05/06 15:06"  # no seconds
    rows[3]["begndate"] = "2024.05.03"
    ingest(write(region), settings)
    assert {(k, f, c) for t, k, f, c in quarantined(settings) if t == "setl_d"} == {
        ("S003", "setl_time", "bad_type"), ("S004", "begndate", "bad_type")}
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        got = con.execute("SELECT setl_id, setl_time, begndate FROM setl_d WHERE setl_id IN ('S001', 'S002') "
                          "ORDER BY 1").fetchall()
    assert [(s, str(t), str(d)) for s, t, d in got] == [("S001", "2024-05-05 10:30:00", "2024-05-01"),
                                                         ("S002", "2024-05-03 09:40:00", "2024-05-03")]


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


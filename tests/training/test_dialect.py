"""Extract dialects (数据方言): the same region, with only the code columns (and for mixed CSV the files)
written the way a 医保局's own extract writes them."""

from __future__ import annotations

import hashlib
import json
import re

import pandas as pd
import pytest

from features.codes import canonical
from features.contract import TABLES
from features.encoding import detect_encoding
from training.simulator import simulate
from training.simulator.dialect import DIALECTS, icd_form, item_form, plan_dialect, price_codes

# (table, column) -> canonical kind of the code columns a dialect may rewrite.
CODE_COLUMNS = {
    ("fee_list_d", "hilist_code"): "list", ("fee_list_d", "med_list_codg"): "list",
    ("fee_list_d", "bilg_dept_codg"): "plain", ("hilist", "hilist_code"): "list",
    ("stock_moves", "hilist_code"): "list", ("setl_list_diag_d", "diag_code"): "icd",
    ("mdtrt_d", "dscg_maindiag_code"): "icd", ("mdtrt_d", "adm_dept_codg"): "plain",
    ("practitioner", "dept_codg"): "plain",
}
# What each dialect must change (the simulated stock moves are drugs only: no service item to strip).
INTENDED = {
    "lost-zeros": {("fee_list_d", "hilist_code"), ("fee_list_d", "med_list_codg"), ("hilist", "hilist_code")},
    "local-suffix": {("fee_list_d", "hilist_code"), ("fee_list_d", "med_list_codg")},
    "mixed": set(CODE_COLUMNS),
}
SERVICE_ITEM = re.compile(r"00[0-9]{13}")


def read(region, table: str) -> pd.DataFrame:
    return pd.read_parquet(region / table)


@pytest.fixture(scope="module")
def dialect_regions(tmp_path_factory) -> dict:
    """The tiny region (seed 7) as Parquet in each dialect but national."""
    out = {}
    for d in DIALECTS[1:]:
        out[d] = tmp_path_factory.mktemp(d) / "region"
        simulate("tiny", seed=7, out=out[d], dialect=d)
    return out


@pytest.mark.parametrize("dialect", DIALECTS[1:])
def test_each_dialect_changes_exactly_its_code_columns(tiny_region, dialect_regions, dialect):
    changed = set()
    for table in TABLES:
        national, local = read(tiny_region, table), read(dialect_regions[dialect], table)
        assert list(local.columns) == list(national.columns) and len(local) == len(national), table
        for col in national.columns:
            if not national[col].equals(local[col]):
                changed.add((table, col))
    assert changed == INTENDED[dialect]
    report = json.loads((dialect_regions[dialect] / "simulation.json").read_text(encoding="utf-8"))
    assert report["dialect"] == dialect and report["dialect_plan"]


def test_lost_zeros_strips_the_00_of_every_service_item_code_and_only_that(tiny_region, dialect_regions):
    for table in ("fee_list_d", "hilist"):
        old = read(tiny_region, table)["hilist_code"]
        new = read(dialect_regions["lost-zeros"], table)["hilist_code"]
        service = old.str.fullmatch(SERVICE_ITEM.pattern)
        assert service.any()
        assert (new[service] == old[service].str[2:]).all()
        assert (new[~service] == old[~service]).all()


def test_local_suffix_adds_one_suffix_per_institution_and_item(tiny_region, dialect_regions):
    old = read(tiny_region, "fee_list_d")
    new = read(dialect_regions["local-suffix"], "fee_list_d")
    service = old["hilist_code"].str.fullmatch(SERVICE_ITEM.pattern)
    assert (new.loc[~service, "hilist_code"] == old.loc[~service, "hilist_code"]).all()
    written = new.loc[service, "hilist_code"]
    back = [canonical("list", c) for c in written]
    assert [c.code for c in back] == old.loc[service, "hilist_code"].tolist()
    assert all(c.suffix for c in back)
    per_pair = new[service].groupby(["fixmedins_code", old.loc[service, "hilist_code"]])["hilist_code"].nunique()
    assert (per_pair == 1).all()
    assert len({c.suffix[0] for c in back}) >= 2  # institutions differ in how they write suffixes


def test_mixed_codes_all_map_back_to_the_national_ones(tiny_region, dialect_regions):
    known = set(read(tiny_region, "hilist")["hilist_code"])
    seen = []
    for (table, col), kind in CODE_COLUMNS.items():
        old = read(tiny_region, table)[col]
        new = read(dialect_regions["mixed"], table)[col]
        back = {v: canonical(kind, v, known=known if kind == "list" else None) for v in new.dropna().unique()}
        assert not [v for v, c in back.items() if c.unresolved], (table, col)
        assert (new.map(lambda v: back[v].code if v is not None else None).fillna("~") == old.fillna("~")).all(), \
            (table, col)
        seen += list(new.dropna().unique())
    forms = {
        "13-digit": r"[1-9][0-9]{12}", "suffixed": r"(00[0-9]{13}|[1-9][0-9]{12})[-_A-Za-z][0-9A-Za-z]*",
        "9-digit": r"[1-9][0-9]{8}", "full-width": r".*[０-９].*", "lower-case drug": r"x[a-z0-9]{13,}",
        "padded": r" \S+ ", "ICD without dot": r"[A-Z][0-9]{2}[0-9X][0-9A-Z]{2}", "ICD short lower": r"[a-z][0-9]{2}\.[0-9x]",
        "department lower": r"[a-z][0-9]{2}(\.[0-9]{2})?",
    }
    missing = [name for name, pattern in forms.items() if not any(re.fullmatch(pattern, v) for v in seen)]
    assert not missing


def test_mixed_nine_digit_codes_map_back_to_one_catalogue_code(tiny_region, dialect_regions):
    catalogue = [c for c in read(tiny_region, "hilist")["hilist_code"] if SERVICE_ITEM.fullmatch(c)]
    old = read(tiny_region, "fee_list_d")["hilist_code"]
    new = read(dialect_regions["mixed"], "fee_list_d")["hilist_code"]
    nine = new.str.fullmatch(r"[1-9][0-9]{8}")
    assert nine.sum() > 0
    for code, original in zip(new[nine], old[nine]):
        assert [c for c in catalogue if c.startswith("00" + code)] == [original]
    # the ambiguous ones (several catalogue codes share the 9 digits) are never written so
    shared = pd.Series([c[2:11] for c in catalogue]).value_counts()
    assert (shared > 1).any() and not set(new[nine]) & set(shared[shared > 1].index)


def test_price_codes_leave_out_shared_nine_digit_codes():
    codes = ["001201000010000", "001201000010001", "001202000010000", "XA01AAA012A001"]
    assert price_codes(codes) == {"001202000010000": "120200001"}


def test_code_forms_round_trip_through_canonical():
    for style in ("lost_zeros", "fullwidth", "lower", "padded"):
        for code in ("001201000010000", "XA01AAA012A001", "C14030000000000000001"):
            assert canonical("list", item_form(code, style)).code == code
    for code in ("J18.900", "N39.000", "I10.x00", "S72.000", "R51.x00", "W01.x00"):
        for style in ("undotted", "short_lower"):
            assert canonical("icd", icd_form(code, style)).code == code


def test_mixed_csv_files_are_written_the_local_way(tmp_path):
    out = tmp_path / "region"
    simulate("tiny", seed=7, out=out, fmt="csv", dialect="mixed", n_persons=300)
    report = json.loads((out / "simulation.json").read_text(encoding="utf-8"))
    encodings = report["dialect_plan"]["encodings"]
    assert set(encodings) == set(TABLES) and {"gbk", "gb18030", "utf-8-sig"} <= set(encodings.values())
    dates = report["dialect_plan"]["dates"]
    for table, encoding in encodings.items():
        data = (out / table / "part-00000.csv").read_bytes()
        text = data.decode(encoding)
        assert data.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
        assert data.count(b"\n") == data.count(b"\r\n") > 1
        assert detect_encoding(out / table / "part-00000.csv").encoding == (
            "utf-8-sig" if encoding == "utf-8-sig" else "gb18030") or text.isascii()
        assert not re.search(r"\b20[0-9]{2}-[0-9]{2}-[0-9]{2}\b", text), table
        month_day = r"[0-9]{2}/[0-9]{2}" if dates[table] == "slash" else r"[0-9]{1,2}/[0-9]{1,2}"
        if table in ("setl_d", "mdtrt_d", "fee_list_d", "labels"):
            assert re.search(rf"\b20[0-9]{{2}}/{month_day} [0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}\b", text), table
    gbk = [t for t, e in encodings.items() if e.startswith("gb") and t in ("fee_list_d", "setl_d", "mdtrt_d")]
    assert any(_not_utf8((out / t / "part-00000.csv").read_bytes()) for t in gbk)


def test_same_seed_same_files_other_seed_other_styles(tmp_path):
    def digest(folder):
        h = hashlib.sha256()
        for f in sorted(folder.rglob("*.csv")):
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
        return h.hexdigest()

    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        simulate("tiny", seed=seed, out=tmp_path / name, fmt="csv", dialect="mixed", n_persons=200)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert digest(tmp_path / "a") != digest(tmp_path / "c")


@pytest.mark.slow
def test_national_dialect_writes_todays_bytes(tiny_region, tmp_path):
    def digest(folder):
        h = hashlib.sha256()
        for f in sorted(folder.rglob("*.parquet")):
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
        return h.hexdigest()

    report = simulate("tiny", seed=7, out=tmp_path / "national", dialect="national")
    assert digest(tmp_path / "national") == digest(tiny_region)
    assert report.dialect == "national" and report.dialect_plan == {}


def test_unknown_dialect_is_refused(tmp_path):
    with pytest.raises(ValueError, match="dialect"):
        simulate("tiny", seed=7, out=tmp_path, dialect="cantonese")
    with pytest.raises(ValueError, match="dialect"):
        plan_dialect("cantonese", institutions=pd.DataFrame({"fixmedins_code": [], "fixmedins_type": []}),
                     catalogue=[], seed=1)


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False

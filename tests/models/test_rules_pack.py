"""The national 两库 rule pack: the committed Parquet file, its rebuild from ../shared, parsed values."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pyarrow.parquet as pq
import pytest

from models.rules import DEFAULT_PACK, PACK_COLUMNS, build_pack, load_pack, pack_version
from models.rules.pack import _normalise_code, _Sheet
from models.rules.summary import PUBLISHED_COUNTS

REPO = Path(__file__).resolve().parents[2]
LIANGKU = REPO.parent / "shared" / "reference" / "liangku"
needs_shared = pytest.mark.skipif(
    not LIANGKU.is_dir(),
    reason=f"the 两库 spreadsheets are not at {LIANGKU}: ../shared is not beside this clone",
)

POINTS_PER_RULE_KIND = {
    "gender": 6472 + 390,
    "age": 4398 + 30 + 1,
    "insurance_type": 112,
    "care_setting": 736,
    "institution_level": 962,
    "course_length": 1147 + 11,
    "duplicate_charge": 900,
    "frequency": 67,
    "period_frequency": 14,
    "primary_secondary_surgery": 378,
}
# shared/reference/README.md; batch 8-1 counts its 合计 and 备注 footer rows as two more.
README_COUNTS = PUBLISHED_COUNTS  # shared/reference/README.md; batch 8-1 counts its 合计 and 备注 rows too
TYPOLOGY_IDS = {
    "gender_age_limit", "insurance_type_limit", "care_setting_limit", "institution_level_limit",
    "course_length_limit", "duplicate_charge", "frequency_limit", "unbundled_surgery",
}


@pytest.fixture(scope="module")
def pack() -> pd.DataFrame:
    return load_pack()


def _one(pack: pd.DataFrame, **where) -> pd.Series:
    rows = pack
    for column, value in where.items():
        rows = rows[rows[column] == value]
    assert len(rows) == 1, f"{where}: {len(rows)} rows"
    return rows.iloc[0]


# --- the committed pack, no ../shared needed -----------------------------------------------------

def test_committed_pack_counts_per_rule_kind(pack):
    assert list(pack.columns) == list(PACK_COLUMNS)
    assert pack["rule_kind"].value_counts().to_dict() == POINTS_PER_RULE_KIND


def test_every_typology_id_present(pack):
    assert set(pack["typology_id"]) == TYPOLOGY_IDS


def test_codes_are_exact_strings_with_leading_zeros(pack):
    for column in ("hilist_code", "related_code"):
        codes = pack[column].dropna()
        assert codes.map(type).eq(str).all()
        assert not codes.str.contains(".", regex=False).any(), "float-looking code"
        assert not codes.str.fullmatch(r"[\d.]+[eE][+-]?\d+").any(), "code in scientific notation"
    drugs = pack.loc[pack.code_kind == "drug", "hilist_code"]
    assert drugs.str.fullmatch(r"[XZ][0-9A-Z]{19}(?:[0-9A-Z]{3})?").all()
    items = pd.concat([pack.loc[pack.code_kind == "item", "hilist_code"], pack["related_code"].dropna()])
    assert items.str.fullmatch(r"00\d{13}").all()


def test_point_ids_unique_and_traceable(pack):
    assert pack["point_id"].is_unique
    assert pack["point_id"].is_monotonic_increasing
    expected = "b" + pack.batch + "-" + pack.code_kind + "-" + pack.rule_kind + "-" + pack.row.astype(str).str.zfill(6)
    assert (pack["point_id"] == expected).all()
    drugs = pack[pack.code_kind == "drug"]
    assert (drugs["sheet"] == "Sheet2").all() and drugs["rule_row"].notna().all()


def test_version_in_metadata_rows_and_sidecar(pack):
    version = pack_version()
    assert re.fullmatch(r"liangku-2024\.1-[0-9a-f]{8}", version)
    assert set(pack["pack_version"]) == {version}
    sidecar = json.loads(DEFAULT_PACK.with_suffix(".json").read_text(encoding="utf-8"))
    assert sidecar["version"] == version
    assert sidecar["sha256"] == hashlib.sha256(DEFAULT_PACK.read_bytes()).hexdigest()
    assert sidecar["points_per_rule_kind"] == POINTS_PER_RULE_KIND
    assert set(sidecar["sources"]) == set(README_COUNTS)
    assert (pack["effective_from"] == pd.Timestamp("2024-01-01")).all()


def test_gender_limited_drug(pack):
    rows = pack[(pack.rule_kind == "gender") & (pack.hilist_name == "阿帕他胺片")]
    assert len(rows) == 3 and set(rows["gend"]) == {"1"}
    assert set(rows["hilist_code"]) >= {"XL02BBA326A001010102180"}
    assert set(pack.loc[pack.rule_kind == "gender", "gend"]) == {"1", "2"}


def test_duplicate_charge_pair(pack):
    row = _one(pack, rule_kind="duplicate_charge", hilist_code="001103000010000", related_code="001102000030000")
    assert (row.hilist_name, row.related_name, row.window) == ("急诊监护费", "急诊诊查费", "day")
    assert row.value_text == "含监护、床位、诊查、护理"
    assert pack.loc[pack.rule_kind == "duplicate_charge", "window"].value_counts().to_dict() == {
        "day": 446, "visit": 429, "6h": 18, "hour": 7,
    }


def test_period_frequency(pack):
    row = _one(pack, rule_kind="period_frequency", hilist_name="血清果糖胺测定")
    assert (row.hilist_code, row.period_days, row.max_count) == ("002503020020000", 7, 1)
    row = _one(pack, rule_kind="period_frequency", hilist_name="康复评定")
    assert (row.period_days, row.max_count, row.min_interval_days) == (14, 1, 14)


def test_frequency_units(pack):
    assert _one(pack, rule_kind="frequency", hilist_code="003107010220000")[["max_count", "count_unit"]].tolist() == [24, "hour"]
    assert _one(pack, rule_kind="frequency", hilist_name="侧脑室连续镇痛")[["max_count", "count_unit"]].tolist() == [1, "day"]
    assert _one(pack, rule_kind="frequency", hilist_name="住院诊查费")[["max_count", "count_unit"]].tolist() == [1, "day"]


def test_age_groups(pack):
    ages = pack[pack.rule_kind == "age"].groupby("value_text")[["age_min", "age_max"]].first()
    assert ages.loc["儿童"].age_max == 18 and pd.isna(ages.loc["儿童"].age_min)
    assert ages.loc["婴幼儿"].age_max == 3
    assert ages.loc["新生儿"].age_max == pytest.approx(28 / 365)
    assert ages.loc["参保人年龄超出法定就业年龄限制"].tolist() == [16, 60]
    assert pack.loc[pack.rule_kind == "age", "age_max"].notna().all()


def test_other_restrictions(pack):
    insurance = pack[pack.rule_kind == "insurance_type"].groupby("hilist_name")["insurance_only"].first()
    assert insurance["疤痕止痒软化膏"] == "工伤" and set(insurance) == {"工伤", "生育"}
    care = pack[pack.rule_kind == "care_setting"].groupby("hilist_name")["care_setting"].first()
    assert care["安宫牛黄丸"] == "inpatient_or_emergency"  # note: 限急诊或住院患者
    assert (care.drop("安宫牛黄丸") == "inpatient").all()
    level = pack[pack.rule_kind == "institution_level"].groupby("hilist_name")["min_hosp_level"].first()
    assert level["雷珠单抗注射液"] == 3 and level["参附注射液"] == 2
    course = pack[(pack.rule_kind == "course_length") & (pack.code_kind == "drug")].groupby("hilist_name")["max_days"].first()
    assert course["帕妥珠单抗注射液"] == 365 and course["注射用益气复脉(冻干)"] == 15 and course["天麻素注射液"] == 14
    item = _one(pack, rule_kind="course_length", hilist_code="003402000050000")
    assert (item.max_days, item.min_interval_days) == (90, 14)
    assert _one(pack, rule_kind="course_length", hilist_name="儿童听力障碍语言训练").max_days == 365
    weekly = _one(pack, rule_kind="period_frequency", hilist_code="003402000350000")  # 每周最多支付一次
    assert (weekly.max_count, weekly.period_days) == (1, 7)
    groups = pack[(pack.rule_kind == "primary_secondary_surgery") & (pack.hilist_code == "003310030080000")]
    assert set(groups["surgery_group"]) == {"胃肠手术组", "经腹直肠手术组", "肝胆手术组", "女性生殖系统手术组"}


def test_only_parameters_of_the_rule_kind_are_set(pack):
    own = {
        "gender": {"gend"}, "age": {"age_min", "age_max"}, "insurance_type": {"insurance_only"},
        "care_setting": {"care_setting"}, "institution_level": {"min_hosp_level"},
        "course_length": {"max_days", "min_interval_days"}, "duplicate_charge": {"window", "related_code", "related_name"},
        "frequency": {"max_count", "count_unit"}, "period_frequency": {"max_count", "period_days", "min_interval_days"},
        "primary_secondary_surgery": {"surgery_group"},
    }
    every = set().union(*own.values())
    for kind, rows in pack.groupby("rule_kind"):
        for column in every - own[kind]:
            assert rows[column].isna().all(), (kind, column)


def test_code_from_a_number_cell_gets_its_zeros_back():
    sheet = _Sheet("s", ("项目代码",), ((2, ("3402000320000",)), (3, ("003402000320000",))), frozenset({(2, 0)}))
    storage = {"text": 0, "number": 0, "zero_padded": 0}
    assert _normalise_code("3402000320000", sheet, 2, 0, 15, storage) == "003402000320000"
    assert _normalise_code("003402000320000", sheet, 3, 0, 15, storage) == "003402000320000"
    assert storage == {"text": 1, "number": 1, "zero_padded": 1}


def test_build_refuses_an_incomplete_source_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        build_pack(tmp_path, tmp_path / "pack.parquet")


# --- rebuilding from ../shared ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    if not LIANGKU.is_dir():
        pytest.skip(f"the 两库 spreadsheets are not at {LIANGKU}: ../shared is not beside this clone")
    out = tmp_path_factory.mktemp("pack") / "liangku_pack.parquet"
    return build_pack(LIANGKU, out)


@needs_shared
@pytest.mark.slow
def test_rebuild_equals_committed_pack(rebuilt, pack):
    assert rebuilt.version == pack_version()
    pd.testing.assert_frame_equal(load_pack(rebuilt.path), pack)
    same_writer = pq.ParquetFile(rebuilt.path).metadata.created_by == pq.ParquetFile(DEFAULT_PACK).metadata.created_by
    if same_writer:
        assert rebuilt.path.read_bytes() == DEFAULT_PACK.read_bytes()


@needs_shared
@pytest.mark.slow
def test_every_row_compiled_or_skipped_with_reason(rebuilt):
    skipped = {(s.file, s.row): s.reason for s in rebuilt.skipped}
    assert set(skipped) == {
        ("batch7-item-duplicate-charge.xlsx", 902),
        ("batch8-1-item-frequency.xlsx", 69),
        ("batch8-1-item-frequency.xlsx", 70),
    }
    assert skipped[("batch7-item-duplicate-charge.xlsx", 902)] == "blank row"
    assert "合计" in skipped[("batch8-1-item-frequency.xlsx", 69)]
    differs = {f: (n, README_COUNTS[f]) for f, n in rebuilt.points_per_file.items() if n != README_COUNTS[f]}
    assert differs == {"batch8-1-item-frequency.xlsx": (67, 69)}
    assert all(c["number"] == 0 for c in rebuilt.code_storage.values())  # the published files store codes as text
    assert any("15天" in w and "14 days" in w for w in rebuilt.warnings)


@needs_shared
@pytest.mark.slow
def test_build_is_byte_identical_and_versioned_by_content(rebuilt, tmp_path):
    again = build_pack(LIANGKU, tmp_path / "a.parquet")
    assert again.path.read_bytes() == rebuilt.path.read_bytes()
    later = build_pack(LIANGKU, tmp_path / "b.parquet", effective_from="2025-07-01")
    assert later.version.startswith("liangku-2025.7-") and later.version.split("-")[-1] != again.version.split("-")[-1]


@needs_shared
@pytest.mark.slow
def test_number_codes_and_orphan_drugs_in_edited_spreadsheets(tmp_path, pack):
    source = tmp_path / "liangku"
    shutil.copytree(LIANGKU, source)
    _edit(source / "batch8-2-item-age.xlsx", lambda book: book.active.__setitem__("D2", 3402000320000))
    _edit(source / "batch7-item-duplicate-charge.xlsx", lambda book: book.active.__setitem__("D2", 1103000010000.0))

    def orphans(book):
        book["Sheet1"].append(["无代码药", "说明", "限定保险类型", "工伤"])
        book["Sheet2"].append(["无目录药", 1, "ZH01AAB0066010100999", "限定保险类型"])

    _edit(source / "batch3-drug-insurance-type.xlsx", orphans)

    info = build_pack(source, tmp_path / "pack.parquet")
    assert info.code_storage["batch8-2-item-age.xlsx"] == {"text": 0, "number": 1, "zero_padded": 1}
    assert info.code_storage["batch7-item-duplicate-charge.xlsx"]["zero_padded"] == 1
    reasons = {(s.sheet, s.row): s.reason for s in info.skipped if s.file == "batch3-drug-insurance-type.xlsx"}
    assert reasons == {
        ("Sheet1", 14): "drug '无代码药' has no codes in Sheet2",
        ("Sheet2", 114): "drug '无目录药' is not in Sheet1 (or its Sheet1 row was skipped)",
    }
    assert info.version == pack_version()  # the codes came back exactly, nothing else changed
    pd.testing.assert_frame_equal(load_pack(info.path), pack)


def _edit(path: Path, change) -> None:
    book = openpyxl.load_workbook(path)
    change(book)
    book.save(path)

"""The national 两库 rule pack: knowledge points (知识点) of the 医保智能监管 knowledge base and rule base.

The National Healthcare Security Administration publishes its smart-supervision rules in batches of
spreadsheets (第一批 … 第八批). :func:`build_pack` reads the fourteen published files and compiles them
into one long table with one row per knowledge point, i.e. per (national code, restriction); the
compiled table is committed as ``models/rules/data/liangku_pack.parquet`` so a fresh clone has the
rules without the spreadsheets, and :func:`load_pack` reads it back.

Layouts of the published files:

* drug files (药品规则库): ``Sheet1`` holds one row per generic drug (药品通用名) with its restriction
  (限定类型) and value (限定对象/限定值域), ``Sheet2`` one row per national drug code (国标代码/药品代码)
  of that drug; the two are joined on 药品通用名. A drug point's ``sheet``/``row`` is its Sheet2 row
  and ``rule_row`` the Sheet1 row it takes the restriction from.
* item files (项目规则库): one sheet, one row per national service-item code (国标代码/项目编码/项目代码);
  batch 7 carries a main item (主项) and an included sub-item (从项) per row.

Every cell is read as text (``dtype=str``). A code stored as a number in the spreadsheet comes back
as the integer string left-padded with zeros to the width the file's text codes use. When a rule's
value and its own note disagree, the pack keeps the more permissive reading (fewer false clues) and
lists the disagreement in :attr:`PackInfo.warnings`.

``point_id`` is ``b<batch>-<code_kind>-<rule_kind>-<row:06d>`` (row of the code's sheet), so it is
stable as long as the published row is. Files without a 限定类型 column (batches 7, 8-x) take
``restriction`` from their sheet title (“医疗服务项目重复收费” -> 重复收费); ``value_text`` is the raw
限定对象/限定值域/限定性别/备注 cell, for batch 8-1 (no such column) 限制数量+数量单位 ('1日', '24小时').
The pack version is ``liangku-<year>.<month of effective_from>-`` plus the first 8 hex digits of a
SHA-256 over the sorted rows, so it changes only when a rule (or ``effective_from``) changes.

Mappings of the raw values (every distinct value in batches 1–8):

============================  ===========================================================
column                        raw value -> parsed value
============================  ===========================================================
``gend``                      男 -> '1', 女 -> '2' (the sex the code is limited TO; national ``gend``)
``age_min``/``age_max``       years, ``age_min <= age < age_max``; 儿童 -> [-, 18) (未满18周岁),
                              婴幼儿 -> [-, 3), 新生儿 -> [-, 28/365) (28 days),
                              参保人年龄超出法定就业年龄限制 -> [16, 60) (legal minimum working
                              age 16; 60 is the men's statutory retirement age before the 2025
                              reform, the most permissive bound, since the row names no sex)
``insurance_only``            工伤 -> '工伤', 生育 -> '生育'
``care_setting``              住院 -> 'inpatient'; 'inpatient_or_emergency' when the note reads
                              限急诊或住院患者 (wider than the value; see warnings)
``min_hosp_level``            一级/二级/三级 -> 1/2/3 (the lowest level allowed)
``max_days``                  drugs: 限定值域 'N天'; items: 备注 '不超过N天' / '不超过一年' -> 365
                              (8-3's '每周最多支付一次' is left to the 8-4 point of that code)
``min_interval_days``         items: 备注 '间隔时间不短于N天'
``max_count``/``count_unit``  batch 8-1, per calendar day: 日/天 -> 'day', 小时 -> 'hour'
                              (24 小时 = at most 24 hours billed a day); batch 8-4: 频次上限
``period_days``               batch 8-4 疗程周期 (max ``max_count`` within ``period_days`` days)
``window``                    单日 -> 'day', 单次就诊 -> 'visit', 6小时 -> '6h', 同一小时 -> 'hour'
``surgery_group``             batch 2 限定值域 as written (胃肠手术组, 肝胆手术组, …)
============================  ===========================================================

>>> pack = load_pack()
>>> apalutamide = pack[(pack.rule_kind == "gender") & (pack.hilist_name == "阿帕他胺片")]
>>> sorted(set(apalutamide.gend)), apalutamide.typology_id.iloc[0], len(apalutamide)
(['1'], 'gender_age_limit', 3)
>>> pack.loc[pack.hilist_code == "002503020020000", ["rule_kind", "max_count", "period_days"]].values.tolist()
[['period_frequency', 1, 7]]
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import openpyxl
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.codes import canonical

__all__ = [
    "DEFAULT_PACK",
    "PACK_COLUMNS",
    "RULE_KINDS",
    "TYPOLOGY_BY_RULE_KIND",
    "PackInfo",
    "SkippedRow",
    "MalformedSpreadsheet",
    "build_pack",
    "load_pack",
    "pack_version",
]

DEFAULT_PACK = Path(__file__).resolve().parent / "data" / "liangku_pack.parquet"

TYPOLOGY_BY_RULE_KIND: Mapping[str, str] = MappingProxyType(
    {
        "gender": "gender_age_limit",
        "age": "gender_age_limit",
        "insurance_type": "insurance_type_limit",
        "care_setting": "care_setting_limit",
        "institution_level": "institution_level_limit",
        "course_length": "course_length_limit",
        "duplicate_charge": "duplicate_charge",
        "frequency": "frequency_limit",
        "period_frequency": "frequency_limit",
        "primary_secondary_surgery": "unbundled_surgery",
    }
)
RULE_KINDS = tuple(TYPOLOGY_BY_RULE_KIND)

_SCHEMA = pa.schema(
    [
        ("point_id", pa.string()),
        ("batch", pa.string()),
        ("file", pa.string()),
        ("sheet", pa.string()),
        ("row", pa.int32()),
        ("rule_row", pa.int32()),
        ("rule_kind", pa.string()),
        ("typology_id", pa.string()),
        ("code_kind", pa.string()),
        ("hilist_code", pa.string()),
        ("hilist_name", pa.string()),
        ("restriction", pa.string()),
        ("value_text", pa.string()),
        ("note", pa.string()),
        ("gend", pa.string()),
        ("age_min", pa.float64()),
        ("age_max", pa.float64()),
        ("insurance_only", pa.string()),
        ("care_setting", pa.string()),
        ("min_hosp_level", pa.int32()),
        ("max_days", pa.int32()),
        ("min_interval_days", pa.int32()),
        ("max_count", pa.int32()),
        ("count_unit", pa.string()),
        ("period_days", pa.int32()),
        ("window", pa.string()),
        ("related_code", pa.string()),
        ("related_name", pa.string()),
        ("surgery_group", pa.string()),
        ("effective_from", pa.date32()),
        ("pack_version", pa.string()),
    ]
)
PACK_COLUMNS = tuple(_SCHEMA.names)

_META_VERSION = b"liangku.pack_version"
_META_EFFECTIVE_FROM = b"liangku.effective_from"
_META_SOURCES = b"liangku.sources"


@dataclass(frozen=True)
class SkippedRow:
    """A spreadsheet row that yielded no knowledge point, and why."""

    file: str
    sheet: str
    row: int
    reason: str
    field: str | None = None  # the column header of the offending cell, when one cell is the cause

    @property
    def malformed(self) -> bool:
        """A data row whose content could not be read (not a blank row or a total/footnote row)."""
        return not (self.reason == "blank row" or "footer/total row" in self.reason)


class MalformedSpreadsheet(ValueError):
    """Rows of the spreadsheets that could not be read (``build_pack(strict=True)``): file, sheet, row, field."""

    def __init__(self, rows: list[SkippedRow]):
        self.rows = tuple(rows)
        lines = [f"{r.file} / {r.sheet} / row {r.row} / field {r.field or '-'}: {r.reason}" for r in rows[:20]]
        more = f"\n... and {len(rows) - 20} more" if len(rows) > 20 else ""
        super().__init__(f"{len(rows)} malformed spreadsheet row(s):\n" + "\n".join(lines) + more)


@dataclass(frozen=True)
class PackInfo:
    """What :func:`build_pack` wrote: the version, where, from which files, and what it left out."""

    version: str
    path: Path
    sha256: str
    effective_from: str
    sources: Mapping[str, str]
    points_per_file: Mapping[str, int]
    points_per_rule_kind: Mapping[str, int]
    data_rows_per_file: Mapping[str, Mapping[str, int]]
    code_storage: Mapping[str, Mapping[str, int]]
    skipped: tuple[SkippedRow, ...] = ()
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the sidecar ``liangku_pack.json`` holds the same, with the file name only)."""
        return {
            "version": self.version,
            "path": str(self.path),
            "sha256": self.sha256,
            "effective_from": self.effective_from,
            "sources": dict(self.sources),
            "points_per_file": dict(self.points_per_file),
            "points_per_rule_kind": dict(self.points_per_rule_kind),
            "data_rows_per_file": {f: dict(s) for f, s in self.data_rows_per_file.items()},
            "code_storage": {f: dict(c) for f, c in self.code_storage.items()},
            "skipped": [asdict(s) for s in self.skipped],
            "warnings": list(self.warnings),
        }


def build_pack(
    source_dir: Path, out: Path = DEFAULT_PACK, *, effective_from: str = "2024-01-01", strict: bool = False
) -> PackInfo:
    """Compile the 14 两库 spreadsheets in *source_dir* into the Parquet pack at *out*.

    Writes *out* (zstd Parquet, sorted by ``point_id``, version in the key-value metadata) and a
    sidecar ``<out>.json``. The same spreadsheets and ``effective_from`` give a byte-identical file.
    Every data row becomes a knowledge point or a :class:`SkippedRow`; nothing is dropped silently.
    With *strict*, a malformed row (not a blank or total/footnote row) raises
    :class:`MalformedSpreadsheet`, naming file, sheet, row and field, and nothing is written.
    """
    source_dir = Path(source_dir)
    out = Path(out)
    effective = date.fromisoformat(effective_from)
    _check_source_files(source_dir)

    points: list[dict[str, Any]] = []
    skipped: list[SkippedRow] = []
    warnings: list[str] = []
    sources: dict[str, str] = {}
    data_rows: dict[str, dict[str, int]] = {}
    storage: dict[str, dict[str, int]] = {}
    for source in _SOURCES:
        path = source_dir / source.file
        sources[source.file] = _sha256(path)
        sheets = _read_workbook(path)
        data_rows[source.file] = {s.name: len(s.rows) for s in sheets}
        compiled = _compile_file(source, sheets)
        points += compiled.points
        skipped += compiled.skipped
        warnings += compiled.warnings
        storage[source.file] = compiled.storage
        _check_every_row_accounted(source, sheets, compiled)

    if strict and (bad := [r for r in skipped if r.malformed]):
        raise MalformedSpreadsheet(bad)
    for p in points:
        p["effective_from"] = effective
        p["typology_id"] = TYPOLOGY_BY_RULE_KIND[p["rule_kind"]]
    points.sort(key=lambda p: p["point_id"])
    ids = Counter(p["point_id"] for p in points)
    if max(ids.values(), default=1) > 1:
        raise RuntimeError(f"duplicate point ids: {[i for i, n in ids.items() if n > 1][:5]}")

    version = _version(points, effective)
    for p in points:
        p["pack_version"] = version
    table = pa.Table.from_pylist(points, schema=_SCHEMA).replace_schema_metadata(
        {
            _META_VERSION: version.encode(),
            _META_EFFECTIVE_FROM: effective.isoformat().encode(),
            _META_SOURCES: json.dumps(sources, sort_keys=True, ensure_ascii=False).encode(),
        }
    )
    _write_parquet(table, out)

    info = PackInfo(
        version=version,
        path=out,
        sha256=_sha256(out),
        effective_from=effective.isoformat(),
        sources=MappingProxyType(sources),
        points_per_file=MappingProxyType(dict(Counter(p["file"] for p in points))),
        points_per_rule_kind=MappingProxyType(dict(Counter(p["rule_kind"] for p in points))),
        data_rows_per_file=MappingProxyType(data_rows),
        code_storage=MappingProxyType(storage),
        skipped=tuple(skipped),
        warnings=tuple(warnings),
    )
    sidecar = {**info.to_dict(), "path": out.name}
    _write_text(out.with_suffix(".json"), json.dumps(sidecar, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    return info


def load_pack(path: Path = DEFAULT_PACK) -> pd.DataFrame:
    """The compiled knowledge points, one row per (code, restriction), columns :data:`PACK_COLUMNS`.

    Codes and names are ``str``; integer parameters are nullable ``Int32``; ``effective_from`` is
    ``datetime64``. Raises ``ValueError`` when the rows do not carry the version the file declares.
    """
    table = pq.read_table(path)
    if tuple(table.schema.names) != PACK_COLUMNS:
        raise ValueError(f"{path}: columns {table.schema.names} are not a 两库 pack's {list(PACK_COLUMNS)}")
    frame = table.to_pandas(types_mapper={pa.int32(): pd.Int32Dtype()}.get, date_as_object=False)
    frame["effective_from"] = frame["effective_from"].astype("datetime64[ns]")
    declared = pack_version(path)
    if set(frame["pack_version"].unique()) - {declared}:
        raise ValueError(f"{path}: rows carry a version other than the declared {declared}")
    return frame


def pack_version(path: Path = DEFAULT_PACK) -> str:
    """The content-derived version stored in the pack's Parquet key-value metadata."""
    metadata = pq.read_schema(path).metadata or {}
    if _META_VERSION not in metadata:
        raise ValueError(f"{path}: no {_META_VERSION.decode()} in the Parquet metadata")
    return metadata[_META_VERSION].decode()


# ---------------------------------------------------------------------------------------------
# The published files

@dataclass(frozen=True)
class _Source:
    file: str
    batch: str
    code_kind: str
    rule_kind: str


_SOURCES = (
    _Source("batch1-drug-gender.xlsx", "1", "drug", "gender"),
    _Source("batch1-drug-age.xlsx", "1", "drug", "age"),
    _Source("batch1-item-gender.xlsx", "1", "item", "gender"),
    _Source("batch1-item-age.xlsx", "1", "item", "age"),
    _Source("batch2-item-primary-secondary-surgery.xlsx", "2", "item", "primary_secondary_surgery"),
    _Source("batch3-drug-insurance-type.xlsx", "3", "drug", "insurance_type"),
    _Source("batch4-drug-care-setting.xlsx", "4", "drug", "care_setting"),
    _Source("batch5-drug-institution-level.xlsx", "5", "drug", "institution_level"),
    _Source("batch6-drug-course-length.xlsx", "6", "drug", "course_length"),
    _Source("batch7-item-duplicate-charge.xlsx", "7", "item", "duplicate_charge"),
    _Source("batch8-1-item-frequency.xlsx", "8-1", "item", "frequency"),
    _Source("batch8-2-item-age.xlsx", "8-2", "item", "age"),
    _Source("batch8-3-item-course-length.xlsx", "8-3", "item", "course_length"),
    _Source("batch8-4-item-period-frequency.xlsx", "8-4", "item", "period_frequency"),
)

# Header text -> role. Every header of every sheet must be known, so a changed layout fails loudly.
_ROLES = {
    "药品通用名": "name",
    "项目名称": "name",
    "主项名称": "name",
    "国标代码": "code",
    "药品代码": "code",
    "项目编码": "code",
    "项目代码": "code",
    "主项编码": "code",
    "限定类型": "restriction",
    "限定对象": "value",
    "限定值域": "value",
    "限定性别": "value",
    "备注": "value",
    "药品说明": "note",
    "项目说明": "note",
    "从项名称": "related_name",
    "从项编码": "related_code",
    "频度": "window",
    "限制数量": "count",
    "频次上限": "count",
    "数量单位": "unit",
    "疗程周期": "period",
    "序号": "seq",
}

_GENDER = {"男": "1", "女": "2"}
_AGE = {
    "儿童": (None, 18.0),
    "婴幼儿": (None, 3.0),
    "新生儿": (None, 28 / 365),
    "参保人年龄超出法定就业年龄限制": (16.0, 60.0),
}
_INSURANCE = {"工伤": "工伤", "生育": "生育"}
_CARE_SETTING = {"住院": "inpatient"}
_LEVEL = {"一级": 1, "二级": 2, "三级": 3}
_WINDOW = {"单日": "day", "单次就诊": "visit", "6小时": "6h", "同一小时": "hour"}
_COUNT_UNIT = {"日": "day", "天": "day", "小时": "hour"}
_ITEM_CODE_WIDTH = 15  # national service-item code, used only if a file has no text-stored code


# ---------------------------------------------------------------------------------------------
# Reading

@dataclass(frozen=True)
class _Sheet:
    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[int, tuple[str | None, ...]], ...]  # (spreadsheet row, cells as text)
    numeric: frozenset[tuple[int, int]]  # (row, column index) of cells stored as numbers


class _Skip(Exception):
    """A row that cannot become a knowledge point; the message is the reason, ``role`` the cell's column."""

    def __init__(self, reason: str, role: str | None = None):
        super().__init__(reason)
        self.role = role


def _read_workbook(path: Path) -> list[_Sheet]:
    # pandas with dtype=str gives the text; openpyxl tells which cells were stored as numbers
    # (pandas turns 3402000320000.0 into '3402000320000' and the leading zeros are gone).
    frames = pd.read_excel(path, sheet_name=None, header=None, dtype=str, na_filter=False)
    book = openpyxl.load_workbook(path, data_only=True)
    try:
        sheets = []
        for ws in book.worksheets:
            numeric, filled, last_row = set(), set(), 1
            for cells in ws.iter_rows(min_row=1, max_row=ws.max_row):
                for cell in cells:
                    if cell.value is None or (isinstance(cell.value, str) and not cell.value.strip()):
                        continue
                    filled.add((cell.row, cell.column - 1))
                    last_row = max(last_row, cell.row)
                    if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
                        numeric.add((cell.row, cell.column - 1))
            last_row = max(last_row, ws.max_row)
            grid = frames[ws.title]
            text: dict[tuple[int, int], str] = {}
            for i in range(len(grid)):
                for j in range(grid.shape[1]):
                    value = str(grid.iat[i, j]).strip()
                    if value:
                        text[(i + 1, j)] = value
            if set(text) != filled:
                raise RuntimeError(f"{path.name}/{ws.title}: pandas and openpyxl see different cells")
            width = max((j for _, j in filled), default=-1) + 1
            header = tuple(text.get((1, j), "") for j in range(width))
            rows = tuple(
                (r, tuple(text.get((r, j)) for j in range(width))) for r in range(2, last_row + 1)
            )
            sheets.append(_Sheet(ws.title, header, rows, frozenset(numeric)))
        return sheets
    finally:
        book.close()


def _roles(sheet: _Sheet, file: str) -> dict[str, int]:
    roles: dict[str, int] = {}
    for j, title in enumerate(sheet.header):
        role = _ROLES.get(title)
        if role is None:
            raise ValueError(f"{file}/{sheet.name}: unknown column {title!r}")
        if role in roles:
            raise ValueError(f"{file}/{sheet.name}: two columns for {role!r}")
        roles[role] = j
    return roles


# ---------------------------------------------------------------------------------------------
# Compiling one file

@dataclass
class _Compiled:
    points: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    storage: dict[str, int] = field(default_factory=lambda: {"text": 0, "number": 0, "zero_padded": 0})
    used_rule_rows: set[tuple[str, int]] = field(default_factory=set)


def _compile_file(source: _Source, sheets: list[_Sheet]) -> _Compiled:
    out = _Compiled()
    roles = {s.name: _roles(s, source.file) for s in sheets}
    code_sheets = [s for s in sheets if "code" in roles[s.name]]
    rule_sheets = [s for s in sheets if "code" not in roles[s.name]]
    if len(code_sheets) != 1 or len(rule_sheets) > 1 or (source.code_kind == "drug") != bool(rule_sheets):
        raise ValueError(f"{source.file}: unexpected sheets {[s.name for s in sheets]}")
    code_sheet = code_sheets[0]
    width = _code_width(code_sheet, roles[code_sheet.name])

    rules: dict[str, tuple[int, dict[str, str | None], dict[str, Any]]] = {}
    if rule_sheets:
        rules = _drug_rules(source, rule_sheets[0], roles[rule_sheets[0].name], out)
    restriction = _restriction_from_title(code_sheet.name)

    cols = roles[code_sheet.name]
    for row, cells in code_sheet.rows:
        raw = {role: cells[j] for role, j in cols.items()}
        try:
            if not any(cells):
                raise _Skip("blank row")
            if raw.get("code") is None:
                raise _Skip(f"no code (footer/total row: {_first_text(cells)!r})", "code")
            code = _with_role("code", _normalise_code, raw["code"], code_sheet, row, cols["code"], width, out.storage)
            if rules:
                rule_row, rule_raw, params = _drug_rule_for(raw, rules)
                out.used_rule_rows.add((rule_sheets[0].name, rule_row))
                if raw.get("restriction") not in (None, rule_raw["restriction"]):
                    out.warnings.append(
                        f"{source.file}/{code_sheet.name} row {row}: 限定类型 {raw['restriction']!r} "
                        f"differs from Sheet1's {rule_raw['restriction']!r}"
                    )
                raw = {**rule_raw, "code": code}
            else:
                rule_row = None
                raw = {**raw, "code": code}
                raw.setdefault("restriction", None)
                raw["restriction"] = raw["restriction"] or restriction
                if raw.get("related_code") is not None:
                    raw["related_code"] = _with_role(
                        "related_code", _normalise_code, raw["related_code"], code_sheet, row, cols["related_code"],
                        width, out.storage
                    )
                if source.rule_kind == "frequency" and raw.get("value") is None:
                    raw["value"] = f"{raw.get('count') or ''}{raw.get('unit') or ''}" or None
                params = _parse(source.rule_kind, raw, f"{source.file} row {row}", out.warnings)
        except _Skip as skip:
            out.skipped.append(SkippedRow(source.file, code_sheet.name, row, str(skip),
                                          _header(code_sheet, cols, skip.role)))
            continue
        out.points.append(_point(source, code_sheet.name, row, rule_row, raw, params))

    for name, (rule_row, _, _) in rules.items():
        if (rule_sheets[0].name, rule_row) not in out.used_rule_rows:
            out.skipped.append(
                SkippedRow(source.file, rule_sheets[0].name, rule_row, f"drug {name!r} has no codes in {code_sheet.name}")
            )
    _warn_inconsistent_names(source, out)
    return out


def _drug_rules(source: _Source, sheet: _Sheet, cols: dict[str, int], out: _Compiled) -> dict[str, tuple[int, dict, dict]]:
    """Sheet1 of a drug file: generic name (药品通用名) -> (row, raw cells, parsed parameters)."""
    rules = {}
    for row, cells in sheet.rows:
        raw = {role: cells[j] for role, j in cols.items()}
        try:
            if not any(cells):
                raise _Skip("blank row")
            name = raw.get("name")
            if name is None:
                raise _Skip(f"no drug name (footer/total row: {_first_text(cells)!r})")
            if name in rules:
                raise _Skip(f"drug {name!r} repeats row {rules[name][0]}", "name")
            params = _parse(source.rule_kind, raw, f"{source.file}/{sheet.name} row {row}", out.warnings)
        except _Skip as skip:
            out.skipped.append(SkippedRow(source.file, sheet.name, row, str(skip), _header(sheet, cols, skip.role)))
            continue
        rules[name] = (row, raw, params)
    return rules


def _drug_rule_for(raw: dict[str, str | None], rules: dict) -> tuple[int, dict, dict]:
    if raw.get("name") not in rules:
        raise _Skip(f"drug {raw.get('name')!r} is not in Sheet1 (or its Sheet1 row was skipped)", "name")
    return rules[raw["name"]]


def _point(source: _Source, sheet: str, row: int, rule_row: int | None, raw: dict, params: dict) -> dict[str, Any]:
    return {
        "point_id": f"b{source.batch}-{source.code_kind}-{source.rule_kind}-{row:06d}",
        "batch": source.batch,
        "file": source.file,
        "sheet": sheet,
        "row": row,
        "rule_row": rule_row,
        "rule_kind": source.rule_kind,
        "code_kind": source.code_kind,
        "hilist_code": raw["code"],
        "hilist_name": raw.get("name"),
        "restriction": raw.get("restriction"),
        "value_text": raw.get("value"),
        "note": raw.get("note"),
        "related_name": raw.get("related_name"),
        "related_code": raw.get("related_code"),
        **params,
    }


def _restriction_from_title(sheet_name: str) -> str | None:
    # e.g. “医疗服务项目重复收费”规则对应知识点明细 -> 重复收费
    match = re.search(r"[“\"]医疗服务项目(.+?)[”\"]", sheet_name)
    return match.group(1) if match else None


def _with_role(role: str, fn, *args):
    try:
        return fn(*args)
    except _Skip as skip:
        raise _Skip(str(skip), skip.role or role) from None


def _header(sheet: _Sheet, cols: dict[str, int], role: str | None) -> str | None:
    """The column title (e.g. 限定对象) of a role, for error messages."""
    if role is None or role not in cols:
        return None
    return sheet.header[cols[role]]


def _first_text(cells: tuple[str | None, ...]) -> str:
    return next((c for c in cells if c), "")[:40]


# ---------------------------------------------------------------------------------------------
# Codes

def _code_width(sheet: _Sheet, cols: dict[str, int]) -> int:
    """The width of the file's digit-only codes stored as text (the most common one)."""
    widths = Counter(
        len(cells[j])
        for row, cells in sheet.rows
        for role in ("code", "related_code")
        if (j := cols.get(role)) is not None
        and cells[j] is not None
        and cells[j].isdigit()
        and (row, j) not in sheet.numeric
    )
    return widths.most_common(1)[0][0] if widths else _ITEM_CODE_WIDTH


def _normalise_code(text: str, sheet: _Sheet, row: int, col: int, width: int, storage: dict[str, int]) -> str:
    if (row, col) in sheet.numeric:
        storage["number"] += 1
        match = re.fullmatch(r"(\d+)(?:\.0*)?", text)
        if not match:
            raise _Skip(f"code stored as a non-integral number {text!r}")
        digits = match.group(1)
        if len(digits) > 15:  # beyond float64's exact integers the digits cannot be trusted
            raise _Skip(f"code stored as a number too long to be exact: {text!r}")
        if len(digits) > width:
            raise _Skip(f"code {text!r} is wider than the file's {width} digits")
        if len(digits) < width:
            storage["zero_padded"] += 1
        return canonical("list", digits.zfill(width)).code
    storage["text"] += 1
    if not re.fullmatch(r"[0-9A-Z]+", text):
        raise _Skip(f"malformed code {text!r}")
    if text.isdigit() and len(text) != width:
        raise _Skip(f"code {text!r} has {len(text)} digits, the file's codes have {width}")
    # The form the ingest stores (features.codes): rules compare canonical codes only.
    return canonical("list", text).code


# ---------------------------------------------------------------------------------------------
# Parameters

_NO_PARAMS = {
    "gend": None, "age_min": None, "age_max": None, "insurance_only": None, "care_setting": None,
    "min_hosp_level": None, "max_days": None, "min_interval_days": None, "max_count": None,
    "count_unit": None, "period_days": None, "window": None, "surgery_group": None,
}


def _parse(rule_kind: str, raw: dict[str, str | None], where: str, warnings: list[str]) -> dict[str, Any]:
    """The parsed parameters of one rule row; raises _Skip for a value it cannot map."""
    value, note = raw.get("value"), raw.get("note") or ""
    params = dict(_NO_PARAMS)
    if rule_kind == "gender":
        params["gend"] = _lookup(_GENDER, value, "限定性别", "value")
    elif rule_kind == "age":
        params["age_min"], params["age_max"] = _lookup(_AGE, value, "限定年龄", "value")
    elif rule_kind == "insurance_type":
        params["insurance_only"] = _lookup(_INSURANCE, value, "限定保险类型", "value")
    elif rule_kind == "care_setting":
        params["care_setting"] = _lookup(_CARE_SETTING, value, "限定就医方式", "value")
        if "急诊或住院" in note and params["care_setting"] == "inpatient":
            params["care_setting"] = "inpatient_or_emergency"
            warnings.append(f"{where}: value {value!r} but the note allows 急诊 too ({_short(note)}); kept the wider")
    elif rule_kind == "institution_level":
        params["min_hosp_level"] = _lookup(_LEVEL, value, "限定机构等级", "value")
        if f"限{value}及以上医疗机构" not in note:
            warnings.append(f"{where}: level {value!r} is qualified by the note, not encoded: {_short(note)}")
    elif rule_kind == "course_length":
        params.update(_course(raw, where, warnings))
    elif rule_kind == "duplicate_charge":
        params["window"] = _lookup(_WINDOW, raw.get("window"), "频度", "window")
    elif rule_kind == "frequency":
        params["max_count"] = _integer(raw.get("count"), "限制数量", "count")
        params["count_unit"] = _lookup(_COUNT_UNIT, raw.get("unit"), "数量单位", "unit")
    elif rule_kind == "period_frequency":
        params["max_count"] = _integer(raw.get("count"), "频次上限", "count")
        params["period_days"] = _integer(raw.get("period"), "疗程周期", "period")
        params["min_interval_days"] = _interval(value)
        if params["min_interval_days"] not in (None, params["period_days"]) or (
            "每周" in (value or "") and params["period_days"] != 7
        ):
            warnings.append(f"{where}: 疗程周期 {params['period_days']} disagrees with the note {value!r}")
    elif rule_kind == "primary_secondary_surgery":
        if not value:
            raise _Skip("no 限定值域 (surgery group)", "value")
        params["surgery_group"] = value
    else:
        raise ValueError(f"unknown rule kind {rule_kind!r}")
    return params


def _course(raw: dict[str, str | None], where: str, warnings: list[str]) -> dict[str, Any]:
    value, note = raw.get("value") or "", raw.get("note") or ""
    match = re.fullmatch(r"(\d+)天", value)
    if match is None:  # item course rules (batch 8-3) carry the limit as prose in 备注
        days = _days_in_text(value)
        if days is None:
            raise _Skip(f"unmapped course length {value!r}", "value")
        return {"max_days": days, "min_interval_days": _interval(value)}
    days = int(match.group(1))
    in_note = _days_in_text(note)
    if in_note is not None and in_note != days and not _same_months(note, days):
        warnings.append(
            f"{where}: value {value!r} but the note says {in_note} days ({_short(note)}); kept {max(days, in_note)}"
        )
        days = max(days, in_note)
    return {"max_days": days}


def _days_in_text(text: str) -> int | None:
    if match := re.search(r"(?:不超过|最多支付)(\d+)天", text):
        return int(match.group(1))
    if match := re.search(r"(?:不超过|最多支付)(\d+)个月", text):
        return round(int(match.group(1)) * 365 / 12)
    if re.search(r"(?:不超过|最多支付)一年", text):
        return 365
    return None


def _same_months(text: str, days: int) -> bool:
    """'N个月' in the note and N×(28..31) days in the value are the same limit (12个月 = 365天)."""
    match = re.search(r"(?:不超过|最多支付)(\d+)个月", text)
    return bool(match) and 28 * int(match.group(1)) <= days <= 31 * int(match.group(1))


def _short(text: str, width: int = 60) -> str:
    return repr(text if len(text) <= width else text[:width] + "…")


def _interval(text: str | None) -> int | None:
    match = re.search(r"间隔时间不短于(\d+)天", text or "")
    return int(match.group(1)) if match else None


def _lookup(mapping: Mapping[str, Any], value: str | None, what: str, role: str | None = None) -> Any:
    if value not in mapping:
        raise _Skip(f"unmapped {what} {value!r}", role)
    return mapping[value]


def _integer(text: str | None, what: str, role: str | None = None) -> int:
    match = re.fullmatch(r"(\d+)(?:\.0*)?", text or "")
    if not match:
        raise _Skip(f"unmapped {what} {text!r}", role)
    return int(match.group(1))


# ---------------------------------------------------------------------------------------------
# Checks, version, writing

def _check_source_files(source_dir: Path) -> None:
    known = {s.file for s in _SOURCES}
    present = {p.name for p in source_dir.glob("*.xlsx")}
    if missing := sorted(known - present):
        raise FileNotFoundError(f"{source_dir}: missing {missing}")
    if unknown := sorted(present - known):
        raise ValueError(f"{source_dir}: spreadsheets with no known layout {unknown}; add them to _SOURCES")


def _check_every_row_accounted(source: _Source, sheets: list[_Sheet], compiled: _Compiled) -> None:
    seen = {(p["sheet"], p["row"]) for p in compiled.points} | compiled.used_rule_rows
    seen |= {(s.sheet, s.row) for s in compiled.skipped}
    for sheet in sheets:
        lost = [row for row, _ in sheet.rows if (sheet.name, row) not in seen]
        if lost:
            raise RuntimeError(f"{source.file}/{sheet.name}: rows {lost[:5]} neither compiled nor skipped")


def _warn_inconsistent_names(source: _Source, out: _Compiled) -> None:
    if source.code_kind != "item":
        return
    codes_by_name: dict[str, set[str]] = defaultdict(set)
    for p in out.points:
        codes_by_name[p["hilist_name"]].add(p["hilist_code"])
    for name, codes in sorted(codes_by_name.items()):
        if len(codes) > 1:
            out.warnings.append(f"{source.file}: item name {name!r} has several codes {sorted(codes)}")


def _version(points: list[dict[str, Any]], effective: date) -> str:
    digest = hashlib.sha256()
    names = [n for n in PACK_COLUMNS if n != "pack_version"]
    for p in points:  # already sorted by point_id
        row = [p[n].isoformat() if isinstance(p[n], date) else p[n] for n in names]
        digest.update(json.dumps(row, ensure_ascii=False).encode())
        digest.update(b"\n")
    return f"liangku-{effective.year}.{effective.month}-{digest.hexdigest()[:8]}"


def _write_parquet(table: pa.Table, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # same directory, so the replace is atomic
    try:
        pq.write_table(
            table, tmp, compression="zstd", compression_level=19, use_dictionary=True,
            row_group_size=max(len(table), 1), write_statistics=True,
        )
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()

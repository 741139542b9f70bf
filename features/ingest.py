"""Ingest (数据入库): read the contract tables of an extract into the local DuckDB warehouse.

Every row is validated against the data contract (``features.contract``). A row that fails any check
goes to the ``quarantine`` table (隔离区) with its table, key, position, field and the reason in plain
Chinese; the other rows are loaded. Nothing is dropped silently and no bad row stops the run. Loading
the same extract again changes nothing: rows already in the warehouse (same key and content) and rows
already in quarantine (by key, field, reason and content) are reported as ``unchanged``. A row whose key
is loaded but whose content differs (a correction) is quarantined as ``changed_after_load`` and the
warehouse keeps what it has, unless ``apply_corrections`` (then the old version goes to ``row_versions``).

No row reaches the warehouse without its parent: tables are loaded parents first, and a row whose parent
key is not in the warehouse by then (its row quarantined, its table refused, or nowhere) is *held*: kept,
typed, in ``held.<table>`` and loaded by a later run as soon as the parent is there. A table that cannot
be read as a whole (encoding, delimiter, duplicate header, missing required column, empty or truncated
file) is refused with its cause; its rows count as ``refused``.

The source is a folder with, per table, ``<table>.parquet``, ``<table>.csv`` or a sub-folder
``<table>/`` of ``*.parquet`` or ``*.csv`` part files read in sorted order, directly or in a lake's
partition folders (``<table>/month=2024-01/region=220102/part-00000.parquet``, as ``yibao simulate
--layout lake`` writes them; the partition values are not read as columns). CSV has a header and is read
as text, so codes keep their leading zeros and bad values can be named; it may be UTF-8 (with or without
a byte-order mark) or GB18030/GBK, decided per file (``features.encoding``; GBK is read through a UTF-8
copy).

All work is set-based SQL in DuckDB: each table is staged (Parquet as a view over the files, CSV as
temporary tables), all one-row checks run as one scan that keeps the suspicious rows, the checks that
need other rows are joins, and the good rows go in with one ``INSERT ... SELECT``.

Resident IDs (``psn_info.certno``) reach the warehouse only as keyed pseudonyms, names not at all and
birth dates as the birth year (``birth_year``; ``setl_d.age`` not at all: ``Field.coarse``); the clear
values and the exact birth date go to the identity vault (``Settings.identity_vault``), table
``psn_identity``. A warehouse made before that is migrated by its next ingest
(``warehouse.migrate_birth_dates``).

>>> import tempfile
>>> from features.config import Settings
>>> src = Path(tempfile.mkdtemp())
>>> _ = (src / "fixmedins.csv").write_text(
...     "fixmedins_code,fixmedins_name,fixmedins_type,admdvs\\nH001,市一院,hospital,220100\\n"
...     "H002,社区站,clinic,220100\\nH002,社区站,clinic,220100\\n", encoding="utf-8")
>>> report = ingest(src, Settings(warehouse=src / "w.duckdb"))
>>> t = report.table("fixmedins")
>>> t.rows_in, t.loaded, t.quarantined, dict(t.reasons)
(3, 2, 1, {'duplicate_key': 1})
>>> ingest(src, Settings(warehouse=src / "w.duckdb")).table("fixmedins").unchanged
3
"""

from __future__ import annotations

import gzip
import json
import os
import re
import zlib
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path

import duckdb

from features import warehouse
from features.codes import REWRITES, UNRESOLVED, CodeMap
from features.config import Settings
from features.contract import CLAIM_TABLES, LOAD_ORDER, TABLES, Field, TableSpec
from features.encoding import EncodingError, TextEncoding, detect_encoding, open_bytes, utf8_copy
from features.pseudonym import hmac_params, key_check, pseudonym_sql
from features.validate import (
    CERTNO_LIKE,
    COARSENED,
    HELD_REASONS,
    ISSUE_COLUMNS,
    OTHER_PERSONAL,
    REASONS,
    Column,
    bad_values_sql,
    checked_by_value,
    duplicate_key_sql,
    mask_column_sql,
    mask_raw_sql,
    missing_parent_rows_sql,
    missing_parent_values_sql,
    negative_fee_sql,
    quote_ident,
    repeated_key_hashes_sql,
    row_checks,
    settlement_lines_sql,
    settlement_total_sql,
    sql_str,
)

__all__ = [
    "ingest",
    "IngestReport",
    "TableReport",
    "IngestError",
    "list_quarantine",
    "quarantine_counts",
    "find_sources",
    "TableSource",
    # the steps and layouts an ingest engine shares (features.ingest_spark runs them with a loader of its own)
    "start_run",
    "connect_warehouse",
    "begin_run",
    "load_tables",
    "finish_run",
    "IngestRun",
    "StagedTable",
    "TableError",
    "PARENT_TABLES",
    "staged_columns",
    "count_source_rows",
    "first_line",
    "parquet_layout",
    "ParquetLayout",
    "code_fields",
    "distinct_codes_sql",
    "code_plan",
    "canonical_companions_sql",
    "quarantined_keys_sql",
    "held_rows_sql",
]

list_quarantine = warehouse.list_quarantine
quarantine_counts = warehouse.quarantine_counts

Progress = Callable[[str, int, int], None]

_INTERNAL = ("_row", "_file")
# The settlements whose rules and features depend on a row of each table, for ``ingest_rederive``: SQL
# over ``{ck}``, a relation of the corrected keys ``k``. A table not named here (stock moves, labels) is
# read at the level of institutions or entities: its corrected keys are listed with no settlement.
_REDERIVE = {
    "setl_d": "SELECT c.k AS row_key, c.k AS setl_id FROM {ck} c",
    "fee_list_d": "SELECT c.k AS row_key, f.setl_id FROM {ck} c JOIN main.fee_list_d f ON f.bkkp_sn = c.k",
    "setl_list_diag_d": "SELECT c.k AS row_key, split_part(c.k, '|', 1) AS setl_id FROM {ck} c",
    "mdtrt_d": "SELECT c.k AS row_key, s.setl_id FROM {ck} c JOIN main.setl_d s ON s.mdtrt_id = c.k",
    "psn_info": "SELECT c.k AS row_key, s.setl_id FROM {ck} c JOIN main.setl_d s ON s.psn_no = c.k",
    "fixmedins": "SELECT c.k AS row_key, s.setl_id FROM {ck} c JOIN main.setl_d s ON s.fixmedins_code = c.k",
    "practitioner": "SELECT c.k AS row_key, f.setl_id FROM {ck} c JOIN main.fee_list_d f ON f.bilg_dr_code = c.k "
                    "UNION SELECT c.k, s.setl_id FROM {ck} c JOIN main.mdtrt_d m ON m.chfpdr_code = c.k "
                    "JOIN main.setl_d s ON s.mdtrt_id = m.mdtrt_id",
    "hilist": "SELECT c.k AS row_key, f.setl_id FROM {ck} c JOIN main.fee_list_d f ON f.hilist_code = c.k",
}
_FEE_SETTLEMENTS = "fee_settlements"  # temp table of settlement_lines_sql, made by the checks of setl_d
PARENT_TABLES = frozenset(parent for spec in TABLES.values() for _, parent, _ in spec.parents)
_CSV_OPTIONS = "all_varchar = true, header = true, delim = ',', quote = '\"', escape = '\"'"
_CSV_ERRORS_ZH = {
    "TOO MANY COLUMNS": "列数多于表头",
    "MISSING COLUMNS": "列数少于表头",
    "UNQUOTED VALUE": "引号不匹配",
    "LINE SIZE OVER MAXIMUM": "行过长",
}


class IngestError(ValueError):
    """A problem that stops the whole run, such as a source folder that does not exist."""


@dataclass(frozen=True)
class TableReport:
    """What happened to one table.

    Invariant: ``rows_in == loaded + corrected + quarantined + refused + unchanged`` over the rows of this
    extract. ``held`` (of the quarantined or unchanged rows: those waiting for a parent) and ``released``
    (held rows of earlier runs loaded by this one) say more about some of them; released rows are not
    rows of this extract.
    """

    table: str
    status: str  # 'ok', 'missing' or 'error' (the table was refused: none of its rows was read in)
    files: tuple[str, ...] = ()
    rows_in: int = 0
    loaded: int = 0
    quarantined: int = 0  # rows quarantined by this run (a row failing several checks counts once)
    unchanged: int = 0  # rows already in the warehouse (same content) or already in quarantine
    reasons: tuple[tuple[str, int], ...] = ()  # (reason_code, rows newly quarantined for it)
    error: str | None = None
    notes: tuple[str, ...] = ()
    # Codes written in another form and stored canonical (features.codes): (field, rewrite kind, rows),
    # and codes left as written because they could not be placed: (field, reason, rows, example codes).
    code_rewrites: tuple[tuple[str, str, int], ...] = ()
    code_unresolved: tuple[tuple[str, str, int, tuple[str, ...]], ...] = ()
    refused: int = 0  # rows of a refused table (status 'error'), as far as they can be counted
    corrected: int = 0  # rows that replaced the loaded version of their key (``apply_corrections``)
    held: int = 0  # rows of this extract kept in ``held.<table>`` until their parent is in the warehouse
    released: int = 0  # rows held by earlier runs that this run loaded (their parents arrived)


_COUNTS = ("rows_in", "loaded", "corrected", "quarantined", "refused", "unchanged", "held", "released")


@dataclass(frozen=True)
class IngestReport:
    """Counts of one ingest run (入库报告), per table and per (table, reason_code)."""

    batch_id: str
    source: str
    warehouse: str
    started_at: str
    finished_at: str
    as_of: str
    tables: tuple[TableReport, ...]
    ignored_files: tuple[str, ...] = ()
    batch_no: int = 0  # the run's number in ``ingest_log``; loaded rows carry it in ``_ingest_batch``
    # Settlements to work out again (rules, features) because a row they depend on was corrected by this
    # run: their number, and up to 20 of them (all: ``ingest_rederive`` where batch_no is this run's).
    rederive: int = 0
    rederive_examples: tuple[str, ...] = ()

    def table(self, name: str) -> TableReport:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    @property
    def reason_counts(self) -> dict[tuple[str, str], int]:
        return {(t.table, code): n for t in self.tables for code, n in t.reasons}

    @property
    def missing_tables(self) -> tuple[str, ...]:
        return tuple(t.table for t in self.tables if t.status == "missing")

    @property
    def missing_claim_tables(self) -> tuple[str, ...]:
        return tuple(t for t in self.missing_tables if t in CLAIM_TABLES)

    @property
    def errors(self) -> dict[str, str]:
        return {t.table: t.error for t in self.tables if t.status == "error" and t.error}

    @property
    def ok(self) -> bool:
        """No table failed and no claim table is missing."""
        return not self.errors and not self.missing_claim_tables

    @property
    def changed(self) -> bool:
        """Whether this run changed the warehouse's tables (loaded, corrected or released rows)."""
        return any(t.loaded or t.corrected or t.released for t in self.tables)

    def total(self, what: str) -> int:
        """Sum of one count (``rows_in``, ``loaded``, ``quarantined``, ``refused``, ...) over the tables."""
        return sum(getattr(t, what) for t in self.tables)

    @property
    def problems(self) -> tuple[str, ...]:
        """Plain-words warnings: missing claim tables, tables that could not be loaded, skipped checks."""
        out = [f"缺少理赔表 (claim table missing): {t}" for t in self.missing_claim_tables]
        out += [f"{t}: {e}" for t, e in self.errors.items()]
        out += [f"{t.table}: {n}" for t in self.tables if t.status == "ok" for n in t.notes]
        out += [f"{t.table}: {t.held} 行暂存，等待其上级记录，上级入库后自动入库 (held until their parent loads)"
                for t in self.tables if t.held]
        out += [f"{t.table}.{fld}: {n} 行编码未能标准化 ({UNRESOLVED[why]}; 例: {', '.join(ex)})"
                for t in self.tables for fld, why, n, ex in t.code_unresolved]
        if self.ignored_files:
            out.append(f"未识别、已忽略的文件 (ignored): {', '.join(self.ignored_files)}")
        return tuple(out)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (for ``--json`` and the ingest log); ``tables`` is keyed by table name."""
        d = asdict(self)
        d["tables"] = {t.pop("table"): t | {"reasons": dict(t["reasons"])} for t in d["tables"]}
        d["reasons"] = [
            {"table": tbl, "reason_code": code, "reason": REASONS.get(code, code), "rows": n}
            for (tbl, code), n in self.reason_counts.items()
        ]
        d["totals"] = {k: self.total(k) for k in _COUNTS}
        d["code_rewrites"] = [
            {"table": t.table, "field": fld, "rewrite": kind, "meaning": REWRITES[kind], "rows": n}
            for t in self.tables for fld, kind, n in t.code_rewrites]
        d["code_unresolved"] = [
            {"table": t.table, "field": fld, "reason_code": why, "reason": UNRESOLVED[why], "rows": n,
             "examples": list(ex)}
            for t in self.tables for fld, why, n, ex in t.code_unresolved]
        d["missing_tables"] = list(self.missing_tables)
        d["missing_claim_tables"] = list(self.missing_claim_tables)
        d["errors"] = self.errors
        d["problems"] = list(self.problems)
        return d


def ingest(source: Path, settings: Settings, *, apply_corrections: bool = False,
           progress: Progress | None = None) -> IngestReport:
    """Validate and load the extract in ``source`` into ``settings.warehouse``.

    ``apply_corrections``: a row whose key is loaded but whose content differs replaces the loaded row
    (the old version goes to ``row_versions``, the settlements depending on it to ``ingest_rederive``);
    without it such a row is quarantined as ``changed_after_load``. ``progress(table, done, total)`` is
    called each time a table is finished (in ``LOAD_ORDER``). Raises :class:`IngestError` when ``source``
    is not a folder or holds no contract table, or when the warehouse's pseudonyms were made with another
    key; a table that cannot be read (encoding, delimiter, duplicate header, missing required column,
    empty or truncated file) is refused and named in its :class:`TableReport`, the other tables go on,
    and the rows pointing at it are held until it loads.
    """
    start = start_run(source, settings, apply_corrections=apply_corrections)
    with connect_warehouse(settings) as con:
        migrated = begin_run(con, start.run, start.source_name, start.started)
        reports = load_tables(_DuckDBLoader(start.run), start.sources, start.source_errors, progress)
        if migrated:
            reports["psn_info"] = replace(reports["psn_info"], notes=reports["psn_info"].notes + (
                f"旧仓库已迁移：{migrated} 人的精确出生日期移入身份库，仓库只保留出生年份 "
                f"(migrated: exact birth dates moved to the identity vault)",))
        report = finish_run(con, start, reports)
    return report


@dataclass
class _Start:
    """An ingest run about to begin: the extract's tables and the run's identity."""

    sources: dict[str, TableSource]
    source_errors: dict[str, str]
    ignored: list[str]
    run: IngestRun
    source_name: str
    started: datetime


def start_run(source: Path, settings: Settings, *, apply_corrections: bool = False) -> _Start:
    """The extract's tables (:class:`IngestError` when ``source`` is no folder or holds none) and a new run."""
    source = Path(source)
    if not source.is_dir():
        raise IngestError(f"源目录不存在或不是文件夹 (source folder not found): {source}")
    sources, source_errors, ignored = find_sources(source)
    if not sources and not source_errors:
        raise IngestError(
            f"{source} 中没有契约表 (no contract table found); 期望 <表名>.parquet、<表名>.csv 或 <表名>/ "
            f"文件夹, 表名: {', '.join(LOAD_ORDER)}"
        )
    started = datetime.now()
    run = IngestRun(settings=settings, batch_id=f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
               ingested_at=started.replace(microsecond=0), as_of=_as_of(settings), apply_corrections=apply_corrections)
    return _Start(sources, source_errors, ignored, run, str(source.resolve()), started)


def connect_warehouse(settings: Settings) -> duckdb.DuckDBPyConnection:
    try:
        return warehouse.connect(settings.warehouse)
    except duckdb.Error as exc:  # most often: another process has the warehouse open
        raise IngestError(f"无法打开仓库 (cannot open warehouse) {settings.warehouse}: {first_line(exc)}") from exc


def begin_run(con: duckdb.DuckDBPyConnection, run: IngestRun, source_name: str, started: datetime) -> int:
    """Open the run on the warehouse: its schema, the pseudonym key's check, birth dates of an older
    warehouse moved to the vault (returns how many persons'), and the run logged in ``ingest_log`` as it
    starts, so that a run that dies half-way still holds its number."""
    warehouse.ensure_schema(con)
    check = key_check(run.settings.pseudonym_key)
    _same_key(con, check, run.settings)
    migrated = warehouse.migrate_birth_dates(con, run.settings.identity_vault)
    (run.batch_no,) = con.execute("SELECT coalesce(max(batch_no), 0) + 1 FROM ingest_log").fetchone()
    con.execute("INSERT INTO ingest_log (batch_id, source, started_at, batch_no, key_check) VALUES (?, ?, ?, ?, ?)",
                [run.batch_id, source_name, started, run.batch_no, check])
    run.con = con
    return migrated


class _DuckDBLoader:
    """How :func:`load_tables` stages, checks and loads a table on DuckDB (``features.ingest_spark`` has
    the Spark one)."""

    errors: tuple[type[BaseException], ...] = (duckdb.Error,)

    def __init__(self, run: IngestRun) -> None:
        self.run = run

    def stage(self, src: TableSource) -> StagedTable:
        return _stage(self.run.con, src)

    def count_rows(self, src: TableSource) -> int | None:
        return count_source_rows(self.run.con, src)

    def canonicalise(self, name: str) -> None:
        self.run.canonicalise(name)

    def before_load(self) -> None:
        # Rows have no meaningful order in the warehouse (keys identify them, ``_row`` their source line):
        # not keeping the scan order lets the inserts write in parallel without re-ordering. The CSV
        # stages are already numbered, so this must come after them.
        self.run.con.execute("SET preserve_insertion_order = false")

    def process(self, name: str) -> TableReport:
        return self.run.process(name)

    def forget(self, name: str) -> None:
        """Nothing to undo: the table's transaction was rolled back."""

    def release(self, name: str) -> int:
        return self.run.release(name)


def load_tables(loader, sources: dict[str, TableSource], source_errors: dict[str, str],
                 progress: Progress | None) -> dict[str, TableReport]:
    """Every contract table of the run, parents first (``LOAD_ORDER``), through ``loader``: staged (refused
    when it cannot be read), its codes put in canonical form, checked and loaded; the report of each."""
    run = loader.run
    reports: dict[str, TableReport] = {}
    for name in LOAD_ORDER:
        if name in source_errors:
            reports[name] = _refused(name, (), source_errors[name])
        elif name not in sources:
            note = ("缺少理赔表 (claim table missing)" if name in CLAIM_TABLES
                    else "可选表未提供 (optional table not provided)")
            reports[name] = TableReport(name, "missing", notes=(note,))
        else:
            try:
                run.staged[name] = loader.stage(sources[name])
            except TableError as exc:
                reports[name] = _refused(name, sources[name].files, str(exc), loader.count_rows(sources[name]))
    for name in LOAD_ORDER:  # parents first: the catalogue's codes are known before the fee lines'
        if name in run.staged:
            try:
                loader.canonicalise(name)
            except loader.errors as exc:
                st = run.staged.pop(name)
                reports[name] = _refused(name, st.files, f"编码标准化失败 (code normalisation failed): "
                                         f"{first_line(exc)}", st.rows + st.rejected)
    loader.before_load()
    for done, name in enumerate(LOAD_ORDER, start=1):
        if name in run.staged:
            try:
                reports[name] = loader.process(name)
            except loader.errors as exc:
                loader.forget(name)
                st = run.staged[name]
                reports[name] = _refused(name, st.files, f"读取或入库失败 (failed to read or load): "
                                         f"{first_line(exc)}", st.rows + st.rejected)
        if reports[name].status == "error":
            run.refused[name] = reports[name].error or ""
        # Rows held by earlier runs whose parents are in the warehouse now (perhaps since a moment ago:
        # parents come first) are loaded; the children of this table then see them.
        released = loader.release(name)
        if released:
            reports[name] = replace(reports[name], released=released)
        if progress is not None:
            progress(name, done, len(LOAD_ORDER))
    return reports


def finish_run(con: duckdb.DuckDBPyConnection, start: _Start, reports: dict[str, TableReport]) -> IngestReport:
    """The run's report, recorded in ``ingest_log`` (and the warehouse marked changed when it is)."""
    run = start.run
    finished = datetime.now()
    rederive = run.rederived()
    report = IngestReport(
        batch_id=run.batch_id,
        source=start.source_name,
        warehouse=str(Path(run.settings.warehouse).resolve()),
        started_at=start.started.isoformat(timespec="seconds"),
        finished_at=finished.isoformat(timespec="seconds"),
        as_of=run.as_of.isoformat(sep=" ", timespec="seconds"),
        tables=tuple(reports[name] for name in LOAD_ORDER),
        ignored_files=tuple(start.ignored),
        batch_no=run.batch_no,
        rederive=rederive[0],
        rederive_examples=rederive[1],
    )
    if report.changed:
        warehouse.note_ingest_change(con, finished)
    con.execute("UPDATE ingest_log SET finished_at = ?, report = ? WHERE batch_no = ?",
                [finished, json.dumps(report.to_dict(), ensure_ascii=False), run.batch_no])
    return report


@dataclass(frozen=True)
class TableSource:
    """The files of one table in a source folder, in the order their rows are numbered."""

    table: str
    fmt: str  # 'parquet' or 'csv'
    files: tuple[Path, ...]


def find_sources(source: Path) -> tuple[dict[str, TableSource], dict[str, str], list[str]]:
    """The files of each contract table in ``source``.

    Returns (table -> source, table -> error for ambiguous or empty sources, names that are ignored).
    """
    found: dict[str, TableSource] = {}
    errors: dict[str, str] = {}
    used: set[str] = set()
    for name in TABLES:
        candidates = [p for p in (source / f"{name}.parquet", source / f"{name}.csv", source / f"{name}.csv.gz",
                                  source / name) if p.exists()]
        used.update(p.name for p in candidates)
        if not candidates:
            continue
        if len(candidates) > 1:
            errors[name] = f"表 {name} 有多个来源 (more than one source): {', '.join(p.name for p in candidates)}"
            continue
        path = candidates[0]
        if path.is_file():
            found[name] = TableSource(name, "parquet" if path.suffix == ".parquet" else "csv", (path,))
            continue
        parts = _part_files(path)
        parquet = [p for p in parts if p.name.endswith(".parquet")]
        csv = [p for p in parts if p.name.endswith((".csv", ".csv.gz"))]
        if parquet and csv:
            errors[name] = f"文件夹 {path} 同时有 Parquet 和 CSV 文件 (mixed formats)"
        elif parquet:
            found[name] = TableSource(name, "parquet", tuple(parquet))
        elif csv:
            found[name] = TableSource(name, "csv", tuple(csv))
        else:
            errors[name] = f"文件夹 {path} 中没有 .parquet 或 .csv 文件 (no part files)"
    ignored = sorted(
        p.name for p in source.iterdir()
        if p.name not in used and not p.name.startswith(".")
        and (p.is_dir() or p.name.endswith((".parquet", ".csv", ".csv.gz")))
    )
    return found, errors, ignored


# -- private ----------------------------------------------------------------------------------------


def _part_files(folder: Path) -> list[Path]:
    """The part files of a table folder in path order: the folder's own, and those of a lake's partition
    folders below it (``month=2024-01/region=220102/part-00000.parquet``: every folder named key=value).
    Names starting with ``.`` or ``_`` (``_SUCCESS``, ``.crc``) are not parts."""
    out: list[Path] = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith((".", "_")):
            continue
        if p.is_file():
            out.append(p)
        elif p.is_dir() and "=" in p.name:
            out.extend(_part_files(p))
    return out


class TableError(Exception):
    """A problem with one table that makes it impossible to load; the run goes on with the others."""


@dataclass
class StagedTable:
    spec: TableSpec
    relation: str  # temp view with _row, _file and the source columns (lower-case names)
    files: tuple[Path, ...]
    source_columns: tuple[str, ...]  # all staged source columns, contract and extra
    columns: dict[str, Column]  # the contract fields present, with their staged types
    rows: int  # rows readable into the stage
    rejects: str | None = None  # temp table of CSV lines that could not be read (issue rows + key/raw)
    rejected: int = 0
    reject_headers: dict[int, list[str]] = field(default_factory=dict)  # file number -> its CSV header
    notes: list[str] = field(default_factory=list)
    # Canonical codes (``IngestRun.canonicalise``): field -> the view's column holding the code as written.
    raw_columns: dict[str, str] = field(default_factory=dict)
    companions: set[str] = field(default_factory=set)  # companion columns the view provides
    code_rewrites: tuple[tuple[str, str, int], ...] = ()
    code_unresolved: tuple[tuple[str, str, int, tuple[str, ...]], ...] = ()

    @property
    def file_names(self) -> tuple[str, ...]:
        return _names(self.files)

    def rejected_field_sql(self, name: str) -> str | None:
        """SQL over ``self.rejects`` for the (naively split) value of column ``name`` of an unreadable line."""
        cases = [f"WHEN {i} THEN trim(parts[{h.index(name) + 1}], '\"')"
                 for i, h in self.reject_headers.items() if name in h]
        return f"CASE _file {' '.join(cases)} END" if cases else None


@dataclass
class IngestRun:
    settings: Settings
    batch_id: str
    ingested_at: datetime
    as_of: datetime
    batch_no: int = 0
    con: duckdb.DuckDBPyConnection | None = None
    staged: dict[str, StagedTable] = field(default_factory=dict)
    processed: set[str] = field(default_factory=set)
    _duplicates: dict[str, tuple[str, int]] = field(default_factory=dict)  # table -> (issue rows table, count)
    _scanned: dict[str, tuple[str, int]] = field(default_factory=dict)  # table -> (suspicious rows table, count)
    _has_rows: dict[str, bool] = field(default_factory=dict)  # warehouse table -> has rows (refreshed on load)
    _issue_count: dict[str, int] = field(default_factory=dict)
    _fee_settlements: bool = False  # the temp table _FEE_SETTLEMENTS exists
    _known_items: frozenset[str] | None = None  # canonical catalogue codes (warehouse and extract)
    apply_corrections: bool = False
    refused: dict[str, str] = field(default_factory=dict)  # table -> why it was refused (its report's error)
    _quarantined_keys: set[str] = field(default_factory=set)  # parent tables with a temp table qk_<table>
    _held_keys: dict[str, str | None] = field(default_factory=dict)  # parent -> temp table (k, why) or None
    _corrections: dict[str, str] = field(default_factory=dict)  # table -> temp table of changed rows (_row, ...)
    _vault_dates: str | None = None  # temp table of the vault's birth dates ('' when there is none; see above)
    _rederive: int = 0

    def canonicalise(self, name: str) -> None:
        """Put the canonical form of every code field of ``name`` (``Field.canonical``) in place of the code
        as written, which moves to ``<field>_raw`` (features.codes): all checks, the insert and the
        correction check then see canonical codes. The distinct codes are worked out once in Python; when
        every code is already canonical (an extract in the national form) the staged rows are not touched.
        """
        st = self.staged[name]
        fields = code_fields(st)
        if not fields:
            return
        rows = self.con.execute(distinct_codes_sql(st, fields)).fetchall()
        changed = code_plan(st, fields, rows, self._catalogue_codes)
        joins, replaced, extra = [], [], []
        for i, f, pairs in changed:
            cmap, col = f"cmap_{name}_{i}", quote_ident(f.name)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {cmap} (raw VARCHAR, code VARCHAR, suffix VARCHAR)")
            for lo in range(0, len(pairs), 1000):
                self.con.execute(f"INSERT INTO {cmap} VALUES " + ", ".join(
                    "(" + ", ".join("NULL" if v is None else sql_str(v) for v in r) + ")"
                    for r in pairs[lo:lo + 1000]))
            joins.append(f"LEFT JOIN {cmap} m{i} ON m{i}.raw = CAST(s.{col} AS VARCHAR)")
            replaced.append(f"coalesce(m{i}.code, CAST(s.{col} AS VARCHAR)) AS {col}")
            extra.extend(canonical_companions_sql(f, f"m{i}"))
        if joins:
            view = f"cstg_{name}"
            self.con.execute(f"""
                CREATE OR REPLACE TEMP VIEW {view} AS
                SELECT s.* REPLACE ({", ".join(replaced)}), {", ".join(extra)}
                FROM {st.relation} s {" ".join(joins)}""")
            st.relation = view

    def _catalogue_codes(self) -> frozenset[str]:
        """Canonical catalogue codes of the warehouse and of this extract's ``hilist``: the national codes a
        9-digit 价格项目 code may stand for."""
        if self._known_items is None:
            known = {r[0] for r in self.con.execute("SELECT DISTINCT hilist_code FROM main.hilist").fetchall()}
            if "hilist" in self.staged:
                hilist = self.staged["hilist"]
                codes = CodeMap("list")
                known |= {codes(r[0]) for r in self.con.execute(
                    f"SELECT DISTINCT CAST(hilist_code AS VARCHAR) FROM {hilist.relation}").fetchall()}
            self._known_items = frozenset(c for c in known if c)
        return self._known_items

    def process(self, name: str) -> TableReport:
        st = self.staged[name]
        issues = self.issues(st)
        counts = self.load(st, issues)
        if name in PARENT_TABLES:
            self._keep_quarantined_keys(st, issues)
        self.processed.add(name)
        if name == "fee_list_d" and self._fee_settlements:
            self.con.execute(f"DROP TABLE {_FEE_SETTLEMENTS}")  # millions of rows, no longer needed
            self._fee_settlements = False
        return TableReport(name, "ok", files=st.file_names, notes=tuple(st.notes), code_rewrites=st.code_rewrites,
                           code_unresolved=st.code_unresolved, **counts)

    def _keep_quarantined_keys(self, st: StagedTable, issues: str) -> None:
        """Keys of this extract's rows that went to quarantine, with what happened to them, for the
        children's parent check (``held_keys``). Made only when there are any (never for a clean extract).

        A key may be in the warehouse all the same (a repeated key's first row loaded, a correction left
        in quarantine): the children look keys up here only when the warehouse lacks them.
        """
        sql = quarantined_keys_sql(st, issues if self._issue_count.get(st.spec.name) else None)
        if sql:
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE qk_{st.spec.name} AS {sql}")
            self._quarantined_keys.add(st.spec.name)

    def held_keys(self, parent: str) -> str | None:
        """Temp table (``k``, ``why``) of the keys of ``parent`` known to be held back, with what happened
        to each: quarantined by this run, held themselves (``held.<parent>``), or quarantined by an earlier
        run and still outstanding; None when there is none. A child whose parent key is missing from the
        warehouse but listed here is ``parent_held`` rather than ``missing_parent``.
        """
        if parent in self._held_keys:
            return self._held_keys[parent]
        (key,) = TABLES[parent].key
        parts = []
        if parent in self._quarantined_keys:
            parts.append(f"SELECT k, why FROM qk_{parent}")
        if parent in warehouse.HELD_TABLES and self.con.execute(
                f"SELECT 1 FROM held.{quote_ident(parent)} LIMIT 1").fetchall():
            parts.append(f"SELECT {quote_ident(key)} AS k, '本身也在暂存中（自第 ' || _held_batch || ' 批起等待其上级记录）' "
                         f"AS why FROM held.{quote_ident(parent)}")
        earlier = f"""FROM main.quarantine q LEFT JOIN ingest_log l USING (batch_id)
                      WHERE q.table_name = {sql_str(parent)} AND q.released_batch IS NULL
                        AND q.batch_id <> {sql_str(self.batch_id)}"""
        if self.con.execute(f"SELECT 1 {earlier} LIMIT 1").fetchall():
            parts.append(f"""SELECT q.row_key AS k, '已于第 ' || coalesce(CAST(l.batch_no AS VARCHAR), q.batch_id)
                                    || ' 批被隔离（' || string_agg(DISTINCT q.reason_code, '、') || '）' AS why
                             {earlier} GROUP BY q.row_key, l.batch_no, q.batch_id""")
        rel = None
        if parts:
            rel = f"hk_{parent}"
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS " + " UNION ALL ".join(parts))
        self._held_keys[parent] = rel
        return rel

    def release(self, name: str) -> int:
        """Load the rows of ``held.<name>`` whose every parent is in the warehouse now; drop those whose key
        this run loaded from the extract. Their quarantine entries are marked released. Returns the rows
        loaded. Costs one look at an empty table when nothing is held."""
        spec = TABLES[name]
        if name not in warehouse.HELD_TABLES:
            return 0
        held, target = f"held.{quote_ident(name)}", f"main.{quote_ident(name)}"
        if not self.con.execute(f"SELECT 1 FROM {held} LIMIT 1").fetchall():
            return 0
        match = " AND ".join(f"w.{quote_ident(k)} = h.{quote_ident(k)}" for k in spec.key)
        present = " AND ".join(
            f"h.{quote_ident(f)} IN (SELECT {quote_ident(pf)} FROM main.{quote_ident(p)})" for f, p, pf in spec.parents)
        rel = f"rel_{name}"
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {rel} AS
            SELECT h.*, EXISTS (SELECT 1 FROM {target} w WHERE {match}) AS superseded,
                   {_key_text(spec, "h")} AS row_key
            FROM {held} h""")
        self.con.execute(f"DELETE FROM {rel} h WHERE NOT superseded AND NOT ({present})")
        names = ", ".join(quote_ident(n) for n in spec.warehouse_columns)
        back = " AND ".join(f"r.{quote_ident(k)} = h.{quote_ident(k)}" for k in spec.key)
        self.con.execute("BEGIN TRANSACTION")
        try:
            (n,) = self.con.execute(f"INSERT INTO {target} ({names}, _ingest_batch) SELECT {names}, "
                                    f"{int(self.batch_no)} FROM {rel} WHERE NOT superseded").fetchone()
            self.con.execute(f"DELETE FROM {held} h WHERE EXISTS (SELECT 1 FROM {rel} r WHERE {back})")
            self.con.execute(f"""
                UPDATE main.quarantine SET released_batch = {int(self.batch_no)}
                WHERE table_name = {sql_str(name)} AND released_batch IS NULL
                  AND reason_code IN ({", ".join(sql_str(r) for r in HELD_REASONS)})
                  AND row_key IN (SELECT row_key FROM {rel})""")
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute(f"DROP TABLE {rel}")
        self._has_rows.pop(name, None)
        return int(n)

    def rederived(self) -> tuple[int, tuple[str, ...]]:
        """Settlements this run marked for re-derivation (``ingest_rederive``): their number and a few."""
        if not self._rederive:
            return 0, ()
        (n,) = self.con.execute("SELECT count(DISTINCT setl_id) FROM ingest_rederive WHERE batch_no = ?",
                                [self.batch_no]).fetchone()
        examples = [r[0] for r in self.con.execute(
            "SELECT DISTINCT setl_id FROM ingest_rederive WHERE batch_no = ? AND setl_id IS NOT NULL "
            "ORDER BY 1 LIMIT 20", [self.batch_no]).fetchall()]
        return int(n), tuple(examples)

    # -- checks

    def scan(self, st: StagedTable) -> tuple[str, int]:
        """The one pass over all rows of ``st``: a temp table of the rows that fail a one-row check or
        carry leading/trailing spaces in a text column, and its row count (computed once).

        Trimming every value costs more than any check, so columns are read untrimmed until this pass
        shows which ones have padded values; those (and only those) are trimmed from then on. Every
        padded row is in the suspicious table, so the one-row checks of the trimmed columns can be
        evaluated on that small table alone.
        """
        name = st.spec.name
        if name not in self._scanned:
            checks = row_checks(st.spec, st.columns, as_of=self.as_of)
            by_value = {n: c for n, c in st.columns.items() if checked_by_value(c)}
            conds = [f"({c.when})" for c in checks if not (c.value_only and c.field in by_value)]
            conds += [c.maybe_padded for n, c in st.columns.items() if c.padded and n not in by_value]
            if by_value:
                # Codes and names: their checks run on the distinct values; rows are matched to the bad ones.
                lists, bad = f"dv_{name}", f"bad_{name}"
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {lists} AS SELECT "
                                 + ", ".join(f"list(DISTINCT {c.ref}) AS {c.ref}" for c in by_value.values())
                                 + f" FROM {st.relation}")
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {bad} AS "
                                 + bad_values_sql(checks, st.columns, lists))
                self.con.execute(f"DROP TABLE {lists}")
                with_bad = {r[0] for r in self.con.execute(f"SELECT DISTINCT col FROM {bad}").fetchall()}
                for n, c in by_value.items():
                    if c.field.required and c.nullable:
                        conds.append(f"({c.ref} IS NULL)")
                    if n in with_bad:
                        conds.append(f"({c.ref} IN (SELECT v FROM {bad} WHERE col = {sql_str(n)}))")
            padded = {n: c.padded for n, c in st.columns.items() if c.padded}
            cond = " OR ".join(conds) or "false"
            suspicious = f"sus_{name}"
            (n,) = self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {suspicious} AS SELECT * FROM {st.relation} WHERE {cond}").fetchone()
            if n and padded:
                flags = self.con.execute(
                    "SELECT " + ", ".join(f"coalesce(bool_or({p}), false)" for p in padded.values())
                    + f" FROM {suspicious}").fetchone()
                trim = {col for col, flag in zip(padded, flags) if flag}
                st.columns = {k: replace(c, trim=k in trim) for k, c in st.columns.items()}
            self._scanned[name] = (suspicious, int(n))
        return self._scanned[name]

    def duplicates(self, st: StagedTable) -> tuple[str, int]:
        """Temp table of duplicate-key issue rows of ``st`` and their number (computed once, also used
        by other tables)."""
        name = st.spec.name
        if name not in self._duplicates:
            self.scan(st)  # the keys must be trimmed if they are padded
            rel, hashes = f"dup_{name}", f"duph_{name}"
            spec, con = st.spec, self.con
            (repeats,) = con.execute(f"CREATE OR REPLACE TEMP TABLE {hashes} AS "
                                     + repeated_key_hashes_sql(spec, st.relation, st.columns)).fetchone()
            n = 0
            if repeats:
                (n,) = con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS "
                                   + duplicate_key_sql(spec, st.relation, st.columns, candidates=hashes)).fetchone()
            else:  # no key repeats; only the columns of the (empty) result are needed
                con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS SELECT * FROM ("
                            + duplicate_key_sql(spec, st.relation, st.columns) + ") LIMIT 0")
            self._duplicates[name] = (rel, int(n))
        return self._duplicates[name]

    def issues(self, st: StagedTable) -> str:
        """Temp table of all issue rows of ``st`` (columns ``ISSUE_COLUMNS``)."""
        con, spec = self.con, st.spec
        suspicious, n_suspicious = self.scan(st)
        # Usually no row is suspicious, and few checks fire: only those get a (long) query of their own.
        parts = []
        if n_suspicious:
            checks = row_checks(spec, st.columns, as_of=self.as_of)
            fired = con.execute(
                "SELECT " + ", ".join(f"coalesce(bool_or({c.when}), false)" for c in checks) + f" FROM {suspicious}"
            ).fetchone()
            parts = [c.select_sql(suspicious) for c, hit in zip(checks, fired) if hit]
        parts.append(f"SELECT * FROM {self.duplicates(st)[0]}")
        for fld, parent, parent_field in spec.parents:
            sql = self._parent_sql(st, fld, parent, parent_field)
            if sql:
                parts.append(sql)
        if spec.name == "setl_d" and "fee_list_d" in self.staged:
            fee = self.staged["fee_list_d"]
            unreadable = fee.rejected_field_sql("setl_id")
            fee_dup, n_fee_dup = self.duplicates(fee)  # also trims fee's keys if they are padded
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {_FEE_SETTLEMENTS} AS " + settlement_lines_sql(
                st.relation, st.columns, fee.relation, fee.columns, fee_duplicates=fee_dup if n_fee_dup else None))
            self._fee_settlements = True
            parts.append(settlement_total_sql(
                _FEE_SETTLEMENTS,
                unreadable_setl_ids=f"SELECT {unreadable} AS setl_id FROM {fee.rejects}" if unreadable else None,
            ))
        if spec.name == "fee_list_d":
            setl = self.staged.get("setl_d")
            has_wh = self._warehouse_has_rows("setl_d")
            if setl is not None or has_wh:
                parts.append(negative_fee_sql(
                    st.relation, st.columns,
                    setl_relation=setl.relation if setl else None, setl_columns=setl.columns if setl else None,
                    setl_warehouse="main.setl_d" if has_wh else None,
                ))
        if self._warehouse_has_rows(spec.name):
            changed = self._changed_rows_sql(st)
            if changed and self.apply_corrections:
                # Not issues: applied by ``load`` (those of the rows that fail no check).
                rel = f"chg_{spec.name}"
                params = hmac_params(self.settings.pseudonym_key) if "$hmac_" in changed else None
                (n,) = con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS {changed}", params).fetchone()
                if n:
                    self._corrections[spec.name] = rel
            elif changed:
                parts.append(f"""
                    SELECT _row, split_part(changed, '、', 1) AS field, 'changed_after_load' AS reason_code,
                           'changed_after_load' AS check_id, key AS value,
                           '键 ' || key || ' 已于第 ' || batch || ' 批入库，本行内容不同（' || changed
                               || '）；未覆盖，仓库保留原记录，请核对后处理（yibao ingest --apply-corrections 可应用更正）'
                               AS detail
                    FROM ({changed})""")
        rel = f"iss_{spec.name}"
        cols = ", ".join(ISSUE_COLUMNS)
        union = " UNION ALL ".join(f"SELECT {cols} FROM ({p})" for p in parts)
        params = hmac_params(self.settings.pseudonym_key) if "$hmac_" in union else None
        (self._issue_count[spec.name],) = con.execute(
            f"CREATE OR REPLACE TEMP TABLE {rel} AS {union}", params).fetchone()
        return rel

    def _changed_rows_sql(self, st: StagedTable) -> str | None:
        """The rows whose key is already in the warehouse with other content (更正数据): ``_row``, the
        ``key`` as text, the run that loaded it (``batch``) and the fields that differ (``changed``).

        Without ``apply_corrections`` such a row is not loaded: the warehouse keeps the version it has,
        and the row goes to quarantine (``changed_after_load``) so that the correction is seen and nothing
        is dropped silently; the same extract loaded again still changes nothing. Compared are the fields
        the extract carries, as they would be loaded (the resident ID as its pseudonym; names are never
        stored).
        """
        spec = st.spec
        cols = {k: replace(c, alias="s") for k, c in st.columns.items()}
        differs = {}
        vault = None
        for f in spec.fields:
            c = cols.get(f.name)
            new = _loaded_value(spec, f, c, pseudonym=pseudonym_sql(c.text)) if c is not None else None
            if new is None or f.name in spec.key:
                continue
            differs[f.name] = f"({new} IS DISTINCT FROM w.{quote_ident(f.column)})"
            if f.vault and (vault := self._vault_for_compare()):
                # The exact value is the vault's (a birth date corrected within its year); a person the vault
                # lacks (its write failed) catches up without counting as a correction.
                differs[f.name] = (f"({differs[f.name]} OR (v.psn_no IS NOT NULL AND CAST({c.value} AS {f.sql_type}) "
                                   f"IS DISTINCT FROM v.{quote_ident(f.name)}))")
        if not differs:
            return None
        # Rows are first kept when any field differs (rarely); the list of fields is made for those only.
        diffs = [f"CASE WHEN {cond} THEN {sql_str(name)} END" for name, cond in differs.items()]
        keys, match = _warehouse_key_match(st)
        key = " || '|' || ".join(f"s._k{i}" for i in range(len(spec.key)))
        # A repeated key's later rows are quarantined as duplicates already; the warehouse holds the first.
        dup, n_dup = self.duplicates(st)
        repeated = f" AND s._row NOT IN (SELECT _row FROM {dup})" if n_dup else ""
        return f"""
                SELECT s._row, {key} AS key, CAST(w._ingest_batch AS VARCHAR) AS batch,
                       concat_ws('、', {", ".join(diffs)}) AS changed
                FROM (SELECT *, {keys} FROM {st.relation} s) s JOIN main.{quote_ident(spec.name)} w ON {match}
                {f"LEFT JOIN {vault} v ON v.psn_no = w.psn_no" if vault else ""}
                WHERE ({" OR ".join(differs.values())}){repeated}"""

    def _vault_for_compare(self) -> str | None:
        """``vault.psn_identity``'s exact birth dates as a temp table (``psn_no, brdy``) for the correction
        check of ``psn_info``; None when the vault has none yet."""
        if self._vault_dates is None:
            self._vault_dates = ""
            vault = Path(self.settings.identity_vault)
            if vault.is_file():
                self.con.execute(f"ATTACH {sql_str(str(vault))} AS vault_cmp (READ_ONLY)")
                try:
                    if self.con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = 'vault_cmp' AND "
                                        "table_name = 'psn_identity' AND column_name = 'brdy'").fetchall():
                        self.con.execute("CREATE OR REPLACE TEMP TABLE vault_dates AS SELECT psn_no, brdy "
                                         "FROM vault_cmp.psn_identity")
                        self._vault_dates = "vault_dates"
                finally:
                    self.con.execute("DETACH vault_cmp")
        return self._vault_dates or None

    def _parent_sql(self, st: StagedTable, fld: str, parent: str, parent_field: str) -> str | None:
        """Issue rows of the rows of ``st`` whose ``fld`` names no row of the warehouse's ``parent`` table.

        Parents are processed first (``LOAD_ORDER``), so by now every good parent row of the extract is in
        the warehouse, and a parent key that is not is held back (``parent_held``: quarantined, held, or
        its table refused) or nowhere (``missing_parent``). Either way the row is held until it is.
        """
        c = st.columns[fld]
        lookups = []
        if self._warehouse_has_rows(parent):
            lookups.append((f"main.{quote_ident(parent)}", f"p.{quote_ident(parent_field)}"))
        refused = self.refused.get(parent)
        held = None if refused is not None else self.held_keys(parent)
        # The values are looked up first; rows are read back only for values that are missing (rarely).
        candidates = f"SELECT {c.key_text} AS v FROM {st.relation}"
        if (st.spec.name, fld) == ("fee_list_d", "setl_id") and "setl_d" in self.processed and self._fee_settlements:
            # The settlement-total check of setl_d has matched the fee lines' settlement keys with the
            # extract's settlements, which are all in the warehouse or held back by now: the keys it did not
            # find, those of repeated lines that it left out, and the held-back ones are left to look up.
            candidates = f"SELECT setl_id AS v FROM {_FEE_SETTLEMENTS} WHERE _row IS NULL"
            dup, n_dup = self.duplicates(st)
            if n_dup:
                candidates += f" UNION ALL SELECT {c.key_text} FROM {st.relation} WHERE _row IN (SELECT _row FROM {dup})"
            if held:
                candidates += f" UNION ALL SELECT k FROM {held}"
        missing = f"mp_{st.spec.name}_{fld}"
        (n,) = self.con.execute(f"CREATE OR REPLACE TEMP TABLE {missing} AS "
                                + missing_parent_values_sql(c, candidates, lookups)).fetchone()
        if not n:
            return None
        return held_rows_sql(st, fld, parent, missing, refused=refused, held=held,
                             nowhere=not lookups and parent not in self.processed)

    def _warehouse_has_rows(self, table: str) -> bool:
        if table not in self._has_rows:
            self._has_rows[table] = bool(self.con.execute(f"SELECT 1 FROM main.{quote_ident(table)} LIMIT 1").fetchall())
        return self._has_rows[table]

    # -- load

    def load(self, st: StagedTable, issues: str) -> dict:
        con, name = self.con, st.spec.name
        issue_rows = 0
        if self._issue_count.get(name):
            issue_rows = con.execute(f"SELECT count(DISTINCT _row) FROM {issues}").fetchone()[0]
        cand = f"qc_{name}" if issue_rows or st.rejects else None
        bad_rows = new_rows = 0
        reasons: list = []
        if cand:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {cand} AS {self._quarantine_sql(st, issues)}")
            bad_rows, new_rows = con.execute(f"""
                SELECT count(DISTINCT _row), count(DISTINCT _row) FILTER (WHERE is_new) FROM {cand}""").fetchone()
            reasons = con.execute(f"""
                SELECT reason_code, count(DISTINCT _row) FROM {cand} WHERE is_new GROUP BY 1 ORDER BY 1""").fetchall()
        # Rows whose only problem is a parent the warehouse lacks are kept, typed, until it is there.
        holding = None
        if issue_rows and name in warehouse.HELD_TABLES:
            holding = f"hr_{name}"
            (n_holding,) = con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {holding} AS SELECT _row FROM {issues} GROUP BY _row
                HAVING bool_and(reason_code IN ({", ".join(sql_str(r) for r in HELD_REASONS)}))""").fetchone()
            holding = holding if n_holding else None
        corrections = self._corrections.get(name)
        if corrections and issue_rows:  # a changed row that fails a check stays out, as any bad row
            con.execute(f"DELETE FROM {corrections} WHERE _row IN (SELECT _row FROM {issues})")
        qcols = ", ".join(c for c, _ in warehouse.QUARANTINE_COLUMNS)
        pseudonyms = self._pseudonyms(st, issues)
        insert = self._insert_sql(st, issues, pseudonyms)
        held = corrected = 0
        con.execute("BEGIN TRANSACTION")
        try:
            if cand:
                con.execute(f"INSERT INTO quarantine ({qcols}) SELECT {qcols} FROM {cand} WHERE is_new")
            loaded = con.execute(insert).fetchone()[0]
            if holding:
                held = self._hold(st, holding, pseudonyms)
            if corrections:
                corrected = self._correct(st, corrections, pseudonyms)
            if loaded or corrected:
                self._resolve_loaded(st)
            con.execute("COMMIT")
            self._has_rows.pop(name, None)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if name == "psn_info":
            try:
                self._write_identities(st, issues, pseudonyms, corrections if corrected else None)
            except duckdb.Error as exc:  # the rows are in; the vault catches up on the next ingest
                st.notes.append(f"身份库未写入 (identity vault not written): {first_line(exc)}")
        for temp in (cand, pseudonyms, holding, corrections):
            if temp:
                con.execute(f"DROP TABLE {temp}")
        bad_rows, new_rows = int(bad_rows), int(new_rows)
        clean = st.rows - int(issue_rows)
        return {
            "rows_in": st.rows + st.rejected,
            "loaded": int(loaded),
            "corrected": corrected,
            "quarantined": new_rows,
            "unchanged": (bad_rows - new_rows) + (clean - int(loaded) - corrected),
            "held": held,
            "reasons": tuple((code, int(n)) for code, n in reasons),
        }

    def _hold(self, st: StagedTable, holding: str, pseudonyms: str | None) -> int:
        """Keep the rows of ``st`` numbered in ``holding`` in ``held.<table>``, typed as they would be loaded,
        in place of any held row with the same key. A row whose key is loaded already is not kept: it is
        a correction whose parent is missing, and stays in quarantine only. Returns the rows kept."""
        spec, name = st.spec, st.spec.name
        keys, match = _warehouse_key_match(st)
        target = f"held.{quote_ident(name)}"
        picked = f"(SELECT *, {keys} FROM {self._relation(st, pseudonyms)} s WHERE s._row IN (SELECT _row FROM {holding})) s"
        self.con.execute(f"DELETE FROM {target} w WHERE EXISTS (SELECT 1 FROM {picked} WHERE {match})")
        names = ", ".join(quote_ident(n) for n in spec.warehouse_columns)
        (n,) = self.con.execute(f"""
            INSERT INTO {target} ({names}, _held_batch, _held_row)
            SELECT {", ".join(self._values(st))}, {int(self.batch_no)}, s._row FROM {picked}
            WHERE NOT EXISTS (SELECT 1 FROM main.{quote_ident(name)} w WHERE {match})""").fetchone()
        return int(n)

    def _correct(self, st: StagedTable, corrections: str, pseudonyms: str | None) -> int:
        """Apply the corrections of ``st`` (rows in ``corrections``, see ``_changed_rows_sql``): the loaded
        row goes to ``row_versions`` (version n, the run that loaded it, the fields that change, the whole
        row as JSON), the settlements that depend on it to ``ingest_rederive``, and the new content
        replaces it (the fields the extract carries; ``_ingest_batch`` becomes this run's). Earlier
        ``changed_after_load`` entries of these keys are released. Returns the rows corrected."""
        con, spec, name = self.con, st.spec, st.spec.name
        (n,) = con.execute(f"SELECT count(*) FROM {corrections}").fetchone()
        if not n:
            return 0
        keys, match = _warehouse_key_match(st)
        target = f"main.{quote_ident(name)}"
        con.execute(f"""
            INSERT INTO row_versions
            SELECT {sql_str(name)}, c.key, 1 + coalesce(v.n, 0), w._ingest_batch, {int(self.batch_no)}, c.changed,
                   to_json(w), TIMESTAMP '{self.ingested_at.isoformat(sep=" ")}'
            FROM {corrections} c JOIN (SELECT _row, {keys} FROM {st.relation} s) s USING (_row)
            JOIN {target} w ON {match}
            LEFT JOIN (SELECT row_key, count(*) AS n FROM row_versions WHERE table_name = {sql_str(name)}
                       GROUP BY 1) v ON v.row_key = c.key""")
        self._mark_rederive(name, corrections)  # what depends on the old content
        sets = []
        for f in spec.fields:
            if f.name in spec.key or f.name not in st.columns:
                continue
            if _loaded_value(spec, f, st.columns[f.name], pseudonym="") is not None:
                sets.append(f.column)
                sets += [c for c in f.companions]
        cols = dict(zip(spec.warehouse_columns, self._values(st)))
        relation = self._relation(st, pseudonyms)
        con.execute(f"""
            UPDATE {target} AS w
            SET {", ".join(f"{quote_ident(c)} = s.{quote_ident(c)}" for c in sets)}, _ingest_batch = {int(self.batch_no)}
            FROM (SELECT {", ".join(f"{cols[c]} AS {quote_ident(c)}" for c in sets)}, {keys}
                  FROM {relation} s WHERE s._row IN (SELECT _row FROM {corrections})) s
            WHERE {match}""")
        self._mark_rederive(name, corrections)  # and what depends on the new content
        con.execute(f"""
            UPDATE main.quarantine SET released_batch = {int(self.batch_no)}
            WHERE table_name = {sql_str(name)} AND released_batch IS NULL AND reason_code = 'changed_after_load'
              AND row_key IN (SELECT key FROM {corrections})""")
        return int(n)

    def _mark_rederive(self, name: str, corrections: str) -> None:
        """Add to ``ingest_rederive`` the settlements that depend on the corrected keys of ``name``."""
        sql = _REDERIVE.get(name, "SELECT c.k AS row_key, CAST(NULL AS VARCHAR) AS setl_id FROM {ck} c")
        sql = sql.format(ck=f"(SELECT DISTINCT key AS k FROM {corrections})")
        self.con.execute(f"""
            INSERT INTO ingest_rederive
            SELECT DISTINCT {int(self.batch_no)}, {sql_str(name)}, row_key, setl_id FROM ({sql}) x
            EXCEPT SELECT batch_no, table_name, row_key, setl_id FROM ingest_rederive WHERE batch_no = {int(self.batch_no)}""")
        self._rederive += 1

    def _resolve_loaded(self, st: StagedTable) -> None:
        """Release the outstanding quarantine entries of earlier runs whose key this run loaded after all
        (the row sent again fixed, or corrected): what is left in quarantine is what still waits for a
        person. A repeated key's entries stay (the repeat itself was never loaded)."""
        spec, name = st.spec, st.spec.name
        earlier = (f"FROM main.quarantine WHERE table_name = {sql_str(name)} AND released_batch IS NULL "
                   f"AND batch_id <> {sql_str(self.batch_id)} AND reason_code <> 'duplicate_key'")
        if not self.con.execute(f"SELECT 1 {earlier} LIMIT 1").fetchall():
            return
        parts = " AND ".join(f"w.{quote_ident(k)} = split_part(q.row_key, '|', {i + 1})" for i, k in enumerate(spec.key))
        self.con.execute(f"""
            UPDATE main.quarantine SET released_batch = {int(self.batch_no)}
            WHERE quarantine_id IN (
                SELECT q.quarantine_id FROM (SELECT quarantine_id, row_key {earlier}) q
                JOIN main.{quote_ident(name)} w ON {parts}
                WHERE w._ingest_batch = {int(self.batch_no)})""")

    def _quarantine_sql(self, st: StagedTable, issues: str, *, known: str = "main.quarantine") -> str:
        """Candidate quarantine rows with ``is_new`` (not yet in ``known``, the quarantine table)."""
        name = st.spec.name
        key = " || '|' || ".join(f"coalesce({st.columns[k].key_text}, '')" for k in st.spec.key)
        raw = "json_object(" + ", ".join(
            f"{sql_str(c)}, {mask_raw_sql(c, f'CAST({quote_ident(c)} AS VARCHAR)')}"
            if (c in CERTNO_LIKE or c in OTHER_PERSONAL or c in COARSENED)
            else f"{sql_str(c)}, coalesce({quote_ident(st.raw_columns[c])}, {quote_ident(c)})" if c in st.raw_columns
            else f"{sql_str(c)}, {quote_ident(c)}"
            for c in st.source_columns
        ) + ")"
        files = "[" + ", ".join(sql_str(f) for f in st.file_names) + "]"
        rows = f"""
            SELECT _row, _file, {key} AS row_key, {raw} AS raw
            FROM {st.relation} WHERE _row IN (SELECT _row FROM {issues})"""
        rejected = ""
        if st.rejects:
            rejected = f"UNION ALL SELECT DISTINCT _row, _file, row_key, raw FROM {st.rejects}"
        all_issues = f"SELECT {', '.join(ISSUE_COLUMNS)} FROM {issues}"
        if st.rejects:
            all_issues += f" UNION ALL SELECT {', '.join(ISSUE_COLUMNS)} FROM {st.rejects}"
        sep = "chr(31)"
        return f"""
            WITH r AS ({rows} {rejected}),
            h AS (SELECT *, md5(raw) AS row_hash FROM r),
            o AS (SELECT *, row_number() OVER (PARTITION BY row_key, row_hash ORDER BY _row) AS occ FROM h),
            rid AS (SELECT *, md5({sql_str(name)} || {sep} || row_key || {sep} || row_hash || {sep} || occ) AS row_id
                    FROM o),
            q AS (
                SELECT md5(rid.row_id || {sep} || coalesce(i.field, '') || {sep} || i.reason_code || {sep} || i.check_id)
                           AS quarantine_id,
                       rid.row_id, {sql_str(name)} AS table_name, rid.row_key, i._row AS row_number, i.field,
                       i.reason_code, i.check_id,
                       {sql_str(name + ' 第')} || i._row || '行'
                           || CASE WHEN i.field IS NULL THEN '' ELSE ' 字段 ' || i.field END || ': ' || i.detail AS reason,
                       i.value, list_extract({files}, rid._file + 1) AS source_file,
                       {sql_str(self.batch_id)} AS batch_id,
                       TIMESTAMP '{self.ingested_at.isoformat(sep=" ")}' AS ingested_at,
                       rid.raw, CAST(NULL AS BIGINT) AS released_batch, i._row
                FROM ({all_issues}) i JOIN rid USING (_row)
                QUALIFY row_number() OVER (PARTITION BY quarantine_id ORDER BY i._row) = 1
            )
            SELECT q.*, quarantine_id NOT IN (
                SELECT quarantine_id FROM {known} WHERE table_name = {sql_str(name)}
                AND released_batch IS NULL) AS is_new
            FROM q"""

    def _pseudonyms(self, st: StagedTable, issues: str) -> str | None:
        """Temp table (``_row``, ``certno_pseudonym``) of the keyed pseudonyms of the resident IDs of
        ``st``'s good rows, or None when ``st`` has no resident IDs. Computed once for both the warehouse
        and the identity vault: the two HMAC-SHA256 rounds per row are the costliest part of ``psn_info``.
        """
        cert = st.columns.get("certno") if st.spec.name == "psn_info" else None
        if cert is None:
            return None
        rel = f"pseud_{st.spec.name}"
        good = f"_row NOT IN (SELECT _row FROM {issues})" if self._issue_count.get(st.spec.name) else "true"
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {rel} AS
            SELECT _row, {pseudonym_sql(cert.text)} AS certno_pseudonym FROM {st.relation}
            WHERE {good} AND {cert.text} IS NOT NULL""", hmac_params(self.settings.pseudonym_key))
        return rel

    def _values(self, st: StagedTable) -> list[str]:
        """SQL (alias ``s``, a row of ``_relation``) of every warehouse column of ``st``'s table but
        ``_ingest_batch``, in the order of ``spec.warehouse_columns``."""
        spec = st.spec
        cols = {k: replace(c, alias="s") for k, c in st.columns.items()}
        values = []
        for f in spec.stored_fields:
            c = cols.get(f.name)
            value = _loaded_value(spec, f, c, pseudonym="s._certno_pseudonym") if c is not None else None
            values.append(f"CAST(NULL AS {f.column_type})" if value is None else value)
        values += [f"s.{quote_ident(c)}" if c in st.companions else "CAST(NULL AS VARCHAR)"
                   for c in spec.companion_columns]
        return values

    def _relation(self, st: StagedTable, pseudonyms: str | None) -> str:
        """``st``'s staged rows, with the resident ID's pseudonym (``_certno_pseudonym``) when there is one."""
        if pseudonyms:
            return (f"(SELECT s.*, p.certno_pseudonym AS _certno_pseudonym FROM {st.relation} s "
                    f"LEFT JOIN {pseudonyms} p ON p._row = s._row)")
        return st.relation

    def _insert_sql(self, st: StagedTable, issues: str, pseudonyms: str | None) -> str:
        """The INSERT of the good rows of ``st`` not yet in the warehouse (``pseudonyms``: see ``_pseudonyms``)."""
        spec = st.spec
        target = quote_ident(spec.name)
        names = ", ".join(quote_ident(n) for n in spec.warehouse_columns)
        # Usually there is no bad row; then the insert need not look each row up among them.
        where = f"s._row NOT IN (SELECT _row FROM {issues})" if self._issue_count.get(spec.name) else "true"
        relation = self._relation(st, pseudonyms)
        source = f"{relation} s"
        if self._warehouse_has_rows(spec.name):
            keys, match = _warehouse_key_match(st)
            source = f"(SELECT *, {keys} FROM {relation} s) s"
            where += f" AND NOT EXISTS (SELECT 1 FROM main.{target} w WHERE {match})"
        return f"""
            INSERT INTO main.{target} ({names}, _ingest_batch)
            SELECT {", ".join(self._values(st))}, {int(self.batch_no)}
            FROM {source}
            WHERE {where}"""

    def _write_identities(self, st: StagedTable, issues: str, pseudonyms: str | None,
                          corrections: str | None = None) -> None:
        """Clear resident IDs, names and exact birth dates (``Field.vault``) of the loaded persons go to the
        identity vault only; a corrected person's (rows in ``corrections``) replace the vault's."""
        cert, name, birth = st.columns.get("certno"), st.columns.get("psn_name"), st.columns.get("brdy")
        if cert is None and name is None and birth is None:
            return
        vault = Path(self.settings.identity_vault)
        vault.parent.mkdir(parents=True, exist_ok=True)
        con = self.con
        con.execute(f"ATTACH {sql_str(str(vault))} AS vault")
        try:
            plain = "VARCHAR USING COMPRESSION uncompressed"  # all different: see warehouse.UNCOMPRESSED_COLUMNS
            con.execute(warehouse.VAULT_DDL.format(vault="vault", plain=plain))
            con.execute("ALTER TABLE vault.psn_identity ADD COLUMN IF NOT EXISTS brdy DATE")  # vaults made before
            psn = st.columns["psn_no"].text
            birth_sql = f"CAST({birth.value} AS DATE)" if birth else "CAST(NULL AS DATE)"
            cert_sql = f"upper({cert.text})" if cert else "CAST(NULL AS VARCHAR)"
            pseud = "p.certno_pseudonym" if pseudonyms else "CAST(NULL AS VARCHAR)"
            source = f"{st.relation} s LEFT JOIN {pseudonyms} p ON p._row = s._row" if pseudonyms else f"{st.relation} s"
            name_sql = name.text if name else "CAST(NULL AS VARCHAR)"
            good = f"s._row NOT IN (SELECT _row FROM {issues})"
            con.execute(f"""
                INSERT INTO vault.psn_identity (psn_no, certno_pseudonym, certno, psn_name, _ingest_batch, brdy)
                SELECT {psn}, {pseud}, {cert_sql}, {name_sql}, {sql_str(self.batch_id)}, {birth_sql}
                FROM {source}
                WHERE {good}
                  AND ({cert_sql} IS NOT NULL OR {name_sql} IS NOT NULL OR {birth_sql} IS NOT NULL)
                  AND {psn} NOT IN (SELECT psn_no FROM vault.psn_identity)""")
            if birth:  # a person in the vault before it kept birth dates
                con.execute(f"""
                    UPDATE vault.psn_identity AS v SET brdy = n.brdy
                    FROM (SELECT {psn} AS psn_no, {birth_sql} AS brdy FROM {source} WHERE {good}) n
                    WHERE v.psn_no = n.psn_no AND v.brdy IS NULL""")
            if corrections:
                sets = (["certno = n.certno", "certno_pseudonym = n.certno_pseudonym"] if cert else []) + (
                    ["psn_name = n.psn_name"] if name else []) + (["brdy = n.brdy"] if birth else [])
                con.execute(f"""
                    UPDATE vault.psn_identity AS v
                    SET {", ".join(sets)}, _ingest_batch = {sql_str(self.batch_id)}
                    FROM (SELECT {psn} AS psn_no, {pseud} AS certno_pseudonym, {cert_sql} AS certno,
                                 {name_sql} AS psn_name, {birth_sql} AS brdy
                          FROM {source} WHERE s._row IN (SELECT _row FROM {corrections})) n
                    WHERE v.psn_no = n.psn_no""")
        finally:
            con.execute("DETACH vault")
        try:
            os.chmod(vault, 0o600)  # clear identities: readable by the owner only
        except OSError:
            pass


def held_rows_sql(st: StagedTable, fld: str, parent: str, missing: str, *, refused: str | None, held: str | None,
                  nowhere: bool) -> str:
    """Issue rows of the rows of ``st`` whose ``fld`` is one of the ``missing`` parent keys: held because
    the parent table was refused (``refused``: why), its key is held back (``held``: keys and why), or it
    is nowhere. ``nowhere``: the parent table is neither in this run nor in the warehouse (said in the
    table's notes)."""
    held_why = None
    if refused is not None:
        cause = refused if len(refused) <= 160 else refused[:160] + "…"
        held_why = sql_str(f"所在的表本批被拒收（{cause}）")
    elif nowhere:
        st.notes.append(
            f"上级表 {parent} 既不在本批数据中也不在仓库里：{fld} 指向它的行全部暂存，待 {parent} 入库后自动入库 "
            f"(parent table {parent} not available: rows held)")
    return missing_parent_rows_sql(st.spec, fld, st.relation, st.columns, TABLES[parent], missing,
                                   held=held, held_why=held_why)


def quarantined_keys_sql(st: StagedTable, issues: str | None) -> str | None:
    """The keys (``k``) of a parent table's rows this run quarantined (``issues``: its issue rows, None when
    it has none) or could not read, with what happened to each (``why``); None when there are none."""
    (key,) = st.spec.key  # parents are single-key tables
    parts = []
    if issues:
        parts.append(f"""
            SELECT {st.columns[key].key_text} AS k,
                   '在本批第' || i._row || '行被隔离（' || i.reasons || '）' AS why
            FROM (SELECT _row, string_agg(DISTINCT reason_code, '、' ORDER BY reason_code) AS reasons
                  FROM {issues} GROUP BY _row) i JOIN {st.relation} s USING (_row)""")
    if st.rejects:
        parts.append(f"SELECT row_key AS k, '在本批第' || _row || '行无法读取（' || reason_code || '）' AS why "
                     f"FROM {st.rejects}")
    return " UNION ALL ".join(parts) or None


def code_fields(st: StagedTable) -> list[Field]:
    """The code fields of ``st`` that are put in canonical form (text or integer columns)."""
    return [f for f in st.spec.canonical_fields if f.name in st.columns
            and (st.columns[f.name]._is_varchar
                 or (st.columns[f.name]._is_numeric and not st.columns[f.name]._is_float))]


def distinct_codes_sql(st: StagedTable, fields: list[Field]) -> str:
    """The distinct values of each of ``fields`` as text, with their row counts (one row per field and
    value: the other fields NULL)."""
    texts = {f.name: f"CAST({quote_ident(f.name)} AS VARCHAR)" for f in fields}
    sets = ", ".join(f"({quote_ident(f.name)})" for f in fields)
    return (f"SELECT {', '.join(quote_ident(f.name) for f in fields)}, count(*) AS n FROM "
            f"(SELECT {', '.join(f'{t} AS {quote_ident(n)}' for n, t in texts.items())} FROM {st.relation}) "
            f"GROUP BY GROUPING SETS ({sets})")


def code_plan(st: StagedTable, fields: list[Field], rows, known_codes: Callable[[], frozenset[str]]
              ) -> list[tuple[int, Field, list[tuple[str, str, str | None]]]]:
    """From the rows of :func:`distinct_codes_sql`: per field whose codes change, its number, the field and
    the (code as written, canonical code, suffix) of each value that changes. Records the rewrites and the
    codes left unresolved on ``st``, and marks the fields as canonicalised (``raw_columns``, companions, a
    text type). ``known_codes()`` gives the catalogue's codes (read only when a list code needs them)."""
    counts: dict[str, list[tuple[str, int]]] = {f.name: [] for f in fields}
    for row in rows:
        for f, value in zip(fields, row[:-1]):
            if value is not None:
                counts[f.name].append((value, row[-1]))
    rewrites, unresolved, out = [], [], []
    for i, f in enumerate(fields):
        codes = CodeMap(f.canonical, known=known_codes() if f.canonical == "list" else None)
        changed, kinds, left = [], {}, {}
        for value, n in sorted(counts[f.name]):
            c = codes.get(value)
            if c.unresolved:
                left.setdefault(c.unresolved, [0, []])
                left[c.unresolved][0] += n
                left[c.unresolved][1].append(value)
            if c.changed:
                changed.append((value, c.code, c.suffix))
                for kind in c.rewrites:
                    kinds[kind] = kinds.get(kind, 0) + n
        rewrites += [(f.name, kind, n) for kind, n in sorted(kinds.items())]
        unresolved += [(f.name, why, n, tuple(sorted(ex)[:5])) for why, (n, ex) in sorted(left.items())]
        if not changed:
            continue
        out.append((i, f, changed))
        st.raw_columns[f.name] = f.companions[0]
        st.companions.update(f.companions)
        st.columns[f.name] = replace(st.columns[f.name], src_type="VARCHAR")
    st.code_rewrites, st.code_unresolved = tuple(rewrites), tuple(unresolved)
    return out


def canonical_companions_sql(f: Field, mapping: str) -> list[str]:
    """The companion columns of a canonicalised field, from its mapping's row (alias ``mapping``): the code
    as written, and the local suffix where the field keeps one."""
    raw, *suffix = f.companions
    return [f"{mapping}.raw AS {quote_ident(raw)}"] + [f"{mapping}.suffix AS {quote_ident(c)}" for c in suffix]


def _loaded_value(spec: TableSpec, f: Field, c: Column, *, pseudonym: str) -> str | None:
    """SQL of the value the warehouse stores for field ``f`` of staged column ``c`` (in ``f.column``); None
    for what it never stores (names, ``setl_d.age``). ``pseudonym`` is the SQL of the resident ID's keyed
    pseudonym. A coarsened field (``Field.coarse``: the birth date) is stored in its coarse form."""
    if spec.name == "psn_info" and f.name == "psn_name":
        return None
    if spec.name == "psn_info" and f.name == "certno":
        return pseudonym
    if f.coarse is not None:
        return None if f.coarse.column is None else f.coarse.expr(f"CAST({c.value} AS {f.sql_type})")
    return f"CAST({c.value} AS {f.sql_type})"


def _key_text(spec: TableSpec, alias: str) -> str:
    """SQL of a warehouse row's key as the quarantine writes it (``row_key``: the key fields joined by |)."""
    return " || '|' || ".join(f"coalesce(CAST({alias}.{quote_ident(k)} AS VARCHAR), '')" for k in spec.key)


def _warehouse_key_match(st: StagedTable) -> tuple[str, str]:
    """SELECT items ``_k0, _k1, ...`` of the staged row's key, and the condition matching them (alias
    ``s``) with a warehouse row (alias ``w``). The keys are projected first: a correlated expression
    would make DuckDB deduplicate all keys."""
    keys = ", ".join(f"{st.columns[k].join_text} AS _k{i}" for i, k in enumerate(st.spec.key))
    match = " AND ".join(f"w.{quote_ident(k)} = s._k{i}" for i, k in enumerate(st.spec.key))
    return keys, match


def _stage(con: duckdb.DuckDBPyConnection, src: TableSource) -> StagedTable:
    spec = TABLES[src.table]
    empty = [str(p) for p in src.files if p.stat().st_size == 0]
    if empty:
        raise TableError(f"文件为空 (empty file): {', '.join(empty)}")
    if src.fmt == "parquet":
        return _stage_parquet(con, spec, src.files)
    return _stage_csv(con, spec, src.files)


@dataclass(frozen=True)
class ParquetLayout:
    """What a table's Parquet files hold, from their footers only (both engines stage from it): the files
    in row order, the first row number of each, the columns of their union (DuckDB types), the columns no
    row group holds a NULL in, and the rows in all."""

    paths: tuple[str, ...]
    offsets: tuple[int, ...]
    described: tuple[tuple[str, str], ...]
    never_null: frozenset[str]
    rows: int

    @property
    def renames(self) -> tuple[str, tuple[str, ...]]:
        """The SELECT list of the source columns under their lower-case names, and those names."""
        return _renames_of(self.described)


def parquet_layout(con: duckdb.DuckDBPyConnection, spec: TableSpec, files: tuple[Path, ...]) -> ParquetLayout:
    """Read the footers of ``files`` (``TableError`` when one is not Parquet, is cut off, or lacks a
    required column)."""
    paths = [str(p.resolve()) for p in files]
    for path in paths:
        _check_parquet_ends(path)
    for path in paths:
        cols = _describe(con, f"SELECT * FROM read_parquet({sql_str(path)}, hive_partitioning = false)", path)
        _require(spec, path, cols)
    file_list = "[" + ", ".join(sql_str(p) for p in paths) + "]"
    try:
        counts = dict(con.execute(f"SELECT file_name, num_rows FROM parquet_file_metadata({file_list})").fetchall())
    except duckdb.Error as exc:
        raise TableError(f"无法读取 Parquet 元数据 (cannot read Parquet metadata): {first_line(exc)}") from exc
    offsets, total = [], 0
    for path in paths:
        offsets.append(total)
        total += int(counts.get(path, 0))
    cols = _describe(con, f"SELECT * FROM read_parquet({file_list}, union_by_name = true, hive_partitioning = false)",
                     ", ".join(paths))
    _renames_of(cols, spec)  # two names for one column: refused before any row is read
    # Columns that every file has and whose statistics count no NULL in any row group.
    never_null = set()
    try:
        for col, n_files, nulls, known in con.execute(
            f"SELECT path_in_schema, count(DISTINCT file_name), sum(stats_null_count), "
            f"bool_and(stats_null_count IS NOT NULL) FROM parquet_metadata({file_list}) GROUP BY 1"
        ).fetchall():
            if n_files == len(paths) and known and nulls == 0:
                never_null.add(_norm(col))
    except duckdb.Error:
        pass  # no statistics: every column is checked for NULLs
    return ParquetLayout(tuple(paths), tuple(offsets), tuple(cols), frozenset(never_null), total)


def _stage_parquet(con: duckdb.DuckDBPyConnection, spec: TableSpec, files: tuple[Path, ...]) -> StagedTable:
    layout = parquet_layout(con, spec, files)
    file_list = "[" + ", ".join(sql_str(p) for p in layout.paths) + "]"
    # A lake's partition folders (month=…/region=…) are not columns: the files hold every field.
    scan = f"read_parquet({file_list}, union_by_name = true, file_row_number = true, hive_partitioning = false)"
    select, source_columns = layout.renames
    offs = "[" + ", ".join(str(o) for o in layout.offsets) + "]::BIGINT[]"
    rel = f"stg_{spec.name}"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW {rel} AS
        SELECT list_extract({offs}, CAST(file_index AS INTEGER) + 1) + file_row_number + 1 AS _row,
               CAST(file_index AS INTEGER) AS _file, {select}
        FROM {scan}""")
    return StagedTable(spec, rel, files, source_columns, staged_columns(spec, con, rel, never_null=set(layout.never_null)),
                   layout.rows)


def _stage_csv(con: duckdb.DuckDBPyConnection, spec: TableSpec, files: tuple[Path, ...]) -> StagedTable:
    name = spec.name
    parts, reject_parts, offset, accepted, rejected = [], [], 0, 0, 0
    reject_headers: dict[int, list[str]] = {}
    copies = _Utf8Copies(con)
    for i, p in enumerate(files):
        path = str(p.resolve())
        part, rej, scan = f"stgpart_{name}_{i}", f"rej_{name}_{i}", f"rejscan_{name}_{i}"
        text, readable = copies.readable(p)  # the file itself, or a UTF-8 copy of it
        try:
            _check_csv_shape(spec, p, readable)
            (n_ok,) = con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {part} AS SELECT * FROM read_csv({sql_str(readable)}, {_CSV_OPTIONS},
                    store_rejects = true, rejects_table = '{rej}', rejects_scan = '{scan}')""").fetchone()
        except duckdb.Error as exc:
            raise TableError(f"无法读取文件 (cannot read file) {path}: "
                              f"{first_line(exc).replace(readable, path)}") from exc
        finally:
            copies.remove(readable)
        cols = _describe(con, f"SELECT * FROM {part}", path)
        _require(spec, path, cols)
        select, _ = _renames(spec, cols)
        n_bad = con.execute(f"SELECT count(DISTINCT line) FROM {rej}").fetchone()[0]
        if n_bad and _cut_off(p):
            # The copy or export stopped half-way: the last record has no line break and does not parse.
            last = con.execute(f"SELECT CAST(error_type AS VARCHAR) FROM {rej} "
                               f"WHERE CAST(line AS BIGINT) - 1 = {n_ok + n_bad} LIMIT 1").fetchall()
            if last:
                raise TableError(
                    f"文件 {path} 不完整 (truncated file): 最后一行没有换行符且无法解析（"
                    f"{_CSV_ERRORS_ZH.get(last[0][0], last[0][0])}），疑似复制或导出中断，请重新导出；"
                    f"整表未入库 (table refused)")
        if n_bad:
            # Rows that were rejected leave gaps: accepted row a sits at a + (rejects before it).
            adj = f"adj_{name}_{i}"
            con.execute(f"""
                CREATE OR REPLACE TEMP TABLE {adj} AS
                SELECT t, max(j) AS j FROM (
                    SELECT CAST(line AS BIGINT) - 1 - row_number() OVER (ORDER BY line) AS t,
                           row_number() OVER (ORDER BY line) AS j
                    FROM (SELECT DISTINCT line FROM {rej})) GROUP BY t""")
            parts.append(f"""
                SELECT {offset} + p._a + coalesce(adj.j, 0) AS _row, {i} AS _file, {select}
                FROM (SELECT rowid + 1 AS _a, * FROM {part}) p ASOF LEFT JOIN {adj} adj ON p._a > adj.t""")
            reject_parts.append(_rejects_sql(spec, rej, [c for c, _ in cols], offset, i, text=text))
            reject_headers[i] = [_norm(c) for c, _ in cols]
        else:
            parts.append(f"SELECT {offset} + rowid + 1 AS _row, {i} AS _file, {select} FROM {part}")
        offset += n_ok + n_bad
        accepted += n_ok
        rejected += n_bad
    rel = f"stg_{name}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {rel} AS " + " UNION ALL BY NAME ".join(parts))
    rejects = None
    if reject_parts:
        rejects = f"rejiss_{name}"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {rejects} AS " + " UNION ALL ".join(reject_parts))
    types = _describe(con, f"SELECT * FROM {rel}", name)
    source_columns = tuple(_norm(c) for c, _ in types if c not in _INTERNAL)
    return StagedTable(spec, rel, files, source_columns, staged_columns(spec, con, rel, types), accepted, rejects, rejected,
                   reject_headers)


class _Utf8Copies:
    """The UTF-8 files DuckDB reads for the CSV files of a table: the file itself when it is UTF-8, else a
    UTF-8 copy (GB18030/GBK, or NUL bytes to mark) in a hidden folder beside the warehouse, on its disk
    rather than in /tmp, removed as soon as DuckDB has read it."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        (spill,) = con.execute("SELECT current_setting('temp_directory')").fetchone()
        self.folder = Path(spill or ".").resolve().parent
        self.made: set[str] = set()

    def readable(self, path: Path) -> tuple[TextEncoding, str]:
        """How ``path`` is encoded and the path of a UTF-8 version of it; :class:`TableError` when it is
        neither UTF-8 nor GB18030/GBK."""
        try:
            text = detect_encoding(path)
        except EncodingError as exc:
            raise TableError(str(exc)) from exc
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise TableError(f"压缩文件不完整或已损坏 (truncated or damaged gzip file) {path.resolve()}: {exc}；"
                              f"疑似复制或导出中断，请重新导出") from exc
        except OSError as exc:
            raise TableError(f"无法读取文件 (cannot read file) {path.resolve()}: {exc}") from exc
        if not text.needs_copy:
            return text, str(path.resolve())
        try:
            fd, copy = tempfile.mkstemp(prefix=".yibao-utf8-", suffix=".csv", dir=self.folder)
        except OSError:
            fd, copy = tempfile.mkstemp(prefix="yibao-utf8-", suffix=".csv")
        os.close(fd)
        self.made.add(copy)
        try:
            utf8_copy(path, text, Path(copy))
        except BaseException:
            self.remove(copy)
            raise
        return text, copy

    def remove(self, readable: str) -> None:
        """Remove ``readable`` if it is a copy made here."""
        if readable in self.made:
            self.made.discard(readable)
            Path(readable).unlink(missing_ok=True)


def _rejects_sql(spec: TableSpec, rej: str, header: list[str], offset: int, file_no: int, *,
                 text: TextEncoding | None = None) -> str:
    """Issue rows (plus row_key and raw) for the CSV lines DuckDB could not read; ``text`` is how the
    file was decoded (its NUL lines and undecodable bytes reach DuckDB as invalid UTF-8)."""
    lower = [_norm(c) for c in header]
    pos = {c: i + 1 for i, c in enumerate(lower)}

    def part(i: int) -> str:
        return f"trim(parts[{i}], '\"')"

    key = " || '|' || ".join(f"coalesce({part(pos[k])}, '')" if k in pos else "''" for k in spec.key)
    # Mask personal columns by position, then anything shaped like a resident ID anywhere in the line.
    pieces, start = [], 1
    for i, c in enumerate(lower, start=1):
        if c in CERTNO_LIKE or c in OTHER_PERSONAL or c in COARSENED:
            pieces += [f"parts[{start}:{i - 1}]", f"[{mask_raw_sql(c, f'parts[{i}]')}]"]
            start = i + 1
    masked_parts = f"list_concat({', '.join(pieces + [f'parts[{start}:]'])})" if pieces else "parts"
    id_like = r"(^|[^0-9A-Za-z])([0-9]{6})[0-9]{11}([0-9Xx])([^0-9A-Za-z]|$)"
    line = (f"CASE WHEN len(parts) = {len(lower)} THEN array_to_string({masked_parts}, ',') "
            f"ELSE regexp_replace(csv_line, {sql_str(id_like)}, '\\1\\2***********\\3\\4', 'g') END")
    value_cases = " ".join(
        f"WHEN {i} THEN {mask_column_sql(c, part(i))}" for c, i in pos.items()
    )
    errors_zh = " ".join(f"WHEN {sql_str(k)} THEN {sql_str(v)}" for k, v in _CSV_ERRORS_ZH.items())
    undecodable = "含无法按 GB18030/GBK 解码的字节" if text is not None and text.encoding == "gb18030" else "含非法 UTF-8 字节"
    nul_lines = ", ".join(str(n) for n in text.nul_lines) if text is not None and text.nul_lines else None
    invalid_zh = f"'{undecodable}，整行无法读取 (' || coalesce(bad_value, '') || '，非法字节显示为 ?)'"
    if nul_lines:
        invalid_zh = (f"CASE WHEN CAST(line AS BIGINT) IN ({nul_lines}) "
                      f"THEN '含 NUL 字节 (0x00)，整行无法读取 (' || coalesce(bad_value, '') || '，NUL 显示为 ?)' "
                      f"ELSE {invalid_zh} END")
    return f"""
        SELECT {offset} + CAST(line AS BIGINT) - 1 AS _row, {file_no} AS _file,
               CASE WHEN et LIKE 'INVALID%' THEN lower(column_name) END AS field,
               CASE WHEN et LIKE 'INVALID%' THEN 'broken_encoding' ELSE 'malformed_line' END AS reason_code,
               'csv:' || lower(replace(et, ' ', '_')) AS check_id,
               bad_value AS value,
               CASE WHEN et LIKE 'INVALID%' THEN {invalid_zh}
                    ELSE '整行无法解析：' || CASE et {errors_zh} ELSE et END END AS detail,
               {key} AS row_key,
               json_object('csv_line', {line}, 'error', error_message) AS raw,
               parts
        FROM (
            SELECT *, CASE WHEN et LIKE 'INVALID%' THEN CASE CAST(column_idx AS BIGINT) {value_cases} END END AS bad_value
            FROM (SELECT *, CAST(error_type AS VARCHAR) AS et, string_split(csv_line, ',') AS parts FROM {rej}))"""


_DELIMITERS = ((";", "分号 ';'"), ("\t", "制表符 (tab)"), ("|", "竖线 '|'"))


def _check_csv_shape(spec: TableSpec, path: Path, readable: str) -> None:
    """Refuse a CSV file whose header is wrong, naming the cause, before DuckDB reads around it: a first
    line that is empty or no header, another delimiter than the comma (DuckDB would read one column named
    ``psn_no;gend;...``), a column name given twice (DuckDB would rename the second ``gend_1`` and load
    the first). ``readable`` is the UTF-8 version of ``path`` that DuckDB reads."""
    with open_bytes(Path(readable)) as fh:
        header = fh.readline(1 << 20).decode("utf-8", "replace").lstrip("\ufeff").rstrip("\r\n")
    shown = _ID_LIKE.sub(r"\1***********\2", header[:120])
    if not header.strip():
        raise TableError(f"文件 {path.resolve()} 的首行为空，没有表头 (no header row)；整表未入库 (table refused)")
    names = [_norm(n).strip('"') for n in header.split(",")]
    known = set(spec.names)
    found = sum(n in known for n in names)
    if found < len(spec.required):
        for delim, label in _DELIMITERS:
            other = [_norm(n).strip('"') for n in header.split(delim)]
            if len(other) > 1 and sum(n in known for n in other) > found:
                raise TableError(
                    f"文件 {path.resolve()} 的分隔符是{label}，不是逗号 (delimiter is {delim!r}, not ','): 表头按逗号只能"
                    f"读出 {len(names)} 列「{shown}」；请另存为逗号分隔的 CSV；整表未入库 (table refused)")
        if not found:
            raise TableError(f"文件 {path.resolve()} 的首行不是表头 (no header row): 其中没有 {spec.name} 的任何字段名"
                              f"（首行「{shown}」）；整表未入库 (table refused)")
    seen: dict[str, int] = {}
    for i, n in enumerate(names, start=1):
        if n and n in seen:
            raise TableError(
                f"文件 {path.resolve()} 的表头列名重复 (duplicate column in header): {n}（第 {seen[n]} 列和第 {i} 列），"
                f"无法确定哪一列可信；整表未入库 (table refused)")
        seen.setdefault(n, i)


def _cut_off(path: Path) -> bool:
    """Whether a plain CSV file does not end with a line break (a gzip stream cut short fails to
    decompress instead: ``detect_encoding``)."""
    if path.name.endswith(".gz"):
        return False
    with open(path, "rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 1))
        return size > 0 and fh.read(1) != b"\n"


def _check_parquet_ends(path: str) -> None:
    """Refuse a file that is not Parquet or was cut off: a Parquet file starts and ends with ``PAR1``
    (its footer, which holds the schema and row groups, is written last)."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        size = fh.seek(0, os.SEEK_END)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head != b"PAR1":
        raise TableError(f"文件 {path} 不是 Parquet 文件 (not a Parquet file): 文件头没有 PAR1 标记；整表未入库 (table refused)")
    if tail != b"PAR1" or size < 12:
        raise TableError(f"Parquet 文件 {path} 不完整 (truncated Parquet file): 文件尾没有 PAR1 标记（共 {size} 字节），"
                          f"疑似复制或导出中断，请重新导出；整表未入库 (table refused)")


def _describe(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> list[tuple[str, str]]:
    try:
        return [(r[0], r[1]) for r in con.execute(f"DESCRIBE {sql}").fetchall()]
    except duckdb.Error as exc:
        raise TableError(f"无法读取文件 (cannot read file) {what}: {first_line(exc)}") from exc


def _require(spec: TableSpec, path: str, cols: list[tuple[str, str]]) -> None:
    have = {_norm(c) for c, _ in cols}
    missing = [f for f in spec.required if f not in have]
    if missing:
        raise TableError(
            f"文件 {path} 缺少必填列 (required column(s) missing): {', '.join(missing)}；整表未入库 (table skipped)"
        )


def _renames(spec: TableSpec, cols: list[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    """SELECT list renaming source columns to lower case; error when two names collide."""
    return _renames_of(tuple(cols), spec)


def _renames_of(cols, spec: TableSpec | None = None) -> tuple[str, tuple[str, ...]]:
    seen: dict[str, str] = {}
    items = []
    for c, _ in cols:
        n = _norm(c)
        if n in _INTERNAL or c in ("file_index", "file_row_number"):
            continue
        if n in seen:
            raise TableError(f"表 {spec.name if spec else ''} 的列名重复 (duplicate column): {seen[n]!r} 和 {c!r}")
        seen[n] = c
        items.append(f"{quote_ident(c)} AS {quote_ident(n)}")
    return ", ".join(items), tuple(seen)


def staged_columns(
    spec: TableSpec, con: duckdb.DuckDBPyConnection, rel: str, described: list[tuple[str, str]] | None = None,
    *, never_null: set[str] = frozenset(),
) -> dict[str, Column]:
    """The contract fields in ``rel`` with their types, untrimmed (``IngestRun.scan`` finds padded columns);
    those named in ``never_null`` are known to hold no NULL."""
    # DuckDB keeps the source spelling of a column renamed to a case variant: match names lower-cased.
    types = {_norm(n): t for n, t in (described or _describe(con, f"SELECT * FROM {rel}", rel))}
    present = [f for f in spec.fields if f.name in types]
    lost = [f for f in spec.required if f not in types]
    if lost:
        raise TableError(f"表 {spec.name} 缺少必填列 (required column(s) missing): {', '.join(lost)}")
    return {f.name: Column(f, str(types[f.name]), trim=False, nullable=f.name not in never_null) for f in present}


def _norm(name: str) -> str:
    return name.replace("\ufeff", "").strip().lower()


def _names(files: tuple[Path, ...]) -> tuple[str, ...]:
    return tuple(str(p.resolve()) for p in files)


def _refused(name: str, files: tuple[Path, ...], error: str, rows: int | None = 0) -> TableReport:
    """The report of a table none of whose rows was read in: its rows (when they can be counted) are
    ``refused``, so that ``rows_in`` still adds up."""
    notes = () if rows is not None else ("行数无法统计 (rows could not be counted)",)
    n = rows or 0
    return TableReport(name, "error", files=_names(files), error=error, rows_in=n, refused=n, notes=notes)


def count_source_rows(con: duckdb.DuckDBPyConnection, src: TableSource) -> int | None:
    """Data rows of a refused table's files, as far as they can be counted: a CSV file's non-blank lines
    but one (the header; a last line without a line break counts), a Parquet file's row count from its
    footer; None when a file cannot be read at all."""
    total = 0
    for path in src.files:
        try:
            if src.fmt == "parquet":
                (n,) = con.execute("SELECT num_rows FROM parquet_file_metadata(?)", [str(path.resolve())]).fetchone()
                total += int(n)
                continue
            lines, rest = 0, b""
            with open_bytes(path) as fh:
                while block := fh.read(8 << 20):
                    *whole, rest = (rest + block).split(b"\n")
                    lines += sum(1 for line in whole if line.strip())
            total += max(0, lines + bool(rest.strip()) - 1)
        except (duckdb.Error, OSError, EOFError, zlib.error):
            return None
    return total


def _same_key(con: duckdb.DuckDBPyConnection, check: str, settings: Settings) -> None:
    """IngestError when earlier runs on this warehouse pseudonymised with another key: the same person
    would get a second pseudonym and every resident ID would read as a correction."""
    other = con.execute("SELECT batch_no FROM ingest_log WHERE key_check IS NOT NULL AND key_check <> ? "
                        "ORDER BY batch_no LIMIT 1", [check]).fetchall()
    if other:
        raise IngestError(
            f"仓库 {settings.warehouse} 的第 {other[0][0]} 批用另一把假名化密钥入库，本次密钥与之不同；"
            f"同一仓库必须始终使用同一把密钥（YIBAO_PSEUDONYM_KEY 或密钥文件），否则同一参保人会得到两个假名 "
            f"(the warehouse was pseudonymised with another key; use the same key)")


_ID_LIKE = re.compile(r"(?<![0-9A-Za-z])([0-9]{6})[0-9]{11}([0-9Xx])(?![0-9A-Za-z])")


def first_line(exc: BaseException) -> str:
    """First line of an error, with anything shaped like a resident ID masked (errors reach reports)."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return _ID_LIKE.sub(r"\1***********\2", line)


def _as_of(settings: Settings) -> datetime:
    """The cut-off for future dates: ``settings.as_of`` (a date means the end of that day) or now."""
    if settings.as_of is None:
        return datetime.now().replace(microsecond=0)
    text = str(settings.as_of).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise IngestError(
            f"as_of 不是日期或时间 (not a date/time): {text!r}; 例如 2024-12-31 或 2024-12-31 23:59:59"
        ) from exc
    if len(text) == 10:
        moment = moment.replace(hour=23, minute=59, second=59)
    return moment.replace(microsecond=0, tzinfo=None)

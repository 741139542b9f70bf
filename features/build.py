"""Feature build (特征构建): run the feature SQL of ``features/sql`` on the warehouse, one table per level.

The SQL is written once, in DuckDB's dialect, as plain SELECTs an analyst can open and read:
``_stage.sql`` (staging tables every level reads: settlements that count, fee lines with categories,
per-settlement line totals, stays, item-months, 进销存 gaps, month-over-month change), one file per
level (``feat_setl.sql``, ``feat_psn.sql``, ``feat_prac.sql``, ``feat_fixmedins.sql``,
``feat_pharmacy.sql``) and ``rule_hits.sql`` (rule hits per entity and typology). The runner
materialises the staging blocks in order, then each level, then joins the rule-hit columns and, when
the warehouse has a ``graph_node_features`` table, its numeric columns prefixed ``g_``, and casts every
column to the type of the catalogue (``features.catalogue``).

Engines: ``duckdb`` (default; the warehouse file itself) and ``spark`` (``features.spark``: the same
text transpiled to Spark SQL with sqlglot, run on Parquet exports of the warehouse tables, results
written back into the warehouse). Both give the same tables (tested).

Features are computed as of a moment (``as_of``, default: the latest settlement time); nothing after it
is read and the 30/90/365-day windows end there. Refunds and the settlements they cancel are left out.

>>> [name for name, _ in stage_blocks()][:3]
['stg_refunded', 'stg_inst', 'stg_region']
>>> as_of_literal("2025-12-31")
"TIMESTAMP '2025-12-31 23:59:59'"
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import duckdb

from features import warehouse as wh
from features.catalogue import SNAPSHOTS, TABLES, FeatureTable
from features.contract import FRAUD_TYPES

__all__ = [
    "SQL_DIR",
    "ENGINES",
    "FEATURE_TABLES",
    "RULE_HIT_COLUMNS",
    "FeatureBuildError",
    "FeatureReport",
    "TableResult",
    "build_features",
    "stage_blocks",
    "render",
    "as_of_literal",
    "feature_select",
    "rule_hits_select",
    "snapshot_select",
    "care_codes",
    "graph_select",
    "final_select",
]

SQL_DIR = Path(__file__).parent / "sql"
ENGINES = ("duckdb", "spark")
FEATURE_TABLES = tuple(TABLES)
# The rule_hits columns the features read; an empty table with these stands in when rules have not run.
RULE_HIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rule_id", "VARCHAR"), ("typology_id", "VARCHAR"), ("entity_type", "VARCHAR"), ("entity_id", "VARCHAR"),
    ("setl_id", "VARCHAR"), ("mdtrt_id", "VARCHAR"), ("psn_no", "VARCHAR"), ("fixmedins_code", "VARCHAR"),
    ("prac_code", "VARCHAR"), ("amount_at_risk", "DECIMAL(18,2)"), ("hit_time", "TIMESTAMP"),
)
GRAPH_TABLE = "graph_node_features"

Progress = Callable[[str, int, int], None]


class FeatureBuildError(RuntimeError):
    """The build cannot run: no warehouse, no settlements, or SQL that does not match the catalogue."""


@dataclass(frozen=True)
class TableResult:
    table: str
    rows: int
    columns: int
    seconds: float


@dataclass(frozen=True)
class FeatureReport:
    """What one build wrote (特征构建报告)."""

    warehouse: str
    engine: str
    as_of: str
    tables: tuple[TableResult, ...]
    stage_seconds: float
    seconds: float
    rule_hits: bool  # the warehouse had a rule_hits table
    graph: bool  # the warehouse had a graph_node_features table
    snapshots: tuple[TableResult, ...] = ()  # catalogue.SNAPSHOTS written after their feature table
    since: str | None = None  # an incremental build: feat_setl's rows from then on were replaced

    def table(self, name: str) -> TableResult:
        for t in self.tables:
            if t.table == name:
                return t
        raise KeyError(name)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tables"] = {t.pop("table"): t for t in d["tables"]}
        d["snapshots"] = {t.pop("table"): t for t in d["snapshots"]}
        return d


class Engine:
    """What the build needs from an engine: run a SELECT into a staging table, list a table's columns,
    write a feature table into the warehouse. Subclassed by the DuckDB and the Spark engine."""

    name = "?"
    con: duckdb.DuckDBPyConnection  # the warehouse, where the tables are written

    def has_table(self, name: str) -> bool:
        raise NotImplementedError

    def stage(self, name: str, select_sql: str) -> None:
        raise NotImplementedError

    def columns(self, name: str) -> list[tuple[str, str]]:
        """(column, lower-case type) of a staged or warehouse table."""
        raise NotImplementedError

    def empty_rule_hits(self) -> None:
        raise NotImplementedError

    def write(self, table: str, select_sql: str) -> int:
        """Write the feature table into the warehouse; return its row count."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def build_features(
    warehouse: Path,
    *,
    engine: str = "duckdb",
    as_of: str | datetime | None = None,
    tables: Iterable[str] | None = None,
    progress: Progress | None = None,
    spark=None,
    exports=None,
    memory_limit: str | None = None,
    rule_config=None,
    since: datetime | None = None,
    threads: int | None = None,
) -> FeatureReport:
    """Build the feature tables (``feat_setl``, ``feat_psn``, ``feat_prac``, ``feat_fixmedins``,
    ``feat_pharmacy``) in ``warehouse``.

    ``engine`` is ``duckdb`` or ``spark`` (then ``spark`` may pass a running SparkSession, or ``exports``
    the :class:`features.spark.ParquetExports` of a pipeline run; by default a local session is started).
    ``as_of`` is a date (the whole day counts) or a timestamp; default the latest
    settlement. ``progress(step, done, total)`` is called after each staging table and feature table.
    ``memory_limit`` (e.g. ``"4GB"``) caps DuckDB's memory (default 60 % of the machine); above it DuckDB
    spills to disk. ``threads``: DuckDB's threads (default: every core this process may use; the features
    are the same to the last bit on any number). ``rule_config`` (a ``RuleConfig``; default the one in force) gives the code sets the
    staging classes visits and institutions by, as the rules do.

    ``since`` (a moment; an incremental run, ``yibao run --since``): the settlement table (``feat_setl``)
    gets new rows for the settlements from then on only, in place of the ones it had for them and of the
    settlements refunded since; its earlier rows stay as the build that wrote them left them (what a
    settlement looked like when it was screened). The entity tables are built whole, as of ``as_of``. A
    warehouse without ``feat_setl``, or whose ``feat_setl`` has other columns, gets the whole table.
    """
    if engine not in ENGINES:
        raise FeatureBuildError(f"未知引擎 (unknown engine) {engine!r}; 可选: {', '.join(ENGINES)}")
    names = tuple(tables) if tables is not None else FEATURE_TABLES
    unknown = [t for t in names if t not in TABLES]
    if unknown:
        raise FeatureBuildError(f"未知特征表 (unknown feature table) {unknown}; 可选: {', '.join(FEATURE_TABLES)}")
    warehouse = Path(warehouse)
    if not warehouse.is_file():
        raise FeatureBuildError(f"仓库文件不存在 (warehouse not found): {warehouse}")
    t_start = time.perf_counter()
    # Every core: the SQL adds in an order of its own, not the threads' (features/sql/_stage.sql), so the
    # same warehouse gives the same features to the last bit on any number of threads.
    con = wh.connect(warehouse, threads=threads)
    if memory_limit:
        con.execute(f"SET memory_limit = '{_memory_literal(memory_limit)}'")
    try:
        wh.require_birth_year(con)  # an old warehouse (exact birth dates): migrated by the next ingest
        as_of_lit = as_of_literal(as_of) if as_of is not None else _latest_settlement(con)
        if engine == "duckdb":
            eng: Engine = DuckDBEngine(con)
        else:
            from features.spark import SparkEngine

            eng = SparkEngine(con, spark=spark, exports=exports)
        try:
            codes = care_codes(rule_config)
            report = _run(eng, warehouse, names, as_of_lit, progress, t_start, codes, since=since)
        finally:
            eng.close()
        written = []
        for snap in (s for s in SNAPSHOTS.values() if s.source in names):
            # read by the pre-check's online features (features.online) instead of recomputing per request;
            # DuckDB with either engine: the feature table is in the warehouse by now
            t0 = time.perf_counter()
            con.execute(f"CREATE OR REPLACE TABLE {snap.name} AS\n{snapshot_select(snap.sql, as_of_lit, codes)}")
            (rows,), = con.execute(f"SELECT count(*) FROM {snap.name}").fetchall()
            written.append(TableResult(snap.name, int(rows), len(snap.columns), round(time.perf_counter() - t0, 2)))
        if written:
            report = replace(report, snapshots=tuple(written), seconds=round(time.perf_counter() - t_start, 2))
        return report
    finally:
        con.close()


def stage_blocks(path: Path = SQL_DIR / "_stage.sql") -> list[tuple[str, str]]:
    """The named SELECT blocks of a staging file, in order: ``[(name, sql), ...]``."""
    blocks: list[tuple[str, str]] = []
    name, lines = None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"--\s*name:\s*(\w+)\s*$", line)
        if m:
            if name:
                blocks.append((name, "\n".join(lines).strip()))
            name, lines = m.group(1), []
        elif name:
            lines.append(line)
    if name:
        blocks.append((name, "\n".join(lines).strip()))
    return blocks


def render(sql: str, **values: str) -> str:
    """Fill ``{{ name }}`` placeholders; an unfilled one is an error (never silently left in SQL)."""
    def sub(m: re.Match) -> str:
        key = m.group(1)
        if key not in values:
            raise FeatureBuildError(f"SQL placeholder {{{{ {key} }}}} has no value")
        return str(values[key])

    # comment lines may name a placeholder without being filled (they explain it)
    return "\n".join(line if line.lstrip().startswith("--") else re.sub(r"\{\{\s*(\w+)\s*\}\}", sub, line)
                     for line in sql.splitlines())


def as_of_literal(as_of: str | datetime) -> str:
    """A TIMESTAMP literal for ``as_of``: a date means the end of that day."""
    if isinstance(as_of, datetime):
        ts = as_of
    else:
        text = str(as_of).strip()
        try:
            ts = datetime.strptime(text, "%Y-%m-%d").replace(hour=23, minute=59, second=59)
        except ValueError:
            try:
                ts = datetime.fromisoformat(text)
            except ValueError as e:
                raise FeatureBuildError(f"as_of 不是日期或时间 (not a date or time): {as_of!r}") from e
    return f"TIMESTAMP '{ts:%Y-%m-%d %H:%M:%S}'"


def feature_select(table: FeatureTable, as_of: str) -> str:
    """The level's SQL with ``as_of`` filled in (DuckDB dialect)."""
    return render((SQL_DIR / table.sql).read_text(encoding="utf-8"), as_of=as_of)


def snapshot_select(sql_file: str, as_of: str, codes: dict[str, str] | None = None) -> str:
    """A snapshot table's SQL (``catalogue.SNAPSHOTS``) with ``as_of`` filled in (DuckDB dialect)."""
    return render((SQL_DIR / sql_file).read_text(encoding="utf-8"), as_of=as_of, **(codes or care_codes()))


def rule_hits_select(key: str) -> str:
    """Rule hits per entity (``entity_key``) with counts and amounts per typology."""
    per = []
    for tid in FRAUD_TYPES:
        per.append(f"SUM(CASE WHEN typology_id = '{tid}' THEN 1 ELSE 0 END) AS rh_n_{tid}")
        # summed as DECIMAL, exact in any order (the hits' row order differs between rule runs)
        per.append(f"CAST(SUM(CASE WHEN typology_id = '{tid}' THEN amount_at_risk ELSE 0 END) AS DOUBLE) "
                   f"AS rh_amt_{tid}")
    return render((SQL_DIR / "rule_hits.sql").read_text(encoding="utf-8"), key=key,
                  per_typology=",\n       ".join(per))


def graph_select(table: FeatureTable, numeric_columns: list[str]) -> str:
    """One row per node of the table's node types with the graph columns prefixed ``g_`` (max over
    duplicate rows, so a node listed twice does not multiply feature rows)."""
    types = ", ".join(f"'{t}'" for t in table.graph_node_types)
    cols = ", ".join(f"MAX(CAST({c} AS DOUBLE)) AS g_{c}" for c in numeric_columns)
    return (f"SELECT CAST(node_id AS VARCHAR) AS node_id, {cols}\nFROM {GRAPH_TABLE}\n"
            f"WHERE node_type IN ({types})\nGROUP BY CAST(node_id AS VARCHAR)")


def final_select(table: FeatureTable, core: str, rule_hits: str, graph: str | None, graph_columns: list[str],
                 as_of: str) -> str:
    """Cast the level's columns to the catalogue types, fill non-nullable ones with 0, join the rule
    hits and the graph columns (the documented join point for ``graph_node_features``)."""
    types = {"key": "VARCHAR", "timestamp": "TIMESTAMP", "bigint": "BIGINT", "double": "DOUBLE"}
    out = []
    for c in table.columns:
        src = {"sql": f"c.{c.name}", "rule_hits": f"rh.{c.name}", "as_of": as_of}[c.source]
        expr = f"CAST({src} AS {types[c.dtype]})"
        if c.dtype in ("bigint", "double") and not c.nullable:
            expr = f"COALESCE({expr}, 0)"
        out.append(f"{expr} AS {c.name}")
    out += [f"g.g_{c} AS g_{c}" for c in graph_columns]
    sql = f"SELECT {', '.join(out)}\nFROM {core} c\nLEFT JOIN {rule_hits} rh ON rh.entity_key = c.{table.key}"
    if graph:
        sql += f"\nLEFT JOIN {graph} g ON g.node_id = c.{table.key}"
    return sql


# -- the DuckDB engine ----------------------------------------------------------------------------


class DuckDBEngine(Engine):
    """Runs the SQL inside the warehouse: staging as TEMP tables, features as warehouse tables."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        # feature rows have no meaningful order; not keeping it lets DuckDB stream big CREATE TABLE AS
        self.con.execute("SET preserve_insertion_order = false")

    def has_table(self, name: str) -> bool:
        return _has_table(self.con, name)

    def stage(self, name: str, select_sql: str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS\n{select_sql}")

    def columns(self, name: str) -> list[tuple[str, str]]:
        return [(r[0], str(r[1]).lower()) for r in self.con.execute(f"DESCRIBE {name}").fetchall()]

    def empty_rule_hits(self) -> None:
        cols = ", ".join(f"{n} {t}" for n, t in RULE_HIT_COLUMNS)
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE rule_hits ({cols})")

    def write(self, table: str, select_sql: str) -> int:
        self.con.execute(f"CREATE OR REPLACE TABLE {table} AS\n{select_sql}")
        return self.con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def close(self) -> None:
        for name, in self.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE temporary AND "
                "(table_name LIKE 'stg_%' OR table_name LIKE 'fx_%' OR table_name = 'rule_hits')").fetchall():
            self.con.execute(f"DROP TABLE IF EXISTS temp.{name}")


# -- private helpers ------------------------------------------------------------------------------


def _run(eng: Engine, warehouse: Path, names: tuple[str, ...], as_of: str, progress: Progress | None,
         t_start: float, codes: dict[str, str], *, since: datetime | None = None) -> FeatureReport:
    blocks = stage_blocks()
    total = len(blocks) + len(names)
    done = 0
    had_hits = eng.has_table("rule_hits")
    if not had_hits:
        eng.empty_rule_hits()
    had_graph = eng.has_table(GRAPH_TABLE)
    for name, sql in blocks:
        eng.stage(name, render(sql, as_of=as_of, **codes))
        done += 1
        if progress:
            progress(name, done, total)
    stage_seconds = time.perf_counter() - t_start
    results = []
    for tname in names:
        t0 = time.perf_counter()
        table = TABLES[tname]
        core = f"fx_{tname}"
        eng.stage(core, feature_select(table, as_of))
        _check_columns(table, [c for c, _ in eng.columns(core)])
        rh = f"fx_rh_{tname}"
        eng.stage(rh, rule_hits_select(table.rule_hit_key))
        graph, gcols = None, []
        if had_graph and table.graph_node_types:
            gcols = [c for c, typ in eng.columns(GRAPH_TABLE)
                     if c not in ("node_type", "node_id") and _is_numeric(typ)]
            if gcols:
                graph = f"fx_g_{tname}"
                eng.stage(graph, graph_select(table, gcols))
        select = final_select(table, core, rh, graph, gcols, as_of)
        if since is not None and table.key == SETTLEMENT_KEY and _same_columns(eng, table, gcols):
            rows = _replace_since(eng, table, select, since)
        else:
            rows = eng.write(tname, select)
        results.append(TableResult(tname, rows, len(table.columns) + len(gcols), round(time.perf_counter() - t0, 2)))
        done += 1
        if progress:
            progress(tname, done, total)
    return FeatureReport(str(warehouse), eng.name, as_of.split("'")[1], tuple(results), round(stage_seconds, 2),
                         round(time.perf_counter() - t_start, 2), had_hits, had_graph,
                         since=f"{since:%Y-%m-%d %H:%M:%S}" if since is not None else None)


SETTLEMENT_KEY = "setl_id"  # the level an incremental build (since) adds rows to; its rows carry setl_time


def _same_columns(eng: Engine, table: FeatureTable, graph_columns: list[str]) -> bool:
    """The warehouse's copy of ``table`` has the columns this build writes (else it is written whole)."""
    if not _has_table(eng.con, table.name):
        return False
    have = [r[0] for r in eng.con.execute(f"DESCRIBE {table.name}").fetchall()]
    return have == [c.name for c in table.columns] + [f"g_{c}" for c in graph_columns]


def _replace_since(eng: Engine, table: FeatureTable, select: str, since: datetime) -> int:
    """Swap the rows of settlements from ``since`` on (and of settlements refunded since) for new ones."""
    moment = f"TIMESTAMP '{since:%Y-%m-%d %H:%M:%S}'"
    fresh, gone = f"{table.name}__since", f"{table.name}__refunded"
    eng.write(fresh, f"SELECT * FROM ({select}) f WHERE f.setl_time >= {moment}")
    eng.write(gone, "SELECT setl_id FROM stg_refunded")  # the one definition of what does not count
    try:
        eng.con.execute(f"DELETE FROM {table.name} WHERE setl_time >= {moment} "
                        f"OR setl_id IN (SELECT setl_id FROM {gone})")
        eng.con.execute(f"INSERT INTO {table.name} SELECT * FROM {fresh}")
    finally:
        eng.con.execute(f"DROP TABLE IF EXISTS {fresh}")
        eng.con.execute(f"DROP TABLE IF EXISTS {gone}")
    return eng.con.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0]


def care_codes(rule_config=None) -> dict[str, str]:
    """The institution grades and the inpatient and emergency med_types as SQL for the staging: the code
    sets of ``rule_config`` (default: the rule config in force; ``RuleConfig.staging_values``), so that
    rules and features class visits alike."""
    from models.rules.config import active_config

    return (rule_config or active_config()).staging_values()


def _check_columns(table: FeatureTable, got: list[str]) -> None:
    want = [c.name for c in table.sql_columns]
    missing = [c for c in want if c not in got]
    extra = [c for c in got if c not in want]
    if missing or extra:
        raise FeatureBuildError(f"{table.sql} 与特征目录不一致 (SQL and catalogue differ): "
                                f"missing {missing}, not in catalogue {extra}")


def _latest_settlement(con: duckdb.DuckDBPyConnection) -> str:
    if not _has_table(con, "setl_d"):
        raise FeatureBuildError("仓库中没有结算表 setl_d (no settlements): run `yibao ingest` first")
    ts = con.execute("SELECT MAX(setl_time) FROM setl_d").fetchone()[0]
    if ts is None:
        raise FeatureBuildError("结算表为空 (setl_d is empty): nothing to compute features from")
    return as_of_literal(ts)


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = ? AND (database_name = current_database() OR temporary)",
        [name]).fetchall())


def _memory_literal(text: str) -> str:
    if not re.fullmatch(r"\d+(\.\d+)?\s*[KMGT]i?B", text.strip(), re.IGNORECASE):
        raise FeatureBuildError(f"memory_limit 格式应如 4GB (expected like 4GB): {text!r}")
    return text.strip()


def _is_numeric(typ: str) -> bool:
    typ = typ.lower()
    return any(k in typ for k in ("int", "double", "float", "decimal", "real", "numeric", "long", "short", "byte")) \
        and not typ.endswith("[]") and not typ.startswith(("array", "struct", "map"))

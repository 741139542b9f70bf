"""The local warehouse (数据仓库): one DuckDB file holding the contract tables, the quarantine (隔离区) of
rows that failed validation, and the ingest log.

Warehouse tables have the contract fields, typed by ``Field.sql_type``, but for the fields that would help
single a person out (``Field.coarse``): ``brdy`` is kept as ``birth_year`` only and ``setl_d.age`` not at all,
the exact birth date living in the identity vault (``psn_identity.brdy``); plus the companions of
canonical codes (``<field>_raw``: the code as written when it was not canonical; ``hilist_code_suffix``: a
local suffix split off a catalogue code; see ``features.codes``) and ``_ingest_batch`` (the number of the
ingest run that loaded the row: ``ingest_log.batch_no``). Clear resident IDs and names are never stored here; they live in the
separate identity vault (``Settings.identity_vault``).

Beside them: the schema ``held`` (暂存) with one table per child table (``TableSpec.parents``) holding, typed
as they would be loaded, the rows whose parent is not in the warehouse yet (quarantined, refused or
missing: ``validate.HELD_REASONS``); ``row_versions``, the earlier versions of rows that a correction
(``yibao ingest --apply-corrections``) replaced; ``ingest_rederive``, the settlements whose rules and
features must be worked out again because a row they depend on was corrected.

>>> import tempfile
>>> w = Path(tempfile.mkdtemp()) / "w.duckdb"
>>> with connect(w) as con:
...     ensure_schema(con)
>>> list(quarantine_counts(w).columns)
['table', 'reason_code', 'reason', 'rows']
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from features.config import identity_vault_path
from features.contract import TABLES, TableSpec
from features.validate import REASONS, quote_ident

if TYPE_CHECKING:  # pandas is imported where a DataFrame is returned: the ingest does not need it
    import pandas as pd

__all__ = [
    "QUARANTINE_COLUMNS",
    "HELD_TABLES",
    "connect",
    "ensure_schema",
    "table_ddl",
    "held_ddl",
    "identity_vault_path",
    "birth_dates_view",
    "migrate_birth_dates",
    "require_birth_year",
    "OldWarehouseError",
    "note_ingest_change",
    "write_rows",
    "copy_warehouse",
    "list_quarantine",
    "quarantine_counts",
    "latest_batch",
    "settlements_loaded_after",
]

# Column, DuckDB type. ``raw`` is the source row as JSON with personal fields masked.
QUARANTINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("quarantine_id", "VARCHAR"),  # md5 of row_id, field, reason_code, check_id: makes re-ingest a no-op
    ("row_id", "VARCHAR"),  # md5 of table, row_key, hash of the raw row and its occurrence
    ("table_name", "VARCHAR"),
    ("row_key", "VARCHAR"),
    ("row_number", "BIGINT"),
    ("field", "VARCHAR"),
    ("reason_code", "VARCHAR"),
    ("check_id", "VARCHAR"),
    ("reason", "VARCHAR"),
    ("value", "VARCHAR"),
    ("source_file", "VARCHAR"),
    ("batch_id", "VARCHAR"),
    ("ingested_at", "TIMESTAMP"),
    ("raw", "VARCHAR"),
    # The run (batch_no) after which the entry no longer stands: its key was loaded after all (a held row
    # released, the row sent again fixed, a correction applied). NULL: still outstanding.
    ("released_batch", "BIGINT"),
)

# Tables whose rows point at a parent: their rows can be held (``held.<table>``) until the parent loads.
HELD_TABLES: tuple[str, ...] = tuple(name for name, spec in TABLES.items() if spec.parents)

_LISTED = ("table_name", "row_key", "row_number", "field", "reason_code", "reason", "value", "source_file",
           "ingested_at", "batch_id", "raw")


def connect(path: Path, *, read_only: bool = False, threads: int | None = None) -> duckdb.DuckDBPyConnection:
    """Open the warehouse with as many threads as this process may use (or ``threads``) and 60 % of its
    memory."""
    path = Path(path)
    if read_only and not path.is_file():
        raise FileNotFoundError(f"仓库文件不存在 (warehouse not found): {path}")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config = {"threads": str(threads or cores()), "memory_limit": _memory_limit()}
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    con.execute("SET enable_progress_bar = false")  # DuckDB's own bar would draw over the CLI's
    return con


# Columns stored without compression (DuckDB ``USING COMPRESSION uncompressed``). Compressing a string
# column whose values are (nearly) all different, such as a row's own id, is the costliest part of
# writing it: on ``city`` the fee lines' ``bkkp_sn`` takes 1.0 s to write compressed and 0.45 s plain
# (3.3x the space), a settlement or visit id 0.3 s against 0.15 s (2.2-3.7x the space). Timestamps take
# a third more space plain and a third less time. Repeated ids (a fee line's ``setl_id``) and codes
# compress 5-40x at no extra cost and keep DuckDB's choice. Figures: docs/benchmarks.md ("ingest").
UNCOMPRESSED_COLUMNS: dict[str, frozenset[str]] = {
    "fee_list_d": frozenset({"bkkp_sn"}),
    "setl_d": frozenset({"setl_id", "mdtrt_id"}),
    "mdtrt_d": frozenset({"mdtrt_id"}),
    "setl_list_diag_d": frozenset({"setl_id", "mdtrt_id"}),
    "psn_info": frozenset({"psn_no", "certno"}),  # certno holds the keyed pseudonym: 33 random characters
}


def table_ddl(spec: TableSpec) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for one contract table."""
    plain = UNCOMPRESSED_COLUMNS.get(spec.name, frozenset())
    cols = [
        f"{quote_ident(f.column)} {f.column_type}"
        + (" USING COMPRESSION uncompressed" if f.name in plain or f.column_type == "TIMESTAMP" else "")
        for f in spec.stored_fields
    ]
    cols += [f"{quote_ident(c)} VARCHAR" for c in spec.companion_columns]
    # A number, not the run's text id: a constant number costs nothing to store, a constant text as much
    # as a code column (0.2 s per 10M rows).
    cols.append("_ingest_batch BIGINT")
    return f"CREATE TABLE IF NOT EXISTS {quote_ident(spec.name)} ({', '.join(cols)})"


def held_ddl(spec: TableSpec) -> str:
    """``CREATE TABLE IF NOT EXISTS held.<table>``: the warehouse columns of ``spec`` (no ``_ingest_batch``:
    a row gets it when it is released), the run that held it (``_held_batch``) and its source row."""
    cols = [f"{quote_ident(f.column)} {f.column_type}" for f in spec.stored_fields]
    cols += [f"{quote_ident(c)} VARCHAR" for c in spec.companion_columns]
    cols += ["_held_batch BIGINT", "_held_row BIGINT"]
    return f"CREATE TABLE IF NOT EXISTS held.{quote_ident(spec.name)} ({', '.join(cols)})"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the contract tables, ``quarantine`` and ``ingest_log`` when they do not exist yet."""
    cols = ", ".join(f"{name} {typ}" for name, typ in QUARANTINE_COLUMNS)
    ddl = [table_ddl(spec) for spec in TABLES.values()]
    ddl.append(f"CREATE TABLE IF NOT EXISTS quarantine ({cols})")
    ddl.append("CREATE TABLE IF NOT EXISTS ingest_log (batch_id VARCHAR, source VARCHAR, started_at TIMESTAMP, "
               "finished_at TIMESTAMP, report VARCHAR, batch_no BIGINT)")
    ddl.append("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS batch_no BIGINT")  # warehouses made before it
    # A check value of the pseudonym key (features.pseudonym.key_check): one warehouse, one key.
    ddl.append("ALTER TABLE ingest_log ADD COLUMN IF NOT EXISTS key_check VARCHAR")
    ddl.append("ALTER TABLE quarantine ADD COLUMN IF NOT EXISTS released_batch BIGINT")
    ddl.append("CREATE SCHEMA IF NOT EXISTS held")
    ddl += [held_ddl(TABLES[name]) for name in HELD_TABLES]
    ddl.append("CREATE TABLE IF NOT EXISTS row_versions (table_name VARCHAR, row_key VARCHAR, version INTEGER, "
               "loaded_batch BIGINT, replaced_batch BIGINT, changed_fields VARCHAR, old_row VARCHAR, "
               "replaced_at TIMESTAMP)")
    ddl.append("CREATE TABLE IF NOT EXISTS ingest_rederive (batch_no BIGINT, table_name VARCHAR, row_key VARCHAR, "
               "setl_id VARCHAR)")
    ddl += [f"ALTER TABLE {quote_ident(spec.name)} ADD COLUMN IF NOT EXISTS {quote_ident(c)} VARCHAR"
            for spec in TABLES.values() for c in spec.companion_columns]  # warehouses made before canonical codes
    con.execute(";\n".join(ddl))


# The identity vault's person table (身份库): clear resident ID and name, and the exact birth date.
VAULT_TABLE = "psn_identity"
VAULT_DDL = ("CREATE TABLE IF NOT EXISTS {vault}.psn_identity (psn_no {plain}, certno_pseudonym {plain}, "
             "certno {plain}, psn_name VARCHAR, _ingest_batch VARCHAR, brdy DATE)")
# The relation the rule SQL reads exact birth dates from (``models/rules/sql/_base.sql``, view ``person``).
BIRTH_DATES = "psn_birth"
VAULT_ALIAS = "identity_vault"


class OldWarehouseError(RuntimeError):
    """A warehouse made before the birth date moved to the identity vault (it still has ``psn_info.brdy``)."""


def require_birth_year(con: duckdb.DuckDBPyConnection, *, database: str | None = None) -> None:
    """:class:`OldWarehouseError` when the warehouse on ``con`` (its attached ``database``, by default the
    current one) keeps exact birth dates, made before they moved to the identity vault: the next
    ``yibao ingest`` migrates it."""
    if con.execute("SELECT 1 FROM duckdb_columns() WHERE database_name = coalesce(?, current_database()) AND "
                   "schema_name = 'main' AND table_name = 'psn_info' AND column_name = 'brdy'", [database]).fetchall():
        raise OldWarehouseError(
            "仓库为旧格式：psn_info 仍保存精确出生日期 (brdy)。请先运行一次 yibao ingest（可用原批次数据）完成迁移："
            "出生日期移入身份库，仓库只保留出生年份 (birth_year) "
            "(old warehouse: exact birth dates in psn_info; run `yibao ingest` once to migrate)")


def birth_dates_view(con: duckdb.DuckDBPyConnection, *, vault: Path | None = None, database: str | None = None,
                     name: str = BIRTH_DATES) -> None:
    """The temp view ``psn_birth (psn_no, brdy)`` (or ``name``): the exact birth dates of the identity
    vault, attached read-only; by default the vault beside the file of the warehouse ``database`` (the
    connection's current database unless named). The 两库 age rules read it.

    Without a vault (a warehouse that never had a person) the view is empty; a warehouse with persons and
    no vault, or a vault without birth dates, is an error naming the file: the age rules would be silent.
    """
    require_birth_year(con, database=database)
    (db, path) = con.execute("SELECT database_name, path FROM duckdb_databases() "
                             "WHERE database_name = coalesce(?, current_database())", [database]).fetchone()
    if vault is None and path:
        vault = identity_vault_path(Path(path))
    attached = {r[0] for r in con.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
    has_dates = VAULT_ALIAS in attached
    if not has_dates and vault is not None and Path(vault).is_file():
        con.execute(f"ATTACH {_sql_str(str(vault))} AS {VAULT_ALIAS} (READ_ONLY)")
        has_dates = bool(con.execute(
            "SELECT 1 FROM duckdb_columns() WHERE database_name = ? AND table_name = ? AND column_name = 'brdy'",
            [VAULT_ALIAS, VAULT_TABLE]).fetchall())
        if not has_dates:
            con.execute(f"DETACH {VAULT_ALIAS}")
    if has_dates:
        con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS SELECT psn_no, brdy FROM "
                    f"{VAULT_ALIAS}.{VAULT_TABLE} WHERE brdy IS NOT NULL")
        return
    persons = con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' "
                          "AND table_name = 'psn_info'", [db]).fetchall()
    if persons and con.execute(f"SELECT 1 FROM {quote_ident(db)}.main.psn_info LIMIT 1").fetchall():
        raise FileNotFoundError(
            f"身份库中没有出生日期 (no birth dates in the identity vault) {vault}：限年龄规则需要它。"
            "复制仓库时须连同身份库一起复制 (copy the vault with the warehouse)，"
            "或用 yibao ingest 重新入库参保人表 (psn_info)")
    con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS "
                "SELECT CAST(NULL AS VARCHAR) AS psn_no, CAST(NULL AS DATE) AS brdy WHERE false")


def migrate_birth_dates(con: duckdb.DuckDBPyConnection, vault: Path) -> int:
    """Move the exact birth dates of a warehouse made before they went to the identity vault: every
    ``psn_info.brdy`` to ``vault`` (``psn_identity.brdy``, by psn_no), then each coarsened column
    (``Field.coarse``) of the contract and held tables replaced by its coarse form (``birth_year``;
    ``setl_d.age`` dropped). Returns the persons whose birth date moved; 0 for a current warehouse.

    The dropped columns' blocks are freed, not wiped: copy the file (``COPY FROM DATABASE``) to be sure the
    old values are gone from the disk too.
    """
    moved = 0
    if _has_column(con, "psn_info", "brdy"):
        vault = Path(vault)
        con.execute(f"ATTACH {_sql_str(str(vault))} AS migrate_vault")
        try:
            plain = "VARCHAR USING COMPRESSION uncompressed"
            con.execute(VAULT_DDL.format(vault="migrate_vault", plain=plain))
            con.execute("ALTER TABLE migrate_vault.psn_identity ADD COLUMN IF NOT EXISTS brdy DATE")
            con.execute("""
                UPDATE migrate_vault.psn_identity v SET brdy = p.brdy FROM main.psn_info p
                WHERE v.psn_no = p.psn_no AND v.brdy IS NULL""")
            con.execute("""
                INSERT INTO migrate_vault.psn_identity (psn_no, brdy, _ingest_batch)
                SELECT psn_no, brdy, 'migrated' FROM main.psn_info p
                WHERE brdy IS NOT NULL AND psn_no NOT IN (SELECT psn_no FROM migrate_vault.psn_identity)""")
            (moved,) = con.execute("SELECT count(*) FROM main.psn_info WHERE brdy IS NOT NULL").fetchone()
        finally:
            con.execute("DETACH migrate_vault")
        try:
            os.chmod(vault, 0o600)
        except OSError:
            pass
    for spec in TABLES.values():
        for schema in ("main", "held"):
            table = f"{schema}.{quote_ident(spec.name)}"
            for f in spec.fields:
                if f.coarse is None or not _has_column(con, spec.name, f.name, schema=schema):
                    continue
                if f.coarse.column is not None:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {quote_ident(f.coarse.column)} "
                                f"{f.coarse.sql_type}")
                    con.execute(f"UPDATE {table} SET {quote_ident(f.coarse.column)} = "
                                f"{f.coarse.expr(quote_ident(f.name))}")
                con.execute(f"ALTER TABLE {table} DROP COLUMN {quote_ident(f.name)}")
    return int(moved)


def copy_warehouse(source: Path, target: Path) -> Path:
    """Copy a warehouse file and, when there is one, its identity vault beside it (the age rules read the
    vault's birth dates: a warehouse copied alone has none). Returns ``target``."""
    source, target = Path(source), Path(target)
    shutil.copyfile(source, target)
    vault = identity_vault_path(source)
    if vault.is_file():
        shutil.copyfile(vault, identity_vault_path(target))
        os.chmod(identity_vault_path(target), 0o600)
    return target


def write_rows(con: duckdb.DuckDBPyConnection, table: str, relation: str, *, vault: Path | None = None) -> None:
    """Append the rows of ``relation`` (a registered frame or a table, in contract field names) to the
    warehouse ``table`` as the ingest stores them, without its checks: for hand-built warehouses (tests,
    fixtures). A coarsened field goes in coarse (``birth_year``), one the warehouse does not keep is left
    out, and ``psn_info.brdy`` goes to the identity ``vault`` (default: the one beside the warehouse)."""
    spec = TABLES[table]
    have = {r[0] for r in con.execute(f"SELECT * FROM {relation} LIMIT 0").description}
    cols, values = [], []
    for f in spec.fields:
        if f.name not in have or f.column is None:
            continue
        cols.append(quote_ident(f.column))
        typed = f"CAST({quote_ident(f.name)} AS {f.sql_type})"
        values.append(typed if f.coarse is None else f.coarse.expr(typed))
    for c in spec.companion_columns:
        if c in have:
            cols.append(quote_ident(c))
            values.append(quote_ident(c))
    con.execute(f"INSERT INTO main.{quote_ident(table)} ({', '.join(cols)}) SELECT {', '.join(values)} FROM {relation}")
    vaulted = [f.name for f in spec.fields if f.vault and f.name in have]
    if not vaulted:
        return
    if vault is None:
        (path,) = con.execute("SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
        vault = identity_vault_path(Path(path))
    con.execute(f"ATTACH {_sql_str(str(vault))} AS write_vault")
    try:
        con.execute(VAULT_DDL.format(vault="write_vault", plain="VARCHAR"))
        sets = ", ".join(f"{quote_ident(n)} = CAST(r.{quote_ident(n)} AS DATE)" for n in vaulted)
        con.execute(f"UPDATE write_vault.psn_identity v SET {sets} FROM {relation} r WHERE v.psn_no = r.psn_no")
        names = ", ".join(quote_ident(n) for n in vaulted)
        con.execute(f"INSERT INTO write_vault.psn_identity (psn_no, {names}) SELECT psn_no, "
                    + ", ".join(f"CAST({quote_ident(n)} AS DATE)" for n in vaulted)
                    + f" FROM {relation} WHERE psn_no NOT IN (SELECT psn_no FROM write_vault.psn_identity)")
    finally:
        con.execute("DETACH write_vault")


def list_quarantine(
    warehouse: Path,
    *,
    table: str | None = None,
    reason: str | None = None,
    limit: int | None = 100,
    include_released: bool = False,
) -> pd.DataFrame:
    """Quarantined rows (隔离数据), optionally of one table and one reason code, in source order; only the
    outstanding ones unless ``include_released`` (a released entry's key was loaded after all)."""
    if table is not None and table not in TABLES:
        raise ValueError(f"未知的表 (unknown table) {table!r}; 可选: {', '.join(TABLES)}")
    if reason is not None and reason not in REASONS:
        raise ValueError(f"未知的原因代码 (unknown reason code) {reason!r}; 可选: {', '.join(REASONS)}")
    where, params = [] if include_released else ["released_batch IS NULL"], []
    if table is not None:
        where.append("table_name = ?")
        params.append(table)
    if reason is not None:
        where.append("reason_code = ?")
        params.append(reason)
    import pandas as pd

    sql = f"SELECT {', '.join(_LISTED)} FROM quarantine"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY table_name, row_number, field, reason_code"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    with connect(warehouse, read_only=True) as con:
        if not _has_table(con, "quarantine"):
            return pd.DataFrame(columns=list(_LISTED))
        if not include_released and not _has_column(con, "quarantine", "released_batch"):
            sql = sql.replace("released_batch IS NULL", "true")  # a warehouse made before releases
        return con.execute(sql, params).df()


def quarantine_counts(warehouse: Path, *, include_released: bool = False) -> pd.DataFrame:
    """Quarantined rows per table and reason: ``table, reason_code, reason`` (中文), ``rows``; only the
    outstanding entries unless ``include_released``."""
    import pandas as pd

    with connect(warehouse, read_only=True) as con:
        if not _has_table(con, "quarantine"):
            df = pd.DataFrame({"table": [], "reason_code": [], "rows": []})
        else:
            where = ("" if include_released or not _has_column(con, "quarantine", "released_batch")
                     else "WHERE released_batch IS NULL ")
            df = con.execute(
                "SELECT table_name AS \"table\", reason_code, count(DISTINCT row_id) AS rows FROM quarantine "
                f"{where}GROUP BY ALL ORDER BY 1, 2"
            ).df()
    df.insert(2, "reason", df["reason_code"].map(REASONS).fillna(""))
    return df.astype({"rows": "int64"})


def note_ingest_change(con: duckdb.DuckDBPyConnection, when: datetime) -> None:
    """Record that an ingest changed the warehouse's content, so that later pipeline stages run again.

    ``serving.pipeline`` skips a stage when what it read is unchanged; what the rules, graph and feature
    stages read of the ingest is the finish time of its ``ingest`` row in ``pipeline_state``. An ingest
    that loads, releases or corrects rows outside the pipeline (``yibao ingest``) moves that time, which
    changes the inputs of every later stage. The ``ingest`` row's own inputs (the extract's files) are
    left as they are. Nothing is done when the pipeline never ran on this warehouse.
    """
    if not _has_table(con, "pipeline_state"):
        return
    if con.execute("SELECT 1 FROM pipeline_state WHERE stage = 'ingest'").fetchall():
        con.execute("UPDATE pipeline_state SET finished_at = ? WHERE stage = 'ingest'", [when])
    else:
        con.execute("INSERT INTO pipeline_state (stage, inputs, finished_at) VALUES ('ingest', '', ?)", [when])


def latest_batch(con: duckdb.DuckDBPyConnection) -> int:
    """The number of the last ingest run (``ingest_log.batch_no``; loaded rows carry it in ``_ingest_batch``);
    0 before the first."""
    if not _has_table(con, "ingest_log"):
        return 0
    return int(con.execute("SELECT coalesce(max(batch_no), 0) FROM ingest_log").fetchone()[0])


def settlements_loaded_after(con: duckdb.DuckDBPyConnection, batch_no: int) -> datetime | None:
    """The earliest settlement time among the settlements the ingest runs after ``batch_no`` touched: loaded,
    loaded a visit, fee line or diagnosis of, or marked for re-derivation (``ingest_rederive``: a row they
    depend on was corrected). None when those runs touched no settlement. An incremental pipeline run
    (``yibao run --since``) judges from there, so that a late settlement is not left unscreened."""
    if not _has_table(con, "setl_d"):
        return None
    n = int(batch_no)
    touched = [f"SELECT setl_id FROM {t} WHERE _ingest_batch > {n}" for t in ("fee_list_d", "setl_list_diag_d")
               if _has_table(con, t)]
    if _has_table(con, "ingest_rederive"):
        touched.append(f"SELECT setl_id FROM ingest_rederive WHERE batch_no > {n}")
    visits = (f" OR s.mdtrt_id IN (SELECT mdtrt_id FROM mdtrt_d WHERE _ingest_batch > {n})"
              if _has_table(con, "mdtrt_d") else "")
    others = "".join(f" OR s.setl_id IN ({q})" for q in touched)
    (earliest,) = con.execute(f"SELECT min(s.setl_time) FROM setl_d s WHERE s._ingest_batch > {n}{visits}{others}"
                              ).fetchone()
    return earliest


# -- private helpers ------------------------------------------------------------------------------


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND table_name = ?", [name]
    ).fetchall()
    return bool(rows)


def _has_column(con: duckdb.DuckDBPyConnection, table: str, column: str, *, schema: str = "main") -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ? AND column_name = ?", [schema, table, column]).fetchall())


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def cores() -> int:
    """The CPUs this process may use (its affinity), at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _memory_limit() -> str:
    """60 % of the physical memory, or of the cgroup limit when a container sets a lower one."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            total = min(total, int(text))
    except OSError:
        pass
    return f"{max(256, int(total * 0.6) // 2**20)}MB"

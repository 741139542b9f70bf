"""The rule engine (规则引擎): runs every rule's SQL, set-based, on the warehouse and writes ``rule_hits``.

A rule is data (its entry in ``rules.yaml``) plus one SQL file in ``models/rules/sql/``. The SQL reads
the views of ``sql/_base.sql`` (settlements, visits, lines and diagnoses that count — refunds and what
they cancel left out — persons, institutions with their level, the catalogue) and the 两库 knowledge
points (``rule_pack``), and returns one row per hit with these columns:

``entity_type, entity_id, setl_id, mdtrt_id, psn_no, fixmedins_code, prac_code`` — what the hit is about,
``evidence`` — the fee lines (``bkkp_sn``) whose amount is at risk, ``amount_at_risk`` — their amount
(违规金额), ``event_time`` — the settlement time that puts the hit in a run window, ``detail`` — a struct
of the values that triggered it (the message template reads its fields).

The engine wraps each rule's SELECT with the rule's id, version, typology id, policy basis, severity, the
rendered Chinese message and the 两库 pack version, so they travel with every hit. ``hit_id`` is an
MD5 of rule id, entity and evidence: a re-run gives the same ids and replaces, never duplicates.

The same wrapped SELECT serves precheck (``models.rules.precheck``), on temp tables holding one visit and
the person's history instead of the warehouse.

>>> from models.rules.config import load_config
>>> sql, params = hit_select(load_config().rule("dead_person"), pack_version="liangku-x", run_id="r1")
>>> "冒用死亡" in sql and "$dead_person__grace_days" in sql and params == {"dead_person__grace_days": 0}
True
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable

import duckdb

from features.warehouse import BIRTH_DATES, birth_dates_view, connect
from models.rules.config import SQL_DIR, Rule, RuleConfig, RuleConfigError, load_config, sql_params
from models.rules.coverage import silent_rules, unmatched_codes
from models.rules.exemptions import apply_exemptions, ensure_exemption_tables
from models.rules.pack import DEFAULT_PACK, pack_version as read_pack_version

__all__ = [
    "HIT_COLUMNS",
    "RULE_OUTPUT",
    "RuleRunStat",
    "RunReport",
    "RuleSqlError",
    "run_rules",
    "since_timestamp",
    "compute_hits",
    "prepare_session",
    "rule_window",
    "hit_select",
    "rule_body",
    "base_statements",
    "check_rules",
    "ensure_rule_tables",
    "ENTITY_HIT_COLUMN",
    "store_pack",
    "load_pack_temp",
]

BASE_SQL = SQL_DIR / "_base.sql"
# Base views a batch run computes once (settlement-sized; the line view stays a view: ten times bigger).
BATCH_MATERIALIZED = ("claim_setl", "claim_line", "claim_mdtrt", "claim_diag")
ALL_TIME = datetime(1900, 1, 1)

# The hit table (rule_hits): one row per hit.
HIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("hit_id", "VARCHAR"),
    ("run_id", "VARCHAR"),
    ("rule_id", "VARCHAR"),
    ("rule_version", "VARCHAR"),
    ("pack_version", "VARCHAR"),
    ("typology_id", "VARCHAR"),
    ("basis_zh", "VARCHAR"),
    ("entity_type", "VARCHAR"),
    ("entity_id", "VARCHAR"),
    ("setl_id", "VARCHAR"),
    ("mdtrt_id", "VARCHAR"),
    ("psn_no", "VARCHAR"),
    ("fixmedins_code", "VARCHAR"),
    ("prac_code", "VARCHAR"),
    ("evidence", "VARCHAR[]"),
    ("amount_at_risk", "DECIMAL(18,2)"),
    ("severity", "VARCHAR"),
    ("message_zh", "VARCHAR"),
    ("event_time", "TIMESTAMP"),
    ("hit_time", "TIMESTAMP"),
    ("detail", "VARCHAR"),  # JSON text of the rule's detail struct
)
# The rule_hits column that holds each kind of clue entity (a pharmacy is a fixmedins_code).
ENTITY_HIT_COLUMN: dict[str, str] = {"psn": "psn_no", "prac": "prac_code", "fixmedins": "fixmedins_code",
                                     "pharmacy": "fixmedins_code"}
RUN_COLUMNS: tuple[tuple[str, str], ...] = (
    ("run_id", "VARCHAR"),
    ("started_at", "TIMESTAMP"),
    ("finished_at", "TIMESTAMP"),
    ("since", "TIMESTAMP"),
    ("config_path", "VARCHAR"),
    ("config_sha256", "VARCHAR"),
    ("config_version", "VARCHAR"),
    ("pack_version", "VARCHAR"),
    ("rules", "VARCHAR"),  # JSON list: rule id, version, hits, amount, seconds
    ("hits", "BIGINT"),
    ("amount_at_risk", "DECIMAL(18,2)"),
    ("status", "VARCHAR"),
)
# What a rule's SQL must return (name -> DuckDB type ids it may have).
RULE_OUTPUT: dict[str, tuple[str, ...]] = {
    "entity_type": ("varchar",),
    "entity_id": ("varchar",),
    "setl_id": ("varchar", "null"),
    "mdtrt_id": ("varchar", "null"),
    "psn_no": ("varchar", "null"),
    "fixmedins_code": ("varchar", "null"),
    "prac_code": ("varchar", "null"),
    "evidence": ("list",),
    "amount_at_risk": ("decimal", "double", "hugeint", "bigint", "integer"),
    "event_time": ("timestamp",),
    "detail": ("struct",),
}
_PARAM = re.compile(r"\$([a-z][a-z0-9_]*)")
_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")

Progress = Callable[[str, int, int], None]


class RuleSqlError(ValueError):
    """A rule's SQL that does not run or does not return the hit columns: names the file and the rule."""


@dataclass(frozen=True)
class RuleRunStat:
    rule_id: str
    rule_version: str
    typology_id: str
    hits: int
    amount_at_risk: Decimal
    seconds: float


@dataclass(frozen=True)
class RunReport:
    """What one ``yibao rules run`` did (规则运行报告)."""

    run_id: str
    warehouse: str
    since: str | None
    config_path: str
    config_version: str
    pack_version: str
    started_at: str
    seconds: float
    rules: tuple[RuleRunStat, ...]
    removed_rules: tuple[str, ...] = ()
    # Code coverage (models.rules.coverage): codes carrying money that match nothing, rules gone silent.
    unmatched_codes: tuple = ()
    silent_rules: tuple = ()
    exempted: int = 0  # hits set aside by exemptions in force (rule_hits_exempted), not in ``rules``' counts
    shadows: tuple = ()  # models.rules.shadow.ShadowRun: changed rules run beside the live ones, no clue raised
    # The views every rule reads (claim lines, visits, settlements; ``sql/_base.sql``), computed once before
    # the first rule: not in any rule's ``seconds`` (on Spark they were the first rule's: 67 of 330 s on city)
    shared_seconds: float = 0.0

    @property
    def hits(self) -> int:
        return sum(r.hits for r in self.rules)

    def rule(self, rule_id: str) -> RuleRunStat:
        """The figures of one rule of the run."""
        for r in self.rules:
            if r.rule_id == rule_id:
                return r
        raise KeyError(rule_id)

    @property
    def amount_at_risk(self) -> Decimal:
        return sum((r.amount_at_risk for r in self.rules), Decimal("0.00"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["rules"] = [asdict(r) | {"amount_at_risk": float(r.amount_at_risk)} for r in self.rules]
        d["hits"] = self.hits
        d["amount_at_risk"] = float(self.amount_at_risk)
        d["unmatched_codes"] = [c.to_dict() for c in self.unmatched_codes]
        d["silent_rules"] = [r.to_dict() for r in self.silent_rules]
        return d


def run_rules(
    warehouse: Path,
    config: RuleConfig | None = None,
    *,
    since: datetime | str | None = None,
    rule_ids: Iterable[str] | None = None,
    progress: Progress | None = None,
    engine: str = "duckdb",
    exports=None,
) -> RunReport:
    """Run the enabled rules over the warehouse and write their hits to ``rule_hits`` (and ``rule_runs``).

    With *since*, only settlements from that date on are judged (history before it is still read where a
    rule needs it) and each rule's hits with ``event_time >= since`` are replaced; without it each rule's
    hits are replaced entirely and the hits of rules no longer enabled are removed.

    ``engine="spark"`` runs the rules' SQL on Spark over ``exports`` (a :class:`features.spark.ParquetExports`;
    ``models.rules.spark``); the hits are wrapped and stored here as with DuckDB. Exemptions, the rule-run
    record and the code-coverage checks run on the warehouse (DuckDB) with either engine.
    """
    if engine not in ("duckdb", "spark"):
        raise ValueError(f"未知引擎 (unknown engine) {engine!r}; 可选: duckdb, spark")
    if engine == "spark" and exports is None:
        raise ValueError("engine='spark' needs the Parquet exports of a Spark session (features.spark.ParquetExports)")
    config = config or load_config()
    since_ts = since_timestamp(since)
    started = datetime.now().replace(microsecond=0)
    t0 = time.perf_counter()
    run_id = f"{started:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    wanted = set(rule_ids) if rule_ids is not None else None
    rules = [r for r in config.enabled_rules if wanted is None or r.id in wanted]
    if wanted is not None and (unknown := wanted - {r.id for r in config.rules}):
        raise KeyError(f"未知规则 (unknown rules): {sorted(unknown)}")
    with connect(Path(warehouse)) as con:
        _require_claims(con, warehouse)
        ensure_rule_tables(con)
        ensure_exemption_tables(con)
        version = store_pack(con)
        t_shared = time.perf_counter()
        # on Spark the views only bind the rules' SQL here (the check); Spark computes them
        prepare_session(con, config, since=since_ts, materialize=BATCH_MATERIALIZED if engine == "duckdb" else ())
        check_rules(con, rules, version)
        on_spark = None
        if engine == "spark":
            from models.rules.spark import SparkRules

            on_spark = SparkRules(con, config, exports, since=since_ts, rules=rules)
        shared = round(time.perf_counter() - t_shared, 2)
        stats = []
        try:
            for i, rule in enumerate(rules):
                if progress:
                    progress(rule.id, i, len(rules))
                stats.append(_run_one(con, rule, version, run_id, started, since_ts,
                                      rows=on_spark.rows if on_spark else None))
        finally:
            if on_spark:
                on_spark.close()
        if progress:
            progress("", len(rules), len(rules))
        removed: tuple[str, ...] = ()
        if since_ts is None and wanted is None:
            keep = [r.id for r in rules]
            removed = tuple(x for (x,) in con.execute(
                "SELECT DISTINCT rule_id FROM rule_hits WHERE NOT list_contains(?, rule_id) ORDER BY 1", [keep]
            ).fetchall())
            con.execute("DELETE FROM rule_hits WHERE NOT list_contains(?, rule_id)", [keep])
            con.execute("DELETE FROM rule_hits_exempted WHERE NOT list_contains(?, rule_id)", [keep])
        exempted = apply_exemptions(con)
        unmatched = unmatched_codes(con)
        silent = silent_rules(con, config, unmatched=unmatched, run_id=run_id) if wanted is None else []
        report = RunReport(
            run_id=run_id, warehouse=str(warehouse), since=since_ts.isoformat(sep=" ") if since_ts else None,
            config_path=str(config.path), config_version=config.config_version, pack_version=version,
            started_at=started.isoformat(sep=" "), seconds=round(time.perf_counter() - t0, 2), rules=tuple(stats),
            removed_rules=removed, unmatched_codes=tuple(unmatched), silent_rules=tuple(silent), exempted=exempted,
            shared_seconds=shared)
        con.execute(f"INSERT INTO rule_runs VALUES ({', '.join('?' * len(RUN_COLUMNS))})", [
            run_id, started, datetime.now().replace(microsecond=0), since_ts, str(config.path), config.sha256,
            config.config_version, version, json.dumps(report.to_dict()["rules"], ensure_ascii=False),
            report.hits, report.amount_at_risk, "ok"])
        from models.rules.shadow import run_shadows  # here: the shadow module runs rules with this one's helpers

        shadows = run_shadows(con, run_id, rule_ids=wanted)
    return replace(report, shadows=tuple(shadows))


def compute_hits(
    con: duckdb.DuckDBPyConnection,
    config: RuleConfig,
    table: str,
    *,
    since: datetime | str | None = None,
    run_id: str = "backtest",
    progress: Progress | None = None,
) -> list[RuleRunStat]:
    """Run *config*'s enabled rules into a TEMP table *table* (same columns as ``rule_hits``).

    Works on a read-only connection to the warehouse: nothing is written to it. Used by the backtest.
    """
    since_ts = since_timestamp(since)
    version = load_pack_temp(con)
    prepare_session(con, config, since=since_ts, materialize=BATCH_MATERIALIZED)
    rules = list(config.enabled_rules)
    check_rules(con, rules, version)
    cols = ", ".join(f"{n} {t}" for n, t in HIT_COLUMNS)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} ({cols})")
    stats = []
    now = datetime.now().replace(microsecond=0)
    for i, rule in enumerate(rules):
        if progress:
            progress(rule.id, i, len(rules))
        t0 = time.perf_counter()
        sql, params = hit_select(rule, pack_version=version, run_id=run_id, hit_time=now)
        con.execute(f"INSERT INTO {table} {sql}", params)
        n, amount = con.execute(f"SELECT count(*), coalesce(sum(amount_at_risk), 0) FROM {table} WHERE rule_id = ?",
                                [rule.id]).fetchone()
        stats.append(RuleRunStat(rule.id, rule.version, rule.typology_id, n, Decimal(amount),
                                 round(time.perf_counter() - t0, 3)))
    if progress:
        progress("", len(rules), len(rules))
    return stats


def prepare_session(con: duckdb.DuckDBPyConnection, config: RuleConfig, *, since: datetime | None = None,
                    history_from: datetime | None = None, materialize: Iterable[str] = ()) -> None:
    """Create the session tables (``rule_codes``, ``rule_window``) and the base views on *con*.

    The contract tables and ``rule_pack`` must be visible under their names (warehouse tables, or the
    temp tables of a precheck), and so must ``psn_birth (psn_no, brdy)``, the exact birth dates: when it
    is not, the identity vault beside the connection's warehouse is attached read-only for it
    (``features.warehouse.birth_dates_view``). Base views named in *materialize* are computed once into temp tables
    (a batch run reads the settlements many times).
    """
    if not con.execute("SELECT 1 FROM duckdb_views() WHERE view_name = ? UNION ALL "
                       "SELECT 1 FROM duckdb_tables() WHERE table_name = ?", [BIRTH_DATES, BIRTH_DATES]).fetchall():
        # The exact birth dates the age rules need: the identity vault beside the warehouse, read-only
        # (a precheck session brings its own psn_birth).
        birth_dates_view(con)
    con.execute("CREATE OR REPLACE TEMP TABLE rule_codes (code_set VARCHAR, code VARCHAR, value VARCHAR)")
    con.executemany("INSERT INTO rule_codes VALUES (?, ?, ?)", config.code_rows())
    con.execute("CREATE OR REPLACE TEMP TABLE rule_window AS SELECT CAST(? AS TIMESTAMP) AS since, "
                "CAST(? AS TIMESTAMP) AS history_from", list(rule_window(config, since, history_from)))
    try:
        names = [n for n, _ in base_statements()]
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary AND "
                                    "list_contains(?, table_name)", [names]).fetchall():
            con.execute(f"DROP TABLE {table}")  # materialized by an earlier session on this connection
        con.execute(BASE_SQL.read_text(encoding="utf-8"))
        for name, select in base_statements():
            if name in materialize:
                con.execute(f"DROP VIEW {name}")
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}")
    except duckdb.Error as e:
        raise RuleSqlError(f"{BASE_SQL}: {e}") from None


def rule_window(config: RuleConfig, since: datetime | None,
                history_from: datetime | None = None) -> tuple[datetime, datetime]:
    """(since, history_from) of a run: settlements from ``since`` on are judged, history back to
    ``history_from`` is read (default: the config's ``history_days`` before ``since``; all time without it)."""
    if history_from is None:
        history_from = ALL_TIME if since is None else since - timedelta(days=config.history_days)
    return since or ALL_TIME, history_from


def base_statements() -> list[tuple[str, str]]:
    """The views of ``sql/_base.sql`` as (name, SELECT) pairs, in dependency order."""
    text = re.sub(r"--[^\n]*", "", BASE_SQL.read_text(encoding="utf-8"))
    return [(name, select.strip()) for name, select in
            re.findall(r"CREATE OR REPLACE TEMP VIEW (\w+) AS\s+(.*?);", text, flags=re.S)]


def hit_select(rule: Rule, *, pack_version: str, run_id: str = "precheck",
               hit_time: datetime | None = None, rows: str | None = None) -> tuple[str, dict[str, Any]]:
    """The rule's SQL wrapped into a SELECT of :data:`HIT_COLUMNS`, and its named parameters.

    Parameters are renamed ``$<rule id>__<name>`` so that several rules can share one statement. With
    *rows*, a SELECT of rows the rule's SQL already returned (:data:`RULE_OUTPUT` columns) is wrapped
    instead of the rule's SQL (precheck: the hits of rows found by an earlier statement).
    """
    body, params = rule_body(rule) if rows is None else (rows, {})
    hit_time_sql = "current_localtimestamp()" if hit_time is None else _lit(hit_time.isoformat(sep=" ")) + "::TIMESTAMP"
    evidence_key = "array_to_string(list_sort(coalesce(h.evidence, [])), ',')"
    select = f"""
SELECT md5(concat_ws('|', {_lit(rule.id)}, h.entity_type, h.entity_id, {evidence_key})) AS hit_id,
       {_lit(run_id)} AS run_id, {_lit(rule.id)} AS rule_id, {_lit(rule.version)} AS rule_version,
       {_lit(pack_version)} AS pack_version, {_lit(rule.typology_id)} AS typology_id,
       {_template_sql(rule.basis_zh)} AS basis_zh,
       CAST(h.entity_type AS VARCHAR) AS entity_type, CAST(h.entity_id AS VARCHAR) AS entity_id,
       CAST(h.setl_id AS VARCHAR) AS setl_id, CAST(h.mdtrt_id AS VARCHAR) AS mdtrt_id,
       CAST(h.psn_no AS VARCHAR) AS psn_no, CAST(h.fixmedins_code AS VARCHAR) AS fixmedins_code,
       CAST(h.prac_code AS VARCHAR) AS prac_code, CAST(coalesce(h.evidence, []) AS VARCHAR[]) AS evidence,
       CAST(h.amount_at_risk AS DECIMAL(18, 2)) AS amount_at_risk, {_lit(rule.severity)} AS severity,
       {_template_sql(rule.message_zh)} AS message_zh, CAST(h.event_time AS TIMESTAMP) AS event_time,
       {hit_time_sql} AS hit_time, CAST(to_json(h.detail) AS VARCHAR) AS detail
FROM (
{body}
) h
QUALIFY row_number() OVER (PARTITION BY hit_id) = 1"""
    return select, params


def rule_body(rule: Rule) -> tuple[str, dict[str, Any]]:
    """The rule's own SELECT (its SQL file, comments and final semicolon dropped) and its parameters,
    renamed ``$<rule id>__<name>`` as in :func:`hit_select`."""
    body = _PARAM.sub(lambda m: f"${rule.id}__{m.group(1)}", _strip_semicolon(rule.sql))
    return body, {f"{rule.id}__{k}": v for k, v in rule.params.items()}


def check_rules(con: duckdb.DuckDBPyConnection, rules: Iterable[Rule], pack_version: str = "check") -> None:
    """Bind every rule's SQL on *con* (after :func:`prepare_session`) and check its output columns and
    message placeholders; raise :class:`RuleSqlError` / :class:`RuleConfigError` naming the file and rule."""
    for rule in rules:
        body = _strip_semicolon(rule.sql)
        params = dict(rule.params)
        used = sql_params(rule.sql)
        if used != set(params):
            raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: the SQL uses {sorted(used)}, "
                               f"the config gives {sorted(params)}")
        try:
            rel = con.sql(body, params=params) if params else con.sql(body)
            columns = dict(zip(rel.columns, rel.types))
        except duckdb.Error as e:
            raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: {_first_line(e)}") from None
        for name, kinds in RULE_OUTPUT.items():
            if name not in columns:
                raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: the SELECT has no column {name!r} "
                                   f"(a rule returns {', '.join(RULE_OUTPUT)})")
            if columns[name].id not in kinds:
                raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: column {name!r} is {columns[name]}, "
                                   f"expected {' or '.join(kinds)}")
        fields = {n for n, _ in columns["detail"].children}
        for template, fld in ((rule.message_zh, "message_zh"), (rule.basis_zh, "basis_zh")):
            for name in _PLACEHOLDER.findall(template):
                if name not in fields:
                    raise RuleConfigError(rule.sql_path.parent.parent / "rules.yaml",
                                          f"{{{name}}} is not a field of the detail of {rule.sql_path.name} "
                                          f"(fields: {', '.join(sorted(fields))})",
                                          rule_id=rule.id, field=fld, line=rule.line)
        try:
            con.sql(hit_select(rule, pack_version=pack_version)[0], params={
                f"{rule.id}__{k}": v for k, v in rule.params.items()} or None)
        except duckdb.Error as e:  # pragma: no cover - the checks above catch what users get wrong
            raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: {_first_line(e)}") from None


def ensure_rule_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``rule_hits`` and ``rule_runs`` in the warehouse when they do not exist yet."""
    hit_cols = ", ".join(f"{n} {t}" for n, t in HIT_COLUMNS)
    run_cols = ", ".join(f"{n} {t}" for n, t in RUN_COLUMNS)
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_hits ({hit_cols})")
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_runs ({run_cols})")


def store_pack(con: duckdb.DuckDBPyConnection, path: Path = DEFAULT_PACK) -> str:
    """Load the 两库 pack into the warehouse table ``rule_pack`` unless it already holds this version."""
    version = read_pack_version(path)
    have = con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                       "AND schema_name = 'main' AND table_name = 'rule_pack'").fetchall()
    if have:
        stored = con.execute("SELECT DISTINCT pack_version FROM rule_pack").fetchall()
        if stored == [(version,)]:
            return version
    con.execute("CREATE OR REPLACE TABLE rule_pack AS SELECT * FROM read_parquet(?)", [str(path)])
    return version


def load_pack_temp(con: duckdb.DuckDBPyConnection, path: Path = DEFAULT_PACK) -> str:
    """Load the 两库 pack into a TEMP table ``rule_pack`` (read-only warehouses, precheck)."""
    con.execute("CREATE OR REPLACE TEMP TABLE rule_pack AS SELECT * FROM read_parquet(?)", [str(path)])
    return read_pack_version(path)


# ---------------------------------------------------------------------------------------------

def _run_one(con, rule: Rule, version: str, run_id: str, started: datetime, since: datetime | None,
             rows: Callable[[Rule], str] | None = None) -> RuleRunStat:
    """Replace the rule's hits; ``rows(rule)`` runs the rule elsewhere and gives a SELECT of its rows."""
    t0 = time.perf_counter()
    sql, params = hit_select(rule, pack_version=version, run_id=run_id, hit_time=started,
                             rows=rows(rule) if rows else None)
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("rule_hits", "rule_hits_exempted"):  # an exempted hit is set aside again if still found
            if since is None:
                con.execute(f"DELETE FROM {table} WHERE rule_id = ?", [rule.id])
            else:
                con.execute(f"DELETE FROM {table} WHERE rule_id = ? AND event_time >= ?", [rule.id, since])
        con.execute(f"CREATE OR REPLACE TEMP TABLE _new_hits AS {sql}", params)
        n, amount = con.execute("SELECT count(*), coalesce(sum(amount_at_risk), 0) FROM _new_hits").fetchone()
        # a hit found again keeps one row: drop older copies outside the window (an earlier full run)
        con.execute("DELETE FROM rule_hits WHERE hit_id IN (SELECT hit_id FROM _new_hits)")
        con.execute("INSERT INTO rule_hits SELECT * FROM _new_hits")
        con.execute("DROP TABLE _new_hits")
        con.execute("COMMIT")
    except duckdb.Error as e:
        con.execute("ROLLBACK")
        raise RuleSqlError(f"{rule.sql_path}: rule {rule.id}: {_first_line(e)}") from None
    return RuleRunStat(rule.id, rule.version, rule.typology_id, int(n), Decimal(amount),
                       round(time.perf_counter() - t0, 3))


def _require_claims(con: duckdb.DuckDBPyConnection, warehouse: Path) -> None:
    names = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = "
                                       "current_database()").fetchall()}
    missing = [t for t in ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info", "fixmedins", "hilist")
               if t not in names]
    if missing:
        raise FileNotFoundError(f"{warehouse}: no table {', '.join(missing)}; run `yibao ingest` first")


def since_timestamp(value: datetime | str | None) -> datetime | None:
    """``--since`` as a moment: a date (its midnight) or a timestamp; a clear error otherwise."""
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"--since must be a date like 2025-06-01, not {value!r}") from None


def _template_sql(template: str) -> str:
    """SQL that renders a ``{name}`` template from the fields of ``h.detail``."""
    parts, pos = [], 0
    for m in _PLACEHOLDER.finditer(template):
        if m.start() > pos:
            parts.append(_lit(template[pos:m.start()]))
        parts.append(f"coalesce(CAST(h.detail.{m.group(1)} AS VARCHAR), '')")
        pos = m.end()
    if pos < len(template):
        parts.append(_lit(template[pos:]))
    return "concat(" + ", ".join(parts or ["''"]) + ")"


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _strip_semicolon(sql: str) -> str:
    body = re.sub(r"--[^\n]*", "", sql).strip()
    return body[:-1] if body.endswith(";") else body


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0]



"""影子运行 (shadow run): a changed rule runs beside the live one on new data and raises no clue.

The backtest (``models.rules.backtest``) replays a proposed config over history. A shadow is the step
after it: the change is registered (:func:`start_shadow`) and from then on every ``yibao rules run``
also runs the changed rule over the settlements from ``data_from`` on — by default the day after the
latest settlement the warehouse held at registration, i.e. the extracts that arrive afterwards — into
``rule_hits_shadow``, never into ``rule_hits``: nothing the shadow finds becomes a clue, a feature or a
label. :func:`shadow_report` compares both over the same settlements: hits and amounts under each, the
hits only one of them finds (by the deterministic ``hit_id``) and, from the clue store when it is given,
how many decided clues hold the live rule's hits but would hold none under the change, and how many of
those were confirmed (查实): a change that drops confirmed clues should not go live. Once ``days`` days of
data have been judged the report says the observation period is complete; :func:`stop_shadow` ends it.

The shadow keeps the text of the proposed config it was started with (a later edit of the file does not
change what runs) and the hash of the rule's SQL file: if that file changes, the shadow stops running
and says why. Every start and stop is written to the append-only ``rule_shadow_log``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from features.warehouse import connect
from models.rules.config import RuleConfig, RuleConfigError, config_from_text
from models.rules.engine import ENTITY_HIT_COLUMN, HIT_COLUMNS, compute_hits

__all__ = ["Shadow", "ShadowError", "ShadowRun", "ShadowReport", "start_shadow", "stop_shadow", "list_shadows",
           "run_shadows", "shadow_report", "ensure_shadow_tables", "DEFAULT_DAYS"]

DEFAULT_DAYS = 30  # a month of extracts: every monthly rule and billing cycle is seen once
_COLUMNS = (
    ("shadow_id", "VARCHAR"), ("rule_id", "VARCHAR"), ("config_path", "VARCHAR"), ("config_text", "VARCHAR"),
    ("config_sha256", "VARCHAR"), ("sql_sha256", "VARCHAR"), ("data_from", "TIMESTAMP"), ("days", "INTEGER"),
    ("note", "VARCHAR"), ("created_by", "VARCHAR"), ("created_at", "TIMESTAMP"), ("stopped_at", "TIMESTAMP"),
    ("stopped_by", "VARCHAR"), ("last_run_id", "VARCHAR"), ("last_run_at", "TIMESTAMP"), ("judged_to", "TIMESTAMP"),
)
_LOG_COLUMNS = (("logged_at", "TIMESTAMP"), ("action", "VARCHAR"), ("shadow_id", "VARCHAR"), ("actor", "VARCHAR"),
                ("detail", "VARCHAR"))


class ShadowError(ValueError):
    """A shadow that cannot be started, stopped or run; the message says which rule and why (中文)."""


@dataclass(frozen=True)
class Shadow:
    shadow_id: str
    rule_id: str
    config_path: str
    config_sha256: str
    sql_sha256: str
    data_from: datetime
    days: int
    note: str
    created_by: str
    created_at: datetime
    stopped_at: datetime | None = None
    stopped_by: str | None = None
    last_run_id: str | None = None
    last_run_at: datetime | None = None
    judged_to: datetime | None = None  # the latest settlement in the warehouse at the last run

    @property
    def days_observed(self) -> int:
        """Days of settlements judged so far, ``data_from`` to ``judged_to``."""
        if self.judged_to is None or self.judged_to < self.data_from:
            return 0
        return (self.judged_to.date() - self.data_from.date()).days + 1

    def to_dict(self) -> dict[str, Any]:
        return {k: (v.isoformat(sep=" ") if isinstance(v, datetime) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class ShadowRun:
    """What one rule run did with one shadow: its hits, or the reason it could not run."""

    shadow_id: str
    rule_id: str
    hits: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ShadowReport:
    """The live rule and its shadow over the same settlements (``data_from`` → the latest judged)."""

    shadow: Shadow
    live_hits: int
    shadow_hits: int
    both: int
    only_live: int
    only_shadow: int
    live_amount: float
    shadow_amount: float
    param_changes: dict[str, tuple[Any, Any]]
    decided_clues: int | None = None  # decided clues holding the live rule's hits (None: no clue store read)
    decided_dropped: int | None = None  # ... that would hold none of the changed rule's hits
    confirmed_dropped: int | None = None  # ... of which confirmed

    @property
    def days_observed(self) -> int:
        return self.shadow.days_observed

    @property
    def complete(self) -> bool:
        return self.days_observed >= self.shadow.days

    @property
    def status_zh(self) -> str:
        if self.shadow.stopped_at:
            return "已停止"
        if self.shadow.last_run_id is None:
            return "待运行 (下次 rules run)"
        return "观察期已满" if self.complete else "观察中"

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("days_observed", "live_hits", "shadow_hits", "both", "only_live",
                                           "only_shadow", "live_amount", "shadow_amount", "decided_clues",
                                           "decided_dropped", "confirmed_dropped", "complete", "status_zh")}
        return d | {"shadow": self.shadow.to_dict(),
                    "param_changes": {k: list(v) for k, v in self.param_changes.items()}}


def ensure_shadow_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create ``rule_shadows``, ``rule_hits_shadow`` and ``rule_shadow_log`` when they do not exist."""
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_shadows ({', '.join(f'{n} {t}' for n, t in _COLUMNS)})")
    hit_cols = ", ".join(f"{n} {t}" for n, t in (("shadow_id", "VARCHAR"), *HIT_COLUMNS))
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_hits_shadow ({hit_cols})")
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_shadow_log ({', '.join(f'{n} {t}' for n, t in _LOG_COLUMNS)})")


def start_shadow(warehouse: Path, proposed: RuleConfig, rule_id: str, *, created_by: str, days: int = DEFAULT_DAYS,
                 data_from: datetime | str | None = None, note: str = "") -> Shadow:
    """Register ``rule_id`` of the ``proposed`` config as a shadow of the live rule (see the module text).

    ``data_from``: the first settlement time it judges (default: the day after the latest settlement in
    the warehouse now). One shadow per rule at a time.
    """
    if not created_by.strip():
        raise ShadowError("请注明登记人 (--by): 影子运行的登记需留痕")
    if days < 1:
        raise ShadowError(f"观察天数须为正数 (days must be ≥ 1), 收到 {days}")
    try:
        rule = proposed.rule(rule_id)
    except KeyError:
        raise ShadowError(f"拟用配置 {proposed.path} 中没有规则 {rule_id} (rule not in the proposed config)") from None
    if not rule.enabled:
        raise ShadowError(f"拟用配置 {proposed.path} 中规则 {rule_id} 为停用状态, 无从影子运行 (rule is disabled there)")
    with connect(Path(warehouse)) as con:
        ensure_shadow_tables(con)
        active = con.execute("SELECT shadow_id FROM rule_shadows WHERE rule_id = ? AND stopped_at IS NULL",
                             [rule_id]).fetchall()
        if active:
            raise ShadowError(f"规则 {rule_id} 已有影子运行 {active[0][0]}; 先 `yibao rules shadow stop {rule_id}` "
                              "(one shadow per rule)")
        start = _timestamp(data_from) if data_from is not None else _after_latest_settlement(con)
        now = datetime.now().replace(microsecond=0)
        shadow = Shadow(shadow_id=f"S{now:%Y%m%d%H%M%S}-{uuid.uuid4().hex[:6]}", rule_id=rule_id,
                        config_path=str(proposed.path), config_sha256=proposed.sha256,
                        sql_sha256=_sha256(rule.sql), data_from=start, days=int(days), note=note,
                        created_by=created_by.strip(), created_at=now)
        text = Path(proposed.path).read_text(encoding="utf-8")
        con.execute(f"INSERT INTO rule_shadows VALUES ({', '.join('?' * len(_COLUMNS))})", [
            shadow.shadow_id, rule_id, shadow.config_path, text, shadow.config_sha256, shadow.sql_sha256, start,
            shadow.days, note, shadow.created_by, now, None, None, None, None, None])
        _log(con, "start", shadow.shadow_id, shadow.created_by,
             {"rule_id": rule_id, "config": shadow.config_path, "data_from": start.isoformat(sep=" "), "days": days})
    return shadow


def stop_shadow(warehouse: Path, rule_id: str, *, by: str, reason: str = "") -> Shadow:
    """End the active shadow of ``rule_id``; its hits stay for the record."""
    if not by.strip():
        raise ShadowError("请注明操作人 (--by)")
    with connect(Path(warehouse)) as con:
        ensure_shadow_tables(con)
        rows = con.execute("SELECT shadow_id FROM rule_shadows WHERE rule_id = ? AND stopped_at IS NULL",
                           [rule_id]).fetchall()
        if not rows:
            raise ShadowError(f"规则 {rule_id} 没有进行中的影子运行 (no active shadow)")
        now = datetime.now().replace(microsecond=0)
        con.execute("UPDATE rule_shadows SET stopped_at = ?, stopped_by = ? WHERE shadow_id = ?", [now, by, rows[0][0]])
        _log(con, "stop", rows[0][0], by, {"rule_id": rule_id, "reason": reason})
        return _read(con, "shadow_id = ?", [rows[0][0]])[0]


def list_shadows(warehouse: Path, *, include_stopped: bool = False) -> list[Shadow]:
    """The shadows recorded in the warehouse (active ones only unless ``include_stopped``)."""
    with connect(Path(warehouse), read_only=True) as con:
        if not _has(con, "rule_shadows"):
            return []
        return _read(con, "TRUE" if include_stopped else "stopped_at IS NULL", [])


def run_shadows(con: duckdb.DuckDBPyConnection, run_id: str, *,
                rule_ids: Iterable[str] | None = None) -> list[ShadowRun]:
    """Run every active shadow (of ``rule_ids`` only, when given) into ``rule_hits_shadow``; called at the
    end of a rule run, whose session views it replaces. A shadow that cannot run is reported, not raised:
    the live run has succeeded."""
    if not _has(con, "rule_shadows"):
        return []
    out = []
    for shadow in _read(con, "stopped_at IS NULL", []):
        if rule_ids is not None and shadow.rule_id not in set(rule_ids):
            continue
        try:
            config = _config_of(con, shadow)
            compute_hits(con, config, "_shadow_hits", since=shadow.data_from, run_id=f"shadow-{run_id}")
        except (ShadowError, RuleConfigError, duckdb.Error, ValueError) as e:
            out.append(ShadowRun(shadow.shadow_id, shadow.rule_id, error=str(e).splitlines()[0]))
            continue
        (latest,), = con.execute("SELECT max(setl_time) FROM setl_d").fetchall()
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM rule_hits_shadow WHERE shadow_id = ?", [shadow.shadow_id])
        con.execute("INSERT INTO rule_hits_shadow SELECT ?, * FROM _shadow_hits", [shadow.shadow_id])
        con.execute("UPDATE rule_shadows SET last_run_id = ?, last_run_at = ?, judged_to = ? WHERE shadow_id = ?",
                    [run_id, datetime.now().replace(microsecond=0), latest, shadow.shadow_id])
        con.execute("COMMIT")
        (n,), = con.execute("SELECT count(*) FROM _shadow_hits").fetchall()
        con.execute("DROP TABLE _shadow_hits")
        out.append(ShadowRun(shadow.shadow_id, shadow.rule_id, hits=int(n)))
    return out


def shadow_report(warehouse: Path, live: RuleConfig, rule_id: str | None = None, *, include_stopped: bool = False,
                  decided: Iterable[dict[str, Any]] | None = None) -> list[ShadowReport]:
    """Live rule against shadow, per shadow (of ``rule_id`` only, when given).

    ``decided``: the clue store's decided clues (:meth:`serving.clues.store.ClueStore.decided_clues`: dicts
    with ``entity_type``, ``entity_id``, ``rule_ids``, ``confirmed``); rings are left out of that count (a
    ring's hits are its members').
    """
    decided = list(decided) if decided is not None else None
    out = []
    with connect(Path(warehouse), read_only=True) as con:
        if not _has(con, "rule_shadows"):
            return []
        where, params = ("TRUE" if include_stopped else "stopped_at IS NULL"), []
        if rule_id:
            where, params = where + " AND rule_id = ?", [rule_id]
        for shadow in _read(con, where, params):
            out.append(_compare(con, shadow, live, decided))
    return out


# -- private helpers ------------------------------------------------------------------------------


def _compare(con, shadow: Shadow, live: RuleConfig, decided) -> ShadowReport:
    live_hits = ("(SELECT * FROM rule_hits UNION ALL BY NAME SELECT * EXCLUDE (exemption_id) FROM rule_hits_exempted)"
                 if _has(con, "rule_hits_exempted") else "rule_hits")
    row = con.execute(f"""
        WITH l AS (SELECT hit_id, amount_at_risk FROM {live_hits} WHERE rule_id = $rule AND event_time >= $since),
             s AS (SELECT hit_id, amount_at_risk FROM rule_hits_shadow WHERE shadow_id = $shadow)
        SELECT count(l.hit_id), count(s.hit_id), count(*) FILTER (WHERE l.hit_id IS NOT NULL AND s.hit_id IS NOT NULL),
               count(*) FILTER (WHERE s.hit_id IS NULL), count(*) FILTER (WHERE l.hit_id IS NULL),
               CAST(coalesce(sum(l.amount_at_risk), 0) AS DOUBLE), CAST(coalesce(sum(s.amount_at_risk), 0) AS DOUBLE)
        FROM l FULL OUTER JOIN s ON s.hit_id = l.hit_id""",
                      {"rule": shadow.rule_id, "since": shadow.data_from, "shadow": shadow.shadow_id}).fetchone()
    counts: dict[str, Any] = {}
    if decided is not None:
        counts = _decided_dropped(con, shadow, live_hits, decided)
    return ShadowReport(shadow=shadow, live_hits=int(row[0]),
                        shadow_hits=int(row[1]), both=int(row[2]), only_live=int(row[3]), only_shadow=int(row[4]),
                        live_amount=round(float(row[5]), 2), shadow_amount=round(float(row[6]), 2),
                        param_changes=_param_changes(live, _config_of(con, shadow, check_sql=False), shadow.rule_id),
                        **counts)


def _decided_dropped(con, shadow: Shadow, live_hits: str, decided) -> dict[str, int]:
    """Decided clues holding the rule's live hits; those that would hold none of the shadow's; confirmed."""
    holding = [(d["entity_type"], d["entity_id"], bool(d["confirmed"])) for d in decided
               if d["entity_type"] in ENTITY_HIT_COLUMN and shadow.rule_id in set(d["rule_ids"])]
    kept = set()
    for column in set(ENTITY_HIT_COLUMN.values()):
        kept |= {(column, v) for (v,) in con.execute(
            f"SELECT DISTINCT {column} FROM rule_hits_shadow WHERE shadow_id = ? AND {column} IS NOT NULL",
            [shadow.shadow_id]).fetchall()}
    since_start = set()
    for column in set(ENTITY_HIT_COLUMN.values()):
        since_start |= {(column, v) for (v,) in con.execute(
            f"SELECT DISTINCT {column} FROM {live_hits} WHERE rule_id = ? AND event_time >= ? AND {column} IS NOT NULL",
            [shadow.rule_id, shadow.data_from]).fetchall()}
    # only clues whose entity the live rule hit on the shadow's settlements can be compared
    judged = [(t, i, c) for t, i, c in holding if (ENTITY_HIT_COLUMN[t], i) in since_start]
    dropped = [(t, i, c) for t, i, c in judged if (ENTITY_HIT_COLUMN[t], i) not in kept]
    return {"decided_clues": len(judged), "decided_dropped": len(dropped),
            "confirmed_dropped": sum(1 for *_, c in dropped if c)}


def _config_of(con, shadow: Shadow, *, check_sql: bool = True) -> RuleConfig:
    """The proposed config as registered, reduced to the shadow's rule."""
    (text,), = con.execute("SELECT config_text FROM rule_shadows WHERE shadow_id = ?", [shadow.shadow_id]).fetchall()
    config = config_from_text(text, Path(shadow.config_path))
    rule = config.rule(shadow.rule_id)
    if check_sql:
        if not Path(rule.sql_path).is_file():
            raise ShadowError(f"影子规则 {shadow.rule_id} 的 SQL 文件已不存在: {rule.sql_path}")
        if _sha256(rule.sql) != shadow.sql_sha256:
            raise ShadowError(f"影子规则 {shadow.rule_id} 的 SQL 文件 {rule.sql_path} 在登记后已修改; 请停止后重新登记 "
                              "(the rule's SQL changed since the shadow started)")
    return replace(config, rules=(rule,))


def _param_changes(live: RuleConfig, proposed: RuleConfig, rule_id: str) -> dict[str, tuple[Any, Any]]:
    try:
        a = dict(live.rule(rule_id).params)
    except KeyError:
        a = {}
    b = dict(proposed.rule(rule_id).params)
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _read(con, where: str, params: list) -> list[Shadow]:
    names = [n for n, _ in _COLUMNS if n != "config_text"]
    rows = con.execute(f"SELECT {', '.join(names)} FROM rule_shadows WHERE {where} ORDER BY created_at, shadow_id",
                       params).fetchall()
    return [Shadow(**dict(zip(names, r))) for r in rows]


def _after_latest_settlement(con) -> datetime:
    (latest,), = con.execute("SELECT max(setl_time) FROM setl_d").fetchall() if _has(con, "setl_d") else [(None,)]
    if latest is None:
        return datetime.combine(datetime.now().date(), datetime.min.time())
    return datetime.combine(latest.date() + timedelta(days=1), datetime.min.time())


def _timestamp(value: datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise ShadowError(f"日期格式应为 YYYY-MM-DD (date expected), 收到 {value!r}") from None


def _has(con, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND schema_name = 'main' AND table_name = ?", [table]).fetchall())


def _log(con, action: str, shadow_id: str, actor: str, detail: dict) -> None:
    con.execute("INSERT INTO rule_shadow_log VALUES (?, ?, ?, ?, ?)",
                [datetime.now().replace(microsecond=0), action, shadow_id, actor,
                 json.dumps(detail, ensure_ascii=False)])


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

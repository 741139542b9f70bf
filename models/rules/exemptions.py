"""Exemptions (白名单): a known false match, set aside with a reason, an approver and an expiry date.

A rule that fires on honest care (a hospital's planned course the exemption list of a rule does not know
yet, a code a region uses its own way) would come back at every re-screening. An analyst records an
exemption instead; another person approves it; it expires on a date. Its hits are not deleted: every run
moves the hits it covers from ``rule_hits`` into ``rule_hits_exempted`` (the same columns plus the
exemption's id), so the clue list, the features and the evaluation no longer see them, and anyone can
still list them. A run after the exemption expired or was revoked finds them again.

What an exemption covers: hits of one rule or of every rule (``rule_id`` NULL), restricted by one key —
a person (``psn_no``), an institution (``fixmedins_code``; with a rule: a rule × institution pair), a
doctor (``prac_code``), a settlement, a visit, a fee line (``bkkp_sn``) or a catalogue code
(``hilist_code``: hits whose evidence lines carry it). A rule alone is not an exemption: switch the rule
off (``yibao rules disable``) and say why in the config.

Every change is written to the append-only ``rule_exemption_log`` (who, when, what, why).

>>> import tempfile
>>> from pathlib import Path
>>> w = Path(tempfile.mkdtemp()) / "w.duckdb"
>>> e = add_exemption(w, scope="fixmedins_code", value="H001", rule_id="split_admission",
...                   reason="肿瘤专科医院计划性化疗周期，已核实", created_by="analyst1", approved_by="chief2",
...                   expires_on="2099-12-31")
>>> [x.exemption_id for x in list_exemptions(w)] == [e.exemption_id]
True
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from features.codes import canonical
from features.warehouse import connect

__all__ = ["SCOPES", "Exemption", "ExemptionError", "add_exemption", "revoke_exemption", "list_exemptions",
           "read_exemptions", "ensure_exemption_tables", "apply_exemptions", "exempted_hit_ids"]

# scope -> (rule_hits column it matches, 中文)
SCOPES: dict[str, tuple[str, str]] = {
    "psn_no": ("psn_no", "参保人"),
    "fixmedins_code": ("fixmedins_code", "定点医药机构"),
    "prac_code": ("prac_code", "医师/药师"),
    "setl_id": ("setl_id", "结算"),
    "mdtrt_id": ("mdtrt_id", "就诊"),
    "bkkp_sn": ("evidence", "费用明细"),
    "hilist_code": ("evidence", "医保目录编码"),
}
_COLUMNS = (
    ("exemption_id", "VARCHAR"), ("rule_id", "VARCHAR"), ("scope", "VARCHAR"), ("value", "VARCHAR"),
    ("reason", "VARCHAR"), ("created_by", "VARCHAR"), ("approved_by", "VARCHAR"), ("created_at", "TIMESTAMP"),
    ("expires_on", "DATE"), ("revoked_at", "TIMESTAMP"), ("revoked_by", "VARCHAR"), ("revoke_reason", "VARCHAR"),
)
_LOG_COLUMNS = (("logged_at", "TIMESTAMP"), ("action", "VARCHAR"), ("exemption_id", "VARCHAR"), ("actor", "VARCHAR"),
                ("detail", "VARCHAR"))


class ExemptionError(ValueError):
    """An exemption that cannot be recorded or revoked; the message names the field."""


@dataclass(frozen=True)
class Exemption:
    exemption_id: str
    rule_id: str | None
    scope: str
    value: str
    reason: str
    created_by: str
    approved_by: str
    created_at: datetime
    expires_on: date
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoke_reason: str | None = None

    def active(self, on: date) -> bool:
        return self.revoked_at is None and self.expires_on >= on

    def covers(self, hit, line_codes: dict[str, str]) -> bool:
        """Whether this exemption covers *hit* (a ``precheck.Hit``); ``line_codes`` maps the fee lines of the
        visit and its history (``bkkp_sn``) to their catalogue codes — the same test as
        :func:`exempted_hit_ids`, for one hit in real time."""
        if self.rule_id is not None and self.rule_id != hit.rule_id:
            return False
        if self.scope == "bkkp_sn":
            return self.value in hit.evidence
        if self.scope == "hilist_code":
            return any(line_codes.get(b) == self.value for b in hit.evidence)
        return getattr(hit, SCOPES[self.scope][0]) == self.value

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("created_at", "expires_on", "revoked_at"):
            d[k] = d[k].isoformat() if d[k] is not None else None
        d["scope_zh"] = SCOPES[self.scope][1]
        return d


def ensure_exemption_tables(con: duckdb.DuckDBPyConnection) -> None:
    """``rule_exemptions``, its log and ``rule_hits_exempted`` (``rule_hits`` must exist)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_exemptions ({', '.join(f'{n} {t}' for n, t in _COLUMNS)})")
    con.execute(f"CREATE TABLE IF NOT EXISTS rule_exemption_log ({', '.join(f'{n} {t}' for n, t in _LOG_COLUMNS)})")
    con.execute("CREATE TABLE IF NOT EXISTS rule_hits_exempted AS "
                "SELECT *, CAST(NULL AS VARCHAR) AS exemption_id, CAST(NULL AS TIMESTAMP) AS exempted_at "
                "FROM rule_hits WHERE false")


def add_exemption(warehouse: Path, *, scope: str, value: str, reason: str, created_by: str, approved_by: str,
                  expires_on: date | str, rule_id: str | None = None, known_rules: set[str] | None = None,
                  today: date | None = None) -> Exemption:
    """Record an exemption; its hits are set aside at the next rule run. Raises :class:`ExemptionError`."""
    today = today or date.today()
    if scope not in SCOPES:
        raise ExemptionError(f"scope: 应为 {', '.join(SCOPES)} 之一 (unknown scope {scope!r})")
    value = (value or "").strip()
    if not value:
        raise ExemptionError("value: 缺少要豁免的对象 (the entity or code to exempt is required)")
    if scope == "hilist_code":
        value = canonical("list", value).code
    if known_rules is not None and rule_id is not None and rule_id not in known_rules:
        raise ExemptionError(f"rule: 未知规则 {rule_id!r} (unknown rule)")
    if not (reason or "").strip():
        raise ExemptionError("reason: 必须说明豁免理由 (a reason is required)")
    for name, who in (("created_by", created_by), ("approved_by", approved_by)):
        if not (who or "").strip():
            raise ExemptionError(f"{name}: 必须填写 (required)")
    if created_by.strip() == approved_by.strip():
        raise ExemptionError("approved_by: 审批人不能是申请人本人 (the approver must be another person)")
    try:
        expires = expires_on if isinstance(expires_on, date) else date.fromisoformat(str(expires_on))
    except ValueError:
        raise ExemptionError(f"expires_on: 不是日期 YYYY-MM-DD ({expires_on!r})") from None
    if expires < today:
        raise ExemptionError(f"expires_on: {expires} 已过期 (in the past)")
    e = Exemption(uuid.uuid4().hex[:12], rule_id, scope, value, reason.strip(), created_by.strip(),
                  approved_by.strip(), datetime.now().replace(microsecond=0), expires)
    with connect(Path(warehouse)) as con:
        _ensure(con)
        con.execute("BEGIN TRANSACTION")
        con.execute(f"INSERT INTO rule_exemptions VALUES ({', '.join('?' * len(_COLUMNS))})",
                    [getattr(e, n) for n, _ in _COLUMNS])
        _log(con, "add", e.exemption_id, e.created_by,
             f"规则 {rule_id or '全部'}，{SCOPES[scope][1]} {value}，至 {expires}，审批 {e.approved_by}：{e.reason}")
        con.execute("COMMIT")
    return e


def revoke_exemption(warehouse: Path, exemption_id: str, *, revoked_by: str, reason: str) -> Exemption:
    """End an exemption now; the next rule run finds its hits again."""
    if not (revoked_by or "").strip() or not (reason or "").strip():
        raise ExemptionError("revoked_by, reason: 撤销须填写撤销人和理由 (who and why are required)")
    with connect(Path(warehouse)) as con:
        _ensure(con)
        found = [e for e in _read(con) if e.exemption_id == exemption_id]
        if not found:
            raise ExemptionError(f"exemption_id: 无此豁免 {exemption_id!r} (not found)")
        if found[0].revoked_at is not None:
            raise ExemptionError(f"exemption_id: {exemption_id} 已于 {found[0].revoked_at} 撤销 (already revoked)")
        now = datetime.now().replace(microsecond=0)
        con.execute("BEGIN TRANSACTION")
        con.execute("UPDATE rule_exemptions SET revoked_at = ?, revoked_by = ?, revoke_reason = ? "
                    "WHERE exemption_id = ?", [now, revoked_by.strip(), reason.strip(), exemption_id])
        _log(con, "revoke", exemption_id, revoked_by.strip(), reason.strip())
        con.execute("COMMIT")
        return [e for e in _read(con) if e.exemption_id == exemption_id][0]


def list_exemptions(warehouse: Path, *, include_ended: bool = False, today: date | None = None) -> list[Exemption]:
    """The exemptions in force today (all of them with ``include_ended``), newest first."""
    today = today or date.today()
    if not Path(warehouse).is_file():
        raise FileNotFoundError(f"仓库文件不存在 (warehouse not found): {warehouse}")
    with connect(Path(warehouse), read_only=True) as con:
        if not _has(con, "rule_exemptions"):
            return []
        out = _read(con)
    return [e for e in out if include_ended or e.active(today)]


def read_exemptions(con: duckdb.DuckDBPyConnection, *, today: date | None = None) -> list[Exemption]:
    """The exemptions in force today on an open connection (none when the warehouse has no table)."""
    today = today or date.today()
    return [e for e in _read(con) if e.active(today)] if _has(con, "rule_exemptions") else []


def apply_exemptions(con: duckdb.DuckDBPyConnection, *, today: date | None = None) -> int:
    """Move the hits covered by an exemption in force from ``rule_hits`` to ``rule_hits_exempted``; hits
    exempted before whose exemption has ended stay where they are until a run finds them again. Returns the
    number of hits moved. Run after the rules, on a connection that may write."""
    today = today or date.today()
    _ensure(con)
    if not con.execute("SELECT count(*) FROM rule_exemptions").fetchone()[0]:
        return 0
    covered = exempted_hit_ids(con, today=today)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _exempt AS {covered}")
    (n,) = con.execute("SELECT count(*) FROM _exempt").fetchone()
    if n:
        con.execute("BEGIN TRANSACTION")
        con.execute("DELETE FROM rule_hits_exempted WHERE hit_id IN (SELECT hit_id FROM _exempt)")
        con.execute("INSERT INTO rule_hits_exempted SELECT h.*, x.exemption_id, now()::TIMESTAMP "
                    "FROM rule_hits h JOIN _exempt x USING (hit_id)")
        con.execute("DELETE FROM rule_hits WHERE hit_id IN (SELECT hit_id FROM _exempt)")
        con.execute("COMMIT")
    con.execute("DROP TABLE _exempt")
    return int(n)


def exempted_hit_ids(con: duckdb.DuckDBPyConnection, *, today: date, hits: str = "rule_hits") -> str:
    """SQL of (``hit_id``, ``exemption_id``) for the hits of table *hits* that an exemption in force covers
    (the first exemption by id when several do)."""
    parts = []
    for scope, (column, _) in SCOPES.items():
        if scope == "bkkp_sn":
            match = "list_contains(h.evidence, e.value)"
        elif scope == "hilist_code":
            match = ("EXISTS (SELECT 1 FROM fee_list_d l WHERE l.hilist_code = e.value "
                     "AND list_contains(h.evidence, l.bkkp_sn))")
        else:
            match = f"h.{column} = e.value"
        parts.append(f"""
            SELECT h.hit_id, e.exemption_id FROM {hits} h JOIN rule_exemptions e
              ON e.scope = '{scope}' AND (e.rule_id IS NULL OR e.rule_id = h.rule_id) AND {match}
            WHERE e.revoked_at IS NULL AND e.expires_on >= DATE '{today.isoformat()}'""")
    return f"SELECT hit_id, min(exemption_id) AS exemption_id FROM ({' UNION ALL '.join(parts)}) GROUP BY hit_id"


# -- private ----------------------------------------------------------------------------------------


def _ensure(con: duckdb.DuckDBPyConnection) -> None:
    from models.rules.engine import ensure_rule_tables

    ensure_rule_tables(con)
    ensure_exemption_tables(con)


def _read(con: duckdb.DuckDBPyConnection) -> list[Exemption]:
    names = [n for n, _ in _COLUMNS]
    rows = con.execute(f"SELECT {', '.join(names)} FROM rule_exemptions ORDER BY created_at DESC, exemption_id")
    return [Exemption(**dict(zip(names, r))) for r in rows.fetchall()]


def _log(con: duckdb.DuckDBPyConnection, action: str, exemption_id: str, actor: str, detail: str) -> None:
    con.execute("INSERT INTO rule_exemption_log VALUES (?, ?, ?, ?, ?)",
                [datetime.now().replace(microsecond=0), action, exemption_id, actor, detail])


def _has(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND table_name = ?", [table]).fetchall())

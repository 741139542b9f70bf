"""Real-time rule check of one visit (事前提醒 / 事中审核): the hits a doctor or pharmacist sees before settling.

:func:`precheck` takes one visit — settlement, fee lines, diagnoses (and optionally the visit row), in
contract field names — and the person's recent history from the warehouse (``lookback_days``, default
180), and returns the rule hits of that visit. It runs the very same rule SQL as ``yibao rules run``:
a :class:`Prechecker` keeps one in-memory DuckDB connection with the warehouse attached read-only, the
reference tables (institutions, catalogue, 两库 pack) copied once, and one statement that is the UNION ALL
of every enabled real-time rule. Per visit it refills small tables with the person's history and the
visit, moves the rule window to the visit's settlement time and runs that statement. Only the visit's
own hits come back (the history is context: earlier stays, earlier prescriptions, earlier uses).

What precheck cannot see: care not yet settled (an admission still open is not in ``setl_d``), and the
institution-level rules (``realtime: false`` in rules.yaml, e.g. 集采 shares) that need a period.

>>> visit = Visit.from_dict({
...     "setl": {"setl_id": "S1", "mdtrt_id": "M1", "psn_no": "P1", "fixmedins_code": "H1", "med_type": "11",
...              "insutype": "310", "setl_time": "2025-03-01 10:00:00"},
...     "lines": [{"bkkp_sn": "L1", "fee_ocur_time": "2025-03-01 09:30:00", "hilist_code": "X1",
...                "hilist_name": "某药", "list_type": "101", "med_chrgitm_type": "09", "cnt": 1, "pric": "12.5",
...                "det_item_fee_sumamt": "12.50"}],
...     "diagnoses": [{"diag_code": "J06.900", "maindiag_flag": "1"}]})
>>> visit.lines[0].pric, visit.lines[0].setl_id, visit.mdtrt.begntime.isoformat()
(Decimal('12.50'), 'S1', '2025-03-01T10:00:00')
>>> try:
...     Visit.from_dict({"setl": {"setl_id": "S1"}, "lines": []})
... except VisitError as e:
...     print(e)
visit.setl.mdtrt_id: 缺少必填字段 (required field missing)
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import MISSING, dataclass, field, fields, make_dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping

import duckdb
import pyarrow as pa

from features.contract import TABLES
from models.rules.config import RuleConfig, load_config
from models.rules.engine import (HIT_COLUMNS, base_statements, check_rules, hit_select, load_pack_temp,
                                 prepare_session)

__all__ = ["Visit", "VisitError", "Hit", "Prechecker", "precheck", "DEFAULT_LOOKBACK_DAYS"]

DEFAULT_LOOKBACK_DAYS = 180
_CLAIMS = ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info")


class VisitError(ValueError):
    """A visit that cannot be checked: names the field (``visit.lines[2].pric``) and what is wrong."""


# -- the visit ----------------------------------------------------------------------------------------

_PY = {"id": str, "code": str, "text": str, "flag": str, "month": str, "amount": Decimal, "number": float,
       "int": int, "datetime": datetime, "date": date}
# Fields a visit part may leave out because they repeat the settlement's (or are computed).
_INHERITED = {
    "mdtrt_d": ("mdtrt_id", "psn_no", "fixmedins_code", "med_type", "begntime", "endtime"),
    "fee_list_d": ("setl_id", "mdtrt_id", "psn_no", "fixmedins_code"),
    "setl_list_diag_d": ("setl_id", "mdtrt_id", "psn_no"),
    # before settlement the amounts are not known yet: they default to the lines' total / unknown
    "setl_d": ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay", "insu_admdvs",
               "refd_setl_flag", "insutype"),
}


def _record(table: str, name: str):
    spec = TABLES[table]
    inherited = set(_INHERITED.get(table, ()))
    required = [(f.name, _PY[f.kind]) for f in spec.fields if f.required and f.name not in inherited]
    optional = [(f.name, _PY[f.kind] | None, field(default=None)) for f in spec.fields
                if not (f.required and f.name not in inherited)]
    cls = make_dataclass(name, required + optional, frozen=True)
    cls.__doc__ = f"One row of {table} ({spec.label_zh}) in contract field names."
    return cls


SettlementRecord = _record("setl_d", "SettlementRecord")
VisitRecord = _record("mdtrt_d", "VisitRecord")
LineRecord = _record("fee_list_d", "LineRecord")
DiagnosisRecord = _record("setl_list_diag_d", "DiagnosisRecord")


@dataclass(frozen=True)
class Visit:
    """One visit to check: settlement (结算), fee lines (费用明细), diagnoses (诊断) and the visit row (就诊).

    Build it with :meth:`from_dict` from ``{"setl": {...}, "lines": [...], "diagnoses": [...],
    "mdtrt": {...}}``; the lines, diagnoses and visit row take ``setl_id``, ``mdtrt_id``, ``psn_no`` and
    ``fixmedins_code`` from the settlement when they leave them out, and a missing visit row is made from
    the settlement (begin/end = ``begndate``/``enddate`` or ``setl_time``, main diagnosis from the list).
    """

    setl: Any
    mdtrt: Any
    lines: tuple[Any, ...] = ()
    diagnoses: tuple[Any, ...] = ()

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Visit":
        if not isinstance(raw, Mapping):
            raise VisitError("visit: must be a mapping with setl, lines and diagnoses")
        unknown = set(raw) - {"setl", "lines", "diagnoses", "mdtrt"}
        if unknown:
            raise VisitError(f"visit: unknown part(s) {sorted(unknown)}; expected setl, lines, diagnoses, mdtrt")
        setl_raw = raw.get("setl")
        if not isinstance(setl_raw, Mapping):
            raise VisitError("visit.setl: 缺少结算信息 (the settlement is required, as a mapping)")
        setl = _parse(SettlementRecord, "setl_d", setl_raw, "visit.setl")
        keys = {"setl_id": setl.setl_id, "mdtrt_id": setl.mdtrt_id, "psn_no": setl.psn_no,
                "fixmedins_code": setl.fixmedins_code}
        lines = tuple(_parse(LineRecord, "fee_list_d", _inherit(r, keys, f"visit.lines[{i}]"), f"visit.lines[{i}]")
                      for i, r in enumerate(_list(raw.get("lines", []), "visit.lines")))
        diags = tuple(_parse(DiagnosisRecord, "setl_list_diag_d", _inherit(r, keys, f"visit.diagnoses[{i}]"),
                             f"visit.diagnoses[{i}]")
                      for i, r in enumerate(_list(raw.get("diagnoses", []), "visit.diagnoses")))
        for i, line in enumerate(lines):
            if line.setl_id != setl.setl_id:
                raise VisitError(f"visit.lines[{i}].setl_id: {line.setl_id!r} is not the settlement's {setl.setl_id!r}")
        total = sum((ln.det_item_fee_sumamt for ln in lines), Decimal("0.00"))
        defaults = {"medfee_sumamt": total, "refd_setl_flag": "0"}
        setl = _replace_none(setl, defaults)
        main = next((d.diag_code for d in diags if d.maindiag_flag == "1"), None)
        start = datetime.combine(setl.begndate, datetime.min.time()) if setl.begndate else setl.setl_time
        end = datetime.combine(setl.enddate, datetime.min.time()) if setl.enddate else setl.setl_time
        mdtrt_raw = dict(raw.get("mdtrt") or {})
        if raw.get("mdtrt") is not None and not isinstance(raw.get("mdtrt"), Mapping):
            raise VisitError("visit.mdtrt: must be a mapping")
        base = {"mdtrt_id": setl.mdtrt_id, "psn_no": setl.psn_no, "fixmedins_code": setl.fixmedins_code,
                "med_type": setl.med_type, "begntime": start, "endtime": end, "dscg_maindiag_code": main}
        mdtrt = _parse(VisitRecord, "mdtrt_d", {**base, **{k: v for k, v in mdtrt_raw.items() if v is not None}},
                       "visit.mdtrt")
        if mdtrt.mdtrt_id != setl.mdtrt_id:
            raise VisitError(f"visit.mdtrt.mdtrt_id: {mdtrt.mdtrt_id!r} is not the settlement's {setl.mdtrt_id!r}")
        return cls(setl=setl, mdtrt=mdtrt, lines=lines, diagnoses=diags)

    def tables(self) -> dict[str, pa.Table]:
        """The visit as Arrow tables named like the contract tables."""
        return {"setl_d": _arrow("setl_d", [self.setl]), "mdtrt_d": _arrow("mdtrt_d", [self.mdtrt]),
                "fee_list_d": _arrow("fee_list_d", list(self.lines)),
                "setl_list_diag_d": _arrow("setl_list_diag_d", list(self.diagnoses))}


# -- hits ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hit:
    """One rule hit (the columns of ``rule_hits``): rule, policy basis, entity, evidence, amount, message."""

    hit_id: str
    run_id: str
    rule_id: str
    rule_version: str
    pack_version: str
    typology_id: str
    basis_zh: str
    entity_type: str
    entity_id: str
    setl_id: str | None
    mdtrt_id: str | None
    psn_no: str | None
    fixmedins_code: str | None
    prac_code: str | None
    evidence: tuple[str, ...]
    amount_at_risk: Decimal
    severity: str
    message_zh: str
    event_time: datetime | None
    hit_time: datetime | None
    detail: Mapping[str, Any]

    @classmethod
    def from_row(cls, row: tuple) -> "Hit":
        values = dict(zip((n for n, _ in HIT_COLUMNS), row))
        values["evidence"] = tuple(values["evidence"] or ())
        values["detail"] = json.loads(values["detail"]) if values["detail"] else {}
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["evidence"] = list(self.evidence)
        out["amount_at_risk"] = float(self.amount_at_risk) if self.amount_at_risk is not None else None
        for k in ("event_time", "hit_time"):
            out[k] = out[k].isoformat(sep=" ") if out[k] else None
        out["detail"] = dict(self.detail)
        return out


# -- the checker --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Gate:
    """When a rule is worth running on a visit: a necessary condition, never the rule itself.

    ``codes``: the rule can only fire on a visit with a line of one of these codes (the 两库 codes its SQL
    joins on); ``when``: another necessary condition on the visit; ``history``: the rule reads the
    person's earlier settlements.
    """

    codes: frozenset[str] | None = None
    when: Callable[["Visit", Mapping[str, Any]], bool] | None = None
    history: bool = True
    tables: frozenset[str] = frozenset()  # the claim tables whose history the rule's SQL reads

    def applies(self, visit: "Visit", person: Mapping[str, Any]) -> bool:
        if self.codes is not None and not any(line.hilist_code in self.codes for line in visit.lines):
            return False
        return self.when is None or bool(self.when(visit, person))


class Prechecker:
    """A long-lived rule checker for single visits, over one warehouse (thread-safe, one visit at a time).

    Per visit it runs only the rules that can fire on it (see :class:`_Gate`: a line with a code the rule
    joins on, an inpatient settlement for the stay rules, a pharmacy purchase for card theft, an injury
    diagnosis for third-party liability ...) and reads the person's history only when one of them needs it.
    Rules unknown to the gates (added in rules.yaml later) always run, with history.

    >>> # checker = Prechecker(Path("data/warehouse.duckdb")); hits = checker.check(visit_dict)
    """

    def __init__(self, warehouse: Path, *, config: RuleConfig | None = None,
                 lookback_days: int = DEFAULT_LOOKBACK_DAYS, threads: int = 1):
        warehouse = Path(warehouse)
        if not warehouse.is_file():
            raise FileNotFoundError(f"仓库文件不存在 (warehouse not found): {warehouse}")
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be positive, not {lookback_days}")
        self.warehouse, self.lookback_days = warehouse, lookback_days
        self.config = config or load_config()
        self.rules = tuple(r for r in self.config.enabled_rules if r.realtime)
        self._lock = threading.Lock()
        con = duckdb.connect(":memory:", config={"threads": str(threads)})
        con.execute(f"ATTACH '{_sql_path(warehouse)}' AS wh (READ_ONLY)")
        for table in _CLAIMS:
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM wh.{table} LIMIT 0")
        for table in ("fixmedins", "hilist"):
            con.execute(f"CREATE TABLE {table} AS SELECT * FROM wh.{table}")
        self.pack_version = load_pack_temp(con)
        prepare_session(con, self.config, since=datetime(1900, 1, 1), history_from=datetime(1900, 1, 1))
        check_rules(con, self.rules, self.pack_version)
        # The base views over reference data are fixed for the life of the checker: computed once. The
        # views over the claims are computed once per visit (several rules read them).
        self._per_visit = []
        for name, select in base_statements():
            if name in _STATIC_VIEWS or name in _PER_VISIT_VIEWS:
                con.execute(f"DROP VIEW {name}")
                con.execute(f"CREATE TEMP TABLE {name} AS {select}")
            if name in _PER_VISIT_VIEWS:
                self._per_visit.append((name, select))
        self._select = {}
        for rule in self.rules:
            self._select[rule.id] = hit_select(rule, pack_version=self.pack_version, run_id="precheck")
        self._gates = {rule.id: _gate_for(rule, self.config, con) for rule in self.rules}
        self._con = con

    def relevant_rules(self, visit: Visit, person: Mapping[str, Any] | None = None) -> tuple[str, ...]:
        """Ids of the rules worth running on *visit* (all others cannot fire on it)."""
        person = person or {}
        return tuple(r.id for r in self.rules if self._gates[r.id].applies(visit, person))

    def check(self, visit: Visit | Mapping[str, Any]) -> list[Hit]:
        """The hits of *visit* (a :class:`Visit` or its dict form), given the person's recent history."""
        v = visit if isinstance(visit, Visit) else Visit.from_dict(visit)
        until = v.setl.setl_time
        since = until - timedelta(days=self.lookback_days)
        psn = {"psn": v.setl.psn_no}
        with self._lock:
            con = self._con
            con.execute("CREATE OR REPLACE TABLE psn_info AS SELECT * FROM wh.psn_info WHERE psn_no = $psn", psn)
            found = con.execute("SELECT die_date, gend, brdy FROM psn_info").fetchall()
            person = dict(zip(("die_date", "gend", "brdy"), found[0])) if found else {}
            rules = self.relevant_rules(v, person)
            if not rules:
                return []
            needed = set().union(*(self._gates[r].tables for r in rules if self._gates[r].history))
            key = {**psn, "from": since, "until": until, "setl": v.setl.setl_id, "mdtrt": v.setl.mdtrt_id}
            for table, arrow in v.tables().items():
                # history rows outside the window are harmless: every view joins through claim_setl,
                # which keeps settlements from `history_from` on; the visit's own rows come from the visit
                history = table in needed
                past = _HISTORY[table] if history else f"SELECT * FROM wh.{table} WHERE false"
                con.register("_visit_part", arrow)
                con.execute(f"CREATE OR REPLACE TABLE {table} AS ({past}) UNION ALL BY NAME "
                            f"(SELECT * FROM _visit_part)", {k: key[k] for k in _PARAMS_OF[table]} if history else None)
                con.unregister("_visit_part")
            con.execute("UPDATE rule_window SET since = $until, history_from = $from", {"until": until, "from": since})
            for name, select in self._per_visit:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {select}")
            parts, params = [], {}
            for rule_id in rules:
                sql, p = self._select[rule_id]
                parts.append(f"SELECT * FROM ({sql})")
                params.update(p)
            rows = con.execute("\nUNION ALL\n".join(parts), params).fetchall()
        return sorted((Hit.from_row(r) for r in rows), key=lambda h: (h.rule_id, h.entity_id, h.hit_id))

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> "Prechecker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _gate_for(rule, config: RuleConfig, con: duckdb.DuckDBPyConnection) -> _Gate:
    """The gate of one rule: 两库 rules by the codes their SQL joins on, typology rules by their trigger."""
    return replace(_trigger(rule, config, con), tables=_tables_read(rule.sql))


def _tables_read(sql: str) -> frozenset[str]:
    """The claim tables a rule's SQL reads, directly or through the base views (for the history it needs)."""
    names = set(re.findall(r"\b(claim_setl|claim_line|claim_mdtrt|claim_diag|setl_d|mdtrt_d|fee_list_d|"
                           r"setl_list_diag_d)\b", re.sub(r"--[^\n]*", "", sql)))
    out: set[str] = {"setl_d"}
    for name in names:
        out |= _VIEW_SOURCES.get(name, {name})
    return frozenset(out)


def _trigger(rule, config: RuleConfig, con: duckdb.DuckDBPyConnection) -> _Gate:
    kinds = sorted(set(re.findall(r"rule_kind\s*=\s*'([a-z_]+)'", rule.sql)))
    history = rule.id not in _VISIT_ONLY
    if kinds:
        codes = {c for (c,) in con.execute(
            "SELECT hilist_code FROM rule_pack WHERE list_contains($k, rule_kind) UNION "
            "SELECT related_code FROM rule_pack WHERE list_contains($k, rule_kind) AND related_code IS NOT NULL",
            {"k": kinds}).fetchall()}
        return _Gate(codes=frozenset(codes), history=history)
    params = rule.params
    inpatient = set(config.inpatient_med_types)
    if rule.id == "price_over_cap":
        capped = frozenset(c for (c,) in con.execute(
            "SELECT hilist_code FROM hilist WHERE pric_uplmt_amt IS NOT NULL").fetchall())
        return _Gate(when=lambda v, p: any(ln.pric_uplmt_amt is not None or ln.hilist_code in capped
                                           for ln in v.lines), history=False)
    if rule.id == "dead_person":
        return _Gate(when=lambda v, p: p.get("die_date") is not None, history=False)
    if rule.id in ("split_admission", "bed_hold"):
        return _Gate(when=lambda v, p: v.setl.med_type in inpatient)
    if rule.id == "card_theft":
        purchase = set(params.get("purchase_med_types", ()))
        return _Gate(when=lambda v, p: v.setl.med_type in purchase)
    if rule.id == "over_prescription":
        purchase = set(params.get("purchase_med_types", ()))
        return _Gate(when=lambda v, p: v.setl.med_type not in purchase and any(
            (ln.prd_days or 0) > 0 and ln.list_type in ("101", "102") for ln in v.lines))
    if rule.id == "third_party_liability":
        injury = tuple(params.get("injury_prefixes", ()))
        return _Gate(when=lambda v, p: any(d.diag_code.startswith(injury) for d in v.diagnoses), history=False)
    return _Gate()  # a rule the gates do not know: always run, with history


# Base views over reference data only (computed once per checker) and over the claims (once per visit).
_STATIC_VIEWS = frozenset({"hosp_level_code", "med_type_class", "institution", "catalogue"})
_PER_VISIT_VIEWS = frozenset({"claim_setl"})  # read by every other claim view
_HISTORY = {
    "setl_d": "SELECT * FROM wh.setl_d WHERE psn_no = $psn AND setl_time >= $from AND setl_time < $until "
              "AND setl_id <> $setl",
    "mdtrt_d": "SELECT * FROM wh.mdtrt_d WHERE psn_no = $psn AND mdtrt_id <> $mdtrt",
    "fee_list_d": "SELECT * FROM wh.fee_list_d WHERE psn_no = $psn AND setl_id <> $setl",
    "setl_list_diag_d": "SELECT * FROM wh.setl_list_diag_d WHERE psn_no = $psn AND setl_id <> $setl",
}

# The claim tables behind each base view (sql/_base.sql).
_VIEW_SOURCES = {
    "claim_setl": {"setl_d"},
    "claim_line": {"fee_list_d", "setl_d"},
    "claim_mdtrt": {"mdtrt_d", "setl_d", "setl_list_diag_d"},
    "claim_diag": {"setl_list_diag_d", "setl_d"},
}
_PARAMS_OF = {table: sorted(set(re.findall(r"\$([a-z]+)", sql))) for table, sql in _HISTORY.items()}

# Rules that look only at the visit itself (and the person register): no history needed.
_VISIT_ONLY = frozenset({"liangku_gender", "liangku_age", "liangku_insurance_type", "liangku_care_setting",
                         "liangku_institution_level", "price_over_cap", "dead_person", "third_party_liability"})


_CHECKERS: dict[tuple, Prechecker] = {}
_CHECKERS_LOCK = threading.Lock()


def precheck(visit: Visit | Mapping[str, Any], *, warehouse: Path, lookback_days: int = DEFAULT_LOOKBACK_DAYS,
             config: RuleConfig | None = None) -> list[Hit]:
    """The rule hits of one visit, judged with the person's last *lookback_days* days from *warehouse*.

    Keeps one :class:`Prechecker` per (warehouse, config, look-back) for the life of the process, so the
    service's pre-check endpoint pays the set-up once.
    """
    config = config or load_config()
    key = (str(Path(warehouse).resolve()), str(config.path), config.sha256, lookback_days)
    with _CHECKERS_LOCK:
        checker = _CHECKERS.get(key)
        if checker is None:
            checker = _CHECKERS[key] = Prechecker(Path(warehouse), config=config, lookback_days=lookback_days)
    return checker.check(visit)


# -- parsing helpers ----------------------------------------------------------------------------------

def _list(value: Any, where: str) -> list:
    if not isinstance(value, (list, tuple)):
        raise VisitError(f"{where}: must be a list")
    return list(value)


def _inherit(raw: Any, keys: Mapping[str, Any], where: str) -> dict:
    if not isinstance(raw, Mapping):
        raise VisitError(f"{where}: must be a mapping of contract fields")
    return {**keys, **{k: v for k, v in raw.items() if v is not None}}


def _parse(cls, table: str, raw: Mapping[str, Any], where: str):
    values = {}
    for f in TABLES[table].fields:
        value = raw.get(f.name)
        blank = value is None or (isinstance(value, str) and not value.strip())
        values[f.name] = None if blank else _value(value, f.kind, f"{where}.{f.name}")
    for f in fields(cls):
        if f.default is MISSING and values.get(f.name) is None:
            raise VisitError(f"{where}.{f.name}: 缺少必填字段 (required field missing)")
    return cls(**values)


def _value(value: Any, kind: str, where: str) -> Any:
    try:
        if kind in ("id", "code", "flag", "month"):
            if isinstance(value, float) or isinstance(value, bool):
                raise VisitError(f"{where}: 编码须为文本 (codes are text, so leading zeros stay), not {value!r}")
            return str(value).strip()
        if kind == "text":
            return str(value)
        if kind == "amount":
            if isinstance(value, bool):
                raise InvalidOperation
            return Decimal(str(value)).quantize(Decimal("0.01"))
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind == "datetime":
            if isinstance(value, datetime):
                return value.replace(tzinfo=None)
            if isinstance(value, date):
                return datetime.combine(value, datetime.min.time())
            return datetime.fromisoformat(str(value).strip())
        if kind == "date":
            if isinstance(value, datetime):
                return value.date()
            if isinstance(value, date):
                return value
            return date.fromisoformat(str(value).strip()[:10])
    except VisitError:
        raise
    except (ValueError, TypeError, InvalidOperation):
        what = {"amount": "金额 (an amount)", "number": "数值 (a number)", "int": "整数 (a whole number)",
                "datetime": "时间 YYYY-MM-DD HH:MM:SS", "date": "日期 YYYY-MM-DD"}.get(kind, kind)
        raise VisitError(f"{where}: 应为{what}, not {value!r}") from None
    raise AssertionError(kind)  # pragma: no cover


def _replace_none(record, defaults: Mapping[str, Any]):
    return replace(record, **{k: v for k, v in defaults.items() if getattr(record, k) is None})


_ARROW = {"id": pa.string(), "code": pa.string(), "text": pa.string(), "flag": pa.string(), "month": pa.string(),
          "amount": pa.decimal128(18, 2), "number": pa.float64(), "int": pa.int32(), "datetime": pa.timestamp("us"),
          "date": pa.date32()}


def _arrow(table: str, records: list) -> pa.Table:
    spec = TABLES[table]
    schema = pa.schema([(f.name, _ARROW[f.kind]) for f in spec.fields])
    return pa.Table.from_pylist([{f.name: getattr(r, f.name, None) for f in spec.fields} for r in records],
                                schema=schema)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

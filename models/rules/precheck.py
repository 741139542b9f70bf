"""Real-time rule check of one visit (事前提醒 / 事中审核): the hits a doctor or pharmacist sees before settling.

A :class:`Prechecker` (build one per process, share it between threads) takes one visit — settlement,
fee lines, diagnoses (and optionally the visit row), in contract field names — and the person's recent
history (``lookback_days``, default the config's ``history_days``, 400) from a person-keyed store it loads from the warehouse at
start-up, and returns the rule hits of that visit. Per visit, only the rules whose ``precheck_when``
(rules.yaml) holds are evaluated, each in one of two ways (``engine``):

* **SQL** (the reference): the very same rule SQL as ``yibao rules run``, unchanged, as one statement over
  the person's rows and the visit, with the rule window moved to the visit's settlement time, so only
  the visit's own hits come back (the history is context: earlier stays, prescriptions, uses);
* **kernel**: a small Python function per rule (:mod:`models.rules.kernels`) that computes the same rows
  from the visit and the person's rows in a columnar index (:mod:`models.rules.history`), with no SQL
  planned per visit — ~1 ms where the SQL takes ~10. The kernels are a second implementation of the
  SQL, and ``tests/models/test_rules_kernels.py`` checks that they give identical hits (ids, evidence,
  amounts, messages, detail) on the hand-built cases and a sample of the ``tiny`` region.

``engine="auto"`` (default) uses a rule's kernel when it has one and its SQL otherwise (today every
real-time rule has one, so no SQL runs per visit and the SQL path's store is let go after start-up);
``"sql"`` runs the SQL for every rule; ``"python"`` requires a kernel for every rule.
:func:`precheck` does the same with a checker kept per warehouse. See :class:`Prechecker`.

What precheck cannot see: care not yet settled (an admission still open is not in ``setl_d``),
settlements made after the checker was built (its store is a snapshot), and the institution-level rules
(``realtime: false`` in rules.yaml, e.g. 集采 shares) that need a period.

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

import atexit
import bisect
import json
import os
import queue
import re
import tempfile
import threading
import time
from dataclasses import MISSING, dataclass, field, fields, make_dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable, Mapping

import duckdb
import pyarrow as pa

from features.codes import CodeMap
from features.config import identity_vault_path
from features.contract import TABLES
from features.warehouse import BIRTH_DATES, VAULT_ALIAS, birth_dates_view
from models.rules.config import RuleConfig, RuleConfigError, load_config
from models.rules.engine import (ALL_TIME, HIT_COLUMNS, RULE_OUTPUT, _lit, base_statements, check_rules,
                                 hit_select, prepare_session, rule_body, store_pack)
from models.rules.exemptions import read_exemptions
from models.rules.history import HistoryIndex
from models.rules.kernels import Claims, Lookups, kernel_for, kernel_hits

__all__ = ["Visit", "VisitError", "Hit", "Prechecker", "precheck", "DEFAULT_LOOKBACK_DAYS", "ENGINES"]

# None: the rule config's ``history_days`` (400 by default), as far back as the batch run reads, so that a
# 365-day course limit is enforced in real time too (found by the conformance suite).
DEFAULT_LOOKBACK_DAYS: int | None = None
# How check() evaluates a rule: its SQL ("sql"), its kernel where it has one ("auto"), or only kernels
# ("python": every real-time rule must have one).
ENGINES = ("auto", "python", "sql")
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
    def from_dict(cls, raw: Mapping[str, Any], *, codes: Mapping[str, CodeMap] | None = None) -> "Visit":
        """The visit of ``raw``, its codes in canonical form (``features.codes``, as the ingest stores them);
        ``codes`` maps a code kind to its :class:`~features.codes.CodeMap` (a checker passes its own, which
        knows the catalogue's codes for 9-digit 价格项目 codes)."""
        codes = codes or _DEFAULT_CODES
        if not isinstance(raw, Mapping):
            raise VisitError("visit: must be a mapping with setl, lines and diagnoses")
        unknown = set(raw) - {"setl", "lines", "diagnoses", "mdtrt"}
        if unknown:
            raise VisitError(f"visit: unknown part(s) {sorted(unknown)}; expected setl, lines, diagnoses, mdtrt")
        setl_raw = raw.get("setl")
        if not isinstance(setl_raw, Mapping):
            raise VisitError("visit.setl: 缺少结算信息 (the settlement is required, as a mapping)")
        setl = _parse(SettlementRecord, "setl_d", setl_raw, "visit.setl", codes)
        keys = {"setl_id": setl.setl_id, "mdtrt_id": setl.mdtrt_id, "psn_no": setl.psn_no,
                "fixmedins_code": setl.fixmedins_code}
        lines = tuple(_parse(LineRecord, "fee_list_d", _inherit(r, keys, f"visit.lines[{i}]"), f"visit.lines[{i}]",
                             codes)
                      for i, r in enumerate(_list(raw.get("lines", []), "visit.lines")))
        diags = tuple(_parse(DiagnosisRecord, "setl_list_diag_d", _inherit(r, keys, f"visit.diagnoses[{i}]"),
                             f"visit.diagnoses[{i}]", codes)
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
                       "visit.mdtrt", codes)
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

# A warehouse file from this size on (``city`` is 0.7 GB) gets its history store in a temporary file when
# only the kernels read it (see Prechecker): the store is read once, to build the index.
FILE_STORE_FROM_BYTES = 256 * 2**20


class Prechecker:
    """A long-lived rule checker for single visits: build it once, call :meth:`check` per visit.

    Start-up (``setup_seconds``: 2 s on ``small``, ~30 s on ``city``) copies a person-keyed history store
    out of the warehouse — the claim tables (settlements, visits, fee lines, diagnoses; from
    ``history_since`` on when given, to bound memory) ordered by a hash of ``psn_no``, so one person's rows
    are one small read however big the region; the person register; institutions, catalogue and the 两库
    pack — into an in-memory DuckDB (or the DuckDB file ``store_path``: a quarter of the memory, a little
    slower), then lets the warehouse go: an ingest or a batch run may write it meanwhile. The store is a
    snapshot: build a new checker to see settlements made since.

    With kernels (``engine`` ``"auto"`` or ``"python"``), start-up also builds the person-keyed columnar
    :class:`~models.rules.history.HistoryIndex` out of the store (+2 s on ``small``, +27 s on ``city``)
    and the knowledge point dicts (:class:`~models.rules.kernels.Lookups`); when every real-time rule has
    a kernel the DuckDB store is then detached, since no SQL will read it (``sql_store`` says whether it
    is kept): 1.7 GiB stay resident on ``city`` instead of 4.3. In that case, for a warehouse of
    :data:`FILE_STORE_FROM_BYTES` or more, the store is written to a temporary DuckDB file (deleted once
    the index is built) rather than kept in memory: the start-up peak on ``city`` falls from 8.0 to 4.8
    GiB in the same time (53 s); a small warehouse keeps the in-memory store, a second faster.

    Per visit, :meth:`check`:

    1. keeps only the rules that can fire on the visit, by their ``precheck_when`` in rules.yaml
       (necessary conditions such as "a line with a code of the rule's 两库 kinds" or "an inpatient
       settlement", read off the visit in Python); none left → no hits, no SQL at all;
    2. evaluates the kept rules that have a kernel in Python (:func:`~models.rules.kernels.kernel_hits`
       over the visit's :class:`~models.rules.kernels.Claims`); steps 3 and 4 are for the others (all of
       them with ``engine="sql"``):
    3. points the contract tables (``setl_d``, ``fee_list_d`` ...: temp views) at the person's history in
       the store — settlements of the last ``lookback_days`` before the visit, its own settlement left out
       — plus the visit itself, and moves the rule window to the visit's settlement time, so that only the
       visit's own settlements are in scope and only its hits come back;
    4. runs the kept rules' own SQL, unchanged, as ONE statement headed by the claim views of
       ``_base.sql`` they read (as CTEs, computed once for all of them), each rule returning its rows as a
       list; then, only for the rules that found rows, the batch run's own hit SELECT
       (:func:`~models.rules.engine.hit_select`) over those rows. A clean visit, the common case, never
       pays for hit ids and messages.

    DuckDB plans every statement anew (a prepared statement is re-planned on each EXECUTE), and on one
    person's few hundred rows planning, not reading, is most of the cost: hence one statement per visit,
    parsed once per set of rules and kept, and the join-order optimiser switched off in the checker's
    private database (it pays off on large tables only; results do not depend on it).

    Thread safety: :meth:`check` may be called from many threads at once. The checker holds ``sessions``
    connections to its database (``cursor()``s, each with its own temp views and visit holders); a call
    takes a free one for its duration and waits while all are busy, so at most ``sessions`` visits are
    checked at the same time (default 2: one per core; DuckDB releases the GIL while it works). Rules
    evaluated by kernels take no connection: they run in the calling thread, holding the GIL (a millisecond
    or two; the index and lookups are read-only, shared by all threads). Build one
    checker per process at start-up, share it, and :meth:`close` it at shutdown (or use ``with``).

    >>> # checker = Prechecker(Path("data/warehouse.duckdb")); hits = checker.check(visit_dict)
    """

    def __init__(self, warehouse: Path, *, config: RuleConfig | None = None,
                 lookback_days: int | None = DEFAULT_LOOKBACK_DAYS, sessions: int = 2,
                 history_since: date | datetime | None = None, store_path: Path | None = None,
                 threads: int = 1, engine: str = "auto"):
        t0 = time.perf_counter()
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
        warehouse = Path(warehouse)
        if not warehouse.is_file():
            raise FileNotFoundError(f"仓库文件不存在 (warehouse not found): {warehouse}")
        self.config = config or load_config()
        lookback_days = self.config.history_days if lookback_days is None else lookback_days
        if lookback_days < 1:
            raise ValueError(f"lookback_days must be positive, not {lookback_days}")
        if sessions < 1:
            raise ValueError(f"sessions must be at least 1, not {sessions}")
        self.warehouse, self.lookback_days = warehouse, lookback_days
        self.rules = tuple(r for r in self.config.enabled_rules if r.realtime)
        self.engine = engine
        if engine == "python" and (missing := [r.id for r in self.rules if kernel_for(r) is None]):
            raise ValueError(f"engine='python': no kernel for rule(s) {', '.join(missing)} (use 'auto')")
        kernels = {r.id: r for r in self.rules if kernel_for(r) is not None} if engine != "sql" else {}
        # every rule by its kernel: the SQL path's store is read only to build the index
        self.sql_store = len(kernels) < len(self.rules)
        temporary = None
        if (store_path is None and not self.sql_store
                and Path(warehouse).is_file() and Path(warehouse).stat().st_size >= FILE_STORE_FROM_BYTES):
            temporary = tempfile.TemporaryDirectory(prefix="yibao-precheck-")  # read only to build the index
            store_path = Path(temporary.name) / "store.duckdb"
        db = duckdb.connect(":memory:", config={"threads": str(os.cpu_count() or 1)})
        try:
            self.pack_version = _load_store(db, warehouse, history_since, store_path)
            db.execute(f"SET threads = {int(threads)}")  # the load used every core; a check uses one
            db.execute(f"SET disabled_optimizers = '{_DISABLED_OPTIMIZERS}'")
            # 白名单 in force when the checker starts (models.rules.exemptions): their hits are not reminded
            self.exemptions = tuple(read_exemptions(db))
            self._died = frozenset(p for (p,) in db.execute(
                "SELECT psn_no FROM store.hist_psn_info WHERE die_date IS NOT NULL").fetchall())
            catalogue = [c for (c,) in db.execute("SELECT DISTINCT hilist_code FROM hilist").fetchall() if c]
            self.codes = {kind: CodeMap(kind, known=catalogue if kind == "list" else None)
                          for kind in _DEFAULT_CODES}
            self._gates = {r.id: _gate(r, self.config, db) for r in self.rules}
            self._history = _history_index(db, self.rules, self.config)
            self._probe = {r.id: _probe_select(r) for r in self.rules}
            self._statements: dict[tuple, tuple[duckdb.Statement, dict[str, Any] | None]] = {}
            self._free: queue.SimpleQueue[_Session] = queue.SimpleQueue()
            self._sessions = [_Session(db.cursor(), self) for _ in range(sessions)]
            cur = self._sessions[0].cur
            check_rules(cur, self.rules, self.pack_version)
            self._select = {}
            for r in self.rules:  # the hit SELECT over the rows a probe found: $<rule id>__rows, typed
                expr, params = self._probe[r.id]
                row_type = cur.sql(f"SELECT {expr}", params=params or None).types[0]
                columns = ", ".join(f"r.{name}" for name in RULE_OUTPUT)
                self._select[r.id] = hit_select(
                    r, pack_version=self.pack_version, run_id="precheck",
                    rows=f"SELECT {columns} FROM (SELECT unnest(${r.id}__rows::{row_type}) AS r)")[0]
            self._kernels: dict[str, Any] = {}
            self.index_seconds, self.index_bytes = 0.0, 0
            if engine != "sql":
                t1 = time.perf_counter()
                self._index = HistoryIndex.from_store(db)
                self._lookups = Lookups.build(db, self.config)
                self._kernels = kernels
                self.index_seconds = round(time.perf_counter() - t1, 2)
                self.index_bytes = self._index.nbytes
            if not self.sql_store:  # no SQL will read the store: give its memory back
                db.execute("DETACH store")
                db.execute("SET memory_limit = '64MB'")  # DuckDB keeps freed blocks until its limit drops
                db.execute("RESET memory_limit")
        except BaseException:
            db.close()
            raise
        finally:
            if temporary is not None:
                temporary.cleanup()
        for session in self._sessions:
            self._free.put(session)
        self._db = db
        self._closed = False
        self.setup_seconds = round(time.perf_counter() - t0, 2)

    def visit(self, visit: Visit | Mapping[str, Any]) -> Visit:
        """*visit* parsed (:meth:`Visit.from_dict`) with this checker's code maps; a :class:`Visit` as is."""
        return visit if isinstance(visit, Visit) else Visit.from_dict(visit, codes=self.codes)

    def relevant_rules(self, visit: Visit | Mapping[str, Any], person: Mapping[str, Any] | None = None
                       ) -> tuple[str, ...]:
        """Ids of the rules worth running on *visit*; the others cannot fire on it (``precheck_when``).

        *person* (optional) overrides the register's death date (``{"die_date": ...}``).
        """
        v = self.visit(visit)
        died = v.setl.psn_no in self._died if person is None else person.get("die_date") is not None
        ctx = _GateInput(v, died, self._history.get(v.setl.psn_no, ()),
                         v.setl.setl_time - timedelta(days=self.lookback_days), v.setl.setl_time)
        return tuple(r.id for r in self.rules if self._gates[r.id](ctx))

    def check(self, visit: Visit | Mapping[str, Any]) -> list[Hit]:
        """The hits of *visit* (a :class:`Visit` or its dict form), given the person's recent history.

        Sorted by rule id, entity and hit id; an empty list when no rule fires. Raises :class:`VisitError`
        for a malformed visit.
        """
        v = self.visit(visit)
        if self._closed:
            raise RuntimeError("the Prechecker is closed")
        rules = self.relevant_rules(v)
        if not rules:
            return []
        hits = []
        by_kernel = [self._kernels[r] for r in rules if r in self._kernels]
        if by_kernel:
            claims = Claims(v, self._index, self._lookups, lookback_days=self.lookback_days)
            hit_time = datetime.now()
            hits = [Hit(**values) for rule in by_kernel
                    for values in kernel_hits(rule, claims, pack_version=self.pack_version, hit_time=hit_time)]
        by_sql = tuple(r for r in rules if r not in self._kernels)
        if by_sql:
            session = self._free.get()
            try:
                rows = session.run(v, by_sql)
            finally:
                self._free.put(session)
            hits += [Hit.from_row(r) for r in rows]
        if self.exemptions and hits:
            codes = {ln.bkkp_sn: ln.hilist_code for ln in v.lines}
            hits = [h for h in hits if not any(e.covers(h, codes) for e in self.exemptions)]
        return sorted(hits, key=lambda h: (h.rule_id, h.entity_id, h.hit_id))

    @property
    def history(self) -> HistoryIndex | None:
        """The person-history index the kernels read (None with ``engine="sql"``): read-only, shared by
        every thread; the service's online settlement features read it too (``serving.online``)."""
        return getattr(self, "_index", None)

    def kernel_rules(self) -> tuple[str, ...]:
        """Ids of the real-time rules this checker evaluates by their kernel (the others run their SQL)."""
        return tuple(self._kernels)

    def close(self) -> None:
        """Wait for the calls under way, then free the in-memory database."""
        if self._closed:
            return
        self._closed = True
        for _ in self._sessions:
            self._free.get()
        for session in self._sessions:
            session.cur.close()
        self._db.close()

    def __enter__(self) -> "Prechecker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _statement(self, rules: tuple[str, ...], kind: str) -> tuple[duckdb.Statement, dict[str, Any] | None]:
        """A statement over a visit, parsed, built once per set of rules and kept.

        ``probe``: one row, a column per rule (:func:`_probe_select`), headed by the claim views the
        rules read. ``hits``: the hit rows (:func:`hit_select`) of rows an earlier probe found, passed
        back as parameters ``$<rule id>__rows``; it reads no table.
        """
        key = (rules, kind)
        found = self._statements.get(key)
        if found is None:
            if kind == "probe":
                parts = [self._probe[r] for r in rules]
                sql = _with_views("SELECT " + ",\n".join(expr for expr, _ in parts))
                params = {k: v for _, p in parts for k, v in p.items()} or None
            else:
                sql = "\nUNION ALL\n".join(f"SELECT * FROM ({self._select[r]})" for r in rules)
                params = None
            (statement,) = duckdb.extract_statements(sql)
            if len(self._statements) > _MAX_STATEMENTS:  # many rule sets seen: start afresh
                self._statements.clear()
            found = self._statements[key] = (statement, params)
        return found


class _Session:
    """One connection of a :class:`Prechecker`, used by one call at a time.

    The contract tables are temp views over the store (the person's history, found through the session
    variable ``precheck_visit``) and over the visit (Arrow tables in :class:`_Part` holders registered
    once: a call only swaps their table); the rule window is a view over the same variable; the
    reference views of ``_base.sql`` are computed once into temp tables.
    """

    def __init__(self, cur: duckdb.DuckDBPyConnection, checker: Prechecker):
        self.cur, self.checker = cur, checker
        cur.execute("SET enable_progress_bar = false")
        cur.execute(f"SET VARIABLE {_VAR} = {_VAR_STRUCT}", _EMPTY_KEY)
        self.parts = {table: _Part(_arrow(table, [])) for table in _VISIT_PARTS}
        for table, part in self.parts.items():
            cur.register(f"_visit_{table}", part)
        for table, source in _contract_sources().items():
            cur.execute(f"CREATE TEMP VIEW {table} AS {source}")
        prepare_session(cur, checker.config, since=ALL_TIME, history_from=ALL_TIME)
        # the rule window follows the visit: since = its settlement time, history back to the look-back
        cur.execute("DROP TABLE rule_window")
        cur.execute(f"CREATE TEMP VIEW rule_window AS SELECT getvariable('{_VAR}').until AS since, "
                    f"getvariable('{_VAR}').history_from AS history_from")
        for name, select in base_statements():
            if name in _STATIC_VIEWS:  # reference data only: computed once
                cur.execute(f"DROP VIEW {name}")
                cur.execute(f"CREATE TEMP TABLE {name} AS {select}")
            elif name in _REGION_VIEWS:  # the table computed over the whole warehouse (_load_region_views)
                cur.execute(f"DROP VIEW {name}")

    def run(self, visit: Visit, rules: tuple[str, ...]) -> list[tuple]:
        cur, checker = self.cur, self.checker
        until = visit.setl.setl_time
        for table, arrow in visit.tables().items():
            self.parts[table].table = arrow
        try:
            cur.execute(f"SET VARIABLE {_VAR} = {_VAR_STRUCT}", {
                "psn": visit.setl.psn_no, "setl": visit.setl.setl_id, "mdtrt": visit.setl.mdtrt_id,
                "until": until, "history_from": until - timedelta(days=checker.lookback_days)})
            statement, params = checker._statement(rules, "probe")
            (row,) = cur.execute(statement, params).fetchall()
            found = {rule_id: rows for rule_id, rows in zip(rules, row) if rows}
            if not found:
                return []
            statement, _ = checker._statement(tuple(found), "hits")
            return cur.execute(statement, {f"{r}__rows": rows for r, rows in found.items()}).fetchall()
        finally:
            for part in self.parts.values():
                part.table = part.empty


class _Part:
    """A visit part (Arrow table) as DuckDB reads it: through the Arrow stream interface, so the holder is
    registered once per session and each call only swaps the table inside."""

    def __init__(self, empty: pa.Table):
        self.empty = self.table = empty

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        return self.table.__arrow_c_stream__(requested_schema)

    def __arrow_c_schema__(self) -> Any:
        return self.empty.schema.__arrow_c_schema__()


@dataclass(frozen=True)
class _GateInput:
    """What the gates read: the visit, whether the register has a death date, and the person's
    settlements of the med_types some gate asks about (``(setl_time, med_type)``, oldest first)."""

    visit: Visit
    died: bool
    history: tuple[tuple[datetime, str], ...]
    history_from: datetime
    until: datetime

    def had(self, med_types: frozenset[str]) -> bool:
        """A settlement of one of *med_types* in [history_from, until): as the history the SQL reads."""
        i = bisect.bisect_left(self.history, (self.history_from, ""))
        return any(m in med_types for t, m in self.history[i:] if t < self.until)


def _load_store(db: duckdb.DuckDBPyConnection, warehouse: Path, since: date | datetime | None,
                store_path: Path | None) -> str:
    """Copy the history store and the reference tables from *warehouse* into *db*; the pack version.

    The claim tables go to the database ``store``: in memory by default (fastest; on ``city`` ~4.4 GiB),
    or the DuckDB file *store_path*, rewritten (compressed: ~0.6 GiB on disk and a bounded buffer pool
    for ``city``, each lookup ~0.5 ms slower).
    """
    if store_path is None:
        db.execute("ATTACH ':memory:' AS store")
    else:
        Path(store_path).unlink(missing_ok=True)
        Path(f"{store_path}.wal").unlink(missing_ok=True)
        db.execute(f"ATTACH '{_sql_path(Path(store_path))}' AS store")
    db.execute(f"ATTACH '{_sql_path(warehouse)}' AS wh (READ_ONLY)")
    try:
        have = {t for (t,) in db.execute("SELECT table_name FROM duckdb_tables() WHERE database_name = 'wh'")
                .fetchall()}
        missing = [t for t in (*_HISTORY, "fixmedins", "hilist") if t not in have]
        if missing:
            raise FileNotFoundError(f"{warehouse}: no table {', '.join(missing)}; run `yibao ingest` first")
        # settlements from `since` on, and what belongs to them; every person of the register
        keep = {"setl_d": "WHERE setl_time >= $since",
                "mdtrt_d": "WHERE mdtrt_id IN (SELECT mdtrt_id FROM store.hist_setl_d)",
                "fee_list_d": "WHERE setl_id IN (SELECT setl_id FROM store.hist_setl_d)",
                "setl_list_diag_d": "WHERE setl_id IN (SELECT setl_id FROM store.hist_setl_d)",
                "psn_info": ""} if since is not None else dict.fromkeys(_HISTORY, "")
        # the exact birth dates are the identity vault's (the warehouse keeps the birth year): read-only
        birth_dates_view(db, database="wh", vault=identity_vault_path(warehouse), name="wh_birth")
        for table in _HISTORY:
            columns = ", ".join(_store_column(f) for f in TABLES[table].fields)
            birth = "LEFT JOIN wh_birth b ON b.psn_no = w.psn_no" if table == "psn_info" else ""
            db.execute(f"CREATE TABLE store.hist_{table} AS SELECT hash(w.psn_no) AS _psn_key, {columns} "
                       f"FROM wh.{table} w {birth} {keep[table]} ORDER BY _psn_key",
                       {"since": since} if "$since" in keep[table] else None)
        for table in ("fixmedins", "hilist"):
            db.execute(f"CREATE TABLE {table} AS SELECT * FROM wh.{table}")
        _load_region_views(db, have)
        if "rule_exemptions" in have:
            db.execute("CREATE TABLE rule_exemptions AS SELECT * FROM wh.rule_exemptions")
    finally:
        db.execute("DROP VIEW IF EXISTS wh_birth")
        db.execute(f"DETACH DATABASE IF EXISTS {VAULT_ALIAS}")
        db.execute("DETACH wh")
    return store_pack(db)


def _load_region_views(db: duckdb.DuckDBPyConnection, have: set[str]) -> None:
    """The :data:`_REGION_VIEWS` as tables of *db*, computed by their ``_base.sql`` SELECT over the attached
    warehouse ``wh``; ``stock_moves`` is copied too (the sessions' base views bind to it), empty when the
    warehouse has no stock records."""
    if "stock_moves" in have:
        db.execute("CREATE TABLE stock_moves AS SELECT * FROM wh.stock_moves")
    else:
        db.execute("CREATE TABLE stock_moves ("
                   + ", ".join(f"{f.name} {f.sql_type}" for f in TABLES["stock_moves"].fields) + ")")
    selects = dict(base_statements())
    db.execute("SET search_path = 'wh.main,memory.main'")  # the contract tables by their names
    try:
        db.execute(f"CREATE OR REPLACE TEMP VIEW refunded_setl AS {selects['refunded_setl']}")
        for name in sorted(_REGION_VIEWS):
            db.execute(f"CREATE TABLE memory.main.{name} AS {selects[name]}")
    finally:
        db.execute("RESET search_path")
        db.execute("DROP VIEW IF EXISTS refunded_setl")


def _store_column(f) -> str:
    """SQL (over the warehouse row ``w`` and the vault's birth date ``b``) of contract field ``f`` in the
    history store: as the warehouse keeps it; the exact value from the vault for a field the warehouse
    coarsens and the vault keeps (``Field.vault``: the birth date); NULL for one nobody keeps
    (``setl_d.brdy``, ``setl_d.age``: the rules read the person's)."""
    if f.coarse is None:
        return f"w.{f.name}"
    if f.vault:
        return f"b.{f.name} AS {f.name}"
    return f"CAST(NULL AS {f.sql_type}) AS {f.name}"


def _history_index(db: duckdb.DuckDBPyConnection, rules, config: RuleConfig) -> dict[str, tuple]:
    """Per person, the settlements whose med_type some ``history_med_type`` gate asks about."""
    wanted = set().union(*(_med_types(r.precheck_when["history_med_type"], config)
                           for r in rules if "history_med_type" in r.precheck_when))
    out: dict[str, list] = {}
    if wanted:
        for psn, t, m in db.execute("SELECT psn_no, setl_time, med_type FROM store.hist_setl_d WHERE "
                                    "list_contains($m, med_type) ORDER BY psn_no, setl_time, med_type",
                                    {"m": sorted(wanted)}).fetchall():
            out.setdefault(psn, []).append((t, m))
    return {psn: tuple(v) for psn, v in out.items()}


def _contract_sources() -> dict[str, str]:
    """The SELECT behind each contract table in a session: the person's history in the store, plus the
    visit's own rows for the claim tables."""
    out = {}
    for table, where in _HISTORY.items():
        columns = ", ".join(f.name for f in TABLES[table].fields)
        source = f"SELECT {columns} FROM store.hist_{table} WHERE {_KEY_MATCH} AND {where}"
        if table in _VISIT_PARTS:
            source = f"({source}) UNION ALL (SELECT {columns} FROM _visit_{table})"
        out[table] = source
    # the exact birth date, as the batch run reads it from the vault (models/rules/sql/_base.sql, person)
    out[BIRTH_DATES] = f"SELECT psn_no, brdy FROM store.hist_psn_info WHERE {_KEY_MATCH}"
    return out


def _with_views(body: str) -> str:
    """*body* headed by the per-visit views it reads (directly or through another), as CTEs."""
    sources = [*_contract_sources().items(),
               *((n, s) for n, s in base_statements() if n not in _STATIC_VIEWS and n not in _REGION_VIEWS)]
    needed: set[str] = set()
    text = body
    for name, select in reversed(sources):  # dependency order reversed: readers before what they read
        if re.search(rf"\b{name}\b", text):
            needed.add(name)
            text += "\n" + select
    ctes = [f"{name} AS MATERIALIZED ({select})" for name, select in sources if name in needed]
    return ("WITH " + ",\n".join(ctes) + "\n" if ctes else "") + body


def _probe_select(rule) -> tuple[str, dict[str, Any]]:
    """The rule's own SQL as one column named by the rule id: the list of the rows it returns (their
    :data:`RULE_OUTPUT` columns; NULL when none), typed as the rule's SQL types them."""
    body, params = rule_body(rule)
    fields = ", ".join(f"{_lit(name)}: {_PROBE_CAST.get(name, 'h.' + name)}" for name in RULE_OUTPUT)
    return f"(SELECT list({{{fields}}}) FROM (\n{body}\n) h) AS {rule.id}", params


def _med_types(value: Any, config: RuleConfig) -> frozenset[str]:
    classes = {"inpatient": config.inpatient_med_types, "emergency": config.emergency_med_types}
    return frozenset(classes[value] if isinstance(value, str) else value)


def _gate(rule, config: RuleConfig, db: duckdb.DuckDBPyConnection) -> Callable[[_GateInput], bool]:
    """The rule's ``precheck_when`` as a test of a :class:`_GateInput` (no conditions: always true)."""
    when = rule.precheck_when
    tests: list[Callable[[_GateInput], bool]] = []
    if "med_type" in when:
        allowed = _med_types(when["med_type"], config)
        tests.append(lambda g: g.visit.setl.med_type in allowed)
    if "med_type_not" in when:
        barred = _med_types(when["med_type_not"], config)
        tests.append(lambda g: g.visit.setl.med_type not in barred)
    if "diag_prefix" in when:
        prefixes = tuple(when["diag_prefix"])
        tests.append(lambda g: any(d.diag_code.startswith(prefixes) for d in g.visit.diagnoses))
    if "person_died" in when:
        tests.append(lambda g: g.died)
    if "history_med_type" in when:
        earlier = _med_types(when["history_med_type"], config)
        tests.append(lambda g: g.had(earlier))
    line_tests: list[Callable[[Any], bool]] = []
    cond = when.get("line", {})
    if "in_pack" in cond:
        kinds = list(cond["in_pack"])
        known = {k for (k,) in db.execute("SELECT DISTINCT rule_kind FROM rule_pack").fetchall()}
        if unknown := sorted(set(kinds) - known):
            raise RuleConfigError(config.path, f"no 两库 pack rows of kind {', '.join(unknown)} (kinds: "
                                  f"{', '.join(sorted(known))})", rule_id=rule.id,
                                  field="precheck_when.line.in_pack", line=rule.line)
        codes = frozenset(c for (c,) in db.execute(
            "SELECT hilist_code FROM rule_pack WHERE list_contains($k, rule_kind) UNION "
            "SELECT related_code FROM rule_pack WHERE list_contains($k, rule_kind) AND related_code IS NOT NULL",
            {"k": kinds}).fetchall())
        line_tests.append(lambda ln: ln.hilist_code in codes)
    if "list_type" in cond:
        list_types = frozenset(cond["list_type"])
        line_tests.append(lambda ln: ln.list_type in list_types)
    if "prd_days_over" in cond:
        floor = cond["prd_days_over"]
        line_tests.append(lambda ln: ln.prd_days is not None and ln.prd_days > floor)
    if "price_cap" in cond:
        capped = frozenset(c for (c,) in db.execute(
            "SELECT hilist_code FROM hilist WHERE pric_uplmt_amt IS NOT NULL").fetchall())
        line_tests.append(lambda ln: ln.pric_uplmt_amt is not None or ln.hilist_code in capped)

    def lines(g: _GateInput) -> Any:
        return (ln for ln in g.visit.lines if all(t(ln) for t in line_tests))

    if line_tests:
        tests.append(lambda g: any(True for _ in lines(g)))
    if "prd_days_total" in when:  # positive days supply only: a negative one cannot lower the bound
        least = when["prd_days_total"]
        tests.append(lambda g: sum(ln.prd_days for ln in lines(g) if ln.prd_days and ln.prd_days > 0) >= least)
    return lambda g: all(t(g) for t in tests)


# The visit key every contract view filters the store by (a session variable, set once per call).
_VAR = "precheck_visit"
_VAR_STRUCT = ("{'key': hash($psn::VARCHAR), 'psn': $psn::VARCHAR, 'setl': $setl::VARCHAR, "
               "'mdtrt': $mdtrt::VARCHAR, 'until': $until::TIMESTAMP, 'history_from': $history_from::TIMESTAMP}")
_EMPTY_KEY = {"psn": None, "setl": None, "mdtrt": None, "until": None, "history_from": None}
_KEY_MATCH = f"_psn_key = getvariable('{_VAR}').key AND psn_no = getvariable('{_VAR}').psn"
# The person's history in the store: settlements of the look-back before the visit, the visit's own left
# out (it comes from the visit). Lines, diagnoses and visit rows of settlements outside the window are
# harmless: every rule view joins them through claim_setl.
_HISTORY = {
    "setl_d": f"setl_time >= getvariable('{_VAR}').history_from AND setl_time < getvariable('{_VAR}').until "
              f"AND setl_id <> getvariable('{_VAR}').setl",
    "mdtrt_d": f"mdtrt_id <> getvariable('{_VAR}').mdtrt",
    "fee_list_d": f"setl_id <> getvariable('{_VAR}').setl",
    "setl_list_diag_d": f"setl_id <> getvariable('{_VAR}').setl",
    "psn_info": "true",
}
_VISIT_PARTS = ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d")
# Base views over reference data only: computed once per session.
_STATIC_VIEWS = frozenset({"hosp_level_code", "med_type_class", "institution", "catalogue"})
# Base views over an institution's claims of a whole month, not one person's (stock_backing: the 进销存
# behind a month's sales): computed once at start-up over the whole warehouse, like the batch run.
_REGION_VIEWS = frozenset({"stock_backing"})
# Optimisers that cost more planning time than they save on a few hundred rows (the precheck database only).
_DISABLED_OPTIMIZERS = "join_order,join_filter_pushdown"
_MAX_STATEMENTS = 4096
# How the probe keeps the columns the hit SELECT casts anyway (a NULL-typed column would not round-trip).
_PROBE_CAST = {name: f"CAST(h.{name} AS VARCHAR)" for name in ("setl_id", "mdtrt_id", "psn_no", "fixmedins_code",
                                                               "prac_code")}


_CHECKERS: dict[tuple, Prechecker] = {}
_CHECKERS_LOCK = threading.Lock()


@atexit.register
def _close_checkers() -> None:
    """Free the checkers :func:`precheck` kept (before the interpreter tears DuckDB down)."""
    with _CHECKERS_LOCK:
        for checker in _CHECKERS.values():
            checker.close()
        _CHECKERS.clear()


def precheck(visit: Visit | Mapping[str, Any], *, warehouse: Path, lookback_days: int | None = DEFAULT_LOOKBACK_DAYS,
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


_DEFAULT_CODES = {kind: CodeMap(kind) for kind in ("list", "icd", "plain")}


def _parse(cls, table: str, raw: Mapping[str, Any], where: str, codes: Mapping[str, CodeMap]):
    values = {}
    for f in TABLES[table].fields:
        value = raw.get(f.name)
        blank = value is None or (isinstance(value, str) and not value.strip())
        values[f.name] = None if blank else _value(value, f.kind, f"{where}.{f.name}")
        if f.canonical and values[f.name] is not None:
            values[f.name] = codes[f.canonical](values[f.name])
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
    return pa.Table.from_pydict({f.name: [getattr(r, f.name, None) for r in records] for f in spec.fields},
                                schema=schema)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

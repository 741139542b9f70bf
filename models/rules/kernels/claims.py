"""The shared claim views of ``sql/_base.sql`` for one visit and the person's history, in Python.

What the SQL path computes per visit as CTEs (``claim_setl``, ``claim_line``, ``claim_mdtrt``,
``claim_diag``, ``person`` and the raw visit rows), :class:`Claims` computes from the visit and the
person's rows of the :class:`~models.rules.history.HistoryIndex`, with the same scope:

* history = settlements of the look-back before the visit (``history_from <= setl_time < until``), the
  visit's own settlement left out of it; their lines and diagnoses; every visit row of the person but the
  visit's own; the person's register row — plus the visit itself (settlement, visit row, lines, diagnoses);
* a refund (``refd_setl_flag = '1'``) and the settlement it cancels (``init_setl_id``) are left out;
* ``in_scope`` = settlement time at or after the visit's (``rule_window.since``): only the visit's own.

Each view is computed on first use (a kernel that reads only the visit's lines never converts the
history's lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING

from models.rules.history import HistoryIndex
from models.rules.kernels.lookups import Lookups

if TYPE_CHECKING:  # precheck imports the kernels
    from models.rules.precheck import Visit

__all__ = ["Claims", "ClaimSetl", "ClaimLine", "ClaimMdtrt", "ClaimDiag", "Person"]


@dataclass(frozen=True, slots=True)
class ClaimSetl:
    """A settlement that counts (``claim_setl``)."""

    setl_id: str
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    med_type: str | None
    insutype: str | None
    setl_time: datetime
    medfee_sumamt: Decimal | None
    fund_pay_sumamt: Decimal | None
    hifp_pay: Decimal | None
    begndate: date | None
    enddate: date | None
    hosp_level: int | None
    fixmedins_type: str | None
    care_class: str
    in_scope: bool


@dataclass(frozen=True, slots=True)
class ClaimLine:
    """A fee line of a settlement that counts (``claim_line``), with its settlement (``setl``)."""

    bkkp_sn: str
    setl_id: str
    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    fee_ocur_time: datetime
    hilist_code: str
    hilist_name: str
    list_type: str | None
    med_chrgitm_type: str | None
    cnt: float
    pric: Decimal
    det_item_fee_sumamt: Decimal
    pric_uplmt_amt: Decimal | None
    bilg_dr_code: str | None
    prd_days: float | None
    setl: ClaimSetl

    @property
    def fee_date(self) -> date:
        return self.fee_ocur_time.date()


@dataclass(frozen=True, slots=True)
class ClaimMdtrt:
    """A visit with a settlement that counts (``claim_mdtrt``)."""

    mdtrt_id: str
    psn_no: str
    fixmedins_code: str
    med_type: str | None
    begntime: datetime
    endtime: datetime
    main_diag: str | None
    chfpdr_code: str | None
    setl_id: str
    setl_time: datetime
    in_scope: bool
    medfee_sumamt: Decimal | None
    care_class: str
    fixmedins_type: str | None
    n_setl: int

    @property
    def begin_date(self) -> date:
        return self.begntime.date()

    @property
    def end_date(self) -> date:
        return self.endtime.date()


@dataclass(frozen=True, slots=True)
class ClaimDiag:
    """A diagnosis of a settlement that counts (``claim_diag``)."""

    setl_id: str
    mdtrt_id: str
    maindiag_flag: str
    diag_code: str
    diag_name: str | None
    in_scope: bool


@dataclass(frozen=True, slots=True)
class Person:
    """The person's register row (``person``): sex, birth date, death date."""

    gend: str | None
    brdy: date | None
    die_date: date | None


@dataclass(frozen=True, slots=True)
class RawMdtrt:
    """A visit row as the contract table holds it (``mdtrt_d``: the rules that LEFT JOIN it)."""

    mdtrt_id: str
    fixmedins_code: str
    med_type: str | None
    begntime: datetime | None
    endtime: datetime | None
    dscg_maindiag_code: str | None
    chfpdr_code: str | None


class Claims:
    """The claim views of one visit (see the module docstring); views are computed on first use."""

    def __init__(self, visit: "Visit", history: HistoryIndex, lookups: Lookups, *, lookback_days: int):
        self.visit, self.history, self.lookups = visit, history, lookups
        self.psn_no: str = visit.setl.psn_no
        self.until: datetime = visit.setl.setl_time
        self.history_from: datetime = self.until - timedelta(days=lookback_days)

    # -- the raw contract rows ------------------------------------------------------------------

    @cached_property
    def raw_setls(self) -> list[tuple]:
        """``setl_d``: the window's history settlements (index columns) and the visit's, last."""
        s = self.visit.setl
        own = (s.setl_id, s.mdtrt_id, s.fixmedins_code, s.med_type, s.insutype, s.setl_time, s.medfee_sumamt,
               s.fund_pay_sumamt, s.hifp_pay, s.begndate, s.enddate, s.hosp_lv, s.refd_setl_flag, s.init_setl_id)
        rows = [r for r in self.history.rows("setl_d", self.psn_no, since=self.history_from, until=self.until)
                if r[0] != s.setl_id]
        rows.append(own)
        return rows

    @cached_property
    def raw_mdtrts(self) -> dict[str, RawMdtrt]:
        """``mdtrt_d`` by mdtrt_id: every visit row of the person but the visit's own, and the visit's."""
        m = self.visit.mdtrt
        out = {r[0]: RawMdtrt(*r) for r in self.history.rows("mdtrt_d", self.psn_no) if r[0] != m.mdtrt_id}
        out[m.mdtrt_id] = RawMdtrt(m.mdtrt_id, m.fixmedins_code, m.med_type, m.begntime, m.endtime,
                                   m.dscg_maindiag_code, m.chfpdr_code)
        return out

    @cached_property
    def person(self) -> Person | None:
        rows = self.history.rows("psn_info", self.psn_no)
        return Person(*rows[0]) if rows else None

    # -- the claim views -----------------------------------------------------------------------

    @cached_property
    def setls(self) -> dict[str, ClaimSetl]:
        """``claim_setl`` by setl_id."""
        raw = self.raw_setls
        refunded = {r[0] for r in raw if r[12] == "1"} | {r[13] for r in raw if r[12] == "1" and r[13] is not None}
        lk = self.lookups
        out = {}
        for (setl_id, mdtrt_id, fix, med_type, insutype, setl_time, medfee, fund, hifp, begn, end, hosp_lv,
             _flag, _init) in raw:
            if setl_id in refunded or setl_time is None or setl_time < self.history_from:
                continue
            inst = lk.institutions.get(fix)
            level = inst[0] if inst is not None and inst[0] is not None else lk.hosp_level.get(hosp_lv)
            out[setl_id] = ClaimSetl(setl_id, mdtrt_id, self.psn_no, fix, med_type, insutype, setl_time, medfee,
                                     fund, hifp, begn, end, level, inst[1] if inst is not None else None,
                                     lk.care_class.get(med_type, "outpatient"), setl_time >= self.until)
        return out

    @cached_property
    def scope(self) -> ClaimSetl | None:
        """The visit's settlement when it counts (not a refund, not refunded): the only one in scope."""
        s = self.setls.get(self.visit.setl.setl_id)
        return s if s is not None and s.in_scope else None

    @cached_property
    def visit_lines(self) -> list[ClaimLine]:
        """The in-scope lines: the visit's own, when its settlement counts."""
        s = self.scope
        if s is None:
            return []
        return [ClaimLine(ln.bkkp_sn, ln.setl_id, ln.mdtrt_id, ln.psn_no, ln.fixmedins_code, ln.fee_ocur_time,
                          ln.hilist_code, ln.hilist_name, ln.list_type, ln.med_chrgitm_type, ln.cnt, ln.pric,
                          ln.det_item_fee_sumamt, ln.pric_uplmt_amt, ln.bilg_dr_code, ln.prd_days, s)
                for ln in self.visit.lines]

    @cached_property
    def lines(self) -> list[ClaimLine]:
        """``claim_line``: the history's lines of settlements that count, then the visit's."""
        setls, own = self.setls, self.visit.setl.setl_id
        out = []
        for r in self.history.rows("fee_list_d", self.psn_no, since=self.history_from, until=self.until):
            s = setls.get(r[1])
            if s is not None and r[1] != own:
                out.append(ClaimLine(r[0], r[1], r[2], self.psn_no, *r[3:], s))
        out.extend(self.visit_lines)
        return out

    @cached_property
    def diags(self) -> list[ClaimDiag]:
        """``claim_diag``."""
        setls, own = self.setls, self.visit.setl.setl_id
        rows = [r for r in self.history.rows("setl_list_diag_d", self.psn_no, since=self.history_from,
                                             until=self.until) if r[0] != own]
        rows += [(d.setl_id, d.mdtrt_id, d.maindiag_flag, d.diag_code, d.diag_name) for d in self.visit.diagnoses]
        return [ClaimDiag(*r, setls[r[0]].in_scope) for r in rows if r[0] in setls]

    @cached_property
    def mdtrts(self) -> dict[str, ClaimMdtrt]:
        """``claim_mdtrt`` by mdtrt_id: visit rows with a settlement that counts, their settlements summed."""
        main: dict[str, str] = {}
        rows_per_setl: dict[str, int] = {}  # the SQL LEFT JOINs the main diagnoses before it sums
        for setl_id, code in self.raw_setl_diags_main():
            rows_per_setl[setl_id] = rows_per_setl.get(setl_id, 0) + 1
            if setl_id not in main or code < main[setl_id]:
                main[setl_id] = code
        by_mdtrt: dict[str, list[ClaimSetl]] = {}
        for s in self.setls.values():
            by_mdtrt.setdefault(s.mdtrt_id, []).append(s)
        out = {}
        raw = self.raw_mdtrts
        for mdtrt_id, setls in by_mdtrt.items():
            m = raw.get(mdtrt_id)
            if m is None:
                continue
            last = max(setls, key=lambda s: s.setl_time)
            diag = min((main[s.setl_id] for s in setls if s.setl_id in main), default=None)
            weight = {s.setl_id: rows_per_setl.get(s.setl_id, 1) for s in setls}
            amounts = [s.medfee_sumamt * weight[s.setl_id] for s in setls if s.medfee_sumamt is not None]
            out[mdtrt_id] = ClaimMdtrt(
                mdtrt_id, self.psn_no, m.fixmedins_code, m.med_type, m.begntime, m.endtime,
                m.dscg_maindiag_code if m.dscg_maindiag_code is not None else diag, m.chfpdr_code,
                last.setl_id, last.setl_time, any(s.in_scope for s in setls),
                sum(amounts, Decimal("0.00")) if amounts else None, setls[0].care_class, setls[0].fixmedins_type,
                sum(weight.values()))
        return out

    def raw_setl_diags_main(self) -> list[tuple[str, str]]:
        """(setl_id, diag_code) of the main diagnoses (``maindiag_flag = '1'``) of the window's settlements."""
        return [(d.setl_id, d.diag_code) for d in self.diags if d.maindiag_flag == "1"]

    def lines_of_setl(self, setl_id: str) -> list[ClaimLine]:
        if setl_id == self.visit.setl.setl_id:
            return self.visit_lines
        return [ln for ln in self.lines if ln.setl_id == setl_id]

    def lines_of_mdtrt(self, mdtrt_id: str) -> list[ClaimLine]:
        return [ln for ln in self.lines if ln.mdtrt_id == mdtrt_id]

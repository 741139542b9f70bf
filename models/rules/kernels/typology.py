"""Kernels of the typology rules (architecture.md): price cap, death, split admission, bed hold, card
theft, over-prescription, third-party liability — one function per ``sql/<rule id>.sql``, which remains
the reference (``tests/models/test_rules_kernels.py`` checks each kernel against it)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from models.rules.kernels.claims import ClaimLine, Claims, ClaimSetl
from models.rules.kernels.duck import cents, contains, duck_round, sql_min
from models.rules.kernels.hits import RuleRow, line_row
from models.rules.kernels.registry import kernel

__all__: list[str] = []  # the kernels register themselves (registry.KERNELS)

_CARE_ITEM_TYPES = frozenset({"03", "04", "05", "06"})  # exams, labs, treatments, operations (+ drugs 101)


@kernel("price_over_cap")
def price_over_cap(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``price_over_cap.sql``: a line priced above the catalogue cap (else its own) by more than the tolerance."""
    tolerance = params["tolerance_yuan"]
    catalogue = c.lookups.catalogue
    out = []
    for ln in c.visit_lines:
        if not ln.cnt > 0:
            continue
        listed = catalogue.get(ln.hilist_code)
        cap = listed[0] if listed is not None and listed[0] is not None else ln.pric_uplmt_amt
        if cap is None:
            continue
        over = (float(ln.pric) > float(cap) + tolerance if isinstance(tolerance, float)
                else ln.pric > cap + Decimal(tolerance))
        if over:
            out.append(line_row(ln, {
                "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "pric": ln.pric, "cap": cap,
                "excess": cents(duck_round(float(ln.pric - cap) * ln.cnt, 2))}))
    return out


@kernel("dead_person")
def dead_person(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``dead_person.sql``: care beginning more than ``grace_days`` after the register's death date."""
    s = c.scope
    if s is None or c.person is None or c.person.die_date is None:
        return []
    m = c.raw_mdtrts.get(s.mdtrt_id)
    care_date = _care_date(s, m, use_begndate=True)
    die = c.person.die_date
    if not care_date > die + timedelta(days=params["grace_days"]):
        return []
    return [_setl_row(c, s, m.chfpdr_code if m is not None else None, {
        "die_date": die.isoformat(), "care_date": care_date.isoformat(),
        "days_after_death": (care_date - die).days})]


@kernel("third_party_liability")
def third_party_liability(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``third_party_liability.sql``: an injury whose external cause is a traffic accident or a work injury
    (Y96, or an industrial-area place / work activity character of a W00-Y34 cause), paid by the fund."""
    s = c.scope
    if s is None:
        return []
    diags = [d for d in c.diags if d.setl_id == s.setl_id]
    injury = sql_min(d.diag_code for d in diags if d.in_scope and d.maindiag_flag == "1"
                  and d.diag_code[:1] in params["injury_prefixes"])
    if injury is None:
        return []
    causes = [(d, _starts(d.diag_code, params["traffic_cause_prefixes"]), _work_cause(d.diag_code, params))
              for d in diags]
    causes = [x for x in causes if x[1] or x[2]]
    if not causes:
        return []
    paid = next((v for v in (s.hifp_pay, s.fund_pay_sumamt, s.medfee_sumamt) if v is not None), None)
    if paid is None or not paid > 0:
        return []
    traffic, work = any(x[1] for x in causes), any(x[2] for x in causes)
    named = [(d.diag_code, d.diag_name) for d, _, _ in causes if d.diag_name is not None]
    m = c.raw_mdtrts.get(s.mdtrt_id)
    return [_setl_row(c, s, m.chfpdr_code if m is not None else None, {
        "injury_code": injury, "cause_code": min(d.diag_code for d, _, _ in causes),
        "cause_name": min(named)[1] if named else None,
        "liable_zh": "工伤保险或交通事故责任方" if traffic and work else "交通事故责任方" if traffic else "工伤保险",
        "fund_paid": s.hifp_pay})]


@kernel("split_admission")
def split_admission(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``split_admission.sql``: a readmission within ``max_gap_days`` of the previous discharge (same
    institution when ``same_institution``), related main diagnosis, not planned care (its main diagnosis
    does not start with one of ``planned_care_prefixes``)."""
    stays = [m for m in c.mdtrts.values() if m.care_class == "inpatient"]
    if not any(m.in_scope for m in stays):
        return []
    same_place = params["same_institution"]
    stays.sort(key=lambda m: (m.fixmedins_code if same_place else "", m.begntime, m.mdtrt_id))
    relation = params["related_diagnosis"]
    out = []
    for prev, r in zip(stays, stays[1:]):
        if same_place and prev.fixmedins_code != r.fixmedins_code:
            continue
        if not r.in_scope or not r.begntime >= prev.endtime:
            continue
        gap = (r.begin_date - prev.end_date).days
        if gap > params["max_gap_days"] or not _related(relation, r.main_diag, prev.main_diag):
            continue
        if r.main_diag is not None and _starts(r.main_diag, params["planned_care_prefixes"]):
            continue  # planned care: the next step of a treatment plan
        lines = c.lines_of_mdtrt(r.mdtrt_id)
        out.append(RuleRow(
            "mdtrt", r.mdtrt_id, r.setl_id, r.mdtrt_id, r.psn_no, r.fixmedins_code, r.chfpdr_code,
            tuple(sorted(ln.bkkp_sn for ln in lines)), _amount(lines, r.medfee_sumamt), r.setl_time,
            {"prev_mdtrt_id": prev.mdtrt_id, "prev_discharge": prev.end_date.isoformat(),
             "readmitted": r.begin_date.isoformat(), "gap_days": gap, "main_diag": r.main_diag,
             "prev_diag": prev.main_diag}))
    return out


@kernel("bed_hold")
def bed_hold(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``bed_hold.sql``: a stay with a settlement elsewhere on a day strictly inside it and fewer than
    ``max_care_lines_per_day`` care lines per day."""
    out = []
    for st in c.mdtrts.values():
        if st.care_class != "inpatient" or not st.in_scope or (st.end_date - st.begin_date).days < 2:
            continue
        active = [(a, day) for a, day in _activity(c)
                  if a.psn_no == st.psn_no and a.mdtrt_id != st.mdtrt_id and a.fixmedins_code != st.fixmedins_code
                  and st.begin_date < day < st.end_date]
        if not active:
            continue
        days = (st.end_date - st.begin_date).days
        lines = c.lines_of_mdtrt(st.mdtrt_id)
        care = _care_lines(lines)
        if not care / days < params["max_care_lines_per_day"]:
            continue
        active.sort(key=lambda x: (x[1], x[0].setl_id))
        out.append(RuleRow(
            "mdtrt", st.mdtrt_id, st.setl_id, st.mdtrt_id, st.psn_no, st.fixmedins_code, st.chfpdr_code,
            tuple(sorted(ln.bkkp_sn for ln in lines)), _amount(lines, st.medfee_sumamt), st.setl_time,
            {"admitted": st.begin_date.isoformat(), "discharged": st.end_date.isoformat(), "stay_days": days,
             "care_lines_per_day": duck_round(care / days, 2), "active_days": len({d for _, d in active}),
             "elsewhere": [a.setl_id for a, _ in active],
             "elsewhere_fixmedins": sorted({a.fixmedins_code for a, _ in active})}))
    return out


@kernel("card_theft")
def card_theft(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``card_theft.sql``: a purchase on a day the card holder lies in hospital elsewhere (the first such
    stay), and that stay shows normal care (at least ``min_care_lines_per_day``)."""
    p = c.scope
    if p is None or not contains(params["purchase_med_types"], p.med_type):
        return []
    day = _care_date(p, c.raw_mdtrts.get(p.mdtrt_id), use_begndate=False)
    stays = sorted((st for st in c.mdtrts.values()
                    if st.care_class == "inpatient" and (st.end_date - st.begin_date).days >= 2
                    and st.psn_no == p.psn_no and st.fixmedins_code != p.fixmedins_code
                    and st.begin_date < day < st.end_date), key=lambda st: (st.begin_date, st.mdtrt_id))
    if not stays:
        return []
    st = stays[0]
    days = (st.end_date - st.begin_date).days
    care = _care_lines(c.lines_of_mdtrt(st.mdtrt_id))
    if not care / days >= params["min_care_lines_per_day"]:
        return []
    return [_setl_row(c, p, None, {
        "purchase_date": day.isoformat(), "stay_mdtrt_id": st.mdtrt_id, "stay_fixmedins_code": st.fixmedins_code,
        "admitted": st.begin_date.isoformat(), "discharged": st.end_date.isoformat(),
        "care_lines_per_day": duck_round(care / days, 2)})]


@kernel("over_prescription")
def over_prescription(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``over_prescription.sql``: per dispensing of the visit, the days supplied over the last
    ``window_days`` (every institution and pharmacy) against the days elapsed, beyond the tolerance, by at
    least ``min_excess_days``, over at least ``min_elapsed_days``, from ``min_prescribers`` prescribers."""
    own = [d for d in _dispensings(c, c.visit_lines, params) if d["in_scope"]]
    if not own:
        return []
    everything = _dispensings(c, c.lines, params)
    out = []
    for a in own:
        since = a["rx_date"] - timedelta(days=params["window_days"])
        window = [b for b in everything if b["psn_no"] == a["psn_no"] and b["drug"] == a["drug"]
                  and b["rx_date"] > since and (b["setl_time"] < a["setl_time"] or b["setl_id"] == a["setl_id"])]
        supplied = sum(b["supply_days"] for b in window)
        unbacked = sum(b["billed_days"] - b["supply_days"] for b in window)
        first = min(b["rx_date"] for b in window)
        elapsed = (a["rx_date"] - first).days + a["supply_days"]
        prescribers = len({b["fixmedins_code"] for b in window if b["prescriber"]})
        if not (supplied > (1 + params["tolerance"]) * elapsed and supplied - elapsed >= params["min_excess_days"]
                and elapsed >= params["min_elapsed_days"] and prescribers >= params["min_prescribers"]):
            continue
        out.append(RuleRow(
            "psn", a["psn_no"], a["setl_id"], a["mdtrt_id"], a["psn_no"], a["fixmedins_code"], a["prac_code"],
            tuple(a["lines"]), duck_round(float(a["amount"]) * (supplied - elapsed) / supplied, 2), a["setl_time"],
            {"drug": a["drug"], "hilist_name": a["hilist_name"], "rx_date": a["rx_date"].isoformat(),
             "supply_days": a["supply_days"], "window_from": first.isoformat(), "dispensings": len(window),
             "institutions": len({b["fixmedins_code"] for b in window}), "prescribers": prescribers,
             "window_supply_days": supplied, "elapsed_days": elapsed, "unbacked_days": unbacked,
             "supply_ratio": duck_round(supplied / elapsed, 2), "excess_days": duck_round(supplied - elapsed, 1)}))
    return out


# -- shared helpers -------------------------------------------------------------------------------

def _setl_row(c: Claims, s: ClaimSetl, prac_code: str | None, detail: dict[str, Any]) -> RuleRow:
    """A hit on a settlement: evidence and amount at risk = its lines (none: its total)."""
    lines = c.lines_of_setl(s.setl_id)
    return RuleRow("setl", s.setl_id, s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, prac_code,
                   tuple(sorted(ln.bkkp_sn for ln in lines)), _amount(lines, s.medfee_sumamt), s.setl_time, detail)


def _amount(lines: list[ClaimLine], otherwise: Decimal | None) -> Decimal | None:
    """``coalesce(sum(l.det_item_fee_sumamt), otherwise)``."""
    return sum((ln.det_item_fee_sumamt for ln in lines), Decimal("0.00")) if lines else otherwise


def _care_date(s: ClaimSetl, m: Any, *, use_begndate: bool) -> date:
    """The day care began: the visit row's begin time, (dead_person: else the settlement's begin date),
    else the settlement time."""
    if m is not None and m.begntime is not None:
        return m.begntime.date()
    if use_begndate and s.begndate is not None:
        return s.begndate
    return s.setl_time.date()


def _activity(c: Claims) -> list[tuple[ClaimSetl, date]]:
    """``bed_hold.sql`` activity: every settlement that counts and the day it was active."""
    raw = c.raw_mdtrts
    return [(s, _care_date(s, raw.get(s.mdtrt_id), use_begndate=False)) for s in c.setls.values()]


def _care_lines(lines: list[ClaimLine]) -> int:
    return sum(1 for ln in lines if ln.list_type == "101" or ln.med_chrgitm_type in _CARE_ITEM_TYPES)


def _related(relation: str, code: str | None, prev: str | None) -> bool:
    if relation == "code":
        return code is not None and prev is not None and code == prev
    if relation == "category":
        return code is not None and prev is not None and code[:3] == prev[:3]
    return True


def _starts(code: str, prefixes: Any) -> bool:
    """``list_bool_or(list_transform(prefixes, lambda p: starts_with(code, p)))``."""
    return any(code.startswith(p) for p in prefixes)


def _work_cause(code: str, params: dict[str, Any]) -> bool:
    """``third_party_liability.sql`` work: Y96, or a W00-Y34 cause whose place character (first after the
    dot) or activity character (second) marks work."""
    if _starts(code, params["work_cause_prefixes"]):
        return True
    if not _starts(code, params["place_coded_cause_prefixes"]) or code[3:4] != ".":
        return False
    place, activity = code[4:5], code[5:6]
    return (place != "" and place in params["work_place_characters"]) or (
        activity != "" and activity in params["work_activity_characters"])


def _dispensings(c: Claims, lines: list[ClaimLine], params: dict[str, Any]) -> list[dict]:
    """``over_prescription.sql`` dispensing: per person, drug and settlement, the lines of a drug taken home
    and paid by the fund, with their days supply (at most ``max_dispensing_days`` billed) and the part of it
    the institution's stock records back (``supply_days``: lines backed below ``min_backed_share``, see
    :func:`_backed`, left out; nothing left: the dispensing is left out); lines dispensed while the person
    lay in hospital elsewhere do not count at all."""
    drugs, classes, levels = c.lookups.drugs, params["dispensing_care_classes"], params["covered_levels"]
    stock, bar, lag = c.lookups.stock, params["min_backed_share"], params["backing_lag_months"]
    stays = [st for st in c.mdtrts.values() if st.care_class == "inpatient"]
    groups: dict[tuple, list[ClaimLine]] = {}
    for ln in lines:
        if not (ln.cnt > 0 and ln.prd_days is not None and ln.prd_days > 0 and ln.list_type in ("101", "102")):
            continue
        if ln.setl.care_class not in classes:
            continue
        if any(st.psn_no == ln.psn_no and st.fixmedins_code != ln.fixmedins_code
               and st.begin_date < ln.fee_date < st.end_date for st in stays):
            continue  # dispensed while the person lay in hospital elsewhere
        drug, level = drugs.get(ln.hilist_code, (None, None))
        if level is not None and level not in levels:
            continue
        groups.setdefault((ln.psn_no, drug if drug is not None else ln.hilist_code, ln.setl_id), []).append(ln)
    out = []
    for (psn, drug, setl_id), found in groups.items():
        billed = sum(ln.prd_days for ln in found)
        backed = [ln.prd_days for ln in found if _backed(stock.get((ln.fixmedins_code, ln.hilist_code)), ln, bar, lag)]
        supply = sum(backed)
        if not (billed <= params["max_dispensing_days"] and backed and supply > 0):
            continue
        first = found[0]
        out.append({
            "psn_no": psn, "drug": drug, "setl_id": setl_id, "rx_date": min(ln.fee_date for ln in found),
            "supply_days": supply, "billed_days": billed, "lines": sorted(ln.bkkp_sn for ln in found),
            "amount": sum((ln.det_item_fee_sumamt for ln in found), Decimal("0.00")),
            "in_scope": first.setl.in_scope, "setl_time": first.setl.setl_time, "mdtrt_id": first.mdtrt_id,
            "fixmedins_code": first.fixmedins_code,
            "prescriber": first.setl.fixmedins_type is not None and first.setl.fixmedins_type in params["prescriber_types"],
            "prac_code": sql_min(ln.bilg_dr_code for ln in found), "hilist_name": min(ln.hilist_name for ln in found)})
    return out


def _backed(months: Any, ln: ClaimLine, bar: float, lag: int) -> bool:
    """``over_prescription.sql`` backing: a line of a month with a stock record counts when the books back at
    least *bar* of the insured sales of the months within *lag* of it; other lines count."""
    month = ln.fee_ocur_time.year * 12 + ln.fee_ocur_time.month - 1
    if months is None or month not in months:
        return True
    near = sorted(m for m in months if month - lag <= m <= month + lag)
    billed = sum(months[m][3] for m in near)
    if billed == 0:
        return True
    out = _sql_sum(months[m][2] for m in near)
    in_flow, opening = _sql_sum(months[m][1] for m in near), months[near[0]][0]
    available = None if opening is None or in_flow is None else opening + in_flow
    supported = sql_min(v for v in (out, available) if v is not None)  # least() skips NULLs
    return supported is None or supported / billed >= bar


def _sql_sum(values: Any) -> float | None:
    """``sum()``: NULLs skipped, NULL when there is nothing else."""
    found = [v for v in values if v is not None]
    return sum(found) if found else None

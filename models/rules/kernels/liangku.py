"""Kernels of the 两库 rules (national knowledge base, batches 1-8): one function per ``sql/liangku_*.sql``.

Each reads the visit's claim views (:class:`~models.rules.kernels.claims.Claims`) and the knowledge
points (:class:`~models.rules.kernels.lookups.Lookups`) and returns the rows the rule's SQL returns,
with the SQL's types (DECIMAL → ``Decimal``, DOUBLE → ``float``); each docstring names the SQL file it
mirrors, which remains the reference (``tests/models/test_rules_kernels.py`` checks them against it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from models.rules.kernels.claims import ClaimLine, Claims
from models.rules.kernels.duck import contains, duck_round, full_years, no_dot_zero, sql_and, sql_min, sql_or
from models.rules.kernels.hits import RuleRow, line_row
from models.rules.kernels.registry import kernel

__all__: list[str] = []  # the kernels register themselves (registry.KERNELS)


def _pointed_lines(c: Claims, kind: str) -> Iterator[tuple[ClaimLine, Any]]:
    """The visit's lines billed (``cnt > 0``) with a knowledge point of ``kind``, with that point."""
    points = c.lookups.points[kind]
    for ln in c.visit_lines:
        k = points.get(ln.hilist_code)
        if k is not None and ln.cnt > 0:
            yield ln, k


@kernel("liangku_gender")
def gender(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_gender.sql``: a code limited to one sex, billed for the other."""
    out = []
    for ln, k in _pointed_lines(c, "gender"):
        limit, point_id = k
        psn = _person_gend(c, ln)
        if psn in ("1", "2") and psn != limit:
            out.append(line_row(ln, {
                "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "limit_gend": limit,
                "limit_gend_zh": "男" if limit == "1" else "女", "psn_gend": psn,
                "psn_gend_zh": {"1": "男", "2": "女"}.get(psn, psn), "point_id": point_id}))
    return out


@kernel("liangku_age")
def age(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_age.sql``: a code limited to an age group, outside it (full years; days for newborns)."""
    out = []
    for ln, k in _pointed_lines(c, "age"):
        brdy = _person(c, ln, "brdy")
        if brdy is None:
            continue
        point_id, value_text, age_min, age_max = k
        years, days = full_years(brdy, ln.fee_date), (ln.fee_date - brdy).days
        too_old = age_max is not None and (years >= age_max if age_max >= 1 else days >= duck_round(age_max * 365))
        too_young = age_min is not None and years < age_min
        if too_old or too_young:
            out.append(line_row(ln, {
                "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "limit_zh": value_text,
                # the age in days only for a limit in days (新生儿): with the fee's date it is the birth date
                "age_years": years, "age_days": days if age_max is not None and age_max < 1 else None,
                "age_min": age_min, "age_max": duck_round(age_max, 4),
                "point_id": point_id}))
    return out


@kernel("liangku_insurance_type")
def insurance_type(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_insurance_type.sql``: a 工伤- or 生育-only drug paid by the medical fund (工伤 drugs allowed in
    work-injury settlements, 生育 drugs in maternity settlements)."""
    out = []
    for ln, k in _pointed_lines(c, "insurance_type"):
        only, point_id = k
        maternity = sql_or(contains(params["maternity_med_types"], ln.setl.med_type),
                        contains(params["maternity_insutypes"], ln.setl.insutype))
        work_injury = contains(params["work_injury_insutypes"], ln.setl.insutype)
        allowed = sql_or(sql_and(None if only is None else only == "生育", maternity),
                         sql_and(None if only is None else only == "工伤", work_injury))
        if allowed is False:  # NOT (...) holds only when (...) is false, not unknown
            out.append(line_row(ln, {
                "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "insurance_only": only,
                "insutype": ln.setl.insutype, "med_type": ln.setl.med_type, "point_id": point_id}))
    return out


@kernel("liangku_care_setting")
def care_setting(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_care_setting.sql``: an inpatient-only drug outside an inpatient settlement (限急诊或住院:
    emergency allowed too)."""
    classes = c.lookups.med_type_classes
    out = []
    for ln, k in _pointed_lines(c, "care_setting"):
        setting, point_id = k
        have = classes.get(ln.setl.med_type, frozenset())
        if "inpatient" in have or ("emergency" in have and setting == "inpatient_or_emergency"):
            continue
        out.append(line_row(ln, {
            "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "care_setting": setting,
            "allowed_zh": "住院" if setting == "inpatient" else "住院或急诊", "med_type": ln.setl.med_type,
            "point_id": point_id}))
    return out


@kernel("liangku_institution_level")
def institution_level(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_institution_level.sql``: a drug for 二级/三级 and above at a lower-level institution."""
    out = []
    for ln, k in _pointed_lines(c, "institution_level"):
        least, point_id = k
        level = ln.setl.hosp_level
        if level is None or least is None or not level < least:
            continue
        out.append(line_row(ln, {
            "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "min_hosp_level": least,
            "min_level_zh": {3: "三级", 2: "二级"}.get(least, "一级"), "hosp_level": level,
            "level_zh": {3: "三级", 2: "二级", 1: "一级"}.get(level, "无等级/基层"), "point_id": point_id}))
    return out


@kernel("liangku_course_length")
def course_length(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_course_length.sql``: uses beyond day N of a course (a gap of more than
    ``new_course_after_days`` beyond the course's minimum interval starts a new course); one row per person,
    settlement and course key."""
    points = c.lookups.points["course_length"]
    if not any(ln.cnt > 0 and ln.hilist_code in points for ln in c.visit_lines):
        return []
    gap = params["new_course_after_days"]
    used = [ln for ln in c.lines if ln.cnt > 0 and ln.hilist_code in points]
    days: dict[tuple[str, str], set[date]] = {}
    interval: dict[str, int] = {}
    for ln in used:
        _, _, key, course_interval = points[ln.hilist_code]
        days.setdefault((ln.psn_no, key), set()).add(ln.fee_date)
        interval[key] = course_interval
    started: dict[tuple[str, str, date], date] = {}
    for (psn, key), dates in days.items():
        prev = start = None
        for d in sorted(dates):
            if prev is None or (d - prev).days > gap + interval[key]:
                start = d
            started[(psn, key, d)] = start
            prev = d
    groups: dict[tuple[str, str, str], list[tuple[ClaimLine, date, int]]] = {}
    for ln in used:
        if not ln.setl.in_scope:
            continue
        max_days, _, key, _ = points[ln.hilist_code]
        start = started[(ln.psn_no, key, ln.fee_date)]
        day = (ln.fee_date - start).days + 1
        if day > max_days:
            groups.setdefault((ln.psn_no, ln.setl_id, key), []).append((ln, start, day))
    out = []
    for (psn, setl_id, _), found in groups.items():
        lines = [ln for ln, _, _ in found]
        first = lines[0]
        out.append(RuleRow(
            "psn", psn, setl_id, first.mdtrt_id, psn, first.fixmedins_code, sql_min(ln.bilg_dr_code for ln in lines),
            tuple(sorted(ln.bkkp_sn for ln in lines)), sum((ln.det_item_fee_sumamt for ln in lines), Decimal("0.00")),
            first.setl.setl_time,
            {"hilist_code": min(ln.hilist_code for ln in lines), "hilist_name": min(ln.hilist_name for ln in lines),
             "max_days": min(points[ln.hilist_code][0] for ln in lines),
             "course_start": min(s for _, s, _ in found).isoformat(), "last_course_day": max(d for _, _, d in found),
             "days_beyond": len({ln.fee_date for ln in lines}),
             "point_id": min(points[ln.hilist_code][1] for ln in lines)}))
    return out


_WINDOW_ZH = {"day": "单日", "visit": "单次就诊", "6h": "6小时"}


@kernel("liangku_duplicate_charge")
def duplicate_charge(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_duplicate_charge.sql``: a sub-item billed with the main item that includes it, same person
    and institution, within the pair's window; the earliest such main-item line is named."""
    pairs = c.lookups.duplicate_pairs
    subs = [ln for ln in c.visit_lines if ln.cnt > 0 and ln.hilist_code in pairs]
    if not subs:
        return []
    main_codes = c.lookups.duplicate_main_codes
    mains: dict[str, list[ClaimLine]] = {}
    for ln in c.lines:
        if ln.cnt > 0 and ln.hilist_code in main_codes:
            mains.setdefault(ln.hilist_code, []).append(ln)
    out = []
    for s in subs:
        best = None
        for main_code, main_name, window, point_id in pairs[s.hilist_code]:
            for m in mains.get(main_code, ()):
                if m.psn_no != s.psn_no or m.fixmedins_code != s.fixmedins_code or m.bkkp_sn == s.bkkp_sn:
                    continue
                if not _in_window(window, m, s):
                    continue
                key = (m.fee_ocur_time, m.bkkp_sn)
                if best is None or key < best[0]:
                    best = (key, m, main_code, main_name, window, point_id)
        if best is None:
            continue
        _, m, main_code, main_name, window, point_id = best
        out.append(line_row(s, {
            "hilist_code": s.hilist_code, "hilist_name": s.hilist_name, "main_code": main_code,
            "main_name": main_name, "main_line": m.bkkp_sn, "window_zh": _WINDOW_ZH.get(window, "同一小时"),
            "point_id": point_id}))
    return out


@kernel("liangku_frequency")
def frequency(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_frequency.sql``: per visit and item, the quantities added up in billing order (lines at
    the item's regular time first); the lines that take the total above days × max_count."""
    points = c.lookups.points["frequency"]
    wanted = {(ln.mdtrt_id, ln.hilist_code) for ln in c.visit_lines if ln.cnt > 0 and ln.hilist_code in points}
    if not wanted:
        return []
    groups: dict[tuple[str, str], list[ClaimLine]] = {}
    for ln in c.lines:
        if ln.cnt > 0 and (ln.mdtrt_id, ln.hilist_code) in wanted:
            groups.setdefault((ln.mdtrt_id, ln.hilist_code), []).append(ln)
    out = []
    for (mdtrt_id, code), lines in groups.items():
        max_count, unit, point_id = points[code]
        m = c.mdtrts.get(mdtrt_id)
        if m is not None and m.care_class == "inpatient":
            days = max((m.end_date - m.begin_date).days, 1)
        else:
            days = len({ln.fee_date for ln in lines})
        times = Counter(ln.fee_ocur_time.time() for ln in lines)
        regular = min(times, key=lambda t: (-times[t], t))
        lines = sorted(lines, key=lambda ln: (ln.fee_ocur_time.time() != regular, ln.fee_ocur_time, ln.bkkp_sn))
        allowed = None if max_count is None else days * max_count
        total = sum(ln.cnt for ln in lines)
        running = 0.0
        for ln in lines:
            running += ln.cnt
            if ln.setl.in_scope and allowed is not None and running > allowed:
                out.append(line_row(ln, {
                    "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name,
                    "fee_date": ln.fee_date.isoformat(), "max_count": max_count,
                    "unit_zh": "小时" if unit == "hour" else "次", "days": days, "allowed": allowed,
                    "total": no_dot_zero(total), "point_id": point_id}))
    return out


@kernel("liangku_period_frequency")
def period_frequency(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_period_frequency.sql``: a use that, with the uses of the previous period_days - 1 days
    (method variants: the same first 12 digits), passes max_count."""
    points = c.lookups.points["period_frequency"]
    targets = [ln for ln in c.visit_lines if ln.cnt > 0 and ln.hilist_code in points]
    if not targets:
        return []
    families: dict[str, list[ClaimLine]] = {}
    for ln in c.lines:
        if ln.cnt > 0 and ln.hilist_code in points:
            families.setdefault(points[ln.hilist_code][0], []).append(ln)
    out = []
    for a in targets:
        family, max_count, period_days, point_id = points[a.hilist_code]
        if period_days is None:
            continue
        after = a.fee_date - timedelta(days=period_days)
        before = (a.fee_ocur_time, a.bkkp_sn)
        prior = [b for b in families[family]
                 if b.psn_no == a.psn_no and b.fee_date > after and (b.fee_ocur_time, b.bkkp_sn) < before]
        if not prior:
            continue
        count = sum(b.cnt for b in prior) + a.cnt
        if max_count is None or not count > max_count:
            continue
        prior.sort(key=lambda b: (b.fee_ocur_time, b.bkkp_sn))
        out.append(line_row(a, {
            "hilist_code": a.hilist_code, "hilist_name": a.hilist_name, "period_days": period_days,
            "max_count": max_count, "count_in_period": no_dot_zero(count),
            "last_prior_date": max(b.fee_date for b in prior).isoformat(),
            "prior_lines": [b.bkkp_sn for b in prior], "point_id": point_id}))
    return out


@kernel("liangku_primary_secondary_surgery")
def primary_secondary_surgery(params: dict[str, Any], c: Claims) -> list[RuleRow]:
    """``liangku_primary_secondary_surgery.sql``: a second or later operation of a surgery group in one
    visit, within ``session_hours`` of the previous, priced above ``discounted_max_ratio`` of its cap."""
    groups = c.lookups.surgery_groups
    wanted = {ln.mdtrt_id for ln in c.visit_lines if ln.cnt > 0 and ln.hilist_code in groups}
    if not wanted:
        return []
    session = timedelta(hours=round(params["session_hours"]))
    ratio = params["discounted_max_ratio"]
    catalogue, includes = c.lookups.catalogue, c.lookups.duplicate_includes
    ops: dict[tuple[str, str], list[tuple[ClaimLine, str, Decimal | None]]] = {}
    for ln in c.lines:
        if ln.cnt > 0 and ln.mdtrt_id in wanted and ln.hilist_code in groups:
            listed = catalogue.get(ln.hilist_code)
            cap = listed[0] if listed is not None and listed[0] is not None else ln.pric_uplmt_amt
            for group, point_id in groups[ln.hilist_code]:
                ops.setdefault((ln.mdtrt_id, group), []).append((ln, point_id, cap))
    found: dict[str, tuple[str, RuleRow]] = {}
    for (_, group), rows in ops.items():
        rows.sort(key=lambda r: (r[0].fee_ocur_time, -r[0].pric, r[0].bkkp_sn))
        for (prev, _, _), (ln, point_id, cap) in zip(rows, rows[1:]):
            if not ln.setl.in_scope or ln.fee_ocur_time - prev.fee_ocur_time > session or cap is None:
                continue
            if not _above(ln.pric, cap, ratio) or (prev.hilist_code, ln.hilist_code) in includes:
                continue
            if ln.bkkp_sn in found and found[ln.bkkp_sn][0] <= group:
                continue
            found[ln.bkkp_sn] = (group, line_row(ln, {
                "hilist_code": ln.hilist_code, "hilist_name": ln.hilist_name, "surgery_group": group,
                "main_line": prev.bkkp_sn, "main_name": prev.hilist_name, "pric": ln.pric, "cap": cap,
                "price_ratio": duck_round(float(ln.pric) / float(cap), 2), "point_id": point_id}))
    return [row for _, row in found.values()]


# -- shared helpers -------------------------------------------------------------------------------

def _person(c: Claims, ln: ClaimLine, name: str) -> Any:
    """A register field of the line's person (``claim_line`` LEFT JOINs ``person`` on the line's psn_no)."""
    if ln.psn_no != c.psn_no or c.person is None:
        return None
    return getattr(c.person, name)


def _person_gend(c: Claims, ln: ClaimLine) -> str | None:
    return _person(c, ln, "gend")


def _in_window(window: str | None, m: ClaimLine, s: ClaimLine) -> bool:
    if window == "visit":
        return m.mdtrt_id == s.mdtrt_id
    if window == "day":
        return m.fee_date == s.fee_date
    if window == "6h":
        return abs((m.fee_ocur_time - s.fee_ocur_time).total_seconds()) <= 6 * 3600
    if window == "hour":
        return m.fee_ocur_time.replace(minute=0, second=0, microsecond=0) == \
            s.fee_ocur_time.replace(minute=0, second=0, microsecond=0)
    return False


def _above(pric: Decimal, cap: Decimal, ratio: Any) -> bool:
    """``pric > cap * ratio + 0.005`` as DuckDB types it (a DOUBLE ratio makes it a DOUBLE comparison)."""
    if isinstance(ratio, float):
        return float(pric) > float(cap) * ratio + 0.005
    return pric > cap * Decimal(ratio) + Decimal("0.005")

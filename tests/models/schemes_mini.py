"""Hand-built cases for the institution-scheme rules (串换/进销存, 空刷, 过度检查, 虚假诊疗): for each rule an
institution that runs the scheme and honest institutions that look like it (the look-alikes of
docs/rules.md), in a mini region of their own (``scheme_region``), written with ``rules_mini.MiniRegion``.

Institution codes name the case: ``DS-HIT`` runs the scheme, ``DS-LAG`` is the honest look-alike with late
bookings, and so on. ``EXPECTED`` lists, per rule, the entities that must be hit; every other institution
and doctor of the region must not be.
"""

from __future__ import annotations

from datetime import date, timedelta

from rules_mini import MiniRegion

__all__ = ["SCHEME_RULES", "EXPECTED", "scheme_region"]

SCHEME_RULES = {"drug_substitution", "phantom_purchase", "over_examination", "fake_treatment"}
# rule id -> the (entity_type, entity_id) it must hit, and nothing else
EXPECTED = {
    "drug_substitution": {("fixmedins", "DS-HIT")},
    "phantom_purchase": {("fixmedins", "PH-HIT")},
    "over_examination": {("fixmedins", "OE-HIT"), ("prac", "D-OE-HIT"), ("fixmedins", "OE-DOC"),
                         ("prac", "D-OE-DOC-HIGH"), ("prac", "D-OE-DOC-ALSO")},
    "fake_treatment": {("fixmedins", "FT-DIAL"), ("fixmedins", "FT-REHAB"), ("fixmedins", "FT-PSYCH")},
}

DEAR = "XZDEAR000000000000000001"      # a dear covered drug (the one billed)
CHEAP = "XZCHEAP00000000000000001"     # what is really dispensed
OTC = ["XZOTC0000000000000000001", "XZOTC0000000000000000002", "XZOTC0000000000000000003"]
HERB = "T000001HERB0000000"
EXAM = "002503EXAM0000"                # a lab (化验费)
DIALYSIS = "003110000060000"           # 血液透析 (national code 311000006)
REHAB = "003402REHAB0000"              # 运动疗法
PSYCH = "003115PSYCH0000"              # 精神科监护
CONSULT = "001102CONSULT00"


def scheme_region() -> MiniRegion:
    """The cases (see the module docstring)."""
    r = MiniRegion()
    r.item(DEAR, "高价药", list_type="101", chrgitm_type="09")
    r.item(CHEAP, "低价药", list_type="101", chrgitm_type="09")
    for i, code in enumerate(OTC):
        r.item(code, f"常用药{i}", list_type="101", chrgitm_type="09")
    r.item(HERB, "中药饮片", list_type="102", chrgitm_type="10")
    r.item(EXAM, "血细胞分析", chrgitm_type="04")
    r.item(DIALYSIS, "血液透析", chrgitm_type="05")
    r.item(REHAB, "运动疗法", chrgitm_type="05")
    r.item(PSYCH, "精神科监护", chrgitm_type="05")
    r.item(CONSULT, "普通门诊诊查费", chrgitm_type="02")
    _drug_substitution(r)
    _phantom_purchase(r)
    _over_examination(r)
    _fake_treatment(r)
    return r


# -- 进销存 ---------------------------------------------------------------------------------------

def _stock(r: MiniRegion, inst: str, code: str, month: str, opening: float, in_qty: float, out_qty: float) -> None:
    r.rows["stock_moves"].append({"fixmedins_code": inst, "hilist_code": code, "month": month,
                                  "opening_qty": opening, "in_qty": in_qty, "out_qty": out_qty,
                                  "closing_qty": opening + in_qty - out_qty})


def _drug_substitution(r: MiniRegion) -> None:
    """Six months of 10 boxes a month of the dear drug sold to the fund at each pharmacy.

    DS-HIT: its books show 1 box a month bought and sold (the rest was the cheap drug: 90 % unsupported).
    DS-LAG: honest, but January's receipt and stock-out are booked in February (负库存 for a month).
    DS-NEAR: honest shrinkage — 1 box in 10 short every month (10 %, under the 20 % bar).
    DS-REFUND: DS-HIT's books, but the over-billed purchases were all refunded.
    DS-NOBOOKS: no stock records at all — nothing to judge (not a gap).
    """
    for inst in ("DS-HIT", "DS-LAG", "DS-NEAR", "DS-REFUND", "DS-NOBOOKS"):
        r.institution(inst, kind="pharmacy")
        for m in range(1, 7):
            p = r.person(f"P-{inst}-{m}")
            for k in range(2):  # two purchases of 5 boxes a month
                sid = f"{inst}-{m}-{k}"
                r.visit(sid, p, inst, begin=f"2025-{m:02d}-{10 + k:02d} 10:00:00", med_type="41",
                        lines=[{"code": DEAR, "pric": 80.0, "cnt": 5}])
                if inst == "DS-REFUND":
                    r.refund(sid)
    for m in range(1, 7):
        month = f"2025-{m:02d}"
        _stock(r, "DS-HIT", DEAR, month, 2, 1, 1)
        _stock(r, "DS-HIT", CHEAP, month, 20, 9, 9)
        _stock(r, "DS-REFUND", DEAR, month, 2, 1, 1)
        _stock(r, "DS-NEAR", DEAR, month, 2, 9, 9)
        late = {1: (0, 0), 2: (20, 20)}.get(m, (10, 10))  # January booked in February, in and out
        _stock(r, "DS-LAG", DEAR, month, 2, *late)


# -- 空刷 -----------------------------------------------------------------------------------------

def _purchase(r: MiniRegion, sid: str, psn: str, inst: str, when: str, lines: list[dict]) -> None:
    r.visit(sid, psn, inst, begin=when, med_type="41", lines=[ln | {"time": when} for ln in lines])


def _phantom_purchase(r: MiniRegion) -> None:
    """PH-HIT: two evenings of 6 cards swiped two minutes apart, each for 1 dear drug + herbs = 100.00 yuan,
    plus ordinary daytime sales. The look-alikes, all honest:

    PH-QUEUE: a queue beside a hospital, a customer every two minutes — each with their own basket;
    PH-FAMILY: families of four at the counter with the same basket at a round 50.00, on three days;
    PH-EVENING: a late shop: its sales mostly after 19:00 and at weekends, ordinary baskets;
    PH-SPREAD: the same round 100.00 basket bought by six customers on one day, but hours apart.
    """
    for inst in ("PH-HIT", "PH-QUEUE", "PH-FAMILY", "PH-EVENING", "PH-SPREAD"):
        r.institution(inst, kind="pharmacy")
    cards = [r.person(f"P-PH-{i:02d}") for i in range(40)]
    burst = [{"code": DEAR, "pric": 80.0, "cnt": 1}, {"code": HERB, "pric": 20.0, "cnt": 1}]
    for d, day in enumerate(("2025-04-08", "2025-04-15")):
        for k in range(6):
            when = f"{day} 20:{10 + 2 * k:02d}:00"
            _purchase(r, f"PH-HIT-B{d}{k}", cards[k + 6 * d], "PH-HIT", when, burst)
    for k in range(20):  # ordinary sales
        _purchase(r, f"PH-HIT-S{k:02d}", cards[20 + k], "PH-HIT", f"2025-04-{1 + k:02d} 10:00:00",
                  [{"code": OTC[k % 3], "pric": 12.5 + k, "cnt": 1}])
    for d, day in enumerate(("2025-04-08", "2025-04-09")):
        for k in range(10):
            when = f"{day} 10:{10 + 2 * k:02d}:00"
            _purchase(r, f"PH-QUEUE-{d}{k}", cards[k + 10 * d], "PH-QUEUE", when,
                      [{"code": OTC[k % 3], "pric": 12.5, "cnt": 1 + k}])
    for d, day in enumerate(("2025-04-08", "2025-04-12", "2025-04-19")):
        for k in range(4):
            _purchase(r, f"PH-FAMILY-{d}{k}", cards[k + 4 * d], "PH-FAMILY", f"{day} 18:{30 + k:02d}:00",
                      [{"code": OTC[0], "pric": 25.0, "cnt": 2}])
    for k in range(20):
        day = date(2025, 4, 5) + timedelta(days=k)
        _purchase(r, f"PH-EVENING-{k:02d}", cards[k], "PH-EVENING", f"{day} 21:{k:02d}:00",
                  [{"code": OTC[k % 3], "pric": 9.9 + k, "cnt": 1}])
    for k in range(6):
        _purchase(r, f"PH-SPREAD-{k}", cards[k], "PH-SPREAD", f"2025-04-08 {9 + k:02d}:00:00", burst)


# -- 过度检查 -------------------------------------------------------------------------------------

def _exam_visit(r: MiniRegion, sid: str, psn: str, inst: str, doc: str, day: date, diag: str, exams: int,
                other_diags: tuple[str, ...] = (), dept: str = "A03") -> None:
    when = f"{day} 09:00:00"
    lines = [{"code": CONSULT, "pric": 10.0}] + [{"code": EXAM, "pric": 20.0}] * exams
    r.visit(sid, psn, inst, begin=when, diags=(diag,) + other_diags, lines=lines)
    r.rows["mdtrt_d"][-1]["chfpdr_code"] = doc
    r.rows["mdtrt_d"][-1]["adm_dept_codg"] = dept
    for ln in r.rows["fee_list_d"]:
        if ln["setl_id"] == sid:
            ln["bilg_dr_code"] = doc


def _over_examination(r: MiniRegion) -> None:
    """二级 hospitals, internal medicine (A03) and surgery (A04), 60 visits a doctor and department in the year.

    Peers OE-P1..P5, in A03: colds (J06) with 1 lab (4 visits in 6), heart failure (I50) with 3, heart
    failure with two comorbidities with 5; in A04: colds with 1 lab. OE-HIT: colds with 3 labs, 120 visits
    (3 times the norm) by its one doctor: the institution on its own figures, and the doctor. OE-DOC: its
    A03 runs the scheme (D-OE-DOC-HIGH and D-OE-DOC-ALSO, each 3 times) while its A04 (D-OE-DOC-OK, four
    times their visits) works at the norm: both doctors, and the institution through the department (its
    own ratio is 1.67). OE-LONE: one doctor at 5 times (D-OE-LONE-HIGH) beside a colleague at the norm in
    the same department, whose ratio (3) rests on him alone: a practice outlier, not a scheme. OE-CARDIO:
    the honest cardiac centre, mostly sicker heart-failure patients with comorbidities: 4.3 labs a visit
    against its peers' 2 (twice as many), but the peers' own figure for the same patients. OE-NEAR: colds
    with 1.8 labs (under the bar of 2). OE-FEW: 3 times, but 20 visits (under the 30 a rate needs).
    """
    days = [date(2025, 1, 1) + timedelta(days=5 * i) for i in range(60)]
    peers = [f"OE-P{k}" for k in range(1, 6)]
    for inst in peers + ["OE-HIT", "OE-DOC", "OE-LONE", "OE-CARDIO", "OE-NEAR", "OE-FEW"]:
        r.institution(inst, hosp_lv="05")
    p = r.person("P-OE")
    mix = [("J06.900", 1, ())] * 4 + [("I50.900", 3, ()), ("I50.900", 5, ("I10.x00", "E11.900"))]
    for inst in peers:
        for i, day in enumerate(days):
            diag, exams, other = mix[i % 6]
            _exam_visit(r, f"{inst}-{i:02d}", p, inst, f"D-{inst}", day, diag, exams, other)
            _exam_visit(r, f"{inst}-S{i:02d}", p, inst, f"D-{inst}-S", day, "J06.900", 1, dept="A04")
    for i, day in enumerate(days):
        for k in range(2):
            _exam_visit(r, f"OE-HIT-{i:02d}{k}", p, "OE-HIT", "D-OE-HIT", day, "J06.900", 3)
        _exam_visit(r, f"OE-DOC-H{i:02d}", p, "OE-DOC", "D-OE-DOC-HIGH", day, "J06.900", 3)
        _exam_visit(r, f"OE-DOC-A{i:02d}", p, "OE-DOC", "D-OE-DOC-ALSO", day, "J06.900", 3)
        for k in range(4):
            _exam_visit(r, f"OE-DOC-O{i:02d}{k}", p, "OE-DOC", "D-OE-DOC-OK", day, "J06.900", 1, dept="A04")
        _exam_visit(r, f"OE-LONE-H{i:02d}", p, "OE-LONE", "D-OE-LONE-HIGH", day, "J06.900", 5)
        _exam_visit(r, f"OE-LONE-O{i:02d}", p, "OE-LONE", "D-OE-LONE-OK", day, "J06.900", 1)
        sick = i % 6 != 0
        _exam_visit(r, f"OE-CARDIO-{i:02d}", p, "OE-CARDIO", "D-OE-CARDIO", day, "I50.900" if sick else "J06.900",
                    5 if sick else 1, ("I10.x00", "E11.900") if sick else ())
        _exam_visit(r, f"OE-NEAR-{i:02d}", p, "OE-NEAR", "D-OE-NEAR", day, "J06.900", 2 if i % 5 else 1)
        if i < 20:
            _exam_visit(r, f"OE-FEW-{i:02d}", p, "OE-FEW", "D-OE-FEW", day, "J06.900", 3)


# -- 虚假诊疗 --------------------------------------------------------------------------------------

_AREA_DIAG = {"A03.05": "N18.500", "A28": "N17.900", "A21": "I69.300", "A15": "F20.900"}


def _session(r: MiniRegion, sid: str, psn: str, inst: str, when: str, code: str, dept: str,
             med_type: str = "11", end: str | None = None, pric: float = 400.0) -> None:
    r.visit(sid, psn, inst, begin=when, end=end, med_type=med_type, diags=(_AREA_DIAG[dept],),
            lines=[{"code": code, "pric": pric, "time": when}])
    r.rows["mdtrt_d"][-1]["adm_dept_codg"] = dept
    for ln in r.rows["fee_list_d"]:
        if ln["setl_id"] == sid:
            ln["bilg_dept_codg"] = dept


def _fake_treatment(r: MiniRegion) -> None:
    """FT-DIAL: two patients dialysed every weekday for six weeks (5 a week). FT-REHAB: a patient with two
    rehab sessions a day for twelve days. FT-PSYCH: three outpatients seen weekly (4 a month) for four months.

    The honest look-alikes at FT-OK: three patients at exactly 3 dialyses a week for eight weeks, one of them
    with a make-up 4th session once; a patient dialysed daily for ten days in hospital (inpatient); one rehab
    session a day; psychiatric outpatients seen monthly, one of them admitted for 90 days.
    """
    for inst in ("FT-DIAL", "FT-REHAB", "FT-PSYCH", "FT-OK"):
        r.institution(inst, hosp_lv="05")
    monday = date(2025, 3, 3)
    for k in range(2):
        p = r.person(f"P-FT-DIAL-{k}")
        for w in range(6):
            for d in range(5):
                day = monday + timedelta(weeks=w, days=d)
                _session(r, f"FT-DIAL-{k}{w}{d}", p, "FT-DIAL", f"{day} 08:00:00", DIALYSIS, "A03.05")
    for k in range(3):
        p = r.person(f"P-FT-OK-DIAL-{k}")
        for w in range(8):
            for d in (0, 2, 4):
                day = monday + timedelta(weeks=w, days=d)
                _session(r, f"FT-OK-DIAL-{k}{w}{d}", p, "FT-OK", f"{day} 08:00:00", DIALYSIS, "A03.05")
        if k == 0:
            _session(r, "FT-OK-DIAL-MAKEUP", p, "FT-OK", f"{monday + timedelta(weeks=3, days=6)} 08:00:00",
                     DIALYSIS, "A03.05")
    p = r.person("P-FT-OK-AKI")  # acute kidney injury in the ICU: dialysed every day of a 10-day stay
    r.visit("FT-OK-AKI", p, "FT-OK", begin=f"{monday} 08:00:00", end=f"{monday + timedelta(days=10)} 10:00:00",
            med_type="21", diags=("N17.900",),
            lines=[{"code": DIALYSIS, "pric": 400.0, "time": f"{monday + timedelta(days=d)} 09:00:00"}
                   for d in range(10)])
    for ln in r.rows["fee_list_d"]:
        if ln["setl_id"] == "FT-OK-AKI":
            ln["bilg_dept_codg"] = "A28"
    p = r.person("P-FT-REHAB")
    q = r.person("P-FT-OK-REHAB")
    for d in range(12):
        day = monday + timedelta(days=d)
        for k, hour in enumerate((9, 15)):
            _session(r, f"FT-REHAB-{d:02d}{k}", p, "FT-REHAB", f"{day} {hour:02d}:00:00", REHAB, "A21", pric=55.0)
        _session(r, f"FT-OK-REHAB-{d:02d}", q, "FT-OK", f"{day} 09:00:00", REHAB, "A21", pric=55.0)
    for k in range(3):
        p = r.person(f"P-FT-PSYCH-{k}")
        q = r.person(f"P-FT-OK-PSYCH-{k}")
        for m in range(4):
            first = date(2025, 3 + m, 2)
            for w in range(4):
                _session(r, f"FT-PSYCH-{k}{m}{w}", p, "FT-PSYCH", f"{first + timedelta(weeks=w)} 10:00:00",
                         PSYCH, "A15", pric=30.0)
            _session(r, f"FT-OK-PSYCH-{k}{m}", q, "FT-OK", f"{first} 10:00:00", PSYCH, "A15", pric=30.0)
    p = r.person("P-FT-OK-LONG")
    _session(r, "FT-OK-PSYCH-STAY", p, "FT-OK", "2025-03-01 10:00:00", PSYCH, "A15", med_type="21",
             end="2025-05-30 10:00:00", pric=30.0 * 90)

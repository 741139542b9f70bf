"""Persons and their care, one chunk of persons at a time, with fraud injected.

A chunk is built in three passes, all vectorised with numpy:

1. ``_persons``: age, sex, insurance, chronic conditions, deaths, households, preferred institutions.
2. ``_encounters``: every visit (门诊, 慢特病, 急诊, 药店购药, 住院, 透析, 康复) as one row, honest first, then
   the encounter-level fraud (dead persons, card theft, rings, split admissions, phantom swipes ...).
3. ``_lines``: fee lines (费用明细) from per-kind recipes, then the line-level fraud (两库 violations,
   duplicate charges, price over cap, drug substitution ...).

Every injected encounter or line carries a ``tag`` (index into ``TYPES``) that becomes ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.contract import FRAUD_TYPES

from .config import ScenarioConfig
from .monitoring import evade_price_caps
from .reference import CAUSE_FALL, CAUSE_THIRD_PARTY, DIAGS, LOOKALIKE_DIAGS, OTHER_REGIONS
from .world import DEPT_ROLE, FALLBACK_ROLES, INST_CLINIC, INST_HOSPITAL, INST_PHARMACY, World

__all__ = ["TYPES", "Chunk", "simulate_chunk"]

TYPES = list(FRAUD_TYPES)
T = {t: i for i, t in enumerate(TYPES)}
# Encounter kinds
OP, CHRONIC, ER, PHARM, IP, DIALYSIS, REHAB = range(7)
MED_TYPE = {OP: "11", CHRONIC: "140104", ER: "13", PHARM: "41", IP: "21", DIALYSIS: "140201", REHAB: "11"}
DAY = 86_400
DIAG_CODE = np.array([d[0] for d in DIAGS] + [CAUSE_FALL[0]] + [c[0] for c in CAUSE_THIRD_PARTY]
                     + [c[0] for c in LOOKALIKE_DIAGS])
DIAG_NAME = np.array([d[1] for d in DIAGS] + [CAUSE_FALL[1]] + [c[1] for c in CAUSE_THIRD_PARTY]
                     + [c[1] for c in LOOKALIKE_DIAGS])
DIAG_IDX = {d[0]: i for i, d in enumerate(DIAGS)}
DIAG_DEPT = np.array([DEPT_ROLE[d[2]] for d in DIAGS])
CAUSE_FALL_IDX = len(DIAGS)
CAUSE_TP_IDX = np.arange(len(DIAGS) + 1, len(DIAGS) + 1 + len(CAUSE_THIRD_PARTY))
ACUTE = np.array([DIAG_IDX[c] for c in ("J06.900", "J20.900", "K29.700", "M54.500", "R51.x00", "N39.000")])
LOW_THRESHOLD_DIAGS = np.array([DIAG_IDX[c] for c in ("J06.900", "K29.700", "M54.500", "I10.x00")])
SURGICAL = {DIAG_IDX[c] for c in ("K80.200", "K35.800", "M17.900", "N40.x00", "N81.200", "S72.000", "S82.200")}
# How exam-heavy a diagnosis is (case mix): a cold needs little, heart failure or a lung tumour a work-up.
_EXAM_BY_DIAG = {"J06.900": 0.6, "J03.900": 0.7, "R51.x00": 1.2, "I25.100": 1.3, "I50.900": 3.5, "I63.900": 1.5,
                 "C34.900": 1.8, "J18.900": 1.3, "S06.000": 1.5, "F20.900": 0.6, "I69.300": 0.8, "K80.200": 1.3}
DIAG_EXAM = np.array([_EXAM_BY_DIAG.get(c, 1.0) for c in DIAG_CODE])


@dataclass
class Chunk:
    """The tables of one chunk (pandas frames in contract field names) and its ground truth."""

    tables: dict[str, pd.DataFrame]
    labels: pd.DataFrame
    stock: pd.DataFrame  # (inst, item, month, dispensed, billed)
    clean: dict[str, np.ndarray] = field(default_factory=dict)  # entity level -> clean ids sampled


class _Enc:
    """Column store of encounters being built."""

    # cause: a second diagnosis (an injury's external cause, the disease of a planned-care stay);
    # extra: a third (Y96 of a work injury); alike: the typology an honest look-alike resembles (lookalikes.py)
    cols = ("psn", "kind", "inst", "dept", "diag", "day", "sec", "los", "tag", "ring", "flag", "cause", "extra",
            "alike")

    def __init__(self):
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, psn, kind, inst, dept, diag, day, sec, los=0, tag=-1, ring=-1, flag=0, cause=-1, extra=-1,
            alike=-1):
        n = len(np.atleast_1d(psn))
        if n == 0:
            return
        vals = dict(psn=psn, kind=kind, inst=inst, dept=dept, diag=diag, day=day, sec=sec, los=los, tag=tag,
                    ring=ring, flag=flag, cause=cause, extra=extra, alike=alike)
        self.parts.append({k: np.broadcast_to(np.asarray(v), (n,)).astype(np.int64) for k, v in vals.items()})

    def frame(self) -> dict[str, np.ndarray]:
        return {c: np.concatenate([p[c] for p in self.parts]) for c in self.cols}


# flags on encounters
F_LOWCARE, F_LOWTHRESH, F_INFLATE, F_SURGERY, F_FAKE, F_KEEP = 1, 2, 4, 8, 16, 32
F_FAMILY = 64  # a family at the pharmacy counter buying the same basket (honest look-alike of 空刷)
F_SICK = 128   # an outpatient visit whose comorbidities (高血压, 糖尿病) are recorded and worked up
# the person's own chronic drug at a pharmacy; the fund pays nothing (a liable party did); discharged to
# another hospital (医嘱转院)
F_OWNDRUG, F_SELFPAY, F_TRANSFER = 1 << 8, 1 << 9, 1 << 10


def simulate_chunk(world: World, sc: ScenarioConfig, chunk_no: int, psn_offset: int, n: int) -> Chunk:
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 2, chunk_no]))
    p = _persons(world, n, psn_offset, rng)
    enc, rings = _encounters(world, sc, p, rng, chunk_no)
    lines = _lines(world, sc, p, enc, rng)
    return _assemble(world, sc, p, enc, lines, rings, chunk_no, rng)


# ---------------------------------------------------------------------------------------------- persons
def _persons(world: World, n: int, offset: int, rng) -> dict[str, np.ndarray]:
    inst = world.inst
    # age at the start of the period: a Chinese-like pyramid
    band = rng.choice(5, n, p=[0.16, 0.22, 0.40, 0.14, 0.08])
    lo = np.array([0, 15, 30, 60, 75])[band]
    hi = np.array([15, 30, 60, 75, 95])[band]
    age = rng.uniform(lo, hi)
    sex = rng.integers(1, 3, n)
    employee = (age >= 18) & (age < 80) & (rng.random(n) < np.where(age < 60, 0.45, 0.35))
    insutype = np.where(employee, 310, 390)
    insutype = np.where((age > 85) & (rng.random(n) < 0.05), 340, insutype)
    # households: consecutive persons, 1-4 members, share district and preferred institutions
    sizes = rng.choice([1, 2, 3, 4], n, p=[0.25, 0.35, 0.25, 0.15])
    hh = np.repeat(np.arange(n), sizes)[:n]
    hh = np.unique(hh, return_inverse=True)[1]
    n_hh = hh.max() + 1
    n_dist = len(world.districts)
    hh_dist = rng.integers(0, n_dist, n_hh)
    district = hh_dist[hh]
    elsewhere = rng.random(n) < 0.04  # 异地参保: insured elsewhere, treated here
    insu_admdvs = np.where(elsewhere, rng.choice(OTHER_REGIONS, n), np.array(world.districts)[district])
    # preferred institutions, per household
    kind = inst["kind"].to_numpy()
    idist = inst["district"].map({d: i for i, d in enumerate(world.districts)}).to_numpy()
    attract = inst["attract"].to_numpy()

    def choose(mask_kind, same_share):
        out = np.empty(n_hh, dtype=np.int64)
        cand_all = np.flatnonzero(mask_kind)
        w_all = attract[cand_all] / attract[cand_all].sum()
        for d in range(n_dist):
            sel = np.flatnonzero(hh_dist == d)
            cand = cand_all[idist[cand_all] == d]
            if len(cand) == 0:
                cand = cand_all
            w = attract[cand] / attract[cand].sum()
            local = rng.choice(cand, len(sel), p=w)
            far = rng.choice(cand_all, len(sel), p=w_all)
            out[sel] = np.where(rng.random(len(sel)) < same_share, local, far)
        return out[hh]

    pref_hosp = choose(kind == INST_HOSPITAL, 0.7)
    clinic = choose(kind == INST_CLINIC, 0.95)
    pharm1 = choose(kind == INST_PHARMACY, 0.9)
    pharm2 = choose(kind == INST_PHARMACY, 0.7)
    old = np.clip((age - 35) / 50, 0, 1)
    r = rng.random((9, n))
    chronic = dict(
        htn=r[0] < 0.45 * old,
        dm=r[1] < 0.22 * old,
        chd=r[2] < 0.15 * old,
        copd=r[3] < 0.06 * old,
        ckd5=r[4] < 0.003 * old,
        psych=(r[5] < 0.005) & (age > 16),
        rehab=r[6] < 0.012 * old,
        cancer=r[7] < 0.004 * old,
    )
    mortality = 0.0008 + 0.06 * old ** 3
    dies = r[8] < mortality
    die_day = np.where(dies, rng.integers(0, world.n_days, n), -1)
    brdy = world.start - (age * 365.25).astype(np.int64)
    psn_no = _ids("2201", offset + np.arange(n), 14)
    return dict(n=n, age=age, sex=sex, insutype=insutype, district=district, insu_admdvs=insu_admdvs,
                elsewhere=elsewhere, hh=hh, pref_hosp=pref_hosp, clinic=clinic, pharm1=pharm1, pharm2=pharm2,
                die_day=die_day, brdy=brdy, psn_no=psn_no, **chronic)


def _ids(prefix: str, nums: np.ndarray, width: int) -> np.ndarray:
    return np.char.add(prefix, np.char.zfill(nums.astype(np.int64).astype(str), width))


def _days(world: World, rng, n: int) -> np.ndarray:
    return rng.choice(world.n_days, n, p=world.day_weight)


def _office_secs(rng, n: int) -> np.ndarray:
    h = rng.choice([8, 9, 10, 11, 13, 14, 15, 16], n, p=[0.16, 0.2, 0.18, 0.1, 0.06, 0.12, 0.1, 0.08])
    return h * 3600 + rng.integers(0, 3600, n)


# ------------------------------------------------------------------------------------------- encounters
def _dept_at(world: World, inst: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """The diagnosis' department where the institution has it, else internal medicine / general."""
    want = DIAG_DEPT[diag]
    has = _has_role(world)
    ok = has[inst, want]
    first, last = (DEPT_ROLE[r] for r in FALLBACK_ROLES)
    fallback = np.where(has[inst, first], first, last)
    return np.where(ok, want, fallback)


_HAS_ROLE_CACHE: dict[int, np.ndarray] = {}


def _has_role(world: World) -> np.ndarray:
    key = id(world)
    if key not in _HAS_ROLE_CACHE:
        m = np.zeros((len(world.inst), len(DEPT_ROLE)), dtype=bool)
        for i, roles in enumerate(world.inst["roles"]):
            for r in roles:
                m[i, DEPT_ROLE[r]] = True
        _HAS_ROLE_CACHE.clear()
        _HAS_ROLE_CACHE[key] = m
    return _HAS_ROLE_CACHE[key]


def _with_role(world: World, role: str, min_level: int = 1) -> np.ndarray:
    has = _has_role(world)
    lv = world.inst["level"].to_numpy()
    return np.flatnonzero(has[:, DEPT_ROLE[role]] & (world.inst["kind"].to_numpy() == INST_HOSPITAL)
                          & (lv >= min_level))


def _encounters(world: World, sc: ScenarioConfig, p: dict, rng, chunk_no: int):
    n, nd = p["n"], world.n_days
    age = p["age"]
    E = _Enc()
    kinds = world.inst["kind"].to_numpy()
    hospitals = np.flatnonzero(kinds == INST_HOSPITAL)
    pharmacies = np.flatnonzero(kinds == INST_PHARMACY)
    any_chronic = p["htn"] | p["dm"] | p["chd"] | p["copd"]

    # general outpatient
    lam = np.where(age < 12, 4.0, 2.0 + 0.04 * np.clip(age - 40, 0, None)) + 1.5 * any_chronic
    k = rng.poisson(lam)
    psn = np.repeat(np.arange(n), k)
    m = len(psn)
    diag = rng.choice(ACUTE, m)
    diag = np.where(age[psn] < 12, DIAG_IDX["J03.900"], diag)
    where = rng.random(m)
    inst = np.where(where < 0.55, p["clinic"][psn], p["pref_hosp"][psn])
    inst = np.where(where > 0.95, rng.choice(hospitals, m), inst)
    inst = np.where(age[psn] < 12, p["pref_hosp"][psn], inst)
    E.add(psn, OP, inst, _dept_at(world, inst, diag), diag, _days(world, rng, m), _office_secs(rng, m))

    # chronic refills (门诊慢特病): about every 30 days, at the hospital or the community clinic
    chronic_diag = np.select([p["dm"], p["htn"], p["chd"], p["copd"]],
                             [DIAG_IDX["E11.900"], DIAG_IDX["I10.x00"], DIAG_IDX["I25.100"], DIAG_IDX["J44.900"]], -1)
    who = np.flatnonzero(chronic_diag >= 0)
    place = np.where(rng.random(len(who)) < 0.5, p["pref_hosp"][who], p["clinic"][who])
    n_ref = nd // 30
    psn = np.repeat(who, n_ref)
    first = rng.integers(0, 30, len(who))
    day = np.repeat(first, n_ref) + np.tile(np.arange(n_ref) * 30, len(who)) + rng.integers(-3, 4, len(psn))
    keep = (day >= 0) & (day < nd) & (rng.random(len(psn)) < 0.85)
    psn, day = psn[keep], day[keep]
    inst = np.repeat(place, n_ref)[keep]
    diag = chronic_diag[psn]
    E.add(psn, CHRONIC, inst, _dept_at(world, inst, diag), diag, day, _office_secs(rng, len(psn)))

    # psychiatric follow-up (精神科) monthly, cancer (肺部肿瘤) monthly targeted drugs
    for flag, role, dcode, lvl in (("psych", "psychiatry", "F20.900", 1), ("cancer", "lung_cancer", "C34.900", 3)):
        who = np.flatnonzero(p[flag])
        if len(who) == 0:
            continue
        hosp = rng.choice(_with_role(world, role, lvl), len(who))
        psn = np.repeat(who, n_ref)
        day = np.repeat(rng.integers(0, 30, len(who)), n_ref) + np.tile(np.arange(n_ref) * 30, len(who))
        keep = day < nd
        psn, day, inst = psn[keep], day[keep], np.repeat(hosp, n_ref)[keep]
        E.add(psn, CHRONIC, inst, DEPT_ROLE[role], DIAG_IDX[dcode], day, _office_secs(rng, len(psn)))

    # hemodialysis (血液透析): 2-3 sessions a week at one dialysis centre
    who = np.flatnonzero(p["ckd5"])
    dial_centre = np.full(n, -1)
    if len(who):
        dial_centre[who] = rng.choice(_with_role(world, "dialysis"), len(who))
        weekday = (world.start.astype(int) + 3 + np.arange(nd)) % 7
        for i in who:
            pattern = (0, 2, 4) if rng.random() < 0.5 else (1, 3, 5)
            if rng.random() < 0.2:
                pattern = pattern[:2]
            days = np.flatnonzero(np.isin(weekday, pattern))
            E.add(np.full(len(days), i), DIALYSIS, dial_centre[i], DEPT_ROLE["dialysis"], DIAG_IDX["N18.500"],
                  days, 8 * 3600 + rng.integers(0, 4 * 3600, len(days)))

    # rehabilitation (康复理疗) courses of 10-20 weekday sessions
    who = np.flatnonzero(p["rehab"])
    rehab_centre = np.full(n, -1)
    if len(who):
        rehab_centre[who] = rng.choice(_with_role(world, "rehabilitation"), len(who))
        for i in who:
            free = 0
            for _ in range(rng.integers(1, 3)):
                s = rng.integers(0, nd - 30)
                s = s if s >= free else free + (s % 30)  # a second course follows the first, never alongside it
                days = s + np.arange(rng.integers(14, 28))
                free = days[-1] + 14
                days = days[days < nd]
                days = days[((world.start.astype(int) + 3 + days) % 7) < 5]
                E.add(np.full(len(days), i), REHAB, rehab_centre[i], DEPT_ROLE["rehabilitation"],
                      DIAG_IDX["I69.300"], days, 9 * 3600 + rng.integers(0, 6 * 3600, len(days)))

    # retail pharmacy purchases (药店购药)
    k = rng.poisson(3.0 + 4.0 * any_chronic)
    psn = np.repeat(np.arange(n), k)
    m = len(psn)
    inst = np.where(rng.random(m) < 0.7, p["pharm1"][psn], p["pharm2"][psn])
    h = rng.integers(8, 21, m) * 3600 + rng.integers(0, 3600, m)
    E.add(psn, PHARM, inst, DEPT_ROLE["pharmacy"], np.where(chronic_diag[psn] >= 0, chronic_diag[psn], ACUTE[0]),
          _days(world, rng, m), h)
    # honest look-alikes of the institution schemes, from their own random stream
    la = np.random.default_rng(np.random.SeedSequence([world.seed, 2, chunk_no, 9]))
    _honest_scheme_lookalikes(world, p, E, la, dial_centre, chronic_diag)

    # emergencies (急诊) and injuries (外伤, with the external cause as a second diagnosis)
    k = rng.poisson(0.08 + 0.15 * (age > 65))
    psn = np.repeat(np.arange(n), k)
    m = len(psn)
    inst = p["pref_hosp"][psn]
    diag = rng.choice(ACUTE, m)
    E.add(psn, ER, inst, _dept_at(world, inst, diag), diag, _days(world, rng, m), rng.integers(0, DAY, m))
    k = rng.poisson(0.03, n)
    psn = np.repeat(np.arange(n), k)
    m = len(psn)
    diag = rng.choice([DIAG_IDX["S72.000"], DIAG_IDX["S82.200"], DIAG_IDX["S06.000"]], m)
    admit = (diag == DIAG_IDX["S72.000"]) | (rng.random(m) < 0.25)
    inst = p["pref_hosp"][psn]
    s = sc["third_party_liability"]
    third = rng.random(m) < s.rate
    third[rng.choice(m, min(m, s.min_cases), replace=False)] = True
    cause = np.where(third, rng.choice(CAUSE_TP_IDX, m), CAUSE_FALL_IDX)
    tag = np.where(third, T["third_party_liability"], -1)
    los = np.where(admit, np.clip(rng.lognormal(np.log(10), 0.4, m), 3, 40).astype(int), 0)
    E.add(psn, np.where(admit, IP, ER), inst, _dept_at(world, inst, diag), diag, _days(world, rng, m),
          rng.integers(0, DAY, m), los=los, tag=tag, cause=cause, flag=np.where(admit & np.isin(diag, list(SURGICAL)), F_SURGERY, 0))

    # admissions (住院)
    lam = 0.03 + 0.004 * np.clip(age - 40, 0, None) + 0.1 * p["cancer"] + 0.05 * p["chd"]
    k = rng.poisson(lam)
    psn = np.repeat(np.arange(n), k)
    m = len(psn)
    admit_diags = np.array([i for i, d in enumerate(DIAGS) if d[3] == "admit"])
    sex_ok = np.array([DIAGS[i][4] for i in admit_diags])
    diag = rng.choice(admit_diags, m)
    bad_sex = (sex_ok[np.searchsorted(admit_diags, diag)] != 0) & (sex_ok[np.searchsorted(admit_diags, diag)] != p["sex"][psn])
    diag = np.where(bad_sex, DIAG_IDX["J18.900"], diag)
    diag = np.where(p["cancer"][psn] & (rng.random(m) < 0.7), DIAG_IDX["C34.900"], diag)
    diag = np.where(age[psn] < 12, DIAG_IDX["J18.900"], diag)
    inst = p["pref_hosp"][psn]
    needs3 = np.isin(diag, [DIAG_IDX["C34.900"]])
    lvl3 = _with_role(world, "lung_cancer", 3)
    inst = np.where(needs3, rng.choice(lvl3, m), inst)
    med = {DIAG_IDX["I63.900"]: 14, DIAG_IDX["C34.900"]: 12, DIAG_IDX["M17.900"]: 10}
    median = np.array([med.get(d, 7) for d in diag])
    los = np.clip(rng.lognormal(np.log(median), 0.45), 2, 60).astype(int)
    surg = np.isin(diag, list(SURGICAL))
    E.add(psn, IP, inst, _dept_at(world, inst, diag), diag, _days(world, rng, m), rng.integers(8, 17, m) * 3600,
          los=los, flag=np.where(surg, F_SURGERY, 0))
    # psychiatric admissions: long stays
    who = np.flatnonzero(p["psych"] & (rng.random(n) < 0.3))
    if len(who):
        inst = rng.choice(_with_role(world, "psychiatry"), len(who))
        E.add(who, IP, inst, DEPT_ROLE["psychiatry"], DIAG_IDX["F20.900"], _days(world, rng, len(who)),
              10 * 3600, los=rng.integers(25, 60, len(who)))
    # honest readmissions: a confounder for split admission (real complications, other diagnoses)
    enc = E.frame()
    ip_idx = np.flatnonzero(enc["kind"] == IP)
    re = ip_idx[rng.random(len(ip_idx)) < 0.03]
    if len(re):
        gap = rng.integers(3, 40, len(re))
        same = rng.random(len(re)) < 0.5
        rdiag = np.where(same, enc["diag"][re], rng.choice(admit_diags, len(re)))
        inst = np.where(rng.random(len(re)) < 0.6, enc["inst"][re], p["pref_hosp"][enc["psn"][re]])
        # an honest return to the same place for the same illness comes after the 15-day window
        gap = np.where((inst == enc["inst"][re]) & (rdiag == enc["diag"][re]), rng.integers(16, 45, len(re)), gap)
        E.add(enc["psn"][re], IP, inst, _dept_at(world, inst, rdiag), rdiag, enc["day"][re] + enc["los"][re] + gap,
              rng.integers(8, 17, len(re)) * 3600, los=np.clip(rng.lognormal(np.log(6), 0.4, len(re)), 2, 30).astype(int))

    # honest low-threshold-looking admissions of the very old (a confounder)
    enc = E.frame()
    op_old = np.flatnonzero((enc["kind"] == OP) & (age[enc["psn"]] > 80) & (kinds[enc["inst"]] == INST_HOSPITAL))
    conv = op_old[rng.random(len(op_old)) < 0.01]
    _convert_to_admission(E, enc, conv, rng, np.clip(rng.integers(3, 8, len(conv)), 3, None), tag=-1, flag=0)

    rings = _fraud_encounters(world, sc, p, E, rng, chunk_no, dial_centre, rehab_centre, pharmacies, hospitals)
    _lookalike_encounters(world, sc, p, E, rng)
    enc = E.frame()
    enc = _without_honest_care_during_stays(enc)
    # the dead do not visit (unless someone uses their card: tagged dead_person above)
    die = p["die_day"][enc["psn"]]
    alive = (die < 0) | (enc["day"] <= die) | (enc["tag"] == T["dead_person"])
    enc = {k: v[alive] for k, v in enc.items()}
    die = p["die_day"][enc["psn"]]
    # a stay that runs past the death ends with it (died in hospital)
    dies_in_stay = (die >= 0) & (enc["tag"] != T["dead_person"]) & (enc["day"] + enc["los"] > die)
    enc["los"] = np.where(dies_in_stay, np.maximum(die - enc["day"], 0), enc["los"])
    inrange = (enc["day"] >= 0) & (enc["day"] < nd)
    enc = {k: v[inrange] for k, v in enc.items()}
    enc["los"] = np.minimum(enc["los"], nd - 1 - enc["day"])
    enc["los"] = np.where(enc["kind"] == IP, np.maximum(enc["los"], 1), 0)
    order = np.lexsort((enc["sec"], enc["day"], enc["psn"]))
    enc = {k: v[order] for k, v in enc.items()}
    enc["doc"] = _doctors(world, enc, rng)
    for r in rings:  # the members of a collusive ring see the colluding doctors
        if r["docs"]:
            m = enc["ring"] == r["ring"]
            enc["doc"][m] = rng.choice(np.asarray(r["docs"]), int(m.sum()))
    return enc, rings


def _honest_scheme_lookalikes(world: World, p: dict, E: _Enc, rng, dial_centre, chronic_diag) -> None:
    """Honest care that resembles an institution scheme; the scheme rules must not flag it.

    - 血液透析: a make-up session on a Sunday once or twice a year (4 sessions that week, before a holiday);
    - 精神科: long honest stays (60-150 days) of some schizophrenia patients;
    - 心内科: referred heart patients at the cardiac centre (world._honest_lookalikes), sicker than elsewhere
      (heart failure more often): more exams per visit because of the case mix;
    - 药店: late-opening shops with many evening and weekend sales; families at the counter together (2-4
      cards a minute or two apart, half of them with the same basket); queues at the pharmacy beside a
      hospital after the morning clinic (customers minutes apart, each with their own basket).
    """
    n, nd = p["n"], world.n_days
    inst = world.inst
    weekday = (world.start.astype(int) + 3 + np.arange(nd)) % 7
    who = np.flatnonzero(dial_centre >= 0)
    sundays = np.flatnonzero(weekday == 6)
    for i in who:
        k = int(rng.integers(1, 3))
        E.add(np.full(k, i), DIALYSIS, dial_centre[i], DEPT_ROLE["dialysis"], DIAG_IDX["N18.500"],
              rng.choice(sundays, k, replace=False), 8 * 3600 + rng.integers(0, 4 * 3600, k))
    who = np.flatnonzero(p["psych"] & (rng.random(n) < 0.25))
    if len(who):
        E.add(who, IP, rng.choice(_with_role(world, "psychiatry"), len(who)), DEPT_ROLE["psychiatry"],
              DIAG_IDX["F20.900"], rng.integers(0, max(1, nd - 160), len(who)), 10 * 3600,
              los=rng.integers(60, 150, len(who)))
    centre = np.flatnonzero(inst["cardiac_centre"].to_numpy())
    cardio = _with_role(world, "cardiology", 2)
    who = np.flatnonzero(p["chd"] | (p["htn"] & (p["age"] > 65)))
    if len(who) and len(cardio):
        psn = np.repeat(who, rng.poisson(2.0, len(who)))
        m = len(psn)
        sick = p["htn"][psn] | p["dm"][psn]  # comorbid: referred to the centre more often
        at_centre = (rng.random(m) < np.where(sick, 0.7, 0.3)) & (len(centre) > 0)
        own = p["pref_hosp"][psn]
        own = np.where(np.isin(own, cardio), own, rng.choice(cardio, m))
        where = np.where(at_centre, centre[0] if len(centre) else -1, own)
        diag = np.where(rng.random(m) < np.where(at_centre, 0.7, 0.1), DIAG_IDX["I50.900"], DIAG_IDX["I25.100"])
        E.add(psn, OP, where, DEPT_ROLE["cardiology"], diag, _days(world, rng, m), _office_secs(rng, m),
              flag=np.where(sick, F_SICK, 0))
    # pharmacies
    evening = inst["evening_shop"].to_numpy()
    who = np.flatnonzero(evening[p["pharm1"]])
    psn = np.repeat(who, rng.poisson(1.5, len(who)))
    m = len(psn)
    weekend = np.flatnonzero(weekday >= 5)
    day = np.where(rng.random(m) < 0.4, rng.choice(weekend, m), _days(world, rng, m))
    E.add(psn, PHARM, p["pharm1"][psn], DEPT_ROLE["pharmacy"], np.where(chronic_diag[psn] >= 0, chronic_diag[psn],
          ACUTE[0]), day, rng.integers(19, 23, m) * 3600 + rng.integers(0, 3600, m))
    sizes = np.bincount(p["hh"])
    starts = np.r_[0, np.cumsum(sizes)[:-1]]  # a household's members are consecutive persons
    hh = np.flatnonzero(sizes >= 2)
    trips = np.repeat(hh, rng.poisson(0.5, len(hh)))
    for h in trips:
        members = starts[h] + np.arange(sizes[h])
        k = int(rng.integers(2, len(members) + 1))
        go = rng.choice(members, k, replace=False)
        same = rng.random() < 0.5
        E.add(go, PHARM, p["pharm1"][go[0]], DEPT_ROLE["pharmacy"], ACUTE[0], _days(world, rng, 1)[0],
              int(rng.integers(9, 20)) * 3600 + np.cumsum(rng.integers(30, 180, k)), flag=F_FAMILY if same else 0)
    near = inst["near_hospital"].to_numpy()
    shops = np.flatnonzero(near >= 0)
    if len(shops):
        enc = E.frame()
        op = np.flatnonzero(np.isin(enc["kind"], [OP, CHRONIC]) & np.isin(enc["inst"], near[shops])
                            & (rng.random(len(enc["kind"])) < 0.5))
        shop_of = {int(near[s]): int(s) for s in shops}
        shop = np.array([shop_of[int(h)] for h in enc["inst"][op]], dtype=np.int64)
        day = enc["day"][op]
        # the queue after the morning clinic: from 10:00, a customer every one to four minutes
        order = np.lexsort((enc["sec"][op], day, shop))
        shop, day, psn = shop[order], day[order], enc["psn"][op][order]
        first = np.r_[True, (shop[1:] != shop[:-1]) | (day[1:] != day[:-1])]
        gaps = rng.integers(60, 240, len(shop))
        cum = np.cumsum(gaps)
        start = np.maximum.accumulate(np.where(first, np.arange(len(shop)), 0))
        secs = 10 * 3600 + cum - cum[start] + gaps[start]
        E.add(psn, PHARM, shop, DEPT_ROLE["pharmacy"], np.where(chronic_diag[psn] >= 0, chronic_diag[psn], ACUTE[0]),
              day, secs)


def _without_honest_care_during_stays(enc: dict) -> dict:
    """An honest patient is in bed during a stay: no visits, purchases or second stays on the days between
    admission and discharge (those that remain are fraud: card theft, bed hold). A resale buyer buys in
    person, so neither does he buy while he lies in hospital."""
    n_days_max = 1 << 20
    ip = np.flatnonzero((enc["kind"] == IP) & (enc["los"] >= 2))
    los = enc["los"][ip]
    inside = np.repeat(enc["psn"][ip] * n_days_max + enc["day"][ip], los - 1) + (
        np.concatenate([np.arange(1, k) for k in los]) if len(los) else np.array([], dtype=np.int64))
    key = enc["psn"] * n_days_max + enc["day"]
    honest = (enc["tag"] < 0) & ((enc["flag"] & F_KEEP) == 0)
    drop = (honest | (enc["tag"] == T["drug_resale"])) & np.isin(key, inside)
    # two honest stays for the same illness at the same hospital are more than 15 days apart
    ipx = np.flatnonzero((enc["kind"] == IP) & ~drop & (enc["alike"] != T["split_admission"]))
    order = ipx[np.lexsort((enc["day"][ipx], enc["diag"][ipx], enc["inst"][ipx], enc["psn"][ipx]))]
    same = ((enc["psn"][order][1:] == enc["psn"][order][:-1]) & (enc["inst"][order][1:] == enc["inst"][order][:-1])
            & (enc["diag"][order][1:] == enc["diag"][order][:-1])
            & (enc["day"][order][1:] - (enc["day"][order][:-1] + enc["los"][order][:-1]) <= 15))
    later = order[1:][same]
    drop[later[enc["tag"][later] < 0]] = True
    return {k: v[~drop] for k, v in enc.items()}


def _convert_to_admission(E: _Enc, enc, idx, rng, los, *, tag, flag):
    """Outpatient visits turned into short admissions (the visit itself is dropped by a mask later)."""
    if len(idx) == 0:
        return
    E.add(enc["psn"][idx], IP, enc["inst"][idx], enc["dept"][idx], enc["diag"][idx], enc["day"][idx],
          rng.integers(8, 17, len(idx)) * 3600, los=los, tag=tag, flag=flag)


def _doctors(world: World, enc, rng) -> np.ndarray:
    key = enc["inst"] * 100 + enc["dept"]
    out = np.empty(len(key), dtype=np.int64)
    uniq, inv = np.unique(key, return_inverse=True)
    for j, kk in enumerate(uniq):
        sel = np.flatnonzero(inv == j)
        docs = world.docs_for(int(kk // 100), int(kk % 100))
        out[sel] = docs[rng.integers(0, len(docs), len(sel))]
    return out


def _n_cases(rate: float, n_elig: int, min_cases: int) -> int:
    return min(n_elig, max(min_cases, int(round(rate * n_elig))))


def _fraud_encounters(world, sc, p, E: _Enc, rng, chunk_no, dial_centre, rehab_centre, pharmacies, hospitals):
    n, nd = p["n"], world.n_days
    enc = E.frame()
    rings = []

    # dead_person: the card of someone who died keeps being used (refills, purchases)
    s = sc["dead_person"]
    dead = np.flatnonzero((p["die_day"] >= 0) & (p["die_day"] < nd - 20))
    for i in rng.choice(dead, _n_cases(s.rate, len(dead), s.min_cases), replace=False) if len(dead) else []:
        k = int(rng.integers(*[int(x) for x in s.intensity]))
        days = np.sort(rng.integers(p["die_day"][i] + 3, nd, k))
        # the card is swiped at pharmacies and for outpatient visits (no refills: no days supply to overlap)
        pharm = rng.random(k) < 0.6
        inst = np.where(pharm, p["pharm1"][i], p["clinic"][i])
        E.add(np.full(k, i), np.where(pharm, PHARM, OP), inst,
              np.where(pharm, DEPT_ROLE["pharmacy"], DEPT_ROLE["internal"]), DIAG_IDX["J06.900"], days,
              _office_secs(rng, k), tag=T["dead_person"])

    # card_theft: purchases while the holder is in hospital elsewhere
    s = sc["card_theft"]
    ip = np.flatnonzero((enc["kind"] == IP) & (enc["los"] >= 4) & (enc["tag"] < 0) & (enc["day"] + enc["los"] < nd - 2))
    pick = rng.choice(ip, _n_cases(s.rate * n / max(len(ip), 1), len(ip), s.min_cases), replace=False) if len(ip) else []
    theft_stays = np.asarray(pick, dtype=np.int64)  # the holder really is in bed there: not a bed-hold stay
    for e in pick:
        i = enc["psn"][e]
        k = int(rng.integers(*[int(x) for x in s.intensity]))
        far = pharmacies[world.inst["district"].to_numpy()[pharmacies] != world.districts[p["district"][i]]]
        if len(far) == 0:
            far = pharmacies
        days = enc["day"][e] + rng.integers(1, max(2, enc["los"][e]), k)
        E.add(np.full(k, i), PHARM, rng.choice(far), DEPT_ROLE["pharmacy"], DIAG_IDX["I10.x00"], days,
              rng.integers(9, 21, k) * 3600, tag=T["card_theft"], flag=F_INFLATE)

    # over_prescription: chronic patients drawing well beyond their need from several places, over months
    _over_prescription(world, sc["over_prescription"], p, E, enc, rng, hospitals, pharmacies)

    # split_admission: one stay billed as two, discharge and readmission within days, same diagnosis
    s = sc["split_admission"]
    ip = np.flatnonzero((enc["kind"] == IP) & (enc["los"] >= 6) & (enc["tag"] < 0) & ((enc["flag"] & F_SURGERY) == 0))
    ip = np.setdiff1d(ip, theft_stays)  # shortening a stay would move its card-theft purchases out of it
    pick = rng.choice(ip, _n_cases(s.rate, len(ip), s.min_cases), replace=False) if len(ip) else np.array([], int)
    if len(pick):
        first = np.maximum(2, (enc["los"][pick] * rng.uniform(0.4, 0.6, len(pick))).astype(int))
        gap = rng.integers(s.gap_days[0], s.gap_days[1] + 1, len(pick))
        rest = np.maximum(2, enc["los"][pick] - first)
        E.add(enc["psn"][pick], IP, enc["inst"][pick], enc["dept"][pick], enc["diag"][pick],
              enc["day"][pick] + first + gap, rng.integers(8, 17, len(pick)) * 3600, los=rest,
              tag=T["split_admission"])
        _shorten = dict(zip(pick.tolist(), first.tolist()))
    else:
        _shorten = {}

    # bed_hold: in bed on paper, out and about in reality (visits and purchases elsewhere during the stay)
    s = sc["bed_hold"]
    ip = np.flatnonzero((enc["kind"] == IP) & (enc["los"] >= 5) & (enc["tag"] < 0) & ((enc["flag"] & F_SURGERY) == 0)
                        & (enc["day"] + enc["los"] < nd - 2) & ~np.isin(enc["diag"], [DIAG_IDX["I63.900"]]))
    ip = np.setdiff1d(ip, np.concatenate([np.asarray(list(_shorten), dtype=np.int64), theft_stays]))
    pick = rng.choice(ip, _n_cases(s.rate, len(ip), s.min_cases), replace=False) if len(ip) else np.array([], int)
    bed_hold = set(pick.tolist())
    for e in pick:
        i = enc["psn"][e]
        k = int(rng.integers(1, 4))
        days = enc["day"][e] + rng.integers(1, enc["los"][e], k)
        E.add(np.full(k, i), PHARM, p["pharm1"][i], DEPT_ROLE["pharmacy"], ACUTE[0], days,
              rng.integers(9, 20, k) * 3600, flag=F_KEEP)

    # low_threshold_admission: offending hospitals admit what an outpatient visit would treat
    lt = world.inst["low_threshold_admission"].to_numpy()
    op = np.flatnonzero((enc["kind"] == OP) & (lt[enc["inst"]] > 0) & np.isin(enc["diag"], LOW_THRESHOLD_DIAGS))
    conv = op[rng.random(len(op)) < lt[enc["inst"][op]]]
    # one such admission per person: two of them within 15 days would also read as a split admission
    conv = conv[np.unique(enc["psn"][conv], return_index=True)[1]]
    _convert_to_admission(E, enc, conv, rng, rng.integers(3, 7, len(conv)), tag=T["low_threshold_admission"],
                          flag=F_LOWTHRESH)
    drop = set(conv.tolist())

    # fake_treatment: extra dialysis sessions (>3 a week) and rehab sessions every day, at offending centres
    ft = world.inst["fake_treatment"].to_numpy()
    for kind, centre in ((DIALYSIS, dial_centre), (REHAB, rehab_centre)):
        sel = np.flatnonzero((enc["kind"] == kind) & (ft[enc["inst"]] > 0))
        if len(sel) == 0:
            continue
        extra = np.repeat(sel, rng.poisson((ft[enc["inst"][sel]] - 1) * 0.6))
        E.add(enc["psn"][extra], kind, enc["inst"][extra], enc["dept"][extra], enc["diag"][extra],
              enc["day"][extra] + rng.integers(1, 3, len(extra)), 14 * 3600 + rng.integers(0, 3 * 3600, len(extra)),
              tag=T["fake_treatment"], flag=F_FAKE)
    # fake psychiatric follow-ups at offending hospitals with psychiatry
    sel = np.flatnonzero((enc["dept"] == DEPT_ROLE["psychiatry"]) & (ft[enc["inst"]] > 0) & (enc["kind"] == CHRONIC))
    extra = np.repeat(sel, rng.poisson(ft[enc["inst"][sel]]))
    E.add(enc["psn"][extra], CHRONIC, enc["inst"][extra], enc["dept"][extra], enc["diag"][extra],
          enc["day"][extra] + rng.integers(5, 20, len(extra)), _office_secs(rng, len(extra)),
          tag=T["fake_treatment"], flag=F_FAKE)

    # phantom_purchase (空刷): in the evening an operator swipes cards from a pool collected from customers,
    # one after the other (a card every one to four minutes), each for the session's basket at a round sum.
    # A shop has one pool: it is drawn in one chunk of persons (the chunk its number picks), and swiped as
    # often as the whole region's customers of the shop would be; drawn in every chunk, a region of several
    # chunks had several pools per shop that never swiped together (each chunk's persons are its own).
    n_chunks = -(-world.preset.n_persons // world.preset.chunk_persons)
    ph = world.inst["phantom_purchase"].to_numpy()
    sel = np.flatnonzero((enc["kind"] == PHARM) & (ph[enc["inst"]] > 0) & (enc["tag"] < 0))
    for shop in np.unique(enc["inst"][sel]):
        if shop % n_chunks != chunk_no % n_chunks:
            continue
        mine = sel[enc["inst"][sel] == shop]
        customers = np.unique(enc["psn"][mine])
        customers = customers[p["die_day"][customers] < 0]  # the living: a dead card is 冒用, another scheme
        pool = rng.choice(customers, min(len(customers), int(rng.integers(20, 41))), replace=False)
        to_swipe = int(rng.poisson(ph[shop] * len(mine) * n_chunks))
        while to_swipe > 0 and len(pool):
            k = min(int(rng.integers(6, 15)), len(pool), max(to_swipe, 6))
            secs = int(rng.integers(19 * 3600, 21 * 3600)) + np.cumsum(rng.integers(60, 240, k))
            E.add(rng.choice(pool, k, replace=False), PHARM, shop, DEPT_ROLE["pharmacy"], ACUTE[0],
                  int(rng.integers(0, nd)), secs, tag=T["phantom_purchase"], flag=F_FAKE)
            to_swipe -= k

    # cross_region: out-of-region insured with inflated claims here
    s = sc["cross_region"]
    out = np.flatnonzero(p["elsewhere"])
    for i in rng.choice(out, _n_cases(s.rate, len(out), s.min_cases), replace=False) if len(out) else []:
        k = int(rng.integers(2, 7))
        inst = rng.choice(hospitals, k)
        E.add(np.full(k, i), OP, inst, DEPT_ROLE["internal"], rng.choice(ACUTE, k), _days(world, rng, k),
              _office_secs(rng, k), tag=T["cross_region"], flag=F_INFLATE)

    # rings: drug resale (倒卖医保药品) and collusive groups (结伙就医) with an organiser
    taken = np.zeros(n, dtype=bool)
    for rtype in ("drug_resale", "collusive_ring"):
        s = sc[rtype]
        n_rings = max(s.min_cases, int(round(s.rate * n)))
        for r in range(n_rings):
            ring_id = len(rings)
            size = int(rng.integers(s.members[0], s.members[1] + 1))
            adults = np.flatnonzero((p["age"] > 25) & ~taken & (p["die_day"] < 0))
            # members come from a few households (friends and family of the organiser)
            members = rng.choice(adults, size + 1, replace=False)
            taken[members] = True
            organiser, members = members[0], members[1:]
            if rtype == "drug_resale":
                shops = rng.choice(pharmacies, min(len(pharmacies), int(rng.integers(3, 6))), replace=False)
                # the broker takes buyers to the shops: on about half of a buyer's trips the broker buys
                # too, at the same shop a little earlier the same day, which makes the broker the ring's hub
                for i in members:
                    k = int(rng.integers(8, 20))
                    days = np.sort(rng.integers(0, nd, k))
                    shop = rng.choice(shops, k)
                    secs = rng.integers(9, 19, k) * 3600
                    E.add(np.full(k, i), PHARM, shop, DEPT_ROLE["pharmacy"], DIAG_IDX["E11.900"],
                          days, secs, tag=T["drug_resale"], ring=ring_id, flag=F_INFLATE)
                    come = rng.random(k) < 0.5
                    E.add(np.full(int(come.sum()), organiser), PHARM, shop[come], DEPT_ROLE["pharmacy"],
                          DIAG_IDX["E11.900"], days[come], secs[come] - rng.integers(300, 1800, int(come.sum())),
                          tag=T["drug_resale"], ring=ring_id, flag=F_INFLATE)
                rings.append(dict(ring=ring_id, type=rtype, organiser=organiser, members=members, docs=[],
                                  shops=shops.tolist()))
            else:
                lv = world.inst["level"].to_numpy()
                host = rng.choice(hospitals[(lv[hospitals] <= 2)])
                dept = DEPT_ROLE["rehabilitation"] if _has_role(world)[host, DEPT_ROLE["rehabilitation"]] else DEPT_ROLE["internal"]
                docs = world.docs_for(int(host), int(dept))
                docs = rng.choice(docs, min(2, len(docs)), replace=False)
                gdays = np.sort(rng.choice(nd, int(rng.integers(8, 16)), replace=False))
                group = np.concatenate([[organiser], members])
                for d in gdays:
                    # the organiser brings the group every time; members come most times
                    come = group[(rng.random(len(group)) < 0.75) | (group == organiser)]
                    E.add(come, OP, host, dept, DIAG_IDX["M54.500"], d,
                          9 * 3600 + rng.integers(0, 2 * 3600, len(come)), tag=T["collusive_ring"], ring=ring_id,
                          flag=F_INFLATE)
                rings.append(dict(ring=ring_id, type=rtype, organiser=organiser, members=members,
                                  docs=docs.tolist(), host=int(host), dept=int(dept)))

    # apply the structural edits to the honest frame: shortened stays, converted visits, bed-hold flags
    full = E.frame()
    idx = np.arange(len(full["psn"]))
    keep = ~np.isin(idx, list(drop))
    for e, first in _shorten.items():
        full["los"][e] = first
        full["flag"][e] |= F_KEEP  # the first half of a split stay: its readmission's label depends on it
    for e in bed_hold:
        full["tag"][e] = T["bed_hold"]
        full["flag"][e] |= F_LOWCARE
    E.parts = [{k: v[keep] for k, v in full.items()}]
    return rings


def _over_prescription(world: World, s, p: dict, E: _Enc, enc: dict, rng, hospitals: np.ndarray,
                       pharmacies: np.ndarray) -> None:
    """超量开药/重复开药: chronic patients who draw ``s.intensity`` (1.4-2x) the days of drug their condition
    needs over 4-11 months: besides their own monthly refills, a month's supply now and then from one or two
    other hospitals or clinics (at least once) and one or two pharmacies (their own drug, ``F_OWNDRUG``)."""
    nd = world.n_days
    chronic_depts = [DEPT_ROLE["psychiatry"], DEPT_ROLE["lung_cancer"]]
    ch = np.flatnonzero((enc["kind"] == CHRONIC) & (enc["tag"] < 0) & ~np.isin(enc["dept"], chronic_depts))
    people = np.unique(enc["psn"][ch])
    people = people[~(p["psych"][people] | p["cancer"][people])]
    people = people[p["die_day"][people] < 0]  # alive all year: a death would cut the over-drawing short
    clinics = np.flatnonzero(world.inst["kind"].to_numpy() == INST_CLINIC)
    for i in rng.choice(people, _n_cases(s.rate, len(people), s.min_cases), replace=False) if len(people) else []:
        mine = ch[enc["psn"][ch] == i]
        span = int(rng.integers(min(120, nd), min(330, nd) + 1))
        start = int(rng.integers(0, nd - span + 1))
        own = np.count_nonzero((enc["day"][mine] >= start) & (enc["day"][mine] < start + span))
        refill = _refill_days(world, i, enc["diag"][mine[0]])  # what each refill, theirs or extra, supplies
        k = max(2, int(round((rng.uniform(*s.intensity) * span - refill * own) / refill)))
        home = enc["inst"][mine[0]]
        places = np.concatenate([hospitals, clinics])
        others = rng.choice(places[places != home], int(rng.integers(1, 3)), replace=False)
        shops = rng.choice(pharmacies, min(len(pharmacies), int(rng.integers(1, 3))), replace=False)
        at_shop = rng.random(k) < 0.4
        at_shop[rng.integers(k)] = False  # several prescribers: at least one other hospital or clinic
        place = np.where(at_shop, rng.choice(shops, k), rng.choice(others, k))
        diag = np.full(k, enc["diag"][mine[0]])
        E.add(np.full(k, i), np.where(at_shop, PHARM, CHRONIC), place,
              np.where(at_shop, DEPT_ROLE["pharmacy"], _dept_at(world, place, diag)), diag,
              np.sort(rng.integers(start, start + span, k)), _office_secs(rng, k), tag=T["over_prescription"],
              flag=np.where(at_shop, F_OWNDRUG, 0))


def _lookalike_encounters(world: World, sc: ScenarioConfig, p: dict, E: _Enc, rng) -> None:
    """Honest care that resembles a violation (``lookalikes.py``), unless the scenario file switches it off."""
    if not sc.lookalikes.enabled:
        return
    from .lookalikes import add_lookalikes

    add_lookalikes(world, sc.lookalikes, p, E, rng)


# ---------------------------------------------------------------------------------------------- lines
class _Lines:
    cols = ("enc", "item", "cnt", "price", "sec", "tag", "dispensed")

    def __init__(self):
        self.parts = []

    def add(self, enc, item, cnt, price, sec, tag=-1, dispensed=None):
        n = len(np.atleast_1d(enc))
        if n == 0:
            return
        if dispensed is None:
            dispensed = item
        vals = dict(enc=enc, item=item, cnt=cnt, price=price, sec=sec, tag=tag, dispensed=dispensed)
        part = {}
        for k, v in vals.items():
            dtype = np.float64 if k in ("cnt", "price") else np.int64
            part[k] = np.broadcast_to(np.asarray(v), (n,)).astype(dtype)
        self.parts.append(part)

    def frame(self):
        return {c: np.concatenate([p[c] for p in self.parts]) for c in self.cols}


def _lines(world: World, sc: ScenarioConfig, p: dict, enc: dict, rng) -> dict:
    cat = world.cat
    inst = world.inst
    price = cat["price"].to_numpy()
    lv = inst["level"].to_numpy()
    # services are priced at the cap at level 3, a little under it lower down
    level_price = np.select([lv == 3, lv == 2], [1.0, 0.95], 0.9)
    is_service = cat["list_type"].isin(["201", "301"]).to_numpy()
    L = _Lines()
    ne = len(enc["psn"])
    kind, einst, edoc = enc["kind"], enc["inst"], enc["doc"]
    flag = enc["flag"]
    start = enc["day"] * DAY + enc["sec"]
    role = lambda r: world.role_items(r)  # noqa: E731
    vbp_sel, vbp_alt = _vbp_maps(cat)

    def svc_price(items, e):
        return np.round(price[items] * np.where(is_service[items], level_price[einst[e]], 1.0), 2)

    def add(e, items, cnt=1.0, sec_off=None, tag=-1):
        if len(e) == 0:
            return
        items = _vbp_choice(items, einst[e], inst["vbp_share"].to_numpy(), vbp_sel, vbp_alt, rng)
        sec = start[e] + (rng.integers(0, 1800, len(e)) if sec_off is None else sec_off)
        L.add(e, items, cnt, svc_price(items, e), sec, tag)

    # consultations
    for k, r in ((OP, "consult_op"), (CHRONIC, "consult_op"), (ER, "consult_er"), (REHAB, "consult_op"),
                 (DIALYSIS, "consult_op")):
        e = np.flatnonzero(kind == k)
        add(e, np.full(len(e), role(r)[0]), sec_off=np.zeros(len(e), dtype=np.int64))

    # exams and labs, scaled by the institution's and the doctor's habits (and over-examination)
    inst_f = inst["exam_factor"].to_numpy()[einst]
    doc_f = world.prac["exam_factor"].to_numpy()[edoc]
    # over-examination: the doctors of the scheme's departments at the institution's intensity
    doc_oe = world.prac["over_examination"].to_numpy()[edoc]
    extra = np.where(doc_oe > 0, doc_oe - 1, 0)
    # case mix: the diagnosis, and for a stay the comorbidities recorded with it (assemble.py: 高血压, 糖尿病)
    recorded = (kind == IP) | ((flag & F_SICK) > 0)
    comorbid = np.where(recorded, (p["htn"][enc["psn"]] & (enc["diag"] != DIAG_IDX["I10.x00"])).astype(int)
                        + (p["dm"][enc["psn"]] & (enc["diag"] != DIAG_IDX["E11.900"])), 0)
    case_mix = DIAG_EXAM[enc["diag"]] * (1 + 0.25 * comorbid)
    base_exam = np.select([kind == OP, kind == ER, kind == IP, kind == CHRONIC], [0.25, 0.8, 1.5, 0.15], 0.0)
    base_lab = np.select([kind == OP, kind == ER, kind == IP, kind == CHRONIC], [0.45, 1.4, 3.0, 0.35], 0.0)
    base_lab = base_lab + np.where(kind == IP, 0.3 * enc["los"], 0)
    lowcare = (flag & F_LOWCARE) > 0
    base_exam = np.where(lowcare, 0.2, base_exam)
    base_lab = np.where(lowcare, 0.5, base_lab)
    honest_mult = inst_f * doc_f * case_mix
    # the scheme's target (every patient gets the package: 检查套餐) is set against the usual work-up of the
    # case, not against the doctor's own habit
    extra_mult = extra * case_mix
    for base, r in ((base_exam, "exam"), (base_lab, "lab")):
        items = role(r)
        for mult, tag in ((honest_mult, -1), (extra_mult, T["over_examination"])):
            cnt = rng.poisson(base * mult)
            e = np.repeat(np.arange(ne), cnt)
            los = np.maximum(enc["los"][e], 1)
            add(e, rng.choice(items, len(e)), sec_off=rng.integers(0, los) * DAY + rng.integers(1800, 7200, len(e)),
                tag=tag)

    # outpatient and emergency drugs
    e = np.flatnonzero(np.isin(kind, [OP, ER]))
    e = np.repeat(e, 1 + rng.poisson(1.2, len(e)))
    add(e, rng.choice(role("drug_acute"), len(e)), cnt=rng.integers(1, 3, len(e)))
    # paediatric drugs (限儿童): honest use for children
    kids = np.flatnonzero(np.isin(kind, [OP]) & (p["age"][enc["psn"]] < 12) & (rng.random(ne) < 0.3))
    add(kids, rng.choice(role("drug_child"), len(kids)), cnt=1)
    # sex-specific drugs and exams, honest: only for the matching sex
    for r, sex in (("drug_gender_m", 1), ("drug_gender_f", 2), ("item_gender_f", 2), ("item_gender_m", 1)):
        e = np.flatnonzero((kind == OP) & (p["sex"][enc["psn"]] == sex) & (p["age"][enc["psn"]] > 30)
                           & (rng.random(ne) < 0.02))
        add(e, rng.choice(role(r), len(e)), cnt=1)
    # level-restricted drugs at level 2+ (honest), 30-day chronic refills
    e = np.flatnonzero(np.isin(kind, [OP, IP]) & (lv[einst] >= 2) & (rng.random(ne) < 0.03))
    add(e, rng.choice(role("drug_level2"), len(e)), cnt=1)
    _chronic_drugs(world, p, enc, rng, add, role)

    # pharmacy purchases: OTC and chronic drugs; the card holder's own basket
    e = np.flatnonzero((kind == PHARM) & ((flag & (F_FAKE | F_FAMILY | F_OWNDRUG)) == 0))
    e = np.repeat(e, 1 + rng.poisson(1.0, len(e)))
    has_chronic = (p["htn"] | p["dm"] | p["chd"] | p["copd"])[enc["psn"][e]]
    chronic = has_chronic & (rng.random(len(e)) < 0.3)
    pool_c, pool_o = role("drug_chronic"), np.concatenate([role("drug_otc"), role("drug_acute")])
    items = np.where(chronic, rng.choice(pool_c, len(e)), rng.choice(pool_o, len(e)))
    # a patient's own maintenance drug comes with the 慢病 refills, not on top of them at the pharmacy
    own = _maintenance_drug(world, enc["psn"][e], np.select(
        [p["dm"], p["htn"], p["chd"], p["copd"]],
        [DIAG_IDX["E11.900"], DIAG_IDX["I10.x00"], DIAG_IDX["I25.100"], DIAG_IDX["J44.900"]], -1)[enc["psn"][e]])
    items = np.where(chronic & _same_drug(world, items, own), rng.choice(pool_o, len(e)), items)
    infl = (flag[e] & F_INFLATE) > 0
    cnt = np.where(infl, rng.integers(4, 10, len(e)), np.where(chronic, 1, rng.integers(1, 3, len(e))))
    dear = np.array([i for i in pool_c if price[i] >= 80] or [pool_c[-1]])
    items = np.where(infl, rng.choice(dear, len(e)), items)
    add(e, items, cnt=cnt)
    # a family at the counter with the same basket: one over-the-counter item, the household's choice that
    # day (a cold going round the family; not each member's own prescription drug, which comes with refills)
    e = np.flatnonzero((kind == PHARM) & ((flag & F_FAMILY) > 0))
    if len(e):
        key = p["hh"][enc["psn"][e]] * 1000 + enc["day"][e]
        item = pool_o[key % len(pool_o)]
        L.add(e, item, 1.0 + (key // 7) % 2, price[item], start[e] + 60)

    # phantom swipes: the session's basket (one per pharmacy and day) plus herbs to reach a round amount.
    # The sales go through the pharmacy's stock system and the goods are bought in and sold on (回流药), so
    # its 进销存 balances: the swipe pattern, not the stock, gives it away.
    e = np.flatnonzero((kind == PHARM) & ((flag & F_FAKE) > 0))
    if len(e):
        dear_pool = pool_c[price[pool_c] >= 20]
        session = einst[e] * 7 + enc["day"][e]
        basket = dear_pool[session % len(dear_pool)]
        target = np.array([100.0, 200.0, 300.0, 500.0])[(einst[e] * 3 + enc["day"][e] * 5) % 4]
        n_box = np.maximum(1, np.floor((target * 0.8) / price[basket])).astype(int)
        target = np.maximum(target, 50.0 * np.ceil((n_box * price[basket] + 5) / 50.0))
        rest = np.round(target - n_box * price[basket], 2)
        herb = role("herb")[0]
        L.add(e, basket, n_box, price[basket], start[e], T["phantom_purchase"])
        # one dose (剂) of herbs priced at whatever makes the swipe a round sum
        L.add(e, herb, 1.0, rest, start[e] + 1, T["phantom_purchase"])

    # dialysis and rehab sessions
    e = np.flatnonzero(kind == DIALYSIS)
    add(e, np.full(len(e), role("dialysis")[0]), sec_off=np.full(len(e), 600), tag=np.where((flag[e] & F_FAKE) > 0, T["fake_treatment"], -1))
    add(e, np.full(len(e), [i for i in role("consumable") if "透析" in cat.at[i, "hilist_name"]][0]),
        sec_off=np.full(len(e), 600), tag=np.where((flag[e] & F_FAKE) > 0, T["fake_treatment"], -1))
    e2 = e[rng.random(len(e)) < 0.5]
    add(e2, np.full(len(e2), role("drug_dialysis")[0]), cnt=1, tag=np.where((flag[e2] & F_FAKE) > 0, T["fake_treatment"], -1))
    e = np.flatnonzero(kind == REHAB)
    e = np.repeat(e, rng.integers(2, 4, len(e)))
    rehab_items = np.array([i for i in role("rehab") if cat.at[i, "hilist_name"] != "手功能评定"])
    add(e, rng.choice(rehab_items, len(e)), tag=np.where((flag[e] & F_FAKE) > 0, T["fake_treatment"], -1))
    # psychiatry follow-ups
    e = np.flatnonzero((kind == CHRONIC) & (enc["dept"] == DEPT_ROLE["psychiatry"]))
    add(e, rng.choice(role("psych"), len(e)), tag=np.where((flag[e] & F_FAKE) > 0, T["fake_treatment"], -1))
    add(e, rng.choice(role("drug_psych"), len(e)), cnt=2, tag=np.where((flag[e] & F_FAKE) > 0, T["fake_treatment"], -1))
    e = np.flatnonzero((kind == CHRONIC) & (enc["dept"] == DEPT_ROLE["lung_cancer"]))
    add(e, np.full(len(e), role("drug_cancer")[0]), cnt=3)

    _inpatient_lines(world, sc, p, enc, rng, add, L, role, price, svc_price)
    lines = L.frame()
    lines = _line_fraud(world, sc, p, enc, lines, rng, role, price, svc_price)
    return lines


def _vbp_maps(cat: pd.DataFrame):
    n = len(cat)
    sel = np.arange(n)
    alt = np.arange(n)
    grp = cat["vbp_group"].to_numpy()
    flag = cat["vbp_flag"].to_numpy()
    for g in pd.unique(grp[pd.notna(grp)]):
        members = np.flatnonzero(grp == g)
        s = members[flag[members] == "1"][0]
        a = members[flag[members] == "0"][0]
        sel[members] = s
        alt[members] = a
    return sel, alt


def _vbp_choice(items, inst_idx, vbp_share, vbp_sel, vbp_alt, rng):
    items = np.asarray(items)
    has = vbp_sel[items] != vbp_alt[items]
    pick_sel = rng.random(len(items)) < vbp_share[inst_idx]
    return np.where(has, np.where(pick_sel, vbp_sel[items], vbp_alt[items]), items)


def _chronic_drugs(world, p, enc, rng, add, role):
    cat = world.cat
    kind, psn = enc["kind"], enc["psn"]
    e = np.flatnonzero(((kind == CHRONIC) & ~np.isin(enc["dept"], [DEPT_ROLE["psychiatry"], DEPT_ROLE["lung_cancer"]]))
                       | ((kind == PHARM) & ((enc["flag"] & F_OWNDRUG) > 0)))  # own drug at a pharmacy
    d = enc["diag"][e]
    item = _maintenance_drug(world, psn[e], d)
    dpu = cat["days_per_unit"].to_numpy()[item]
    # a 30-day refill: as many whole packs as fit in 30 days (门诊慢病 prescriptions cover up to 30 days)
    add(e, item, cnt=np.maximum(1, np.floor(30 / np.maximum(dpu, 1))))
    # diabetics: HbA1c every third refill, about quarterly as guidelines have it (batch 8-4's period limit is
    # once in 15 days: a test repeated at an early refill a week later is what it catches, not honest care)
    dm = e[(d == DIAG_IDX["E11.900"]) & (enc["tag"][e] < 0) & (kind[e] == CHRONIC)]
    dm = dm[np.lexsort((enc["day"][dm], psn[dm]))]
    first = np.r_[True, psn[dm][1:] != psn[dm][:-1]]
    nth = np.arange(len(dm)) - np.maximum.accumulate(np.where(first, np.arange(len(dm)), 0))
    hb = dm[(nth % 3) == (psn[dm] % 3)]
    add(hb, np.full(len(hb), role("lab_hba1c")[0]))


_MAINTENANCE = {"I10.x00": ("苯磺酸氨氯地平片(中选)", "缬沙坦胶囊"), "E11.900": ("盐酸二甲双胍片(中选)", "甘精胰岛素注射液"),
                "I25.100": ("阿托伐他汀钙片(中选)", "氯吡格雷片(中选)"), "J44.900": ("噻托溴铵粉吸入剂", "噻托溴铵粉吸入剂")}


def _maintenance_drug(world: World, psn: np.ndarray, diag: np.ndarray) -> np.ndarray:
    """The catalogue index of each chronic patient's own maintenance drug (one of two per condition, kept
    for life); -1 where the diagnosis has none."""
    name = world.cat["hilist_name"].to_numpy()
    item = np.full(len(psn), -1, dtype=np.int64)
    for code, names in _MAINTENANCE.items():
        m = diag == DIAG_IDX[code]
        first, second = (int(np.flatnonzero(name == nm)[0]) for nm in names)
        item[m] = np.where(psn[m] % 2 == 0, first, second)
    return item


def _refill_days(world: World, psn: int, diag: int) -> int:
    """The days of drug one 30-day refill of the patient's maintenance drug supplies (whole packs)."""
    item = _maintenance_drug(world, np.array([psn]), np.array([diag]))[0]
    dpu = max(int(world.cat["days_per_unit"].to_numpy()[item]), 1)
    return max(1, 30 // dpu) * dpu


def _same_drug(world: World, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Catalogue items that are the same drug: one 集采 group (substitutes), else one generic name."""
    cat = world.cat
    group = cat["vbp_group"].fillna("").to_numpy().astype(str)
    key = np.where(group != "", "G:" + group, "N:" + cat["generic_name"].fillna("").to_numpy().astype(str))
    return (b >= 0) & (key[a] == key[np.maximum(b, 0)])


def _inpatient_lines(world, sc, p, enc, rng, add, L, role, price, svc_price):
    kind, flag = enc["kind"], enc["flag"]
    cat = world.cat
    e_ip = np.flatnonzero(kind == IP)
    los = enc["los"][e_ip]
    start = enc["day"] * DAY
    # daily bed, nursing and ward-round fees (limited to once a day by batch 8-1)
    day_e = np.repeat(e_ip, los)
    day_n = np.concatenate([np.arange(k) for k in los]) if len(los) else np.array([], int)
    # the ward posts daily charges in its end-of-day batch (23:0x), whatever the admission time
    for r, minute in (("bed", 1), ("nursing", 2), ("consult_ip", 3)):
        add(day_e, np.full(len(day_e), role(r)[0]), sec_off=day_n * DAY + 23 * 3600 + minute * 60 - enc["sec"][day_e])
    # daily drugs: fewer on low-care (bed-hold) stays, and oral drugs only on low-threshold stays
    low = (flag[day_e] & F_LOWCARE) > 0
    per_day = np.where(low, rng.random(len(day_e)) < 0.2, 1 + rng.poisson(2.0, len(day_e)))
    de = np.repeat(np.arange(len(day_e)), per_day)
    lowthr = (flag[day_e[de]] & F_LOWTHRESH) > 0
    items = np.where(lowthr, rng.choice(role("drug_acute"), len(de)), rng.choice(role("drug_ip"), len(de)))
    add(day_e[de], items, cnt=np.where(lowthr, 1, rng.integers(1, 3, len(de))),
        sec_off=day_n[de] * DAY + 10 * 3600 + rng.integers(0, 3600, len(de)))
    # inpatient-only drugs (限住院): honest use in hospital
    ipo = e_ip[rng.random(len(e_ip)) < 0.15]
    add(ipo, rng.choice(role("drug_ip_only"), len(ipo)), cnt=1)
    # course-limited drugs (限支付疗程): stroke patients, within the allowed days
    course_items = role("drug_course")
    max_days = pd.to_numeric(cat["max_days"], errors="coerce").astype(float).to_numpy()
    stroke = e_ip[np.isin(enc["diag"][e_ip], [DIAG_IDX["I63.900"], DIAG_IDX["I69.300"]])]
    s = sc["course_length_limit"]
    n_bad = _n_cases(s.rate, len(stroke), s.min_cases) if len(stroke) else 0
    bad = set(rng.choice(stroke, n_bad, replace=False).tolist()) if n_bad else set()
    for e in stroke:
        it = course_items[e % len(course_items)]
        md = int(max_days[it]) if np.isfinite(max_days[it]) else 14
        if e in bad:
            n_days = int(md * rng.uniform(*s.intensity)) + 1
            days = np.arange(n_days)
            tag = np.where(days >= md, T["course_length_limit"], -1)
        else:
            days = np.arange(min(enc["los"][e], md))
            tag = -1
        add(np.full(len(days), e), np.full(len(days), it), cnt=1, sec_off=days * DAY + 11 * 3600, tag=tag)
    # surgery, anaesthesia and implants; an occasional honest second operation at half price
    su = e_ip[(flag[e_ip] & F_SURGERY) > 0]
    groups = list(world.surgery_groups.values())
    if len(su):
        g = rng.integers(0, len(groups), len(su))
        ops = np.array([groups[j][0] for j in g])
        add(su, ops, sec_off=np.full(len(su), DAY + 9 * 3600))
        add(su, rng.choice(role("anaesthesia"), len(su)), sec_off=np.full(len(su), DAY + 9 * 3600))
        implants = [i for i in role("consumable") if cat.at[i, "hilist_name"] in ("人工膝关节假体", "骨科内固定钢板")]
        ortho = su[np.isin(enc["diag"][su], [DIAG_IDX["M17.900"], DIAG_IDX["S72.000"], DIAG_IDX["S82.200"]])]
        add(ortho, rng.choice(implants, len(ortho)), sec_off=np.full(len(ortho), DAY + 10 * 3600))
        second = rng.random(len(su)) < 0.05
        sec_ops = np.array([groups[j][1] for j in g])[second]
        e2 = su[second]
        L.add(e2, sec_ops, 1.0, np.round(svc_price(sec_ops, e2) * 0.5, 2), start[e2] + DAY + 10 * 3600 + enc["sec"][e2])
    # duplicate-charge main items appear honestly on their own
    mains = world.dup_pairs["main"].to_numpy()
    e = e_ip[rng.random(len(e_ip)) < 0.1]
    add(e, rng.choice(mains, len(e)), sec_off=np.full(len(e), 2 * 3600 + 9 * 3600))
    # consumables for infusions
    add(e_ip, np.full(len(e_ip), role("consumable")[0]), cnt=np.maximum(1, los), sec_off=np.full(len(e_ip), 10 * 3600))


def _line_fraud(world, sc, p, enc, lines, rng, role, price, svc_price):
    """Two-library violations and billing fraud on fee lines."""
    cat = world.cat
    inst = world.inst
    kind = enc["kind"]
    add_parts = []
    start = enc["day"] * DAY + enc["sec"]
    sex = p["sex"][enc["psn"]]
    age = p["age"][enc["psn"]]
    lv = inst["level"].to_numpy()[enc["inst"]]

    def extra(e, items, tag, cnt=1.0, sec_off=None, pr=None):
        if len(e) == 0:
            return
        sec = start[e] + (rng.integers(0, 3600, len(e)) if sec_off is None else sec_off)
        add_parts.append(dict(enc=e, item=items, cnt=np.broadcast_to(cnt, len(e)).astype(float),
                              price=svc_price(items, e) if pr is None else pr, sec=sec,
                              tag=np.full(len(e), tag), dispensed=items))

    def pick_visits(mask, s):
        cand = np.flatnonzero(mask)
        k = _n_cases(s.rate, len(cand), s.min_cases) if len(cand) else 0
        return np.sort(rng.choice(cand, k, replace=False)) if k else np.array([], dtype=np.int64)

    honest = enc["tag"] < 0
    clinical = np.isin(kind, [OP, IP, CHRONIC]) & honest
    # gender / age limits: the other sex's drug or item, or a children's drug for an adult
    e = pick_visits(clinical & (age > 18), sc["gender_age_limit"])
    which = rng.integers(0, 3, len(e))
    male_item = np.where(rng.random(len(e)) < 0.5, rng.choice(role("drug_gender_m"), len(e)), rng.choice(role("item_gender_m"), len(e)))
    fem_item = np.where(rng.random(len(e)) < 0.5, rng.choice(role("drug_gender_f"), len(e)), rng.choice(role("item_gender_f"), len(e)))
    items = np.where(which == 2, rng.choice(role("drug_child"), len(e)), np.where(sex[e] == 1, fem_item, male_item))
    extra(e, items, T["gender_age_limit"])
    # insurance type: a 工伤-only drug billed to medical insurance
    e = pick_visits(clinical, sc["insurance_type_limit"])
    extra(e, rng.choice(role("drug_workinjury"), len(e)), T["insurance_type_limit"])
    # care setting: an inpatient-only drug in an outpatient visit or a pharmacy purchase
    e = pick_visits(np.isin(kind, [OP, PHARM]) & honest, sc["care_setting_limit"])
    extra(e, rng.choice(role("drug_ip_only"), len(e)), T["care_setting_limit"])
    # institution level: a 二级+ drug at a community clinic
    e = pick_visits((kind == OP) & (lv == 0) & honest, sc["institution_level_limit"])
    extra(e, rng.choice(role("drug_level2"), len(e)), T["institution_level_limit"])
    # duplicate charge: the main item and an included sub-item on the same day
    ip = (kind == IP) & honest & (enc["los"] >= 2)
    e = pick_visits(ip, sc["duplicate_charge"])
    pairs = world.dup_pairs.iloc[rng.integers(0, len(world.dup_pairs), len(e))]
    off = rng.integers(0, np.maximum(enc["los"][e], 1)) * DAY + 14 * 3600
    extra(e, pairs["main"].to_numpy(), -1, sec_off=off)
    extra(e, pairs["sub"].to_numpy(), T["duplicate_charge"], sec_off=off + 1800)
    # frequency: daily items billed twice on some days
    e = pick_visits(ip, sc["frequency_limit"])
    k = rng.integers(1, 4, len(e))
    e = np.repeat(e, k)
    day = rng.integers(0, np.maximum(enc["los"][e], 1))
    items = rng.choice([role("bed")[0], role("nursing")[0], role("consult_ip")[0]], len(e))
    keyd = np.unique(np.stack([e, day, items]), axis=1)
    # the extra charge is keyed in by hand during the day, outside the ward's batch
    extra(keyd[0], keyd[2], T["frequency_limit"],
          sec_off=keyd[1] * DAY + rng.integers(10, 17, keyd.shape[1]) * 3600 - enc["sec"][keyd[0]])
    # unbundled surgery: a second operation through the same incision at full price
    lines_surg = np.flatnonzero(np.isin(lines["item"], [g[0] for g in world.surgery_groups.values()]))
    s = sc["unbundled_surgery"]
    k = _n_cases(s.rate, len(lines_surg), s.min_cases) if len(lines_surg) else 0
    if k:
        pick = rng.choice(lines_surg, k, replace=False)
        first = lines["item"][pick]
        grp_of = {int(g[0]): g for g in world.surgery_groups.values()}
        second = np.array([grp_of[int(f)][2] for f in first])
        extra(lines["enc"][pick], second, T["unbundled_surgery"],
              sec_off=lines["sec"][pick] - start[lines["enc"][pick]] + 1800)
    lines = {c: np.concatenate([lines[c]] + [a[c] for a in add_parts]) for c in lines}

    # price over cap at offending institutions
    pc = inst["price_over_cap"].to_numpy()[enc["inst"]][lines["enc"]]
    share = inst["price_share"].to_numpy()[enc["inst"]][lines["enc"]]
    cap = cat["pric_uplmt_amt"].to_numpy()[lines["item"]]
    over = (pc > 0) & np.isfinite(cap) & (rng.random(len(pc)) < share) & (lines["tag"] < 0)
    lines["price"] = np.where(over, np.round(cap * pc, 2), lines["price"])
    lines["tag"] = np.where(over, T["price_over_cap"], lines["tag"])
    if sc.monitoring.evasion is not None:  # an evader keeps just under the cap from its month on
        lines["price"], lines["tag"] = evade_price_caps(world, sc.monitoring, enc, lines, cap, over,
                                                        len(lines["enc"]))
    # drug substitution: an offending pharmacy dispenses something cheap and bills a dear covered drug
    ds = inst["drug_substitution"].to_numpy()[enc["inst"]][lines["enc"]]
    drug = cat["list_type"].to_numpy()[lines["item"]] == "101"
    sub = (ds > 0) & drug & (rng.random(len(ds)) < ds) & (lines["tag"] < 0)
    pool = role("drug_chronic")
    dear = pool[price[pool] >= 40]
    billed = rng.choice(dear, len(ds))
    lines["dispensed"] = np.where(sub, lines["item"], lines["dispensed"])
    lines["item"] = np.where(sub, billed, lines["item"])
    lines["price"] = np.where(sub, price[billed], lines["price"])
    lines["tag"] = np.where(sub, T["drug_substitution"], lines["tag"])
    # vbp: non-selected products where a selected one exists, at the offending institutions (for amounts)
    vbp_off = inst["vbp_noncompliance"].to_numpy()[enc["inst"]][lines["enc"]] > 0
    vflag = cat["vbp_flag"].to_numpy()[lines["item"]]
    nonsel = vbp_off & (vflag == "0") & (lines["tag"] < 0)
    lines["tag"] = np.where(nonsel, T["vbp_noncompliance"], lines["tag"])
    # inflated (ring, cross-region) visits: pricey drugs and extra exams
    infl = np.flatnonzero(((enc["flag"] & F_INFLATE) > 0) & np.isin(kind, [OP]))
    acute = role("drug_acute")
    dear_items = np.concatenate([role("exam")[price[role("exam")] >= 150], acute[price[acute] >= 20]])
    extra_e = np.repeat(infl, rng.integers(2, 5, len(infl)))
    items = rng.choice(dear_items, len(extra_e))
    add = dict(enc=extra_e, item=items, cnt=np.ones(len(extra_e)), price=svc_price(items, extra_e),
               sec=start[extra_e] + rng.integers(600, 3000, len(extra_e)), tag=enc["tag"][extra_e],
               dispensed=items)
    lines = {c: np.concatenate([lines[c], add[c]]) for c in lines}
    order = np.lexsort((lines["sec"], lines["enc"]))
    lines = {c: v[order] for c, v in lines.items()}
    lines["amount"] = np.round(lines["cnt"] * lines["price"], 2)
    return lines


# ------------------------------------------------------------------------------------------- assemble
def _assemble(world, sc, p, enc, lines, rings, chunk_no, rng) -> Chunk:
    from .assemble import assemble_chunk

    return assemble_chunk(world, sc, p, enc, lines, rings, chunk_no, rng)

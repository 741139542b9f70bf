"""Honest look-alikes (看似违规的合规诊疗): honest care that resembles a violation.

A rule base tuned on a region where honest care never looks like fraud falls apart on a real extract:
every injury with an external cause W20-W31 is not a work injury, a chemotherapy patient comes back every
three weeks, a family settles an in-hospital death days after it. These functions add what honest care
does to every simulated region (``scenarios.yaml``, section ``lookalikes``; on by default), modelled on
the care itself, not on what a rule checks. Each look-alike is labelled clean (label 0, "checked and
clean") for the typology it resembles (:func:`clean_labels`):

=====================================================================  =========================  ==========
look-alike                                                             resembles                  label level
=====================================================================  =========================  ==========
chemotherapy courses (Z51.1 main, the cancer secondary, 14/21/28-day   split_admission            mdtrt
cycles), split-course radiotherapy (Z51.0), staged operations (Z47.8,
the fracture secondary), transfers to a higher-level hospital
(医嘱转院, ``dscg_way`` 2)
injuries at home and at play (falls, struck by objects, cuts: W/X      third_party_liability      setl
causes with place 0 home, 3 sports area or not coded) paid by the
fund; traffic and work injuries paid by the liable party (the fund
pays nothing)
deaths in hospital settled after the death                             dead_person                setl
one chronic refill a few days early; one move of the 慢病 registration  over_prescription          psn
(one refill at the new place while the last still covers some days);
refills filled at a pharmacy instead (双通道)
=====================================================================  =========================  ==========

:func:`add_lookalikes` adds and edits encounters of a chunk; :func:`settle` makes the settlement-level
changes (nothing from the fund, late settlement, discharge way, third diagnosis); every draw comes from
the chunk's seeded generator, so a region stays reproducible from its seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .care import (CAUSE_FALL_IDX, CAUSE_TP_IDX, CHRONIC, DAY, DIAG_CODE, DIAG_IDX, ER, F_OWNDRUG, F_SELFPAY,
                   F_SURGERY, F_TRANSFER, IP, OP, PHARM, SURGICAL, T, _days, _dept_at, _Enc, _has_role, _with_role)
from .config import Lookalikes
from .reference import CAUSE_THIRD_PARTY, CAUSE_WORK_UNPLACED, HONEST_CAUSES, MINOR_INJURIES, WORK_RELATED
from .world import DEPT_ROLE, INST_CLINIC, INST_HOSPITAL, World

__all__ = ["add_lookalikes", "settle", "clean_labels", "CODE_IDX"]

CODE_IDX = {code: i for i, code in reversed(list(enumerate(DIAG_CODE)))}  # first index of each code
SPLIT, THIRD, DEAD, OVER = (T[t] for t in ("split_admission", "third_party_liability", "dead_person",
                                            "over_prescription"))
_NOT_REFILL_DEPTS = [DEPT_ROLE["psychiatry"], DEPT_ROLE["lung_cancer"]]


def add_lookalikes(world: World, cfg: Lookalikes, p: dict, E: _Enc, rng) -> None:
    """Add the honest look-alikes to a chunk's encounters (after the fraud, before honest care inside stays
    is removed): new stays and visits, and edits of existing honest ones."""
    enc = E.frame()
    n_before = len(enc["psn"])
    _planned_courses(world, cfg, p, E, rng)
    _staged_operations(cfg, enc, E, rng)
    transferred = _transfers(world, cfg, enc, E, rng)
    _home_injuries(world, cfg, p, E, rng)
    _liable_party_paid(world, cfg, p, E, rng)
    _deaths_in_hospital(world, cfg, p, E, rng)
    full = E.frame()
    full["flag"][transferred] |= F_TRANSFER
    _honest_injury_causes(full, n_before, rng)
    _work_injuries_marked_y96(full, rng)
    _early_refills_and_moves(world, cfg, p, full, rng)
    E.parts = [full]


def settle(enc: dict, cfg: Lookalikes, fund: np.ndarray, acct: np.ndarray, setl_time: np.ndarray,
           died_here: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The settlement side: nothing from the fund where a liable party paid (``F_SELFPAY``); a death in
    hospital settled ``late_settlement_days`` after it; discharge way (离院方式) 5 death, 2 transfer, 1 else.

    Returns ``(fund, acct, setl_time, dscg_way)``."""
    selfpay = (enc["flag"] & F_SELFPAY) > 0
    fund = np.where(selfpay, 0.0, fund)
    acct = np.where(selfpay, 0.0, acct)
    if cfg.enabled:
        lo, hi = cfg.late_settlement_days
        late = rng.integers(lo, hi + 1, len(setl_time)) * DAY + rng.integers(8 * 3600, 17 * 3600, len(setl_time))
        setl_time = np.where(died_here, setl_time + late, setl_time)
    transfer = (enc["flag"] & F_TRANSFER) > 0
    dscg_way = np.where(died_here, "5", np.where(transfer, "2", "1"))
    return fund, acct, setl_time, dscg_way


def clean_labels(enc: dict, psn_no: np.ndarray, setl_id: np.ndarray, mdtrt_id: np.ndarray,
                 died_here: np.ndarray) -> pd.DataFrame:
    """Label-0 rows ("checked and clean") for the look-alikes, at the level of the typology each resembles."""
    honest = enc["tag"] < 0
    alike = enc["alike"]
    parts = [("mdtrt", mdtrt_id[honest & (alike == SPLIT) & (enc["kind"] == IP)], "split_admission"),
             ("setl", setl_id[honest & (alike == THIRD)], "third_party_liability"),
             ("setl", setl_id[honest & died_here], "dead_person"),
             ("psn", np.unique(psn_no[enc["psn"][honest & (alike == OVER)]]), "over_prescription")]
    rows = [pd.DataFrame({"entity_type": level, "entity_id": ids, "label": 0, "fraud_type": t, "amount": 0.0})
            for level, ids, t in parts if len(ids)]
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["entity_type", "entity_id", "label", "fraud_type", "amount"])


# -- planned readmissions (split_admission) ------------------------------------------------------------

def _planned_courses(world: World, cfg: Lookalikes, p: dict, E: _Enc, rng) -> None:
    """Cancer patients on a chemotherapy course (化疗: cycles of 14, 21 or 28 days admission to admission,
    the middle one most often, a short stay each, ±2 days of scheduling) or on split-course radiotherapy
    (分段放疗: two segments with a planned break), at a level-3 hospital with a lung-cancer department; the
    course (Z51.1 / Z51.0) is the main diagnosis, the cancer a secondary one."""
    who = np.flatnonzero(p["cancer"])
    hospitals = _with_role(world, "lung_cancer", 3)
    if len(who) == 0 or len(hospitals) == 0:
        return
    nd = world.n_days
    cancer = DIAG_IDX["C34.900"]
    u = rng.random(len(who))
    chemo = who[u < cfg.chemotherapy_courses]
    radio = who[(u >= cfg.chemotherapy_courses) & (u < cfg.chemotherapy_courses + cfg.radiotherapy_courses)]
    cycles = np.asarray(cfg.chemotherapy_cycle_days)
    weight = np.where(np.arange(len(cycles)) == len(cycles) // 2, 3.0, 1.0)
    for i in chemo:
        n = int(rng.integers(cfg.chemotherapy_cycles[0], cfg.chemotherapy_cycles[1] + 1))
        cycle = int(rng.choice(cycles, p=weight / weight.sum()))
        start = int(rng.integers(0, max(1, nd - cycle * (n - 1))))
        slack = np.concatenate([[0], rng.integers(-2, 3, n - 1)])
        days = start + np.arange(n) * cycle + slack
        E.add(np.full(n, i), IP, rng.choice(hospitals), DEPT_ROLE["lung_cancer"], CODE_IDX["Z51.100"], days,
              rng.integers(8, 12, n) * 3600, los=rng.integers(cfg.chemotherapy_stay_days[0],
                                                              cfg.chemotherapy_stay_days[1] + 1, n),
              cause=cancer, alike=SPLIT)
    for i in radio:
        first, second = int(rng.integers(10, 19)), int(rng.integers(8, 16))
        pause = int(rng.integers(cfg.radiotherapy_break_days[0], cfg.radiotherapy_break_days[1] + 1))
        start = int(rng.integers(0, max(1, nd - first - pause - second)))
        E.add(np.full(2, i), IP, rng.choice(hospitals), DEPT_ROLE["lung_cancer"], CODE_IDX["Z51.000"],
              np.array([start, start + first + pause]), rng.integers(8, 12, 2) * 3600,
              los=np.array([first, second]), cause=cancer, alike=SPLIT)


def _staged_operations(cfg: Lookalikes, enc: dict, E: _Enc, rng) -> None:
    """分期手术: a tibial fracture fixed externally first and definitively once the soft tissue allows, in a
    second planned admission ``staged_gap_days`` after the first discharge, at the same hospital; coded as
    orthopaedic follow-up care (Z47.8) with the fracture as a secondary diagnosis."""
    first = np.flatnonzero((enc["kind"] == IP) & (enc["diag"] == DIAG_IDX["S82.200"]) & (enc["tag"] < 0))
    pick = first[rng.random(len(first)) < cfg.staged_operations]
    if len(pick) == 0:
        return
    gap = rng.integers(cfg.staged_gap_days[0], cfg.staged_gap_days[1] + 1, len(pick))
    E.add(enc["psn"][pick], IP, enc["inst"][pick], enc["dept"][pick], CODE_IDX["Z47.800"],
          enc["day"][pick] + enc["los"][pick] + gap, rng.integers(8, 12, len(pick)) * 3600,
          los=rng.integers(4, 11, len(pick)), flag=F_SURGERY, cause=DIAG_IDX["S82.200"], alike=SPLIT)


def _transfers(world: World, cfg: Lookalikes, enc: dict, E: _Enc, rng) -> np.ndarray:
    """转院: a stay at a level 1-2 hospital ends with a transfer (医嘱转院) to a level-3 hospital, where the
    patient is admitted the same or the next day for the same illness. Returns the stays transferred."""
    level = world.inst["level"].to_numpy()
    kind = world.inst["kind"].to_numpy()
    upward = np.flatnonzero((kind == INST_HOSPITAL) & (level == 3))
    cand = np.flatnonzero((enc["kind"] == IP) & (enc["tag"] < 0) & (level[enc["inst"]] <= 2) & (enc["los"] >= 1))
    pick = cand[rng.random(len(cand)) < cfg.transfers]
    if len(pick) == 0 or len(upward) == 0:
        return np.array([], dtype=np.int64)
    to = rng.choice(upward, len(pick))
    diag = enc["diag"][pick]
    E.add(enc["psn"][pick], IP, to, _dept_at(world, to, diag), diag,
          enc["day"][pick] + enc["los"][pick] + rng.integers(0, 2, len(pick)), rng.integers(11, 18, len(pick)) * 3600,
          los=np.clip(rng.lognormal(np.log(7), 0.4, len(pick)), 2, 30).astype(int), alike=SPLIT)
    return pick


# -- injuries (third_party_liability) ------------------------------------------------------------------

def _home_injuries(world: World, cfg: Lookalikes, p: dict, E: _Enc, rng) -> None:
    """Minor injuries at home and at play (cut fingers, sprained ankles, wrist fractures from a fall, head
    knocks) with their usual external causes, treated in the emergency room or at the community clinic and
    paid by the fund as they should be."""
    n = p["n"]
    psn = np.repeat(np.arange(n), rng.poisson(cfg.home_injuries, n))
    m = len(psn)
    if m == 0:
        return
    which = rng.integers(0, len(MINOR_INJURIES), m)
    cause = np.array([CODE_IDX[rng.choice(MINOR_INJURIES[w][2])] for w in which])
    diag = np.array([CODE_IDX[MINOR_INJURIES[w][0]] for w in which])
    at_hospital = rng.random(m) < 0.6
    inst = np.where(at_hospital, p["pref_hosp"][psn], p["clinic"][psn])
    E.add(psn, np.where(at_hospital, ER, OP), inst, _surgery_or_general(world, inst), diag, _days(world, rng, m),
          rng.integers(7 * 3600, 22 * 3600, m), cause=cause, alike=THIRD)


def _liable_party_paid(world: World, cfg: Lookalikes, p: dict, E: _Enc, rng) -> None:
    """Traffic and work injuries whose cost the liable party (the other driver's insurer) or the work-injury
    fund paid: settled at the hospital as self-paid, nothing from the medical fund (``F_SELFPAY``)."""
    n = p["n"]
    psn = np.repeat(np.arange(n), rng.poisson(cfg.liable_party_paid, n))
    m = len(psn)
    if m == 0:
        return
    diag = rng.choice([DIAG_IDX["S72.000"], DIAG_IDX["S82.200"], DIAG_IDX["S06.000"]], m)
    admit = (diag == DIAG_IDX["S72.000"]) | (rng.random(m) < 0.25)
    inst = p["pref_hosp"][psn]
    los = np.where(admit, np.clip(rng.lognormal(np.log(10), 0.4, m), 3, 40).astype(int), 0)
    flag = F_SELFPAY | np.where(admit & np.isin(diag, list(SURGICAL)), F_SURGERY, 0)
    E.add(psn, np.where(admit, IP, ER), inst, _dept_at(world, inst, diag), diag, _days(world, rng, m),
          rng.integers(0, DAY, m), los=los, flag=flag, cause=rng.choice(CAUSE_TP_IDX, m), alike=THIRD)


def _honest_injury_causes(enc: dict, n_before: int, rng) -> None:
    """The honest injuries of the care model (a fall, ``CAUSE_FALL``) get the spread of causes such injuries
    have at home and at play; every honest injury with an external cause is a third-party look-alike."""
    honest = np.flatnonzero((enc["cause"] == CAUSE_FALL_IDX) & (enc["tag"] < 0) & (np.arange(len(enc["psn"])) < n_before))
    for code, causes in HONEST_CAUSES.items():
        sel = honest[enc["diag"][honest] == DIAG_IDX[code]]
        enc["cause"][sel] = [CODE_IDX[c] for c in rng.choice(causes, len(sel))]
    injured = (enc["tag"] < 0) & (enc["alike"] < 0) & (enc["cause"] >= 0) & np.isin(
        enc["diag"], [DIAG_IDX[c] for c in HONEST_CAUSES])
    enc["alike"][injured] = THIRD


def _work_injuries_marked_y96(enc: dict, rng) -> None:
    """Some work injuries are coded with the place not given and the work-related code Y96 (与工作有关的情况)
    as a further diagnosis, instead of the industrial-area place character."""
    placed = [CODE_IDX[c] for c, _ in CAUSE_THIRD_PARTY if c.startswith("W")]
    work = np.flatnonzero((enc["tag"] == THIRD) & np.isin(enc["cause"], placed))
    sel = work[rng.random(len(work)) < 0.4]
    enc["cause"][sel] = [CODE_IDX[c] for c, _ in (CAUSE_WORK_UNPLACED[j] for j in
                                                   rng.integers(0, len(CAUSE_WORK_UNPLACED), len(sel)))]
    enc["extra"][sel] = CODE_IDX[WORK_RELATED[0]]


# -- deaths in hospital (dead_person) ------------------------------------------------------------------

def _deaths_in_hospital(world: World, cfg: Lookalikes, p: dict, E: _Enc, rng) -> None:
    """院内死亡: a share of the dying spend their last days in hospital; the stay ends on the day of the death
    (discharge way 5) and the family settles it some days later (:func:`settle`)."""
    dying = np.flatnonzero(p["die_day"] >= 2)
    pick = dying[rng.random(len(dying)) < cfg.in_hospital_deaths]
    if len(pick) == 0:
        return
    los = np.minimum(rng.integers(2, 16, len(pick)), p["die_day"][pick])
    other = rng.choice([DIAG_IDX["J18.900"], DIAG_IDX["I63.900"], DIAG_IDX["I50.900"]], len(pick))
    diag = np.select([p["cancer"][pick], p["chd"][pick]], [DIAG_IDX["C34.900"], DIAG_IDX["I50.900"]], other)
    oncology = _with_role(world, "lung_cancer", 3)
    inst = p["pref_hosp"][pick]
    if len(oncology):
        inst = np.where(p["cancer"][pick], rng.choice(oncology, len(pick)), inst)
    E.add(pick, IP, inst, _dept_at(world, inst, diag), diag, p["die_day"][pick] - los,
          rng.integers(0, DAY, len(pick)), los=los, alike=DEAD)


# -- chronic refills (over_prescription) ---------------------------------------------------------------

def _early_refills_and_moves(world: World, cfg: Lookalikes, p: dict, enc: dict, rng) -> None:
    """门诊慢特病 refills of honest chronic patients: one refill ``early_refill_days`` early (a trip, a
    holiday), half the time at the patient's other usual place (hospital or community clinic); or one move
    of the 慢病 registration to another institution, whose first refill comes while the last one still
    covers ``registration_move_overlap_days`` (the new doctor prescribes a full month), the later refills
    following from there; or about a third of the refills filled at the patient's pharmacy instead
    (双通道: the same month's supply, another place)."""
    refill = np.flatnonzero((enc["kind"] == CHRONIC) & (enc["tag"] < 0) & (enc["alike"] < 0)
                            & ~np.isin(enc["dept"], _NOT_REFILL_DEPTS))
    offenders = np.unique(enc["psn"][enc["tag"] == OVER])
    refill = refill[~np.isin(enc["psn"][refill], offenders)]
    if len(refill) == 0:
        return
    refill = refill[np.lexsort((enc["day"][refill], enc["psn"][refill]))]
    people, first, count = np.unique(enc["psn"][refill], return_index=True, return_counts=True)
    u = rng.random(len(people))
    kinds = world.inst["kind"].to_numpy()
    places = np.flatnonzero(np.isin(kinds, [INST_HOSPITAL, INST_CLINIC]))
    for i, f, c, x in zip(people, first, count, u):
        mine = refill[f:f + c]
        home = enc["inst"][mine[0]]
        if x < cfg.early_refills and c >= 2:
            e = mine[int(rng.integers(1, c))]
            enc["day"][e] -= int(rng.integers(cfg.early_refill_days[0], cfg.early_refill_days[1] + 1))
            if rng.random() < 0.5:
                enc["inst"][e] = p["clinic"][i] if home == p["pref_hosp"][i] else p["pref_hosp"][i]
            enc["alike"][e] = OVER
        elif x < cfg.early_refills + cfg.registration_moves and c >= 4:
            moved = mine[int(rng.integers(1, c - 1)):]
            enc["inst"][moved] = rng.choice(places[places != home])
            enc["day"][moved] -= int(rng.integers(cfg.registration_move_overlap_days[0],
                                                  cfg.registration_move_overlap_days[1] + 1))
            enc["alike"][moved] = OVER
        elif x < cfg.early_refills + cfg.registration_moves + cfg.pharmacy_refills:
            at_shop = mine[rng.random(c) < 1 / 3]
            enc["kind"][at_shop], enc["inst"][at_shop] = PHARM, p["pharm1"][i]
            enc["dept"][at_shop], enc["flag"][at_shop] = DEPT_ROLE["pharmacy"], enc["flag"][at_shop] | F_OWNDRUG
            enc["alike"][at_shop] = OVER
            continue
        else:
            continue
        changed = mine[enc["alike"][mine] == OVER]
        enc["dept"][changed] = _dept_at(world, enc["inst"][changed], enc["diag"][changed])


def _surgery_or_general(world: World, inst: np.ndarray) -> np.ndarray:
    """The surgery department where the institution has one, else general practice."""
    has = _has_role(world)
    return np.where(has[inst, DEPT_ROLE["surgery"]], DEPT_ROLE["surgery"], DEPT_ROLE["general"])

"""The region-wide part of a simulated pooling region: institutions, practitioners and the catalogue.

Everything here is built once per region from one seed; persons and their care are built per chunk
(``care.py``). Fraud that belongs to an institution or a doctor (over-examination, fake treatment,
price over cap, 集采 non-compliance, low-threshold admissions, phantom purchases, drug substitution)
is decided here, so that every chunk sees the same offenders.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.contract import code_meaning, code_values

from .config import Preset, ScenarioConfig
from .monitoring import assign_monitoring
from .reference import DEPTS, DIAGS, ORDINARY_ITEMS

__all__ = ["World", "build_world", "LEVEL_CODES"]

# hosp_lv national codes per level (三级甲等, 二级甲等, 一级甲等 ...) and for clinics.
LEVEL_CODES = {3: ["02", "03"], 2: ["05", "06"], 1: ["08", "09", "14"], 0: ["11"]}
DEPT_ROLE = {role: i for i, (_, _, role) in enumerate(DEPTS)}
INST_HOSPITAL, INST_CLINIC, INST_PHARMACY = 0, 1, 2
FOCUS_ROLES = ("dialysis", "rehabilitation", "psychiatry")
# A visit goes to its diagnosis' department where the institution has one, else to the first of these it has.
FALLBACK_ROLES = ("internal", "general")


@dataclass
class World:
    preset: Preset
    seed: int
    start: np.datetime64
    n_days: int
    districts: list[str]
    inst: pd.DataFrame  # one row per institution, fixmedins fields + simulation attributes
    prac: pd.DataFrame  # one row per practitioner
    cat: pd.DataFrame  # one row per catalogue entry, hilist fields + simulation attributes
    day_weight: np.ndarray  # relative care volume per day (season x weekday)
    dup_pairs: pd.DataFrame  # (main item idx, sub item idx, window) pairs present in the catalogue
    surgery_groups: dict[str, np.ndarray]  # group -> catalogue idx of its operations
    inst_dept_docs: dict[tuple[int, int], np.ndarray]  # (inst, dept) -> practitioner idx

    def docs_for(self, inst: int, dept: int) -> np.ndarray:
        docs = self.inst_dept_docs.get((inst, dept))
        if docs is None:
            docs = self.inst_dept_docs[(inst, -1)]
        return docs

    def role_items(self, role: str) -> np.ndarray:
        return np.flatnonzero(self.cat["role"].to_numpy() == role)


def district_codes(n: int) -> list[str]:
    """The region's ``n`` districts: Changchun's (长春市) real 医保区划 codes from the national code list
    (``features/data/code_values.csv``) first, then made-up codes of the same city where a preset wants
    more (``province``).

    >>> district_codes(7)
    ['220102', '220103', '220104', '220105', '220106', '220112', '220113']
    """
    real = sorted(c for c in code_values("admdvs") if c.startswith("2201") and not c.endswith("00"))
    made_up = (f"2201{i:02d}" for i in range(2, 100) if f"2201{i:02d}" not in real)
    return [*real, *made_up][:n]


def district_name(code: str) -> str:
    """The district's name from the national code list, or 第NN区 for a made-up code."""
    name = code_meaning("admdvs", code)
    return name if name != code else f"第{code[-2:]}区"


def build_world(preset: Preset, scenarios: ScenarioConfig, pack: pd.DataFrame, seed: int) -> World:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
    start = np.datetime64(preset.start, "D")
    end = start.astype("datetime64[M]") + np.timedelta64(preset.months, "M")
    n_days = int((end.astype("datetime64[D]") - start).astype(int))
    districts = district_codes(preset.n_districts)
    inst = _institutions(preset, districts, rng)
    _assign_institution_fraud(inst, scenarios, rng)
    # honest look-alikes of the institution schemes draw from their own stream: the rest stays as it was
    _honest_lookalikes(inst, np.random.default_rng(np.random.SeedSequence([seed, 1, 9])))
    if scenarios.monitoring.enabled:  # its own stream too: without the section nothing changes
        assign_monitoring(inst, scenarios.monitoring, scenarios["price_over_cap"],
                          np.random.default_rng(np.random.SeedSequence([seed, 1, 31])))
    prac, inst_dept_docs = _practitioners(inst, rng)
    cat, dup_pairs, surgery_groups = _catalogue(pack, rng)
    return World(preset, seed, start, n_days, districts, inst, prac, cat, _day_weights(start, n_days),
                 dup_pairs, surgery_groups, inst_dept_docs)


def _day_weights(start: np.datetime64, n_days: int) -> np.ndarray:
    days = start + np.arange(n_days)
    doy = (days - days.astype("datetime64[Y]")).astype(int)
    season = 1.0 + 0.18 * np.cos(2 * np.pi * (doy - 15) / 365.0)  # winter peak (flu season)
    weekday = (days.astype(int) + 3) % 7  # 0 = Monday
    week = np.where(weekday < 5, 1.0, np.where(weekday == 5, 0.55, 0.45))
    spring_festival = np.where((doy >= 28) & (doy <= 36), 0.5, 1.0)
    w = season * week * spring_festival
    return w / w.sum()


def _institutions(preset: Preset, districts: list[str], rng: np.random.Generator) -> pd.DataFrame:
    n = preset.n_persons
    n_hosp = max(6, n // preset.persons_per_hospital)
    n_clin = max(6, n // preset.persons_per_clinic)
    n_pharm = max(8, n // preset.persons_per_pharmacy)
    levels = np.concatenate([[3, 3, 2, 2, 1, 1], rng.choice([3, 2, 1], n_hosp - 6, p=[0.15, 0.35, 0.5])])
    rows = []
    for i, lv in enumerate(levels):
        d = districts[i % len(districts)]
        roles = {"general", "internal", "surgery", "lab", "imaging", "paediatrics"}
        if lv >= 2:
            roles |= {"cardiology", "orthopaedics", "gynaecology", "anaesthesia", "rehabilitation"}
            if rng.random() < 0.6 or i < 3:
                roles.add("dialysis")
        if lv == 3:
            roles |= {"icu", "lung_cancer", "dialysis", "psychiatry"}
        if i == 4:  # a specialised psychiatric hospital and a rehabilitation hospital at level 1-2
            roles |= {"psychiatry"}
        if i == 5:
            roles |= {"rehabilitation"}
        beds = int({3: 1200, 2: 400, 1: 80}[lv] * rng.uniform(0.6, 1.4))
        rows.append(dict(kind=INST_HOSPITAL, level=int(lv), district=d, roles=sorted(roles), beds=beds,
                         hosp_lv=str(rng.choice(LEVEL_CODES[int(lv)]))))
    for i in range(n_clin):
        rows.append(dict(kind=INST_CLINIC, level=0, district=districts[i % len(districts)],
                         roles=["general", "internal"], beds=int(rng.integers(0, 20)), hosp_lv="11"))
    for i in range(n_pharm):
        rows.append(dict(kind=INST_PHARMACY, level=-1, district=districts[i % len(districts)],
                         roles=["pharmacy"], beds=0, hosp_lv=None))
    inst = pd.DataFrame(rows)
    counters: dict[tuple[str, str], int] = {}
    codes, names, types = [], [], []
    for k, d, lv in zip(inst["kind"], inst["district"], inst["level"]):
        prefix = "P" if k == INST_PHARMACY else "H"
        counters[(prefix, d)] = counters.get((prefix, d), 0) + 1
        seq = counters[(prefix, d)]
        codes.append(f"{prefix}{d}{seq:05d}")
        place = district_name(d)
        if k == INST_HOSPITAL:
            names.append(f"{place}第{seq}{'人民医院' if lv >= 2 else '医院'}")
            types.append("hospital")
        elif k == INST_CLINIC:
            names.append(f"{place}社区卫生服务中心{seq}")
            types.append("clinic")
        else:
            names.append(f"{place}大药房第{seq}分店")
            types.append("pharmacy")
    inst["fixmedins_code"] = codes
    inst["fixmedins_name"] = names
    inst["fixmedins_type"] = types
    inst["admdvs"] = inst["district"]
    inst["specialties"] = ["|".join(r) for r in inst["roles"]]
    # Honest variation between institutions: how much they examine, prescribe, and prefer 集采 products.
    # Exams: case mix is explicit (the diagnosis and the recorded comorbidities set a visit's exams, care.py);
    # what is left is the institution's habit, CV ~15 % (the DRG 费用消耗指数 of same-level hospitals spans
    # 0.8-1.3), log-normal and not cut off: an honest institution far out in the tail exists, and the
    # over-examination rule must tell it from a scheme by volume and peers, not by our bounding it.
    m = len(inst)
    inst["exam_factor"] = np.exp(rng.normal(0, 0.15, m)) * np.where(inst["level"] == 3, 1.3, 1.0)
    inst["vbp_share"] = np.clip(rng.normal(0.85, 0.07, m), 0.6, 0.98)
    inst["attract"] = np.exp(rng.normal(0, 0.5, m)) * np.where(inst["level"] == 3, 3.0,
                                                               np.where(inst["level"] == 2, 1.6, 1.0))
    for col in ("over_examination", "fake_treatment", "price_over_cap", "vbp_noncompliance",
                "low_threshold_admission", "phantom_purchase", "drug_substitution"):
        inst[col] = 0.0
    inst["price_share"] = 0.0
    return inst


def _pick(rng, candidates: np.ndarray, rate: float, min_cases: int) -> np.ndarray:
    if len(candidates) == 0:
        return candidates
    k = min(len(candidates), max(min_cases, int(round(rate * len(candidates)))))
    return np.sort(rng.choice(candidates, k, replace=False))


def _assign_institution_fraud(inst: pd.DataFrame, sc: ScenarioConfig, rng: np.random.Generator) -> None:
    kind = inst["kind"].to_numpy()
    medical = np.flatnonzero(kind != INST_PHARMACY)
    hospitals = np.flatnonzero(kind == INST_HOSPITAL)
    pharmacies = np.flatnonzero(kind == INST_PHARMACY)
    focus = np.array([i for i in hospitals if set(inst.at[i, "roles"]) & set(FOCUS_ROLES)])

    def u(s, n):
        lo, hi = s
        return rng.uniform(lo, hi, n)

    s = sc["over_examination"]
    idx = _pick(rng, medical, s.rate, s.min_cases)
    inst.loc[idx, "over_examination"] = u(s.intensity, len(idx))
    s = sc["fake_treatment"]
    idx = _pick(rng, focus, s.rate, s.min_cases)
    inst.loc[idx, "fake_treatment"] = u(s.intensity, len(idx))
    s = sc["price_over_cap"]
    idx = _pick(rng, medical, s.rate, s.min_cases)
    inst.loc[idx, "price_over_cap"] = u(s.intensity, len(idx))
    inst.loc[idx, "price_share"] = u(s.share, len(idx))
    s = sc["vbp_noncompliance"]
    idx = _pick(rng, medical, s.rate, s.min_cases)
    inst.loc[idx, "vbp_noncompliance"] = 1.0
    inst.loc[idx, "vbp_share"] = 1.0 - u(s.share, len(idx))
    s = sc["low_threshold_admission"]
    idx = _pick(rng, hospitals, s.rate, s.min_cases)
    inst.loc[idx, "low_threshold_admission"] = u(s.share, len(idx))
    s = sc["phantom_purchase"]
    idx = _pick(rng, pharmacies, s.rate, s.min_cases)
    inst.loc[idx, "phantom_purchase"] = u(s.intensity, len(idx))
    s = sc["drug_substitution"]
    rest = np.setdiff1d(pharmacies, idx)
    idx = _pick(rng, rest, s.rate, s.min_cases)
    inst.loc[idx, "drug_substitution"] = u(s.share, len(idx))


def _practitioners(inst: pd.DataFrame, rng: np.random.Generator):
    rows = []
    per_level = {3: 5, 2: 3, 1: 2, 0: 2, -1: 2}
    for i, r in inst.iterrows():
        roles = r["roles"]
        for role in roles:
            n = per_level[r["level"]]
            if role in ("lab", "imaging", "anaesthesia"):
                n = 1
            for _ in range(n):
                rows.append(dict(inst=i, dept=DEPT_ROLE[role]))
    prac = pd.DataFrame(rows)
    # a doctor's own habit on top of the institution's: CV ~25 %, log-normal, not cut off (an honest doctor
    # who orders twice his peers' exams exists: about 1 in 2,000 here)
    prac["exam_factor"] = np.exp(rng.normal(0, 0.25, len(prac)))
    prac["over_examination"] = 0.0
    _over_examining_departments(inst, prac, rng)
    codes = []
    for j, (i, d) in enumerate(zip(prac["inst"], prac["dept"])):
        prefix = "Y" if inst.at[i, "kind"] == INST_PHARMACY else "D"
        codes.append(f"{prefix}{inst.at[i, 'district']}{j:07d}")
    prac["prac_code"] = codes
    prac["fixmedins_code"] = inst["fixmedins_code"].to_numpy()[prac["inst"].to_numpy()]
    prac["dept_codg"] = [DEPTS[d][0] for d in prac["dept"]]
    prac["caty"] = prac["dept_codg"]
    prac["title"] = rng.choice(["主任医师", "副主任医师", "主治医师", "医师"], len(prac), p=[0.1, 0.2, 0.4, 0.3])
    prac.loc[prac["dept_codg"] == "P01", "title"] = "执业药师"
    groups: dict[tuple[int, int], list[int]] = {}
    for j, (i, d) in enumerate(zip(prac["inst"], prac["dept"])):
        groups.setdefault((i, d), []).append(j)
        groups.setdefault((i, -1), []).append(j)
    return prac, {k: np.array(v) for k, v in groups.items()}


# Clinical departments, weighted by how likely an exam-revenue scheme (科室创收指标) runs there: the busy
# medical departments first.
_SCHEME_DEPTS = {"internal": 4.0, "cardiology": 3.0, "general": 2.0, "orthopaedics": 1.5, "paediatrics": 1.0,
                 "surgery": 1.0, "gynaecology": 1.0}
# The roles of the diagnoses seen in clinics (acute and chronic care): where the visits are.
_CLINIC_DIAG_ROLES = sorted({role for _, _, role, kind, _ in DIAGS if kind in ("acute", "chronic")})


def visit_role(roles, diag_role: str) -> str:
    """The department of an institution with *roles* that sees a visit for a diagnosis of *diag_role*."""
    if diag_role in roles:
        return diag_role
    return next((r for r in FALLBACK_ROLES if r in roles), FALLBACK_ROLES[-1])


def _over_examining_departments(inst: pd.DataFrame, prac: pd.DataFrame, rng: np.random.Generator) -> None:
    """In an over-examining institution the scheme runs in one or two clinical departments: all their doctors
    examine at the institution's intensity (the drivers); the other departments work as usual.

    A revenue scheme runs where the patients are: among the departments that see the clinic visits (a
    general-practice desk of a hospital whose internal medicine takes them, or a surgery that sees only
    its few admissions, bills a handful of visits a year, and a scheme there would be no scheme)."""
    oe = inst["over_examination"].to_numpy()
    dept = prac["dept"].to_numpy()
    where = prac["inst"].to_numpy()
    for i in np.flatnonzero(oe > 0):
        has = inst.at[i, "roles"]
        busy = {visit_role(has, r) for r in _CLINIC_DIAG_ROLES}
        roles = [r for r in has if r in _SCHEME_DEPTS and r in busy] or [r for r in has if r in _SCHEME_DEPTS]
        w = np.array([_SCHEME_DEPTS[r] for r in roles])
        k = min(len(roles), 1 + int(rng.random() < 0.4))
        chosen = rng.choice(roles, k, replace=False, p=w / w.sum())
        drivers = (where == i) & np.isin(dept, [DEPT_ROLE[r] for r in chosen])
        prac.loc[drivers, "over_examination"] = oe[i]


def _honest_lookalikes(inst: pd.DataFrame, rng: np.random.Generator) -> None:
    """Honest institutions whose data resemble an institution scheme (the rules must not flag them):

    - ``cardiac_centre``: a 三级 hospital with cardiology that takes the region's referred heart patients,
      sicker than the average (heart failure): more exams per visit, because of the case mix;
    - ``evening_shop``: pharmacies open late and at weekends, with many honest evening sales;
    - ``near_hospital``: pharmacies beside a hospital (the hospital's index, else -1) that fill its
      outpatients' prescriptions in queues, customers minutes apart after the morning clinic.
    """
    kind = inst["kind"].to_numpy()
    level = inst["level"].to_numpy()
    honest_exams = inst["over_examination"].to_numpy() == 0
    cardio = np.array(["cardiology" in r for r in inst["roles"]])
    cand = np.flatnonzero((kind == INST_HOSPITAL) & (level == 3) & cardio & honest_exams)
    inst["cardiac_centre"] = False
    if len(cand):
        inst.loc[rng.choice(cand), "cardiac_centre"] = True
    pharmacies = np.flatnonzero(kind == INST_PHARMACY)
    honest = pharmacies[(inst["phantom_purchase"].to_numpy()[pharmacies] == 0)
                        & (inst["drug_substitution"].to_numpy()[pharmacies] == 0)]
    inst["evening_shop"] = False
    inst.loc[honest[rng.random(len(honest)) < 0.25], "evening_shop"] = True
    inst["near_hospital"] = -1
    big = np.flatnonzero((kind == INST_HOSPITAL) & (level >= 2))
    for d in inst["district"].unique():
        here = honest[inst["district"].to_numpy()[honest] == d]
        hosp = big[inst["district"].to_numpy()[big] == d]
        if len(here) and len(hosp):
            inst.loc[rng.choice(here), "near_hospital"] = int(rng.choice(hosp))


def _catalogue(pack: pd.DataFrame, rng: np.random.Generator):
    """Ordinary items with real codes where the 两库 names them, plus restricted items from the pack."""
    item_names = {}
    items = pack[pack["code_kind"] == "item"]
    for code, name in zip(items["hilist_code"], items["hilist_name"]):
        item_names.setdefault(name, code)
    if "related_name" in pack:
        rel = pack.dropna(subset=["related_code"])
        for code, name in zip(rel["related_code"], rel["related_name"]):
            item_names.setdefault(name, code)
    # a code restricted in one way is used only for that restriction: an honest bill must not break another
    kinds_of = pack.groupby("hilist_code")["rule_kind"].agg(lambda k: frozenset(k)).to_dict()
    patient_limits = {"gender", "age", "insurance_type", "care_setting", "institution_level", "course_length"}

    def only(code, allowed: set) -> bool:
        return kinds_of.get(code, frozenset()) <= allowed

    rows = []
    for i, (role, name, lt, ct, lv, price, grp, vbp, days) in enumerate(ORDINARY_ITEMS):
        if lt == "201":
            code = item_names.get(name, f"009{i:012d}")
        elif lt == "301":
            code = f"C{1403 + i:04d}{i:016d}"
        elif lt == "102":
            code = f"T{i:06d}0000000000"
        else:
            code = f"XZ{i:03d}ZZZ{i:03d}A001010100000"
        rows.append(dict(role=role, hilist_code=code, hilist_name=name, list_type=lt, med_chrgitm_type=ct,
                         chrgitm_lv=lv, price=price, vbp_group=grp or None, vbp_flag=vbp or None,
                         days_per_unit=days, generic_name=name.replace("(中选)", "")))
    restricted = [
        ("drug_gender_m", (pack["rule_kind"] == "gender") & (pack["code_kind"] == "drug") & (pack["gend"] == "1"), 3),
        ("drug_gender_f", (pack["rule_kind"] == "gender") & (pack["code_kind"] == "drug") & (pack["gend"] == "2"), 3),
        ("item_gender_f", (pack["rule_kind"] == "gender") & (pack["code_kind"] == "item") & (pack["gend"] == "2"), 2),
        ("item_gender_m", (pack["rule_kind"] == "gender") & (pack["code_kind"] == "item") & (pack["gend"] == "1"), 2),
        ("drug_child", (pack["rule_kind"] == "age") & (pack["code_kind"] == "drug") & (pack["age_max"] <= 18), 3),
        ("drug_workinjury", pack["rule_kind"] == "insurance_type", 2),
        ("drug_ip_only", pack["rule_kind"] == "care_setting", 3),
        ("drug_level2", (pack["rule_kind"] == "institution_level") & (pack["min_hosp_level"] == 2), 3),
        ("drug_course", (pack["rule_kind"] == "course_length") & (pack["code_kind"] == "drug")
         & (pack["max_days"] <= 30), 3),
    ]
    taken = {r["hilist_code"] for r in rows}
    for role, mask, k in restricted:
        cand = pack[mask].drop_duplicates("hilist_name")
        own = set(cand["rule_kind"])
        cand = cand[~cand["hilist_code"].isin(taken) & cand["hilist_code"].map(lambda c: only(c, own))]
        if len(cand) == 0:
            raise ValueError(f"rule pack has no knowledge point for simulator role {role}")
        pick = cand.iloc[np.sort(rng.choice(len(cand), min(k, len(cand)), replace=False))]
        for _, p in pick.iterrows():
            is_drug = p["code_kind"] == "drug"
            price = float(np.round(rng.uniform(15, 180), 2))
            rows.append(dict(role=role, hilist_code=p["hilist_code"], hilist_name=p["hilist_name"],
                             list_type="101" if is_drug else "201", med_chrgitm_type="09" if is_drug else "03",
                             chrgitm_lv="02", price=price, vbp_group=None, vbp_flag=None,
                             days_per_unit=5 if is_drug else 0, generic_name=p["hilist_name"],
                             max_days=p.get("max_days")))
            taken.add(p["hilist_code"])
    # Duplicate-charge pairs (batch 7) whose main and sub items we add to the catalogue.
    dup = pack[(pack["rule_kind"] == "duplicate_charge") & pack["window"].isin(["day", "visit"])]
    dup = dup[~dup["hilist_code"].isin(taken) & ~dup["related_code"].isin(taken)]
    free = set(kinds_of) - {c for c, k in kinds_of.items() if k & patient_limits}
    dup = dup[dup["hilist_code"].map(lambda c: c not in kinds_of or c in free)
              & dup["related_code"].map(lambda c: c not in kinds_of or c in free)]
    dup = dup.drop_duplicates("hilist_code").drop_duplicates("related_code")
    pick = dup.iloc[np.sort(rng.choice(len(dup), min(6, len(dup)), replace=False))]
    pair_rows, restricted_taken = [], set(taken)
    for _, p in pick.iterrows():
        if p["hilist_code"] in taken or p["related_code"] in taken:
            continue  # a code of an earlier pair (one pair's sub is another's main): one role per code
        taken.update((p["hilist_code"], p["related_code"]))
        for role, code, name in (("dup_main", p["hilist_code"], p["hilist_name"]),
                                 ("dup_sub", p["related_code"], p["related_name"])):
            rows.append(dict(role=role, hilist_code=code, hilist_name=name, list_type="201",
                             med_chrgitm_type="05", chrgitm_lv="01",
                             price=float(np.round(rng.uniform(20, 150), 2)), vbp_group=None, vbp_flag=None,
                             days_per_unit=0, generic_name=name))
        pair_rows.append((len(rows) - 2, len(rows) - 1, p["window"]))
    # Primary/secondary surgery groups (batch 2): two groups with three operations each.
    surg = pack[pack["rule_kind"] == "primary_secondary_surgery"]
    surg = surg[surg["hilist_code"].map(lambda c: c in free) & ~surg["hilist_code"].isin(restricted_taken)]
    sizes = surg.drop_duplicates(["surgery_group", "hilist_code"]).groupby("surgery_group").size()
    groups = sorted(sizes[sizes >= 3].index)[:2]
    surgery_groups = {}
    for g in groups:
        ops = surg[surg["surgery_group"] == g].drop_duplicates("hilist_code")
        ops = ops[~ops["hilist_code"].isin(taken)].head(3)  # not a code given a role above
        idxs = []
        for _, p in ops.iterrows():
            rows.append(dict(role="surgery", hilist_code=p["hilist_code"], hilist_name=p["hilist_name"],
                             list_type="201", med_chrgitm_type="06", chrgitm_lv="01",
                             price=float(np.round(rng.uniform(1200, 4800), 0)), vbp_group=None, vbp_flag=None,
                             days_per_unit=0, generic_name=p["hilist_name"], surgery_group=g))
            idxs.append(len(rows) - 1)
            taken.add(p["hilist_code"])
        surgery_groups[g] = np.array(idxs)
    cat = pd.DataFrame(rows)
    if cat["hilist_code"].duplicated().any():
        raise ValueError("catalogue codes must be unique")
    # Price caps (最高限价): services and consumables have caps; honest prices are at or under them.
    has_cap = cat["list_type"].isin(["201", "301"]).to_numpy()
    cat["pric_uplmt_amt"] = np.where(has_cap, np.round(cat["price"] * 1.0, 2), np.nan)
    for col in ("max_days", "surgery_group"):
        if col not in cat:
            cat[col] = None
    dup_pairs = pd.DataFrame(pair_rows, columns=["main", "sub", "window"])
    return cat, dup_pairs, surgery_groups

"""两库一致性测试 (conformance suite of the national 两库 rules): test claims for every knowledge point.

Payers test their claim edits (e.g. the NCCI edits) with test claims: for each edit, a claim that must be
denied and one that must pass. This module does the same for the 两库 pack: for every knowledge point
(知识点) it generates

* a **violating** claim — the restriction broken by the smallest step (the day of the 18th birthday for a
  children's drug, the other sex, N+1 in a day, the course's day N+1, the sub-item inside the main item's
  window, the second operation at full price …) — on which exactly the point's rule must fire, on the
  intended fee line(s), naming the point in ``detail.point_id``;
* a **compliant** claim at the same boundary (one day younger, the limited sex, N in a day, the course's
  day N, the sub-item just outside the window, the second operation at the discounted price …) on which
  the rule must stay silent;

each in two code forms — ``canonical`` (the pack's code) and ``raw`` (as real extracts write it: a
15-digit service item with its two leading zeros lost, a drug code in lower case or padded with spaces) —
and runs them through both engines:

* ``sql``: the claims written as a contract extract (setl_d, mdtrt_d, fee_list_d, setl_list_diag_d,
  psn_info, fixmedins, practitioner, hilist), ingested with :func:`features.ingest.ingest` into a fresh
  warehouse, the rules run (:func:`models.rules.engine.run_rules`), ``rule_hits`` read back;
* ``precheck``: :meth:`Prechecker.check` of each claim's last visit (its earlier visits — a course, the
  first use of a period — are history in the same warehouse), the rules evaluated by their kernels.

Each claim has its own person and visits (institutions and catalogue entries are shared), and every other
restriction the pack puts on the claim's codes — sex, age, insurance type, care setting, institution level,
intervals — is respected, so that points do not interfere: a violating claim breaks one restriction only.
A point whose claims cannot be built (conflicting restrictions, no partner code) is *not covered*, with the
reason. Generation is pure (:func:`point_claims`, :func:`generate`); :func:`run_conformance` does the I/O.

>>> from models.rules.config import load_config
>>> pack = load_pack()
>>> ctx = SuiteContext.build(pack, load_config())
>>> point = pack[pack.point_id == "b1-drug-age-000002"].iloc[0]
>>> [(p.verdict, p.boundary) for p in point_claims(point, ctx)]
[('violating', '满18周岁当日 (age 18 on the fee day; limit < 18)'), ('compliant', '18周岁前一日 (one day before 18)')]
>>> code_in_form("001103000010000", "raw", 2), code_in_form("XB05BAU012B002010102180", "raw", 2)
('1103000010000', 'xb05bau012b002010102180')
"""

from __future__ import annotations

import json
import math
import random
import re
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, time as clock, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.codes import item_code_forms
from features.contract import TABLES
from models.rules.config import RuleConfig
from models.rules.pack import DEFAULT_PACK, load_pack

__all__ = [
    "ENGINES",
    "FORMS",
    "VERDICTS",
    "CodeLimits",
    "SuiteContext",
    "LinePlan",
    "VisitPlan",
    "ClaimPlan",
    "Claim",
    "Uncovered",
    "Caveat",
    "Seen",
    "Failure",
    "BatchResult",
    "ConformanceReport",
    "sample_points",
    "pack_caveats",
    "point_claims",
    "generate",
    "code_in_form",
    "claim_rows",
    "reference_rows",
    "visit_of",
    "judge",
    "write_extract",
    "run_conformance",
]

ENGINES = ("sql", "precheck")
FORMS = ("canonical", "raw")
VERDICTS = ("violating", "compliant")

# National code values the claims are written in (医疗类别, 险种类型, 医院等级). The generator states what
# they mean itself — it does not read the rule config's code lists, which are part of what is tested.
OUTPATIENT, EMERGENCY, INPATIENT, MATERNITY_OUTPATIENT = "11", "13", "21", "51"
INPATIENT_MED_TYPES = frozenset({"21", "210104", "28"})   # 普通住院, 急诊住院, 日间手术
EMERGENCY_MED_TYPES = frozenset({"13", "120"})            # 急诊, 120急救
MATERNITY_MED_TYPES = frozenset({"51", "52", "53"})       # 生育门诊, 生育住院, 计划生育手术
EMPLOYEE, WORK_INJURY, MATERNITY = "310", "410", "510"    # 职工基本医疗保险, 工伤保险, 生育保险
# Institutions every claim may use: code -> (type, national hosp_lv, level).
INSTITUTIONS: Mapping[str, tuple[str, str, int]] = {
    "CF-H3": ("hospital", "02", 3),   # 三级甲等
    "CF-H2": ("hospital", "05", 2),   # 二级甲等
    "CF-H1": ("hospital", "08", 1),   # 一级甲等
    "CF-C0": ("clinic", "11", 0),     # 社区卫生服务站: 基层医疗机构, no level of its own
}
_BY_LEVEL = {level: code for code, (_, _, level) in INSTITUTIONS.items()}
# (med_type, insutype) a claim may be settled under, in order of preference when nothing asks for one.
_SETTLEMENTS = ((OUTPATIENT, EMPLOYEE), (INPATIENT, EMPLOYEE), (EMERGENCY, EMPLOYEE),
                (MATERNITY_OUTPATIENT, MATERNITY), (INPATIENT, MATERNITY), (OUTPATIENT, WORK_INJURY),
                (INPATIENT, WORK_INJURY))
DAY0 = date(2025, 3, 10)          # the first fee day of every claim (a Monday)
DIAGNOSIS = "J06.900"             # 急性上呼吸道感染: no rule reads it
ITEM_CAP, SURGERY_CAP = Decimal("100.00"), Decimal("2000.00")
PLAIN_PRICE = Decimal("40.00")    # below half of any cap: no price or discount rule concerns it
DEFAULT_SEED = 20250310


# -- what the pack says about a code -------------------------------------------------------------

@dataclass(frozen=True)
class CodeLimits:
    """Every restriction the pack puts on one code (all rule kinds): a claim using the code respects all
    of them except the one its point tests."""

    gend: str | None = None                 # the sex the code is limited to
    age_min: float | None = None            # years; age_min <= age < age_max
    age_max: float | None = None
    insurance_only: str | None = None       # 工伤 | 生育
    care_setting: str | None = None         # inpatient | inpatient_or_emergency
    min_hosp_level: int | None = None
    min_interval_days: int | None = None    # 间隔时间不短于N天, or the period of a once-per-period item

    def allows_settlement(self, med_type: str, insutype: str) -> bool:
        """Care setting (限就医方式) and insurance type (限保险类型) of a settlement."""
        if self.care_setting == "inpatient" and med_type not in INPATIENT_MED_TYPES:
            return False
        if (self.care_setting == "inpatient_or_emergency"
                and med_type not in INPATIENT_MED_TYPES | EMERGENCY_MED_TYPES):
            return False
        if self.insurance_only == "工伤" and insutype != WORK_INJURY:
            return False
        if self.insurance_only == "生育" and not (med_type in MATERNITY_MED_TYPES or insutype == MATERNITY):
            return False
        return True

    def allows_level(self, level: int) -> bool:
        return self.min_hosp_level is None or level >= self.min_hosp_level

    def allows_age(self, brdy: date, on: date) -> bool:
        years, days = _full_years(brdy, on), (on - brdy).days
        if self.age_min is not None and years < self.age_min:
            return False
        if self.age_max is not None:
            return days < round(self.age_max * 365) if self.age_max < 1 else years < self.age_max
        return True


@dataclass(frozen=True)
class SuiteContext:
    """The pack as the generator reads it, and the thresholds of the rules' own modelling (rules.yaml)."""

    limits: Mapping[str, CodeLimits]
    names: Mapping[str, str]                       # code -> catalogue name
    duplicate_pairs: frozenset[tuple[str, str]]    # (main code, sub code) of batch 7
    surgery_groups: Mapping[str, frozenset[str]]   # code -> its surgery groups (batch 2)
    group_members: Mapping[str, tuple[str, ...]]   # surgery group -> codes, sorted
    course_siblings: Mapping[str, tuple[str, ...]]  # code -> codes it shares a course with: the other codes of
    #                                                 its generic drug (batch 6 row), an item's method variants
    period_siblings: Mapping[str, tuple[str, ...]]  # item code -> its method variants of batch 8-4 (12 digits)
    course_gap_days: int                           # liangku_course_length new_course_after_days
    discounted_ratio: Decimal                      # liangku_primary_secondary_surgery discounted_max_ratio
    session_hours: int                             # liangku_primary_secondary_surgery session_hours

    @classmethod
    def build(cls, pack: pd.DataFrame, config: RuleConfig) -> "SuiteContext":
        surgery = pack[pack.rule_kind == "primary_secondary_surgery"]
        groups: dict[str, set[str]] = defaultdict(set)
        for code, group in zip(surgery.hilist_code, surgery.surgery_group):
            groups[code].add(group)
        members: dict[str, set[str]] = defaultdict(set)
        for code, gs in groups.items():
            for g in gs:
                members[g].add(code)
        dup = pack[pack.rule_kind == "duplicate_charge"]
        names = dict(zip(dup.related_code, dup.related_name))
        names.update(zip(pack.hilist_code, pack.hilist_name))
        surgery_rule = config.rule("liangku_primary_secondary_surgery").params
        course = pack[pack.rule_kind == "course_length"]
        period = pack[pack.rule_kind == "period_frequency"]
        return cls(
            limits=_code_limits(pack), names=names,
            course_siblings=_siblings(course.hilist_code, _course_keys(course)),
            period_siblings=_siblings(period.hilist_code, period.hilist_code.str[:12]),
            duplicate_pairs=frozenset(zip(dup.hilist_code, dup.related_code)),
            surgery_groups={c: frozenset(g) for c, g in groups.items()},
            group_members={g: tuple(sorted(c)) for g, c in members.items()},
            course_gap_days=int(config.rule("liangku_course_length").params["new_course_after_days"]),
            discounted_ratio=Decimal(str(surgery_rule["discounted_max_ratio"])),
            session_hours=int(surgery_rule["session_hours"]))

    def limit(self, code: str) -> CodeLimits:
        return self.limits.get(code, CodeLimits())

    def cap(self, code: str) -> Decimal:
        """The catalogue price cap the claims use (operations dearer, so the discount is visible)."""
        return SURGERY_CAP if code in self.surgery_groups else ITEM_CAP


# -- plans: a claim before ids and code forms --------------------------------------------------------

@dataclass(frozen=True)
class LinePlan:
    """One fee line: canonical code, time, quantity, unit price; ``target``: a line the point's rule must
    hit on the violating claim."""

    code: str
    time: datetime
    pric: Decimal
    cnt: int = 1
    target: bool = False


@dataclass(frozen=True)
class VisitPlan:
    """One visit with its one settlement."""

    med_type: str
    insutype: str
    institution: str
    begin: datetime
    end: datetime
    lines: tuple[LinePlan, ...]


@dataclass(frozen=True)
class ClaimPlan:
    """A test claim: one person and their visits (oldest first; the last is the one precheck checks)."""

    verdict: str        # violating | compliant: what the point's rule must say
    boundary: str       # what sits at the boundary, in words
    gend: str
    brdy: date
    visits: tuple[VisitPlan, ...]


@dataclass(frozen=True)
class Claim:
    """A generated claim with its ids and code form: what the engines see and what they must say."""

    claim_id: str
    point_id: str
    batch: str
    rule_id: str
    form: str
    plan: ClaimPlan

    @property
    def verdict(self) -> str:
        return self.plan.verdict

    @property
    def psn_no(self) -> str:
        return f"{self.claim_id}.P"

    @property
    def checked_setl_id(self) -> str:
        return _setl_id(self.claim_id, len(self.plan.visits) - 1)

    @property
    def checked_mdtrt_id(self) -> str:
        return _mdtrt_id(self.claim_id, len(self.plan.visits) - 1)

    @property
    def target_lines(self) -> tuple[str, ...]:
        return tuple(_line_id(self.claim_id, i, j) for i, v in enumerate(self.plan.visits)
                     for j, ln in enumerate(v.lines) if ln.target)


@dataclass(frozen=True)
class Uncovered:
    """A knowledge point the suite cannot test, and why."""

    point_id: str
    batch: str
    rule_id: str
    reason: str


@dataclass(frozen=True)
class Caveat:
    """A point tested as the pack encodes it, whose spreadsheet row says more (the pack's own warning: a
    level qualified by an indication or a first prescription, a note wider than the value …): that part
    is not tested."""

    point_id: str
    batch: str
    rule_id: str
    warning: str


def pack_caveats(points: pd.DataFrame, warnings: Iterable[str]) -> list[Caveat]:
    """The points the pack's build warnings (``liangku_pack.json``) name by spreadsheet row.

    >>> pack = load_pack()
    >>> [c.point_id for c in pack_caveats(pack, ["batch4-drug-care-setting.xlsx/Sheet1 row 5: note wider"])][:2]
    ['b4-drug-care_setting-000022', 'b4-drug-care_setting-000023']
    """
    out = []
    for text in warnings:
        match = re.match(r"(?P<file>[^/]+\.xlsx)/(?P<sheet>[^ ]+) row (?P<row>\d+): ", text)
        if match is None:  # a warning about a whole file, not a row
            continue
        row = int(match["row"])
        mine = points[points.file == match["file"]]
        named = mine[(mine.sheet == match["sheet"]) & (mine.row == row)]
        if named.empty:  # a drug file's Sheet1: the rule row of its codes
            named = mine[mine.rule_row == row]
        out += [Caveat(p, b, f"liangku_{k}", text) for p, b, k in zip(named.point_id, named.batch, named.rule_kind)]
    return sorted(out, key=lambda c: c.point_id)


# -- choosing points ---------------------------------------------------------------------------------

_SIGNATURE = ["file", "gend", "age_min", "age_max", "insurance_only", "care_setting", "min_hosp_level", "max_days",
              "min_interval_days", "max_count", "count_unit", "period_days", "window", "surgery_group"]


def sample_points(pack: pd.DataFrame, per_batch: int | None = None, *, seed: int = DEFAULT_SEED,
                  batches: Iterable[str] | None = None) -> pd.DataFrame:
    """The knowledge points to test: all of them (``per_batch`` None) or a seeded sample of ``per_batch``
    per batch that takes every distinct restriction first (each file, each age group, window, unit …),
    then fills up at random.

    >>> pack = load_pack()
    >>> s = sample_points(pack, 5, seed=1)
    >>> s.groupby("batch").size().to_dict() == {b: min(5, n) for b, n in pack.groupby("batch").size().items()}
    True
    >>> sample_points(pack, 5, seed=1).point_id.tolist() == s.point_id.tolist()
    True
    """
    points = pack if batches is None else pack[pack.batch.isin(list(batches))]
    if batches is not None and (unknown := set(batches) - set(pack.batch)):
        raise ValueError(f"unknown batch(es) {sorted(unknown)}; batches: {', '.join(_batch_order(pack.batch))}")
    if per_batch is None:
        return points.sort_values("point_id").reset_index(drop=True)
    rng = random.Random(seed)
    keep: list[str] = []
    for batch in _batch_order(points.batch):
        rows = points[points.batch == batch]
        groups = [sorted(g.point_id) for _, g in rows.groupby(_signature(rows), sort=True)]
        for g in groups:
            rng.shuffle(g)
        rng.shuffle(groups)
        chosen: list[str] = []
        while len(chosen) < min(per_batch, len(rows)):
            for g in groups:
                if g and len(chosen) < per_batch:
                    chosen.append(g.pop())
        keep += chosen
    return points[points.point_id.isin(keep)].sort_values("point_id").reset_index(drop=True)


# -- generating claims ---------------------------------------------------------------------------------

def point_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """The claims that test one knowledge point (violating and compliant), or why there are none."""
    builder = _BUILDERS.get(point["rule_kind"])
    if builder is None:
        return f"no claim builder for rule kind {point['rule_kind']!r}"
    plans = builder(point, ctx)
    if isinstance(plans, str):
        return plans
    have = {p.verdict for p in plans}
    if have != set(VERDICTS):
        return f"only {', '.join(sorted(have)) or 'no'} claims could be built"
    return plans


def generate(points: pd.DataFrame, ctx: SuiteContext, *, forms: Sequence[str] = FORMS
             ) -> tuple[list[Claim], list[Uncovered]]:
    """Claims for every point (each plan in each code form) and the points left uncovered."""
    if unknown := set(forms) - set(FORMS):
        raise ValueError(f"unknown code form(s) {sorted(unknown)}; forms: {', '.join(FORMS)}")
    claims, uncovered = [], []
    for point in points.to_dict("records"):
        rule_id = f"liangku_{point['rule_kind']}"
        plans = point_claims(point, ctx)
        if isinstance(plans, str):
            uncovered.append(Uncovered(point["point_id"], point["batch"], rule_id, plans))
            continue
        seen: Counter[str] = Counter()
        for plan in plans:
            k = seen[plan.verdict]
            seen[plan.verdict] += 1
            for form in forms:
                claim_id = f"{point['point_id']}~{plan.verdict[0].upper()}{k}~{form[0]}"
                claims.append(Claim(claim_id, point["point_id"], point["batch"], rule_id, form, plan))
    return claims, uncovered


def code_in_form(code: str, form: str, salt: int) -> str:
    """*code* as a claim of *form* writes it: ``canonical`` as is; ``raw`` a 15-digit service item without
    its leading zeros (13 digits), any other code in lower case (even *salt*) or padded with spaces (odd)."""
    if form == "canonical":
        return code
    if code.startswith("00") and len(code) == 15 and code.isdigit():
        return item_code_forms(code)["lost_zeros"]
    return code.lower() if salt % 2 == 0 else f" {code} "


# -- the builders, one per rule kind -------------------------------------------------------------------

Builder = Callable[[Mapping[str, Any], SuiteContext], "list[ClaimPlan] | str"]
_BUILDERS: dict[str, Builder] = {}


def _builder(kind: str) -> Callable[[Builder], Builder]:
    def register(fn: Builder) -> Builder:
        _BUILDERS[kind] = fn
        return fn
    return register


@_builder("gender")
def _gender_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限性别: the other sex (violating) and the limited sex (compliant)."""
    code, limited = point["hilist_code"], point["gend"]
    other = "2" if limited == "1" else "1"
    free = replace(ctx.limit(code), gend=None)
    out = []
    for verdict, gend, words in (("violating", other, "异性 (the other sex)"),
                                 ("compliant", limited, "限定性别 (the limited sex)")):
        plan = _one_line_claim(ctx, code, [free], verdict, words, gend=gend)
        if isinstance(plan, str):
            return plan
        out.append(plan)
    return out


@_builder("age")
def _age_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限年龄: one day either side of each bound (newborns: 28 days vs 27; 儿童: the 18th birthday vs the
    day before; working age: one day short of 16 vs the 16th birthday, the 60th birthday vs the day before)."""
    code = point["hilist_code"]
    low, high = _number(point["age_min"]), _number(point["age_max"])
    free = replace(ctx.limit(code), age_min=None, age_max=None)
    cases: list[tuple[str, date, str]] = []
    if high is not None and high < 1:
        days = round(high * 365)
        cases += [("violating", DAY0 - timedelta(days=days), f"出生第{days}天 (age {days} days; limit < {days} days)"),
                  ("compliant", DAY0 - timedelta(days=days - 1), f"出生第{days - 1}天 (age {days - 1} days)")]
    elif high is not None:
        n = int(high)
        cases += [("violating", _years_before(DAY0, n), f"满{n}周岁当日 (age {n} on the fee day; limit < {n})"),
                  ("compliant", _years_before(DAY0, n) + timedelta(days=1), f"{n}周岁前一日 (one day before {n})")]
    if low is not None:
        n = int(low)
        cases += [("violating", _years_before(DAY0, n) + timedelta(days=1),
                   f"{n}周岁前一日 (one day before {n}; limit ≥ {n})"),
                  ("compliant", _years_before(DAY0, n), f"满{n}周岁当日 (age {n} on the fee day)")]
    out = []
    for verdict, brdy, words in cases:
        plan = _one_line_claim(ctx, code, [free], verdict, words, brdy=brdy)
        if isinstance(plan, str):
            return plan
        out.append(plan)
    return out


@_builder("insurance_type")
def _insurance_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限保险类型: billed to the medical fund (violating); settled under the insurance it is limited to
    (compliant: 工伤保险 insutype 410; 生育: a 生育门诊 settlement, med_type 51, or 生育保险, insutype 510)."""
    code, only = point["hilist_code"], point["insurance_only"]
    violating = [((OUTPATIENT, EMPLOYEE), "职工医保普通门诊 (med_type 11, insutype 310)")]
    if only == "工伤":
        compliant = [((OUTPATIENT, WORK_INJURY), "工伤保险结算 (insutype 410)")]
    elif only == "生育":
        compliant = [((MATERNITY_OUTPATIENT, EMPLOYEE), "生育门诊 (med_type 51)"),
                     ((OUTPATIENT, MATERNITY), "生育保险结算 (insutype 510)")]
    else:
        return f"unknown insurance type {only!r}"
    free = replace(ctx.limit(code), insurance_only=None)
    out = []
    for verdict, cases in (("violating", violating), ("compliant", compliant)):
        for settlement, words in cases:
            plan = _one_line_claim(ctx, code, [free], verdict, words, settlement=settlement)
            if isinstance(plan, str):
                return plan
            out.append(plan)
    return out


@_builder("care_setting")
def _care_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限就医方式: the nearest setting not allowed (急诊 for inpatient-only drugs, 门诊 for 急诊或住院) and the
    nearest allowed (住院; 急诊)."""
    code = point["hilist_code"]
    if point["care_setting"] == "inpatient":
        cases = [("violating", EMERGENCY, "急诊 (emergency; limited to inpatients)"),
                 ("compliant", INPATIENT, "住院 (inpatient)")]
    else:
        cases = [("violating", OUTPATIENT, "普通门诊 (outpatient; limited to inpatients or emergency)"),
                 ("compliant", EMERGENCY, "急诊 (emergency)")]
    free = replace(ctx.limit(code), care_setting=None)
    out = []
    for verdict, med_type, words in cases:
        insutype = next((i for m, i in _SETTLEMENTS if m == med_type and free.allows_settlement(m, i)), None)
        if insutype is None:
            return f"no insurance type allows med_type {med_type} for {code}"
        plan = _one_line_claim(ctx, code, [free], verdict, words, settlement=(med_type, insutype))
        if isinstance(plan, str):
            return plan
        out.append(plan)
    return out


@_builder("institution_level")
def _level_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限机构等级: one level below the limit (violating) and at it (compliant); and a 基层 clinic (violating:
    no level of its own)."""
    code, least = point["hilist_code"], int(point["min_hosp_level"])
    if least - 1 not in _BY_LEVEL or least not in _BY_LEVEL:
        return f"no institution one level below {least}"
    free = replace(ctx.limit(code), min_hosp_level=None)
    out = []
    for verdict, level in (("violating", least - 1), ("compliant", least), ("violating", 0)):
        kind = INSTITUTIONS[_BY_LEVEL[level]][0]
        words = (f"{level}级医院 (level {level}; limit ≥ {least})" if kind == "hospital"
                 else f"基层医疗机构 ({kind}, no level; limit ≥ {least})")
        plan = _one_line_claim(ctx, code, [free], verdict, words, institution=_BY_LEVEL[level])
        if isinstance(plan, str):
            return plan
        out.append(plan)
    return out


@_builder("course_length")
def _course_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限支付疗程: one course whose last use falls on course day N+1 (violating) or N (compliant); for a drug
    with other codes (another maker or package of the same generic drug) or an item with method variants
    (the same first 12 digits, e.g. 手功能评定(徒手)/(仪器)), the same with the earlier uses billed under
    another of its codes: they are one course.

    Uses are spread over the course with gaps the course keeps (at most ``new_course_after_days`` beyond the
    item's own minimum interval) and that the item allows (at least its interval: 间隔时间不短于N天, 每周一次);
    one outpatient visit per use, or one stay for a drug limited to inpatients. The hit is the last use.
    """
    code, limit = point["hilist_code"], int(point["max_days"])
    earlier = [code] + list(ctx.course_siblings.get(code, ())[:1])
    out = []
    for first_code in earlier:
        for verdict, last in (("violating", limit + 1), ("compliant", limit)):
            plan = _course_plan(ctx, code, first_code, limit, last, verdict)
            if isinstance(plan, str):
                return plan
            out.append(plan)
    return out


def _course_plan(ctx: SuiteContext, code: str, first_code: str, limit: int, last: int, verdict: str
                 ) -> ClaimPlan | str:
    """A course of *code* whose last use is on course day *last*, the uses before it billed as *first_code*."""
    lims = [ctx.limit(code), ctx.limit(first_code)]
    interval = max(lim.min_interval_days or 0 for lim in lims)
    widest = ctx.course_gap_days + interval
    days = _use_days(last, smallest=max(interval, 1), widest=widest)
    if days is None:
        return (f"no course of {last} days with gaps between {max(interval, 1)} and {widest} days "
                f"(interval {interval}, course break after {ctx.course_gap_days})")
    first, final = DAY0, DAY0 + timedelta(days=last - 1)
    setting = _settlement_for(lims)
    brdy = _birth_date(lims, first, final)
    gend = _sex_for(lims)
    if isinstance(setting, str) or isinstance(brdy, str) or gend is None:
        return setting if isinstance(setting, str) else brdy if isinstance(brdy, str) else "sexes differ"
    words = (f"疗程第{last}天用药 (last use on course day {last}; limit {limit} days; "
             f"{len(days)} uses, gaps {_gaps(days)}"
             + (f"; earlier uses as {first_code}" if first_code != code else "") + ")")
    institution = _institution_for(lims)
    uses = [DAY0 + timedelta(days=d - 1) for d in days]
    lines = [LinePlan(code if u == final else first_code, _at(u, 9), PLAIN_PRICE,
                      target=(u == final and verdict == "violating")) for u in uses]
    if setting[0] in INPATIENT_MED_TYPES:  # one stay holds the whole course
        visits = (VisitPlan(*setting, institution, _at(first, 8), _at(final + timedelta(days=1), 10), tuple(lines)),)
    else:
        visits = tuple(_day_visit(setting, institution, ln.time.date(), [ln]) for ln in lines)
    return ClaimPlan(verdict, words, gend, brdy, visits)


@_builder("duplicate_charge")
def _duplicate_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """重复收费: the sub-item inside the main item's window (violating) and just outside it (compliant):
    单日 23:59:59 vs 00:00:00 the next day in a stay (and, violating too, the sub-item in another visit to
    the same institution that day), 6小时 exactly 6 h vs 6 h 1 s, 同一小时 10:59:59 vs 11:00:00, 单次就诊 the
    same visit vs another visit the same day. The hit is the sub-item line."""
    main, sub, window = point["hilist_code"], point["related_code"], point["window"]
    lims = [ctx.limit(main), ctx.limit(sub)]
    gend, institution = _sex_for(lims), _institution_for(lims)
    if gend is None:
        return f"main item {main} and sub-item {sub} are limited to different sexes"
    if window == "day":  # a stay spanning midnight
        setting = _settlement_for(lims, inpatient=True)
        if isinstance(setting, str):
            return setting
        brdy = _birth_date(lims, DAY0, DAY0 + timedelta(days=1))
        if isinstance(brdy, str):
            return brdy
        out = []
        for verdict, sub_time, words in (
                ("violating", _at(DAY0, 23, 59, 59), "同日 23:00 与 23:59:59 (same calendar day)"),
                ("compliant", _at(DAY0 + timedelta(days=1), 0), "23:00 与次日 00:00:00 (next calendar day)")):
            lines = (LinePlan(main, _at(DAY0, 23), PLAIN_PRICE),
                     LinePlan(sub, sub_time, PLAIN_PRICE, target=verdict == "violating"))
            visit = VisitPlan(*setting, institution, _at(DAY0, 20), _at(DAY0 + timedelta(days=1), 10), lines)
            out.append(ClaimPlan(verdict, words, gend, brdy, (visit,)))
        day = _settlement_for(lims, inpatient=False)
        if not isinstance(day, str):
            visits = (_day_visit(day, institution, DAY0, [LinePlan(main, _at(DAY0, 9), PLAIN_PRICE)],
                                 end=_at(DAY0, 10)),
                      _day_visit(day, institution, DAY0, [LinePlan(sub, _at(DAY0, 15), PLAIN_PRICE, target=True)],
                                 begin=_at(DAY0, 14)))
            out.append(ClaimPlan("violating", "同日同机构另一次就诊 (another visit to the institution that day)",
                                 gend, brdy, visits))
        return out
    setting = _settlement_for(lims)
    brdy = _birth_date(lims, DAY0, DAY0)
    if isinstance(setting, str) or isinstance(brdy, str):
        return setting if isinstance(setting, str) else brdy
    if window == "visit":
        main_line = LinePlan(main, _at(DAY0, 9), PLAIN_PRICE)
        same = _day_visit(setting, institution, DAY0, [
            main_line, LinePlan(sub, _at(DAY0, 15), PLAIN_PRICE, target=True)])
        other = (_day_visit(setting, institution, DAY0, [main_line], end=_at(DAY0, 10)),
                 _day_visit(setting, institution, DAY0, [LinePlan(sub, _at(DAY0, 15), PLAIN_PRICE)],
                            begin=_at(DAY0, 14)))
        return [ClaimPlan("violating", "同一次就诊 (the same visit)", gend, brdy, (same,)),
                ClaimPlan("compliant", "同日另一次就诊 (another visit the same day)", gend, brdy, other)]
    if window == "6h":
        main_time = _at(DAY0, 8)
        cases = (("violating", main_time + timedelta(hours=6), "相隔正好6小时 (exactly 6 h apart)"),
                 ("compliant", main_time + timedelta(hours=6, seconds=1), "相隔6小时1秒 (6 h 1 s apart)"))
    elif window == "hour":
        main_time = _at(DAY0, 10, 30)
        cases = (("violating", _at(DAY0, 10, 59, 59), "10:30 与 10:59:59 (same clock hour)"),
                 ("compliant", _at(DAY0, 11), "10:30 与 11:00:00 (the next clock hour)"))
    else:
        return f"unknown window {window!r}"
    out = []
    for verdict, sub_time, words in cases:
        lines = [LinePlan(main, main_time, PLAIN_PRICE),
                 LinePlan(sub, sub_time, PLAIN_PRICE, target=verdict == "violating")]
        out.append(ClaimPlan(verdict, words, gend, brdy, (_day_visit(setting, institution, DAY0, lines),)))
    return out


@_builder("frequency")
def _frequency_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限频次: N per day billed (compliant) vs one more (violating), in a 3-day stay (3×N vs 3×N+1: the
    daily postings at 09:00 and an extra at 15:00, which is the hit; or a fourth daily posting on the
    discharge day, which does not count as a day of stay) and, where the item may be billed outside a stay,
    in a one-day visit (N vs N+1)."""
    code, n = point["hilist_code"], int(point["max_count"])
    unit = "小时" if point["count_unit"] == "hour" else "次"
    lim = ctx.limit(code)
    gend, institution = _sex_for([lim]), _institution_for([lim])
    out = []
    stay = _settlement_for([lim], inpatient=True)
    brdy = _birth_date([lim], DAY0, DAY0 + timedelta(days=3))
    if isinstance(stay, str) or isinstance(brdy, str):
        return stay if isinstance(stay, str) else brdy
    daily = [LinePlan(code, _at(DAY0 + timedelta(days=d), 9), PLAIN_PRICE, cnt=n) for d in range(3)]
    extra = LinePlan(code, _at(DAY0 + timedelta(days=1), 15), PLAIN_PRICE, target=True)
    discharge_day = LinePlan(code, _at(DAY0 + timedelta(days=3), 9), PLAIN_PRICE, cnt=n, target=True)
    for verdict, lines, words in (
            ("violating", daily + [extra], f"住院3天共{3 * n + 1}{unit} (3-day stay, {3 * n} allowed)"),
            ("violating", daily + [discharge_day], f"出院日再收{n}{unit} (again on the discharge day; 3-day stay)"),
            ("compliant", daily, f"住院3天共{3 * n}{unit} (3-day stay, {3 * n} allowed)")):
        visit = VisitPlan(*stay, institution, _at(DAY0, 8), _at(DAY0 + timedelta(days=3), 10), tuple(lines))
        out.append(ClaimPlan(verdict, words, gend, brdy, (visit,)))
    day = _settlement_for([lim], inpatient=False)
    if not isinstance(day, str) and day[0] not in INPATIENT_MED_TYPES:
        first = LinePlan(code, _at(DAY0, 9), PLAIN_PRICE, cnt=n)
        second = LinePlan(code, _at(DAY0, 15), PLAIN_PRICE, target=True)
        for verdict, lines in (("violating", [first, second]), ("compliant", [first])):
            words = f"门诊1天共{n + (verdict == 'violating')}{unit} (one-day visit, {n} allowed)"
            out.append(ClaimPlan(verdict, words, gend, brdy, (_day_visit(day, institution, DAY0, lines),)))
    return out


@_builder("period_frequency")
def _period_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限周期频次: max_count uses, then one more period_days - 1 days later (violating) or period_days days
    later (compliant); one outpatient visit each. The hit is the later use. For an item with method
    variants (the same first 12 digits), the same with the first uses billed as a variant: they count
    together."""
    code, n, period = point["hilist_code"], int(point["max_count"]), int(point["period_days"])
    out = []
    for first_code in [code] + list(ctx.period_siblings.get(code, ())[:1]):
        lims = [ctx.limit(code), ctx.limit(first_code)]
        gend, institution = _sex_for(lims), _institution_for(lims)
        setting = _settlement_for(lims)
        brdy = _birth_date(lims, DAY0, DAY0 + timedelta(days=period))
        if isinstance(setting, str) or isinstance(brdy, str) or gend is None:
            return setting if isinstance(setting, str) else brdy if isinstance(brdy, str) else "sexes differ"
        first = _day_visit(setting, institution, DAY0, [LinePlan(first_code, _at(DAY0, 9), PLAIN_PRICE, cnt=n)])
        variant = f"; first as {first_code}" if first_code != code else ""
        for verdict, after in (("violating", period - 1), ("compliant", period)):
            day = DAY0 + timedelta(days=after)
            later = _day_visit(setting, institution, day, [LinePlan(code, _at(day, 9), PLAIN_PRICE,
                                                                    target=verdict == "violating")])
            words = f"{after}天后再次收费 (again {after} days later; {n} per {period} days{variant})"
            out.append(ClaimPlan(verdict, words, gend, brdy, (first, later)))
    return out


@_builder("primary_secondary_surgery")
def _surgery_claims(point: Mapping[str, Any], ctx: SuiteContext) -> list[ClaimPlan] | str:
    """限定主次操作: after another operation of the group in the same stay, the operation at full price one
    hour later (violating) vs at the discounted price (compliant); and at full price exactly
    ``session_hours`` later (violating: the same session) vs one second more (compliant: another session)."""
    code, group = point["hilist_code"], point["surgery_group"]
    lim = ctx.limit(code)
    main = _main_operation(code, group, ctx)
    if main is None:
        return f"no other operation of {group} that may go with {code} (same sex, no batch-7 pair, one group)"
    lims = [lim, ctx.limit(main)]
    setting = _settlement_for(lims, inpatient=True)
    brdy = _birth_date(lims, DAY0, DAY0 + timedelta(days=3))
    if isinstance(setting, str) or isinstance(brdy, str):
        return setting if isinstance(setting, str) else brdy
    gend, institution = _sex_for(lims), _institution_for(lims)
    cap = ctx.cap(code)
    discounted = (cap * ctx.discounted_ratio).quantize(Decimal("0.01"))
    first = _at(DAY0 + timedelta(days=1), 9)
    session = timedelta(hours=ctx.session_hours)
    cases = (("violating", first + timedelta(hours=1), cap, "1小时后全价 (one hour later, full price)"),
             ("compliant", first + timedelta(hours=1), discounted,
              f"1小时后按{ctx.discounted_ratio}折价 (one hour later, discounted price)"),
             ("violating", first + session, cap,
              f"相隔{ctx.session_hours}小时全价 (exactly {ctx.session_hours} h later, full price)"),
             ("compliant", first + session + timedelta(seconds=1), cap,
              f"相隔{ctx.session_hours}小时1秒全价 ({ctx.session_hours} h 1 s later: another session)"))
    out = []
    for verdict, when, pric, words in cases:
        lines = (LinePlan(main, first, ctx.cap(main)), LinePlan(code, when, pric, target=verdict == "violating"))
        visit = VisitPlan(*setting, institution, _at(DAY0, 8), _at(DAY0 + timedelta(days=3), 10), lines)
        out.append(ClaimPlan(verdict, words, gend, brdy, (visit,)))
    return out


# -- rendering claims as contract rows -----------------------------------------------------------------

def claim_rows(claim: Claim, ctx: SuiteContext) -> dict[str, list[dict[str, Any]]]:
    """The claim's rows of the claim tables and psn_info, in contract field names (codes in its form)."""
    plan, cid = claim.plan, claim.claim_id
    psn = claim.psn_no
    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in ("psn_info", "mdtrt_d", "setl_d", "fee_list_d",
                                                              "setl_list_diag_d")}
    rows["psn_info"].append({"psn_no": psn, "gend": plan.gend, "brdy": plan.brdy, "insutype": EMPLOYEE,
                             "insu_admdvs": "220102", "psn_type": "1101"})
    for i, v in enumerate(plan.visits):
        setl_id, mdtrt_id = _setl_id(cid, i), _mdtrt_id(cid, i)
        kind, hosp_lv, _ = INSTITUTIONS[v.institution]
        total = Decimal("0.00")
        for j, ln in enumerate(v.lines):
            amount = (ln.pric * ln.cnt).quantize(Decimal("0.01"))
            total += amount
            drug = not ln.code.startswith("00")
            surgery = ln.code in ctx.surgery_groups
            rows["fee_list_d"].append({
                "bkkp_sn": _line_id(cid, i, j), "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn,
                "fixmedins_code": v.institution, "fee_ocur_time": ln.time,
                "hilist_code": code_in_form(ln.code, claim.form, _row_of(claim.point_id) + j),
                "hilist_name": ctx.names.get(ln.code, ln.code), "list_type": "101" if drug else "201",
                "med_chrgitm_type": "09" if drug else ("06" if surgery else "05"),
                "cnt": float(ln.cnt), "pric": ln.pric, "det_item_fee_sumamt": amount, "chrgitm_lv": "01",
                "inscp_amt": amount, "pric_uplmt_amt": ctx.cap(ln.code), "bilg_dr_code": _doctor(v.institution),
                "bilg_dept_codg": "A03"})
        fund = (total * Decimal("0.7")).quantize(Decimal("0.01"))
        inpatient = v.med_type in INPATIENT_MED_TYPES
        rows["mdtrt_d"].append({
            "mdtrt_id": mdtrt_id, "psn_no": psn, "fixmedins_code": v.institution, "med_type": v.med_type,
            "begntime": v.begin, "endtime": v.end, "dscg_maindiag_code": DIAGNOSIS, "adm_dept_codg": "A03",
            "chfpdr_code": _doctor(v.institution),
            "ipt_days": (v.end.date() - v.begin.date()).days if inpatient else 0,
            "dscg_way": "1", "insu_admdvs": "220102", "pay_loc": "1"})
        rows["setl_d"].append({
            "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn, "fixmedins_code": v.institution,
            "med_type": v.med_type, "insutype": v.insutype, "setl_time": v.end + timedelta(minutes=30),
            "medfee_sumamt": total, "fund_pay_sumamt": fund, "hifp_pay": fund, "psn_pay": total - fund,
            "acct_pay": Decimal("0.00"), "insu_admdvs": "220102", "refd_setl_flag": "0", "begndate": v.begin.date(),
            "enddate": v.end.date(), "hosp_lv": hosp_lv, "gend": plan.gend, "brdy": plan.brdy})
        rows["setl_list_diag_d"].append({"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn,
                                         "maindiag_flag": "1", "diag_code": DIAGNOSIS, "diag_type": "1",
                                         "diag_name": "急性上呼吸道感染"})
    return rows


def visit_of(claim: Claim, ctx: SuiteContext) -> dict[str, Any]:
    """The claim's last visit as a pre-check request (``Prechecker.check``): settlement, visit, lines,
    diagnoses."""
    rows = claim_rows(claim, ctx)
    setl = rows["setl_d"][-1]
    return {"setl": setl, "mdtrt": rows["mdtrt_d"][-1],
            "lines": [ln for ln in rows["fee_list_d"] if ln["setl_id"] == setl["setl_id"]],
            "diagnoses": [d for d in rows["setl_list_diag_d"] if d["setl_id"] == setl["setl_id"]]}


def reference_rows(claims: Iterable[Claim], ctx: SuiteContext) -> dict[str, list[dict[str, Any]]]:
    """Institutions, their doctors and the catalogue entries (canonical codes) of every code the claims use."""
    codes = sorted({ln.code for c in claims for v in c.plan.visits for ln in v.lines})
    return {
        "fixmedins": [{"fixmedins_code": code, "fixmedins_name": f"一致性测试机构{level}", "fixmedins_type": kind,
                       "admdvs": "220102", "hosp_lv": hosp_lv}
                      for code, (kind, hosp_lv, level) in INSTITUTIONS.items()],
        "practitioner": [{"prac_code": _doctor(code), "fixmedins_code": code, "dept_codg": "A03", "caty": "A03",
                          "title": "主治医师"} for code in INSTITUTIONS],
        "hilist": [{"hilist_code": code, "hilist_name": ctx.names.get(code, code),
                    "list_type": "201" if code.startswith("00") else "101", "chrgitm_lv": "01",
                    "pric_uplmt_amt": ctx.cap(code), "generic_name": ctx.names.get(code, code),
                    "med_chrgitm_type": "09" if not code.startswith("00") else "06" if code in ctx.surgery_groups
                    else "05"}
                   for code in codes],
    }


def write_extract(claims: Sequence[Claim], ctx: SuiteContext, folder: Path, *, chunk: int = 20_000) -> dict[str, int]:
    """Write the claims as a contract extract (one Parquet part file per table and chunk of claims), with
    the reference tables; rows written per table."""
    folder = Path(folder)
    counts: Counter[str] = Counter()

    def write(part: int, rows: Mapping[str, list[dict[str, Any]]]) -> None:
        for table, got in rows.items():
            if got:
                (folder / table).mkdir(parents=True, exist_ok=True)
                pq.write_table(_arrow(table, got), folder / table / f"part-{part:04d}.parquet")
                counts[table] += len(got)

    write(0, reference_rows(claims, ctx))
    for part, start in enumerate(range(0, len(claims), chunk), start=1):
        rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for claim in claims[start:start + chunk]:
            for table, got in claim_rows(claim, ctx).items():
                rows[table] += got
        write(part, rows)
    return dict(counts)


# -- judging -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Seen:
    """A hit as the judge reads it: rule, evidence lines, the knowledge point it names."""

    rule_id: str
    evidence: tuple[str, ...]
    point_id: str | None


def judge(claim: Claim, hits: Sequence[Seen]) -> str | None:
    """None when the engine said what the claim expects, else what went wrong.

    Violating: the point's rule fired, on exactly the target lines, naming the point, and no other rule
    fired. Compliant: neither the point's rule nor any other fired.

    >>> plan = ClaimPlan("violating", "", "1", DAY0, (VisitPlan("11", "310", "CF-H3", _at(DAY0, 8), _at(DAY0, 9),
    ...                   (LinePlan("X", _at(DAY0, 9), PLAIN_PRICE, target=True),)),))
    >>> c = Claim("p~V0~c", "p", "1", "liangku_gender", "canonical", plan)
    >>> judge(c, [Seen("liangku_gender", ("p~V0~c.L0.0",), "p")]) is None
    True
    >>> judge(c, [])
    'liangku_gender did not fire'
    """
    own = [h for h in hits if h.rule_id == claim.rule_id]
    others = sorted({h.rule_id for h in hits if h.rule_id != claim.rule_id})
    lines = sorted({e for h in own for e in h.evidence})
    if claim.verdict == "compliant":
        if own:
            named = ", ".join(sorted({str(h.point_id) for h in own}))
            return f"{claim.rule_id} fired on {_short_lines(lines)} (point {named})"
        return f"other rule(s) fired: {', '.join(others)}" if others else None
    if not own:
        return f"{claim.rule_id} did not fire" + (f" (but {', '.join(others)} did)" if others else "")
    if lines != sorted(claim.target_lines):
        return f"{claim.rule_id} fired on {_short_lines(lines)}, expected {_short_lines(claim.target_lines)}"
    if wrong := sorted({str(h.point_id) for h in own} - {claim.point_id}):
        return f"{claim.rule_id} named knowledge point {', '.join(wrong)}"
    return f"other rule(s) fired too: {', '.join(others)}" if others else None


# -- the run ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """An expected verdict an engine missed."""

    point_id: str
    batch: str
    rule_id: str
    engine: str
    claim_id: str
    verdict: str
    form: str
    boundary: str
    reason: str


@dataclass(frozen=True)
class BatchResult:
    """One batch: points, points covered (and of them with a caveat), claims, and per engine and code form
    the verdicts met."""

    batch: str
    points: int
    covered: int
    with_caveat: int
    claims: Mapping[str, int]                 # form -> claims (= verdicts expected per engine)
    met: Mapping[str, Mapping[str, int]]      # engine -> form -> verdicts met
    points_passed: Mapping[str, int]          # engine -> covered points with every verdict met (all forms)

    def to_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "points": self.points, "covered": self.covered,
                "with_caveat": self.with_caveat, "claims": dict(self.claims),
                "met": {e: dict(m) for e, m in self.met.items()}, "points_passed": dict(self.points_passed)}


@dataclass(frozen=True)
class ConformanceReport:
    """What :func:`run_conformance` found (两库一致性测试报告)."""

    pack_version: str
    config_path: str
    sample: int | None
    seed: int
    lookback_days: int
    engines: tuple[str, ...]
    forms: tuple[str, ...]
    batches: tuple[BatchResult, ...]
    failures: tuple[Failure, ...]
    uncovered: tuple[Uncovered, ...]
    caveats: tuple[Caveat, ...]
    quarantined: Mapping[str, int]            # ingest reason -> rows quarantined
    seconds: Mapping[str, float]
    workdir: str | None = None

    @property
    def missed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {"pack_version": self.pack_version, "config_path": self.config_path, "sample": self.sample,
                "seed": self.seed, "lookback_days": self.lookback_days, "engines": list(self.engines),
                "forms": list(self.forms),
                "points": sum(b.points for b in self.batches), "covered": sum(b.covered for b in self.batches),
                "missed": self.missed, "ok": self.ok, "batches": [b.to_dict() for b in self.batches],
                "failures": [vars(f) for f in self.failures], "uncovered": [vars(u) for u in self.uncovered],
                "caveats": [vars(c) for c in self.caveats],
                "quarantined": dict(self.quarantined), "seconds": dict(self.seconds), "workdir": self.workdir}


Progress = Callable[[str, int, int], None]


def run_conformance(*, config: RuleConfig | None = None, pack: pd.DataFrame | None = None, sample: int | None = None,
                    seed: int = DEFAULT_SEED, batches: Iterable[str] | None = None,
                    engines: Sequence[str] = ENGINES, forms: Sequence[str] = FORMS,
                    lookback_days: int | None = None, workdir: Path | None = None,
                    progress: Progress | None = None) -> ConformanceReport:
    """Generate the claims of the chosen points, run them through the engines, judge every verdict.

    ``sample`` points per batch (seeded by ``seed``), or every point; ``workdir`` keeps the extract and the
    warehouse (else a temporary folder, removed afterwards). The pre-check looks back ``lookback_days``,
    by default as the service's checker does (the config's ``history_days``): a course
    whose first use lies further back is not seen in real time, and the suite says so.
    """
    from models.rules.config import load_config
    from models.rules.pack import pack_version

    config = config or load_config()
    lookback_days = lookback_days or config.history_days  # the service's checker looks back as far
    if unknown := set(engines) - set(ENGINES):
        raise ValueError(f"unknown engine(s) {sorted(unknown)}; engines: {', '.join(ENGINES)}")
    config = config or load_config()
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    pack_given = pack is not None
    pack = load_pack() if pack is None else pack
    ctx = SuiteContext.build(pack, config)
    points = sample_points(pack, sample, seed=seed, batches=list(batches) if batches is not None else None)
    claims, uncovered = generate(points, ctx, forms=forms)
    sidecar = DEFAULT_PACK.with_suffix(".json")
    caveats = pack_caveats(points, json.loads(sidecar.read_text(encoding="utf-8")).get("warnings", ())
                           if not pack_given and sidecar.is_file() else ())
    seconds["generate"] = _lap(t)
    temporary = tempfile.TemporaryDirectory(prefix="yibao-conformance-") if workdir is None else None
    root = Path(temporary.name if temporary else workdir)
    try:
        warehouse, quarantined, not_loaded, lap = _load(claims, ctx, root, progress)
        seconds.update(lap)
        outcomes: dict[str, dict[str, str | None]] = {}
        if "sql" in engines:
            t = time.perf_counter()
            outcomes["sql"] = _run_sql(claims, warehouse, config, not_loaded, progress)
            seconds["sql"] = _lap(t)
        if "precheck" in engines:
            t = time.perf_counter()
            outcomes["precheck"] = _run_precheck(claims, ctx, warehouse, config, not_loaded, lookback_days, progress)
            seconds["precheck"] = _lap(t)
    finally:
        if temporary is not None:
            temporary.cleanup()
    seconds["total"] = round(sum(seconds.values()), 2)
    return _report(points, claims, uncovered, caveats, outcomes, config=config, pack_version=pack_version(),
                   sample=sample, seed=seed, lookback_days=lookback_days,
                   engines=tuple(e for e in ENGINES if e in engines), forms=tuple(forms),
                   quarantined=quarantined, seconds=seconds, workdir=str(root) if workdir is not None else None)


def _load(claims: Sequence[Claim], ctx: SuiteContext, root: Path, progress: Progress | None
          ) -> tuple[Path, dict[str, int], dict[str, list[tuple[str, str]]], dict[str, float]]:
    """Write the extract, ingest it into a fresh warehouse; the quarantine counts and, per person whose
    rows did not all load, the visit (mdtrt_id, '' for the person's own row) and why."""
    import duckdb

    from features.config import Settings
    from features.ingest import ingest

    lap: dict[str, float] = {}
    t = time.perf_counter()
    extract, warehouse = root / "extract", root / "warehouse.duckdb"
    for path in (warehouse, warehouse.with_name(warehouse.name + ".wal"),
                 Settings(warehouse=warehouse).identity_vault):
        path.unlink(missing_ok=True)
    if extract.exists():
        import shutil
        shutil.rmtree(extract)
    write_extract(claims, ctx, extract)
    lap["write"] = _lap(t)
    t = time.perf_counter()
    ingest(extract, Settings(warehouse=warehouse), progress=(lambda table, done, total: progress(
        f"ingest {table}", done, total)) if progress else None)
    lap["ingest"] = _lap(t)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        quarantined = dict(con.execute("SELECT reason_code, count(*) FROM quarantine GROUP BY 1 ORDER BY 1").fetchall())
        rows = con.execute(
            "SELECT coalesce(json_extract_string(raw, '$.psn_no'), ''), table_name, "
            "coalesce(json_extract_string(raw, '$.mdtrt_id'), ''), field, reason_code, any_value(value) "
            "FROM quarantine GROUP BY ALL ORDER BY ALL").fetchall()
    not_loaded: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for psn, table, mdtrt_id, fld, reason, value in rows:
        not_loaded[psn].append((mdtrt_id, f"{table}.{fld} {reason} ({value})"))
    return warehouse, quarantined, not_loaded, lap


def _run_sql(claims: Sequence[Claim], warehouse: Path, config: RuleConfig,
             not_loaded: Mapping[str, list[tuple[str, str]]], progress: Progress | None) -> dict[str, str | None]:
    """Run the rules over the warehouse; judge each claim by the hits on its person. A claim with a row
    the ingest quarantined is not judged: the rules never saw all of it (a miss, with the ingest's reason)."""
    import duckdb

    from models.rules.engine import run_rules

    run_rules(warehouse, config, progress=(lambda rule, done, total: progress(
        f"rules {rule}", done, total)) if progress else None)
    hits: dict[str, list[Seen]] = defaultdict(list)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        for rule_id, psn, evidence, point in con.execute(
                "SELECT rule_id, psn_no, evidence, json_extract_string(detail, '$.point_id') FROM rule_hits"
        ).fetchall():
            hits[psn].append(Seen(rule_id, tuple(evidence or ()), point))
    out = {}
    for claim in claims:
        if claim.psn_no in not_loaded:
            out[claim.claim_id] = "not judged, quarantined by the ingest: " + _reasons(not_loaded[claim.psn_no])
        else:
            out[claim.claim_id] = judge(claim, hits.get(claim.psn_no, ()))
    return out


def _run_precheck(claims: Sequence[Claim], ctx: SuiteContext, warehouse: Path, config: RuleConfig,
                  not_loaded: Mapping[str, list[tuple[str, str]]], lookback_days: int,
                  progress: Progress | None) -> dict[str, str | None]:
    """Check each claim's last visit with the kernels, its earlier visits read from the warehouse. The
    visit itself is posted, not read: only a quarantined person row or earlier visit leaves it unjudged."""
    from models.rules.precheck import Prechecker, VisitError

    out: dict[str, str | None] = {}
    with Prechecker(warehouse, config=config, lookback_days=lookback_days, engine="python", sessions=1) as checker:
        for k, claim in enumerate(claims):
            if progress and k % 2000 == 0:
                progress("precheck", k, len(claims))
            history = [r for r in not_loaded.get(claim.psn_no, ()) if r[0] != claim.checked_mdtrt_id]
            if history:
                out[claim.claim_id] = "not judged, history quarantined by the ingest: " + _reasons(history)
                continue
            try:
                found = checker.check(visit_of(claim, ctx))
                hits = [Seen(h.rule_id, h.evidence, h.detail.get("point_id")) for h in found]
            except VisitError as e:
                out[claim.claim_id] = f"precheck refused the visit: {e}"
                continue
            reason = judge(claim, hits)
            first, last = claim.plan.visits[0].begin, claim.plan.visits[-1].end
            if reason is not None and (last - first).days >= lookback_days:
                reason += (f" (its first visit is {(last - first).days} days back; "
                           f"the pre-check looks back {lookback_days})")
            out[claim.claim_id] = reason
    if progress:
        progress("precheck", len(claims), len(claims))
    return out


def _report(points: pd.DataFrame, claims: Sequence[Claim], uncovered: Sequence[Uncovered], caveats: Sequence[Caveat],
            outcomes: Mapping[str, Mapping[str, str | None]], **meta: Any) -> ConformanceReport:
    by_batch: dict[str, list[Claim]] = defaultdict(list)
    for c in claims:
        by_batch[c.batch].append(c)
    failures = [Failure(c.point_id, c.batch, c.rule_id, engine, c.claim_id, c.verdict, c.form, c.plan.boundary,
                        reason)
                for engine, result in outcomes.items() for c in claims if (reason := result[c.claim_id]) is not None]
    failed = {(f.engine, f.point_id) for f in failures}
    batches = []
    for batch in _batch_order(points.batch):
        mine = by_batch.get(batch, [])
        covered = {c.point_id for c in mine}
        batches.append(BatchResult(
            batch=batch, points=int((points.batch == batch).sum()), covered=len(covered),
            with_caveat=len({c.point_id for c in caveats if c.batch == batch and c.point_id in covered}),
            claims=dict(Counter(c.form for c in mine)),
            met={e: dict(Counter(c.form for c in mine if outcomes[e][c.claim_id] is None)) for e in outcomes},
            points_passed={e: len({p for p in covered if (e, p) not in failed}) for e in outcomes}))
    return ConformanceReport(batches=tuple(batches), failures=tuple(failures), uncovered=tuple(uncovered),
                             caveats=tuple(caveats),
                             config_path=str(meta.pop("config").path), **meta)


# -- private helpers -----------------------------------------------------------------------------------

def _code_limits(pack: pd.DataFrame) -> dict[str, CodeLimits]:
    """Per code, every restriction of the pack (the strictest where two points of a kind disagree)."""
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for r in pack.to_dict("records"):
        lim, kind = out[r["hilist_code"]], r["rule_kind"]
        if kind == "gender":
            lim["gend"] = r["gend"]
        elif kind == "age":
            if (low := _number(r["age_min"])) is not None:
                lim["age_min"] = max(low, lim.get("age_min") or low)
            if (high := _number(r["age_max"])) is not None:
                lim["age_max"] = min(high, lim.get("age_max") or high)
        elif kind == "insurance_type":
            lim["insurance_only"] = r["insurance_only"]
        elif kind == "care_setting":
            lim["care_setting"] = r["care_setting"]
        elif kind == "institution_level":
            lim["min_hosp_level"] = max(int(r["min_hosp_level"]), lim.get("min_hosp_level") or 0)
        if kind in ("course_length", "period_frequency") and (gap := _interval(r)) is not None:
            lim["min_interval_days"] = max(gap, lim.get("min_interval_days") or 0)
    return {code: CodeLimits(**lim) for code, lim in out.items()}


def _course_keys(course: pd.DataFrame) -> pd.Series:
    """What a course is kept by (as liangku_course_length): a drug's generic drug (its batch-6 Sheet1 row),
    an item's first 12 digits (its method variants together)."""
    rows = course.rule_row.astype("string")
    return course.batch + ":" + rows.where(course.rule_row.notna(), course.hilist_code.str[:12])


def _siblings(codes: Iterable[str], keys: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Per code, the other codes with the same key, sorted."""
    by_key: dict[str, set[str]] = defaultdict(set)
    pairs = list(zip(codes, keys))
    for code, key in pairs:
        by_key[key].add(code)
    return {code: tuple(sorted(by_key[key] - {code})) for code, key in pairs}


def _interval(r: Mapping[str, Any]) -> int | None:
    """The days that must lie between two uses: 间隔时间不短于N天, or the period of a once-per-period item."""
    if not pd.isna(r["min_interval_days"]):
        return int(r["min_interval_days"])
    if r["rule_kind"] == "period_frequency" and not pd.isna(r["max_count"]) and int(r["max_count"]) == 1:
        return int(r["period_days"])
    return None


def _one_line_claim(ctx: SuiteContext, code: str, lims: list[CodeLimits], verdict: str, boundary: str, *,
                    gend: str | None = None, brdy: date | None = None, settlement: tuple[str, str] | None = None,
                    institution: str | None = None) -> ClaimPlan | str:
    """One visit on DAY0 with one line of *code*, the claim's dimensions given or chosen to respect *lims*
    (an inpatient settlement makes the visit a two-day stay)."""
    setting = settlement or _settlement_for(lims)
    if isinstance(setting, str):
        return setting
    if not all(lim.allows_settlement(*setting) for lim in lims):
        return f"settlement {setting} breaks another restriction of {code}"
    gend = gend or _sex_for(lims)
    if gend is None:
        return f"{code}: limited to different sexes"
    if brdy is None:
        brdy = _birth_date(lims, DAY0, DAY0)
        if isinstance(brdy, str):
            return brdy
    institution = institution or _institution_for(lims)
    line = LinePlan(code, _at(DAY0, 9), PLAIN_PRICE, target=verdict == "violating")
    if setting[0] in INPATIENT_MED_TYPES:
        visit = VisitPlan(*setting, institution, _at(DAY0, 8), _at(DAY0 + timedelta(days=2), 10), (line,))
    else:
        visit = _day_visit(setting, institution, DAY0, [line])
    return ClaimPlan(verdict, boundary, gend, brdy, (visit,))


def _settlement_for(lims: Sequence[CodeLimits], *, inpatient: bool | None = None) -> tuple[str, str] | str:
    """The first (med_type, insutype) every code allows; ``inpatient`` True/False asks for a stay or not."""
    for med_type, insutype in _SETTLEMENTS:
        if inpatient is not None and (med_type in INPATIENT_MED_TYPES) != inpatient:
            continue
        if all(lim.allows_settlement(med_type, insutype) for lim in lims):
            return med_type, insutype
    return "no settlement allowed by every code" + (" as a stay" if inpatient else "")


def _sex_for(lims: Sequence[CodeLimits]) -> str | None:
    """The sex every code allows (men when none is limited); None when two codes want different sexes."""
    wanted = {lim.gend for lim in lims if lim.gend}
    if len(wanted) > 1:
        return None
    return next(iter(wanted), "1")


def _institution_for(lims: Sequence[CodeLimits]) -> str:
    """The highest-level institution every code allows (the 三级 hospital: every level restriction allows it)."""
    return next(_BY_LEVEL[level] for level in sorted(_BY_LEVEL, reverse=True)
                if all(lim.allows_level(level) for lim in lims))


def _birth_date(lims: Sequence[CodeLimits], first: date, last: date) -> date | str:
    """A birth date that every code's age band allows from *first* to *last* (40 years old when none)."""
    low = max((lim.age_min for lim in lims if lim.age_min is not None), default=None)
    high = min((lim.age_max for lim in lims if lim.age_max is not None), default=None)
    if high is not None and high < 1:
        brdy = first - timedelta(days=1)
    else:
        years = 40 if high is None else max(int(high) // 2, 1) if low is None else int((low + high) // 2)
        if low is not None and high is None:
            years = max(years, int(low) + 1)
        brdy = _years_before(first, years)
    if all(lim.allows_age(brdy, first) and lim.allows_age(brdy, last) for lim in lims):
        return brdy
    return f"no age fits the age limits from {first} to {last}"


def _use_days(last: int, *, smallest: int, widest: int) -> list[int] | None:
    """Course days 1..last of the uses: as few as gaps of at most *widest* days allow, spread evenly; None
    when the gaps would fall below *smallest*."""
    span = last - 1
    if span == 0:
        return [1]
    k = math.ceil(span / widest)
    if span // k < smallest:
        return None
    gaps = [span // k + (1 if i < span % k else 0) for i in range(k)]
    days = [1]
    for g in gaps:
        days.append(days[-1] + g)
    return days


def _main_operation(code: str, group: str, ctx: SuiteContext) -> str | None:
    """Another operation of *group* to bill first: only in this group among *code*'s groups (so the hit
    names this point), no batch-7 pair with *code*, and no restriction at odds with *code*'s."""
    mine = ctx.surgery_groups[code]
    lim = ctx.limit(code)
    for other in ctx.group_members[group]:
        if other == code or ctx.surgery_groups[other] & mine != {group}:
            continue
        if (other, code) in ctx.duplicate_pairs or (code, other) in ctx.duplicate_pairs:
            continue
        lims = [lim, ctx.limit(other)]
        if _sex_for(lims) is None or isinstance(_settlement_for(lims, inpatient=True), str):
            continue
        if isinstance(_birth_date(lims, DAY0, DAY0 + timedelta(days=3)), str):
            continue
        return other
    return None


def _day_visit(setting: tuple[str, str], institution: str, day: date, lines: Sequence[LinePlan], *,
               begin: datetime | None = None, end: datetime | None = None) -> VisitPlan:
    """A visit within one day: from 08:00 (or *begin*) to half an hour after its last line (or *end*)."""
    begin = begin or _at(day, 8)
    end = end or max([begin, *(ln.time for ln in lines)]) + timedelta(minutes=30)
    return VisitPlan(setting[0], setting[1], institution, begin, end, tuple(lines))


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime.combine(day, clock(hour, minute, second))


def _years_before(day: date, years: int) -> date:
    """The date *years* full years before *day* (29 February → 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _full_years(brdy: date, on: date) -> int:
    return on.year - brdy.year - ((on.month, on.day) < (brdy.month, brdy.day))


def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _gaps(days: Sequence[int]) -> str:
    gaps = sorted({b - a for a, b in zip(days, days[1:])})
    return "-".join(map(str, (gaps[0], gaps[-1]) if len(gaps) > 1 else gaps)) + " days" if gaps else "none"


def _setl_id(claim_id: str, i: int) -> str:
    return f"{claim_id}.S{i}"


def _row_of(point_id: str) -> int:
    """The spreadsheet row in a point id (``b1-drug-age-000002`` → 2)."""
    return int(point_id.rsplit("-", 1)[1])


def _mdtrt_id(claim_id: str, i: int) -> str:
    return f"{claim_id}.M{i}"


def _line_id(claim_id: str, i: int, j: int) -> str:
    return f"{claim_id}.L{i}.{j}"


def _doctor(institution: str) -> str:
    return f"{institution}-D1"


def _reasons(rows: Sequence[tuple[str, str]]) -> str:
    return "; ".join(sorted({why for _, why in rows}))


def _short_lines(lines: Sequence[str]) -> str:
    shown = [ln.rsplit(".", 2)[-2] + "." + ln.rsplit(".", 1)[-1] for ln in lines]
    return "[" + ", ".join(shown) + "]"


def _signature(rows: pd.DataFrame) -> pd.Series:
    return rows[_SIGNATURE].astype(str).agg("|".join, axis=1)


def _batch_order(batches: Iterable[str]) -> list[str]:
    """Batches in publication order: 1, 2, … 8-1, 8-2 …"""
    return sorted(set(batches), key=lambda b: tuple(int(x) for x in b.split("-")))


def _lap(t0: float) -> float:
    return round(time.perf_counter() - t0, 2)


_ARROW_TYPES = {"id": pa.string(), "code": pa.string(), "text": pa.string(), "flag": pa.string(),
                "month": pa.string(), "amount": pa.float64(), "number": pa.float64(), "int": pa.int32(),
                "datetime": pa.timestamp("s"), "date": pa.date32()}


def _arrow(table: str, rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """Rows as an Arrow table of the contract's fields present in them, typed as extracts carry them."""
    spec = TABLES[table]
    present = [f for f in spec.fields if any(f.name in r for r in rows[:1])]
    columns = {}
    for f in present:
        values = [r.get(f.name) for r in rows]
        if f.kind in ("amount", "number"):
            values = [None if v is None else float(v) for v in values]
        columns[f.name] = pa.array(values, type=_ARROW_TYPES[f.kind])
    return pa.table(columns)

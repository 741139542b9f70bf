"""The feature catalogue (特征目录): every column of every feature table, its type and its meaning.

The runner casts each column to the type named here (``key`` → VARCHAR, ``timestamp``, ``bigint``,
``double``) and fills the ones that are not nullable with 0, so both engines give the same table; a
column the SQL returns that the catalogue does not know is an error. ``docs/features.md`` is generated
from this module (``python -m features.catalogue > docs/features.md``).

Nullable columns (type ending in ``?``) are NULL when the feature does not apply (no previous stay, no
stock records, no chronic refills, ...), which a tree model can tell from a real 0.

>>> [c.name for c in TABLES["feat_pharmacy"].columns[:3]]
['fixmedins_code', 'as_of', 'n_setl_30']
>>> TABLES["feat_psn"].column("is_dead").dtype
'bigint'
"""

from __future__ import annotations

from dataclasses import dataclass

from features.contract import FRAUD_TYPES

__all__ = ["FeatureColumn", "FeatureTable", "SnapshotTable", "TABLES", "SNAPSHOTS", "PEER_STATS", "rule_hit_columns",
           "markdown"]


@dataclass(frozen=True)
class FeatureColumn:
    name: str
    dtype: str  # key | timestamp | bigint | double
    nullable: bool
    zh: str
    en: str
    source: str = "sql"  # sql | as_of | rule_hits | graph


@dataclass(frozen=True)
class FeatureTable:
    name: str
    sql: str  # file in features/sql
    key: str  # the entity key column
    rule_hit_key: str  # rule_hits column that names the entity
    graph_node_types: tuple[str, ...]  # graph_node_features.node_type values joined here
    zh: str
    en: str
    columns: tuple[FeatureColumn, ...]

    @property
    def sql_columns(self) -> tuple[FeatureColumn, ...]:
        return tuple(c for c in self.columns if c.source == "sql")

    def column(self, name: str) -> FeatureColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True)
class SnapshotTable:
    """A table the batch build writes beside the feature tables for the online features to read (one row
    per group, not per entity): ``sql`` reads the feature table ``source`` once it is written."""

    name: str
    sql: str  # file in features/sql
    source: str  # the feature table it summarises
    zh: str
    en: str
    columns: tuple[FeatureColumn, ...]


def rule_hit_columns() -> tuple[FeatureColumn, ...]:
    """rh_* columns: totals, then hits and amount at risk per typology id."""
    out = [
        FeatureColumn("rh_n_hits", "bigint", False, "规则命中次数", "rule hits", "rule_hits"),
        FeatureColumn("rh_amt_hits", "double", False, "规则命中涉及金额(元)", "amount at risk of the hits (yuan)",
                      "rule_hits"),
        FeatureColumn("rh_n_rules", "bigint", False, "命中的不同规则数", "distinct rules hit", "rule_hits"),
        FeatureColumn("rh_n_typologies", "bigint", False, "命中的不同违规类型数", "distinct typologies hit",
                      "rule_hits"),
    ]
    for tid, (zh, _) in FRAUD_TYPES.items():
        out.append(FeatureColumn(f"rh_n_{tid}", "bigint", False, f"规则命中次数: {zh}", f"rule hits of {tid}",
                                 "rule_hits"))
        out.append(FeatureColumn(f"rh_amt_{tid}", "double", False, f"规则命中金额: {zh}",
                                 f"amount at risk of {tid} hits (yuan)", "rule_hits"))
    return tuple(out)


def _parse(text: str) -> list[FeatureColumn]:
    cols = []
    for line in text.strip().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, dtype, zh, en = (p.strip() for p in line.split("|"))
        if name.endswith("*"):  # a window family: name_30, name_90, name_365
            for days in (30, 90, 365):
                cols.append(FeatureColumn(f"{name[:-1]}_{days}", dtype.rstrip("?"), dtype.endswith("?"),
                                          f"{zh}(近{days}天)", f"{en}, last {days} days"))
            continue
        cols.append(FeatureColumn(name, dtype.rstrip("?"), dtype.endswith("?"), zh, en))
    return cols


def _peer(measures: str) -> list[FeatureColumn]:
    out = [FeatureColumn("peer_group_size", "bigint", False, "同组机构/医师数", "members of the peer group")]
    for m in measures.split():
        out.append(FeatureColumn(f"z_{m}", "double", False, f"{m} 同组 z 分数", f"z-score of {m} in the peer group"))
        out.append(FeatureColumn(f"pct_{m}", "double", False, f"{m} 同组百分位",
                                 f"percent rank (0-1) of {m} in the peer group"))
    return out


def _table(name, sql, key, rh_key, node_types, zh, en, keys, body, peer=None) -> FeatureTable:
    cols = _parse(keys)
    cols.append(FeatureColumn("as_of", "timestamp", False, "特征截止时间", "features computed as of this moment",
                              "as_of"))
    cols += _parse(body)
    if peer:
        cols += _peer(peer)
    cols += rule_hit_columns()
    return FeatureTable(name, sql, key, rh_key, node_types, zh, en, tuple(cols))


_VOLUME = """
n_setl* | bigint | 结算次数 | settlements
amt* | double | 医疗费总额(元) | medical fees (yuan)
fund_amt_365 | double | 基金支付额(近365天,元) | fund paid, last 365 days (yuan)
"""

FEAT_SETL = _table(
    "feat_setl", "feat_setl.sql", "setl_id", "setl_id", (), "结算/就诊级特征", "settlement (visit) level",
    """
    setl_id | key | 结算ID | settlement id
    mdtrt_id | key | 就诊ID | visit id
    psn_no | key | 人员编号 | person
    fixmedins_code | key | 定点医药机构编号 | institution or pharmacy
    prac_code | key | 主诊医师代码 | chief doctor of the visit (mdtrt_d.chfpdr_code)
    setl_time | timestamp | 结算时间 | settlement time
    """,
    """
    medfee_amt | double | 医疗费总额(元) | medical fees of the settlement (yuan)
    fund_amt | double | 基金支付总额(元) | paid by the fund (yuan)
    psn_pay_amt | double | 个人负担(元) | paid by the person (yuan)
    acct_pay_amt | double | 个人账户支出(元) | paid from the personal account (yuan)
    fund_share | double | 基金支付占比 | fund share of the fees
    is_inpatient | bigint | 住院(医疗类别2x) | inpatient or day surgery (med_type 2x)
    is_pharmacy | bigint | 药店购药 | pharmacy purchase (med_type 41)
    is_chronic | bigint | 门诊慢特病 | chronic/special outpatient care (med_type 14xxxx)
    is_emergency | bigint | 急诊 | emergency (13, 120)
    hosp_level | bigint | 机构级别(3/2/1/0) | institution grade: 3 三级, 2 二级, 1 一级, 0 none
    age_years | double? | 结算时年龄(岁) | age at settlement (years), from the middle of the birth year (2 July): the warehouse keeps the birth year only, so off by up to half a year
    age_days | bigint | 距截止日天数 | days between settlement and as_of
    ipt_days | double? | 住院天数 | inpatient days (mdtrt_d.ipt_days)
    stay_days | double? | 就诊天数(出院-入院) | calendar days from begin to end of the visit
    n_lines | bigint | 明细条数 | fee lines
    n_items | bigint | 不同项目数 | distinct catalogue items
    n_exam | double | 检查数量 | exam quantity (检查费, CT, MRI, 彩超, 放射)
    n_lab | double | 化验数量 | lab-test quantity (化验费)
    n_treatment | double | 治疗数量 | treatment quantity (治疗费)
    lines_per_day | double | 每日明细条数 | fee lines per day of stay
    care_day_share | double | 有诊疗的天数占比 | share of stay days with care other than bed and nursing (挂床)
    exam_share | double | 检查费占比 | exam share of the amount
    lab_share | double | 化验费占比 | lab share of the amount
    drug_share | double | 药品费占比 | drug share of the amount
    consumable_share | double | 耗材费占比 | consumable share of the amount
    bed_share | double | 床位费占比 | bed share of the amount
    treatment_share | double | 治疗费占比 | treatment share of the amount
    class_a_share | double | 甲类占比 | class A (甲类) share of the amount
    class_b_share | double | 乙类占比 | class B (乙类) share of the amount
    class_c_share | double | 丙类占比 | class C (丙类) share of the amount
    vbp_nonselected_share | double | 集采非中选占比 | non-selected share of the amount of 集采-group products
    n_over_cap | bigint | 超限价明细数 | lines priced above the catalogue cap
    over_cap_amt | double | 超限价金额(元) | amount above the cap (yuan)
    n_dialysis | double | 透析次数 | dialysis sessions
    n_rehab | double | 康复科项目数量 | rehabilitation-department quantity (A21)
    n_psychiatry | double | 精神科项目数量 | psychiatry-department quantity (A15)
    drug_supply_days | double | 药品供应天数 | days of supply of the drugs (sum of prd_days)
    setl_hour | bigint | 结算小时 | hour of settlement (0-23)
    weekday | bigint | 星期(0=周一) | weekday, 0 = Monday
    is_weekend | bigint | 周末 | on a Saturday or Sunday
    is_off_hours | bigint | 非工作时间(19点-7点) | between 19:00 and 07:00
    is_round | bigint | 整数金额 | amount a multiple of 10 yuan and at least 50
    admdvs_distance | bigint | 参保地-就医地距离(0-3) | insured region vs care region: 0 district, 1 city, 2 province, 3 other province
    is_out_of_region | bigint | 异地就医 | care outside the insured person's province-level region (distance >= 2)
    is_injury | bigint | 外伤诊断(S/T) | main diagnosis an injury (ICD-10 S/T)
    is_after_death | bigint | 死亡后结算 | settled after the person's death date
    n_same_inst_10min | bigint | 同机构10分钟内结算数 | settlements at the same institution within 10 minutes either side
    n_psn_setl_same_day | bigint | 本人当日结算数 | the person's settlements that day
    days_since_prev_discharge | double? | 距上次出院天数 | days since the previous discharge at the same institution (inpatients)
    is_readmit_15d | bigint | 15天内再入院 | readmitted within 15 days at the same institution (分解住院)
    n_other_setl_during_stay | bigint | 住院期间其他结算数 | the person's other settlements during this stay
    n_elsewhere_during_stay | bigint | 住院期间他处结算数 | ... of them at another institution or pharmacy
    amt_other_setl_during_stay | double | 住院期间其他结算金额 | amount of those settlements (yuan)
    is_during_other_stay | bigint | 他处住院期间发生 | made while the person was admitted elsewhere (盗刷/挂床)
    z_amt_peer | double | 金额同组z分数 | z-score of the amount among settlements of the same med_type and institution type and grade
    pct_amt_peer | double | 金额同组百分位 | percent rank of the amount in that group
    """,
)

FEAT_PSN = _table(
    "feat_psn", "feat_psn.sql", "psn_no", "psn_no", ("psn", "person"), "参保人级特征", "insured person level",
    "psn_no | key | 人员编号 | person",
    """
    age_years | double? | 年龄(岁) | age at as_of (years), from 2 July of the birth year (as `feat_setl`)
    is_female | bigint | 女性 | female
    is_dead | bigint | 已死亡 | died on or before as_of (die_date)
    is_insured_elsewhere | bigint | 异地参保 | insured in another city than the pooling region
    """ + _VOLUME + """
    n_inpatient_365 | bigint | 住院次数(近365天) | inpatient settlements, last 365 days
    n_pharmacy_365 | bigint | 药店购药次数(近365天) | pharmacy purchases, last 365 days
    n_chronic_365 | bigint | 慢特病结算次数(近365天) | chronic-care settlements, last 365 days
    ipt_days_365 | double | 住院天数(近365天) | inpatient days, last 365 days
    n_distinct_fixmedins_365 | bigint | 就诊机构数 | distinct hospitals/clinics, last 365 days
    n_distinct_pharmacies_365 | bigint | 购药药店数 | distinct pharmacies, last 365 days
    n_distinct_doctors_365 | bigint | 就诊医师数 | distinct chief doctors, last 365 days
    n_active_days_365 | bigint | 就医天数 | days with a settlement, last 365 days
    exam_share | double | 检查费占比 | exam share of the amount (365 days)
    drug_share | double | 药品费占比 | drug share (365 days)
    consumable_share | double | 耗材费占比 | consumable share (365 days)
    class_c_share | double | 丙类占比 | class C share (365 days)
    vbp_nonselected_share | double | 集采非中选占比 | non-selected share within 集采 groups (365 days)
    off_hours_share | double | 非工作时间占比 | share of settlements 19:00-07:00
    weekend_share | double | 周末占比 | share on weekends
    round_share | double | 整数金额占比 | share with round amounts
    avg_admdvs_distance | double | 平均就医距离(0-3) | mean insured-vs-care region distance
    max_admdvs_distance | bigint | 最大就医距离(0-3) | largest insured-vs-care region distance
    n_out_of_region_setl_365 | bigint | 异地就医次数 | settlements out of the province-level region
    n_injury_365 | bigint | 外伤就诊次数 | settlements with an injury diagnosis
    max_setl_amt_365 | double | 单次最高金额(元) | largest settlement (yuan)
    n_refund_365 | bigint | 退费次数 | refunds (reversal settlements), last 365 days
    n_setl_after_death | bigint | 死亡后结算次数 | settlements after the death date (all time)
    amt_after_death | double | 死亡后结算金额(元) | amount settled after death (yuan)
    n_setl_during_own_stay | bigint | 住院期间他处结算次数 | settlements elsewhere while admitted
    amt_setl_during_own_stay | double | 住院期间他处结算金额(元) | amount of those (yuan)
    n_pharmacy_during_own_stay | bigint | 住院期间药店购药次数 | pharmacy purchases while admitted
    max_supply_ratio | double? | 最大供药比(供药天数/覆盖天数) | largest days-supplied / days-covered over drugs (超量开药)
    excess_supply_days | double | 超量供药天数 | days supplied beyond the calendar days covered, summed over drugs
    n_drugs_oversupplied | bigint | 超量药品数(比>1.5) | drugs with a supply ratio above 1.5
    max_sources_same_drug | bigint | 同药来源机构数 | most institutions/pharmacies the same drug came from
    supply_days_365 | double | 供药天数 | days of supply received (365 days)
    n_refill_gaps | bigint | 慢病取药间隔数 | gaps between chronic-care days (365 days)
    refill_gap_mean | double? | 慢病取药平均间隔(天) | mean gap between chronic refills (days)
    refill_gap_std | double? | 慢病取药间隔标准差 | standard deviation of refill gaps (regularity)
    refill_gap_cv | double? | 慢病取药间隔变异系数 | coefficient of variation of refill gaps
    """,
)

FEAT_PRAC = _table(
    "feat_prac", "feat_prac.sql", "prac_code", "prac_code", ("prac", "doctor"), "医师级特征", "doctor level",
    """
    prac_code | key | 医师代码 | doctor
    fixmedins_code | key | 执业机构 | institution of practice
    peer_group | key | 同组(在岗/专业) | peer group: active in the window, specialty (caty)
    """,
    """
    hosp_level | bigint | 机构级别 | grade of the institution
    is_active_365 | bigint | 近365天有接诊 | had visits in the last 365 days
    n_visits* | bigint | 接诊次数 | visits as chief doctor
    amt* | double | 接诊医疗费(元) | medical fees of those visits (yuan)
    fund_amt_365 | double | 接诊基金支付额(近365天,元) | fund paid for those visits, last 365 days (yuan)
    n_patients_365 | bigint | 患者数 | distinct patients (365 days)
    n_active_days_365 | bigint | 出诊天数 | days with visits (365 days)
    n_inpatient_365 | bigint | 住院病例数 | inpatient visits (365 days)
    amt_per_visit | double | 次均费用(元) | fees per visit (yuan)
    exams_per_visit | double | 次均检查数 | exams per visit
    labs_per_visit | double | 次均化验数 | lab tests per visit
    lines_per_visit | double | 次均明细数 | fee lines per visit
    exam_share | double | 检查费占比 | exam share
    lab_share | double | 化验费占比 | lab share
    drug_share | double | 药品费占比 | drug share
    consumable_share | double | 耗材费占比 | consumable share
    class_c_share | double | 丙类占比 | class C share
    vbp_nonselected_share | double | 集采非中选占比 | non-selected share within 集采 groups
    n_over_cap_365 | bigint | 超限价明细数 | lines above the price cap
    off_hours_share | double | 非工作时间占比 | share 19:00-07:00
    weekend_share | double | 周末占比 | share on weekends
    round_share | double | 整数金额占比 | share with round amounts
    out_of_region_share | double | 异地患者占比 | share of out-of-region patients' visits
    visits_per_active_day | double | 日均接诊 | visits per working day
    max_visits_per_day | bigint | 单日最多接诊 | most visits in one day
    """,
    peer="exams_per_visit labs_per_visit amt_per_visit drug_share off_hours_share round_share visits_per_active_day",
)

FEAT_FIXMEDINS = _table(
    "feat_fixmedins", "feat_fixmedins.sql", "fixmedins_code", "fixmedins_code",
    ("fixmedins", "institution", "hospital", "clinic"), "医疗机构级特征", "hospital and clinic level",
    """
    fixmedins_code | key | 定点医疗机构编号 | hospital or clinic
    peer_group | key | 同组(类型/级别/主科室) | peer group: type, grade, main department (or coarser)
    """,
    """
    is_hospital | bigint | 医院(否则诊所) | a hospital (else a clinic)
    hosp_level | bigint | 机构级别 | grade: 3 三级, 2 二级, 1 一级, 0 none
    beds | bigint | 床位数 | beds
    """ + _VOLUME + """
    n_patients_365 | bigint | 患者数 | distinct patients (365 days)
    n_active_days_365 | bigint | 开诊天数 | days with settlements (365 days)
    n_inpatient_365 | bigint | 住院人次 | inpatient settlements (365 days)
    n_chronic_365 | bigint | 慢特病人次 | chronic-care settlements (365 days)
    amt_per_visit | double | 次均费用(元) | fees per visit (yuan)
    lines_per_visit | double | 次均明细数 | fee lines per visit
    exams_per_visit | double | 次均检查数 | exams per visit
    labs_per_visit | double | 次均化验数 | lab tests per visit
    exam_share | double | 检查费占比 | exam share
    lab_share | double | 化验费占比 | lab share
    drug_share | double | 药品费占比 | drug share
    consumable_share | double | 耗材费占比 | consumable share
    bed_share | double | 床位费占比 | bed share
    treatment_share | double | 治疗费占比 | treatment share
    class_a_share | double | 甲类占比 | class A share
    class_b_share | double | 乙类占比 | class B share
    class_c_share | double | 丙类占比 | class C share
    vbp_nonselected_share | double | 集采非中选金额占比 | non-selected share of the amount of 集采-group products
    vbp_nonselected_qty_share | double | 集采非中选数量占比 | non-selected share of the quantity of 集采-group products
    n_over_cap_365 | bigint | 超限价明细数 | lines above the price cap
    over_cap_amt_365 | double | 超限价金额(元) | amount above the cap (yuan)
    off_hours_share | double | 非工作时间占比 | share 19:00-07:00
    weekend_share | double | 周末占比 | share on weekends
    round_share | double | 整数金额占比 | share with round amounts
    out_of_region_share | double | 异地患者占比 | share of out-of-region patients
    injury_share | double | 外伤占比 | share with an injury diagnosis
    n_dialysis_365 | double | 透析次数 | dialysis sessions
    n_rehab_365 | double | 康复项目数量 | rehabilitation-department quantity
    n_psychiatry_365 | double | 精神科项目数量 | psychiatry-department quantity
    treatments_per_patient | double | 人均治疗数量 | treatment quantity per patient
    max_setl_within_10min | bigint | 10分钟内最多结算数 | most settlements within 10 minutes either side
    max_setl_per_day | bigint | 单日最多结算数 | most settlements in one day
    setl_per_active_day | double | 日均结算数 | settlements per open day
    avg_ipt_days | double | 平均住院日 | mean inpatient days per stay
    ipt_days_365 | double | 住院总天数 | inpatient days (365 days)
    short_stay_share | double? | 短住院(<=2天)占比 | share of stays of 2 days or less (低标准入院)
    readmit_15d_share | double? | 15天再入院占比 | share of stays within 15 days of a discharge (分解住院)
    avg_care_day_share | double? | 住院有诊疗天数占比 | mean share of stay days with care (挂床)
    amt_per_inpatient_day | double? | 住院日均费用(元) | fees per inpatient day (yuan)
    bed_occupancy | double? | 床位使用率 | inpatient days / (beds × 365)
    stays_active_elsewhere_share | double? | 住院期间他处结算占比 | share of stays whose patient settled elsewhere meanwhile
    max_dialysis_per_patient_week | double? | 人周最多透析次数 | most dialysis sessions of a patient in a week
    dialysis_weeks_over_3_share | double? | 每周透析>3次占比 | share of patient-weeks with more than 3 sessions
    n_refund_365 | bigint | 退费次数 | refunds (365 days)
    has_stock_records | bigint | 有进销存记录 | the institution has stock records (stock_moves)
    stock_gap_qty | double? | 进销存缺口数量 | billed drug quantity beyond opening + in-flow, summed over drug-months
    stock_gap_amt | double? | 进销存缺口金额(元) | that quantity at the billed price (yuan)
    n_stock_gap_item_months | bigint? | 缺口药品月数 | drug-months with a gap
    stock_gap_ratio | double? | 进销存缺口比例 | gap quantity / billed drug quantity
    mom_max_growth_key_items | double? | 重点品种最大环比增长 | largest month-over-month quantity growth of a top-10 item (异常变化)
    mom_n_doublings_key_items | bigint? | 重点品种翻倍次数 | item-months whose quantity at least doubled
    mom_last_growth_key_items | double? | 重点品种上月环比 | growth of the top-10 items' quantity, last full month vs the one before
    """,
    peer="exams_per_visit labs_per_visit lines_per_visit amt_per_visit drug_share consumable_share "
         "off_hours_share round_share vbp_nonselected_share avg_ipt_days",
)

FEAT_PHARMACY = _table(
    "feat_pharmacy", "feat_pharmacy.sql", "fixmedins_code", "fixmedins_code", ("pharmacy",),
    "定点药店级特征", "pharmacy level",
    "fixmedins_code | key | 定点药店编号 | pharmacy",
    _VOLUME + """
    n_persons_365 | bigint | 购药人数 | distinct buyers (365 days)
    n_active_days_365 | bigint | 营业天数 | days with sales (365 days)
    setl_per_person | double | 人均购药次数 | purchases per buyer
    amt_per_setl | double | 次均金额(元) | amount per purchase (yuan)
    lines_per_setl | double | 次均明细数 | lines per purchase
    round_share | double | 整数金额占比 | share with round amounts
    evening_share | double | 晚间(19点后)占比 | share after 19:00
    off_hours_share | double | 非营业时间占比 | share 19:00-07:00
    weekend_share | double | 周末占比 | share on weekends
    round_evening_share | double | 晚间整数金额占比 | share both round and in the evening
    burst_share | double | 集中刷卡占比 | share in bursts (at least 5 swipes within 10 minutes either side)
    max_setl_within_10min | bigint | 10分钟内最多刷卡数 | most swipes within 10 minutes either side
    max_setl_per_hour | bigint | 单小时最多刷卡数 | most swipes in one clock hour
    same_basket_share | double | 重复购药篮占比 | share of purchases whose basket (items, count, amount) occurs 3+ times
    top_basket_share | double | 最常见购药篮占比 | share of the most frequent basket
    drug_share | double | 药品费占比 | drug share
    class_c_share | double | 丙类占比 | class C share
    vbp_nonselected_share | double | 集采非中选占比 | non-selected share within 集采 groups
    out_of_region_share | double | 异地参保人占比 | share of out-of-region buyers' purchases
    n_setl_after_death_365 | bigint | 死亡后购药次数 | purchases on a dead person's card
    during_inpatient_stay_share | double | 住院期间购药占比 | share bought while the card holder was admitted elsewhere
    avg_supply_days | double | 次均供药天数 | days of supply per purchase
    max_setl_per_person | bigint | 单人最多购药次数 | most purchases by one buyer
    max_amt_per_person | double | 单人最高购药金额(元) | most spent by one buyer (yuan)
    n_refund_365 | bigint | 退费次数 | refunds (365 days)
    has_stock_records | bigint | 有进销存记录 | the pharmacy has stock records
    stock_gap_qty | double? | 进销存缺口数量 | billed drug quantity beyond opening + in-flow, summed over drug-months
    stock_gap_amt | double? | 进销存缺口金额(元) | that quantity at the billed price (yuan)
    n_stock_gap_item_months | bigint? | 缺口药品月数 | drug-months with a gap
    stock_gap_ratio | double | 进销存缺口比例 | gap quantity / billed drug quantity (0 without stock records)
    mom_max_growth_key_items | double? | 重点品种最大环比增长 | largest month-over-month growth of a top-10 drug (异常变化)
    mom_n_doublings_key_items | bigint? | 重点品种翻倍次数 | drug-months whose quantity at least doubled
    mom_last_growth_key_items | double? | 重点品种上月环比 | growth of the top-10 drugs, last full month vs the one before
    """,
    peer="amt_per_setl round_share evening_share burst_share same_basket_share stock_gap_ratio",
)

TABLES: dict[str, FeatureTable] = {t.name: t for t in (FEAT_SETL, FEAT_PSN, FEAT_PRAC, FEAT_FIXMEDINS, FEAT_PHARMACY)}

PEER_STATS = SnapshotTable(
    "feat_setl_peer_stats", "feat_setl_peer_stats.sql", "feat_setl", "结算同组统计快照",
    "peer groups of feat_setl as the build counted them (what the pre-check compares a new visit with)",
    tuple(_parse("""
    med_type | key? | 医疗类别 | medical type of the group
    fixmedins_type | key? | 机构类型 | institution type of the group
    hosp_level | bigint? | 机构级别(3/2/1/0) | institution grade; NULL: not in the register
    n | bigint | 组内结算数 | settlements in the group
    mean_amt | double | 金额均值 | mean amount (yuan)
    m2_amt | double | 金额离差平方和 | sum of squared deviations of the amount
    median_amt | double | 金额中位数 | median amount (yuan)
    median_fund_share | double? | 基金支付占比中位数 | median fund share
    median_psn_pay_share | double? | 个人负担占比中位数 | median share paid by the person
    median_acct_pay_share | double? | 个人账户占比中位数 | median personal-account share
    amt_values | double[] | 不同金额(升序, 6位小数) | distinct amounts, ascending (6 decimals)
    amt_counts | bigint[] | 各金额结算数 | settlements per distinct amount
    as_of | timestamp | 特征截止时间 | the build's cut-off
    """)),
)
SNAPSHOTS: dict[str, SnapshotTable] = {PEER_STATS.name: PEER_STATS}


def markdown() -> str:
    """The column tables of docs/features.md (one section per feature table)."""
    out = []
    for t in TABLES.values():
        out.append(f"### `{t.name}` — {t.zh} ({t.en})\n")
        out.append(f"One row per `{t.key}`. SQL: `features/sql/{t.sql}`.\n")
        out.append("| column | type | 含义 | meaning |")
        out.append("|---|---|---|---|")
        rh_done = False
        for c in t.columns:
            if c.source == "rule_hits" and c.name.startswith(("rh_n_", "rh_amt_")) and c.name not in (
                    "rh_n_hits", "rh_amt_hits", "rh_n_rules", "rh_n_typologies"):
                if not rh_done:
                    out.append("| `rh_n_<typology>`, `rh_amt_<typology>` | bigint, double | 各违规类型的规则命中次数/金额 "
                               "| hits and amount at risk per typology id (24 ids of architecture.md) |")
                    rh_done = True
                continue
            dtype = c.dtype + (" (nullable)" if c.nullable else "")
            out.append(f"| `{c.name}` | {dtype} | {c.zh} | {c.en} |")
        if t.graph_node_types:
            out.append(f"| `g_*` | double | 图特征 | columns of `graph_node_features` for node_type in "
                       f"{', '.join(t.graph_node_types)} (when that table exists) |")
        out.append("")
    for t in SNAPSHOTS.values():
        out.append(f"### `{t.name}` — {t.zh}\n")
        out.append(f"Written with `{t.source}`: {t.en}. SQL: `features/sql/{t.sql}`.\n")
        out.append("| column | type | 含义 | meaning |")
        out.append("|---|---|---|---|")
        out += [f"| `{c.name}` | {c.dtype}{' (nullable)' if c.nullable else ''} | {c.zh} | {c.en} |" for c in t.columns]
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":  # pragma: no cover
    print(markdown())

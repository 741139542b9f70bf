"""A hand-built mini warehouse for the rule tests: every rule gets a hit, a near miss and a refund.

``MiniRegion`` collects persons, institutions, catalogue entries and visits (settlement + visit row +
fee lines + diagnoses) as plain dicts in contract field names and writes them into a DuckDB warehouse
with the contract tables (``features.warehouse.ensure_schema``). ``case_region()`` builds the cases:
each case has its own person, so cases cannot interfere; settlement ids name the case
(``GENDER-HIT``, ``GENDER-NEAR``, ``GENDER-REFUND`` ...). Restricted codes are real 两库 codes, taken from
the pack by kind, each used only by codes with that one restriction so that a case tests one rule.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from features.contract import TABLES
from features.warehouse import ensure_schema, write_rows
from models.rules import load_pack

__all__ = ["MiniRegion", "case_region", "lookalike_cases", "CODES", "visit_dict"]


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


class MiniRegion:
    """Rows of a consistent mini region; :meth:`write` puts them into a warehouse."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {t: [] for t in TABLES}

    def person(self, psn_no: str, *, gend: str = "1", brdy: str = "1980-06-01", die_date: str | None = None,
               insutype: str = "310", admdvs: str = "220102") -> str:
        self.rows["psn_info"].append({"psn_no": psn_no, "gend": gend, "brdy": date.fromisoformat(brdy),
                                      "die_date": date.fromisoformat(die_date) if die_date else None,
                                      "insutype": insutype, "insu_admdvs": admdvs, "psn_type": "1101"})
        return psn_no

    def institution(self, code: str, *, kind: str = "hospital", hosp_lv: str | None = "02",
                    admdvs: str = "220102") -> str:
        self.rows["fixmedins"].append({"fixmedins_code": code, "fixmedins_name": f"机构{code}",
                                       "fixmedins_type": kind, "admdvs": admdvs,
                                       "hosp_lv": hosp_lv if kind != "pharmacy" else None})
        return code

    def item(self, code: str, name: str, *, list_type: str = "201", chrgitm_type: str = "05",
             cap: float | None = None, generic: str | None = None, vbp_group: str | None = None,
             vbp_flag: str | None = None) -> str:
        if not any(r["hilist_code"] == code for r in self.rows["hilist"]):
            self.rows["hilist"].append({"hilist_code": code, "hilist_name": name, "list_type": list_type,
                                        "chrgitm_lv": "01", "pric_uplmt_amt": cap, "generic_name": generic or name,
                                        "vbp_flag": vbp_flag, "vbp_group": vbp_group,
                                        "med_chrgitm_type": chrgitm_type})
        return code

    def visit(self, setl_id: str, psn_no: str, inst: str, *, begin: str, end: str | None = None,
              med_type: str = "11", diags: tuple[str, ...] = ("J06.900",), lines: list[dict] = (),
              setl_time: str | None = None) -> str:
        """One settled visit. A line is ``{"code", "pric", "cnt"=1, "time"=begin, "prd_days"=None}``."""
        end = end or begin
        mdtrt_id = "M-" + setl_id
        person = next(p for p in self.rows["psn_info"] if p["psn_no"] == psn_no)
        level = next(f["hosp_lv"] for f in self.rows["fixmedins"] if f["fixmedins_code"] == inst)
        total = 0.0
        for i, ln in enumerate(lines):
            item = next(h for h in self.rows["hilist"] if h["hilist_code"] == ln["code"])
            cnt = float(ln.get("cnt", 1))
            amount = round(cnt * ln["pric"], 2)
            total += amount
            self.rows["fee_list_d"].append({
                "bkkp_sn": f"{setl_id}-L{i:02d}", "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no,
                "fixmedins_code": inst, "fee_ocur_time": _ts(ln.get("time", begin)), "hilist_code": ln["code"],
                "hilist_name": item["hilist_name"], "list_type": item["list_type"],
                "med_chrgitm_type": item["med_chrgitm_type"], "cnt": cnt, "pric": ln["pric"],
                "det_item_fee_sumamt": amount, "chrgitm_lv": "01", "inscp_amt": amount,
                "pric_uplmt_amt": item["pric_uplmt_amt"], "bilg_dr_code": "D001", "bilg_dept_codg": "A03",
                "prd_days": ln.get("prd_days"), "hi_nego_drug_flag": "0", "med_list_codg": ln["code"]})
        total = round(total, 2)
        fund = round(total * 0.7, 2)
        self.rows["mdtrt_d"].append({
            "mdtrt_id": mdtrt_id, "psn_no": psn_no, "fixmedins_code": inst, "med_type": med_type,
            "begntime": _ts(begin), "endtime": _ts(end), "dscg_maindiag_code": diags[0] if diags else None,
            "adm_dept_codg": "A03", "chfpdr_code": "D001",
            "ipt_days": (_ts(end).date() - _ts(begin).date()).days if med_type == "21" else 0, "dscg_way": "1",
            "insu_admdvs": person["insu_admdvs"], "pay_loc": "1"})
        self.rows["setl_d"].append({
            "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no, "fixmedins_code": inst, "med_type": med_type,
            "insutype": person["insutype"], "setl_time": _ts(setl_time or end) + timedelta(minutes=30),
            "medfee_sumamt": total, "fund_pay_sumamt": fund, "hifp_pay": fund, "psn_pay": round(total - fund, 2),
            "acct_pay": 0.0, "insu_admdvs": person["insu_admdvs"], "refd_setl_flag": "0",
            "begndate": _ts(begin).date(), "enddate": _ts(end).date(), "hosp_lv": level, "gend": person["gend"],
            "brdy": person["brdy"], "init_setl_id": None})
        for k, code in enumerate(diags):
            self.rows["setl_list_diag_d"].append({"setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no,
                                                  "maindiag_flag": "1" if k == 0 else "0", "diag_code": code,
                                                  "diag_type": "1", "diag_name": code})
        return setl_id

    def refund(self, setl_id: str) -> str:
        """A reversal settlement (refd_setl_flag '1', negative amounts and lines) cancelling *setl_id*."""
        orig = next(s for s in self.rows["setl_d"] if s["setl_id"] == setl_id)
        rid = "RF-" + setl_id
        neg = {k: -orig[k] for k in ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay")}
        self.rows["setl_d"].append(orig | neg | {"setl_id": rid, "refd_setl_flag": "1", "init_setl_id": setl_id,
                                                 "setl_time": orig["setl_time"] + timedelta(hours=2)})
        for ln in [x for x in self.rows["fee_list_d"] if x["setl_id"] == setl_id]:
            self.rows["fee_list_d"].append(ln | {"bkkp_sn": "RF-" + ln["bkkp_sn"], "setl_id": rid, "cnt": -ln["cnt"],
                                                 "det_item_fee_sumamt": -ln["det_item_fee_sumamt"],
                                                 "inscp_amt": -ln["inscp_amt"]})
        return rid

    def write(self, path: Path) -> Path:
        path = Path(path)
        with duckdb.connect(str(path)) as con:
            ensure_schema(con)
            for table, rows in self.rows.items():
                if rows:
                    frame = pd.DataFrame(rows)
                    con.register("_rows", frame)
                    write_rows(con, table, "_rows")  # psn_info.brdy to the identity vault beside it
                    con.unregister("_rows")
        return path

    def visit_dict(self, setl_id: str) -> dict:
        """The visit as ``precheck`` takes it (contract field names)."""
        s = next(x for x in self.rows["setl_d"] if x["setl_id"] == setl_id)
        return {"setl": dict(s), "mdtrt": dict(next(m for m in self.rows["mdtrt_d"] if m["mdtrt_id"] == s["mdtrt_id"])),
                "lines": [dict(x) for x in self.rows["fee_list_d"] if x["setl_id"] == setl_id],
                "diagnoses": [dict(x) for x in self.rows["setl_list_diag_d"] if x["setl_id"] == setl_id]}


def visit_dict(region: MiniRegion, setl_id: str) -> dict:
    return region.visit_dict(setl_id)


def _single_kind_codes(pack: pd.DataFrame) -> pd.DataFrame:
    kinds = pack.groupby("hilist_code")["rule_kind"].nunique()
    related = set(pack["related_code"].dropna())
    return pack[pack["hilist_code"].isin(kinds[kinds == 1].index) & ~pack["hilist_code"].isin(related)]


def _codes() -> dict[str, str]:
    pack = load_pack()
    one = _single_kind_codes(pack)

    def first(mask) -> str:
        return one[mask].sort_values("point_id")["hilist_code"].iloc[0]

    dup = pack[(pack.rule_kind == "duplicate_charge") & (pack.window == "day")]
    multi = set(pack.groupby("hilist_code")["rule_kind"].nunique().loc[lambda s: s > 1].index)
    one_window = pack[pack.rule_kind == "duplicate_charge"].groupby(["hilist_code", "related_code"])["window"] \
        .nunique().loc[lambda s: s == 1].reset_index()[["hilist_code", "related_code"]]
    dup = dup.merge(one_window, on=["hilist_code", "related_code"])
    dup = dup[~dup.hilist_code.isin(multi) & ~dup.related_code.isin(multi)
              & ~dup.related_code.isin(pack[pack.rule_kind != "duplicate_charge"].hilist_code)]
    dup = dup.sort_values("point_id").iloc[0]
    surgery = pack[pack.rule_kind == "primary_secondary_surgery"]
    surgery = surgery[~surgery.hilist_code.isin(multi) & ~surgery.hilist_code.isin(set(pack.related_code.dropna()))]
    group = surgery.groupby("surgery_group")["hilist_code"].unique()
    group = group[group.map(len) >= 2].sort_index()
    ops = sorted(group.iloc[0])[:2]
    return {
        "female_drug": first((one.rule_kind == "gender") & (one.gend == "2") & (one.code_kind == "drug")),
        "child_drug": first((one.rule_kind == "age") & (one.age_max == 18) & (one.code_kind == "drug")),
        "work_injury_drug": first((one.rule_kind == "insurance_type") & (one.insurance_only == "工伤")),
        # every 生育-only drug is also limited to women (batch 1); the near-miss case is a woman
        "maternity_drug": pack[(pack.rule_kind == "insurance_type") & (pack.insurance_only == "生育")
                               & ~pack.hilist_code.isin(pack[~pack.rule_kind.isin(["insurance_type", "gender"])]
                                                        .hilist_code)].sort_values("point_id").hilist_code.iloc[0],
        "inpatient_drug": first((one.rule_kind == "care_setting") & (one.care_setting == "inpatient")),
        "level2_drug": first((one.rule_kind == "institution_level") & (one.min_hosp_level == 2)),
        "course14_drug": first((one.rule_kind == "course_length") & (one.max_days == 14) & (one.code_kind == "drug")),
        "dup_main": dup.hilist_code, "dup_sub": dup.related_code,
        "bed": "001109000010000",  # 普通病房床位费: batch 8-1, once a day
        "hba1c": "002503020030000",  # 糖化血红蛋白测定: batch 8-4, once in 15 days
        "op_a": ops[0], "op_b": ops[1],
    }


CODES = _codes()


def case_region() -> MiniRegion:
    """The rule cases (see the module docstring)."""
    r = MiniRegion()
    c = CODES
    r.institution("H3", hosp_lv="02")
    r.institution("H2", hosp_lv="05")
    r.institution("C1", kind="clinic", hosp_lv="11")
    r.institution("P1", kind="pharmacy", admdvs="220102")
    r.institution("P2", kind="pharmacy", admdvs="220102")   # with stock records (进销存): a 串换 pharmacy
    r.institution("P3", kind="pharmacy", admdvs="220102")   # with stock records that back its sales
    r.institution("V1", hosp_lv="05")
    r.institution("V2", hosp_lv="05")
    r.institution("V3", hosp_lv="05")
    r.item(c["female_drug"], "限女性药", list_type="101", chrgitm_type="09")
    r.item(c["child_drug"], "儿童用药", list_type="101", chrgitm_type="09")
    r.item(c["work_injury_drug"], "工伤用药", list_type="101", chrgitm_type="09")
    r.item(c["maternity_drug"], "生育用药", list_type="101", chrgitm_type="09")
    r.item(c["inpatient_drug"], "限住院药", list_type="101", chrgitm_type="09")
    r.item(c["level2_drug"], "限二级药", list_type="101", chrgitm_type="09")
    r.item(c["course14_drug"], "限14天药", list_type="101", chrgitm_type="09")
    r.item(c["dup_main"], "主项", cap=100.0)
    r.item(c["dup_sub"], "从项", cap=50.0)
    r.item(c["bed"], "普通病房床位费", chrgitm_type="01", cap=45.0)
    r.item(c["hba1c"], "糖化血红蛋白测定", chrgitm_type="04", cap=60.0)
    r.item(c["op_a"], "手术甲", chrgitm_type="06", cap=2000.0)
    r.item(c["op_b"], "手术乙", chrgitm_type="06", cap=1000.0)
    r.item("009TEST000000001", "普通治疗", cap=10.0)
    r.item("XTEST0001", "常用药", list_type="101", chrgitm_type="09")
    r.item("XCHRONIC01", "慢病药", list_type="101", chrgitm_type="09", generic="慢病药")
    r.item("XVBP-SEL", "集采药(中选)", list_type="101", chrgitm_type="09", generic="集采药", vbp_group="G1",
           vbp_flag="1")
    r.item("XVBP-NON", "集采药", list_type="101", chrgitm_type="09", generic="集采药", vbp_group="G1", vbp_flag="0")

    def drug(code, pric=20.0, **kw):
        return {"code": code, "pric": pric, **kw}

    # 限性别: a female-only drug for a man; for a woman; refunded
    for case, gend in (("HIT", "1"), ("NEAR", "2"), ("REFUND", "1")):
        p = r.person(f"P-GENDER-{case}", gend=gend)
        r.visit(f"GENDER-{case}", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["female_drug"])])
    r.refund("GENDER-REFUND")
    # 限年龄: a children's drug at 30; at 17 (the day before the 18th birthday); refunded
    for case, brdy in (("HIT", "1995-03-03"), ("NEAR", "2007-03-04"), ("REFUND", "1995-03-03")):
        p = r.person(f"P-AGE-{case}", brdy=brdy)
        r.visit(f"AGE-{case}", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["child_drug"])])
    r.refund("AGE-REFUND")
    # 限保险类型: a work-injury drug; a maternity drug in a maternity stay (med_type 52); refunded
    p = r.person("P-INS-HIT")
    r.visit("INS-HIT", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["work_injury_drug"])])
    p = r.person("P-INS-NEAR", gend="2")
    r.visit("INS-NEAR", p, "H3", begin="2025-03-03 09:00:00", end="2025-03-06 10:00:00", med_type="52",
            lines=[drug(c["maternity_drug"])])
    p = r.person("P-INS-REFUND")
    r.visit("INS-REFUND", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["work_injury_drug"])])
    r.refund("INS-REFUND")
    # 限就医方式: an inpatient-only drug in an outpatient visit; in a stay; refunded
    p = r.person("P-CARE-HIT")
    r.visit("CARE-HIT", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["inpatient_drug"])])
    p = r.person("P-CARE-NEAR")
    r.visit("CARE-NEAR", p, "H3", begin="2025-03-03 09:00:00", end="2025-03-06 10:00:00", med_type="21",
            lines=[drug(c["inpatient_drug"], time="2025-03-04 10:00:00")])
    p = r.person("P-CARE-REFUND")
    r.visit("CARE-REFUND", p, "H3", begin="2025-03-03 09:00:00", lines=[drug(c["inpatient_drug"])])
    r.refund("CARE-REFUND")
    # 限机构等级: a 二级+ drug at a community clinic; at a 二级 hospital; refunded
    p = r.person("P-LEVEL-HIT")
    r.visit("LEVEL-HIT", p, "C1", begin="2025-03-03 09:00:00", lines=[drug(c["level2_drug"])])
    p = r.person("P-LEVEL-NEAR")
    r.visit("LEVEL-NEAR", p, "H2", begin="2025-03-03 09:00:00", lines=[drug(c["level2_drug"])])
    p = r.person("P-LEVEL-REFUND")
    r.visit("LEVEL-REFUND", p, "C1", begin="2025-03-03 09:00:00", lines=[drug(c["level2_drug"])])
    r.refund("LEVEL-REFUND")
    # 限支付疗程 (14 days): 16 days of the drug in a stay; 14 days; 16 days but the stay refunded
    for case, days in (("HIT", 16), ("NEAR", 14), ("REFUND", 16)):
        p = r.person(f"P-COURSE-{case}")
        lines = [drug(c["course14_drug"], time=f"2025-04-{1 + d:02d} 11:00:00") for d in range(days)]
        r.visit(f"COURSE-{case}", p, "H3", begin="2025-04-01 09:00:00", end="2025-04-20 10:00:00", med_type="21",
                lines=lines)
    r.refund("COURSE-REFUND")
    # 重复收费 (单日): main and included sub-item on one day; on the next day; refunded
    for case, sub_day in (("HIT", "2025-03-04"), ("NEAR", "2025-03-05"), ("REFUND", "2025-03-04")):
        p = r.person(f"P-DUP-{case}")
        r.visit(f"DUP-{case}", p, "H3", begin="2025-03-03 09:00:00", end="2025-03-08 10:00:00", med_type="21",
                lines=[{"code": c["dup_main"], "pric": 100.0, "time": "2025-03-04 10:00:00"},
                       {"code": c["dup_sub"], "pric": 50.0, "time": f"{sub_day} 10:30:00"}])
    r.refund("DUP-REFUND")
    # 限频次 (bed once a day): a 3-day stay billed 4 bed days; 3; 4 but refunded
    for case, extra in (("HIT", True), ("NEAR", False), ("REFUND", True)):
        p = r.person(f"P-FREQ-{case}")
        lines = [{"code": c["bed"], "pric": 45.0, "time": f"2025-05-0{d} 07:00:00"} for d in (1, 2, 3)]
        if extra:
            lines.append({"code": c["bed"], "pric": 45.0, "time": "2025-05-02 15:20:00"})
        r.visit(f"FREQ-{case}", p, "H3", begin="2025-05-01 06:00:00", end="2025-05-04 10:00:00", med_type="21",
                lines=lines)
    r.refund("FREQ-REFUND")
    # 周期超频次 (HbA1c once in 15 days): 10 days apart; 20 days apart; 10 days apart, second refunded
    for case, gap in (("HIT", 10), ("NEAR", 20), ("REFUND", 10)):
        p = r.person(f"P-PERIOD-{case}")
        r.visit(f"PERIOD-{case}-1", p, "H3", begin="2025-03-01 09:00:00", med_type="140104",
                lines=[{"code": c["hba1c"], "pric": 60.0}])
        day = (date(2025, 3, 1) + timedelta(days=gap)).isoformat()
        r.visit(f"PERIOD-{case}", p, "H3", begin=f"{day} 09:00:00", med_type="140104",
                lines=[{"code": c["hba1c"], "pric": 60.0}])
    r.refund("PERIOD-REFUND")
    # 主次手术未折价: a second operation of the group at full price; at half price; full price refunded
    for case, second in (("HIT", 1000.0), ("NEAR", 500.0), ("REFUND", 1000.0)):
        p = r.person(f"P-SURG-{case}", gend="2")
        r.visit(f"SURG-{case}", p, "H3", begin="2025-06-01 09:00:00", end="2025-06-08 10:00:00", med_type="21",
                lines=[{"code": c["op_a"], "pric": 2000.0, "time": "2025-06-02 09:00:00"},
                       {"code": c["op_b"], "pric": second, "time": "2025-06-02 10:00:00"}])
    r.refund("SURG-REFUND")
    # 超标准收费: 12 yuan against a cap of 10; at the cap; over it but refunded
    for case, pric in (("HIT", 12.0), ("NEAR", 10.0), ("REFUND", 12.0)):
        p = r.person(f"P-PRICE-{case}")
        r.visit(f"PRICE-{case}", p, "H3", begin="2025-03-03 09:00:00",
                lines=[{"code": "009TEST000000001", "pric": pric, "cnt": 2}])
    r.refund("PRICE-REFUND")
    # 冒用死亡人口信息: care a month after the death; a stay that began before the death; refunded
    p = r.person("P-DEAD-HIT", die_date="2025-02-01")
    r.visit("DEAD-HIT", p, "C1", begin="2025-03-01 09:00:00", lines=[drug("XTEST0001")])
    p = r.person("P-DEAD-NEAR", die_date="2025-03-01")
    r.visit("DEAD-NEAR", p, "H3", begin="2025-02-25 09:00:00", end="2025-03-01 10:00:00", med_type="21",
            setl_time="2025-03-02 10:00:00", lines=[drug("XTEST0001", time="2025-02-26 10:00:00")])
    p = r.person("P-DEAD-REFUND", die_date="2025-02-01")
    r.visit("DEAD-REFUND", p, "C1", begin="2025-03-01 09:00:00", lines=[drug("XTEST0001")])
    r.refund("DEAD-REFUND")
    # 分解住院: readmitted 7 days after discharge, same category (J18); after 17 days; other diagnosis;
    # readmission refunded
    for case, gap, diag in (("HIT", 7, "J18.000"), ("NEAR", 17, "J18.000"), ("OTHER", 7, "K80.200"),
                            ("REFUND", 7, "J18.000")):
        p = r.person(f"P-SPLIT-{case}")
        r.visit(f"SPLIT-{case}-1", p, "H3", begin="2025-03-01 09:00:00", end="2025-03-08 10:00:00", med_type="21",
                diags=("J18.900",), lines=[drug("XTEST0001", time="2025-03-02 10:00:00")])
        day = (date(2025, 3, 8) + timedelta(days=gap)).isoformat()
        end = (date(2025, 3, 8) + timedelta(days=gap + 5)).isoformat()
        r.visit(f"SPLIT-{case}", p, "H3", begin=f"{day} 09:00:00", end=f"{end} 10:00:00", med_type="21",
                diags=(diag,), lines=[drug("XTEST0001", time=f"{day} 11:00:00")])
    r.refund("SPLIT-REFUND")

    # 挂床住院 / 盗刷: a 10-day stay with a pharmacy purchase elsewhere on day 4. Little care -> bed hold;
    # normal care -> card theft; little care but the stay refunded -> nothing.
    def stay(case: str, care_per_day: int) -> None:
        p = r.person(f"P-STAY-{case}")
        lines = [{"code": c["bed"], "pric": 45.0, "time": f"2025-07-{d:02d} 07:00:00"} for d in range(1, 11)]
        lines += [drug("XTEST0001", time=f"2025-07-{d:02d} 10:{k:02d}:00") for d in range(1, 11)
                  for k in range(care_per_day)]
        if care_per_day == 0:
            lines.append(drug("XTEST0001", time="2025-07-02 10:00:00"))
        r.visit(f"STAY-{case}", p, "H3", begin="2025-07-01 06:00:00", end="2025-07-11 10:00:00", med_type="21",
                lines=lines)
        r.visit(f"BUY-{case}", p, "P1", begin="2025-07-04 15:00:00", med_type="41", lines=[drug("XTEST0001")])

    stay("BEDHOLD", 0)
    stay("THEFT", 3)
    stay("BEDHOLD-REFUND", 0)
    r.refund("STAY-BEDHOLD-REFUND")
    # 盗刷 near miss: the purchase on the admission day; refund: the purchase refunded
    p = r.person("P-THEFT-NEAR")
    r.visit("STAY-THEFT-NEAR", p, "H3", begin="2025-07-01 06:00:00", end="2025-07-11 10:00:00", med_type="21",
            lines=[drug("XTEST0001", time=f"2025-07-{d:02d} 10:{k:02d}:00") for d in range(1, 11) for k in range(3)])
    r.visit("BUY-THEFT-NEAR", p, "P1", begin="2025-07-01 15:00:00", med_type="41", lines=[drug("XTEST0001")])
    p = r.person("P-THEFT-REFUND")
    r.visit("STAY-THEFT-REFUND", p, "H3", begin="2025-07-01 06:00:00", end="2025-07-11 10:00:00", med_type="21",
            lines=[drug("XTEST0001", time=f"2025-07-{d:02d} 10:{k:02d}:00") for d in range(1, 11) for k in range(3)])
    r.visit("BUY-THEFT-REFUND", p, "P1", begin="2025-07-04 15:00:00", med_type="41", lines=[drug("XTEST0001")])
    r.refund("BUY-THEFT-REFUND")
    # 超量开药/重复开药: monthly 30-day refills at H3 and a month's supply twice more from H2: the third refill
    # (day 60) has 150 days supplied in 90 (1.67x, 60 days over) from two prescribers; a patient who moves
    # their 慢病 registration to H2 once, the first H2 refill while the last H3 one still covers 15 days;
    # the pattern of the hit with its last refill refunded
    rx = lambda day: (date(2025, 3, 1) + timedelta(days=day)).isoformat() + " 09:00:00"  # noqa: E731
    monthly = lambda: [drug("XCHRONIC01", pric=30.0, cnt=3, prd_days=30)]  # noqa: E731
    for case, refills in (("HIT", ((0, "H3"), (14, "H2"), (30, "H3"), (44, "H2"), (60, "H3"))),
                          ("NEAR", ((0, "H3"), (30, "H3"), (60, "H3"), (75, "H2"), (105, "H2"), (135, "H2"))),
                          ("REFUND", ((0, "H3"), (14, "H2"), (30, "H3"), (44, "H2"), (60, "H3")))):
        p = r.person(f"P-RX-{case}")
        for k, (day, inst) in enumerate(refills):
            name = f"RX-{case}" if (case != "NEAR" and k == len(refills) - 1) or (case == "NEAR" and k == 3) \
                else f"RX-{case}-{k + 1}"
            r.visit(name, p, inst, begin=rx(day), med_type="140104", lines=monthly())
    r.refund("RX-REFUND")
    # 应由第三方支付: a fracture from a traffic accident; from a fall at home; traffic, refunded
    for case, cause in (("HIT", "V43.500"), ("NEAR", "W01.x00"), ("REFUND", "V43.500")):
        p = r.person(f"P-THIRD-{case}")
        r.visit(f"THIRD-{case}", p, "H3", begin="2025-03-03 09:00:00", med_type="13", diags=("S72.000", cause),
                lines=[{"code": "009TEST000000001", "pric": 10.0}])
    r.refund("THIRD-REFUND")
    lookalike_cases(r)
    # 集采: V1 65 % non-selected (hit), V2 30 %, V3 65 % but the non-selected visit refunded
    for inst, non, sel, refund in (("V1", 130, 70, False), ("V2", 60, 140, False), ("V3", 130, 150, True)):
        p = r.person(f"P-VBP-{inst}")
        r.visit(f"VBP-{inst}-SEL", p, inst, begin="2025-03-03 09:00:00",
                lines=[drug("XVBP-SEL", pric=1.0, cnt=sel)])
        r.visit(f"VBP-{inst}-NON", p, inst, begin="2025-03-04 09:00:00",
                lines=[drug("XVBP-NON", pric=20.0, cnt=non)])
        if refund:
            r.refund(f"VBP-{inst}-NON")
    return r


def lookalike_cases(r: MiniRegion) -> None:
    """Honest care that resembles a violation (``*-ALIKE-*``: no hit) next to the violations it resembles
    (``*-VIOL-*``: a hit), one person each (tests/models/test_rules_lookalikes.py)."""
    def drug(code, pric=20.0, **kw):
        return {"code": code, "pric": pric, **kw}

    def stay(setl_id, psn, inst, begin, days, diags):
        end = (date.fromisoformat(begin) + timedelta(days=days)).isoformat()
        r.visit(setl_id, psn, inst, begin=f"{begin} 09:00:00", end=f"{end} 10:00:00", med_type="21", diags=diags,
                lines=[drug("XTEST0001", time=f"{begin} 11:00:00")])

    # 分解住院: chemotherapy cycles (Z51.1, the cancer secondary) 14 days apart; a staged operation's second
    # stage (Z47.8, the fracture secondary) 10 days later; a transfer to another hospital the next day;
    # against: cancer stays coded with the cancer as main diagnosis, readmitted 7 days after discharge
    p = r.person("P-SPLIT-ALIKE-CHEMO")
    stay("SPLIT-ALIKE-CHEMO-1", p, "H3", "2025-03-01", 3, ("Z51.100", "C34.900"))
    stay("SPLIT-ALIKE-CHEMO", p, "H3", "2025-03-18", 3, ("Z51.100", "C34.900"))
    p = r.person("P-SPLIT-ALIKE-STAGED")
    stay("SPLIT-ALIKE-STAGED-1", p, "H3", "2025-03-01", 6, ("S82.200", "W01.000"))
    stay("SPLIT-ALIKE-STAGED", p, "H3", "2025-03-17", 5, ("Z47.800", "S82.200"))
    p = r.person("P-SPLIT-ALIKE-TRANSFER")
    stay("SPLIT-ALIKE-TRANSFER-1", p, "H2", "2025-03-01", 4, ("J18.900",))
    stay("SPLIT-ALIKE-TRANSFER", p, "H3", "2025-03-06", 8, ("J18.900",))
    p = r.person("P-SPLIT-VIOL-CANCER")
    stay("SPLIT-VIOL-CANCER-1", p, "H3", "2025-03-01", 3, ("C34.900",))
    stay("SPLIT-VIOL-CANCER", p, "H3", "2025-03-11", 3, ("C34.900",))

    # 应由第三方支付: injuries at home and at play (W20.000 struck at home, W26.x00 a knife, W21.300 sports
    # equipment at a sports ground); a traffic injury the liable party paid (nothing from the fund); against:
    # a work injury by the place character (W20.600 industrial area) and by Y96 (place not coded)
    for case, diags in (("ALIKE-HOME", ("S06.000", "W20.000")), ("ALIKE-CUT", ("S61.000", "W26.x00")),
                        ("ALIKE-SPORTS", ("S93.400", "W21.300")), ("ALIKE-PAID", ("S72.000", "V43.500")),
                        ("VIOL-PLACE", ("S82.200", "W20.600")), ("VIOL-Y96", ("S06.000", "W20.x00", "Y96.x00"))):
        p = r.person(f"P-THIRD-{case}")
        r.visit(f"THIRD-{case}", p, "H3", begin="2025-03-03 09:00:00", med_type="13", diags=diags,
                lines=[{"code": "009TEST000000001", "pric": 10.0}])
    paid = next(x for x in r.rows["setl_d"] if x["setl_id"] == "THIRD-ALIKE-PAID")
    paid.update(fund_pay_sumamt=0.0, hifp_pay=0.0, psn_pay=paid["medfee_sumamt"])

    # 冒用死亡人口信息: a death in hospital settled by the family a week after the death
    p = r.person("P-DEAD-ALIKE-LATE", die_date="2025-03-10")
    r.visit("DEAD-ALIKE-LATE", p, "H3", begin="2025-03-02 09:00:00", end="2025-03-10 04:00:00", med_type="21",
            setl_time="2025-03-17 10:00:00", lines=[drug("XTEST0001", time="2025-03-03 10:00:00")])

    # 超量开药/重复开药 (monthly 30-day refills of a chronic drug, days from 2025-01-10):
    #   ALIKE-EARLY one refill 8 days early at the community clinic; ALIKE-SHOP every other refill filled at
    #   the pharmacy; ALIKE-ONEPLACE a month's supply every 15 days, all from H3 (one prescriber: judged at
    #   the institution); ALIKE-COURSE a 4-week course of a common drug, renewed for 2 weeks at a follow-up
    #   elsewhere two days later and topped up at the pharmacy: 33 days over, but within ten days, not months;
    #   VIOL-SHOP refills at H3, a month more from H2 and from the pharmacy: the day-60 refill is over by 30
    #   days, 1.33x, only with the pharmacy's supply counted;
    #   ALIKE-SWAP the same, but the pharmacy's month is billed on a card of a 串换 pharmacy (P2) whose stock
    #   records (进销存) back none of its insured sales of the drug around that month: never handed over;
    #   VIOL-STOCKED the same at a pharmacy (P3) whose stock records back its sales: the patient's supply;
    #   ALIKE-WARD the same, but the H2 refill of day 45 falls inside a stay at H3 (days 40-50, full care):
    #   the card was used while its holder lay in hospital elsewhere
    rx = lambda day: (date(2025, 1, 10) + timedelta(days=day)).isoformat() + " 09:00:00"  # noqa: E731
    month = ("XCHRONIC01", 30)
    for case, refills in (
            ("ALIKE-EARLY", ((0, "H3", month), (30, "H3", month), (52, "C1", month), (90, "H3", month),
                             (120, "H3", month))),
            ("ALIKE-SHOP", ((0, "H3", month), (30, "P1", month), (60, "H3", month), (90, "P1", month),
                            (120, "H3", month))),
            ("ALIKE-ONEPLACE", tuple((day, "H3", month) for day in range(0, 91, 15))),
            ("ALIKE-COURSE", ((0, "H3", ("XTEST0001", 28)), (2, "H2", ("XTEST0001", 14)), (9, "P1", ("XTEST0001", 7)))),
            ("VIOL-SHOP", ((0, "H3", month), (20, "H2", month), (45, "P1", month), (60, "H3", month))),
            ("ALIKE-SWAP", ((0, "H3", month), (20, "H2", month), (45, "P2", month), (60, "H3", month))),
            ("VIOL-STOCKED", ((0, "H3", month), (20, "H2", month), (45, "P3", month), (60, "H3", month))),
            ("ALIKE-WARD", ((0, "H3", month), (20, "H2", month), (45, "H2", month), (60, "H3", month)))):
        p = r.person(f"P-RX-{case}")
        for k, (day, inst, (code, days)) in enumerate(refills):
            name = f"RX-{case}" if k == len(refills) - 1 else f"RX-{case}-{k + 1}"
            r.visit(name, p, inst, begin=rx(day), med_type="41" if inst.startswith("P") else "140104",
                    lines=[drug(code, pric=30.0, cnt=3, prd_days=days)])
        if case == "ALIKE-WARD":
            r.visit("RX-ALIKE-WARD-STAY", p, "H3", begin=rx(40), end=rx(50), med_type="21", diags=("I10.x00",),
                    lines=[drug("XTEST0001", time=f"{rx(d)[:10]} 1{k}:00:00") for d in range(40, 50) for k in range(3)])
    # the pharmacies' books for the drug, the months around the day-45 purchase (2025-02-24): P2 had none
    # of it in stock (opening, in-flow and stock-out 0); P3 had 10 boxes and booked the 3 sold
    for inst, opening, sold in (("P2", 0.0, 0.0), ("P3", 10.0, 3.0)):
        for m in ("2024-12", "2025-01", "2025-02", "2025-03", "2025-04"):
            out = sold if m == "2025-02" else 0.0
            r.rows["stock_moves"].append({"fixmedins_code": inst, "hilist_code": "XCHRONIC01", "month": m,
                                          "opening_qty": opening - (sold if m > "2025-02" else 0.0), "in_qty": 0.0,
                                          "out_qty": out, "closing_qty": opening - (sold if m >= "2025-02" else 0.0)})


def warehouse_visit(con, setl_id: str) -> dict:
    """Settlement ``setl_id`` of a warehouse as a pre-check visit dict, with the warehouse's own types
    (Decimal, datetime; None kept), as the rule tests post it."""
    def rows(sql):
        cur = con.execute(sql, [setl_id])
        names = [d[0] for d in cur.description]
        # the warehouse's own columns but those no visit carries (_ingest_batch; birth_year, kept for brdy)
        return [{k: v for k, v in zip(names, r) if k not in ("_ingest_batch", "birth_year")} for r in cur.fetchall()]

    mdtrt = rows("SELECT m.* FROM mdtrt_d m JOIN setl_d s USING (mdtrt_id) WHERE s.setl_id = ?")
    return {"setl": rows("SELECT * FROM setl_d WHERE setl_id = ?")[0], "mdtrt": mdtrt[0] if mdtrt else None,
            "lines": rows("SELECT * FROM fee_list_d WHERE setl_id = ?"),
            "diagnoses": rows("SELECT * FROM setl_list_diag_d WHERE setl_id = ?")}

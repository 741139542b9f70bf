"""Flight-inspection planning (飞行检查抽查方案) after 吉医保函〔2024〕37号, 一(二) 被检机构.

:func:`plan_inspection` picks the institutions to inspect from a frame of designated institutions and
pharmacies, following the plan's rules in this order (an institution is picked at most once):

1. **指定检查** (designated): every code in ``designated`` (e.g. from high-risk big-data clues) is a
   target, with its own reason; the exclusion list does not apply to it (省医疗保障局指定除外).
2. **除外原则** (exclusions): institutions in ``inspected_recently`` are removed from every draw.
3. **基金用量排名 + 随机抽取** (ranked draw): per pooling region (the first ``region_digits`` of
   ``admdvs``) the medical institutions (hospital, clinic) are ranked by fund usage; the top
   ``candidates_per_region`` form the list (抽查范围) from which ``institutions_per_region`` are drawn.
4. **定点零售药店**: of the ``pharmacy_top_n`` pharmacies with the highest fund usage (whole frame),
   ``pharmacies_drawn`` are drawn.
5. **回头看** (look-back): per region, ``lookbacks_per_region`` of the medical institutions in
   ``previously_inspected`` are drawn.

Every draw uses one ``numpy.random.Generator`` made from the published ``seed``, over candidates in a
fixed order, so the same seed, input and config give the same plan. A draw is uniform (双随机) unless
``weighting`` is ``credit`` (weight by credit grade, :mod:`models.credit`: 评价结果与检查频次挂钩) or
``risk`` (weight = the suspicion index of :func:`institution_risk`, at least ``risk_weight_floor``);
weighted draws are successive draws without replacement, proportional to the weights.

The suspicion index (疑点风险指数, 大数据筛查疑点) uses no label and no trained model, so the plan and its
evaluation on the simulator's ground truth (:func:`inspection_lift`) see the same numbers: three shares
of an institution's own activity that the typology catalogue names as violations,

- ``billing_rule_share``: amount at risk of the rule hits on its fee lines, visits or on the
  institution itself, over its fund usage (hits on a person or a settlement, e.g. 冒用死亡人员 or 盗刷,
  are the insured's conduct and left out);
- ``stock_gap_ratio``: drugs billed beyond the stock received (进销存, 串换药品/虚假购药);
- ``dialysis_over_3_share``: patient-weeks with more than 3 haemodialysis sessions (虚假诊疗),

combined as ``risk = 1 − Π(1 − share)``: the chance that at least one signal is real if each share were
one.

>>> inst = pd.DataFrame({"fixmedins_code": ["H1", "H2", "H3", "P1", "P2"],
...                      "fixmedins_type": ["hospital", "clinic", "hospital", "pharmacy", "pharmacy"],
...                      "admdvs": "220102", "fund_amt": [5e6, 1e6, 3e6, 2e5, 1e5]})
>>> cfg = InspectionConfig(candidates_per_region=2, institutions_per_region=1, pharmacies_drawn=1)
>>> plan = plan_inspection(inst, seed=7, config=cfg, designated=["P2"])
>>> plan.targets[["fixmedins_code", "selection"]].to_dict("records")
[{'fixmedins_code': 'P2', 'selection': 'designated'}, {'fixmedins_code': 'H3', 'selection': 'ranked_draw'}, {'fixmedins_code': 'P1', 'selection': 'pharmacy_draw'}]
>>> print(plan.targets.loc[1, "reason_zh"])
基金用量排名: 统筹区 220102 医疗机构第 2 名 (共 3 家, 列入前 2 名抽查范围), 从 2 家中随机抽取 1 家
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Iterable, Mapping

import duckdb
import numpy as np
import pandas as pd
import yaml

__all__ = [
    "DEFAULT_INSPECTION_CONFIG",
    "SELECTIONS",
    "WEIGHTINGS",
    "InspectionConfig",
    "InspectionPlan",
    "load_inspection_config",
    "plan_inspection",
    "inspection_lift",
    "RISK_SIGNALS",
    "institution_risk",
    "risk_signals_from_warehouse",
    "read_code_list",
    "plan_html",
]

DEFAULT_INSPECTION_CONFIG = Path(__file__).with_name("inspection.yaml")
SELECTIONS: dict[str, str] = {"designated": "指定检查", "ranked_draw": "基金用量排名随机抽取",
                              "pharmacy_draw": "定点零售药店随机抽取", "lookback": "回头看"}
WEIGHTINGS: dict[str, str] = {"none": "等概率 (双随机)", "credit": "按信用等级加权", "risk": "按疑点风险指数加权"}
RISK_SIGNALS: dict[str, str] = {
    "billing_rule_share": "机构计费规则命中金额占基金用量",
    "stock_gap_ratio": "进销存差额占比 (超出购进的销售量)",
    "dialysis_over_3_share": "每周透析超过 3 次的患者周占比",
}
# Rule hits on these entities are the institution's own billing; hits on a person or a settlement
# (冒用死亡人员, 盗刷, 第三方责任 ...) are the insured's conduct, wherever it was settled.
INSTITUTION_HIT_ENTITIES = ("fixmedins", "pharmacy", "line", "mdtrt")
MEDICAL_TYPES = ("hospital", "clinic")
_TYPE_ZH = {"hospital": "医院", "clinic": "诊所", "pharmacy": "药店"}
_COLUMNS = ["order", "fixmedins_code", "fixmedins_name", "fixmedins_type", "region", "fund_amt", "fund_rank",
            "selection", "selection_zh", "weight", "pool_size", "reason_zh"]


@dataclass(frozen=True)
class InspectionConfig:
    """The sampling parameters of ``inspection.yaml``, read once (see the module docstring)."""

    candidates_per_region: int = 10
    institutions_per_region: int = 3
    region_digits: int = 6
    pharmacy_top_n: int = 10
    pharmacies_drawn: int = 2
    lookbacks_per_region: int = 1
    weighting: str = "none"
    risk_weight_floor: float = 0.05
    grade_weights: Mapping[str, float] = field(
        default_factory=lambda: MappingProxyType({"A": 1.0, "B": 2.0, "C": 4.0, "D": 8.0}))

    def __post_init__(self) -> None:
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {list(WEIGHTINGS)}, not {self.weighting!r}")
        counts = (self.candidates_per_region, self.institutions_per_region, self.pharmacy_top_n,
                  self.pharmacies_drawn, self.lookbacks_per_region)
        if min(counts) < 0 or not 1 <= self.region_digits <= 6:
            raise ValueError(f"counts must be ≥ 0 and region_digits 1..6: {self}")

    @property
    def plan_size(self) -> str:
        return (f"每个统筹区 {self.institutions_per_region}/{self.candidates_per_region} 家医疗机构, "
                f"药店 {self.pharmacies_drawn}/{self.pharmacy_top_n} 家, 回头看每区 {self.lookbacks_per_region} 家")


def load_inspection_config(path: Path | None = None, *, credit_config=None, **overrides) -> InspectionConfig:
    """Read ``inspection.yaml`` (default beside this module); grade weights from ``credit_config``
    (a :class:`models.credit.CreditConfig`) when given; keyword ``overrides`` win."""
    raw = yaml.safe_load(Path(path or DEFAULT_INSPECTION_CONFIG).read_text(encoding="utf-8")) or {}
    known = {f for f in InspectionConfig.__dataclass_fields__ if f != "grade_weights"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"{path or DEFAULT_INSPECTION_CONFIG}: unknown keys {sorted(unknown)}; known: {sorted(known)}")
    cfg = InspectionConfig(**raw)
    if credit_config is not None:
        cfg = replace(cfg, grade_weights=MappingProxyType(dict(credit_config.inspection_weight)))
    return replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


@dataclass(frozen=True)
class InspectionPlan:
    """The targets (one row each, with the reason it was chosen) and how the plan was drawn."""

    seed: int
    config: InspectionConfig
    targets: pd.DataFrame
    excluded: tuple[str, ...] = ()

    def summary(self) -> dict:
        by = self.targets["selection"].value_counts()
        return {"seed": self.seed, "weighting": self.config.weighting, "targets": len(self.targets),
                "by_selection": {k: int(by.get(k, 0)) for k in SELECTIONS},
                "regions": sorted(self.targets["region"].dropna().unique().tolist()),
                "excluded": len(self.excluded)}


def plan_inspection(institutions: pd.DataFrame, *, seed: int, config: InspectionConfig | None = None,
                    inspected_recently: Iterable[str] = (), previously_inspected: Iterable[str] = (),
                    designated: Iterable[str] | Mapping[str, str] = ()) -> InspectionPlan:
    """Draw a flight-inspection plan (see the module docstring).

    ``institutions``: ``fixmedins_code``, ``fixmedins_type`` (hospital/clinic/pharmacy), ``admdvs``,
    ``fund_amt`` (fund usage over the period, 元), optionally ``fixmedins_name``, ``grade`` (A–D, for
    ``weighting="credit"``) and ``risk`` (0–1, :func:`institution_risk`, for ``weighting="risk"``).
    ``designated`` is a list of codes or a mapping code → reason (Chinese).
    """
    cfg = config or InspectionConfig()
    rng = np.random.default_rng(seed)
    inst = _prepared(institutions, cfg)
    recent = {str(c) for c in inspected_recently}
    before = {str(c) for c in previously_inspected}
    reasons = dict(designated) if isinstance(designated, Mapping) else {str(c): "" for c in designated}
    unknown = sorted(set(reasons) - set(inst.index))
    if unknown:
        raise ValueError(f"指定检查对象不在定点机构名单中 (designated targets not found): {unknown[:10]}")
    rows: list[dict] = []
    taken: set[str] = set()

    for code in reasons:
        r = inst.loc[code]
        why = reasons[code] or "省医疗保障局根据举报线索、大数据筛查疑点直接确定"
        rows.append(_row(r, "designated", np.nan, 0, f"指定检查: {why}"))
        taken.add(code)

    eligible = inst[~inst.index.isin(recent)]
    medical = eligible[eligible["fixmedins_type"].isin(MEDICAL_TYPES)]
    for region, group in medical.groupby("region", sort=True):
        ranked = group.sort_values(["fund_rank"])
        listed = ranked.head(cfg.candidates_per_region)
        pool = listed[~listed.index.isin(taken)]
        for code, w in _draw(rng, pool, cfg.institutions_per_region, cfg):
            r = inst.loc[code]
            rows.append(_row(r, "ranked_draw", w, len(pool),
                             f"基金用量排名: 统筹区 {region} 医疗机构第 {int(r.fund_rank)} 名 (共 {len(group)} 家, "
                             f"列入前 {cfg.candidates_per_region} 名抽查范围), 从 {len(pool)} 家中"
                             f"{_how(cfg)}抽取 {min(cfg.institutions_per_region, len(pool))} 家"))
            taken.add(code)

    pharmacies = eligible[eligible["fixmedins_type"] == "pharmacy"].sort_values("fund_amt", ascending=False,
                                                                                   kind="stable")
    top = pharmacies.head(cfg.pharmacy_top_n)
    pool = top[~top.index.isin(taken)]
    for code, w in _draw(rng, pool, cfg.pharmacies_drawn, cfg):
        r = inst.loc[code]
        rows.append(_row(r, "pharmacy_draw", w, len(pool),
                         f"定点零售药店基金用量第 {int(r.fund_rank)} 名, 从前 {cfg.pharmacy_top_n} 名中"
                         f"{_how(cfg)}抽取 {min(cfg.pharmacies_drawn, len(pool))} 家"))
        taken.add(code)

    looked = medical[medical.index.isin(before) & ~medical.index.isin(taken)]
    for region, pool in looked.groupby("region", sort=True):
        for code, w in _draw(rng, pool, cfg.lookbacks_per_region, cfg):
            rows.append(_row(inst.loc[code], "lookback", w, len(pool),
                             f"回头看: 统筹区 {region} 曾接受国家/省级飞行检查的 {len(pool)} 家医疗机构中"
                             f"{_how(cfg)}抽取 {min(cfg.lookbacks_per_region, len(pool))} 家, 核查整改是否到位"))
            taken.add(code)

    targets = pd.DataFrame(rows, columns=_COLUMNS[1:])
    targets.insert(0, "order", np.arange(1, len(targets) + 1))
    return InspectionPlan(int(seed), cfg, targets, tuple(sorted(recent & set(inst.index))))


def inspection_lift(institutions: pd.DataFrame, fraud_codes: Iterable[str], *, seeds: int = 100,
                    config: InspectionConfig | None = None, weightings: Iterable[str] = ("risk", "credit")) -> dict:
    """Fraud institutions found by weighted plans against uniform plans of the same size (双随机).

    For each seed 0..seeds-1 a plan is drawn once per weighting and once uniformly; returns per
    weighting the mean (and standard deviation, min, max) of fraud institutions among the targets, the
    lift over the uniform plans' mean, the share of seeds where the weighted plan found more
    (``share_more``) or fewer (``share_fewer``) than the uniform plan of the same seed, and the plan
    size. No look-back or designated targets, so the sizes match.
    """
    cfg = config or InspectionConfig()
    fraud = {str(c) for c in fraud_codes}
    plans: dict[str, list[int]] = {w: [] for w in ("none", *weightings)}
    size = 0
    for s in range(seeds):
        for w in plans:
            t = plan_inspection(institutions, seed=s, config=replace(cfg, weighting=w)).targets
            plans[w].append(int(t["fixmedins_code"].isin(fraud).sum()))
            size = len(t)
    out = {"seeds": seeds, "plan_size": size, "institutions": int(len(institutions)),
           "fraud_institutions": int(institutions["fixmedins_code"].astype(str).isin(fraud).sum()),
           "config": cfg.plan_size, "plans": {}}
    for w, found in plans.items():
        a = np.asarray(found, dtype=float)
        out["plans"][w] = {"weighting_zh": WEIGHTINGS[w], "mean_found": round(float(a.mean()), 3),
                           "std_found": round(float(a.std(ddof=1)) if len(a) > 1 else 0.0, 3),
                           "min_found": int(a.min()), "max_found": int(a.max())}
    base = out["plans"]["none"]["mean_found"]
    uniform = np.asarray(plans["none"])
    for w in weightings:
        found = np.asarray(plans[w])
        out["plans"][w]["lift"] = round(out["plans"][w]["mean_found"] / base, 2) if base else None
        out["plans"][w]["share_more"] = round(float((found > uniform).mean()), 3)
        out["plans"][w]["share_fewer"] = round(float((found < uniform).mean()), 3)
    return out


def institution_risk(signals: pd.DataFrame) -> pd.DataFrame:
    """The suspicion index (疑点风险指数) of each institution from label-free signals (module docstring).

    ``signals``: ``fixmedins_code``, ``fund_amt`` (fund usage, 元), ``billing_rule_amt`` (amount at risk of
    the institution's own rule hits, 元), ``stock_gap_ratio``, ``dialysis_over_3_share``; a missing
    column or value counts as no signal. Returns ``fixmedins_code``, the three shares (clipped to 0–1),
    ``risk`` and ``risk_zh`` (the non-zero signals, in Chinese), in the input order.

    >>> s = pd.DataFrame({"fixmedins_code": ["H1", "H2", "P1"], "fund_amt": [1e6, 1e6, 0.0],
    ...                   "billing_rule_amt": [0.0, 200_000.0, 0.0], "stock_gap_ratio": [None, None, 0.5],
    ...                   "dialysis_over_3_share": [0.0, 0.5, None]})
    >>> r = institution_risk(s)
    >>> r["risk"].round(2).tolist()
    [0.0, 0.6, 0.5]
    >>> print(r.loc[1, "risk_zh"])
    疑点风险指数 0.60: 机构计费规则命中金额占基金用量 20.0%; 每周透析超过 3 次的患者周占比 50.0%
    """
    s = signals.reset_index(drop=True)
    fund, billed = _numeric(s, "fund_amt"), _numeric(s, "billing_rule_amt")
    shares = pd.DataFrame({
        # rule hits without fund usage in the period: a full signal, as in the credit rating's rule factor
        "billing_rule_share": np.where(fund > 0, billed / fund.where(fund > 0, 1.0), (billed > 0).astype(float)),
        "stock_gap_ratio": _numeric(s, "stock_gap_ratio"),
        "dialysis_over_3_share": _numeric(s, "dialysis_over_3_share"),
    }).clip(0.0, 1.0)
    risk = 1.0 - (1.0 - shares).prod(axis=1)
    out = pd.concat([s[["fixmedins_code"]].astype(str), shares], axis=1).assign(risk=risk.to_numpy())
    out["risk_zh"] = [_risk_zh(r, row) for r, row in zip(out["risk"], shares.itertuples(index=False))]
    return out


def risk_signals_from_warehouse(warehouse: Path | duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The inputs of :func:`institution_risk` for every hospital, clinic and pharmacy of a warehouse.

    Fund usage is ``fund_amt_365`` of ``feat_fixmedins`` / ``feat_pharmacy``; the rule amount sums every
    hit of ``rule_hits`` on :data:`INSTITUTION_HIT_ENTITIES` (the feature tables count every hit too);
    a table that is missing gives no signal."""
    con, own = (duckdb.connect(str(warehouse), read_only=True), True) if isinstance(warehouse, (str, Path)) \
        else (warehouse, False)
    try:
        columns = set(con.sql("SELECT table_name, column_name FROM information_schema.columns").fetchall())

        def has(table: str, column: str) -> bool:
            return (table, column) in columns

        feats = [f"""SELECT fixmedins_code, fund_amt_365 AS fund_amt,
                            {'stock_gap_ratio' if has(t, 'stock_gap_ratio') else 'NULL'}::DOUBLE AS stock_gap_ratio,
                            {'dialysis_weeks_over_3_share' if has(t, 'dialysis_weeks_over_3_share') else 'NULL'}::DOUBLE
                                AS dialysis_over_3_share FROM {t}"""
                 for t in ("feat_fixmedins", "feat_pharmacy") if has(t, "fund_amt_365")]
        union = " UNION ALL ".join(feats) or ("SELECT NULL::VARCHAR AS fixmedins_code, NULL::DOUBLE AS fund_amt, "
                                              "NULL::DOUBLE AS stock_gap_ratio, NULL::DOUBLE AS dialysis_over_3_share")
        entities = ", ".join(f"'{e}'" for e in INSTITUTION_HIT_ENTITIES)
        hits = (f"SELECT fixmedins_code, sum(amount_at_risk)::DOUBLE AS billing_rule_amt FROM rule_hits "
                f"WHERE entity_type IN ({entities}) GROUP BY 1") if has("rule_hits", "entity_type") else \
            "SELECT NULL::VARCHAR AS fixmedins_code, NULL::DOUBLE AS billing_rule_amt"
        return con.sql(f"""
            SELECT f.fixmedins_code, coalesce(x.fund_amt, 0)::DOUBLE AS fund_amt,
                   coalesce(h.billing_rule_amt, 0)::DOUBLE AS billing_rule_amt, x.stock_gap_ratio, x.dialysis_over_3_share
            FROM fixmedins f LEFT JOIN ({union}) x USING (fixmedins_code) LEFT JOIN ({hits}) h USING (fixmedins_code)
            WHERE f.fixmedins_type IN ('hospital', 'clinic', 'pharmacy')
            ORDER BY f.fixmedins_code""").df()
    finally:
        if own:
            con.close()


def read_code_list(path: Path) -> list[str]:
    """Institution codes from a file: a CSV with a ``fixmedins_code`` column, or one code a line
    (blank lines and ``#`` comments skipped)."""
    text = Path(path).read_text(encoding="utf-8-sig")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and "fixmedins_code" in lines[0].split(","):
        col = lines[0].split(",").index("fixmedins_code")
        return [ln.split(",")[col].strip() for ln in lines[1:] if len(ln.split(",")) > col]
    return lines


def plan_html(plan: InspectionPlan, *, title: str = "医疗保障基金飞行检查抽查名单") -> str:
    """A self-contained Chinese HTML summary of ``plan`` (published with its seed)."""
    e = html.escape
    s = plan.summary()
    counts = "".join(f"<li>{e(SELECTIONS[k])}: {n} 家</li>" for k, n in s["by_selection"].items())
    head = "".join(f"<th>{e(h)}</th>" for h in ("序号", "机构编码", "机构名称", "类型", "统筹区", "基金用量(元)",
                                              "抽取方式", "抽取理由"))
    body = "".join(
        "<tr>" + "".join(f"<td>{e(str(v))}</td>" for v in (
            r.order, r.fixmedins_code, r.fixmedins_name or "", _TYPE_ZH.get(r.fixmedins_type, r.fixmedins_type),
            r.region, f"{r.fund_amt:,.0f}", r.selection_zh, r.reason_zh)) + "</tr>"
        for r in plan.targets.itertuples(index=False))
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #999;padding:4px 8px;text-align:left}}th{{background:#eee}}</style></head><body>
<h1>{e(title)}</h1>
<p>随机种子 (公开): <b>{plan.seed}</b>; 抽取方式: {e(WEIGHTINGS[plan.config.weighting])};
{e(plan.config.plan_size)}。同一种子、同一名单和同一配置可重现本名单。</p>
<p>共 {s['targets']} 家被检机构; 按除外原则排除近期已检查机构 {s['excluded']} 家。</p>
<ul>{counts}</ul>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<p>依据: 吉医保函〔2024〕37号《2024年省级医疗保障基金飞行检查工作方案》一(二) 被检机构。</p>
</body></html>
"""


# -- private helpers ------------------------------------------------------------------------------


def _prepared(institutions: pd.DataFrame, cfg: InspectionConfig) -> pd.DataFrame:
    missing = {"fixmedins_code", "fixmedins_type", "admdvs", "fund_amt"} - set(institutions.columns)
    if missing:
        raise ValueError(f"institutions lacks columns {sorted(missing)}")
    inst = institutions.copy()
    inst["fixmedins_code"] = inst["fixmedins_code"].astype(str)
    if inst["fixmedins_code"].duplicated().any():
        raise ValueError("institutions has duplicate fixmedins_code values")
    # A fixed order (code) before any ranking or draw, so the input's row order cannot change the plan.
    inst = inst.sort_values("fixmedins_code").set_index("fixmedins_code", drop=False)
    inst["fixmedins_name"] = inst["fixmedins_name"] if "fixmedins_name" in inst else ""
    inst["fund_amt"] = inst["fund_amt"].astype(float).fillna(0.0)
    inst["region"] = inst["admdvs"].astype(str).str[: cfg.region_digits]
    medical = inst["fixmedins_type"].isin(MEDICAL_TYPES)
    group = np.where(medical, "m:" + inst["region"], "p")
    inst["fund_rank"] = (inst.assign(_g=group).groupby("_g")["fund_amt"]
                         .rank(method="first", ascending=False).astype(int))
    inst["_weight"] = _weights(inst, cfg)
    return inst


def _weights(inst: pd.DataFrame, cfg: InspectionConfig) -> np.ndarray:
    if cfg.weighting == "credit":
        if "grade" not in inst:
            raise ValueError("weighting 'credit' needs a grade column (run models.credit.rate_institutions)")
        return inst["grade"].map(dict(cfg.grade_weights)).fillna(1.0).to_numpy(dtype=float)
    if cfg.weighting == "risk":
        if "risk" not in inst:
            raise ValueError("weighting 'risk' needs a risk column (models.inspection.institution_risk)")
        return np.maximum(inst["risk"].astype(float).fillna(0.0).to_numpy(), cfg.risk_weight_floor)
    return np.ones(len(inst))


def _draw(rng: np.random.Generator, pool: pd.DataFrame, k: int, cfg: InspectionConfig) -> list[tuple[str, float]]:
    if k <= 0 or pool.empty:
        return []
    k = min(k, len(pool))
    w = pool["_weight"].to_numpy(dtype=float)
    idx = rng.choice(len(pool), size=k, replace=False, p=w / w.sum())
    return [(pool.index[i], float(w[i])) for i in idx]


def _how(cfg: InspectionConfig) -> str:
    return {"none": "随机", "credit": "按信用等级加权随机", "risk": "按疑点风险指数加权随机"}[cfg.weighting]


def _numeric(frame: pd.DataFrame, column: str) -> pd.Series:
    if column not in frame:
        return pd.Series(0.0, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce").astype(float).fillna(0.0)


def _risk_zh(risk: float, shares) -> str:
    found = [f"{RISK_SIGNALS[name]} {v:.1%}" for name, v in zip(RISK_SIGNALS, shares) if v > 0]
    return f"疑点风险指数 {risk:.2f}: " + ("; ".join(found) if found else "无疑点信号")


def _row(r, selection: str, weight: float, pool_size: int, reason: str) -> dict:
    return {"fixmedins_code": r.fixmedins_code, "fixmedins_name": r.fixmedins_name,
            "fixmedins_type": r.fixmedins_type, "region": r.region, "fund_amt": float(r.fund_amt),
            "fund_rank": int(r.fund_rank), "selection": selection, "selection_zh": SELECTIONS[selection],
            "weight": weight, "pool_size": int(pool_size), "reason_zh": reason}

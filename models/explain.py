"""Reasons in Chinese (风险原因): the top SHAP factors of a score as sentences an investigator reads.

A factor is a reason only when it pushed the score up (positive SHAP) **and** the entity's value is above
its peer group's median: a tree model may raise a score for a value below the median (an interaction, a
split fitted on few cases), but "lower than its peers" is not a cause of suspicion an investigator can
check. Each reason names the value, the median and the size of the difference, e.g.
``该定点零售药店整数金额占比 87.0%，高于同类中位数 12.0%（7.2 倍）``. Values are formatted by what the
column measures: shares as percentages, amounts in 元, counts as whole numbers, z-scores as standard
deviations above the peer mean.

>>> sentence("pharmacy", "round_share", 0.87, 0.12)
'该定点零售药店整数金额占比 87.0%，高于同类中位数 12.0%（7.2 倍）'
>>> sentence("fixmedins", "z_exams_per_visit", 4.2, 0.0)
'该定点医疗机构次均检查数(同组z分数) 高于同组均值 4.2 个标准差，同类中位数 0.0'
>>> is_reason(3.0, 3.0), is_reason(2.0, 3.0), is_reason(4.0, 3.0), is_reason(1.0, None), is_reason(-0.5, -1.0, 'z_x')
(False, False, True, True, False)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from features.catalogue import TABLES, rule_hit_columns
from models.ranking import ENTITY_ZH

__all__ = ["Reason", "GRAPH_ZH", "NOT_CAUSES", "column_zh", "sentence", "is_reason", "peer_medians", "top_reasons"]

GRAPH_ZH = {
    "g_degree": "关系图关联数", "g_weighted_degree": "关系图加权关联数", "g_amount": "关系图涉及金额(元)",
    "g_community_size": "所在社区人数", "g_covisit_degree": "同行就医关联人数", "g_covisit_strength": "同行就医强度",
    "g_betweenness": "关系图中介中心性", "g_organiser_rank": "组织者排名", "g_community_risk": "所在社区风险分",
    "g_ring_patients": "关联团伙人数", "g_in_ring_candidate": "属于疑似团伙",
    # ring level (graph_communities)
    "size": "团伙人数", "n_edges": "同行关系数", "density": "关系密度", "weight": "同行次数",
    "co_purchase_share": "同时购药占比", "n_visits": "就诊次数", "amount": "涉及金额(元)", "synchrony": "同步就医程度",
    "max_turnout": "单日最多到场比例", "amount_concentration": "金额集中度", "top_provider_share": "集中于一家机构的比例",
    "rule_hit_share": "成员规则命中比例", "risk_score": "团伙风险分", "in_ring_candidates": "已列入疑似团伙",
    "co_visit_share": "同日同机构关系占比", "co_counter_share": "同柜台连刷关系占比",
    "burst_count": "同柜台连刷次数", "burst_share": "同时刷卡中连刷占比", "burst_round_share": "连刷整数金额占比",
    "burst_basket_share": "连刷同一药品组合占比", "oversupply_share": "超量购药成员占比",
    "oversupply_fold": "超量倍数(供药天数/覆盖天数)", "resale_shops": "倒卖药品涉及药店数", "broker_share": "中间人陪同购药成员占比",
}


@dataclass(frozen=True)
class Reason:
    """One factor of a score: the sentence and the numbers behind it."""

    feature: str
    text_zh: str
    value: float | None
    peer_value: float | None
    contribution: float

    def to_dict(self) -> dict:
        return asdict(self)


@lru_cache(maxsize=None)
def _catalogue_zh() -> dict[str, str]:
    out = {c.name: c.zh for c in rule_hit_columns()}
    for t in TABLES.values():
        out.update({c.name: c.zh for c in t.columns if c.zh})
    return out


def column_zh(feature: str) -> str:
    """Chinese name of a feature column (the column name itself when none is known)."""
    for prefix, what in (("z_", "同组z分数"), ("pct_", "同组百分位")):
        if feature.startswith(prefix) and feature[len(prefix):] in _catalogue_zh():
            return f"{column_zh(feature[len(prefix):])}({what})"
    return GRAPH_ZH.get(feature) or _catalogue_zh().get(feature) or feature


def sentence(level: str, feature: str, value, peer) -> str:
    """One reason sentence for ``feature`` of an entity at ``level`` (see the module docstring)."""
    who = "该" + ENTITY_ZH.get(level, "对象")
    name = column_zh(feature)
    v, p = _fmt(feature, value), _fmt(feature, peer)
    if feature.startswith("z_") and _num(value) is not None:
        return f"{who}{name} 高于同组均值 {float(value):.1f} 个标准差，同类中位数 {p}"
    x, m = _num(value), _num(peer)
    if x is None or m is None:
        return f"{who}{name} {v}，同类中位数 {p}"
    times = f"（{x / m:.1f} 倍）" if m > 0 and x / m >= 1.05 else ""
    return f"{who}{name} {v}，高于同类中位数 {p}{times}"


# Factors that restate why the entity is a candidate at all, so cannot be a reason for suspecting it: a
# ring clue is a ring candidate ("该团伙已列入疑似团伙 1" says nothing to an investigator).
NOT_CAUSES = frozenset({"in_ring_candidates"})


def is_reason(value, peer, feature: str = "") -> bool:
    """Whether a factor with this value and peer median may be cited as a cause: above the median (when
    both are known; with no median to compare, the model's push stands alone), and for a z-score above the
    group mean as well; never a factor of :data:`NOT_CAUSES`.

    >>> is_reason(3.0, 1.0), is_reason(1.0, 1.0), is_reason(1, 0, "in_ring_candidates")
    (True, False, False)
    """
    if feature in NOT_CAUSES:
        return False
    x, m = _num(value), _num(peer)
    if feature.startswith("z_") and x is not None and x <= 0:
        return False
    return x is None or m is None or x > m


def peer_medians(frame: pd.DataFrame, features: list[str], *, group: str | None = None) -> pd.DataFrame:
    """Median of each feature per peer group (one row ``__all__`` for the whole level)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns have no median
        return _medians(frame, features, group)


def _medians(frame: pd.DataFrame, features: list[str], group: str | None) -> pd.DataFrame:
    overall = frame[features].median(numeric_only=True).to_frame("__all__").T
    if group and group in frame.columns:
        per = frame.groupby(group)[features].median(numeric_only=True)
        return pd.concat([per, overall])
    return overall


def top_reasons(level: str, contributions: pd.DataFrame, values: pd.DataFrame, medians: pd.DataFrame, *,
                groups: pd.Series | None = None, n: int = 3) -> list[list[Reason]]:
    """The ``n`` factors that raised each row's score most (positive SHAP only), as :class:`Reason` lists.

    ``contributions`` and ``values`` are aligned (rows × features); ``groups`` gives each row's peer group
    (a row of ``medians``), else the level's overall median is used."""
    out: list[list[Reason]] = []
    cols = list(contributions.columns)
    contrib = contributions.to_numpy(dtype=float)
    value_col = {c: k for k, c in enumerate(values.columns)}
    vals = values.to_numpy(dtype=object)
    median_col = {c: k for k, c in enumerate(medians.columns)}
    median_row = {g: k for k, g in enumerate(medians.index)}
    med = medians.to_numpy(dtype=object)
    for i in range(len(contributions)):
        order = np.argsort(-contrib[i], kind="mergesort")
        g = groups.iloc[i] if groups is not None and groups.iloc[i] in median_row else "__all__"
        row = []
        for j in order:
            if contrib[i, j] <= 0 or len(row) == n:
                break
            f = cols[j]
            v = vals[i, value_col[f]]
            p = med[median_row[g], median_col[f]] if f in median_col else None
            if not is_reason(v, p, f):  # pushed the score up, but at or below its peers: not a cause to cite
                continue
            row.append(Reason(f, sentence(level, f, v, p), _num(v), _num(p), round(float(contrib[i, j]), 4)))
        out.append(row)
    return out


def _num(x) -> float | None:
    if x is None or pd.isna(x):
        return None
    return round(float(x), 4)


def _fmt(feature: str, x) -> str:
    if x is None or pd.isna(x):
        return "无"
    x = float(x)
    if feature.startswith("z_"):
        return f"{x:.1f}"
    if feature.endswith(("_share", "_ratio")) or feature.startswith("pct_") or feature in (
            "density", "synchrony", "max_turnout", "amount_concentration"):
        return f"{x * 100:.1f}%"
    if "amt" in feature or "amount" in feature or feature.endswith("_fee"):
        return f"{x:,.2f} 元"
    if float(x).is_integer():
        return f"{int(x):,}"
    return f"{x:,.2f}"

"""What kind of ring a community is (团伙类型), from the evidence of its members' claims.

Three typologies link persons, and each leaves its own trace (docs/graph.md, "Typing"):

``drug_resale`` (倒卖医保药品)
    the members are oversupplied with the same high-value drug (``features.graph.projection.drug_oversupply``),
    bought at the same few pharmacies, and one member — the broker (中间人) — buys alongside the others,
    at the same shop on the same day. Columns: ``resale_drug`` (the drug most members are oversupplied
    with), ``oversupply_share`` (share of members oversupplied with it), ``oversupply_fold`` (their median
    supply ratio), ``resale_shops`` (pharmacies where members bought it), ``broker`` and ``broker_share``
    (share of the other members the broker bought the drug with, same shop, same day).
``phantom_purchase`` (虚假购药/空刷, the card pool)
    the members' cards are swiped at one counter one after the other, minutes apart: *bursts* of
    ``min_burst`` or more member cards with no gap longer than ``window_minutes``; the swipes of a burst
    are for round sums and the same basket. Columns: ``top_counter`` (the pharmacy of most burst
    swipes), ``burst_count``, ``burst_share`` (of the member swipes that had another member's card within
    the window, the share in bursts: a family at the counter makes pairs and triples, not bursts),
    ``burst_round_share`` (burst swipes for a multiple of ``round_unit`` yuan), ``burst_basket_share`` (burst
    swipes with the burst's most common basket).
``collusive_ring`` (结伙就医)
    the members visit the same institutions on the same days (``max_turnout``, ``synchrony`` of
    ``features.graph.stats``).

:func:`ring_type` decides from the layer that made the community (``features.graph.communities.
layered_communities``) confirmed by that layer's evidence; a community whose evidence does not confirm
its layer is typed ``collusive_ring`` (persons who turn up together), and ``type_basis`` says why in
words.

>>> import pandas as pd
>>> t = pd.Timestamp("2024-05-01")
>>> v = pd.DataFrame({"psn_no": list("ABCDEF"), "hub_type": "pharmacy", "hub_id": "S1", "visit_date": t,
...                   "visit_sec": [72000 + 120 * i for i in range(6)], "amount": 200.0, "basket": 7})
>>> ev = counter_evidence(v, {p: "C1" for p in "ABCDEF"})
>>> ev[["community_id", "top_counter", "burst_count", "burst_share", "burst_round_share"]].values.tolist()
[['C1', 'S1', 1, 1.0, 1.0]]
>>> ring_type(layer="co_counter", burst_share=1.0, burst_round_share=1.0, burst_basket_share=1.0)[0]
'phantom_purchase'
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["RING_TYPES", "counter_evidence", "resale_evidence", "ring_type", "type_communities"]

RING_TYPES = ("drug_resale", "collusive_ring", "phantom_purchase")

_COUNTER_COLUMNS = ["community_id", "top_counter", "burst_count", "burst_share", "burst_round_share",
                    "burst_basket_share"]
_RESALE_COLUMNS = ["community_id", "resale_drug", "oversupply_share", "oversupply_fold", "resale_shops",
                   "broker", "broker_share"]


def counter_evidence(
    visits: pd.DataFrame,
    ids: dict,
    *,
    window_minutes: float = 10.0,
    min_burst: int = 5,
    round_unit: float = 50.0,
) -> pd.DataFrame:
    """Bursts of member cards at one counter, per community (see the module docstring).

    ``visits`` is the table of ``features.graph.edges.read_visits`` (pharmacy rows with a time of day are
    used); ``ids`` maps each person to its community. One row per community with pharmacy swipes.

    >>> import pandas as pd
    >>> t = pd.Timestamp("2024-05-01")
    >>> fam = pd.DataFrame({"psn_no": list("ABC"), "hub_type": "pharmacy", "hub_id": "S1", "visit_date": t,
    ...                     "visit_sec": [36000, 36060, 36100], "amount": [12.5, 30.0, 8.0], "basket": [1, 2, 1]})
    >>> r = counter_evidence(fam, dict.fromkeys("ABC", "C2")).iloc[0]
    >>> int(r["burst_count"]), float(r["burst_share"])
    (0, 0.0)
    """
    if not ids or "visit_sec" not in visits.columns:
        return pd.DataFrame(columns=_COUNTER_COLUMNS)
    v = visits.loc[(visits["hub_type"] == "pharmacy") & (visits["visit_sec"] >= 0)
                   & visits["psn_no"].isin(ids.keys()),
                   ["psn_no", "hub_id", "visit_date", "visit_sec", "amount", "basket"]]
    if len(v) == 0:
        return pd.DataFrame(columns=_COUNTER_COLUMNS)
    v = v.assign(community_id=v["psn_no"].map(ids)).sort_values(
        ["community_id", "hub_id", "visit_date", "visit_sec"], kind="mergesort")
    key = ["community_id", "hub_id", "visit_date"]
    w = window_minutes * 60
    new = (v[key].ne(v[key].shift()).any(axis=1)) | (v["visit_sec"].diff() > w)
    v["chain"] = new.cumsum()
    cards = v.groupby("chain")["psn_no"].transform("nunique")
    v["together"] = cards >= 2
    v["burst"] = cards >= min_burst
    v["round"] = (v["amount"] > 0) & np.isclose(np.mod(v["amount"].astype(float), round_unit), 0.0)
    modal = v[v["burst"]].groupby("chain")["basket"].agg(lambda s: s.value_counts().index[0])
    v["same_basket"] = v["burst"] & (v["basket"] == v["chain"].map(modal))
    b = v[v["burst"]]
    g = v.groupby("community_id")
    out = pd.DataFrame({
        "burst_count": b.groupby("community_id")["chain"].nunique(),
        "burst_share": g["burst"].sum() / g["together"].sum().where(lambda s: s > 0),
        "burst_round_share": b.groupby("community_id")["round"].mean(),
        "burst_basket_share": b.groupby("community_id")["same_basket"].mean(),
        "top_counter": b.groupby("community_id")["hub_id"].agg(lambda s: s.value_counts().index[0]),
    }, index=g.size().index)
    out["burst_count"] = out["burst_count"].fillna(0).astype("int64")
    for c in ("burst_share", "burst_round_share", "burst_basket_share"):
        out[c] = out[c].fillna(0.0).astype(float)
    return out.rename_axis("community_id").reset_index()[_COUNTER_COLUMNS]


def resale_evidence(purchases: pd.DataFrame, oversupply: pd.DataFrame, ids: dict) -> pd.DataFrame:
    """The drug, the oversupply and the broker of each community (see the module docstring).

    ``purchases`` is the table of ``features.graph.edges.read_drug_purchases``, ``oversupply`` the output
    of ``features.graph.projection.drug_oversupply`` on it; ``ids`` maps each person to its community.
    One row per community with an oversupplied member.

    >>> import pandas as pd
    >>> days = pd.to_datetime(["2024-01-05", "2024-02-05", "2024-03-05"])
    >>> p = pd.DataFrame([(x, "S1", d, "INS") for x in "ABC" for d in days] + [("B", "S2", days[0], "INS")],
    ...                  columns=["psn_no", "hub_id", "visit_date", "drug"])
    >>> o = pd.DataFrame({"psn_no": list("ABC"), "drug": "INS", "oversupply": [3.0, 4.0, 0.9],
    ...                   "suspect": [True, True, False]})
    >>> r = resale_evidence(p, o, dict.fromkeys("ABC", "C1")).iloc[0]
    >>> (r["resale_drug"], round(float(r["oversupply_share"]), 2), int(r["resale_shops"]), r["broker"],
    ...  float(r["broker_share"]))
    ('INS', 0.67, 2, 'A', 1.0)
    """
    if not ids or len(oversupply) == 0:
        return pd.DataFrame(columns=_RESALE_COLUMNS)
    size = pd.Series(ids).value_counts()
    sus = oversupply[oversupply["suspect"] & oversupply["psn_no"].isin(ids.keys())]
    if len(sus) == 0:
        return pd.DataFrame(columns=_RESALE_COLUMNS)
    sus = sus.assign(community_id=sus["psn_no"].map(ids))
    per_drug = sus.groupby(["community_id", "drug"]).agg(n=("psn_no", "nunique"), ratio=("oversupply", "median"))
    per_drug = per_drug.reset_index().sort_values(["community_id", "n", "drug"], ascending=[True, False, True])
    top = per_drug.groupby("community_id").head(1).set_index("community_id")
    out = pd.DataFrame({"resale_drug": top["drug"], "oversupply_share": top["n"] / size.reindex(top.index),
                        "oversupply_fold": top["ratio"]})
    p = purchases[purchases["psn_no"].isin(ids.keys())]
    p = p.assign(community_id=p["psn_no"].map(ids))
    p = p[p["drug"].to_numpy() == p["community_id"].map(out["resale_drug"]).to_numpy()]
    out["resale_shops"] = p.groupby("community_id")["hub_id"].nunique().reindex(out.index).fillna(0).astype("int64")
    # the broker: the member who bought the drug with most other members, same shop, same day
    day = p[["community_id", "hub_id", "visit_date", "psn_no"]].drop_duplicates()
    both = day.merge(day, on=["community_id", "hub_id", "visit_date"])
    both = both[both["psn_no_x"] != both["psn_no_y"]]
    partners = both.groupby(["community_id", "psn_no_x"])["psn_no_y"].nunique().reset_index(name="k")
    partners = partners.sort_values(["community_id", "k", "psn_no_x"], ascending=[True, False, True])
    best = partners.groupby("community_id").head(1).set_index("community_id")
    out["broker"] = best["psn_no_x"].reindex(out.index)
    out["broker_share"] = (best["k"] / (size - 1).clip(lower=1).reindex(best.index)).reindex(out.index).fillna(0.0)
    return out.rename_axis("community_id").reset_index()[_RESALE_COLUMNS]


def ring_type(
    *,
    layer: str | None,
    oversupply_share: float = 0.0,
    burst_share: float = 0.0,
    burst_round_share: float = 0.0,
    burst_basket_share: float = 0.0,
    min_share: float = 0.5,
) -> tuple[str, str]:
    """The type of a community and the evidence for it, as ``(type, basis)``.

    A co-purchase community is ``drug_resale`` when ``min_share`` of its members are oversupplied with its
    drug; a same-counter community is ``phantom_purchase`` when ``min_share`` of its members' swipes
    together are bursts and either their amounts are round or their baskets the same (``min_share`` of
    the burst swipes); everything else is ``collusive_ring``: persons who turn up together.

    >>> ring_type(layer="co_purchase", oversupply_share=0.9)
    ('drug_resale', 'co_purchase')
    >>> ring_type(layer="co_counter", burst_share=0.2)  # a family at the counter
    ('collusive_ring', 'co_counter')
    >>> ring_type(layer="co_counter", burst_share=0.9)  # bursts, but honest amounts and baskets
    ('collusive_ring', 'co_counter')
    >>> ring_type(layer="co_visit")
    ('collusive_ring', 'co_visit')
    """
    if layer == "co_purchase" and oversupply_share >= min_share:
        return "drug_resale", layer
    if layer == "co_counter" and burst_share >= min_share and max(burst_round_share, burst_basket_share) >= min_share:
        return "phantom_purchase", layer
    return "collusive_ring", layer or ""


def type_communities(stats: pd.DataFrame, *, min_share: float = 0.5) -> pd.DataFrame:
    """``ring_type`` and ``type_basis`` (the evidence in words, 中文) for each row of a community table
    that has the columns of :func:`counter_evidence`, :func:`resale_evidence` and ``layer``.

    >>> import pandas as pd
    >>> st = pd.DataFrame({"layer": ["co_purchase"], "oversupply_share": [1.0], "resale_drug": ["INS"],
    ...                    "oversupply_fold": [3.5], "resale_shops": [4], "broker": ["B"], "broker_share": [0.8],
    ...                    "size": [6]})
    >>> type_communities(st)[["ring_type", "type_basis"]].values.tolist()
    [['drug_resale', '6人中6人超量购买同一药品INS(供药天数为覆盖天数的3.5倍), 4家药店; 疑似中间人B与80%的成员同日同店购药']]
    """
    out = stats.copy()
    for c, default in (("oversupply_share", 0.0), ("burst_share", 0.0), ("burst_round_share", 0.0),
                       ("burst_basket_share", 0.0)):
        if c not in out.columns:
            out[c] = default
        out[c] = out[c].astype(float).fillna(default)
    types = [ring_type(layer=r.layer, oversupply_share=r.oversupply_share, burst_share=r.burst_share,
                       burst_round_share=r.burst_round_share, burst_basket_share=r.burst_basket_share,
                       min_share=min_share)[0]
             for r in out.itertuples(index=False)]
    out["ring_type"] = types
    out["type_basis"] = [_basis(t, r) for t, r in zip(types, out.to_dict("records"))]
    return out


# -- private helpers ------------------------------------------------------------------------------


def _basis(kind: str, r: dict) -> str:
    if kind == "drug_resale":
        n = int(round(r["oversupply_share"] * r["size"]))
        s = (f"{r['size']}人中{n}人超量购买同一药品{r['resale_drug']}(供药天数为覆盖天数的{r['oversupply_fold']:.1f}倍), "
             f"{int(r['resale_shops'])}家药店")
        if r.get("broker") and r.get("broker_share", 0) > 0:
            s += f"; 疑似中间人{r['broker']}与{r['broker_share']:.0%}的成员同日同店购药"
        return s
    if kind == "phantom_purchase":
        return (f"药店{r['top_counter']}同一柜台数分钟内连续刷多张卡{int(r['burst_count'])}次, 成员同时刷卡中"
                f"{r['burst_share']:.0%}属连刷; 整数金额{r['burst_round_share']:.0%}, 同一药品组合{r['burst_basket_share']:.0%}")
    layer = r.get("layer")
    if layer == "co_counter":
        return f"同一药店数分钟内先后购药(连刷占{r['burst_share']:.0%}, 不足以认定空刷)"
    if layer == "co_purchase":
        return "共用药店购买同一药品"
    turnout = r.get("max_turnout")
    return f"同日同机构就诊(单日最多到场{turnout:.0%})" if turnout is not None and turnout == turnout else "同日同机构就诊"

"""What each community looks like (社区画像), who likely organises it, and which communities are ring
candidates (疑似团伙).

Per community (``community_stats``): ``layer`` (the layer of ties that made it, see
``features.graph.communities.layered_communities``), ``ring_type`` and ``type_basis`` (its typology from
the evidence, ``features.graph.evidence``, with the evidence columns), ``size``, ``n_edges``, ``density``
of the projection inside it, ``synchrony`` (share of the members' visits and purchases at which another
member was at the same hub on the same day), ``max_turnout`` (the largest share of members seen at one hub
on one day), ``co_visit_share``, ``co_counter_share`` and ``co_purchase_share`` (share of its edges with a
tie in that layer), ``amount`` (the members' medical fees), ``fund_amount`` (what the fund paid for them: a
ring's 涉及金额 basis) and ``amount_concentration`` (Herfindahl
index of the members' spending over institutions and pharmacies: 1 = all at one place), ``top_provider``,
``rule_hit_share`` (share of members with a rule hit; null when the rule engine has not run), the likely
``organisers`` and a ``risk_score`` in [0, 1].

Likely organisers (组织者) are the members that bridge the group: highest betweenness inside the community,
then highest weighted degree (strength).

>>> import networkx as nx, pandas as pd
>>> g = nx.Graph()
>>> g.add_weighted_edges_from([("A", "B", 5), ("A", "C", 5), ("A", "D", 5), ("B", "C", 1)])
>>> v = pd.DataFrame({"psn_no": list("ABCD"), "hub_type": "fixmedins", "hub_id": "H1", "fixmedins_code": "H1",
...                   "visit_date": pd.Timestamp("2024-01-01"), "amount": 10.0})
>>> st = community_stats(g, [frozenset("ABCD")], v)
>>> st.loc[0, ["community_id", "size", "n_edges", "organisers"]].astype(str).tolist()
['C000001', '4', '4', 'A,B,C']
>>> float(st.loc[0, "synchrony"]), float(st.loc[0, "amount_concentration"])
(1.0, 1.0)
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd

from features.contract import FRAUD_TYPES
from features.graph.evidence import counter_evidence, resale_evidence, type_communities

__all__ = ["community_ids", "community_stats", "membership", "block_membership", "MEMBERSHIP_SCHEMA",
           "ring_candidates", "component_betweenness", "ordered_subgraph", "RISK_WEIGHTS"]

# How the risk score weighs the community's traits (a weighted mean; rule hits count only when known).
RISK_WEIGHTS = {"size": 0.25, "density": 0.15, "together": 0.3, "amount_concentration": 0.15, "rule_hit_share": 0.15}


def community_ids(communities: list[frozenset]) -> dict:
    """Node → ``C000001``-style id, numbered in the given order (largest first from ``detect_communities``)."""
    return {n: f"C{i + 1:06d}" for i, c in enumerate(communities) for n in c}


def community_stats(
    g: nx.Graph,
    communities: list[frozenset],
    visits: pd.DataFrame,
    *,
    rule_hit_persons: set | None = None,
    layer_of: dict | None = None,
    purchases: pd.DataFrame | None = None,
    oversupply: pd.DataFrame | None = None,
    window_minutes: float = 10.0,
    min_burst: int = 5,
    n_organisers: int = 3,
    min_size: int = 2,
) -> pd.DataFrame:
    """One row per community of ``min_size`` or more members (see the module docstring for the columns).

    ``visits`` is the table of ``features.graph.edges.read_visits``; ``rule_hit_persons`` the persons with a
    rule hit, or None when the rule engine has not run (then ``rule_hit_share`` is null and the risk
    score leaves it out). ``layer_of`` maps each community (frozenset) to the layer that made it (from
    ``layered_communities``; without it every community counts as a co-visit one); ``purchases`` and
    ``oversupply`` (``read_drug_purchases``, ``drug_oversupply``) give the resale evidence;
    ``window_minutes`` and ``min_burst`` define a burst at the counter (``features.graph.evidence``).

    >>> import networkx as nx, pandas as pd
    >>> community_stats(nx.Graph(), [], pd.DataFrame(columns=["psn_no"])).shape[0]
    0
    """
    ids = community_ids(communities)
    keep = [c for c in communities if len(c) >= min_size]
    rows = []
    for c in keep:
        sub = ordered_subgraph(g, c)
        n, m = len(c), sub.number_of_edges()
        ranked = _organiser_order(sub)
        layers = [d.get("layers", "") for _, _, d in sub.edges(data=True)]
        share = {f"{x}_share": float(np.mean([x in y for y in layers])) if layers else 0.0
                 for x in ("co_visit", "co_counter", "co_purchase")}
        rows.append({
            "community_id": ids[next(iter(c))],
            "layer": (layer_of or {}).get(c, "co_visit"),
            "size": n,
            "n_edges": m,
            "density": 2 * m / (n * (n - 1)) if n > 1 else 0.0,
            "weight": float(sum(d.get("weight", 1.0) for _, _, d in sub.edges(data=True))),
            **share,
            "organisers": ",".join(map(str, ranked)),
        })
    cols = ["community_id", "layer", "size", "n_edges", "density", "weight", "co_visit_share", "co_counter_share",
            "co_purchase_share", "organisers"]
    out = pd.DataFrame(rows, columns=cols)
    listed = set(out["community_id"])  # once: built per node it took 13 s of a city's graph
    kept = {k: v for k, v in ids.items() if v in listed}
    out = out.merge(_visit_stats(visits, kept), on="community_id", how="left")
    out = out.merge(counter_evidence(visits, kept, window_minutes=window_minutes, min_burst=min_burst),
                    on="community_id", how="left")
    if purchases is not None and oversupply is not None:
        out = out.merge(resale_evidence(purchases, oversupply, kept), on="community_id", how="left")
    out = _fill_evidence(out)
    out = type_communities(out)
    # A resale ring's broker, who bought alongside the buyers, is its organiser whatever the ties say.
    rank = {r.community_id: r.organisers.split(",") for r in out.itertuples(index=False)}
    for r in out[(out["ring_type"] == "drug_resale") & (out["broker_share"] > 0)].itertuples(index=False):
        rank[r.community_id] = [r.broker] + [x for x in rank[r.community_id] if x != r.broker]
    out["organisers"] = out["community_id"].map(lambda c: ",".join(rank[c][:n_organisers]))
    if rule_hit_persons is None:
        out["rule_hit_share"] = np.nan
    else:
        hit = pd.Series({n: n in rule_hit_persons for n in ids})
        share = hit.groupby(pd.Series(ids)).mean()
        out["rule_hit_share"] = out["community_id"].map(share).astype(float)
    out["risk_score"] = _risk(out)
    return out


def membership(g: nx.Graph, communities: list[frozenset], *, seed: int = 0, k: int = 500,
               leaders: dict | None = None, ids: dict | None = None) -> pd.DataFrame:
    """One row per person in the projection: ``node_type='psn', node_id, community_id, community_size,
    covisit_degree, covisit_strength, betweenness, organiser_rank``.

    ``betweenness`` is taken in the person's connected component of the projection; ``organiser_rank``
    (1 = the likeliest organiser) orders the members of a community as its ``organisers`` do: by
    betweenness *inside* the community, then by strength inside it (a member's ties to a family outside
    make it a bridge of the component, not the group's organiser). ``leaders`` maps a community id to a
    member put first (a resale ring's broker, ``features.graph.evidence``). ``ids``: each person's community
    id, when ``communities`` are some of them only (:func:`block_membership`).

    >>> import networkx as nx
    >>> g = nx.path_graph(["A", "B", "C"])
    >>> membership(g, [frozenset("ABC")])[["node_id", "organiser_rank"]].values.tolist()
    [['A', 2], ['B', 1], ['C', 3]]
    """
    ids = ids if ids is not None else community_ids(communities)
    bet = component_betweenness(g, seed=seed, k=k)
    size = {n: len(c) for c in communities for n in c}
    df = pd.DataFrame({"node_id": list(g.nodes)})
    df.insert(0, "node_type", "psn")
    df["community_id"] = df["node_id"].map(ids)
    df["community_size"] = df["node_id"].map(size).astype("int64")
    df["covisit_degree"] = df["node_id"].map(dict(g.degree())).astype("int64")
    df["covisit_strength"] = df["node_id"].map(dict(g.degree(weight="weight"))).astype(float)
    df["betweenness"] = df["node_id"].map(bet).fillna(0.0)
    lead = dict(leaders or {})
    rank = {}
    for c in communities:
        order = _organiser_order(ordered_subgraph(g, c))
        first = lead.get(ids[next(iter(c))])
        if first in c:
            order = [first] + [x for x in order if x != first]
        rank.update({n: i + 1 for i, n in enumerate(order)})
    df["organiser_rank"] = df["node_id"].map(rank).astype("int64")
    return df.sort_values("node_id").reset_index(drop=True)


# graph_membership's columns as :func:`block_membership` maps them over the blocks.
MEMBERSHIP_SCHEMA = ("node_type string, node_id string, community_id string, community_size long, "
                     "covisit_degree long, covisit_strength double, betweenness double, organiser_rank long")


def block_membership(g: nx.Graph, pairs: pd.DataFrame, communities: list[frozenset], *, seed: int = 0,
                     k: int = 500, leaders: dict | None = None, map_blocks=None) -> pd.DataFrame:
    """:func:`membership` worked out block by block (``features.graph.communities.block_frame``: whole
    connected components, the unit of the betweenness; every community inside one), each block from its own
    rows of ``pairs`` — with ``map_blocks`` on Spark's executors — and the same table to the bit as
    :func:`membership` of the whole projection: a person's degree, strength and betweenness read only its
    component, whose ties come in the same order.

    >>> import pandas as pd
    >>> from features.graph.projection import co_visit_graph
    >>> pairs = pd.DataFrame({"psn_a": ["A", "B", "X"], "psn_b": ["B", "C", "Y"], "layer": "co_visit",
    ...                       "shared_days": 3, "shared_events": 3, "shared_shops": 1, "expected": 0.1,
    ...                       "lift": 30.0, "surprise": 5.0})
    >>> g = co_visit_graph(None, pairs=pairs)
    >>> parts = [frozenset("ABC"), frozenset("XY")]
    >>> block_membership(g, pairs, parts).equals(membership(g, parts))
    True
    """
    from features.graph.communities import block_frame, block_graph, map_here, schema_columns

    if len(pairs) == 0:
        return membership(g, communities, seed=seed, k=k, leaders=leaders)
    ids = community_ids(communities)
    frame = block_frame(g, pairs)
    frame = frame.assign(_community_a=frame["psn_a"].map(ids), _community_b=frame["psn_b"].map(ids))
    lead = dict(leaders or {})
    columns = schema_columns(MEMBERSHIP_SCHEMA)

    def rows_of(rows: pd.DataFrame) -> pd.DataFrame:
        own = dict(zip(rows["psn_a"], rows["_community_a"])) | dict(zip(rows["psn_b"], rows["_community_b"]))
        groups: dict[str, set] = {}
        for person, cid in own.items():
            groups.setdefault(cid, set()).add(person)
        return membership(block_graph(rows), [frozenset(m) for m in groups.values()], seed=seed, k=k,
                          leaders=lead, ids=own)[columns]

    found = (map_blocks or map_here)(frame, rows_of, MEMBERSHIP_SCHEMA)
    found = found.astype({"community_size": "int64", "covisit_degree": "int64", "organiser_rank": "int64",
                          "covisit_strength": float, "betweenness": float})
    return found.sort_values("node_id").reset_index(drop=True)


def ring_candidates(stats: pd.DataFrame, *, min_size: int = 5, min_risk: float = 0.5) -> pd.DataFrame:
    """Communities of ``min_size`` or more members with a risk score of ``min_risk`` or more, riskiest first,
    with a ``reason`` in words (中文).

    The default size of five leaves out families: households (家庭) visit together too and hold at most a
    few persons; lower ``min_size`` to see them.

    >>> import pandas as pd
    >>> st = pd.DataFrame({"community_id": ["C1", "C2"], "size": [8, 3], "risk_score": [0.8, 0.9],
    ...                    "max_turnout": [0.9, 1.0], "co_purchase_share": [0.0, 0.0], "density": [1.0, 1.0],
    ...                    "amount_concentration": [0.5, 0.5], "top_provider": ["H1", "H2"]})
    >>> ring_candidates(st)["community_id"].tolist()
    ['C1']
    """
    c = stats[(stats["size"] >= min_size) & (stats["risk_score"] >= min_risk)].copy()
    c = c.sort_values(["risk_score", "size", "community_id"], ascending=[False, False, True]).reset_index(drop=True)
    c.insert(0, "rank", np.arange(1, len(c) + 1))
    c["reason"] = [_reason(r) for r in c.itertuples(index=False)]
    return c


def component_betweenness(g: nx.Graph, *, seed: int = 0, k: int = 500) -> dict:
    """Betweenness centrality (中介中心性) computed per connected component: exact in components of at
    most ``k`` nodes, estimated from ``k`` seeded sample sources in larger ones. Unweighted: a bridge is
    a bridge however strong its ties.

    >>> import networkx as nx
    >>> component_betweenness(nx.path_graph(3))
    {0: 0.0, 1: 1.0, 2: 0.0}
    """
    out: dict = {}
    for comp in nx.connected_components(g):
        sub = ordered_subgraph(g, comp)
        if len(comp) <= 2:
            out.update(dict.fromkeys(comp, 0.0))
        elif len(comp) <= k:
            out.update(nx.betweenness_centrality(sub))
        else:
            out.update(nx.betweenness_centrality(sub, k=k, seed=seed))
    return {n: out[n] for n in g.nodes}


def ordered_subgraph(g: nx.Graph, nodes) -> nx.Graph:
    """The subgraph of ``g`` induced by ``nodes``, as a new graph whose nodes come in sorted order.

    ``g.subgraph(a_set)`` iterates a small set's nodes in the set's order, which follows the strings'
    hashes and so changes from process to process: betweenness then sampled other sources and sums
    came out in other orders (59 persons' betweenness differed between two builds of the same warehouse).

    >>> g = nx.Graph([("b", "c", {"weight": 2.0}), ("a", "b", {"weight": 1.0}), ("c", "x", {})])
    >>> h = ordered_subgraph(g, {"c", "a", "b"})
    >>> list(h.nodes), h["a"]["b"]["weight"], h.number_of_edges()
    (['a', 'b', 'c'], 1.0, 2)
    """
    keep = sorted(nodes, key=str)
    inside = set(keep)
    sub = nx.Graph()
    sub.add_nodes_from((n, g.nodes[n]) for n in keep)
    sub.add_edges_from((u, v, d) for u in keep for v, d in g[u].items() if v in inside)
    return sub


# -- private helpers ------------------------------------------------------------------------------


def _organiser_order(sub: nx.Graph) -> list:
    """The members of one community, likeliest organiser first: betweenness inside it, then strength."""
    bet = component_betweenness(sub, seed=0)
    strength = dict(sub.degree(weight="weight"))
    return sorted(sub.nodes, key=lambda x: (-round(bet.get(x, 0.0), 12), -strength.get(x, 0.0), str(x)))


def _visit_stats(visits: pd.DataFrame, ids: dict) -> pd.DataFrame:
    cols = ["community_id", "n_visits", "amount", "fund_amount", "synchrony", "max_turnout", "amount_concentration",
            "top_provider", "top_provider_share"]
    if not ids or len(visits) == 0:
        return pd.DataFrame(columns=cols)
    v = visits[visits["psn_no"].isin(ids.keys())]
    v = v.assign(community_id=v["psn_no"].map(ids), amount=v["amount"].astype(float),
                 fund_amount=v["fund_amount"].astype(float) if "fund_amount" in v else np.nan)
    size = pd.Series(ids).value_counts()
    # synchrony: visits at a hub-day where another member was too
    present = v.groupby(["community_id", "hub_id", "visit_date"])["psn_no"].transform("nunique")
    sync = (present >= 2).groupby(v["community_id"]).mean()
    turnout = (v.groupby(["community_id", "hub_id", "visit_date"])["psn_no"].nunique()
               .groupby("community_id").max() / size)
    by_prov = v.groupby(["community_id", "fixmedins_code"])["amount"].sum().clip(lower=0)
    total = by_prov.groupby("community_id").sum()
    share = by_prov / by_prov.index.get_level_values(0).map(total).to_numpy()
    hhi = (share ** 2).groupby("community_id").sum()
    top = share.groupby("community_id").idxmax().map(lambda t: t[1] if isinstance(t, tuple) else None)
    out = pd.DataFrame({
        "n_visits": v.groupby("community_id").size(),
        "amount": v.groupby("community_id")["amount"].sum(),
        "fund_amount": v.groupby("community_id")["fund_amount"].sum(min_count=1),
        "synchrony": sync,
        "max_turnout": turnout,
        "amount_concentration": hhi,
        "top_provider": top,
        "top_provider_share": share.groupby("community_id").max(),
    }).rename_axis("community_id").reset_index()
    return out[cols]


def _fill_evidence(st: pd.DataFrame) -> pd.DataFrame:
    st = st.copy()
    for c in ("burst_share", "burst_round_share", "burst_basket_share", "oversupply_share", "oversupply_fold",
              "broker_share"):
        st[c] = st[c].astype(float).fillna(0.0) if c in st.columns else 0.0
    for c in ("burst_count", "resale_shops"):
        st[c] = pd.to_numeric(st[c]).fillna(0).astype("int64") if c in st.columns else 0
    for c in ("top_counter", "resale_drug", "broker"):
        if c not in st.columns:
            st[c] = None
        st[c] = st[c].astype(object).where(st[c].notna(), None)
    return st


def _risk(st: pd.DataFrame) -> pd.Series:
    if len(st) == 0:
        return pd.Series([], dtype=float)
    parts = {
        "size": ((st["size"] - 2) / 6).clip(0, 1),
        "density": st["density"].fillna(0),
        "together": np.maximum.reduce([st["max_turnout"].fillna(0).to_numpy(dtype=float),
                                       st["co_purchase_share"].fillna(0).to_numpy(dtype=float),
                                       st["burst_share"].fillna(0).to_numpy(dtype=float)]),
        "amount_concentration": st["amount_concentration"].fillna(0),
    }
    weights = {k: RISK_WEIGHTS[k] for k in parts}
    score = sum(weights[k] * parts[k] for k in parts)
    total = pd.Series(sum(weights.values()), index=st.index)
    known = st["rule_hit_share"].notna()
    score = score + RISK_WEIGHTS["rule_hit_share"] * st["rule_hit_share"].fillna(0)
    total = total + RISK_WEIGHTS["rule_hit_share"] * known
    return (score / total).round(4)


def _reason(r) -> str:
    kind = getattr(r, "ring_type", None)
    bits = []
    if kind in FRAUD_TYPES:
        plain = kind == "collusive_ring" and getattr(r, "layer", "co_visit") == "co_visit"
        bits.append(FRAUD_TYPES[kind][0] + ("" if plain else f"({r.type_basis})"))
    bits.append(f"{r.size}人社区")
    if r.max_turnout >= 0.5:
        bits.append(f"同日同机构最多到场{r.max_turnout:.0%}")
    if r.co_purchase_share > 0:
        bits.append(f"共用药店关系占{r.co_purchase_share:.0%}")
    bits.append(f"内部连边密度{r.density:.2f}")
    if r.top_provider is not None and r.amount_concentration >= 0.3:
        bits.append(f"费用集中于{r.top_provider}")
    return "; ".join(bits)

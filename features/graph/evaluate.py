"""How well the communities recover known rings, with the right type (``yibao graph eval``).

For each positive ring in ``labels`` (``entity_type='ring'``, ``label=1``: collusive_ring 结伙就医,
drug_resale 倒卖医保药品; members are the ``psn`` rows with its ``ring_id``, organiser included), the
best-matching community is the one with the highest Jaccard index |ring ∩ community| / |ring ∪ community|.
A ring is *matched* at Jaccard ≥ 0.5 and *recovered* when, besides, its best community has the ring's type
(``graph_communities.ring_type``, ``features.graph.evidence``). The clean look-alikes (households of 3+,
``label=0`` rings) count as *false rings* when a ring candidate matches one at Jaccard ≥ 0.5. The organiser
is *found* when the ring's organiser is among the likely organisers of its best community.

Card pools (空刷, ``phantom_purchase``) are labelled per settlement and per pharmacy, not as rings: a pool is
the cards with two or more labelled phantom swipes at one labelled pharmacy (a card swiped once cannot be
told from chance by any tie), and it is recovered when its best community matches it at Jaccard ≥ 0.5 and
is typed ``phantom_purchase``. Pools are reported apart from the rings.

>>> rings = pd.DataFrame({"ring_id": ["R1", "R1", "R1", "F1", "F1", "F1"], "label": [1, 1, 1, 0, 0, 0],
...                       "fraud_type": "collusive_ring", "psn_no": list("ABCXYZ"),
...                       "role": ["organiser", "member", "member", "member", "member", "member"]})
>>> members = pd.DataFrame({"node_id": list("ABCDXY"), "community_id": ["C1"] * 4 + ["C2"] * 2,
...                         "organiser_rank": [1, 2, 3, 4, 1, 2]})
>>> t = recovery_table(rings, members, candidates={"C1"}, types={"C1": "collusive_ring"})
>>> t[["ring_id", "best_community", "jaccard", "community_type", "recovered", "organiser_found"]].values.tolist()
[['R1', 'C1', 0.75, 'collusive_ring', True, True]]
>>> bool(recovery_table(rings, members, candidates={"C1"}, types={"C1": "drug_resale"})["recovered"].iloc[0])
False
>>> false_rings(rings, members, candidates={"C1", "C2"})["false_ring"].tolist()
[True]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd

from features.warehouse import connect

__all__ = ["RingEval", "evaluate_rings", "recovery_table", "false_rings", "pool_table", "RECOVERED_AT"]

RECOVERED_AT = 0.5


@dataclass
class RingEval:
    rings: pd.DataFrame  # one row per positive ring
    households: pd.DataFrame  # one row per clean look-alike group
    recovery: float  # share of positive rings recovered (Jaccard >= 0.5 and the right type)
    match_rate: float  # share matched at Jaccard >= 0.5, whatever the type
    false_ring_count: int
    organiser_hit_rate: float  # among recovered rings: organiser in the top-3 likely organisers
    organiser_top1_rate: float
    pools: pd.DataFrame | None = None  # one row per labelled card pool (phantom_purchase)
    pool_recovery: float = float("nan")
    type_counts: dict | None = None  # communities of 3+ per ring_type

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rings"] = self.rings.to_dict(orient="records")
        d["households"] = {"n": len(self.households), "false_rings": self.false_ring_count}
        d["pools"] = [] if self.pools is None else self.pools.to_dict(orient="records")
        d["by_type"] = {t: {"n": int(len(g)), "recovered": int(g["recovered"].sum())}
                        for t, g in self.rings.groupby("fraud_type")} if len(self.rings) else {}
        return d


def evaluate_rings(warehouse: Path, *, n_organisers: int = 3) -> RingEval:
    """Read labels and the graph outputs of a built warehouse and score the ring recovery."""
    with connect(Path(warehouse), read_only=True) as con:
        return evaluate_in(con, n_organisers=n_organisers)


def evaluate_in(con: duckdb.DuckDBPyConnection, *, n_organisers: int = 3) -> RingEval:
    """:func:`evaluate_rings` on an open connection."""
    rings = con.execute("""
        SELECT r.entity_id AS ring_id, r.label, r.fraud_type, p.entity_id AS psn_no, any_value(p.role) AS role
        FROM labels r JOIN labels p ON p.entity_type = 'psn' AND p.ring_id = r.entity_id
        WHERE r.entity_type = 'ring' AND r.fraud_type IN ('collusive_ring', 'drug_resale')
        GROUP BY ALL ORDER BY 1, 4""").df()
    members = con.execute("SELECT node_id, community_id, organiser_rank FROM graph_membership").df()
    cands = {r[0] for r in con.execute("SELECT community_id FROM ring_candidates").fetchall()}
    comms = con.execute("SELECT * FROM graph_communities").df()
    types = dict(zip(comms["community_id"], comms["ring_type"])) if "ring_type" in comms else {}
    table = recovery_table(rings, members, candidates=cands, n_organisers=n_organisers, types=types)
    fam = false_rings(rings, members, candidates=cands)
    pools = pool_table(con.execute("""
        SELECT s.fixmedins_code AS pharmacy, s.psn_no, count(*) AS swipes
        FROM labels l JOIN setl_d s ON l.entity_type = 'setl' AND s.setl_id = l.entity_id
        WHERE l.label = 1 AND l.fraud_type = 'phantom_purchase'
        GROUP BY ALL ORDER BY 1, 2""").df(), members, types=types)
    found = table[table["recovered"]]
    big = comms[comms["size"] >= 3] if "ring_type" in comms else comms.iloc[:0]
    return RingEval(
        rings=table,
        households=fam,
        recovery=float(table["recovered"].mean()) if len(table) else float("nan"),
        match_rate=float((table["jaccard"] >= RECOVERED_AT).mean()) if len(table) else float("nan"),
        false_ring_count=int(fam["false_ring"].sum()) if len(fam) else 0,
        organiser_hit_rate=float(found["organiser_found"].mean()) if len(found) else float("nan"),
        organiser_top1_rate=float((found["organiser_rank"] == 1).mean()) if len(found) else float("nan"),
        pools=pools,
        pool_recovery=float(pools["recovered"].mean()) if len(pools) else float("nan"),
        type_counts={k: int(n) for k, n in big.get("ring_type", pd.Series(dtype=str)).value_counts()
                     .sort_index().items()},
    )


def recovery_table(rings: pd.DataFrame, members: pd.DataFrame, *, candidates: set,
                   n_organisers: int = 3, types: dict | None = None) -> pd.DataFrame:
    """One row per positive ring: ``ring_id, fraud_type, size, best_community, community_size, jaccard,
    community_type, recovered, in_candidates, organiser_rank, organiser_found``. ``types`` maps a
    community to its ``ring_type``; without it the type is not checked."""
    pos = rings[rings["label"] == 1]
    comm_of = dict(zip(members["node_id"], members["community_id"]))
    rank_of = dict(zip(members["node_id"], members["organiser_rank"]))
    sizes = members["community_id"].value_counts()
    rows = []
    for rid, grp in pos.groupby("ring_id", sort=True):
        ring = set(grp["psn_no"])
        best, jac = _best(ring, comm_of, sizes)
        org = grp.loc[grp["role"] == "organiser", "psn_no"]
        org = org.iloc[0] if len(org) else None
        org_rank = int(rank_of[org]) if org is not None and best is not None and comm_of.get(org) == best else None
        kind = grp["fraud_type"].iloc[0]
        ctype = (types or {}).get(best) if best else None
        rows.append({
            "ring_id": rid, "fraud_type": kind, "size": len(ring), "best_community": best,
            "community_size": int(sizes.get(best, 0)) if best else 0, "jaccard": round(jac, 4),
            "community_type": ctype,
            "recovered": jac >= RECOVERED_AT and (types is None or ctype == kind), "in_candidates": best in candidates,
            "organiser_rank": org_rank, "organiser_found": org_rank is not None and org_rank <= n_organisers,
        })
    return pd.DataFrame(rows, columns=["ring_id", "fraud_type", "size", "best_community", "community_size",
                                       "jaccard", "community_type", "recovered", "in_candidates", "organiser_rank",
                                       "organiser_found"])


def pool_table(swipes: pd.DataFrame, members: pd.DataFrame, *, types: dict, min_swipes: int = 2) -> pd.DataFrame:
    """One row per card pool: the cards with ``min_swipes`` or more labelled phantom swipes at one pharmacy
    (``swipes``: ``pharmacy, psn_no, swipes``), its best community, Jaccard, that community's type and
    ``recovered`` (Jaccard ≥ 0.5 and typed ``phantom_purchase``).

    >>> sw = pd.DataFrame({"pharmacy": "S1", "psn_no": list("ABCDE"), "swipes": [5, 4, 6, 1, 3]})
    >>> m = pd.DataFrame({"node_id": list("ABCX"), "community_id": "C9", "organiser_rank": [1, 2, 3, 4]})
    >>> pool_table(sw, m, types={"C9": "phantom_purchase"})[["pool", "cards", "jaccard", "recovered"]].values.tolist()
    [['S1', 4, 0.6, True]]
    """
    comm_of = dict(zip(members["node_id"], members["community_id"]))
    sizes = members["community_id"].value_counts()
    rows = []
    for shop, grp in swipes[swipes["swipes"] >= min_swipes].groupby("pharmacy", sort=True):
        cards = set(grp["psn_no"])
        best, jac = _best(cards, comm_of, sizes)
        ctype = types.get(best) if best else None
        rows.append({"pool": shop, "cards": len(cards), "best_community": best,
                     "community_size": int(sizes.get(best, 0)) if best else 0, "jaccard": round(jac, 4),
                     "community_type": ctype, "recovered": jac >= RECOVERED_AT and ctype == "phantom_purchase"})
    return pd.DataFrame(rows, columns=["pool", "cards", "best_community", "community_size", "jaccard",
                                       "community_type", "recovered"])


def false_rings(rings: pd.DataFrame, members: pd.DataFrame, *, candidates: set) -> pd.DataFrame:
    """One row per clean look-alike group (``label=0`` ring): its best community (any), that community's
    Jaccard, and ``false_ring`` = the best ring *candidate* matches it at Jaccard ≥ 0.5."""
    neg = rings[rings["label"] == 0]
    comm_of = dict(zip(members["node_id"], members["community_id"]))
    sizes = members["community_id"].value_counts()
    cand_of = {n: c for n, c in comm_of.items() if c in candidates}
    rows = []
    for rid, grp in neg.groupby("ring_id", sort=True):
        group = set(grp["psn_no"])
        best, jac = _best(group, comm_of, sizes)
        _, cjac = _best(group, cand_of, sizes)
        rows.append({"ring_id": rid, "size": len(group), "best_community": best, "jaccard": round(jac, 4),
                     "false_ring": cjac >= RECOVERED_AT})
    return pd.DataFrame(rows, columns=["ring_id", "size", "best_community", "jaccard", "false_ring"])


def _best(group: set, comm_of: dict, sizes: pd.Series) -> tuple[str | None, float]:
    overlap: dict = {}
    for p in group:
        c = comm_of.get(p)
        if c is not None:
            overlap[c] = overlap.get(c, 0) + 1
    best, jac = None, 0.0
    for c, k in sorted(overlap.items()):
        j = k / (len(group) + int(sizes[c]) - k)
        if j > jac:
            best, jac = c, j
    return best, jac

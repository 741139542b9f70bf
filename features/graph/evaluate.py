"""How well the communities recover known rings (``yibao graph eval``).

For each positive ring in ``labels`` (``entity_type='ring'``, ``label=1``: collusive_ring 结伙就医,
drug_resale 倒卖医保药品; members are the ``psn`` rows with its ``ring_id``, organiser included), the
best-matching community is the one with the highest Jaccard index |ring ∩ community| / |ring ∪ community|;
a ring counts as recovered at Jaccard ≥ 0.5. The clean look-alikes (households of 3+, ``label=0`` rings)
count as *false rings* when a ring candidate matches one at Jaccard ≥ 0.5. The organiser is *found* when
the ring's organiser is among the likely organisers of its best community.

>>> rings = pd.DataFrame({"ring_id": ["R1", "R1", "R1", "F1", "F1", "F1"], "label": [1, 1, 1, 0, 0, 0],
...                       "fraud_type": "collusive_ring", "psn_no": list("ABCXYZ"),
...                       "role": ["organiser", "member", "member", "member", "member", "member"]})
>>> members = pd.DataFrame({"node_id": list("ABCDXY"), "community_id": ["C1"] * 4 + ["C2"] * 2,
...                         "organiser_rank": [1, 2, 3, 4, 1, 2]})
>>> t = recovery_table(rings, members, candidates={"C1"})
>>> t[["ring_id", "best_community", "jaccard", "recovered", "organiser_found"]].values.tolist()
[['R1', 'C1', 0.75, True, True]]
>>> false_rings(rings, members, candidates={"C1", "C2"})["false_ring"].tolist()
[True]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd

from features.warehouse import connect

__all__ = ["RingEval", "evaluate_rings", "recovery_table", "false_rings", "RECOVERED_AT"]

RECOVERED_AT = 0.5


@dataclass
class RingEval:
    rings: pd.DataFrame  # one row per positive ring
    households: pd.DataFrame  # one row per clean look-alike group
    recovery: float  # share of positive rings recovered (Jaccard >= 0.5)
    false_ring_count: int
    organiser_hit_rate: float  # among recovered rings: organiser in the top-3 likely organisers
    organiser_top1_rate: float

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rings"] = self.rings.to_dict(orient="records")
        d["households"] = {"n": len(self.households), "false_rings": self.false_ring_count}
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
    table = recovery_table(rings, members, candidates=cands, n_organisers=n_organisers)
    fam = false_rings(rings, members, candidates=cands)
    found = table[table["recovered"]]
    return RingEval(
        rings=table,
        households=fam,
        recovery=float(table["recovered"].mean()) if len(table) else float("nan"),
        false_ring_count=int(fam["false_ring"].sum()) if len(fam) else 0,
        organiser_hit_rate=float(found["organiser_found"].mean()) if len(found) else float("nan"),
        organiser_top1_rate=float((found["organiser_rank"] == 1).mean()) if len(found) else float("nan"),
    )


def recovery_table(rings: pd.DataFrame, members: pd.DataFrame, *, candidates: set,
                   n_organisers: int = 3) -> pd.DataFrame:
    """One row per positive ring: ``ring_id, fraud_type, size, best_community, community_size, jaccard,
    recovered, in_candidates, organiser_rank, organiser_found``."""
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
        rows.append({
            "ring_id": rid, "fraud_type": grp["fraud_type"].iloc[0], "size": len(ring), "best_community": best,
            "community_size": int(sizes.get(best, 0)) if best else 0, "jaccard": round(jac, 4),
            "recovered": jac >= RECOVERED_AT, "in_candidates": best in candidates,
            "organiser_rank": org_rank, "organiser_found": org_rank is not None and org_rank <= n_organisers,
        })
    return pd.DataFrame(rows, columns=["ring_id", "fraud_type", "size", "best_community", "community_size",
                                       "jaccard", "recovered", "in_candidates", "organiser_rank",
                                       "organiser_found"])


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

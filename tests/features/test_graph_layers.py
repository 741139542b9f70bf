"""The typed layers of the projection (issue 16): a resale ring and a card pool that share pharmacies stay
apart and get their own types; the layers' null models keep a busy honest pharmacy and families out.

The region is hand-built claims written to an in-memory warehouse (the tables and columns the graph
reads), from a seeded generator:

- 30 pharmacies (``S01`` the busiest by far), 3 clinics; 1,500 honest persons buying at their home
  pharmacy (8:00–20:00, their own baskets; a fifth of them insulin once a month, as prescribed);
- 30 households of 3–4 who go to the pharmacy together (cards a minute or two apart, often the same
  basket) and to the clinic together;
- a resale ring: a broker and seven buyers buying insulin pens far beyond their days supply at five
  pharmacies, ``S01`` and ``S02`` among them, the broker at the same shop a little earlier on about half
  of the trips;
- a card pool at ``S02`` (the pool pharmacy): 25 of its customers' cards, *one ring buyer's among them*,
  swiped in evening sessions of 8–12 cards one to four minutes apart, same basket, round sums.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.graph.build import GraphConfig, build_in
from features.graph.projection import co_counter_pairs

START = pd.Timestamp("2025-01-01")
SHOPS = [f"S{i:02d}" for i in range(1, 31)]
RING_SHOPS = ["S01", "S02", "S05", "S09", "S14"]
POOL_SHOP = "S02"
OTC = [(f"OTC{i:02d}", float(p)) for i, p in enumerate([6, 8, 9.5, 12, 15, 18, 22, 25, 28, 30, 11, 14], 1)]
INSULIN = ("INS01", 150.0, 30.0)  # code, price per pen box, days per box
POOL_BASKET = ("CHR07", 48.0)


class _Claims:
    """Rows of mdtrt_d, setl_d and fee_list_d, one encounter at a time."""

    def __init__(self) -> None:
        self.mdtrt, self.setl, self.fee = [], [], []

    def visit(self, psn: str, inst: str, when: pd.Timestamp, lines: list[tuple], *, doctor: str | None = None):
        mid = f"M{len(self.mdtrt):07d}"
        pharmacy = inst.startswith("S")
        self.mdtrt.append((mid, psn, inst, "41" if pharmacy else "11", when, doctor, None if pharmacy else "A03"))
        total = 0.0
        for code, cnt, price, days in lines:
            amount = round(cnt * price, 2)
            total += amount
            self.fee.append((f"F{len(self.fee):08d}", mid, psn, doctor, when, amount, code, float(cnt), days))
        self.setl.append((f"T{len(self.setl):07d}", mid, round(total, 2), round(0.7 * total, 2), "0", None))


def _region(seed: int = 11) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    c = _Claims()
    days = 365

    def at(day: int, sec: int) -> pd.Timestamp:
        return START + pd.Timedelta(days=int(day), seconds=int(sec))

    def otc_basket() -> list[tuple]:
        k = int(rng.integers(1, 3))
        return [(code, int(rng.integers(1, 3)), price, 5.0) for code, price in
                (OTC[i] for i in rng.choice(len(OTC), k, replace=False))]

    # honest persons: a home pharmacy by a skewed popularity (S01 the busiest), their own baskets
    weights = 1.0 / np.arange(1, len(SHOPS) + 1) ** 0.8
    weights[0] *= 4
    home = {f"P{i:05d}": SHOPS[rng.choice(len(SHOPS), p=weights / weights.sum())] for i in range(1500)}
    for psn, shop in home.items():
        for _ in range(int(rng.integers(4, 13))):
            c.visit(psn, shop, at(rng.integers(0, days), rng.integers(8 * 3600, 20 * 3600)), otc_basket())
        if rng.random() < 0.2:  # insulin once a month, as prescribed
            for m in range(12):
                c.visit(psn, shop, at(30 * m + rng.integers(0, 3), rng.integers(8 * 3600, 20 * 3600)),
                        [(INSULIN[0], 1, INSULIN[1], INSULIN[2])])
        if rng.random() < 0.3:
            c.visit(psn, f"H{rng.integers(1, 4)}", at(rng.integers(0, days), rng.integers(8 * 3600, 12 * 3600)),
                    [("SVC01", 1, 20.0, None)], doctor="D1")
    # households: the pharmacy together (a minute or two apart, often the same basket), the clinic together
    persons = list(home)
    families = []
    for h in range(30):
        fam = [f"F{h:03d}{k}" for k in range(int(rng.integers(3, 5)))]
        families.append(fam)
        shop = SHOPS[int(rng.integers(0, 10))]
        for _ in range(6):
            day, sec = int(rng.integers(0, days)), int(rng.integers(9 * 3600, 19 * 3600))
            basket = otc_basket()
            for k, p in enumerate(fam):
                c.visit(p, shop, at(day, sec + 90 * k), basket if rng.random() < 0.6 else otc_basket())
        for _ in range(3):
            day = int(rng.integers(0, days))
            for p in fam:
                c.visit(p, "H1", at(day, 9 * 3600 + int(rng.integers(0, 1800))), [("SVC01", 1, 20.0, None)],
                        doctor="D2")
    # the resale ring: seven buyers and a broker, insulin pens far beyond supply at five shops
    broker, buyers = "R_BROKER", [f"R_BUY{k}" for k in range(7)]
    for b in buyers:
        for d in np.sort(rng.choice(days, 16, replace=False)):
            shop = RING_SHOPS[int(rng.integers(0, len(RING_SHOPS)))]
            sec = int(rng.integers(9 * 3600, 17 * 3600))
            n = int(rng.integers(4, 9))
            c.visit(b, shop, at(d, sec), [(INSULIN[0], n, INSULIN[1], n * INSULIN[2])])
            if rng.random() < 0.5:
                m = int(rng.integers(4, 9))
                c.visit(broker, shop, at(d, sec - int(rng.integers(600, 1800))),
                        [(INSULIN[0], m, INSULIN[1], m * INSULIN[2])])
    # the card pool at S02: its customers' cards and one ring buyer's, swiped in evening sessions
    customers = [p for p, s in home.items() if s == POOL_SHOP]
    pool = list(rng.choice(customers, 24, replace=False)) + [buyers[0]]
    for day in rng.choice(days, 40, replace=False):
        cards = rng.choice(pool, int(rng.integers(8, 13)), replace=False)
        sec = int(rng.integers(19 * 3600, 21 * 3600))
        for card in cards:
            sec += int(rng.integers(60, 240))
            n = int(rng.choice([4, 6]))  # 4 × 48 + 8 = 200, 6 × 48 + 12 = 300: round sums with the herbs
            c.visit(card, POOL_SHOP, at(day, sec), [(POOL_BASKET[0], n, POOL_BASKET[1], 7.0 * n),
                                                    ("HERB01", 1, 200.0 - 4 * 48.0 if n == 4 else 300.0 - 6 * 48.0,
                                                     None)])
    fix = pd.DataFrame({"fixmedins_code": SHOPS + ["H1", "H2", "H3"],
                        "fixmedins_type": ["pharmacy"] * len(SHOPS) + ["hospital"] * 3})
    mdtrt = pd.DataFrame(c.mdtrt, columns=["mdtrt_id", "psn_no", "fixmedins_code", "med_type", "begntime",
                                           "chfpdr_code", "adm_dept_codg"])
    setl = pd.DataFrame(c.setl, columns=["setl_id", "mdtrt_id", "medfee_sumamt", "fund_pay_sumamt", "refd_setl_flag",
                                         "init_setl_id"])
    fee = pd.DataFrame(c.fee, columns=["bkkp_sn", "mdtrt_id", "psn_no", "bilg_dr_code", "fee_ocur_time",
                                       "det_item_fee_sumamt", "hilist_code", "cnt", "prd_days"])
    return {"fixmedins": fix, "mdtrt_d": mdtrt, "setl_d": setl, "fee_list_d": fee,
            "_truth": {"ring": set(buyers) | {broker}, "broker": broker, "pool": set(pool), "families": families,
                       "busy": {p for p, s in home.items() if s == "S01"}, "persons": persons}}


@pytest.fixture(scope="module")
def region():
    return _region()


@pytest.fixture(scope="module")
def built(region):
    con = duckdb.connect()
    for name, df in region.items():
        if not name.startswith("_"):
            con.register("_in", df)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _in")
            con.unregister("_in")
    build_in(con, GraphConfig(seed=0))
    out = {t: con.execute(f"SELECT * FROM {t}").df() for t in
           ("graph_communities", "graph_membership", "ring_candidates", "graph_covisit_pairs")}
    con.close()
    return out


def _best(group: set, members: pd.DataFrame) -> tuple[str | None, float]:
    comm = members.set_index("node_id")["community_id"]
    size = members["community_id"].value_counts()
    hits = comm.reindex(sorted(group)).dropna().value_counts()
    if len(hits) == 0:
        return None, 0.0
    jac = {c: k / (len(group) + size[c] - k) for c, k in hits.items()}
    best = max(jac, key=jac.get)
    return best, jac[best]


def test_resale_ring_and_card_pool_sharing_pharmacies_stay_apart_with_their_types(region, built):
    truth, comms, members = region["_truth"], built["graph_communities"], built["graph_membership"]
    ring_c, ring_j = _best(truth["ring"], members)
    pool_c, pool_j = _best(truth["pool"], members)
    assert ring_c != pool_c
    ring = comms.set_index("community_id").loc[ring_c]
    pool = comms.set_index("community_id").loc[pool_c]
    assert ring_j >= 0.8 and ring["ring_type"] == "drug_resale", (ring_j, ring["ring_type"])
    assert pool_j >= 0.8 and pool["ring_type"] == "phantom_purchase", (pool_j, pool["ring_type"])
    # the pool's community holds no ring member but the buyer whose card is in the pool, and the other way
    in_pool = set(members.loc[members["community_id"] == pool_c, "node_id"])
    in_ring = set(members.loc[members["community_id"] == ring_c, "node_id"])
    assert in_pool & truth["ring"] <= truth["pool"] & truth["ring"]
    assert not in_ring & (truth["pool"] - truth["ring"])
    # the buyer whose card is in the pool is placed with the ring: the co-purchase layer ties a person by
    # what the person does, the pool ties a card (on one summed graph the pool's many ties take it)
    assert truth["pool"] & truth["ring"] <= in_ring
    # the evidence: the pool points at its counter, the ring at its drug and its broker
    assert pool["top_counter"] == POOL_SHOP
    assert ring["resale_drug"] == INSULIN[0] and ring["broker"] == truth["broker"]
    assert set(built["ring_candidates"]["community_id"]) >= {ring_c, pool_c}
    cand = built["ring_candidates"].set_index("community_id")
    assert cand.loc[pool_c, "reason"].startswith("虚假购药") and cand.loc[ring_c, "reason"].startswith("倒卖医保药品")


def test_busy_honest_pharmacy_makes_no_pool(region, built):
    truth, comms, members = region["_truth"], built["graph_communities"], built["graph_membership"]
    busy = truth["busy"] - truth["ring"] - truth["pool"]
    assert len(busy) > 300  # many customers, minutes apart at the busy hours
    m = members[members["node_id"].isin(busy)]
    sizes = m.groupby("community_id").size()
    assert sizes.max() <= 2 if len(sizes) else True, "customers of a busy pharmacy must not form a group"
    typed = comms[comms["community_id"].isin(m["community_id"]) & (comms["ring_type"] == "phantom_purchase")]
    assert typed.empty


def test_counter_null_model_explains_the_busy_pharmacy():
    """Without the null model the busy pharmacy's customers meet within minutes on two days by the dozen; with it,
    a handful of those pairs remain (chance at this bar), and the pool's cards are tied by the hundred."""
    region = _region()
    m = region["mdtrt_d"]
    busy = region["_truth"]["busy"]
    v = pd.DataFrame({"psn_no": m["psn_no"], "hub_type": np.where(m["med_type"] == "41", "pharmacy", "fixmedins"),
                      "hub_id": m["fixmedins_code"], "visit_date": m["begntime"].dt.normalize(),
                      "visit_sec": (m["begntime"] - m["begntime"].dt.normalize()).dt.total_seconds().astype(int)})
    raw = co_counter_pairs(v, min_lift=0, min_surprise=0)
    kept = co_counter_pairs(v)
    both_busy = lambda p: p["psn_a"].isin(busy) & p["psn_b"].isin(busy)  # noqa: E731
    assert both_busy(raw).sum() >= 50  # pairs of customers within minutes of each other on two days or more
    # a few chance pairs pass among the ~50k pairs of customers (the multiple-testing floor of -log10 p ≥ 4)
    assert both_busy(kept).sum() <= 0.1 * both_busy(raw).sum()
    pool = region["_truth"]["pool"]
    pool_pairs = kept[kept["psn_a"].isin(pool) & kept["psn_b"].isin(pool)]
    assert len(pool_pairs) >= 100  # most of the 300 pairs of the 25 cards


def test_a_family_buying_together_is_not_a_ring(region, built):
    comms, members, cands = built["graph_communities"], built["graph_membership"], built["ring_candidates"]
    pairs = built["graph_covisit_pairs"]
    families = region["_truth"]["families"]
    fam_of = {p: i for i, f in enumerate(families) for p in f}
    # families do make ties (they really are together) ...
    fam_pairs = pairs[pairs["psn_a"].map(fam_of).eq(pairs["psn_b"].map(fam_of)) & pairs["psn_a"].isin(fam_of)]
    assert fam_pairs["layer"].isin(["co_counter", "co_visit"]).all() and len(fam_pairs) >= 30
    # ... but none is a ring candidate, none a card pool, and no community mixes families
    m = members[members["node_id"].isin(fam_of)]
    assert not m["community_id"].isin(cands["community_id"]).any()
    assert not comms.loc[comms["community_id"].isin(m["community_id"]), "ring_type"].eq("phantom_purchase").any()
    mixed = m.assign(f=m["node_id"].map(fam_of)).groupby("community_id")["f"].nunique()
    assert (mixed <= 1).all()


def _clique_pairs() -> pd.DataFrame:
    """Three components: a co-purchase clique of 5 with a weak co-visit tie to a co-visit clique of 6, a
    same-counter clique of 4, and a couple (co-visit)."""
    rows = [(a, b, "co_purchase", 8.0) for i, a in enumerate("ABCDE") for b in "ABCDE"[i + 1:]]
    rows += [(a, b, "co_visit", 6.0) for i, a in enumerate("FGHIJK") for b in "FGHIJK"[i + 1:]]
    rows += [("E", "F", "co_visit", 3.1)]
    rows += [(a, b, "co_counter", 7.0) for i, a in enumerate("PQRS") for b in "PQRS"[i + 1:]]
    rows += [("X", "Y", "co_visit", 4.0)]
    pairs = pd.DataFrame(rows, columns=["psn_a", "psn_b", "layer", "surprise"])
    return pairs.assign(shared_days=3, shared_events=3, shared_shops=1, expected=0.1, lift=30.0) \
        .sort_values(["psn_a", "psn_b", "layer"], ignore_index=True)


def test_blocks_of_components_give_the_same_communities_wherever_and_in_whatever_order_they_run(monkeypatch):
    """The communities found block by block (``component_communities``: the Spark path runs the blocks on the
    executors, in any order, each block's rows in any order) are the same whatever the blocks' order and
    the rows' order, whether each component is a block of its own or all are one; and they are the groups
    planted."""
    from features.graph import communities
    from features.graph.projection import co_visit_graph

    pairs = _clique_pairs()
    g = co_visit_graph(None, pairs=pairs)

    def shuffled(frame, fn, schema):  # the blocks last first, each block's rows shuffled
        outs = [fn(rows.sample(frac=1.0, random_state=3)) for _, rows in
                sorted(frame.groupby("block"), key=lambda kv: -kv[0])]
        return pd.concat(outs, ignore_index=True).sample(frac=1.0, random_state=4)

    found = {}
    for persons in (1, 10_000):  # a block per component; one block
        monkeypatch.setattr(communities, "BLOCK_PERSONS", persons)
        for name, mapper in (("here", None), ("shuffled", shuffled)):
            parts, layer = communities.component_communities(g, pairs, method="networkx", seed=1,
                                                             map_blocks=mapper)
            found[(persons, name)] = [("".join(sorted(c)), layer[c]) for c in parts]
    assert found[(1, "here")] == found[(1, "shuffled")]
    assert found[(10_000, "here")] == found[(10_000, "shuffled")]
    assert found[(1, "here")] == [("FGHIJK", "co_visit"), ("ABCDE", "co_purchase"), ("PQRS", "co_counter"),
                                  ("XY", "co_visit")]
    assert found[(10_000, "here")] == found[(1, "here")]

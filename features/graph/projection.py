"""The person–person projection (同日同机构 / 同药倒卖 / 同柜台连刷), three layers, each scored against its
own null model.

A tie between two persons says *why* they are linked, because the three ring typologies link persons in
different ways and a projection that adds them up merges a resale ring with a card pool that happens to
use the same pharmacies (issue 16). Each layer is kept apart (``layer`` column) so that communities can
be found per layer (``features.graph.communities.layered_communities``) and typed by the layer that made
them (``features.graph.evidence``).

**Co-visits** (``co_visit``, 结伙就医): persons seen by the same hospital or clinic (or department or
doctor, as ``visit_hub`` says) within ``window_days`` of each other. Pharmacies are not hubs of this
layer (a card pool and a resale ring both meet there, for other reasons; the two layers below read
them). Per pair, ``shared_days`` counts the distinct days on which they did, and ``shared_events`` the
distinct (hub, day) pairs. The null model keeps every person's number of visit days at each hub and
every hub's daily volume, and places the visits on days at random in proportion to that volume: a pair's
expected co-visits are

    expected = Σ_h k_ih · k_jh · c_h,    c_h = Σ_d n_hd · m_hd / N_h²

where ``k_ih`` is person i's number of visit days at hub h, ``n_hd`` the hub's typical volume on day d
(the median over its open days of that weekday, so a group cannot inflate its own null), ``m_hd`` the same
summed over the window around d, and ``N_h = Σ_d n_hd``. The surprise is the Poisson tail
``-log10 P(X ≥ shared_events | expected)``. Two regulars of a busy department meet often and expect to; a
group that turns up together at a quiet hub does not. Hub-days with more than ``max_crowd`` persons are
left out (a crowd that size holds no group signal and would make the pair count explode).

**Same counter within minutes** (``co_counter``, 同一药店柜台数分钟内连续刷卡, the 空刷 card pool): two cards
swiped at the same pharmacy within ``window_minutes`` of each other, on ``min_shared`` or more days. The
null model is the co-visit one with time of day added: each person keeps its number of purchase days at
each shop, the days fall in proportion to the shop's typical weekday volume and the times of day follow
the shop's own hour profile (bins of ``window_minutes``), so

    c_h = (Σ_d n_hd² / N_h²) · τ_h,    τ_h = Σ_b q_hb² + Σ_b q_hb · q_h,b+1

(``q_hb`` the share of the shop's swipes in time bin b; ``τ_h`` is the chance that two swipes of the shop
fall within the window of each other on a day). Customers of a busy shop, minutes apart on the odd day,
expect to meet; twenty cards swiped one after the other on forty evenings do not. A family at the counter
is a real co-presence the null does not explain, but a small one (2–4 cards): it makes a tie, not a pool
(see ``features.graph.evidence`` for bursts).

**Co-purchase of the same drug** (``co_purchase``, 倒卖医保药品): resale buyers do not come together, but
each buys the same high-value drugs, far beyond their days supply, at the same few shops, and a broker
buys alongside. Only *oversupplied* buyers of a drug take part (:func:`drug_oversupply`: ``min_fills``
purchase days or more, ``min_spend`` yuan or more, and a supply ratio — days supplied over days covered,
the medication possession ratio — of ``min_oversupply`` or more, at two shops or more); honest chronic
patients stay near 1. Per pair, ``shared_shops`` counts, summed over the drugs both are oversupplied with,
the shops where both bought that drug; the null model lets each buyer pick as many shops as it uses for
the drug in proportion to the shops' share of all the drug's buyers (π_gs; all of them, not only the
oversupplied few, whom a ring would dominate), so
``expected = Σ_g |S_ig|·|S_jg|·Σ_s π_gs²``. ``shared_days`` counts the days both bought the same drug at
the same shop within ``window_days`` (the broker's trips with a buyer; evidence, not part of the test).

The default hub of a visit is the institution (同日同机构), not the doctor: a colluding doctor's working
days are largely the ring's own days (in the simulator a ring's two doctors see few other patients), so
a null model conditioned on the doctor's calendar explains the ring away; the institution's calendar is
set by everyone else. ``visit_hub="dept"`` or ``"prac"`` chooses the finer hubs.

Each layer's counting — the self-join that pairs persons and the null model's sums — is one SELECT in
DuckDB's dialect (:func:`co_visit_sql`, :func:`co_counter_sql`, :func:`co_purchase_sql`) over the tables of
``features.graph.edges``; :func:`layer_pairs` scores what a query engine counted (the Poisson tails, in
Python). The ``*_pairs`` functions run the SQL on an in-memory DuckDB over pandas frames;
``features.graph.spark`` runs the same SQL on Spark, transpiled, for ``--engine spark``.

Pairs are kept at ``min_shared`` co-visit days (counter days, shared shops) or more, a lift (observed /
expected) of at least ``min_lift`` and a surprise of at least ``min_surprise``. ``co_visit_graph`` joins
the layers into one weighted ``nx.Graph`` (weight = sum of the capped surprises; each layer's own weight
in ``w_<layer>``).

>>> import pandas as pd
>>> days = pd.to_datetime(["2024-01-02", "2024-01-09", "2024-01-16", "2024-01-23"])
>>> group = pd.DataFrame([(p, "prac", "D1", d) for p in ("A", "B", "C") for d in days],
...                      columns=["psn_no", "hub_type", "hub_id", "visit_date"])
>>> others = pd.DataFrame([(f"X{i}", "prac", "D1", pd.Timestamp("2024-01-01") + pd.Timedelta(days=i))
...                        for i in range(60)], columns=group.columns)
>>> pairs = co_visit_pairs(pd.concat([group, others]))
>>> pairs[["psn_a", "psn_b", "shared_days"]].values.tolist()
[['A', 'B', 4], ['A', 'C', 4], ['B', 'C', 4]]
>>> g = co_visit_graph(pd.concat([group, others]))
>>> sorted(g.nodes), g.number_of_edges(), g["A"]["B"]["layers"]
(['A', 'B', 'C'], 3, 'co_visit')
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

from features.warehouse import cores

__all__ = ["co_visit_pairs", "co_counter_pairs", "co_purchase_pairs", "drug_oversupply", "co_visit_graph",
           "projection_pairs", "layer_pairs", "co_visit_sql", "co_counter_sql", "co_purchase_sql", "PairQuery",
           "LAYERS", "SURPRISE_CAP"]

LAYERS = ("co_purchase", "co_counter", "co_visit")  # most specific first (ties in the partition go that way)
SURPRISE_CAP = 30.0  # -log10 p; beyond this all pairs are equally certain
# One SELECT of this module in, its rows ordered by (psn_a, psn_b) out: DuckDB's or Spark's (layer_pairs).
PairQuery = Callable[[str], pd.DataFrame]
# A visit's day as a number (days since 1970-01-01), the same on both engines.
_DAY = "date_diff('day', DATE '1970-01-01', CAST(visit_date AS DATE))"
_PAIR_COLUMNS = ["psn_a", "psn_b", "layer", "shared_days", "shared_events", "shared_shops", "expected", "lift",
                 "surprise"]


def co_visit_pairs(
    visits: pd.DataFrame,
    *,
    window_days: int = 1,
    min_shared: int = 2,
    min_lift: float = 5.0,
    min_surprise: float = 3.0,
    max_crowd: int = 200,
    visit_hub: str = "fixmedins",
    threads: int | None = None,
) -> pd.DataFrame:
    """Significant co-visit pairs: persons seen by the same hub within ``window_days`` (1 = the same day).

    ``visits`` needs ``psn_no, hub_type, hub_id, visit_date`` (and ``dept_id`` or ``prac_code`` for
    ``visit_hub="dept"`` or ``"prac"``; pharmacy rows keep the pharmacy as their hub). Returns one row per pair (``psn_a < psn_b``)
    with ``shared_days, shared_events, expected, lift, surprise`` (``layer = 'co_visit'``), sorted by pair.

    >>> import pandas as pd
    >>> v = pd.DataFrame({"psn_no": ["A", "B", "A", "B"], "hub_type": "prac", "hub_id": "D1",
    ...                   "visit_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-02-01", "2024-02-02"])})
    >>> co_visit_pairs(v, min_shared=1, min_lift=0, min_surprise=0)["shared_days"].tolist()
    [1]
    >>> co_visit_pairs(v, window_days=2, min_lift=0, min_surprise=0)["shared_days"].tolist()
    [2]
    """
    sql = co_visit_sql("visits", window_days=window_days, min_shared=min_shared, max_crowd=max_crowd,
                       visit_hub=visit_hub)
    return _layer_scored(_duck_query({"visits": visits}, threads)(sql), "co_visit", min_lift=min_lift,
                         min_surprise=min_surprise)


def co_counter_pairs(
    visits: pd.DataFrame,
    *,
    window_minutes: float = 10.0,
    min_shared: int = 2,
    min_lift: float = 5.0,
    min_surprise: float = 4.0,
    max_crowd: int = 200,
    threads: int | None = None,
) -> pd.DataFrame:
    """Significant same-counter pairs: cards swiped at the same pharmacy within ``window_minutes`` of each
    other on ``min_shared`` days or more (the null model is in the module docstring).

    Uses the rows of ``visits`` with ``hub_type == 'pharmacy'`` and a time of day (``visit_sec`` ≥ 0;
    without that column the layer is empty). Returns the columns of :func:`co_visit_pairs` with
    ``layer = 'co_counter'``.

    >>> import pandas as pd
    >>> rows = [(p, "S1", f"2024-01-{d:02d}", 19 * 3600 + 120 * i) for d in (3, 10, 17) for i, p in enumerate("ABC")]
    >>> rows += [(f"X{i}", "S1", f"2024-01-{1 + i % 28:02d}", 9 * 3600 + 397 * i % 36000) for i in range(200)]
    >>> v = pd.DataFrame(rows, columns=["psn_no", "hub_id", "visit_date", "visit_sec"]).assign(hub_type="pharmacy")
    >>> co_counter_pairs(v)[["psn_a", "psn_b", "shared_days"]].values.tolist()
    [['A', 'B', 3], ['A', 'C', 3], ['B', 'C', 3]]
    """
    if "visit_sec" not in visits.columns:
        return _score(_empty_pairs("co_counter"), "shared_events", min_lift=min_lift, min_surprise=min_surprise)
    sql = co_counter_sql("visits", window_minutes=window_minutes, min_shared=min_shared, max_crowd=max_crowd)
    return _layer_scored(_duck_query({"visits": visits}, threads)(sql), "co_counter", min_lift=min_lift,
                         min_surprise=min_surprise)


def drug_oversupply(
    purchases: pd.DataFrame,
    *,
    min_spend: float = 1000.0,
    min_fills: int = 3,
    min_oversupply: float = 2.0,
    min_shops: int = 2,
) -> pd.DataFrame:
    """Per person and drug: how far the purchases go beyond the days they cover (超量购药).

    ``purchases`` has ``psn_no, hub_id (shop), visit_date, drug, amount, supply`` (days supply; see
    ``features.graph.edges.read_drug_purchases``). Returns one row per (``psn_no``, ``drug``) with
    ``fills`` (purchase days), ``shops``, ``spend``, ``supply``, ``oversupply`` — days supplied over the
    days from the first purchase to the end of the last purchase's supply (the medication possession
    ratio; about 1 for a patient who refills on time) — and ``suspect``: ``min_fills`` days or more,
    ``min_spend`` yuan or more, oversupply ``min_oversupply`` or more, at ``min_shops`` shops or more.

    >>> import pandas as pd
    >>> rows = [("A", f"S{i % 3}", f"2024-{1 + i:02d}-01", 180.0) for i in range(6)]      # 6 × 180 days in 5 months
    >>> rows += [("B", "S0", f"2024-{1 + i:02d}-01", 30.0) for i in range(6)]             # monthly, on time
    >>> p = pd.DataFrame(rows, columns=["psn_no", "hub_id", "visit_date", "supply"]).assign(drug="INS", amount=450.0)
    >>> drug_oversupply(p)[["psn_no", "fills", "shops", "oversupply", "suspect"]].round(2).values.tolist()
    [['A', 6, 3, 3.25, True], ['B', 6, 1, 0.99, False]]
    """
    cols = ["psn_no", "drug", "fills", "shops", "spend", "supply", "oversupply", "suspect"]
    if len(purchases) == 0:
        return pd.DataFrame(columns=cols).astype({"suspect": bool})
    p = purchases.assign(day=pd.to_datetime(purchases["visit_date"]).values.astype("datetime64[D]").astype("int64"))
    per_day = p.groupby(["psn_no", "drug", "day"], as_index=False).agg(supply=("supply", "sum"))
    last = per_day.sort_values("day").groupby(["psn_no", "drug"]).tail(1).set_index(["psn_no", "drug"])
    g = p.groupby(["psn_no", "drug"])
    out = pd.DataFrame({"fills": g["day"].nunique(), "shops": g["hub_id"].nunique(), "spend": g["amount"].sum(),
                        "supply": g["supply"].sum(), "first": g["day"].min()})
    covered = (last["day"] - out["first"] + last["supply"]).clip(lower=1.0)
    out["oversupply"] = out["supply"] / covered
    out["suspect"] = ((out["fills"] >= min_fills) & (out["spend"] >= min_spend)
                      & (out["oversupply"] >= min_oversupply) & (out["shops"] >= min_shops))
    return out.reset_index()[cols].sort_values(["psn_no", "drug"]).reset_index(drop=True)


def co_purchase_pairs(
    purchases: pd.DataFrame,
    *,
    min_spend: float = 1000.0,
    min_fills: int = 3,
    min_oversupply: float = 2.0,
    min_shops: int = 2,
    window_days: int = 1,
    min_lift: float = 2.0,
    min_surprise: float = 1.0,
    min_shared_days: int = 2,
    days_min_lift: float = 5.0,
    days_min_surprise: float = 2.0,
    popularity: pd.DataFrame | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Significant co-purchase pairs: buyers oversupplied with the same drug (:func:`drug_oversupply`) who
    bought it at ``min_shops`` or more of the same pharmacies (summed over the drugs they share), or
    bought it together — same shop, within ``window_days`` — on ``min_shared_days`` days or more.

    Two tests, each a Poisson tail against its null model (module docstring): shared shops, kept at a lift
    of ``min_lift`` and a surprise of ``min_surprise``; shared days, where each buyer's purchase days fall
    at random over the period and on its shops by their popularity (expected = Σ_g fills_ig · fills_jg ·
    Σ_s π_gs² · (2·window_days − 1) / days in the period), kept at ``days_min_lift`` and
    ``days_min_surprise``. The shop test is loose because only oversupplied buyers take part; the day test
    finds the broker, who buys alongside each buyer on many days while the buyers rarely meet.

    ``popularity`` (``drug, hub_id, buyers``: all buyers of each drug per shop, from
    ``features.graph.edges.read_drug_shops``) gives the null model's shop shares; without it they are
    taken from ``purchases``, which is right only when those hold all buyers.

    Returns the columns of :func:`co_visit_pairs` with ``layer = 'co_purchase'``, ``shared_shops`` and
    ``shared_days`` (days both bought a shared drug at the same shop within ``window_days``; 1 = the same
    day); ``expected``, ``lift`` and ``surprise`` are those of the more surprising test that passed.

    >>> import pandas as pd
    >>> ring = [(p, f"S{(d + k) % 4}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=9 * d + k), 180.0)
    ...         for k, p in enumerate("ABC") for d in range(12)]
    >>> honest = [(f"X{i}", f"S{i % 20}", pd.Timestamp("2024-01-01") + pd.Timedelta(days=30 * m), 30.0)
    ...           for i in range(100) for m in range(12)]
    >>> p = pd.DataFrame(ring + honest, columns=["psn_no", "hub_id", "visit_date", "supply"])
    >>> p = p.assign(drug="INS", amount=450.0)
    >>> co_purchase_pairs(p)[["psn_a", "psn_b", "shared_shops"]].values.tolist()
    [['A', 'B', 4], ['A', 'C', 4], ['B', 'C', 4]]
    """
    if popularity is None:
        popularity = purchases.groupby(["drug", "hub_id"], as_index=False).agg(buyers=("psn_no", "nunique"))
    sql = co_purchase_sql("drug_purchases", "drug_shops", min_spend=min_spend, min_fills=min_fills,
                          min_oversupply=min_oversupply, min_shops=min_shops, window_days=window_days,
                          min_shared_days=min_shared_days)
    counted = _duck_query({"drug_purchases": purchases, "drug_shops": popularity[["drug", "hub_id", "buyers"]]},
                          threads)(sql)
    return _purchase_scored(counted, min_shops=min_shops, min_lift=min_lift, min_surprise=min_surprise,
                            min_shared_days=min_shared_days, days_min_lift=days_min_lift,
                            days_min_surprise=days_min_surprise)


def co_visit_graph(
    visits: pd.DataFrame | None,
    purchases: pd.DataFrame | None = None,
    *,
    window_days: int = 1,
    min_shared: int = 2,
    min_lift: float = 5.0,
    min_surprise: float = 3.0,
    max_crowd: int = 200,
    visit_hub: str = "fixmedins",
    pairs: pd.DataFrame | None = None,
) -> nx.Graph:
    """The projection as a weighted ``nx.Graph`` of persons (``psn_no``).

    The keyword options are the co-visit layer's (the other layers take their defaults; pass ``pairs``
    from :func:`projection_pairs` to choose theirs, and to skip recomputing them; ``visits`` is not read then). Edge attributes:
    ``weight`` (sum over layers of the surprise, each capped at ``SURPRISE_CAP``), ``w_co_visit``,
    ``w_co_counter``, ``w_co_purchase`` (each layer's capped surprise, 0 when the layer has no tie),
    ``shared_days``, ``shared_shops``, ``lift`` (the larger of the layers'), ``layers`` (e.g.
    ``"co_counter+co_visit"``).

    >>> import pandas as pd
    >>> v = pd.DataFrame({"psn_no": list("ABAB"), "hub_type": "prac", "hub_id": "D1",
    ...                   "visit_date": pd.to_datetime(["2024-01-01"] * 2 + ["2024-03-01"] * 2)})
    >>> g = co_visit_graph(v, min_lift=0, min_surprise=0)
    >>> g["A"]["B"]["shared_days"], g["A"]["B"]["layers"], g["A"]["B"]["w_co_counter"]
    (2, 'co_visit', 0.0)
    """
    if pairs is None:
        pairs = projection_pairs(visits, purchases, co_visit=dict(
            window_days=window_days, min_shared=min_shared, min_lift=min_lift, min_surprise=min_surprise,
            max_crowd=max_crowd, visit_hub=visit_hub))
    return _pairs_to_graph(pairs)


def projection_pairs(
    visits: pd.DataFrame,
    purchases: pd.DataFrame | None = None,
    popularity: pd.DataFrame | None = None,
    *,
    co_visit: dict | None = None,
    co_counter: dict | None = None,
    co_purchase: dict | None = None,
) -> pd.DataFrame:
    """The three layers' significant pairs in one table (the rows behind :func:`co_visit_graph`).

    ``visits`` feeds the co-visit layer (its hospital and clinic rows) and the same-counter layer (its
    pharmacy rows); ``purchases`` and ``popularity`` (``features.graph.edges.read_drug_purchases`` and
    ``read_drug_shops``) the co-purchase layer, which is empty without purchases. ``co_visit``,
    ``co_counter`` and ``co_purchase`` are keyword options of :func:`co_visit_pairs`,
    :func:`co_counter_pairs` and :func:`co_purchase_pairs`.

    >>> import pandas as pd
    >>> v = pd.DataFrame({"psn_no": list("ABAB"), "hub_type": "pharmacy", "hub_id": "S1",
    ...                   "visit_date": pd.to_datetime(["2024-01-01"] * 2 + ["2024-03-01"] * 2)})
    >>> len(projection_pairs(v, co_visit={"min_lift": 0, "min_surprise": 0}))  # pharmacies are not co-visit hubs
    0
    """
    frames = {"visits": visits}
    if purchases is not None:
        if popularity is None:
            popularity = purchases.groupby(["drug", "hub_id"], as_index=False).agg(buyers=("psn_no", "nunique"))
        frames |= {"drug_purchases": purchases, "drug_shops": popularity[["drug", "hub_id", "buyers"]]}
    return layer_pairs(_duck_query(frames), purchases=purchases is not None, times="visit_sec" in visits.columns,
                       co_visit=co_visit, co_counter=co_counter, co_purchase=co_purchase)


def layer_pairs(
    query: PairQuery,
    *,
    purchases: bool = True,
    times: bool = True,
    prefix: str = "",
    co_visit: dict | None = None,
    co_counter: dict | None = None,
    co_purchase: dict | None = None,
) -> pd.DataFrame:
    """:func:`projection_pairs` on either engine: ``query`` runs one SELECT of this module over the views
    ``visits``, ``drug_purchases`` and ``drug_shops`` (``features.graph.edges``; each name after ``prefix``)
    and returns its rows
    ordered by ``psn_a, psn_b``; the pairs it counts — with their expected counts under the null models —
    are scored here (the Poisson tails). Without ``purchases`` the co-purchase layer is empty, without
    ``times`` (no ``visit_sec`` column) the same-counter layer.
    """
    visit_opts, counter_opts, purchase_opts = dict(co_visit or {}), dict(co_counter or {}), dict(co_purchase or {})
    visit_score = {k: visit_opts.pop(k) for k in ("min_lift", "min_surprise") if k in visit_opts}
    counter_score = {k: counter_opts.pop(k) for k in ("min_lift", "min_surprise") if k in counter_opts}
    parts = [_layer_scored(query(co_visit_sql(f"{prefix}visits", clinics_only=True, **visit_opts)), "co_visit",
                           **(_CO_VISIT_SCORE | visit_score))]
    if times:
        parts.append(_layer_scored(query(co_counter_sql(f"{prefix}visits", **counter_opts)), "co_counter",
                                   **(_CO_COUNTER_SCORE | counter_score)))
    else:
        parts.append(_score(_empty_pairs("co_counter"), "shared_events", min_lift=0, min_surprise=0))
    if purchases:
        purchase_score = {k: purchase_opts.pop(k) for k in ("min_lift", "min_surprise", "days_min_lift",
                                                            "days_min_surprise") if k in purchase_opts}
        sql_opts = _CO_PURCHASE_COUNT | purchase_opts
        parts.append(_purchase_scored(query(co_purchase_sql(f"{prefix}drug_purchases", f"{prefix}drug_shops", **sql_opts)),
                                      min_shops=sql_opts["min_shops"], min_shared_days=sql_opts["min_shared_days"],
                                      **(_CO_PURCHASE_SCORE | purchase_score)))
    return pd.concat(parts, ignore_index=True)[_PAIR_COLUMNS]


def co_visit_sql(visits: str = "visits", *, window_days: int = 1, min_shared: int = 2, max_crowd: int = 200,
                 visit_hub: str = "fixmedins", clinics_only: bool = False) -> str:
    """The co-visit layer's pairs with ``shared_days``, ``shared_events`` and ``expected`` (the null model
    of the module docstring), as one SELECT in DuckDB's dialect over the view ``visits``; unscored and
    unordered. ``clinics_only`` leaves the pharmacy rows out (:func:`projection_pairs`).

    >>> "PARTITION BY hub ORDER BY day RANGE BETWEEN 1 PRECEDING" in co_visit_sql(window_days=2)
    True
    """
    if window_days < 1:
        raise ValueError("window_days must be at least 1 (1 = the same day)")
    if visit_hub not in _VISIT_HUB_COLUMNS:
        raise ValueError(f"visit_hub must be one of {sorted(_VISIT_HUB_COLUMNS)}, not {visit_hub!r}")
    w = int(window_days) - 1
    if visit_hub == "fixmedins":
        hub_type, hub_id = "hub_type", "hub_id"
    else:  # pharmacy rows keep the pharmacy as their hub
        hub_type = f"CASE WHEN hub_type = 'pharmacy' THEN hub_type ELSE '{visit_hub}' END"
        hub_id = f"CASE WHEN hub_type = 'pharmacy' THEN hub_id ELSE {_VISIT_HUB_COLUMNS[visit_hub]} END"
    clinics = "AND hub_type IS DISTINCT FROM 'pharmacy'" if clinics_only else ""
    if w == 0:  # the same day: each (pair, hub, day) comes once from the join; per pair and day, then per pair
        pairs = f"""j AS (
        SELECT a.psn_no AS psn_a, b.psn_no AS psn_b, a.day AS d, count(*) AS events
        FROM ev_ok a JOIN ev_ok b ON a.hub = b.hub AND b.day = a.day AND a.psn_no < b.psn_no GROUP BY ALL),
    pr AS (
        SELECT psn_a, psn_b, count(*) AS shared_days, CAST(sum(events) AS BIGINT) AS shared_events
        FROM j GROUP BY ALL HAVING count(*) >= {int(min_shared)})"""
    else:  # a window: one pair meets at a hub on day d from several visit days
        pairs = f"""j AS (
        SELECT DISTINCT a.psn_no AS psn_a, b.psn_no AS psn_b, a.hub, least(a.day, b.day) AS d
        FROM ev_ok a JOIN ev_ok b ON a.hub = b.hub AND b.day BETWEEN a.day - {w} AND a.day + {w}
         AND a.psn_no < b.psn_no),
    pr AS (
        SELECT psn_a, psn_b, count(DISTINCT d) AS shared_days, count(*) AS shared_events
        FROM j GROUP BY ALL HAVING count(DISTINCT d) >= {int(min_shared)})"""
    # The hub's typical volume on a day (typ): the median over its open days of the same weekday. The
    # observed count would let a group inflate its own null (ten members turning up make their day look
    # busy). Crowded hub-days carry no group signal: the pairs of the others are counted.
    return f"""
    WITH ev AS (
        SELECT DISTINCT psn_no, {hub_type} || ':' || {hub_id} AS hub, {_DAY} AS day
        FROM {visits} WHERE {hub_id} IS NOT NULL {clinics}),
    hd AS (SELECT hub, day, count(*)::DOUBLE AS n FROM ev GROUP BY ALL),
    typ AS (
        SELECT hd.hub, hd.day, t.lam FROM hd
        JOIN (SELECT hub, day % 7 AS dow, median(n) AS lam FROM hd GROUP BY ALL) t
          ON t.hub = hd.hub AND t.dow = hd.day % 7),
    hubc AS (
        SELECT hub, sum(lam * m) / (sum(lam) * sum(lam)) AS c FROM (
            SELECT hub, lam, sum(lam) OVER (PARTITION BY hub ORDER BY day RANGE BETWEEN {w} PRECEDING AND {w} FOLLOWING)
                AS m FROM typ) tm GROUP BY hub),
    ph AS (SELECT psn_no, hub, count(*)::DOUBLE AS k FROM ev GROUP BY ALL),
    ev_ok AS (SELECT ev.psn_no, ev.hub, ev.day FROM ev JOIN hd ON hd.hub = ev.hub AND hd.day = ev.day
              WHERE hd.n <= {int(max_crowd)}),
    {pairs}
    {_expected_sql("hub", "hubc")}"""


def co_counter_sql(visits: str = "visits", *, window_minutes: float = 10.0, min_shared: int = 2,
                   max_crowd: int = 200) -> str:
    """The same-counter layer's pairs with ``shared_days``, ``shared_events`` and ``expected``, as one
    SELECT in DuckDB's dialect over the view ``visits`` (its pharmacy rows with a time of day); unscored
    and unordered.

    >>> "sec // 600" in co_counter_sql()
    True
    """
    w = max(1, int(round(window_minutes * 60)))
    # Day factor: the shop's typical weekday volume (median), as in the co-visit layer; time factor: the
    # shop's own time-of-day profile in bins of the window.
    return f"""
    WITH sw AS (
        SELECT DISTINCT psn_no, hub_id AS shop, {_DAY} AS day, CAST(visit_sec AS BIGINT) AS sec
        FROM {visits} WHERE hub_type = 'pharmacy' AND hub_id IS NOT NULL AND visit_sec >= 0),
    hd AS (SELECT shop, day, count(DISTINCT psn_no)::DOUBLE AS n FROM sw GROUP BY ALL),
    typ AS (
        SELECT hd.shop, t.lam FROM hd
        JOIN (SELECT shop, day % 7 AS dow, median(n) AS lam FROM hd GROUP BY ALL) t
          ON t.shop = hd.shop AND t.dow = hd.day % 7),
    dayf AS (SELECT shop, sum(lam * lam) / (sum(lam) * sum(lam)) AS dayf FROM typ GROUP BY shop),
    bins AS (SELECT shop, sec // {w} AS b, count(*)::DOUBLE AS n FROM sw GROUP BY ALL),
    q AS (SELECT shop, b, n / sum(n) OVER (PARTITION BY shop) AS q FROM bins),
    tau AS (SELECT x.shop, {_exact_sum("x.q * (x.q + coalesce(y.q, 0))")} AS tau
            FROM q x LEFT JOIN q y ON y.shop = x.shop AND y.b = x.b + 1 GROUP BY x.shop),
    shopc AS (SELECT dayf.shop, dayf.dayf * tau.tau AS c FROM dayf JOIN tau ON tau.shop = dayf.shop),
    ph AS (SELECT psn_no, shop, count(DISTINCT day)::DOUBLE AS k FROM sw GROUP BY ALL),
    sw_ok AS (SELECT sw.psn_no, sw.shop, sw.day, sw.sec FROM sw JOIN hd ON hd.shop = sw.shop AND hd.day = sw.day
              WHERE hd.n <= {int(max_crowd)}),
    j AS (
        SELECT DISTINCT a.psn_no AS psn_a, b.psn_no AS psn_b, a.shop, a.day
        FROM sw_ok a JOIN sw_ok b ON a.shop = b.shop AND a.day = b.day AND a.psn_no < b.psn_no
         AND b.sec BETWEEN a.sec - {w} AND a.sec + {w}),
    pr AS (
        SELECT psn_a, psn_b, count(DISTINCT day) AS shared_days, count(*) AS shared_events
        FROM j GROUP BY ALL HAVING count(DISTINCT day) >= {int(min_shared)})
    {_expected_sql("shop", "shopc")}"""


def co_purchase_sql(purchases: str = "drug_purchases", popularity: str = "drug_shops", *, min_spend: float = 1000.0,
                    min_fills: int = 3, min_oversupply: float = 2.0, min_shops: int = 2, window_days: int = 1,
                    min_shared_days: int = 2) -> str:
    """The co-purchase layer's candidate pairs (``shared_shops`` ≥ ``min_shops`` or ``shared_days`` ≥
    ``min_shared_days``) with ``expected_shops`` and ``expected_days`` (both tests' null models, see
    :func:`co_purchase_pairs`), as one SELECT in DuckDB's dialect over the views ``purchases`` and
    ``popularity``; unscored and unordered. The oversupplied buyers are :func:`drug_oversupply`'s, in SQL.

    >>> "JOIN sus USING (psn_no, drug)" in co_purchase_sql()
    True
    """
    w = int(window_days) - 1
    return f"""
    WITH buys AS (
        SELECT psn_no, hub_id, drug, {_DAY} AS day, amount, supply FROM {purchases}),
    per_day AS (SELECT psn_no, drug, day, sum(supply) AS supply FROM buys GROUP BY ALL),
    per_drug AS (
        SELECT psn_no, drug, count(DISTINCT day) AS fills, count(DISTINCT hub_id) AS shops, sum(amount) AS spend,
               sum(supply) AS supply, min(day) AS first_day, max(day) AS last_day
        FROM buys GROUP BY ALL),
    sus AS (
        SELECT o.psn_no, o.drug FROM per_drug o
        JOIN per_day l ON l.psn_no = o.psn_no AND l.drug = o.drug AND l.day = o.last_day
        WHERE o.fills >= {int(min_fills)} AND o.spend >= {float(min_spend)!r} AND o.shops >= {int(min_shops)}
          AND o.supply / greatest(o.last_day - o.first_day + l.supply, 1.0) >= {float(min_oversupply)!r}),
    pop AS (SELECT drug, hub_id, sum(buyers)::DOUBLE AS n FROM {popularity} GROUP BY ALL),
    pi2 AS (SELECT drug, sum(n * n) / (sum(n) * sum(n)) AS pi2 FROM pop GROUP BY drug),
    sb AS (SELECT b.psn_no, b.hub_id, b.drug, b.day FROM buys b JOIN sus USING (psn_no, drug)),
    ss AS (
        SELECT psn_no, drug, hub_id, count(*) OVER (PARTITION BY psn_no, drug)::DOUBLE AS n_shops
        FROM (SELECT DISTINCT psn_no, drug, hub_id FROM sb) d),
    pr AS (
        SELECT a.psn_no AS psn_a, b.psn_no AS psn_b, count(*) AS shared_shops
        FROM ss a JOIN ss b ON a.drug = b.drug AND a.hub_id = b.hub_id AND a.psn_no < b.psn_no
        GROUP BY ALL),
    span AS (SELECT greatest(max(day) - min(day) + 1, 1)::DOUBLE AS span FROM buys),
    f AS (SELECT psn_no, drug, count(DISTINCT day)::DOUBLE AS fills FROM sb GROUP BY ALL),
    per AS (SELECT DISTINCT ss.psn_no, ss.drug, ss.n_shops, f.fills FROM ss JOIN f USING (psn_no, drug)),
    ex AS (
        SELECT pr.psn_a, pr.psn_b, {_exact_sum("x.n_shops * y.n_shops * pi2.pi2")} AS expected_shops,
               {_exact_sum("x.fills * y.fills * pi2.pi2")} * {2 * w + 1} AS expected_days_span
        FROM pr
        JOIN per x ON x.psn_no = pr.psn_a
        JOIN per y ON y.psn_no = pr.psn_b AND y.drug = x.drug
        JOIN pi2 ON pi2.drug = x.drug
        GROUP BY ALL),
    days AS (
        SELECT a.psn_no AS psn_a, b.psn_no AS psn_b, count(DISTINCT least(a.day, b.day)) AS shared_days
        FROM sb a JOIN sb b ON a.drug = b.drug AND a.hub_id = b.hub_id AND a.psn_no < b.psn_no
         AND b.day BETWEEN a.day - {w} AND a.day + {w}
        GROUP BY ALL)
    SELECT pr.psn_a, pr.psn_b, pr.shared_shops, coalesce(days.shared_days, 0) AS shared_days,
           ex.expected_shops, ex.expected_days_span / span.span AS expected_days
    FROM pr JOIN ex ON ex.psn_a = pr.psn_a AND ex.psn_b = pr.psn_b
    LEFT JOIN days ON days.psn_a = pr.psn_a AND days.psn_b = pr.psn_b
    CROSS JOIN span
    WHERE pr.shared_shops >= {int(min_shops)} OR coalesce(days.shared_days, 0) >= {int(min_shared_days)}"""


# -- private helpers ------------------------------------------------------------------------------


def _empty_pairs(layer: str) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="int64") for c in ("shared_days", "shared_events", "shared_shops")})
    df = df.assign(psn_a=pd.Series(dtype=object), psn_b=pd.Series(dtype=object), layer=layer,
                   expected=pd.Series(dtype=float))
    return df


def _pairs_to_graph(pairs: pd.DataFrame) -> nx.Graph:
    g = nx.Graph()
    if len(pairs) == 0:
        return g
    p = pairs.assign(w=pairs["surprise"].clip(upper=SURPRISE_CAP))
    for layer in LAYERS:
        p[f"w_{layer}"] = np.where(p["layer"] == layer, p["w"], 0.0)
    per_layer = {f"w_{layer}": (f"w_{layer}", "sum") for layer in LAYERS}
    agg = (p.groupby(["psn_a", "psn_b"], sort=True)
           .agg(weight=("w", "sum"), shared_days=("shared_days", "sum"), shared_shops=("shared_shops", "sum"),
                lift=("lift", "max"), layers=("layer", lambda s: "+".join(sorted(set(s)))), **per_layer)
           .reset_index())
    names = ["weight", "shared_days", "shared_shops", "lift", "layers"] + list(per_layer)
    cast = [float, int, int, float, str] + [float] * len(per_layer)
    g.add_edges_from(
        (row[0], row[1], {n: f(x) for n, f, x in zip(names, cast, row[2:])})
        for row in agg[["psn_a", "psn_b"] + names].itertuples(index=False, name=None))
    return g


_VISIT_HUB_COLUMNS = {"fixmedins": "hub_id", "dept": "dept_id", "prac": "prac_code"}


def _score(df: pd.DataFrame, observed: str, *, min_lift: float, min_surprise: float,
           columns: list[str] | None = None) -> pd.DataFrame:
    obs = df[observed].to_numpy(dtype=float)
    exp = np.maximum(df["expected"].to_numpy(dtype=float), 1e-12)
    df["lift"] = obs / exp
    # Poisson upper tail P(X >= obs); logsf keeps precision far into the tail.
    df["surprise"] = -stats.poisson.logsf(obs - 1, exp) / math.log(10) if len(df) else []
    keep = (df["lift"] >= min_lift) & (df["surprise"] >= min_surprise)
    out = df.loc[keep, columns or _PAIR_COLUMNS].reset_index(drop=True)
    return out.astype({"shared_days": "int64", "shared_events": "int64", "shared_shops": "int64"})


class _DuckQuery:
    """A :data:`PairQuery` on an in-memory DuckDB with pandas frames as its views and ``threads`` threads
    (default: as many as the process may use; the null model's sums are exact on any number, :func:`_exact_sum`)."""

    def __init__(self, frames: dict[str, pd.DataFrame], threads: int | None = None) -> None:
        self.con = duckdb.connect()
        self.con.execute(f"SET threads = {int(threads or cores())}")
        self.con.execute("SET enable_progress_bar = false")
        for name, frame in frames.items():
            self.con.register(name, frame)

    def __call__(self, sql: str) -> pd.DataFrame:
        return self.con.execute(f"SELECT * FROM ({sql}) ORDER BY psn_a, psn_b").df()

    def __enter__(self) -> _DuckQuery:
        return self

    def __exit__(self, *exc) -> None:
        self.con.close()


def _duck_query(frames: dict[str, pd.DataFrame], threads: int | None = None) -> PairQuery:
    """Run one query on a fresh :class:`_DuckQuery` and close it."""
    def run(sql: str) -> pd.DataFrame:
        with _DuckQuery(frames, threads) as q:
            return q(sql)
    return run


def _exact_sum(term: str) -> str:
    """``sum(term)`` that is the same whatever order the terms are added in, and on either engine: each
    term scaled by 10^9 and rounded to an integer, the integers added (exact), the total scaled back.
    DuckDB adds DOUBLEs in the order its threads finish (``features/sql/_stage.sql``, first lines);
    with this the projection's null-model sums are exact on any number of threads. (A DECIMAL sum is not
    enough across engines: DuckDB's DOUBLE→DECIMAL cast is not the exact conversion Spark's is.) The
    terms are at most about 10^5 and a pair's expected count far below 10^6, so the scaled values stay
    under 2^53, where DOUBLE holds every integer; a term is kept to 10^-9. The other sums of this module
    add multiples of 1/4 (counts, their medians and products), exact in DOUBLE."""
    return f"CAST(sum(CAST(round(({term}) * 1e9) AS BIGINT)) AS DOUBLE) / 1e9"


def _expected_sql(place: str, factors: str) -> str:
    """The pairs of CTE ``pr`` with their expected count under the null model: the sum over the places both
    visit of k_a · k_b · c (CTE ``ph``: visits per person and ``place``; ``factors``: c per place)."""
    return f"""SELECT pr.psn_a, pr.psn_b, pr.shared_days, pr.shared_events, {_exact_sum("x.k * y.k * fc.c")} AS expected
    FROM pr
    JOIN ph x ON x.psn_no = pr.psn_a
    JOIN ph y ON y.psn_no = pr.psn_b AND y.{place} = x.{place}
    JOIN {factors} fc ON fc.{place} = x.{place}
    GROUP BY pr.psn_a, pr.psn_b, pr.shared_days, pr.shared_events"""


def _layer_scored(df: pd.DataFrame, layer: str, *, min_lift: float, min_surprise: float) -> pd.DataFrame:
    df["layer"] = layer
    df["shared_shops"] = 0
    return _score(df, "shared_events", min_lift=min_lift, min_surprise=min_surprise)


def _purchase_scored(df: pd.DataFrame, *, min_shops: int, min_lift: float, min_surprise: float,
                     min_shared_days: int, days_min_lift: float, days_min_surprise: float) -> pd.DataFrame:
    """The co-purchase candidates of :func:`co_purchase_sql` scored by both tests (:func:`co_purchase_pairs`)."""
    df["layer"] = "co_purchase"
    df["shared_events"] = df["shared_days"]
    # Two tests, each with its own bar; a pair is kept when either passes, with that test's figures.
    shops = _score(df.assign(expected=df["expected_shops"]), "shared_shops", min_lift=0, min_surprise=0,
                   columns=list(df.columns) + ["expected", "lift", "surprise"])
    days = _score(df.assign(expected=df["expected_days"]), "shared_days", min_lift=0, min_surprise=0,
                  columns=list(df.columns) + ["expected", "lift", "surprise"])
    ok_shops = (shops["shared_shops"] >= min_shops) & (shops["lift"] >= min_lift) & (shops["surprise"] >= min_surprise)
    ok_days = ((days["shared_days"] >= min_shared_days) & (days["lift"] >= days_min_lift)
               & (days["surprise"] >= days_min_surprise))
    use_days = ok_days & (~ok_shops | (days["surprise"] > shops["surprise"]))
    out = shops.copy()
    for c in ("expected", "lift", "surprise"):
        out[c] = np.where(use_days, days[c], shops[c])
    out = out.loc[ok_shops | ok_days, _PAIR_COLUMNS].reset_index(drop=True)
    return out.astype({"shared_days": "int64", "shared_events": "int64", "shared_shops": "int64"})


def _defaults(fn, names: tuple[str, ...]) -> dict:
    params = inspect.signature(fn).parameters
    return {n: params[n].default for n in names}


# What a layer takes when the options leave it out: the pair functions' own defaults.
_CO_VISIT_SCORE = _defaults(co_visit_pairs, ("min_lift", "min_surprise"))
_CO_COUNTER_SCORE = _defaults(co_counter_pairs, ("min_lift", "min_surprise"))
_CO_PURCHASE_COUNT = _defaults(co_purchase_pairs, ("min_spend", "min_fills", "min_oversupply", "min_shops",
                                                   "window_days", "min_shared_days"))
_CO_PURCHASE_SCORE = _defaults(co_purchase_pairs, ("min_lift", "min_surprise", "days_min_lift", "days_min_surprise"))

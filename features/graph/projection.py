"""The person–person co-visit projection (同日同医/同药店共现), scored against a null model.

Two layers, both built from the ``visits`` table of ``features.graph.edges``:

**Co-visits** (结伙就医): persons seen by the same hub (the same institution, department or doctor, as
``visit_hub`` says, or the same pharmacy) within ``window_days`` of each other. Per pair, ``shared_days`` counts the distinct days on which they did, and
``shared_events`` the distinct (hub, day) pairs. The null model keeps every person's number of visit days at
each hub and every hub's daily volume, and places the visits on days at random in proportion to that
volume: a pair's expected co-visits are

    expected = Σ_h k_ih · k_jh · c_h,    c_h = Σ_d n_hd · m_hd / N_h²

where ``k_ih`` is person i's number of visit days at hub h, ``n_hd`` the persons seen by h on day d,
``m_hd`` the persons seen by h within the window around d, and ``N_h = Σ_d n_hd``. The surprise is the
Poisson tail ``-log10 P(X ≥ shared_events | expected)``. Two regulars of a busy department meet often and
expect to; a group that turns up together at a quiet hub does not. Hub-days with more than ``max_crowd``
persons are left out (a crowd that size holds no group signal and would make the pair count explode).

**Co-purchases** (倒卖医保药品): persons buying at the same *set* of pharmacies. Buyers of a resale ring do
not come together, but each buys at the same three to five shops, and honest persons use one or two
near home. Per pair, ``shared_shops`` counts the pharmacies both bought at; the null model lets each person
pick as many shops as they use, in proportion to the shops' customer numbers (π_s), so
``expected = |S_i|·|S_j|·Σ_s π_s²``, with the same Poisson surprise.

The default hub of a visit is the institution (同日同机构), not the doctor: a colluding doctor's working
days are largely the ring's own days (in the simulator a ring's two doctors see few other patients), so
a null model conditioned on the doctor's calendar explains the ring away; the institution's calendar is
set by everyone else. ``visit_hub="dept"`` or ``"prac"`` chooses the finer hubs.

Only pairs with at least ``min_shared`` co-visit days (``min_shops`` shops), a lift (observed / expected)
of at least ``min_lift`` and a surprise of at least ``min_surprise`` are kept. The co-purchase layer is
looser (lift 1.5, surprise 0.5): using three or more shops is already rare (about 0.2 % of buyers in the
simulated regions), and in a region with few pharmacies three shared shops are not improbable for two
such buyers taken alone; the test only drops pairs that shop popularity explains. ``co_visit_graph`` joins the
two layers into one weighted ``nx.Graph`` (weight = sum of the capped surprises).

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
>>> sorted(g.nodes), g.number_of_edges()
(['A', 'B', 'C'], 3)
"""

from __future__ import annotations

import math

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["co_visit_pairs", "co_purchase_pairs", "co_visit_graph", "projection_pairs", "SURPRISE_CAP"]

SURPRISE_CAP = 30.0  # -log10 p; beyond this all pairs are equally certain
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
    if window_days < 1:
        raise ValueError("window_days must be at least 1 (1 = the same day)")
    w = int(window_days) - 1
    con = _duck(threads)
    con.register("visits_in", _events(visits, visit_hub))
    con.execute("""
        CREATE TEMP TABLE ev AS
        SELECT DISTINCT psn_no, hub_type || ':' || hub_id AS hub, day FROM visits_in WHERE hub_id IS NOT NULL""")
    con.execute("CREATE TEMP TABLE hd AS SELECT hub, day, count(*)::DOUBLE AS n FROM ev GROUP BY ALL")
    # The hub's typical volume on a day: the median over its open days of the same weekday. The observed
    # count would let a group inflate its own null (ten members turning up make their day look busy).
    con.execute(f"""
        CREATE TEMP TABLE hubc AS
        WITH typ AS (
            SELECT hd.hub, hd.day, t.lam FROM hd
            JOIN (SELECT hub, day % 7 AS dow, median(n) AS lam FROM hd GROUP BY ALL) t
              ON t.hub = hd.hub AND t.dow = hd.day % 7)
        SELECT hub, sum(lam * m) / (sum(lam) * sum(lam)) AS c FROM (
            SELECT hub, lam, sum(lam) OVER (PARTITION BY hub ORDER BY day RANGE BETWEEN {w} PRECEDING AND {w} FOLLOWING)
                AS m FROM typ) GROUP BY hub""")
    con.execute("CREATE TEMP TABLE ph AS SELECT psn_no, hub, count(*)::DOUBLE AS k FROM ev GROUP BY ALL")
    # Crowded hub-days carry no group signal; the pairs of the remaining ones are counted.
    con.execute(f"""
        CREATE TEMP TABLE ev_ok AS SELECT ev.* FROM ev JOIN hd USING (hub, day) WHERE hd.n <= {int(max_crowd)}""")
    day_match = "b.day = a.day" if w == 0 else f"b.day BETWEEN a.day - {w} AND a.day + {w}"
    con.execute(f"""
        CREATE TEMP TABLE pr AS
        WITH j AS (
            SELECT DISTINCT a.psn_no AS psn_a, b.psn_no AS psn_b, a.hub, least(a.day, b.day) AS d
            FROM ev_ok a JOIN ev_ok b ON a.hub = b.hub AND {day_match} AND a.psn_no < b.psn_no)
        SELECT psn_a, psn_b, count(DISTINCT d) AS shared_days, count(*) AS shared_events
        FROM j GROUP BY ALL HAVING count(DISTINCT d) >= {int(min_shared)}""")
    df = con.execute("""
        SELECT pr.psn_a, pr.psn_b, pr.shared_days, pr.shared_events, sum(x.k * y.k * hubc.c) AS expected
        FROM pr
        JOIN ph x ON x.psn_no = pr.psn_a
        JOIN ph y ON y.psn_no = pr.psn_b AND y.hub = x.hub
        JOIN hubc ON hubc.hub = x.hub
        GROUP BY ALL ORDER BY psn_a, psn_b""").df()
    con.close()
    df["layer"] = "co_visit"
    df["shared_shops"] = 0
    return _score(df, "shared_events", min_lift=min_lift, min_surprise=min_surprise)


def co_purchase_pairs(
    visits: pd.DataFrame,
    *,
    min_shops: int = 3,
    min_lift: float = 1.5,
    min_surprise: float = 0.5,
    threads: int | None = None,
) -> pd.DataFrame:
    """Significant co-purchase pairs: persons who bought at ``min_shops`` or more of the same pharmacies.

    Uses the rows of ``visits`` with ``hub_type == 'pharmacy'``. Returns the columns of
    :func:`co_visit_pairs` with ``layer = 'co_purchase'`` and ``shared_shops`` filled in.

    >>> import pandas as pd
    >>> rows = [(p, s) for p in ("A", "B") for s in ("S1", "S2", "S3")] + [("C", "S1"), ("D", "S2")]
    >>> v = pd.DataFrame(rows, columns=["psn_no", "hub_id"]).assign(hub_type="pharmacy",
    ...                                                         visit_date=pd.Timestamp("2024-01-01"))
    >>> co_purchase_pairs(v, min_lift=0, min_surprise=0)[["psn_a", "psn_b", "shared_shops"]].values.tolist()
    [['A', 'B', 3]]
    """
    con = _duck(threads)
    shops = visits.loc[(visits["hub_type"] == "pharmacy") & visits["hub_id"].notna(), ["psn_no", "hub_id"]]
    con.register("shops_in", shops)
    con.execute("CREATE TEMP TABLE ps AS SELECT DISTINCT psn_no, hub_id AS shop FROM shops_in")
    con.execute("CREATE TEMP TABLE pop AS SELECT shop, count(*)::DOUBLE AS n FROM ps GROUP BY shop")
    (pi2,) = con.execute("SELECT coalesce(sum(n * n) / (sum(n) * sum(n)), 0) FROM pop").fetchone()
    # Only persons using min_shops shops or more can share that many: a small minority, so no explosion.
    con.execute(f"""
        CREATE TEMP TABLE many AS
        SELECT ps.*, count(*) OVER (PARTITION BY psn_no)::DOUBLE AS n_shops FROM ps
        QUALIFY count(*) OVER (PARTITION BY psn_no) >= {int(min_shops)}""")
    df = con.execute(f"""
        SELECT a.psn_a, a.psn_b, count(*) AS shared_shops, any_value(a.na * a.nb) * {float(pi2)} AS expected
        FROM (SELECT a.psn_no AS psn_a, b.psn_no AS psn_b, a.shop, a.n_shops AS na, b.n_shops AS nb
              FROM many a JOIN many b ON a.shop = b.shop AND a.psn_no < b.psn_no) a
        GROUP BY a.psn_a, a.psn_b HAVING count(*) >= {int(min_shops)} ORDER BY 1, 2""").df()
    con.close()
    df["layer"] = "co_purchase"
    df["shared_days"] = 0
    df["shared_events"] = 0
    return _score(df, "shared_shops", min_lift=min_lift, min_surprise=min_surprise)


def co_visit_graph(
    visits: pd.DataFrame,
    *,
    window_days: int = 1,
    min_shared: int = 2,
    min_shops: int = 3,
    min_lift: float = 5.0,
    min_surprise: float = 3.0,
    max_crowd: int = 200,
    visit_hub: str = "fixmedins",
    pairs: pd.DataFrame | None = None,
) -> nx.Graph:
    """The projection as a weighted ``nx.Graph`` of persons (``psn_no``).

    Edge attributes: ``weight`` (sum over layers of the surprise, each capped at ``SURPRISE_CAP``),
    ``shared_days``, ``shared_shops``, ``lift`` (the larger of the layers'), ``layers`` (e.g.
    ``"co_visit+co_purchase"``). Pass ``pairs`` (from :func:`projection_pairs`) to skip recomputing them.

    >>> import pandas as pd
    >>> v = pd.DataFrame({"psn_no": list("ABAB"), "hub_type": "prac", "hub_id": "D1",
    ...                   "visit_date": pd.to_datetime(["2024-01-01"] * 2 + ["2024-03-01"] * 2)})
    >>> g = co_visit_graph(v, min_lift=0, min_surprise=0)
    >>> g["A"]["B"]["shared_days"], g["A"]["B"]["layers"]
    (2, 'co_visit')
    """
    if pairs is None:
        pairs = projection_pairs(visits, window_days=window_days, min_shared=min_shared, min_shops=min_shops,
                                 min_lift=min_lift, min_surprise=min_surprise, max_crowd=max_crowd,
                                 visit_hub=visit_hub)
    return _pairs_to_graph(pairs)


def projection_pairs(visits: pd.DataFrame, *, window_days: int = 1, min_shared: int = 2, min_shops: int = 3,
                     min_lift: float = 5.0, min_surprise: float = 3.0, max_crowd: int = 200,
                     visit_hub: str = "fixmedins") -> pd.DataFrame:
    """Both layers' significant pairs in one table (the rows behind :func:`co_visit_graph`)."""
    a = co_visit_pairs(visits, window_days=window_days, min_shared=min_shared, min_lift=min_lift,
                       min_surprise=min_surprise, max_crowd=max_crowd, visit_hub=visit_hub)
    b = co_purchase_pairs(visits, min_shops=min_shops)
    return pd.concat([a, b], ignore_index=True)[_PAIR_COLUMNS]


# -- private helpers ------------------------------------------------------------------------------


def _pairs_to_graph(pairs: pd.DataFrame) -> nx.Graph:
    g = nx.Graph()
    if len(pairs) == 0:
        return g
    agg = (pairs.assign(w=pairs["surprise"].clip(upper=SURPRISE_CAP))
           .groupby(["psn_a", "psn_b"], sort=True)
           .agg(weight=("w", "sum"), shared_days=("shared_days", "sum"), shared_shops=("shared_shops", "sum"),
                lift=("lift", "max"), layers=("layer", lambda s: "+".join(sorted(set(s)))))
           .reset_index())
    g.add_edges_from(
        (a, b, {"weight": float(w), "shared_days": int(d), "shared_shops": int(s), "lift": float(lf), "layers": ly})
        for a, b, w, d, s, lf, ly in agg[["psn_a", "psn_b", "weight", "shared_days", "shared_shops", "lift",
                                          "layers"]].itertuples(index=False, name=None))
    return g


_VISIT_HUB_COLUMNS = {"fixmedins": "hub_id", "dept": "dept_id", "prac": "prac_code"}


def _events(visits: pd.DataFrame, visit_hub: str) -> pd.DataFrame:
    if visit_hub not in _VISIT_HUB_COLUMNS:
        raise ValueError(f"visit_hub must be one of {sorted(_VISIT_HUB_COLUMNS)}, not {visit_hub!r}")
    days = pd.to_datetime(visits["visit_date"]).values.astype("datetime64[D]").astype("int64")
    hub_type = visits["hub_type"].to_numpy()
    hub = visits["hub_id"].to_numpy()
    if visit_hub != "fixmedins":
        hub = np.where(hub_type == "pharmacy", hub, visits[_VISIT_HUB_COLUMNS[visit_hub]].to_numpy())
        hub_type = np.where(hub_type == "pharmacy", hub_type, visit_hub)
    return pd.DataFrame({"psn_no": visits["psn_no"].to_numpy(), "hub_type": hub_type, "hub_id": hub, "day": days})


def _score(df: pd.DataFrame, observed: str, *, min_lift: float, min_surprise: float) -> pd.DataFrame:
    obs = df[observed].to_numpy(dtype=float)
    exp = np.maximum(df["expected"].to_numpy(dtype=float), 1e-12)
    df["lift"] = obs / exp
    # Poisson upper tail P(X >= obs); logsf keeps precision far into the tail.
    df["surprise"] = -stats.poisson.logsf(obs - 1, exp) / math.log(10) if len(df) else []
    keep = (df["lift"] >= min_lift) & (df["surprise"] >= min_surprise)
    out = df.loc[keep, _PAIR_COLUMNS].reset_index(drop=True)
    return out.astype({"shared_days": "int64", "shared_events": "int64", "shared_shops": "int64"})


def _duck(threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET enable_progress_bar = false")
    return con

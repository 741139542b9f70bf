"""Build the graph outputs into the warehouse (``yibao graph build``): edges, the co-visit projection,
communities, ring candidates and per-node graph features.

Tables written (each replaced on every build):

=========================  =======================================================================
``graph_edges``            the heterogeneous graph (``features.graph.edges.read_edges``)
``graph_covisit_pairs``    the significant person pairs of the projection, per layer (``co_visit``,
                           ``co_counter``, ``co_purchase``)
``graph_communities``      one row per community of 2+ persons (``features.graph.stats``), with the
                           layer that made it, its ``ring_type`` and the evidence
``graph_membership``       ``node_type='psn', node_id, community_id``, betweenness, organiser rank
``ring_candidates``        communities that look like rings (疑似团伙), riskiest first, with a reason
``graph_node_features``    one row per node (``psn``, ``prac``, ``fixmedins``, ``pharmacy``): degree,
                           weighted degree, amount, co-visit degree, community size and risk,
                           betweenness, ``ppr_fraud`` (cross-fitted, no node sees its own label)
``graph_build_log``        when, with which options, how long each step took
=========================  =======================================================================

The features pipeline left-joins ``graph_node_features`` on ``(node_type, node_id)``.

Steps: ``edges`` (read the inputs from the claims), ``projection`` (count and score the person pairs),
``communities``, ``stats``, ``pagerank``, ``write``. The first two are SQL: on DuckDB the inputs are
temporary tables of the warehouse and the projection's self-joins run there
(``features.graph.edges.WarehouseGraphInputs``); with ``exports`` (``yibao run --engine spark``) on Spark
(``features.graph.spark``: the same SQL text, transpiled) and DuckDB reads the results back. Either way only
the pairs, the drug purchases and the visits of the projection's persons come to pandas. The edges stay
where they were computed: ``graph_edges`` and ``graph_node_features`` are written from there, and PageRank
gets them as numbers (``features.graph.nodes``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd

from features.graph.communities import component_communities, resolve_method
from features.graph.edges import WarehouseGraphInputs
from features.graph.nodes import node_features_in, write_edges
from features.graph.projection import LAYERS, co_visit_graph, drug_oversupply, layer_pairs
from features.graph.stats import block_membership, community_stats, ordered_subgraph, ring_candidates
from features.warehouse import connect

__all__ = ["GraphConfig", "GraphReport", "build_graph", "build_in", "layer_options", "OUTPUT_TABLES", "STEPS"]

OUTPUT_TABLES = ("graph_edges", "graph_covisit_pairs", "graph_communities", "graph_membership", "ring_candidates",
                 "graph_node_features", "graph_build_log")
STEPS = ("edges", "projection", "communities", "stats", "pagerank", "write")
STEP_LABELS = {"edges": "读取边 edges", "projection": "共现投影 projection", "communities": "社区发现 communities",
               "stats": "社区画像 stats", "pagerank": "欺诈关联度 PPR", "write": "写入仓库 write"}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class GraphConfig:
    """Options of a graph build (defaults tuned on the simulator's ``small`` region, docs/graph.md)."""

    method: str = "auto"
    seed: int = 0
    resolution: float = 1.0
    window_days: int = 1
    min_shared: int = 2
    min_lift: float = 5.0
    min_surprise: float = 4.0
    max_crowd: int = 200
    visit_hub: str = "fixmedins"
    # same counter within minutes (空刷 card pools)
    window_minutes: float = 10.0
    counter_min_shared: int = 2
    counter_min_lift: float = 5.0
    counter_min_surprise: float = 4.0
    min_burst: int = 5
    # co-purchase of the same drug beyond days supply (倒卖医保药品)
    min_spend: float = 1000.0
    min_fills: int = 3
    min_oversupply: float = 2.0
    min_shops: int = 2
    purchase_min_lift: float = 2.0
    purchase_min_surprise: float = 1.5
    purchase_days_min_surprise: float = 2.0
    # communities per layer (False: one partition of the summed projection, as before issue 16)
    layered: bool = True
    candidate_min_size: int = 5
    candidate_min_risk: float = 0.5
    betweenness_k: int = 500
    ppr_folds: int = 5
    ppr_alpha: float = 0.85


@dataclass
class GraphReport:
    warehouse: str
    method: str
    config: dict
    seconds: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def build_graph(warehouse: Path, config: GraphConfig = GraphConfig(), *,
                progress: Progress | None = None, exports=None) -> GraphReport:
    """Read the warehouse, build the graph outputs and write them back (see the module docstring).

    With ``exports`` (a pipeline run's ``features.spark.ParquetExports``) the inputs and the projection's
    pairs are computed on Spark (``features.graph.spark``); the rest as without."""
    with connect(Path(warehouse)) as con:
        return build_in(con, config, progress=progress, warehouse=str(warehouse), exports=exports)


def build_in(con: duckdb.DuckDBPyConnection, config: GraphConfig = GraphConfig(), *,
             progress: Progress | None = None, warehouse: str = "", exports=None) -> GraphReport:
    """:func:`build_graph` on an open connection."""
    opened = []

    def open_inputs():
        if exports is None:
            opened.append(WarehouseGraphInputs(con, min_spend=config.min_spend))
        else:
            from features.graph.spark import SparkGraphInputs

            opened.append(SparkGraphInputs(con, exports, min_spend=config.min_spend))
        return opened[-1]

    try:
        return _build(con, config, progress=progress, warehouse=warehouse, open_inputs=open_inputs)
    finally:
        for inputs in opened:
            inputs.close()


def _build(con: duckdb.DuckDBPyConnection, config: GraphConfig, *, progress: Progress | None, warehouse: str,
           open_inputs) -> GraphReport:
    """The steps; ``open_inputs()`` gives a ``features.graph.edges.WarehouseGraphInputs`` or a
    ``features.graph.spark.SparkGraphInputs`` (the same interface: the visits and drug shops stay where they
    were computed, only what the steps after the projection read comes to pandas)."""
    method = resolve_method(config.method)
    rep = GraphReport(warehouse=warehouse, method=method, config=asdict(config))
    clock = _Clock(rep, progress or (lambda *_: None))
    with clock("edges"):
        inputs = open_inputs()
        purchases = inputs.table("drug_purchases")
        n_visits, n_edges = inputs.count("visits"), inputs.count("edges")
    with clock("projection"):
        pairs = layer_pairs(inputs, prefix=inputs.prefix, **layer_options(config))
        g = co_visit_graph(None, pairs=pairs)
    with clock("communities"):  # blocks of whole components of the projection (on Spark: on the executors)
        communities, layer_of = component_communities(g, pairs, layered=config.layered, method=method,
                                                      seed=config.seed, resolution=config.resolution,
                                                      map_blocks=inputs.map_blocks)
        if not config.layered:
            layer_of = {c: _main_layer(g, c) for c in communities}
    with clock("stats"):
        hits = _rule_hit_persons(con)
        # the statistics read the visits of community members only: of the projection's persons
        visits = inputs.table("visits", persons=set(pairs["psn_a"]) | set(pairs["psn_b"]))
        oversupply = drug_oversupply(purchases, min_spend=config.min_spend, min_fills=config.min_fills,
                                     min_oversupply=config.min_oversupply, min_shops=config.min_shops)
        stats = community_stats(g, communities, visits, rule_hit_persons=hits, layer_of=layer_of,
                                purchases=purchases, oversupply=oversupply, window_minutes=config.window_minutes,
                                min_burst=config.min_burst)
        brokers = stats.loc[(stats["ring_type"] == "drug_resale") & (stats["broker_share"] > 0)]
        members = block_membership(g, pairs, communities, seed=config.seed, k=config.betweenness_k,
                                   leaders=dict(zip(brokers["community_id"], brokers["broker"])),
                                   map_blocks=inputs.map_blocks)  # betweenness per block, on Spark's executors
        cands = ring_candidates(stats, min_size=config.candidate_min_size, min_risk=config.candidate_min_risk)
    with clock("pagerank"):  # where the edges are; the walk itself on the driver, on numbers (features.graph.nodes)
        seeds = _fraud_seeds(con)
        node_features_in(inputs, pairs, _member_risks(members, stats, cands), seeds, n_folds=config.ppr_folds,
                         alpha=config.ppr_alpha)
        n_nodes = int(con.execute("SELECT count(*) FROM graph_node_features").fetchone()[0])
    layer_counts = pairs["layer"].value_counts()
    rep.counts = {"visits": n_visits, "edges": n_edges, "projection_nodes": g.number_of_nodes(),
                  "projection_edges": g.number_of_edges(),
                  "pairs_per_layer": {k: int(layer_counts.get(k, 0)) for k in LAYERS},
                  "oversupplied_buyers": int(oversupply["suspect"].sum()),
                  "communities_per_type": {k: int(n) for k, n in stats.loc[stats["size"] >= 3, "ring_type"]
                                           .value_counts().sort_index().items()},
                  "communities": int((stats["size"] >= 2).sum()),
                  "communities_3plus": int((stats["size"] >= 3).sum()), "ring_candidates": len(cands),
                  "ppr_seeds": len(seeds), "rule_hits_available": hits is not None, "nodes": n_nodes}
    with clock("write"):
        stats = stats.assign(in_ring_candidates=stats["community_id"].isin(cands["community_id"]))
        write_edges(inputs)
        _write(con, "graph_covisit_pairs", pairs)
        _write(con, "graph_communities", stats)
        _write(con, "graph_membership", members)
        _write(con, "ring_candidates", cands)
        log = pd.DataFrame([{"built_at": datetime.now().isoformat(timespec="seconds"), "method": method,
                             "config": json.dumps(asdict(config)), "counts": json.dumps(rep.counts),
                             "seconds": json.dumps(rep.seconds)}])
        _write(con, "graph_build_log", log)
    return rep


def layer_options(config: GraphConfig) -> dict:
    """The options of each projection layer (``projection_pairs``'s keywords) from a build config.

    >>> layer_options(GraphConfig())["co_counter"]["window_minutes"]
    10.0
    """
    return {
        "co_visit": dict(window_days=config.window_days, min_shared=config.min_shared, min_lift=config.min_lift,
                         min_surprise=config.min_surprise, max_crowd=config.max_crowd, visit_hub=config.visit_hub),
        "co_counter": dict(window_minutes=config.window_minutes, min_shared=config.counter_min_shared,
                           min_lift=config.counter_min_lift, min_surprise=config.counter_min_surprise,
                           max_crowd=config.max_crowd),
        "co_purchase": dict(min_spend=config.min_spend, min_fills=config.min_fills,
                            min_oversupply=config.min_oversupply, min_shops=config.min_shops,
                            min_lift=config.purchase_min_lift, min_surprise=config.purchase_min_surprise,
                            days_min_surprise=config.purchase_days_min_surprise),
    }


# -- private helpers ------------------------------------------------------------------------------


def _member_risks(members: pd.DataFrame, stats: pd.DataFrame, cands: pd.DataFrame) -> pd.DataFrame:
    """The community members with their community's risk and whether it is a ring candidate
    (``features.graph.nodes.MEMBER_SCHEMA``)."""
    risk = stats.set_index("community_id")["risk_score"]
    return members.assign(community_risk=members["community_id"].map(risk).fillna(0.0).astype(float),
                          in_ring_candidate=members["community_id"].isin(set(cands["community_id"])))


class _Clock:
    def __init__(self, rep: GraphReport, tick: Progress):
        self.rep, self.tick, self.done = rep, tick, 0

    def __call__(self, step: str):
        clock = self

        class _Ctx:
            def __enter__(self_inner):
                clock.tick(step, clock.done, len(STEPS))
                self_inner.t0 = time.perf_counter()

            def __exit__(self_inner, *exc):
                clock.rep.seconds[step] = round(time.perf_counter() - self_inner.t0, 2)
                clock.done += 1
                clock.tick(step, clock.done, len(STEPS))
                return False

        return _Ctx()


def _main_layer(g, members: frozenset) -> str | None:
    """The layer with most weight inside a community of the summed projection (for ``layered=False``)."""
    if len(members) < 2:
        return None
    sub = ordered_subgraph(g, members)
    w = {x: sum(d.get(f"w_{x}", 0.0) for _, _, d in sub.edges(data=True)) for x in LAYERS}
    return max(w, key=lambda x: (w[x], x == "co_visit"))


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() "
                            "AND table_name = ?", [name]).fetchall())


def _rule_hit_persons(con: duckdb.DuckDBPyConnection) -> set | None:
    """Persons with a rule hit, or None when the rule engine has not written ``rule_hits`` yet."""
    if not _has_table(con, "rule_hits"):
        return None
    cols = {r[0] for r in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'rule_hits' "
                                      "AND database_name = current_database()").fetchall()}
    if "psn_no" not in cols:
        return None
    return {r[0] for r in con.execute("SELECT DISTINCT psn_no FROM rule_hits WHERE psn_no IS NOT NULL").fetchall()}


def _fraud_seeds(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Known fraud: positive labels of persons, doctors and institutions (an institution's code is tried
    as both ``fixmedins`` and ``pharmacy``; the one not in the graph is ignored)."""
    if not _has_table(con, "labels"):
        return []
    rows = con.execute("SELECT DISTINCT entity_type, entity_id FROM labels WHERE label = 1 "
                       "AND entity_type IN ('psn', 'prac', 'fixmedins') ORDER BY 1, 2").fetchall()
    out = []
    for t, i in rows:
        out += [("fixmedins", i), ("pharmacy", i)] if t == "fixmedins" else [(t, i)]
    return out


def _write(con: duckdb.DuckDBPyConnection, table: str, df: pd.DataFrame) -> None:
    con.register("_graph_out", df)
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM _graph_out")
    finally:
        con.unregister("_graph_out")

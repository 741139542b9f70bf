"""The graph's node-sized outputs, computed where the edges are: ``graph_edges``, the cross-fitted
PageRank from known fraud (``ppr_fraud``) and ``graph_node_features``.

The edges grow with the claims (on ``city`` 1.8 M; a province tens of millions), so they stay where the
graph's inputs were computed: temporary tables of the warehouse (``--engine duckdb``) or Spark views
(``--engine spark``). What this module asks of the engine (``features.graph.edges.WarehouseGraphInputs``,
``features.graph.spark.SparkGraphInputs``) is SQL in DuckDB's dialect over those relations, and four
verbs: ``frame`` (a small pandas frame as a relation there), ``number`` (a SELECT's rows computed once,
as a relation, numbered ``i`` from 0 in an order: on Spark without moving them to one partition),
``query`` (a SELECT's rows to pandas) and ``store`` (a SELECT's rows into a warehouse table, without
passing through pandas).

PageRank is the one step that needs the whole graph at once (a walk crosses it in every step), and it
runs on the driver as before, on numbers only: the engine numbers the nodes in the order the pandas
implementation sorts them (``node_type``, ``node_id``), computes each node's fold (``fold_of``: CRC-32,
which DuckDB gets as a Python function and Spark has built in) and sends the edges as ``(i, j, w)``:
16 bytes an edge, no node id. The scores go back as one column per node number, and the node features
are one SELECT on the engine. The results are the same to the bit as ``personalised_pagerank`` on a
pandas edge list (same matrix, same sums: the weights are whole numbers).

>>> sorted(name for name, _ in NODE_COLUMNS)[:3]
['amount', 'betweenness', 'community_risk']
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.graph.pagerank import adjacency, cross_fitted_scores

__all__ = ["EDGE_COLUMNS", "NODE_COLUMNS", "MEMBER_SCHEMA", "write_edges", "node_features_in"]

# the columns (and DuckDB types) of graph_edges and graph_node_features
EDGE_COLUMNS = (("src_type", "VARCHAR"), ("src_id", "VARCHAR"), ("dst_type", "VARCHAR"), ("dst_id", "VARCHAR"),
                ("kind", "VARCHAR"), ("n_events", "BIGINT"), ("amount", "DOUBLE"), ("first_date", "TIMESTAMP"),
                ("last_date", "TIMESTAMP"))
NODE_COLUMNS = (("node_type", "VARCHAR"), ("node_id", "VARCHAR"), ("degree", "BIGINT"), ("weighted_degree", "BIGINT"),
                ("amount", "DOUBLE"), ("community_size", "BIGINT"), ("covisit_degree", "BIGINT"),
                ("covisit_strength", "DOUBLE"), ("betweenness", "DOUBLE"), ("organiser_rank", "BIGINT"),
                ("community_risk", "DOUBLE"), ("in_ring_candidate", "BOOLEAN"), ("ring_patients", "BIGINT"),
                ("ppr_fraud", "DOUBLE"))
# the community members as the node features read them (one row per person of the projection)
MEMBER_SCHEMA = ("node_type string, node_id string, community_size long, covisit_degree long, "
                 "covisit_strength double, betweenness double, organiser_rank long, community_risk double, "
                 "in_ring_candidate boolean")
_PAIR_SCHEMA = "psn_a string, psn_b string, w double"
_SEED_SCHEMA = "node_type string, node_id string"
_PPR_SCHEMA = "i long, ppr_fraud double"


def write_edges(inputs) -> None:
    """``graph_edges``: the input table ``edges`` as it is on the engine, into the warehouse."""
    cols = ", ".join(name for name, _ in EDGE_COLUMNS)
    inputs.store("graph_edges", f"SELECT {cols} FROM {inputs.prefix}edges", EDGE_COLUMNS)


def node_features_in(inputs, pairs: pd.DataFrame, members: pd.DataFrame, seeds: list[tuple[str, str]], *,
                     n_folds: int, alpha: float) -> None:
    """Write ``graph_node_features`` (one row per node of ``edges``, keyed by ``(node_type, node_id)``;
    ``members`` as :data:`MEMBER_SCHEMA`) with the cross-fitted PageRank walked over the edges and the
    projection's ``pairs``, restarted at ``seeds``.

    Persons carry their community's size and risk; doctors, institutions and pharmacies the highest risk
    among their patients' communities of 3+ and how many of their patients are in ring candidates."""
    p = inputs.prefix
    inputs.frame(f"{p}pairs", pd.DataFrame({
        "psn_a": pairs["psn_a"], "psn_b": pairs["psn_b"],
        "w": (pairs["shared_days"] + pairs["shared_shops"]).astype(float)}), _PAIR_SCHEMA)
    inputs.number(f"{p}node_index", _nodes_sql(p, n_folds), "node_type, node_id")
    folds = inputs.query(f"SELECT i, fold FROM {p}node_index", order="i")["fold"].to_numpy(dtype=np.int64)
    n = len(folds)
    scores = np.zeros(n)
    if n:
        inputs.frame(f"{p}seeds", pd.DataFrame(seeds, columns=["node_type", "node_id"], dtype=object), _SEED_SCHEMA)
        pos = inputs.query(f"SELECT x.i FROM {p}node_index x JOIN {p}seeds s "
                           "ON s.node_type = x.node_type AND s.node_id = x.node_id")["i"].to_numpy(dtype=np.int64)
        e = inputs.query(_adjacency_sql(p))
        a = adjacency(n, e["i"].to_numpy(dtype=np.int64), e["j"].to_numpy(dtype=np.int64),
                      e["w"].to_numpy(dtype=float))
        del e
        scores = cross_fitted_scores(a, folds, pos, n_folds=n_folds, alpha=alpha)
    inputs.frame(f"{p}ppr", pd.DataFrame({"i": np.arange(n, dtype=np.int64), "ppr_fraud": scores}), _PPR_SCHEMA)
    inputs.frame(f"{p}members", members[[c.split()[0] for c in MEMBER_SCHEMA.split(", ")]], MEMBER_SCHEMA)
    inputs.store("graph_node_features", _node_features_sql(p), NODE_COLUMNS)


# -- private helpers ------------------------------------------------------------------------------


def _nodes_sql(p: str, n_folds: int) -> str:
    """Every node of the walk (both ends of the edges and of the projection's pairs), with its fold
    (``features.graph.pagerank.fold_of``); the engine numbers them in (node_type, node_id) order."""
    return f"""
    SELECT node_type, node_id, crc32(CAST(concat(node_type, ':', node_id) AS BLOB)) % {int(n_folds)} AS fold
    FROM (SELECT src_type AS node_type, src_id AS node_id FROM {p}edges
          UNION SELECT dst_type, dst_id FROM {p}edges
          UNION SELECT 'psn', psn_a FROM {p}pairs
          UNION SELECT 'psn', psn_b FROM {p}pairs) nodes"""


def _adjacency_sql(p: str) -> str:
    """The walk's edges as node numbers and weights: the graph's (``n_events``) and the projection's
    person–person ties (shared days plus shared shops)."""
    return f"""
    SELECT a.i, b.i AS j, CAST(e.w AS DOUBLE) AS w
    FROM (SELECT src_type, src_id, dst_type, dst_id, CAST(n_events AS DOUBLE) AS w FROM {p}edges
          UNION ALL SELECT 'psn', psn_a, 'psn', psn_b, w FROM {p}pairs) e
    JOIN {p}node_index a ON a.node_type = e.src_type AND a.node_id = e.src_id
    JOIN {p}node_index b ON b.node_type = e.dst_type AND b.node_id = e.dst_id"""


def _node_features_sql(p: str) -> str:
    """Per node of the edges: its ``degree`` (distinct neighbours), ``weighted_degree`` (events) and
    ``amount`` (money, counted once: a person's on its institution and pharmacy edges, doctor edges repeat
    it; an institution's not on its doctors' works_at edges, summed as DECIMAL: exact in any order); its
    community (persons); over the patients of a doctor, institution or pharmacy in communities of 3 or more,
    the highest community risk and how many are in ring candidates (once per edge); its ``ppr_fraud``."""
    return f"""
    WITH both_ends AS (
        SELECT src_type AS node_type, src_id AS node_id, dst_type AS other_type, dst_id AS other_id, kind,
               n_events, amount FROM {p}edges
        UNION ALL
        SELECT dst_type, dst_id, src_type, src_id, kind, n_events, amount FROM {p}edges),
    totals AS (
        SELECT node_type, node_id, count(DISTINCT other_id) AS degree, CAST(sum(n_events) AS BIGINT) AS weighted_degree,
               CAST(coalesce(sum(CASE WHEN (kind IN ('care', 'purchase') OR node_type <> 'psn')
                                           AND NOT (kind = 'works_at' AND node_type = 'fixmedins')
                                      THEN CAST(amount AS DECIMAL(18, 2)) END), 0) AS DOUBLE) AS amount
        FROM both_ends GROUP BY node_type, node_id),
    prov AS (  -- the provider ends of person edges (both_ends' rows with a person at the other end, read
               -- from the edges themselves so that both_ends is read once and Spark need not keep it)
        SELECT b.node_type, b.node_id, max(m.community_risk) AS patients_community_risk,
               CAST(sum(CASE WHEN m.in_ring_candidate THEN 1 ELSE 0 END) AS BIGINT) AS ring_patients
        FROM (SELECT dst_type AS node_type, dst_id AS node_id, src_id AS other_id FROM {p}edges
              WHERE src_type = 'psn' AND dst_type <> 'psn'
              UNION ALL
              SELECT src_type, src_id, dst_id FROM {p}edges WHERE dst_type = 'psn' AND src_type <> 'psn') b
        JOIN {p}members m ON m.node_id = b.other_id
        WHERE m.community_size >= 3
        GROUP BY b.node_type, b.node_id)
    SELECT t.node_type, t.node_id, t.degree, t.weighted_degree, t.amount,
           coalesce(m.community_size, 0) AS community_size, coalesce(m.covisit_degree, 0) AS covisit_degree,
           coalesce(m.covisit_strength, 0.0) AS covisit_strength, coalesce(m.betweenness, 0.0) AS betweenness,
           coalesce(m.organiser_rank, 0) AS organiser_rank,
           coalesce(CASE WHEN t.node_type = 'psn' THEN m.community_risk ELSE pr.patients_community_risk END, 0.0)
               AS community_risk,
           coalesce(m.in_ring_candidate, false) AS in_ring_candidate,
           coalesce(pr.ring_patients, 0) AS ring_patients, coalesce(r.ppr_fraud, 0.0) AS ppr_fraud
    FROM totals t
    LEFT JOIN {p}members m ON m.node_type = t.node_type AND m.node_id = t.node_id
    LEFT JOIN prov pr ON pr.node_type = t.node_type AND pr.node_id = t.node_id
    LEFT JOIN {p}node_index x ON x.node_type = t.node_type AND x.node_id = t.node_id
    LEFT JOIN {p}ppr r ON r.i = x.i"""

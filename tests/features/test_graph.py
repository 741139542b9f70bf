"""The co-visit graph: null model, communities, fallback, build and ring recovery on simulated regions."""

from __future__ import annotations

import duckdb
import networkx as nx
import numpy as np
import pandas as pd
import pytest

from features.config import Settings
from features.graph import communities as comm
from features.graph.build import OUTPUT_TABLES, GraphConfig, build_graph
from features.graph.communities import detect_communities
from features.graph.evaluate import evaluate_rings
from features.graph.projection import co_purchase_pairs, co_visit_graph, co_visit_pairs

GROUP = [f"G{i}" for i in range(6)]


def _planted_visits(seed: int = 3) -> pd.DataFrame:
    """A planted group of six persons at clinic H1 on five days; 300 background persons visiting H1 and
    H2 now and then; a busy hub (a department open every day) whose 40 regulars come three times a week."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01")
    rows = []
    for d in (10, 40, 75, 120, 200):
        rows += [(p, "fixmedins", "H1", start + pd.Timedelta(days=d)) for p in GROUP]
    for i in range(300):
        for _ in range(rng.integers(1, 6)):
            rows.append((f"N{i}", "fixmedins", rng.choice(["H1", "H2"]), start + pd.Timedelta(days=int(rng.integers(0, 365)))))
    for i in range(40):
        for d in rng.choice(365, 150, replace=False):
            rows.append((f"B{i}", "fixmedins", "BUSY", start + pd.Timedelta(days=int(d))))
    return pd.DataFrame(rows, columns=["psn_no", "hub_type", "hub_id", "visit_date"])


def test_planted_group_is_one_community_and_hub_crowd_is_not():
    visits = _planted_visits()
    g = co_visit_graph(visits)
    found = detect_communities(g, seed=0)
    assert frozenset(GROUP) in found
    busy = {n for n in g if str(n).startswith("B")}
    assert not any(len(c & busy) >= 3 for c in found), "regulars of a busy hub must not form a ring"


def test_null_model_demotes_the_busy_hub():
    visits = _planted_visits()
    raw = co_visit_pairs(visits, min_lift=0, min_surprise=0)
    busy = raw[raw["psn_a"].str.startswith("B") & raw["psn_b"].str.startswith("B")]
    group = raw[raw["psn_a"].isin(GROUP) & raw["psn_b"].isin(GROUP)]
    # the busy regulars meet far more often than the group...
    assert busy["shared_days"].median() > 10 * group["shared_days"].median() / 5
    # ...but no more than chance says, while the group's five meetings are very unlikely
    assert busy["lift"].max() < 2
    assert group["surprise"].min() > 4
    kept = co_visit_pairs(visits)
    assert not kept["psn_a"].str.startswith("B").any()
    assert len(kept[kept["psn_a"].isin(GROUP) & kept["psn_b"].isin(GROUP)]) == 15


def test_co_purchase_layer_links_buyers_of_the_same_drug_beyond_supply_not_of_the_same_shops():
    """Three buyers oversupplied with the same drug at the same four of twenty shops are linked; 400
    persons who use the same shops, half of them three or more, for their monthly refills are not (issue
    16: shared pharmacies alone tied a card pool to a resale ring)."""
    day0 = pd.Timestamp("2024-01-01")
    rows = [(p, f"S{(d + k) % 4 + 1}", day0 + pd.Timedelta(days=10 * d + k), 180.0)
            for k, p in enumerate("ABC") for d in range(12)]
    rows += [(f"X{i}", f"S{1 + (i + m % 3) % 20 if i < 200 else 1 + i % 20}", day0 + pd.Timedelta(days=30 * m), 30.0)
             for i in range(400) for m in range(12)]
    p = pd.DataFrame(rows, columns=["psn_no", "hub_id", "visit_date", "supply"]).assign(drug="INS", amount=300.0)
    pairs = co_purchase_pairs(p)
    assert set(map(tuple, pairs[["psn_a", "psn_b"]].values)) == {("A", "B"), ("A", "C"), ("B", "C")}
    assert (pairs["layer"] == "co_purchase").all()


def test_communities_are_deterministic_with_a_seed():
    g = nx.planted_partition_graph(6, 8, 0.7, 0.05, seed=1)
    for u, v in g.edges:
        g[u][v]["weight"] = 1.0 + (u * v) % 3
    for method in comm.available_methods():
        assert detect_communities(g, method=method, seed=5) == detect_communities(g, method=method, seed=5)


_BETWEENNESS_IN_A_PROCESS = """
import json, networkx as nx
from features.graph.stats import component_betweenness
one = nx.relabel_nodes(nx.gnm_random_graph(200, 600, seed=3), lambda i: f"P{i:04d}")
other = nx.relabel_nodes(nx.gnm_random_graph(300, 900, seed=4), lambda i: f"Q{i:04d}")
g = nx.union(one, other)  # each component under half the graph: its subgraph view iterates the set
print(json.dumps(component_betweenness(g, seed=0, k=50), sort_keys=True))
"""


def test_betweenness_is_the_same_in_every_process():
    """Python hashes strings differently in each process; a networkx subgraph of a set iterates in hash
    order, so the sampled sources (and the order of the sums) changed from one graph build to the next."""
    import subprocess
    import sys

    runs = {subprocess.run([sys.executable, "-c", _BETWEENNESS_IN_A_PROCESS], capture_output=True, text=True,
                           check=True, env={**__import__("os").environ, "PYTHONHASHSEED": str(seed)}).stdout
            for seed in (1, 2, 3)}
    assert len(runs) == 1


def test_networkx_fallback_when_leidenalg_and_igraph_are_missing(monkeypatch):
    monkeypatch.setattr(comm, "_installed", lambda name: False)
    assert comm.available_methods() == ["networkx"]
    assert comm.resolve_method("auto") == "networkx"
    with pytest.raises(ImportError):
        comm.resolve_method("leiden")
    g = co_visit_graph(_planted_visits())
    assert frozenset(GROUP) in detect_communities(g, seed=0)


def test_methods_agree_on_the_planted_group():
    g = co_visit_graph(_planted_visits())
    for method in comm.available_methods():
        assert frozenset(GROUP) in detect_communities(g, method=method, seed=0), method


@pytest.fixture(scope="session")
def tiny_graph_warehouse(tiny_region, tmp_path_factory):
    """The tiny region ingested and its graph built."""
    from features.ingest import ingest

    wh = tmp_path_factory.mktemp("graph") / "warehouse.duckdb"
    ingest(tiny_region, Settings(warehouse=wh))
    build_graph(wh, GraphConfig(seed=0))
    return wh


def test_build_writes_the_graph_tables(tiny_graph_warehouse):
    with duckdb.connect(str(tiny_graph_warehouse), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert set(OUTPUT_TABLES) <= tables
        nodes = con.execute("SELECT * FROM graph_node_features").df()
        comms = con.execute("SELECT * FROM graph_communities").df()
    assert set(nodes["node_type"]) == {"psn", "prac", "fixmedins", "pharmacy"}
    assert not nodes.duplicated(["node_type", "node_id"]).any()
    assert {"degree", "weighted_degree", "community_size", "community_risk", "betweenness", "ppr_fraud"} <= set(nodes)
    assert nodes["ppr_fraud"].notna().all() and (nodes["ppr_fraud"] >= 0).all()
    assert {"size", "density", "synchrony", "rule_hit_share", "amount_concentration", "organisers",
            "risk_score"} <= set(comms)
    assert comms["rule_hit_share"].isna().all()  # no rule_hits table in this warehouse


def test_pagerank_where_the_edges_are_is_the_pandas_walk_to_the_bit(tiny_graph_warehouse):
    """The build walks PageRank on node numbers and folds computed in SQL (``features.graph.nodes``: CRC-32 in
    DuckDB as Spark has it); the scores are those of ``cross_fitted_pagerank`` on the pandas edge list."""
    from features.graph.pagerank import cross_fitted_pagerank

    with duckdb.connect(str(tiny_graph_warehouse), read_only=True) as con:
        edges = con.execute("SELECT src_type, src_id, dst_type, dst_id, n_events FROM graph_edges").df()
        pairs = con.execute("SELECT psn_a, psn_b, shared_days + shared_shops AS n FROM graph_covisit_pairs").df()
        seeds = con.execute("SELECT DISTINCT entity_type, entity_id FROM labels WHERE label = 1 "
                            "AND entity_type IN ('psn', 'prac', 'fixmedins')").fetchall()
        nodes = con.execute("SELECT node_type, node_id, ppr_fraud FROM graph_node_features").df()
    seeds = [s for t, i in seeds for s in ([("fixmedins", i), ("pharmacy", i)] if t == "fixmedins" else [(t, i)])]
    walk = pd.concat([edges.assign(n_events=edges["n_events"].astype(float)),
                      pd.DataFrame({"src_type": "psn", "src_id": pairs["psn_a"], "dst_type": "psn",
                                    "dst_id": pairs["psn_b"], "n_events": pairs["n"].astype(float)})])
    expected = cross_fitted_pagerank(walk, seeds)
    got = nodes.set_index(["node_type", "node_id"])["ppr_fraud"]
    assert len(seeds) > 10 and (got > 0).sum() > 100
    assert got.to_dict() == expected.reindex(got.index).to_dict()


def test_eval_runs_on_tiny(tiny_graph_warehouse):
    ev = evaluate_rings(tiny_graph_warehouse)
    print(f"\ntiny: ring recovery {ev.recovery:.0%} of {len(ev.rings)}; false rings {ev.false_ring_count} "
          f"of {len(ev.households)} households; organiser hit rate {ev.organiser_hit_rate:.0%}")
    assert len(ev.rings) >= 2
    assert set(ev.rings["fraud_type"]) == {"collusive_ring", "drug_resale"}
    assert 0.0 <= ev.recovery <= 1.0


def test_cli_graph_build_and_eval(tiny_graph_warehouse):
    import json

    from typer.testing import CliRunner

    from serving.cli import app

    res = CliRunner().invoke(app, ["graph", "eval", "--warehouse", str(tiny_graph_warehouse), "--json"])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert {"recovery", "rings", "households", "organiser_hit_rate"} <= set(payload)


@pytest.mark.slow
def test_rings_recovered_on_small(tmp_path):
    """The issue's bar: ≥ 80 % of injected rings matched by a community at Jaccard ≥ 0.5 and of the ring's
    own type (small, seed 7; issue 16 asks ≥ 90 %, measured 6/6 in docs/graph.md)."""
    from features.ingest import ingest
    from training.simulator import simulate

    simulate("small", seed=7, out=tmp_path / "region")
    wh = tmp_path / "warehouse.duckdb"
    ingest(tmp_path / "region", Settings(warehouse=wh))
    build_graph(wh, GraphConfig(seed=0))
    ev = evaluate_rings(wh)
    print(f"\nsmall: ring recovery {ev.recovery:.0%} of {len(ev.rings)}; false rings {ev.false_ring_count} "
          f"of {len(ev.households)} households; organiser hit rate {ev.organiser_hit_rate:.0%}")
    assert len(ev.rings) >= 5
    assert ev.recovery >= 0.8
    assert set(ev.rings.loc[ev.rings["recovered"], "fraud_type"]) == {"collusive_ring", "drug_resale"}
    assert ev.false_ring_count <= 2


@pytest.mark.parametrize("module", ["edges", "projection", "communities", "stats", "pagerank", "nodes", "evaluate", "evidence",
                                    "build"])
def test_docstring_examples(module):
    import doctest
    import importlib

    mod = importlib.import_module(f"features.graph.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_node_numbers_and_folds_on_spark_are_those_of_pandas(spark):
    """PageRank's node numbering and folds, computed by Spark (``features.graph.nodes``, numbered in ranges by
    ``features.graph.spark.numbered``): the pandas order of (node_type, node_id) and ``fold_of``'s CRC-32, for
    ids in any script."""
    from features.graph.nodes import _nodes_sql
    from features.graph.pagerank import fold_of
    from features.graph.spark import numbered
    from features.spark_sql import to_spark

    ids = ["220100000000001202", "P2", "药店甲", "ＡＢ", "a b", "Z"]
    spark.createDataFrame(pd.DataFrame({"src_type": "psn", "src_id": ids, "dst_type": ["prac", "fixmedins"] * 3,
                                        "dst_id": ids[::-1]}), schema="src_type string, src_id string, "
                          "dst_type string, dst_id string").createOrReplaceTempView("t_edges")
    spark.createDataFrame(pd.DataFrame({"psn_a": ["Q1"], "psn_b": ["Q0"]}),
                          schema="psn_a string, psn_b string").createOrReplaceTempView("t_pairs")
    parts = spark.conf.get("spark.sql.shuffle.partitions")
    spark.conf.set("spark.sql.shuffle.partitions", "3")  # numbered over several ranges, as on a cluster
    try:
        got = numbered(spark.sql(to_spark(_nodes_sql("t_", 5))), ["node_type", "node_id"]).toPandas().sort_values("i")
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", parts)
    nodes = sorted({("psn", i) for i in ids + ["Q1", "Q0"]} | {(t, i) for t, i in zip(["prac", "fixmedins"] * 3, ids[::-1])})
    assert list(zip(got["node_type"], got["node_id"])) == nodes and got["i"].tolist() == list(range(len(nodes)))
    assert got["fold"].tolist() == [fold_of(t, i, 5) for t, i in nodes]


def test_a_region_without_visits_builds_empty_graph_tables(tiny_graph_warehouse, tmp_path):
    """No settlement in the warehouse yet (an extract whose claims were all quarantined): every graph table
    is written, empty, with its columns (the pandas node features failed on an empty edge list)."""
    wh = tmp_path / "empty.duckdb"
    with duckdb.connect(str(wh)) as con:
        con.execute(f"ATTACH '{tiny_graph_warehouse}' AS s (READ_ONLY)")
        for t in ("setl_d", "mdtrt_d", "fee_list_d", "fixmedins", "labels"):
            con.execute(f"CREATE TABLE {t} AS SELECT * FROM s.main.{t} WHERE false")
        con.execute("DETACH s")
    report = build_graph(wh, GraphConfig(seed=0))
    assert report.counts["edges"] == 0 and report.counts["nodes"] == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        for table in ("graph_edges", "graph_node_features"):
            assert con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
        assert [c for c, *_ in con.execute("DESCRIBE graph_node_features").fetchall()][-2:] == ["ring_patients",
                                                                                                  "ppr_fraud"]

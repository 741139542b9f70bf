"""Benchmark of the graph build: time and peak memory of each step on a built warehouse.

Run on demand (never in the test suite):

    .venv/bin/python benchmarks/bench_graph.py --warehouse /tmp/r4g/city.duckdb [--skip-networkx]

Steps run in one process, in pipeline order: edge extraction (SQL: encounters, drug purchases, drug shop
shares, the heterogeneous graph), the projection's three layers one by one (co-visits at institutions,
same counter within minutes, co-purchase of the same drug), community detection with each installed
method on the summed projection (Leiden, igraph Louvain, networkx Louvain; with their modularity) and per
layer as the build does it, community stats with the ring evidence and organisers, cross-fitted
personalised PageRank. The peak
memory of each step is the process's high-water mark (VmHWM) reset before the step (Linux
``/proc/self/clear_refs``), so it includes what earlier steps still hold. Last, the whole
``yibao graph build`` runs in a child process on a copy of the warehouse for the end-to-end figure.
Prints one line per step and a JSON summary; record the figures in docs/benchmarks.md ("Graph").
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _vm(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in GiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _step(out: dict, name: str, fn):
    _reset_peak()
    t0 = time.perf_counter()
    result = fn()
    secs = time.perf_counter() - t0
    out[name] = {"seconds": round(secs, 2), "peak_rss_gib": round(_vm("VmHWM"), 2)}
    print(f"{name:<24} {secs:8.1f} s   peak RSS {out[name]['peak_rss_gib']:.2f} GiB", flush=True)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-networkx", action="store_true", help="leave out the (slow) networkx Louvain")
    ap.add_argument("--skip-build", action="store_true", help="leave out the end-to-end build in a child process")
    ap.add_argument("--doctors-only", action="store_true",
                    help="only compare the community methods on the doctor–doctor shared-patient graph")
    args = ap.parse_args()

    import networkx as nx
    import pandas as pd

    from features.graph.build import GraphConfig, _fraud_seeds, layer_options
    from features.graph.communities import available_methods, detect_communities, layered_communities
    from features.graph.edges import read_drug_purchases, read_drug_shops, read_edges, read_visits
    from features.graph.pagerank import cross_fitted_pagerank
    from features.graph.projection import (co_counter_pairs, co_purchase_pairs, co_visit_graph, co_visit_pairs,
                                           drug_oversupply)
    from features.graph.stats import community_stats, membership
    from features.warehouse import connect

    cfg = GraphConfig(seed=args.seed)
    out: dict = {"warehouse": str(args.warehouse),
                 "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} cores usable, "
                            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
                            f"Python {platform.python_version()}"}
    if args.doctors_only:
        _doctor_graph_methods(args, out)
        print(json.dumps(out, ensure_ascii=False, indent=1))
        return
    with connect(args.warehouse, read_only=True) as con:
        visits = _step(out, "edges: visits (SQL)", lambda: read_visits(con))
        purchases = _step(out, "edges: drug purchases (SQL)", lambda: read_drug_purchases(con, min_spend=cfg.min_spend))
        popularity = _step(out, "edges: drug shops (SQL)", lambda: read_drug_shops(con))
        edges = _step(out, "edges: graph (SQL)", lambda: read_edges(con))
        seeds = _fraud_seeds(con)
    opts = layer_options(cfg)
    clinics = visits[visits["hub_type"] != "pharmacy"]
    parts = [_step(out, "projection: co_visit", lambda: co_visit_pairs(clinics, **opts["co_visit"])),
             _step(out, "projection: co_counter", lambda: co_counter_pairs(visits, **opts["co_counter"])),
             _step(out, "projection: co_purchase", lambda: co_purchase_pairs(purchases, popularity=popularity,
                                                                            **opts["co_purchase"]))]
    pairs = pd.concat(parts, ignore_index=True)
    g = _step(out, "projection: nx graph", lambda: co_visit_graph(visits, pairs=pairs))
    out["sizes"] = {"visits": len(visits), "drug purchase rows": len(purchases), "edges": len(edges),
                    "projection_nodes": g.number_of_nodes(), "projection_edges": g.number_of_edges(),
                    "pairs per layer": pairs["layer"].value_counts().to_dict()}
    print(f"visits {len(visits):,}, graph edges {len(edges):,}, projection {g.number_of_nodes():,} persons / "
          f"{g.number_of_edges():,} pairs ({out['sizes']['pairs per layer']})", flush=True)
    methods = [m for m in available_methods() if not (args.skip_networkx and m == "networkx")]
    for lib in ("igraph", "leidenalg"):  # import outside the timed steps
        try:
            __import__(lib)
        except ImportError:
            pass
    found = {}
    for m in methods:
        found[m] = _step(out, f"communities: {m} (one graph)", lambda m=m: detect_communities(g, method=m, seed=args.seed))
        q = nx.community.modularity(g, found[m], weight="weight")
        out[f"communities: {m} (one graph)"] |= {"modularity": round(q, 4),
                                                 "communities_3plus": sum(len(c) >= 3 for c in found[m])}
        print(f"{'':<24} modularity {q:.4f}, {sum(len(c) >= 3 for c in found[m]):,} communities of 3+", flush=True)
    comms, layer_of = _step(out, f"communities: {methods[0]} per layer",
                            lambda: layered_communities(g, method=methods[0], seed=args.seed))
    oversupply = drug_oversupply(purchases, min_spend=cfg.min_spend, min_fills=cfg.min_fills,
                                 min_oversupply=cfg.min_oversupply, min_shops=cfg.min_shops)
    _step(out, "stats + evidence + organisers", lambda: (
        community_stats(g, comms, visits, layer_of=layer_of, purchases=purchases, oversupply=oversupply),
        membership(g, comms, seed=args.seed)))
    walk = pd.concat([edges[["src_type", "src_id", "dst_type", "dst_id", "n_events"]],
                      pd.DataFrame({"src_type": "psn", "src_id": pairs["psn_a"], "dst_type": "psn",
                                    "dst_id": pairs["psn_b"],
                                    "n_events": (pairs["shared_days"] + pairs["shared_shops"]).astype(float)})],
                     ignore_index=True)  # the heterogeneous graph plus the projection's ties, as the build walks
    _step(out, "pagerank (5 folds)", lambda: cross_fitted_pagerank(walk, seeds))

    _doctor_graph_methods(args, out)
    if not args.skip_build:
        with tempfile.TemporaryDirectory(dir=args.warehouse.parent) as tmp:
            copy = Path(tmp) / "warehouse.duckdb"
            shutil.copy(args.warehouse, copy)
            code = (f"import json, resource, time; from features.graph.build import build_graph; t=time.perf_counter(); "
                    f"r=build_graph({str(copy)!r}); "
                    f"print(json.dumps({{'seconds': round(time.perf_counter()-t, 1), 'steps': r.seconds, "
                    f"'peak_rss_gib': round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20, 2), "
                    f"'method': r.method, 'counts': r.counts}}))")
            proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
            out["build (child process)"] = json.loads(proc.stdout.strip().splitlines()[-1])
            b = out["build (child process)"]
            print(f"{'yibao graph build':<24} {b['seconds']:8.1f} s   peak RSS {b['peak_rss_gib']:.2f} GiB", flush=True)
    print(json.dumps(out, ensure_ascii=False, indent=1))


def _doctor_graph_methods(args, out: dict) -> None:
    """The co-visit projection of a simulated region is small after the null model (a few thousand
    persons), too small to tell the methods apart. This compares them on a bigger weighted graph of the
    same region: doctors linked by the patients they share (weight = shared patients, at least 2)."""
    import networkx as nx

    from features.graph.communities import available_methods, detect_communities
    from features.warehouse import connect

    sql = """
        WITH pd AS (SELECT DISTINCT psn_no, chfpdr_code AS prac FROM mdtrt_d
                    WHERE chfpdr_code IS NOT NULL AND med_type <> '41')
        SELECT a.prac AS u, b.prac AS v, count(*)::DOUBLE AS weight
        FROM pd a JOIN pd b ON a.psn_no = b.psn_no AND a.prac < b.prac
        GROUP BY ALL HAVING count(*) >= 2"""
    with connect(args.warehouse, read_only=True) as con:
        df = _step(out, "doctor graph: SQL", lambda: con.execute(sql).df())
    g = _step(out, "doctor graph: nx build", lambda: nx.from_pandas_edgelist(df, "u", "v", edge_attr="weight"))
    out["doctor graph"] = {"nodes": g.number_of_nodes(), "edges": g.number_of_edges()}
    print(f"doctor graph: {g.number_of_nodes():,} doctors, {g.number_of_edges():,} weighted edges", flush=True)
    for lib in ("igraph", "leidenalg"):  # import outside the timed steps
        try:
            __import__(lib)
        except ImportError:
            pass
    for m in available_methods():
        if args.skip_networkx and m == "networkx":
            continue
        name = f"doctor graph: {m}"
        found = _step(out, name, lambda m=m: detect_communities(g, method=m, seed=args.seed))
        q = nx.community.modularity(g, found, weight="weight")
        out[name] |= {"modularity": round(q, 4), "communities": len(found)}
        print(f"{'':<24} modularity {q:.4f}, {len(found):,} communities", flush=True)


if __name__ == "__main__":
    main()

"""``yibao graph ...``: the patient–doctor–pharmacy graph, its communities and ring candidates."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, _progress, console

__all__ = ["graph_app"]

graph_app = typer.Typer(help="就医关系图: co-visit graph, communities, ring candidates (团伙).", no_args_is_help=True)


@graph_app.command("build")
def graph_build(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    method: str = typer.Option("auto", help="Community detection: auto (fastest installed), leiden, louvain "
                               "(igraph) or networkx (BSD fallback)."),
    seed: int = typer.Option(0, help="Seed of community detection and betweenness sampling."),
    resolution: float = typer.Option(1.0, help="Modularity resolution (higher: smaller communities)."),
    window_days: int = typer.Option(1, help="Co-visit window in days (1 = the same day)."),
    min_surprise: float = typer.Option(4.0, help="Keep co-visit pairs at least this surprising (-log10 p)."),
    as_json: bool = JSON_OPT,
) -> None:
    """构建关系图: edges, co-visit projection, communities, ring candidates and graph features."""
    from features.graph.build import STEP_LABELS, STEPS, GraphConfig, build_graph
    from features.graph.communities import resolve_method

    s = _existing_warehouse(warehouse)
    try:
        resolve_method(method)
    except (ValueError, ImportError) as e:
        _fail(str(e))
    cfg = GraphConfig(method=method, seed=seed, resolution=resolution, window_days=window_days,
                      min_surprise=min_surprise)
    with _progress(as_json) as bar:
        task = bar.add_task("关系图 graph", total=len(STEPS))

        def tick(step: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"关系图 graph: {STEP_LABELS[step]}")

        rep = build_graph(s.warehouse, cfg, progress=tick)
    if as_json:
        return _emit(rep.to_dict(), True)
    t = Table(title=f"关系图 graph build ({rep.method})")
    t.add_column("步骤 step")
    t.add_column("秒 seconds", justify="right")
    for step in STEPS:
        t.add_row(STEP_LABELS[step], f"{rep.seconds.get(step, 0):.1f}")
    console.print(t)
    c = rep.counts
    console.print(f"共现投影 projection: {c['projection_nodes']:,} 人 persons, {c['projection_edges']:,} 对 pairs; "
                  f"社区 communities (≥2): {c['communities']:,} (≥3: {c['communities_3plus']:,}); "
                  f"疑似团伙 ring candidates: {c['ring_candidates']:,}; 节点特征 node features: {c['nodes']:,}")
    if not c["rule_hits_available"]:
        console.print("[yellow]规则命中表 rule_hits 不存在: rule_hit_share 为空 (run the rule engine first).[/yellow]")
    console.print(f"已写入 written to {s.warehouse}: graph_communities, graph_membership, ring_candidates, "
                  "graph_node_features, graph_edges, graph_covisit_pairs")


@graph_app.command("eval")
def graph_eval(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """团伙识别评估: does each labelled ring have a community matching it (Jaccard ≥ 0.5)?"""
    from features.graph.evaluate import RECOVERED_AT, evaluate_rings

    s = _existing_warehouse(warehouse)
    try:
        ev = evaluate_rings(s.warehouse)
    except Exception as e:  # noqa: BLE001 - missing tables: tell the user what to run
        if "graph_membership" in str(e) or "ring_candidates" in str(e) or "labels" in str(e):
            _fail(f"请先运行 run first: yibao graph build --warehouse {s.warehouse} ({e.__class__.__name__})")
        raise
    if as_json:
        return _emit(ev.to_dict(), True)
    t = Table(title="团伙召回 ring recovery (best community per labelled ring, with its type)")
    for col in ("团伙 ring", "类型 type", "人数 size", "最佳社区 community", "社区人数", "Jaccard", "社区类型 typed",
                "召回", "组织者排名"):
        t.add_column(col, justify="left" if col in ("团伙 ring", "类型 type", "最佳社区 community", "社区类型 typed")
                     else "right")
    for r in ev.rings.itertuples(index=False):
        t.add_row(r.ring_id, r.fraud_type, str(r.size), str(r.best_community or "-"), str(r.community_size),
                  f"{r.jaccard:.2f}", str(r.community_type or "-"), "✓" if r.recovered else "✗",
                  "-" if r.organiser_rank is None or r.organiser_rank != r.organiser_rank else str(int(r.organiser_rank)))
    console.print(t)
    n = len(ev.rings)
    console.print(f"召回率 recovery (Jaccard ≥ {RECOVERED_AT} and the right type): "
                  f"{int(ev.rings['recovered'].sum())}/{n} = {ev.recovery:.0%}  (Jaccard only: {ev.match_rate:.0%})")
    for kind, g in ev.rings.groupby("fraud_type"):
        console.print(f"  {kind}: {int(g['recovered'].sum())}/{len(g)}")
    console.print(f"家庭误报 false rings among {len(ev.households)} clean households: {ev.false_ring_count}")
    console.print(f"组织者命中 organiser in top-3 likely organisers: {ev.organiser_hit_rate:.0%} "
                  f"(top-1: {ev.organiser_top1_rate:.0%}) of recovered rings")
    if ev.pools is not None and len(ev.pools):
        console.print(f"空刷卡池 card pools (cards with ≥ 2 labelled phantom swipes at one pharmacy): "
                      f"{int(ev.pools['recovered'].sum())}/{len(ev.pools)} recovered as phantom_purchase")
        for r in ev.pools.itertuples(index=False):
            console.print(f"  {r.pool}: {r.cards} cards → {r.best_community or '-'} ({r.community_size} persons, "
                          f"Jaccard {r.jaccard:.2f}, {r.community_type or '-'})")
    if ev.type_counts:
        console.print("社区类型 communities of 3+ by type: " + ", ".join(f"{k} {v}" for k, v in ev.type_counts.items()))

"""``yibao features ...``: build the feature tables (特征表) of the warehouse, on DuckDB or Spark."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, console

__all__ = ["features_app"]

features_app = typer.Typer(help="特征 feature tables per level (settlement, person, doctor, institution, pharmacy).",
                           no_args_is_help=True)

_LABELS = {
    "feat_setl": "结算/就诊 settlement",
    "feat_psn": "参保人 person",
    "feat_prac": "医师 doctor",
    "feat_fixmedins": "医疗机构 institution",
    "feat_pharmacy": "定点药店 pharmacy",
}


@features_app.command("build")
def features_build(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    engine: str = typer.Option("duckdb", help="duckdb (default) or spark (the same SQL, transpiled; needs Java)."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Compute features as of this date (YYYY-MM-DD, the "
                                        "whole day counts) or time; default: the latest settlement."),
    table: Optional[list[str]] = typer.Option(None, "--table", help="Only this feature table (repeatable)."),
    memory_limit: Optional[str] = typer.Option(None, "--memory-limit", help="Cap DuckDB's memory, e.g. 4GB "
                                               "(default 60 % of RAM; DuckDB spills to disk beyond it)."),
    as_json: bool = JSON_OPT,
) -> None:
    """构建特征表: one feature table per level (feat_setl, feat_psn, feat_prac, feat_fixmedins, feat_pharmacy)."""
    from features.build import FEATURE_TABLES, FeatureBuildError, build_features, stage_blocks

    s = _existing_warehouse(warehouse)
    names = tuple(table) if table else FEATURE_TABLES
    t0 = time.perf_counter()
    bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                   TimeElapsedColumn(), console=console, disable=as_json)
    with bar:
        stage_task = bar.add_task("中间表 staging", total=len(stage_blocks()))
        tasks = {n: bar.add_task(f"{n} {_LABELS.get(n, '')}", total=1) for n in names}

        def tick(step: str, _done: int, _total: int) -> None:
            if step in tasks:
                bar.update(tasks[step], completed=1)
            else:
                bar.update(stage_task, advance=1, description=f"中间表 staging {step}")

        try:
            report = build_features(s.warehouse, engine=engine, as_of=as_of, tables=names, progress=tick,
                                    memory_limit=memory_limit)
        except FeatureBuildError as e:
            _fail(str(e))
        except ImportError as e:  # pyspark or sqlglot not installed
            _fail(f"Spark 引擎需要可选依赖 (the spark engine needs the spark extra: pip install .[spark]): {e}")
    payload = report.to_dict() | {"seconds": round(time.perf_counter() - t0, 1)}
    if as_json:
        return _emit(payload, True)
    t = Table(title=f"特征表 feature tables → {report.warehouse}  (引擎 engine {report.engine}, 截止 as of {report.as_of})")
    for c in ("表 table", "层级 level", "行数 rows", "列数 columns", "用时 s"):
        t.add_column(c, justify="right" if c[0] in "行列用" else "left")
    for r in report.tables:
        t.add_row(r.table, _LABELS.get(r.table, ""), f"{r.rows:,}", str(r.columns), f"{r.seconds:.1f}")
    console.print(t)
    if not report.rule_hits:
        console.print("[yellow]注意:[/yellow] 仓库中尚无规则命中表 rule_hits (rules not run yet): rh_* 列为 0")
    if not report.graph:
        console.print("提示: 无 graph_node_features 表, 未加入图特征 (no graph features joined)")
    console.print(f"中间表 staging {report.stage_seconds:.1f} s, 合计 total {payload['seconds']} s")

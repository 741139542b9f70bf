"""``yibao run``: the declared batch pipeline (``serving.pipeline``), stage by stage, skipping what is up to date."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import DEV_OPT, JSON_OPT, _emit, _fail, _progress, _settings, console, require_key

__all__ = ["run_command"]


def run_command(
    source: Optional[Path] = typer.Option(None, "--source", help="The extract folder (needed by the ingest stage)."),
    out: Path = typer.Option(..., "--out", help="Work folder: the warehouse (warehouse.duckdb) and the clue store."),
    stages: str = typer.Option("ingest,rules,graph,features,screen", "--stages",
                               help="Comma-separated stages, run in pipeline order."),
    engine: str = typer.Option("duckdb", "--engine", help="duckdb | spark (the rule SQL, the graph's inputs "
                               "and projection pairs, the feature SQL and the settlement scores on Spark, the rest on "
                               "DuckDB and the driver; the report says per stage what ran where; needs Java 17)."),
    spark_master: str = typer.Option("local[2]", "--spark-master",
                                     help="With --engine spark: local[N] or a cluster, e.g. spark://host:7077."),
    spark_conf: Optional[list[str]] = typer.Option(None, "--spark-conf",
                                                   help="With --engine spark: KEY=VALUE, a Spark setting "
                                                        "(repeatable), e.g. spark.executor.memory=8g."),
    bundle: Optional[Path] = typer.Option(None, help="A scorer bundle for the screen stage instead of the registry's."),
    model: str = typer.Option("champion", help="Registered alias or version for the screen stage."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI of the registry."),
    since: Optional[str] = typer.Option(None, "--since", help="Incremental run: judge, featurise and score only "
                                        "the settlements from this date on (YYYY-MM-DD), or 'auto': those loaded "
                                        "since each stage last ran; moved back to any earlier settlement loaded "
                                        "since. The graph and the entity features are built whole."),
    force: bool = typer.Option(False, help="Run every stage even when it is up to date."),
    dev: bool = DEV_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """流水线: ingest → rules → graph → features → screen, each stage once, skipping what is up to date."""
    from models.bundle import ModelNotRegistered
    from serving.pipeline import PipelineError, run_pipeline

    s = _settings(out / "warehouse.duckdb")
    if source is not None and not source.is_dir():
        _fail(f"数据目录不存在 (source folder not found): {source}")
    names = tuple(x.strip() for x in stages.split(",") if x.strip())
    if "ingest" in names:  # pseudonyms are made at ingest: the public development key only with --dev
        require_key(s, dev)
    if "ingest" not in names and not s.warehouse.is_file():
        _fail(f"仓库不存在 (warehouse not found): {s.warehouse}; run the ingest stage first (--source)")
    out.mkdir(parents=True, exist_ok=True)
    spark = None
    if engine == "spark":
        if any("=" not in kv for kv in spark_conf or []):
            _fail(f"--spark-conf 应为 KEY=VALUE (expected KEY=VALUE): {spark_conf}")
        conf = dict(kv.split("=", 1) for kv in spark_conf or [])
        try:
            from features.spark import spark_session

            spark = spark_session(spark_master, app_name="yibao-run", conf=conf)
        except ImportError as e:  # pyspark or sqlglot not installed
            _fail(f"Spark 引擎需要可选依赖 (the spark engine needs the spark extra: pip install .[spark]): {e}")
    with _progress(as_json) as bar:
        task = bar.add_task("流水线 pipeline", total=None)
        try:
            report = run_pipeline(s, source=source, stages=names, engine=engine, bundle_path=bundle, model_ref=model,
                                  tracking_uri=tracking_uri, force=force, spark=spark, since=since,
                                  progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=st))
        except (PipelineError, FileNotFoundError, ModelNotRegistered, ValueError, ConnectionError) as e:
            _fail(str(e))
        finally:
            if spark is not None:
                spark.stop()
    for st in report.stages:
        st.summary.pop("clue_list", None)
    if as_json:
        return _emit(report.to_dict(), True)
    console.print(_stage_table(report, narrow=console.width < 100))
    for st in report.stages:
        if st.summary.get("spark_declined"):
            console.print(f"{st.stage} 在 DuckDB 上运行 (ran on DuckDB): {st.summary['spark_declined']}")
    moments: dict[tuple, list[str]] = {}  # an incremental run: the moment the stages judged from, and why
    for st in report.stages:
        if "since" in st.summary:
            moments.setdefault((st.summary["since"], st.summary.get("since_note") or ""), []).append(st.stage)
    for (since, note), names in moments.items():
        console.print(f"增量 incremental ({', '.join(names)}): 自 from {since or '全量 all'}"
                      + (f" — {note}" if note else ""))


def _stage_table(report, *, narrow: bool) -> Table:
    """The run's tables per stage. On a terminal narrower than 100 columns (80 is common) the status and
    engine go under the stage's name (its second row) and the fingerprint is cut to its first 8 characters (``--json`` has
    it whole), so that every table's name is shown in full: ``feat_setl`` and ``feat_setl_peer_stats``
    must not both read ``feat_se…``."""
    t = Table(title=f"流水线 pipeline → {report.warehouse} ({report.seconds} s)")
    heads = (("阶段 stage", "用时 s", "表 table", "行数 rows", "指纹") if narrow else
             ("阶段 stage", "状态", "引擎 engine", "用时 s", "表 table", "行数 rows", "指纹 fingerprint"))
    for c in heads:
        t.add_column(c, justify="right" if c.startswith(("用时", "行数")) else "left",
                     no_wrap=c.startswith("表"))
    for st in report.stages:
        status = {"ran": "已运行", "skipped": "已是最新"}.get(st.status, st.status)
        rows = list(st.tables.items())
        if "clue_fingerprint" in st.summary:  # the clue list (in the clue store): its count and fingerprint
            rows.append(("clue_list", {"rows": st.summary.get("clues", 0),
                                           "fingerprint": st.summary["clue_fingerprint"]}))
        rows = rows or [("", {})]
        for i, (name, info) in enumerate(rows):
            count = f"{info['rows']:,}" if "rows" in info else ""
            seconds = f"{st.seconds}" if i == 0 else ""
            if narrow:
                state = f"{status} {st.engine}".rstrip()  # on the stage's second row (under its name)
                stage = (st.stage if len(rows) > 1 else f"{st.stage}\n{state}") if i == 0 else state if i == 1 else ""
                t.add_row(stage, seconds, name, count, info.get("fingerprint", "")[:8])
            else:
                t.add_row(st.stage if i == 0 else "", status if i == 0 else "", st.engine if i == 0 else "",
                          seconds, name, count, info.get("fingerprint", ""))
    return t


"""The ``yibao`` command line: simulate a region, ingest extracts, manage the rule pack, run the main job.

Every command prints a readable summary with Chinese labels, draws a progress bar on long steps, and
with ``--json`` prints one machine-readable JSON object instead (nothing else on stdout).
"""

from __future__ import annotations

if __name__ == "__main__":  # `python -m serving.cli`: run the module the sub-commands import, not a second copy
    from serving.cli import main

    main()
    raise SystemExit(0)

import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from features.config import Settings, load_settings, public_key_refusal

__all__ = ["app"]

app = typer.Typer(help="医保基金反欺诈 (medical-insurance fund anti-fraud): screening, rules, clues.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)

console = Console(stderr=True)


@app.callback()
def _options(verbose: bool = typer.Option(False, "--verbose", help="Show the libraries' own warnings and log "
                                          "lines (MLflow, LightGBM), hidden by default.")) -> None:
    """医保基金反欺诈 (medical-insurance fund anti-fraud): screening, rules, clues."""
    quiet_libraries(not verbose)


def quiet_libraries(quiet: bool = True) -> None:
    """Keep library noise out of the user's terminal: MLflow's INFO/WARNING lines (uv export, CloudPickle,
    pip version), its schema hints and its download bars, which say nothing the user can act on. Errors still
    show."""
    import logging
    import warnings

    level = logging.ERROR if quiet else logging.INFO
    # MLflow sets its loggers' level from MLFLOW_LOGGING_LEVEL when it is imported (later, by the command)
    os.environ["MLFLOW_LOGGING_LEVEL"] = logging.getLevelName(level)
    # and its "Downloading artifacts: 100%" bar, drawn over the command's own progress when the model is loaded
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false" if quiet else "true"
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(level)
    if quiet:
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"mlflow(\.|$)")


JSON_OPT = typer.Option(False, "--json", help="Print a machine-readable JSON summary on stdout.")
WAREHOUSE_OPT = typer.Option(None, "--warehouse", "-w", help="Warehouse file (DuckDB). Default: data/warehouse.duckdb "
                             "or YIBAO_WAREHOUSE.")


def _emit(payload: dict, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str, indent=1) + "\n")


def _progress(as_json: bool):
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), console=console, disable=as_json,
                    transient=False)


def _settings(warehouse: Optional[Path]) -> Settings:
    try:
        s = load_settings(warehouse=warehouse)
    except ValueError as e:
        console.print(f"[red]配置错误 (configuration error):[/red] {e}", soft_wrap=True)
        raise typer.Exit(2)
    return s


def _fail(msg: str, code: int = 2) -> None:
    # soft_wrap: not broken into lines by us (the terminal wraps it), so that a path or a code in the message
    # stays one piece to copy, at any width and when stderr is not a terminal
    console.print(f"[red]错误 (error):[/red] {msg}", soft_wrap=True)
    raise typer.Exit(code)


DEV_OPT = typer.Option(False, "--dev", help="Allow the public development pseudonym key (simulated data only).")


def require_key(s: Settings, dev: bool) -> None:
    """Refuse the public development pseudonym key unless ``--dev`` was given (exit 2, in plain words)."""
    if not s.using_dev_key:
        return
    if dev:
        console.print("[yellow]开发模式 (--dev): 使用公开的开发密钥假名化，仅可用于模拟数据 "
                      "(public development key: simulated data only).[/yellow]")
        return
    _fail(public_key_refusal(s))


def _existing_warehouse(warehouse: Optional[Path]) -> Settings:
    """Settings for a command that reads a warehouse which must already exist."""
    s = _settings(warehouse)
    if not s.warehouse.is_file():
        _fail(f"仓库不存在 (warehouse not found): {s.warehouse}; run `yibao ingest` first")
    return s


@app.command()
def simulate(
    preset: str = typer.Option("tiny", help="Region size: tiny (~2k persons), small (~20k), city (~300k), province (~3M)."),
    seed: int = typer.Option(7, help="Random seed: the same seed gives the same region, byte for byte."),
    out: Path = typer.Option(Path("data/region"), help="Output folder, one sub-folder per table."),
    fmt: str = typer.Option("parquet", "--format", help="parquet or csv."),
    scenarios: Optional[Path] = typer.Option(None, help="Scenario config (rates of each fraud type); default: built in."),
    persons: Optional[int] = typer.Option(None, help="Override the preset's number of persons."),
    dialect: str = typer.Option("national", help="How the extract writes codes (数据方言): national, lost-zeros "
                                "(13-digit item codes), local-suffix, mixed (per institution; as CSV also "
                                "GBK/UTF-8-BOM files, CRLF, 2024/01/05 dates)."),
    randomise: Optional[int] = typer.Option(None, help="Domain randomisation: draw the scenario config's rates, "
                                            "intensities, look-alikes and institution mix around their values "
                                            "with this seed (regions to train a model that transfers)."),
    layout: Optional[str] = typer.Option(None, help="folders (a sub-folder of part files per table) or lake "
                                         "(claim tables in partition folders month=YYYY-MM/region=<insured "
                                         "region>, as a province's data lake holds them); default: lake for "
                                         "province, else folders."),
    as_json: bool = JSON_OPT,
) -> None:
    """模拟统筹区: write a simulated pooling region with labelled fraud in the national tables."""
    from training.simulator import simulate as run

    t0 = time.perf_counter()
    with _progress(as_json) as bar:
        task = bar.add_task("模拟 simulate", total=None)

        def tick(_: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = run(preset, seed=seed, out=out, fmt=fmt, scenarios=scenarios, n_persons=persons,
                         dialect=dialect, randomise=randomise, layout=layout, progress=tick)
        except ValueError as e:
            _fail(str(e))
    payload = report.to_dict() | {"seconds": round(time.perf_counter() - t0, 1)}
    if as_json:
        return _emit(payload, True)
    dialect_note = "" if dialect == "national" else f", 方言 dialect {dialect}"
    lake_note = ", 数据湖分区 lake partitions" if report.layout == "lake" else ""
    t = Table(title=f"模拟统筹区 {preset} (seed {seed}{dialect_note}{lake_note}) → {out}")
    t.add_column("表 table")
    t.add_column("行数 rows", justify="right")
    if report.layout == "lake":
        t.add_column("分区 partitions", justify="right")
    for name, n in report.rows.items():
        t.add_row(name, f"{n:,}", *([f"{report.partitions[name]:,}" if name in report.partitions else "—"]
                                       if report.layout == "lake" else []))
    console.print(t)
    from features.contract import FRAUD_TYPES

    t = Table(title="注入的违规场景 injected fraud (labels)")
    for c in ("类型 type", "中文", "阳性 positives", "阴性 clean", "涉及金额 amount (元)"):
        t.add_column(c, justify="right" if "amount" in c or "tives" in c or "clean" in c else "left")
    for k, (zh, _) in FRAUD_TYPES.items():
        t.add_row(k, zh, str(report.positives[k]), str(report.negatives[k]), f"{report.amount_at_stake[k]:,.2f}")
    console.print(t)
    console.print(f"用时 {payload['seconds']} s")


@app.command()
def ingest(
    source: Path = typer.Argument(..., help="Folder with the extract tables (Parquet or CSV, file or folder per table)."),
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    apply_corrections: bool = typer.Option(False, "--apply-corrections", help="Apply a changed row for a loaded "
                                           "key (更正数据): the old version is kept in row_versions. Without it "
                                           "such rows stay in quarantine (changed_after_load)."),
    dev: bool = DEV_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """导入与校验: load an extract into the warehouse; bad rows go to quarantine (隔离), good rows go on.

    Exits 1 when a table was refused (its rows are not read; rows pointing at it are held until it loads).
    """
    from features.ingest import ingest as run

    s = _settings(warehouse)
    if not source.exists():
        _fail(f"数据目录不存在 (source folder not found): {source}")
    require_key(s, dev)
    s.warehouse.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with _progress(as_json) as bar:
        task = bar.add_task("导入 ingest", total=None)

        def tick(table: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=f"导入 ingest {table}")

        try:
            report = run(source, s, apply_corrections=apply_corrections, progress=tick)
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
    payload = report.to_dict() | {"warehouse": str(s.warehouse), "seconds": round(time.perf_counter() - t0, 1)}
    if "fee_list_d" not in report.missing_tables and not report.errors.get("fee_list_d"):
        from models.rules.coverage import unmatched_in_warehouse

        payload["unmatched_codes"] = [c.to_dict() for c in unmatched_in_warehouse(s.warehouse)]
    if as_json:
        _emit(payload, True)
    else:
        _print_ingest(payload)
    if report.errors:
        if not as_json:
            console.print(f"[red]错误 (error):[/red] {len(report.errors)} 张表被拒收，未入库 (table(s) refused): "
                          + ", ".join(report.errors))
        raise typer.Exit(1)


def _print_ingest(payload: dict) -> None:
    t = Table(title=f"导入结果 ingest → {payload['warehouse']}")
    heads = {"rows_in": "输入 in", "loaded": "入库 loaded", "corrected": "更正 corrected",
             "quarantined": "隔离 quarantined", "refused": "拒收 refused", "unchanged": "未变 unchanged",
             "held": "其中暂存 held", "released": "放行 released"}
    tables = payload["tables"]
    # a column that is 0 for every table says nothing: left out (and named below), so that the table
    # reads at 80 columns; in, loaded and quarantined always show
    shown = [k for k in heads if k in ("rows_in", "loaded", "quarantined") or any(c.get(k) for c in tables.values())]
    t.add_column("表 table", no_wrap=True)
    for k in shown:
        t.add_column(heads[k], justify="right")
    for name, c in tables.items():
        t.add_row(name, *(f"{c.get(k, 0):,}" for k in shown))
    console.print(t)
    zero = [heads[k].split()[0] for k in heads if k not in shown]
    if zero:
        console.print(f"（{'、'.join(zero)}：各表均为 0）")
    console.print("输入 = 入库 + 更正 + 隔离 + 拒收 + 未变；暂存的行等待其上级记录，上级入库后自动入库（放行）")
    if payload.get("rederive"):
        console.print(f"需重新计算规则与特征的结算 (settlements to re-derive): {payload['rederive']:,} "
                      f"(ingest_rederive, 例: {', '.join(payload.get('rederive_examples') or [])})")
    reasons = payload.get("reasons") or []
    if reasons:
        t = Table(title="隔离原因 quarantine reasons")
        for c in ("表 table", "原因 reason", "行数 rows"):
            t.add_column(c)
        for r in reasons:
            t.add_row(r["table"], r["reason_code"], f"{r['rows']:,}")
        console.print(t)
    rewrites = payload.get("code_rewrites") or []
    if rewrites:
        t = Table(title="编码标准化 codes brought to the national form (原值保存在 *_raw)")
        for c in ("表.字段 table.field", "改写 rewrite", "行数 rows"):
            t.add_column(c, justify="right" if "rows" in c else "left")
        for r in rewrites:
            t.add_row(f"{r['table']}.{r['field']}", r["meaning"], f"{r['rows']:,}")
        console.print(t)
    print_unmatched_codes(payload.get("unmatched_codes") or [])
    for w in payload.get("problems") or []:
        console.print(f"[yellow]注意:[/yellow] {w}")
    console.print(f"用时 {payload['seconds']} s")


def print_unmatched_codes(codes: list[dict]) -> None:
    """The codes that carry money but match nothing in the catalogue or the 两库 pack (ingest, rules run)."""
    if not codes:
        return
    t = Table(title="目录和两库均无匹配的编码 codes matching nothing (前20/每种写法, by amount)")
    for c in ("编码 code", "写法 form", "行数 lines", "金额 元"):
        t.add_column(c, justify="right" if c.startswith(("行", "金")) else "left")
    for c in codes:
        t.add_row(c["written"], c["form_zh"], f"{c['lines']:,}", f"{c['amount']:,.2f}")
    console.print(t)


@app.command()
def quarantine(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    table: Optional[str] = typer.Option(None, help="Only this table."),
    reason: Optional[str] = typer.Option(None, help="Only this reason code (e.g. sum_mismatch)."),
    limit: int = typer.Option(20, help="How many rows to list (0 = counts only)."),
    as_json: bool = JSON_OPT,
) -> None:
    """隔离区: what ingest set aside, counted per table and reason, with examples in plain words."""
    from features.ingest import list_quarantine, quarantine_counts

    s = _existing_warehouse(warehouse)
    try:
        counts = quarantine_counts(s.warehouse)
        rows = list_quarantine(s.warehouse, table=table, reason=reason, limit=limit) if limit else None
    except ValueError as e:
        _fail(str(e))
    if as_json:
        return _emit({"counts": counts.to_dict("records"),
                      "rows": [] if rows is None else rows.drop(columns=["raw"], errors="ignore").to_dict("records")},
                     True)
    t = Table(title="隔离区 quarantine")
    for c in counts.columns:
        t.add_column(str(c))
    for r in counts.itertuples(index=False):
        t.add_row(*[str(v) for v in r])
    console.print(t)
    if rows is not None and len(rows):
        t = Table(title="示例 examples")
        for c in ("table_name", "row_key", "field", "reason"):
            t.add_column(c, overflow="fold")
        for r in rows.itertuples(index=False):
            t.add_row(str(r.table_name), str(r.row_key), str(r.field), str(r.reason))
        console.print(t)


@app.command()
def demo(
    preset: str = typer.Option("small", help="Region size for the demo."),
    seed: int = typer.Option(7, help="Random seed."),
    workdir: Path = typer.Option(Path("data/demo"), help="Where the region, warehouse and clue store go."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (default: settings, "
                                               "sqlite:///mlruns/mlflow.db)."),
    as_json: bool = JSON_OPT,
) -> None:
    """主流程 main job: simulate → ingest → rules → graph → features → train → promote → screen → clue list."""
    from serving.pipeline import run_pipeline
    from training.simulator import simulate as run_sim

    region = workdir / "region"
    s = _demo_key(_settings(workdir / "warehouse.duckdb"))
    if s.warehouse.exists():
        s.warehouse.unlink()
        for extra in (s.warehouse.with_suffix(".duckdb.wal"), s.identity_vault):
            extra.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    steps = {}
    with _progress(as_json) as bar:
        task = bar.add_task("1/8 模拟 simulate", total=None)
        t0 = time.perf_counter()
        sim = run_sim(preset, seed=seed, out=region,
                      progress=lambda _, d, n: bar.update(task, completed=d, total=n))
        steps["simulate"] = {"seconds": round(time.perf_counter() - t0, 1), "rows": sim.rows}
        task = bar.add_task("2-5/8 导入 规则 关系图 特征", total=None)
        built = run_pipeline(s, source=region, stages=("ingest", "rules", "graph", "features"), fingerprints=False,
                             progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=st))
        for st in built.stages:
            steps[st.stage] = st.summary | {"seconds": st.seconds}
        from training.promote import compare, promote
        from training.train import TrainConfig, train

        task = bar.add_task("6/8 训练 train", total=None)
        uri = tracking_uri or s.tracking_uri
        trained = train(s.warehouse, TrainConfig(seed=seed), tracking_uri=uri, out_dir=workdir / "report",
                        progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=f"6/8 {st}"))
        steps["train"] = trained.to_dict()
        task = bar.add_task("7/8 晋级 promote", total=None)
        cmp = compare(uri, s.warehouse, candidate=trained.model_version)
        if cmp.recommended:
            promote(uri, cmp.candidate, reason="demo: " + cmp.reason)
        steps["promote"] = {"candidate": cmp.candidate, "champion_before": cmp.champion,
                            "promoted": cmp.recommended, "reason": cmp.reason}
        bar.update(task, completed=1, total=1)
        task = bar.add_task("8/8 筛查 screen", total=None)
        screened = run_pipeline(
            s, stages=("screen",), tracking_uri=uri, fingerprints=False,
            bundle_path=None if cmp.recommended else trained.report_dir / "scorer_bundle.joblib",
            progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=f"8/8 {st}"))
        steps["screen"] = screened.stage("screen").summary
        clues = steps["screen"].pop("clue_list")
    payload = {"region": str(region), "warehouse": str(s.warehouse), "steps": steps,
               "clues": [{k: c[k] for k in ("entity_type", "entity_id", "p_fraud", "amount_at_risk", "sources")}
                         for c in clues[:20]]}
    if as_json:
        return _emit(payload, True)
    _print_ingest(steps["ingest"] | {"warehouse": str(s.warehouse)})
    t = Table(title="规则命中 rule hits per typology (rule_hits)")
    for c in ("违规类型 typology", "中文", "命中 hits", "涉及金额 at risk (元)"):
        t.add_column(c, justify="right" if c.startswith(("命中", "涉及")) else "left")
    for k, v in steps["rules"]["typologies"].items():
        t.add_row(k, v["typology_zh"], f"{v['hits']:,}", f"{v['amount_at_risk']:,.2f}")
    t.add_row("合计 total", "", f"{steps['rules']['hits']:,}", f"{steps['rules']['amount_at_risk']:,.2f}")
    console.print(t)
    g = steps["graph"]["counts"]
    console.print(f"关系图 graph ({steps['graph']['method']}): " + ", ".join(f"{k} {v:,}" for k, v in g.items()
                                                                       if isinstance(v, int)))
    console.print("特征表 feature tables: " + ", ".join(f"{k} {v['rows']:,}×{v['columns']}"
                                                     for k, v in steps["features"]["tables"].items()))
    console.print(f"模拟区域 region: {region}  (标签 labels: {region / 'labels'})")
    console.print(f"数据仓库 warehouse: {s.warehouse}")
    console.print("查看隔离区: yibao quarantine --warehouse " + str(s.warehouse))
    console.print("规则评估: yibao rules eval --warehouse " + str(s.warehouse))
    h = steps["train"]["headline"]
    console.print("模型评估 (交叉拟合) precision@100: " + ", ".join(f"{k} {v:.2f}" for k, v in
                                                               h["precision_at_100"].items())
                  + " · 金额召回@500: " + ", ".join(f"{k} {v:.2f}" for k, v in h["amount_recall_at_500"].items()))
    console.print(f"评估报告 report: {steps['train']['report_dir']}/report.html · MLflow 版本 v{steps['train']['model_version']}"
                  f" ({'已晋级 champion' if steps['promote']['promoted'] else '未晋级: ' + steps['promote']['reason']})")
    from serving.cli_screen import print_clues

    print_clues(clues)
    console.print(f"线索库 clue store: {steps['screen']['store']} (新增 {steps['screen']['upsert']['new']}, "
                  f"更新 {steps['screen']['upsert']['updated']}); 查看: yibao clues list --warehouse {s.warehouse}")


def _demo_key(s: Settings) -> Settings:
    """The demo's settings with a key of this installation rather than the public development key: the
    key file beside the warehouse, generated (mode 0600) on the first run and reused afterwards, so that
    pseudonyms stay the same from one demo to the next. A configured key is used as it is."""
    from dataclasses import replace

    from features.pseudonym import KeyFileError, create_key_file, read_key_file

    if not s.using_dev_key:
        return s
    path = s.default_key_file
    try:
        key = read_key_file(path) if path.exists() else create_key_file(path)
    except (KeyFileError, OSError) as e:
        _fail(f"无法准备演示用的假名化密钥文件 (cannot prepare the demo's key file): {e}")
    if key == s.pseudonym_key:
        _fail(f"密钥文件 {path} 中是公开的开发密钥，请删除该文件后重新运行 yibao demo (key file holds the public key)")
    return replace(s, pseudonym_key=key, pseudonym_key_source=str(path))


from serving.cli_rules import rules_app  # noqa: E402  (sub-commands register on the shared app)
from serving.cli_exempt import exempt_app  # noqa: E402
from serving.cli_shadow import shadow_app  # noqa: E402

rules_app.add_typer(exempt_app, name="exempt")
rules_app.add_typer(shadow_app, name="shadow")
app.add_typer(rules_app, name="rules")
from serving.cli_features import features_app  # noqa: E402

app.add_typer(features_app, name="features")
from serving.cli_graph import graph_app  # noqa: E402

app.add_typer(graph_app, name="graph")
from serving.cli_benchmark import benchmark_app  # noqa: E402

app.add_typer(benchmark_app, name="benchmark")
from serving.cli_train import promote_command, train_command  # noqa: E402

app.command("train")(train_command)
app.command("promote")(promote_command)
from serving.cli_screen import screen_command  # noqa: E402

app.command("screen")(screen_command)
from serving.cli_run import run_command  # noqa: E402

app.command("run")(run_command)
from serving.cli_evaluate import calibrate_command, evaluate_app  # noqa: E402

app.add_typer(evaluate_app, name="evaluate")
app.command("calibrate")(calibrate_command)
from serving.cli_clues import clues_app, labels_app, users_app  # noqa: E402

app.add_typer(clues_app, name="clues")
app.add_typer(users_app, name="users")
app.add_typer(labels_app, name="labels")
from serving.cli_serve import serve_command  # noqa: E402

app.command("serve")(serve_command)
from serving.cli_evidence import evidence_app  # noqa: E402

app.add_typer(evidence_app, name="evidence")
from serving.cli_inspection import credit_command, inspection_app  # noqa: E402

app.command("credit")(credit_command)
app.add_typer(inspection_app, name="inspection")
from serving.cli_monitor import monitor_command  # noqa: E402

app.command("monitor")(monitor_command)


def main() -> None:  # pragma: no cover
    app()


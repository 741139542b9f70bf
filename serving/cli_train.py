"""``yibao train`` and ``yibao promote``: retrain the scorers, log them to MLflow, move the champion alias."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, WAREHOUSE_OPT, _emit, _existing_warehouse, _fail, _progress, _settings, console

__all__ = ["train_command", "promote_command"]

_RANKING_ZH = {"combined": "综合排序", "rules_alone": "仅规则", "amount_ranking": "按金额"}


def train_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    regions: Optional[str] = typer.Option(None, "--regions", help="Train on several regions: comma-separated "
                                          "warehouse files or `yibao run` work folders (instead of --warehouse)."),
    seed: int = typer.Option(0, help="Random seed: the same seed and data give the same models and report."),
    test_months: int = typer.Option(3, help="Settlements of the last N months are the evaluation window."),
    folds: int = typer.Option(5, help="Cross-fitting folds for the entity levels."),
    min_positives: int = typer.Option(10, help="Below this many labelled frauds a level uses the unsupervised "
                                      "fallback (IsolationForest)."),
    unlabelled: str = typer.Option("clean", help="clean: unlabelled rows are negatives (simulated regions); "
                                   "drop: train on labelled rows only (verified clue outcomes)."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (default: settings, "
                                               "sqlite:///mlruns/mlflow.db)."),
    out_dir: Optional[Path] = typer.Option(None, help="Report folder (default mlruns/reports/<time>)."),
    no_register: bool = typer.Option(False, "--no-register", help="Log the run but do not register the model."),
    as_json: bool = JSON_OPT,
) -> None:
    """训练模型: LightGBM / 无监督 scorers per level, evaluation report, one MLflow run, a registered version."""
    from training.train import TrainConfig, train
    from training.transfer import warehouse_of

    s = _settings(warehouse) if regions else _existing_warehouse(warehouse)
    try:
        sources = [warehouse_of(r.strip()) for r in regions.split(",") if r.strip()] if regions else s.warehouse
    except FileNotFoundError as e:
        _fail(str(e))
    config = TrainConfig(seed=seed, test_months=test_months, folds=folds, min_positives=min_positives,
                         unlabelled=unlabelled)
    with _progress(as_json) as bar:
        task = bar.add_task("训练 train", total=None)
        try:
            result = train(sources, config, tracking_uri=tracking_uri or s.tracking_uri, out_dir=out_dir,
                           register=not no_register,
                           progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=st))
        except (FileNotFoundError, ValueError, ConnectionError) as e:
            _fail(str(e))
    payload = result.to_dict()
    if as_json:
        return _emit(payload | {"levels": {lv: rep["mode"] | rep["metrics"]
                                           for lv, rep in result.report["levels"].items()}}, True)
    rep = result.report
    t = Table(title="各层级模型 models per level")
    for c in ("层级 level", "方式 mode", "标注欺诈 frauds", "ROC-AUC", "PR-AUC", "评估 evaluation"):
        t.add_column(c)
    for lv, r in rep["levels"].items():
        t.add_row(lv, "监督 LightGBM" if r["mode"]["mode"] == "supervised" else "[yellow]无监督 (标注不足)[/yellow]",
                  str(r["mode"]["n_positives"]), str(r["metrics"].get("roc_auc")), str(r["metrics"].get("pr_auc")),
                  r["evaluation"])
    for lv, why in rep.get("skipped_levels", {}).items():
        t.add_row(lv, "[yellow]未训练 skipped[/yellow]", "", "", "", why)
    console.print(t)
    combined = rep["rankings"]["combined"]
    if combined["n_fraud_entities"] == 0 and not combined["fraud_money"]:
        console.print("[yellow]本地区没有标注的欺诈 (no labelled fraud: the labels table is missing or empty): "
                      "线索清单无法评估，各层级为无监督模型（异常度），概率未校准。核实线索后用 yibao calibrate 校准，"
                      "或用其他地区训练的模型筛查 (yibao screen --bundle)。[/yellow]")
    else:
        t = Table(title="线索清单 clue list (cross-fitted)")
        t.add_column("排序 ranking")
        ks = list(combined["at"])
        for k in ks:
            t.add_column(f"精确率@{k}", justify="right")
            t.add_column(f"金额召回@{k}", justify="right")
        for name, ev in rep["rankings"].items():
            t.add_row(_RANKING_ZH[name], *[f"{ev['at'][k][m]:.3f}" for k in ks for m in ("precision", "amount_recall")])
        console.print(t)
    console.print(f"报告 report: {result.report_dir / 'report.html'}")
    if result.run_id:
        console.print(f"MLflow run {result.run_id}" + (
            f", 注册版本 registered version {result.model_version} (晋级: yibao promote)" if result.model_version
            else " (未注册 not registered)"))
    console.print(f"用时 {result.seconds} s")


def promote_command(
    warehouse: Optional[Path] = WAREHOUSE_OPT,
    version: Optional[str] = typer.Option(None, help="Candidate version (default: the latest registered)."),
    yes: bool = typer.Option(False, "--yes", help="Move the champion alias to the candidate."),
    reason: Optional[str] = typer.Option(None, help="Why (stored on the version; default: the comparison)."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI (default: settings)."),
    as_json: bool = JSON_OPT,
) -> None:
    """模型晋级: compare a version with the champion on the same window; move the alias only with --yes."""
    from training.promote import compare, promote

    s = _existing_warehouse(warehouse)
    uri = tracking_uri or s.tracking_uri
    try:
        cmp = compare(uri, s.warehouse, candidate=version)
    except (LookupError, ConnectionError) as e:
        _fail(str(e))
    moved = False
    if yes:
        promote(uri, cmp.candidate, reason=reason or cmp.reason)
        moved = True
    payload = cmp.to_dict() | {"promoted": moved}
    if as_json:
        return _emit(payload, True)
    t = Table(title=f"候选 candidate v{cmp.candidate} vs champion {('v' + cmp.champion) if cmp.champion else '—'}")
    for c in ("指标 metric", "候选 candidate", "champion", "差 delta"):
        t.add_column(c, justify="left" if c.startswith("指标") else "right")
    for r in cmp.rows:
        if r["headline"] or r["metric"].startswith("window."):
            t.add_row(("★ " if r["headline"] else "") + r["metric"], _fmt(r["candidate"]), _fmt(r["champion"]),
                      _fmt(r["delta"]))
    if cmp.rows:
        console.print(t)
    for n in cmp.notes:
        console.print(f"[yellow]注意:[/yellow] {n}")
    console.print(("建议晋级 recommended: " if cmp.recommended else "不建议晋级 not recommended: ") + cmp.reason)
    if moved:
        console.print(f"[green]champion → v{cmp.candidate}[/green]")
    else:
        console.print("未移动别名 alias not moved (加 --yes 执行 to promote)")


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

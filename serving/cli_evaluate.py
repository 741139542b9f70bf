"""``yibao evaluate transfer``: the clue list of a region the model never saw, judged by its labels."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from serving.cli import JSON_OPT, _emit, _fail, _progress, _settings, console

__all__ = ["evaluate_app", "calibrate_command"]

evaluate_app = typer.Typer(help="评估 evaluation of the clue list on regions the model never saw.",
                           no_args_is_help=True)


@evaluate_app.command("transfer")
def transfer_command(
    test: Path = typer.Option(..., "--test", help="The region to screen: a warehouse file or a `yibao run` folder."),
    train: Optional[str] = typer.Option(None, "--train", help="Comma-separated training regions (warehouse files "
                                        "or `yibao run` folders); a model is trained on them."),
    bundle: Optional[Path] = typer.Option(None, help="Screen with this scorer bundle instead of training one."),
    seed: int = typer.Option(0, help="Training seed."),
    out_dir: Optional[Path] = typer.Option(None, help="Where the report and the clue list go "
                                           "(default mlruns/transfer/<time>)."),
    tracking_uri: Optional[str] = typer.Option(None, help="Log one MLflow run here (default: settings)."),
    no_log: bool = typer.Option(False, "--no-log", help="Do not log to MLflow."),
    as_json: bool = JSON_OPT,
) -> None:
    """迁移评估: train on some regions (or take a bundle), screen another, judge its clue list by its labels."""
    from training.train import TrainConfig
    from training.transfer import evaluate_transfer

    if not train and bundle is None:
        _fail("需要 --train 区域或 --bundle (give training regions or a bundle)")
    s = _settings(None)
    regions = [Path(r.strip()) for r in (train or "").split(",") if r.strip()]
    with _progress(as_json) as bar:
        task = bar.add_task("迁移评估 transfer", total=None)
        try:
            report = evaluate_transfer(regions, test, config=TrainConfig(seed=seed), bundle_path=bundle,
                                       out_dir=out_dir, tracking_uri=None if no_log else (tracking_uri or s.tracking_uri),
                                       progress=lambda st, d, n: bar.update(task, completed=d, total=n, description=st))
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
    if as_json:
        return _emit(report.to_dict(), True)
    c = report.clue_list
    t = Table(title=f"迁移评估 clue list of {report.test} ({c['clues']} 条线索)")
    for col in ("前k条 top k", "精确率 precision", "宽口径 loose", "追回金额占比 money"):
        t.add_column(col, justify="right")
    for k in c["precision"]:
        t.add_row(k, f"{c['precision'][k]:.3f}", f"{c['precision_loose'][k]:.3f}", f"{c['at'][k]['money_caught']:.3f}")
    console.print(t)
    k = list(c["at"])[-1]
    t = Table(title=f"各违规类型召回 recall per typology (前 {k} 条)")
    for col in ("类型 typology", "案件 cases", "覆盖 reached", "召回 recall", "金额召回"):
        t.add_column(col, justify="right" if col[0] in "案覆召金" else "left")
    for tid, v in sorted(c["at"][k]["per_typology"].items()):
        t.add_row(f"{v['typology_zh']}", str(v["cases"]), str(v["reached"]), f"{v['recall']:.2f}",
                  "" if v["money_recall"] is None else f"{v['money_recall']:.2f}")
    console.print(t)
    inst, rings = c["fraud_institutions"], c["rings"]
    top = [key for key in inst if key.startswith("in_top_")][0]
    console.print(f"标注违规机构 {inst['labelled']} 家，进入{top[7:]}强 {len(inst[top])} 家"
                  + (f"；未进入: {', '.join(inst['missing'])}" if inst["missing"] else ""))
    top = [key for key in rings if key.startswith("in_top_")][0]
    console.print(f"标注团伙 {rings['labelled']} 个，进入{top[7:]}强 {len(rings[top])} 个"
                  + (f"；未进入: {', '.join(rings['missing'])}" if rings["missing"] else ""))
    console.print(f"用时 {report.seconds} s")


def calibrate_command(
    warehouse: Optional[Path] = typer.Option(None, "--warehouse", "-w", help="The region's warehouse."),
    bundle: Optional[Path] = typer.Option(None, help="A scorer bundle instead of the registered model."),
    model: str = typer.Option("champion", help="Registered alias or version."),
    sources: str = typer.Option("verified_clue,inspection", help="Label sources that count as verified outcomes "
                                "(`simulated` only to try it on a simulated region)."),
    tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI of the registry."),
    as_json: bool = JSON_OPT,
) -> None:
    """本地校准: fit the model's probabilities to this region's verified outcomes (at least 20)."""
    from models.bundle import ModelNotRegistered, ScorerBundle, load_registered
    from training.calibrate import calibrate_region

    s = _settings(warehouse)
    if not s.warehouse.is_file():
        _fail(f"仓库不存在 (warehouse not found): {s.warehouse}")
    try:
        b = ScorerBundle.load(bundle) if bundle else load_registered(tracking_uri or s.tracking_uri, model)
        cal = calibrate_region(s.warehouse, b, sources=tuple(x.strip() for x in sources.split(",") if x.strip()))
    except (FileNotFoundError, ModelNotRegistered, ValueError, ConnectionError) as e:
        _fail(str(e))
    if as_json:
        return _emit(cal.to_dict() | {"warehouse": str(s.warehouse)}, True)
    console.print(cal.note_zh)
    if cal.fitted:
        console.print(f"logit p' = {cal.a:+.3f} + {cal.b:.3f}·logit p；对数损失 {cal.logloss_before} → "
                      f"{cal.logloss_after}（留一 {cal.logloss_after_loo}），Brier {cal.brier_before} → {cal.brier_after}")
        console.print(f"已保存 {s.warehouse.parent / 'calibration.json'}；之后的 yibao screen 用它（仅对同一模型）。")

"""``yibao benchmark ...``: the project's models on real, labelled third-party data (基准测试)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from serving.cli import JSON_OPT, _emit, console

__all__ = ["benchmark_app"]

benchmark_app = typer.Typer(help="基准测试: models on real, labelled third-party data (Kaggle provider fraud).",
                            no_args_is_help=True)

PART_B_NOT_BUILT = ("(b) raw inpatient claims → data contract → project pipeline "
                    "(kaggle-provider-fraud/) is not built yet")


@benchmark_app.command("kaggle")
def benchmark_kaggle(
    data: Path = typer.Option(Path("../shared/benchmarks"), "--data",
                              help="The shared benchmarks folder (holding kaggle-provider-features/), or that "
                                   "sub-folder itself."),
    seed: int = typer.Option(0, help="Seed of the CV folds, the validation carve-outs and the models."),
    as_json: bool = JSON_OPT,
) -> None:
    """Kaggle provider fraud: (a) the provider model on the fixed train/test split vs the published figures."""
    from training.benchmarks.kaggle import ANCHORS, FEATURES_DIR, TARGET_PR_AUC, run_kaggle_benchmark

    folder = data / FEATURES_DIR if (data / FEATURES_DIR).is_dir() else data
    if not (folder / "X_train_all_feature.csv").is_file():
        msg = f"skipped: {data / FEATURES_DIR} not found"
        if as_json:
            return _emit({"skipped": msg, "not_yet": [PART_B_NOT_BUILT]}, True)
        typer.echo(msg)
        return
    if not as_json:
        console.print(f"(a) kaggle-provider-features, seed {seed}: 5-fold CV on train, then test once …")
    report = run_kaggle_benchmark(folder, seed=seed)
    if as_json:
        return _emit({**report.to_dict(), "target_pr_auc": TARGET_PR_AUC, "not_yet": [PART_B_NOT_BUILT]}, True)

    cv = Table(title=f"5-fold CV on the train split ({report.n_train:,} providers, {report.fraud_train} fraud)")
    for col in ("recipe", "ROC-AUC", "PR-AUC"):
        cv.add_column(col, justify="left" if col == "recipe" else "right")
    for name, m in report.cv.items():
        mark = " ← chosen" if name == report.chosen else ""
        cv.add_row(name + mark, f"{m['roc_auc']:.3f} ± {m['roc_auc_sd']:.3f}", f"{m['pr_auc']:.3f} ± {m['pr_auc_sd']:.3f}")
    console.print(cv)
    t = Table(title=f"Fixed test split ({report.n_test:,} providers, {report.fraud_test} fraud)")
    for col in ("method", "ROC-AUC", "PR-AUC"):
        t.add_column(col, justify="left" if col == "method" else "right")
    t.add_row(f"this project: {report.chosen}", f"{report.test['model']['roc_auc']:.3f}",
              f"{report.test['model']['pr_auc']:.3f}")
    t.add_row("ranking by TotalInscClaimAmtReimbursed (this run)", f"{report.test['amount_ranking']['roc_auc']:.3f}",
              f"{report.test['amount_ranking']['pr_auc']:.3f}")
    for name, m in ANCHORS.items():
        t.add_row(f"published: {name}", str(m["roc_auc"]), str(m["pr_auc"]))
    console.print(t)
    gap = report.test["model"]["pr_auc"] - TARGET_PR_AUC
    verdict = "reached" if gap >= 0 else f"not reached (short by {-gap:.3f})"
    console.print(f"target test PR-AUC ≥ {TARGET_PR_AUC}: {verdict}; {report.seconds:.0f} s")
    console.print(f"[yellow]not built yet:[/yellow] {PART_B_NOT_BUILT}")

"""MLflow logging of a training run (实验追踪) and the pyfunc wrapper of the scorer bundle.

One run per training: parameters (the :class:`~training.train.TrainConfig` and each level's mode),
metrics (flattened report figures), one dataset input per level (digest of the rows and labels used), the
bundle as a pyfunc model with a signature (settlement features in, P(fraud) out; ``params={"level": …}``
scores another level), the report files, and tags for the git commit, rule-pack version and evaluation
window. The version is registered under ``yibao-fraud``; the ``champion`` alias is only moved by
:mod:`training.promote`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature
from mlflow.pyfunc import PythonModel

from models.bundle import ScorerBundle

__all__ = ["BundleModel", "log_training", "flat_metrics", "configure"]

# MLflow prints to stderr and warns about every small thing; an analyst's terminal needs the figures.
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


class BundleModel(PythonModel):
    """pyfunc face of a :class:`ScorerBundle`: ``predict(frame, params={"level": "setl"})`` → P(fraud)."""

    def load_context(self, context) -> None:
        self.bundle = ScorerBundle.load(Path(context.artifacts["bundle"]))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        level = (params or {}).get("level", "setl")
        return pd.DataFrame({"p_fraud": self.bundle.score(level, model_input)})


def configure(tracking_uri: str) -> None:
    """Point MLflow at ``tracking_uri``; a local ``sqlite:///dir/mlflow.db`` gets its folder created."""
    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def _experiment(tracking_uri: str, name: str) -> None:
    """Use experiment ``name``; a new one on a local SQLite store keeps its artifacts beside the database
    (``mlruns/artifacts``), not in whatever folder the command was started from."""
    if mlflow.get_experiment_by_name(name) is None:
        location = None
        if tracking_uri.startswith("sqlite:///"):
            location = (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").resolve().as_uri()
        mlflow.create_experiment(name, artifact_location=location)
    mlflow.set_experiment(name)


def flat_metrics(report: dict) -> dict[str, float]:
    """The report's figures as MLflow metric names (``combined.precision_at_100`` …)."""
    out: dict[str, float] = {}
    for name, ev in report["rankings"].items():
        for k, a in ev["at"].items():
            for m in ("precision", "recall", "amount_recall"):
                out[f"{name}.{m}_at_{k}"] = a[m]
    for level, rep in report["levels"].items():
        for m in ("roc_auc", "pr_auc"):
            v = rep.get("metrics", {}).get(m)
            if v is not None and v == v:
                out[f"{level}.{m}"] = v
        ci = rep.get("metrics", {}).get("roc_auc_ci")
        if ci:
            out[f"{level}.roc_auc_ci_low"], out[f"{level}.roc_auc_ci_high"] = ci
    return out


def log_training(tracking_uri: str, experiment: str, config, report: dict, data: dict, bundle: ScorerBundle,
                 bundle_path: Path, report_dir: Path, *, register: bool, model_name: str,
                 git_commit: str | None, pack_version: str | None,
                 started_ms: int | None = None) -> tuple[str, str | None]:
    """Log one training run; returns ``(run_id, registered version or None)``. ``started_ms`` (epoch ms):
    when the training began, so that the run's duration in MLflow covers it, not only the logging."""
    from dataclasses import asdict

    configure(tracking_uri)
    _experiment(tracking_uri, experiment)
    window = bundle.meta.get("eval_window") or {}
    from mlflow.tracking.context.registry import resolve_tags  # the tags start_run would set (user, source)

    created = mlflow.MlflowClient().create_run(mlflow.get_experiment_by_name(experiment).experiment_id,
                                               start_time=started_ms, tags=resolve_tags(),
                                               run_name=f"train-seed{config.seed}")
    with mlflow.start_run(run_id=created.info.run_id) as run:
        params = {k: (",".join(map(str, v)) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}
        params.update({f"mode.{lv}": rep["mode"]["mode"] for lv, rep in report["levels"].items()})
        mlflow.log_params(params)
        mlflow.log_metrics(flat_metrics(report))
        mlflow.set_tags({"git_commit": git_commit or "unknown", "rule_pack_version": pack_version or "none",
                         "eval_cutoff": window.get("cutoff", ""), "warehouse": bundle.meta.get("warehouse", "")})
        for level, d in data.items():
            cols = [d.level.key, "label", *d.features]
            ds = mlflow.data.from_pandas(d.frame[cols], name=f"{d.level.table}", targets="label")
            mlflow.log_input(ds, context=f"training:{level}")
        mlflow.log_artifact(str(bundle_path), artifact_path="bundle")
        mlflow.log_artifacts(str(report_dir), artifact_path="report")
        example = data["setl"].X.head(5) if "setl" in data else next(iter(data.values())).X.head(5)
        level = "setl" if "setl" in data else next(iter(data))
        signature = infer_signature(example, pd.DataFrame({"p_fraud": bundle.score(level, example)}),
                                    params={"level": level})
        with _library_prints():
            info = mlflow.pyfunc.log_model(name="model", python_model=BundleModel(),
                                           artifacts={"bundle": str(bundle_path)}, signature=signature,
                                           input_example=example,
                                           registered_model_name=model_name if register else None)
        version = str(info.registered_model_version) if register and info.registered_model_version else None
        if version:
            client = mlflow.MlflowClient()
            client.set_model_version_tag(model_name, version, "eval_cutoff", window.get("cutoff", ""))
            client.set_model_version_tag(model_name, version, "run_id", run.info.run_id)
        return run.info.run_id, version


@contextlib.contextmanager
def _library_prints():
    """MLflow's own lines while a model is logged and registered (``Registered model ... already exists``,
    printed to stderr, not logged): passed on when the ``mlflow`` logger shows INFO (``yibao --verbose``),
    kept out of the user's terminal otherwise, but logged at DEBUG so that nothing is lost."""
    if logging.getLogger("mlflow").isEnabledFor(logging.INFO):
        yield
        return
    captured = io.StringIO()
    with contextlib.redirect_stderr(captured):
        yield
    for line in captured.getvalue().splitlines():
        if line.strip():
            logging.getLogger("yibao.tracking").debug("mlflow: %s", line)


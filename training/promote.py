"""Promotion (模型晋级): compare a candidate version with the ``champion`` and move the alias when asked.

Two comparisons, both shown:

1. **The same evaluation window, re-scored**: both bundles score the settlements of the candidate's
   evaluation window (after its time cutoff) in the given warehouse; ROC-AUC, PR-AUC and precision at the
   top 1 % are computed for each. When the champion was trained on a later cutoff it has seen part of that
   window, and the table says so (its figures are then optimistic).
2. **The logged clue-list figures** of both runs (cross-fitted by entity at training time): precision@100
   and amount-weighted recall@500 of the combined ranking. They are comparable when both runs used the
   same warehouse and cutoff (``same_window``).

The candidate is *recommended* when it is not worse than the champion by more than ``tolerance`` on any
headline figure and better on at least one; ``promote(..., confirm=True)`` moves the alias either way (an
analyst may overrule), and the reason is stored as a tag on the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from models.bundle import MODEL_NAME, load_registered, require_tracking_server
from models.levels import load_level
from training.evaluate import level_metrics, precision_at_k

__all__ = ["Comparison", "compare", "promote", "HEADLINE", "ALIAS"]

ALIAS = "champion"
HEADLINE = ("combined.precision_at_100", "combined.amount_recall_at_500", "window.setl.pr_auc")


@dataclass
class Comparison:
    candidate: str
    champion: str | None
    same_window: bool
    rows: list[dict] = field(default_factory=list)
    recommended: bool = False
    reason: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return self.__dict__.copy()


def compare(tracking_uri: str, warehouse: Path | None, *, candidate: str | None = None,
            name: str = MODEL_NAME, tolerance: float = 0.01) -> Comparison:
    """Compare ``candidate`` (a version number; default the latest) with the current champion."""
    import mlflow

    require_tracking_server(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        raise LookupError(f"没有已注册的模型 (no registered versions of {name}): 先运行 yibao train")
    cand = str(candidate or max(int(v.version) for v in versions))
    cand_mv = client.get_model_version(name, cand)
    try:
        champ_mv = client.get_model_version_by_alias(name, ALIAS)
    except mlflow.exceptions.MlflowException:
        champ_mv = None
    if champ_mv is None:
        return Comparison(cand, None, True, recommended=True,
                          reason="尚无 champion (no champion yet): 候选版本可直接晋级")
    cand_run, champ_run = client.get_run(cand_mv.run_id), client.get_run(champ_mv.run_id)
    same = all(cand_run.data.tags.get(t) == champ_run.data.tags.get(t) for t in ("eval_cutoff", "warehouse"))
    cand_m, champ_m = dict(cand_run.data.metrics), dict(champ_run.data.metrics)
    notes = []
    if warehouse is not None and Path(warehouse).is_file():
        cutoff = cand_run.data.tags.get("eval_cutoff")
        w = _window_scores(tracking_uri, warehouse, cutoff, cand, champ_mv.version, name)
        cand_m.update(w["candidate"])
        champ_m.update(w["champion"])
        if (champ_run.data.tags.get("eval_cutoff") or "") > (cutoff or ""):
            notes.append("champion 的训练截止日晚于本评估窗口起点：它见过部分窗口数据，其窗口指标偏乐观")
    rows, better, worse = [], [], []
    for m in sorted(set(cand_m) | set(champ_m)):
        a, b = cand_m.get(m), champ_m.get(m)
        delta = None if a is None or b is None else round(a - b, 4)
        rows.append({"metric": m, "candidate": a, "champion": b, "delta": delta, "headline": m in HEADLINE})
        if m in HEADLINE and delta is not None:
            (better if delta > 0 else worse if delta < -tolerance else []).append(m)
    recommended = bool(better) and not worse
    if worse:
        reason = f"候选版本在 {', '.join(worse)} 上比 champion 差超过 {tolerance}"
    elif better:
        reason = f"候选版本在 {', '.join(better)} 上优于 champion，其余不差"
    else:
        reason = "候选版本与 champion 无明显差别"
    if not same:
        notes.append("两次训练的仓库或截止日不同：日志中的线索清单指标不可直接比较，以重新评分的窗口指标为准")
    # MLflow gives a version as int or str depending on the call: one form, text, everywhere
    return Comparison(str(cand), str(champ_mv.version), same, rows, recommended, reason, notes)


def promote(tracking_uri: str, version: str, *, reason: str, name: str = MODEL_NAME) -> None:
    """Point the ``champion`` alias at ``version`` and record why on the version."""
    import mlflow

    require_tracking_server(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_alias(name, ALIAS, version)
    client.set_model_version_tag(name, version, "promoted_because", reason[:500])


def _window_scores(tracking_uri: str, warehouse: Path, cutoff: str | None, cand: str, champ: str,
                   name: str) -> dict[str, dict[str, float]]:
    d = load_level(Path(warehouse), "setl")
    t = pd.to_datetime(d.frame["setl_time"])
    mask = (t >= pd.Timestamp(cutoff)).to_numpy() if cutoff else np.ones(len(t), dtype=bool)
    frame, y = d.frame[mask], d.y[mask]
    out = {}
    for who, ref in (("candidate", cand), ("champion", champ)):
        p = load_registered(tracking_uri, ref, name=name).score("setl", frame)
        m = level_metrics(y, p)
        order = np.argsort(-p, kind="mergesort")
        k = max(1, len(y) // 100)
        out[who] = {"window.setl.roc_auc": m["roc_auc"], "window.setl.pr_auc": m["pr_auc"],
                    "window.setl.precision_at_1pct": round(precision_at_k(y[order], k), 4)}
    return out

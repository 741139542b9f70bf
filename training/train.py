"""Retraining (模型训练): every level's scorer, an honest evaluation, one MLflow run, a registered version.

``train(warehouse, config)`` reads the feature tables and labels (:mod:`models.levels`) and

1. **settlements** (结算): a *time split* — the model is fitted on settlements before the cutoff
   (``test_months`` before the last settlement) and evaluated on the settlements after it. The
   registered settlement model is this one, so its evaluation window is genuinely unseen;
2. **entities** (参保人、医师、机构、药店、团伙): entity-grouped ``folds``-fold cross-fitting — every
   entity's evaluation score comes from a model that never saw that entity or its label; the registered
   model is then fitted on all entities. Levels with fewer than ``min_positives`` labelled frauds switch
   to the unsupervised fallback (IsolationForest) and the report says so;
3. **the combined clue ranking**: the cross-fitted entity scores become candidate clues ranked by
   expected recovery (:func:`models.ranking.rank_clues`) and are compared with the rules alone and with
   ranking by amount paid, at investigator capacities (:mod:`training.evaluate`);
4. writes the evaluation report (JSON, HTML, PNG; :mod:`training.report`) and logs everything to one
   MLflow run: parameters, metrics, the datasets' digests, the bundle as a pyfunc model with its
   signature, the report, the git commit and the rule-pack version; the model is registered as
   ``yibao-fraud`` (promotion to ``champion`` is a separate step: :mod:`training.promote`).

The same seed and warehouse give the same models, scores and report (LightGBM runs deterministic).
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Sequence

import duckdb
import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from models.bundle import BUNDLE_FILE, MODEL_NAME, RegionScale, ScorerBundle, require_tracking_server
from models.explain import peer_medians
from models.ranking import rank_clues, recovery_share
from models.scorers import FraudScorer
from models.levels import LEVELS, LevelData, load_levels
from training.evaluate import CAPACITIES, calibration_table, evaluate_ranking, fraud_ledger, level_metrics

__all__ = ["TrainConfig", "TrainResult", "train", "ENTITY_LEVELS", "fit_levels", "cross_fit", "load_regions"]

ENTITY_LEVELS = ("psn", "prac", "fixmedins", "pharmacy", "ring")
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on besides the data (logged as MLflow parameters)."""

    seed: int = 0
    test_months: int = 3
    folds: int = 5
    unlabelled: str = "clean"
    min_positives: int = 10
    min_negatives: int = 10
    n_estimators: int = 200
    learning_rate: float = 0.05
    num_leaves: int = 15
    calibration_folds: int = 3
    capacities: tuple[int, ...] = CAPACITIES
    levels: tuple[str, ...] = ("setl", *ENTITY_LEVELS)
    explain_top: int = 20
    # Levels whose features the scorers read as percentiles within their own region (models.bundle), so that
    # a model trained on some regions ranks another region's entities by what is unusual *there*.
    region_scaled: tuple[str, ...] = ENTITY_LEVELS


@dataclass
class TrainResult:
    run_id: str | None
    model_version: str | None
    report: dict
    report_dir: Path
    bundle: ScorerBundle
    seconds: float
    clues: pd.DataFrame = field(repr=False, default=None)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "model_version": self.model_version, "report_dir": str(self.report_dir),
                "seconds": self.seconds, "headline": self.report.get("headline", {})}


def train(warehouse: Path | Sequence[Path], config: TrainConfig = TrainConfig(), *, tracking_uri: str | None = None,
          experiment: str = "yibao-fraud", register: bool = True, out_dir: Path | None = None,
          progress: Progress | None = None) -> TrainResult:
    """Train, evaluate and log one run (see the module docstring). ``tracking_uri=None`` skips MLflow.

    ``warehouse`` may be several regions' warehouses: their rows are pooled (ids prefixed ``r<i>:``, each
    region's features scaled within it), the evaluation cross-fits over the pool."""
    if tracking_uri:
        require_tracking_server(tracking_uri)  # before the training, not after it
    t0 = time.perf_counter()
    started_ms = int(time.time() * 1000)  # the MLflow run starts here, not when the logging does
    tick = progress or (lambda *_: None)
    warehouses = [Path(w) for w in warehouse] if isinstance(warehouse, (list, tuple)) else [Path(warehouse)]
    steps = len(config.levels) + 3
    tick("读取数据 loading", 0, steps)
    data, ledger, pack_version = load_regions(warehouses, config)
    skipped = _without_rows(data)
    warehouse = warehouses[0] if len(warehouses) == 1 else ",".join(map(str, warehouses))
    done = 1
    tick("读取数据 loading", done, steps)

    scorers, oof, level_report = {}, {}, {}
    for level in [lv for lv in config.levels if lv in data]:
        tick(f"训练 {LEVELS[level].zh} {level}", done, steps)
        if level == "setl":
            scorers[level], level_report[level], window = _fit_settlements(data[level], config)
        else:
            scorers[level], oof[level], level_report[level] = fit_levels(data[level], config)
        done += 1
        tick(f"训练 {LEVELS[level].zh} {level}", done, steps)

    shares = {lv: recovery_share(d.frame["label_amount"], d.frame["exposure"], d.frame["label"])
              for lv, d in data.items() if lv != "setl"}
    bundle = ScorerBundle(
        scorers=scorers, features={lv: d.features for lv, d in data.items()}, shares=shares,
        medians={lv: peer_medians(d.frame, d.features, group=_peer_column(d)) for lv, d in data.items()},
        peer_columns={lv: _peer_column(d) for lv, d in data.items()},
        meta={"seed": config.seed, "trained_at": datetime.now().isoformat(timespec="seconds"),
              "warehouse": str(warehouse), "regions": [str(w) for w in warehouses], "rule_pack_version": pack_version,
              "eval_window": window if "setl" in config.levels else None, "config": _jsonable(asdict(config))},
        region_scaled=tuple(lv for lv in config.region_scaled if lv in data))

    tick("评估 evaluating", done, steps)
    clues = _candidates(data, oof, shares)
    report = _report(config, data, level_report, clues, ledger, shares, pack_version, bundle)
    report["skipped_levels"] = skipped
    done += 1
    tick("评估 evaluating", done, steps)

    out_dir = Path(out_dir or Path("mlruns") / "reports" / datetime.now().strftime("%Y%m%dT%H%M%S"))
    from training.report import write_report

    write_report(report, clues, out_dir)
    bundle_path = bundle.save(out_dir / BUNDLE_FILE)
    run_id = version = None
    if tracking_uri:
        tick("记录 MLflow logging", done, steps)
        from training.tracking import log_training

        run_id, version = log_training(tracking_uri, experiment, config, report, data, bundle, bundle_path,
                                       out_dir, register=register, model_name=MODEL_NAME,
                                       git_commit=_git_commit(), pack_version=pack_version, started_ms=started_ms)
    done += 1
    tick("完成 done", done, steps)
    report["run_id"], report["model_version"] = run_id, version
    (out_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return TrainResult(run_id, version, report, out_dir, bundle, round(time.perf_counter() - t0, 1), clues)


def _without_rows(data: dict[str, LevelData]) -> dict[str, str]:
    """Take the levels without rows out of ``data`` (an extract without retail pharmacies, a region whose
    graph found no community of three): not trained, so the model raises no clue at that level. Returns
    what was left out and why, for the report. No settlements at all is an error."""
    if "setl" in data and data["setl"].frame.empty:
        raise ValueError("仓库中没有结算特征 (feat_setl has no rows): 没有可训练的数据 (nothing to train on)")
    skipped = {}
    for level in [lv for lv, d in data.items() if d.frame.empty]:
        del data[level]
        skipped[level] = (f"本地区没有{LEVELS[level].zh}数据（{LEVELS[level].table} 0 行），该层级未训练，筛查不对其出线索 "
                          f"(no rows: not trained, no clues at this level)")
    return skipped


def load_regions(warehouses: Sequence[Path], config: TrainConfig) -> tuple[dict[str, LevelData], pd.DataFrame,
                                                                          str | None]:
    """The training rows of one or more regions, the fraud ledger and the rule-pack version.

    With several regions every id is prefixed with its region (``r0:``, ``r1:`` …) in the rows and the
    ledger, so that entities of different regions never meet; the region-scaled levels get their ``scaled``
    features region by region. The row column ``_region`` says which region a row came from."""
    parts: dict[str, list[LevelData]] = {}
    ledgers, versions = [], []
    for i, path in enumerate(warehouses):
        con = duckdb.connect(str(path), read_only=True)
        try:
            data = load_levels(con, unlabelled=config.unlabelled, levels=config.levels)
            ledger = fraud_ledger(con) if _has(con, "labels") else pd.DataFrame(
                columns=["case_id", "fraud_type", "amount", "entity_type", "entity_id"])
            versions.append(_rule_pack_version(con))
        finally:
            con.close()
        prefix = f"r{i}:" if len(warehouses) > 1 else ""
        for level, d in data.items():
            frame = d.frame.copy()
            frame["_region"] = i
            for col in {d.level.key, "ring_id"} & set(frame.columns):
                frame[col] = frame[col].map(lambda v, p=prefix: None if v is None or v != v else f"{p}{v}")
            scaled = None
            if level in config.region_scaled:
                scaled = RegionScale(frame, d.features).transform(frame[d.features])
            parts.setdefault(level, []).append(LevelData(d.level, frame, d.features, scaled))
        if prefix:
            ledger = ledger.assign(case_id=prefix + ledger["case_id"].astype(str),
                                   entity_id=prefix + ledger["entity_id"].astype(str))
        ledgers.append(ledger)
    out = {}
    for level, ds in parts.items():
        features = [c for c in ds[0].features if all(c in d.features for d in ds)]
        frame = pd.concat([d.frame for d in ds], ignore_index=True)
        scaled = (pd.concat([d.scaled[features] for d in ds], ignore_index=True)
                  if ds[0].scaled is not None else None)
        out[level] = LevelData(ds[0].level, frame, features, scaled)
    return out, pd.concat(ledgers, ignore_index=True), next((v for v in versions if v), None)


def fit_levels(d: LevelData, config: TrainConfig) -> tuple[FraudScorer, np.ndarray, dict]:
    """Cross-fitted scores of one entity level and the final scorer fitted on all its rows."""
    p = cross_fit(d, config)
    final = _scorer(config, len(d.frame)).fit(d.X, d.y)
    rep = {"mode": final.summary(), "metrics": level_metrics(d.y, p) if len(p) else {},
           "calibration": calibration_table(d.y, p).to_dict("records") if d.y.sum() >= 5 else [],
           "evaluation": (f"按对象 {_folds(d.y, config.folds)} 折交叉拟合（每个对象的分数来自未见过它的模型）"
                          if _folds(d.y, config.folds) >= 2 else "仅样本内：某一类标注太少，无法交叉拟合")}
    return final, p, rep


def cross_fit(d: LevelData, config: TrainConfig) -> np.ndarray:
    """Out-of-fold P(fraud) per row: each row scored by a scorer that did not see it."""
    y = d.y
    folds = _folds(y, config.folds)
    p = np.zeros(len(y))
    if folds < 2:
        return _scorer(config, len(y)).fit(d.X, y).predict_proba(d.X)[:, 1]
    for k, (tr, va) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=config.seed).split(d.X, y)):
        s = _scorer(config, len(tr), seed=config.seed + k).fit(d.X.iloc[tr], y[tr])
        p[va] = s.predict_proba(d.X.iloc[va])[:, 1]
    return p


# -- private helpers ------------------------------------------------------------------------------


def _scorer(config: TrainConfig, n_rows: int, *, seed: int | None = None) -> FraudScorer:
    return FraudScorer(seed=config.seed if seed is None else seed, min_positives=config.min_positives,
                       min_negatives=config.min_negatives, calibration_folds=config.calibration_folds,
                       n_estimators=config.n_estimators, learning_rate=config.learning_rate,
                       num_leaves=config.num_leaves, min_child_samples=3 if n_rows < 300 else 10)


def _folds(y: np.ndarray, wanted: int) -> int:
    return int(min(wanted, y.sum(), len(y) - y.sum()))


def _fit_settlements(d: LevelData, config: TrainConfig) -> tuple[FraudScorer, dict, dict]:
    t = pd.to_datetime(d.frame["setl_time"])
    cutoff = (t.max().normalize() - pd.DateOffset(months=config.test_months)) + pd.Timedelta(days=1)
    train_idx = np.flatnonzero(t < cutoff)
    test_idx = np.flatnonzero(t >= cutoff)
    scorer = _scorer(config, len(train_idx)).fit(d.X.iloc[train_idx], d.y[train_idx])
    p = scorer.predict_proba(d.X.iloc[test_idx])[:, 1]
    y = d.y[test_idx]
    window = {"cutoff": str(cutoff.date()), "train_rows": int(len(train_idx)), "test_rows": int(len(test_idx)),
              "test_from": str(t.iloc[test_idx].min()) if len(test_idx) else None,
              "test_to": str(t.iloc[test_idx].max()) if len(test_idx) else None}
    rep = {"mode": scorer.summary(), "metrics": level_metrics(y, p),
           "baselines": {"rules_alone": level_metrics(y, d.frame["rule_amount"].to_numpy()[test_idx]),
                         "amount_ranking": level_metrics(y, d.frame["exposure"].to_numpy()[test_idx])},
           "calibration": calibration_table(y, p).to_dict("records") if y.sum() >= 5 else [],
           "evaluation": f"按时间切分：用 {window['cutoff']} 之前的结算训练，在其后 {config.test_months} 个月上评估",
           "window": window}
    return scorer, rep, window


def _candidates(data: dict[str, LevelData], oof: dict[str, np.ndarray], shares: dict[str, float]) -> pd.DataFrame:
    parts = []
    for level, p in oof.items():
        f = data[level].frame
        part = pd.DataFrame({
            "entity_type": level, "entity_id": f[LEVELS[level].key].astype(str).to_numpy(), "p_fraud": p,
            "rule_amount": f["rule_amount"].fillna(0).to_numpy(dtype=float),
            "exposure": f["exposure"].to_numpy(dtype=float), "label": f["label"].to_numpy(dtype=int),
            "label_amount": f["label_amount"].to_numpy(dtype=float),
            "fraud_types": f["fraud_types"].to_numpy() if "fraud_types" in f else None})
        part["ledger_type"] = "fixmedins" if level == "pharmacy" else level
        if level == "ring":
            part["ledger_id"] = f["ring_id"].where(f["label"] == 1, f["community_id"]).astype(str).to_numpy()
        else:
            part["ledger_id"] = part["entity_id"]
        parts.append(part)
    if not parts:  # only the settlement level was trained: no entity candidates to rank
        return rank_clues(pd.DataFrame(columns=["entity_type", "entity_id", "p_fraud", "rule_amount", "exposure",
                                                "label", "label_amount", "fraud_types", "ledger_type", "ledger_id"]),
                          shares)
    return rank_clues(pd.concat(parts, ignore_index=True), shares)


def _baseline(clues: pd.DataFrame, column: str) -> pd.DataFrame:
    return clues.sort_values([column, "entity_type", "entity_id"], ascending=[False, True, True],
                             kind="mergesort").reset_index(drop=True)


def _report(config, data, level_report, clues, ledger, shares, pack_version, bundle) -> dict:
    rankings = {"combined": clues, "rules_alone": _baseline(clues, "rule_amount"),
                "amount_ranking": _baseline(clues, "exposure")}
    ranking_eval = {name: evaluate_ranking(r, ledger, capacities=config.capacities) for name, r in rankings.items()}
    comb = ranking_eval["combined"]["at"]
    lift = {}
    for base in ("rules_alone", "amount_ranking"):
        b = ranking_eval[base]["at"]
        lift[base] = {k: {"precision": _ratio(comb[k]["precision"], b[k]["precision"]),
                          "amount_recall": _ratio(comb[k]["amount_recall"], b[k]["amount_recall"])} for k in comb}
    k_p, k_m = ("100" if 100 in config.capacities else str(config.capacities[0]),
                "500" if 500 in config.capacities else str(config.capacities[-1]))
    headline = {f"precision_at_{k_p}": {n: ranking_eval[n]["at"][k_p]["precision"] for n in rankings},
                f"amount_recall_at_{k_m}": {n: ranking_eval[n]["at"][k_m]["amount_recall"] for n in rankings}}
    top = clues.head(config.explain_top)
    explained = []
    for _, row in top.iterrows():
        d = data[row["entity_type"]]
        frame = d.frame[d.frame[d.level.key].astype(str) == row["entity_id"]]
        region = d.frame[d.frame["_region"] == frame["_region"].iloc[0]] if len(frame) else None
        reasons = bundle.explain(row["entity_type"], frame, region=region)[0] if len(frame) else []
        explained.append({"rank": int(row["rank"]), "entity_type": row["entity_type"], "entity_id": row["entity_id"],
                          "p_fraud": round(float(row["p_fraud"]), 4), "amount_at_risk": float(row["amount_at_risk"]),
                          "priority": float(row["priority"]), "label": int(row["label"]),
                          "reasons": [r.text_zh for r in reasons]})
    return {"generated_at": datetime.now().isoformat(timespec="seconds"), "config": _jsonable(asdict(config)),
            "rule_pack_version": pack_version, "levels": level_report, "recovery_shares": shares,
            "rankings": ranking_eval, "lift": lift, "headline": headline, "top_clues": explained,
            "n_labels": {lv: int(d.y.sum()) for lv, d in data.items()}}


def _ratio(a: float, b: float) -> float | None:
    return round(a / b, 3) if b else None


def _peer_column(d: LevelData) -> str | None:
    return "peer_group" if "peer_group" in d.frame.columns else None


def _has(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    rows = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()
    return bool(rows[0][0])


def _rule_pack_version(con: duckdb.DuckDBPyConnection) -> str | None:
    if not _has(con, "rule_runs"):
        return None
    cols = {r[0] for r in con.sql("DESCRIBE rule_runs").fetchall()}
    if "pack_version" not in cols:
        return None
    rows = con.sql("SELECT pack_version FROM rule_runs ORDER BY ALL DESC LIMIT 1").fetchall()
    return rows[0][0] if rows else None


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=str))

#!/usr/bin/env python
"""Model search for the Kaggle benchmark, part (a), by repeated cross-validation on the TRAIN split only.

The test split is never read here. Every candidate is scored out of fold on the same repeated stratified
5-fold splits of the 4,328 train providers; the out-of-fold scores are cached per candidate
(``--cache``) so that rank-average ensembles can be judged from them without refitting.

    .venv/bin/python benchmarks/kaggle_cv_search.py --repeats 3 lgbm_base rf_leaf5 logit_ratio
    .venv/bin/python benchmarks/kaggle_cv_search.py --repeats 3 --blend lgbm_base+logit_ratio

Prints, per candidate, the mean ± sd of PR-AUC and ROC-AUC over the ``repeats × 5`` folds and the mean
paired difference of PR-AUC with the first candidate named (with its standard error over the folds).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Callable

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy.stats import rankdata
from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from training.benchmarks import kaggle

DATA = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / kaggle.FEATURES_DIR
FOLDS = 5

FitPredict = Callable[[pd.DataFrame, np.ndarray, pd.DataFrame, int], np.ndarray]


def load_train() -> tuple[pd.DataFrame, np.ndarray]:
    """The train split only (features without the leaks and the id, labels)."""
    X = kaggle.prepare(pd.read_csv(DATA / "X_train_all_feature.csv"))
    y = pd.read_csv(DATA / "y_train_all_feature.csv").iloc[:, 0].to_numpy(dtype=int)
    return X, y


def splits(y: np.ndarray, repeats: int):
    """(repeat, train rows, validation rows) of ``repeats`` stratified 5-fold splits, seeds 0..repeats-1."""
    for rep in range(repeats):
        for tr, va in StratifiedKFold(FOLDS, shuffle=True, random_state=rep).split(np.zeros(len(y)), y):
            yield rep, tr, va


# --- candidates -----------------------------------------------------------------------------------------

def _lgbm(params: dict, *, features: Callable[[pd.DataFrame], pd.DataFrame] = lambda X: X,
          seeds: int = 3) -> FitPredict:
    """LightGBM with fixed rounds (``n_estimators`` in ``params``), averaged over ``seeds`` seeds."""
    base = dict(objective="binary", num_threads=1, deterministic=True, force_col_wise=True, verbose=-1)

    def fit_predict(X_tr, y_tr, X_va, seed):
        A, B = features(X_tr), features(X_va)
        return np.mean([lgb.LGBMClassifier(**base, **params, random_state=seed + k).fit(A, y_tr)
                        .predict_proba(B)[:, 1] for k in range(seeds)], axis=0)
    return fit_predict


def _lgbm_current() -> FitPredict:
    """The recipe of the first version (commit 5522f8d): learning rate 0.05, 3 seeds, each with early
    stopping (100 rounds) on a stratified 20 % carve-out, then refitted on all rows with 1.15× the rounds."""
    params = dict(objective="binary", learning_rate=0.05, num_leaves=7, max_depth=4, min_child_samples=40,
                  feature_fraction=0.5, bagging_fraction=0.8, bagging_freq=1, lambda_l2=10.0,
                  num_threads=1, deterministic=True, force_col_wise=True, verbose=-1)

    def one(X_tr, y_tr, seed):
        X_fit, X_val, y_fit, y_val = train_test_split(X_tr, y_tr, test_size=0.2, stratify=y_tr,
                                                      random_state=seed)
        probe = lgb.LGBMClassifier(**params, n_estimators=3000, random_state=seed).fit(
            X_fit, y_fit, eval_X=(X_val,), eval_y=(y_val,), eval_metric="binary_logloss",
            callbacks=[lgb.early_stopping(100, verbose=False)])
        rounds = int(probe.best_iteration_ * 1.15) + 1
        return lgb.LGBMClassifier(**params, n_estimators=rounds, random_state=seed).fit(X_tr, y_tr)

    def fit_predict(X_tr, y_tr, X_va, seed):
        return np.mean([one(X_tr, y_tr, seed + k).predict_proba(X_va)[:, 1] for k in range(3)], axis=0)
    return fit_predict


# Volume columns: more claims, money, patients can only raise the score under a monotone constraint.
_VOLUME = ("ClaimCounts", "TotalInscClaimAmtReimbursed", "uniqBeneCount", "IPClaims", "OPClaims",
           "TotalHospitalDays", "TotalDiagCodeNum", "TotalProcCodeNum", "totalDiagCode_Other",
           "totalProcCode_Other", "TotalDeductible", "TotalIPAnnualReimbursementAmt",
           "OPAnnualReimbursementAmt_sum", "OPAnnualDeductibleAmt_sum", "TotalIPAnnualDeductibleAmtdf")


def _lgbm_monotone(params: dict, seeds: int = 3) -> FitPredict:
    """LightGBM on ``with_ratios`` features with +1 monotone constraints on the volume columns."""
    def fit_predict(X_tr, y_tr, X_va, seed):
        A, B = with_ratios(X_tr), with_ratios(X_va)
        mono = [1 if c in _VOLUME else 0 for c in A.columns]
        return _lgbm({**params, "monotone_constraints": mono}, seeds=seeds)(A, y_tr, B, seed)
    return fit_predict


def _forest(cls, *, features: Callable[[pd.DataFrame], pd.DataFrame] = lambda X: X, **params) -> FitPredict:
    def fit_predict(X_tr, y_tr, X_va, seed):
        model = cls(n_jobs=1, random_state=seed, **params).fit(features(X_tr), y_tr)
        return model.predict_proba(features(X_va))[:, 1]
    return fit_predict


def _logit(C: float, *, features: Callable[[pd.DataFrame], pd.DataFrame] = lambda X: X,
           class_weight: str | None = None) -> FitPredict:
    def fit_predict(X_tr, y_tr, X_va, seed):
        model = make_pipeline(FunctionTransformer(signed_log1p), StandardScaler(),
                              LogisticRegression(C=C, max_iter=5000, class_weight=class_weight))
        return model.fit(features(X_tr), y_tr).predict_proba(features(X_va))[:, 1]
    return fit_predict


def signed_log1p(X: pd.DataFrame) -> pd.DataFrame:
    return np.sign(X) * np.log1p(np.abs(X))


def with_ratios(X: pd.DataFrame) -> pd.DataFrame:
    """Volume split by setting and amounts per claim / beneficiary / physician (see kaggle.add_ratios)."""
    return kaggle.add_ratios(X)


def _drop_constant(X: pd.DataFrame) -> pd.DataFrame:
    return X.loc[:, [c for c in X.columns if not c.startswith("totalProcCode_") or c == "totalProcCode_Other"]]


_SMALL = dict(learning_rate=0.02, num_leaves=7, max_depth=4, min_child_samples=40, feature_fraction=0.5,
              bagging_fraction=0.8, bagging_freq=1, lambda_l2=10.0)

CANDIDATES: dict[str, FitPredict] = {
    "lgbm_base": _lgbm_current(),
    # fixed rounds, lower learning rate (rounds picked from the CV curve of lgbm_r*)
    "lgbm_r300": _lgbm({**_SMALL, "n_estimators": 300}),
    "lgbm_r600": _lgbm({**_SMALL, "n_estimators": 600}),
    "lgbm_r1000": _lgbm({**_SMALL, "n_estimators": 1000}),
    "lgbm_r600_ratio": _lgbm({**_SMALL, "n_estimators": 600}, features=with_ratios),
    "lgbm_r600_ratio_mono": _lgbm_monotone({**_SMALL, "n_estimators": 600}),
    "lgbm_r600_leaves4": _lgbm({**_SMALL, "n_estimators": 600, "num_leaves": 4, "max_depth": 2}),
    "lgbm_r600_leaves15": _lgbm({**_SMALL, "n_estimators": 600, "num_leaves": 15, "max_depth": -1,
                                 "min_child_samples": 20}),
    "lgbm_r600_mcs100": _lgbm({**_SMALL, "n_estimators": 600, "min_child_samples": 100}),
    "lgbm_r600_ff02": _lgbm({**_SMALL, "n_estimators": 600, "feature_fraction": 0.2}),
    "lgbm_r600_spw": _lgbm({**_SMALL, "n_estimators": 600, "scale_pos_weight": 5.0}),
    "lgbm_r600_l2_50": _lgbm({**_SMALL, "n_estimators": 600, "lambda_l2": 50.0}),
    "lgbm_r600_extra": _lgbm({**_SMALL, "n_estimators": 600, "extra_trees": True}),
    "rf_leaf5": _forest(RandomForestClassifier, n_estimators=500, min_samples_leaf=5, max_features="sqrt"),
    "rf_leaf3": _forest(RandomForestClassifier, n_estimators=500, min_samples_leaf=3, max_features="sqrt"),
    "rf_leaf10": _forest(RandomForestClassifier, n_estimators=500, min_samples_leaf=10, max_features="sqrt"),
    "rf_leaf5_f03": _forest(RandomForestClassifier, n_estimators=500, min_samples_leaf=5, max_features=0.3),
    "rf_leaf5_bal": _forest(RandomForestClassifier, n_estimators=500, min_samples_leaf=5, max_features="sqrt",
                            class_weight="balanced_subsample"),
    "rf_leaf5_ratio": _forest(RandomForestClassifier, features=with_ratios, n_estimators=500,
                              min_samples_leaf=5, max_features="sqrt"),
    "et_leaf5": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=5, max_features=0.5),
    "et_leaf5_ratio": _forest(ExtraTreesClassifier, features=with_ratios, n_estimators=500, min_samples_leaf=5,
                              max_features=0.5),
    "et_leaf3": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=3, max_features=0.5),
    "et_leaf10": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=10, max_features=0.5),
    "et_leaf5_f03": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=5, max_features=0.3),
    "et_leaf5_f08": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=5, max_features=0.8),
    "et_leaf5_bal": _forest(ExtraTreesClassifier, n_estimators=500, min_samples_leaf=5, max_features=0.5,
                            class_weight="balanced_subsample"),
    "logit_c005": _logit(0.05),
    "logit_c001": _logit(0.01),
    "logit_c02": _logit(0.2),
    "logit_ratio_c005": _logit(0.05, features=with_ratios),
    "logit_ratio_c001": _logit(0.01, features=with_ratios),
    "logit_ratio_c02": _logit(0.2, features=with_ratios),
    "logit_ratio_c1": _logit(1.0, features=with_ratios),
    "logit_ratio_c5": _logit(5.0, features=with_ratios),
}


# --- evaluation -----------------------------------------------------------------------------------------

def oof_scores(name: str, X: pd.DataFrame, y: np.ndarray, repeats: int, cache: Path) -> np.ndarray:
    """(repeats, n) out-of-fold scores of candidate ``name``, computed once and cached."""
    path = cache / f"{name}.r{repeats}.npy"
    if path.exists():
        return np.load(path)
    out = np.zeros((repeats, len(y)))
    t0 = time.perf_counter()
    for rep, tr, va in splits(y, repeats):
        out[rep, va] = CANDIDATES[name](X.iloc[tr], y[tr], X.iloc[va], rep)
    print(f"  {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out


def rank_blend(parts: list[np.ndarray], y: np.ndarray, repeats: int) -> np.ndarray:
    """Mean of the members' ranks, taken within each validation fold (as the test split would be)."""
    out = np.zeros((repeats, len(y)))
    for rep, _tr, va in splits(y, repeats):
        out[rep, va] = np.mean([rankdata(p[rep, va]) / len(va) for p in parts], axis=0)
    return out


def fold_metrics(scores: np.ndarray, y: np.ndarray, repeats: int) -> pd.DataFrame:
    rows = [{"pr_auc": average_precision_score(y[va], scores[rep, va]),
             "roc_auc": roc_auc_score(y[va], scores[rep, va])} for rep, _tr, va in splits(y, repeats)]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="candidates; the first is the reference of the differences")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--blend", action="append", default=[], help="a+b[+c]: rank average of candidates")
    parser.add_argument("--mean", action="append", default=[], help="a+b[+c]: mean of the probabilities")
    parser.add_argument("--cache", type=Path, default=Path("data/bench/kaggle-cv-search"))
    args = parser.parse_args()
    X, y = load_train()
    results: dict[str, pd.DataFrame] = {}
    for name in args.names:
        results[name] = fold_metrics(oof_scores(name, X, y, args.repeats, args.cache), y, args.repeats)
    for spec in args.blend:
        parts = [oof_scores(n, X, y, args.repeats, args.cache) for n in spec.split("+")]
        results[f"blend:{spec}"] = fold_metrics(rank_blend(parts, y, args.repeats), y, args.repeats)
    for spec in args.mean:
        parts = [oof_scores(n, X, y, args.repeats, args.cache) for n in spec.split("+")]
        results[f"mean:{spec}"] = fold_metrics(np.mean(parts, axis=0), y, args.repeats)
    ref = next(iter(results.values()))
    n = len(ref)
    print(f"{'candidate':<44} {'PR-AUC':>15} {'ROC-AUC':>15} {'ΔPR vs first':>16}")
    for name, m in results.items():
        d = m.pr_auc - ref.pr_auc
        print(f"{name:<44} {m.pr_auc.mean():.4f} ± {m.pr_auc.std():.3f} {m.roc_auc.mean():.4f} ± "
              f"{m.roc_auc.std():.3f} {d.mean():+.4f} ± {d.std() / np.sqrt(n):.4f}")


if __name__ == "__main__":
    main()

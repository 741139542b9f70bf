"""Fraud scorers per entity level (欺诈风险评分模型): calibrated LightGBM, or an unsupervised fallback.

A :class:`FraudScorer` follows scikit-learn's estimator contract: ``fit(X, y)`` returns ``self``,
``predict_proba(X)`` gives ``[P(clean), P(fraud)]`` per row, learned attributes end in ``_``. It chooses
its own mode from the labels it is given:

- ``supervised`` (enough positives and negatives, ``min_positives`` / ``min_negatives``): LightGBM with
  small regularised trees. Its probabilities are calibrated on *out-of-fold* scores (isotonic with enough
  positives, Platt's sigmoid below that) so that P(fraud) × amount at risk is an expected recovery.
- ``unsupervised`` (too few labels, e.g. a new region): an IsolationForest on the same features; the
  anomaly score becomes a percentile, and the percentile becomes a probability by a logistic fit on the
  few labels there are (Platt), or — with fewer than ``min_calibration_labels`` of each class — by the
  fixed prior ``unlabelled_prior`` × percentile. ``calibrated_`` says which.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"round_share": rng.random(400), "n_setl_365": rng.integers(0, 50, 400)})
>>> y = (X["round_share"] > 0.8).astype(int).to_numpy()
>>> s = FraudScorer(seed=0).fit(X, y)
>>> s.mode_, s.n_positives_ > 20
('supervised', True)
>>> p = s.predict_proba(X)[:, 1]
>>> float(p[y == 1].mean()) > 0.8 > float(p[y == 0].mean()) + 0.6
True
>>> few = FraudScorer(seed=0).fit(X, np.where(np.arange(400) < 3, y, 0))
>>> few.mode_
'unsupervised'
"""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import IsolationForest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

__all__ = ["FraudScorer", "Contributions", "LGBM_PARAMS"]

# Small trees and strong subsampling: a region has tens to thousands of labelled frauds, not millions.
LGBM_PARAMS = dict(
    objective="binary", learning_rate=0.05, n_estimators=300, num_leaves=15, max_depth=5,
    min_child_samples=10, feature_fraction=0.7, bagging_fraction=0.8, bagging_freq=1, lambda_l2=5.0,
    num_threads=2, deterministic=True, force_col_wise=True, verbose=-1,
)


@dataclass(frozen=True)
class Contributions:
    """Per-row feature contributions to a score (SHAP values on the model's raw scale) and the base value."""

    values: pd.DataFrame  # rows × features
    base: np.ndarray  # one base value per row
    scale: str  # "log-odds" (LightGBM) or "anomaly" (IsolationForest path length, higher = more unusual)


class FraudScorer(ClassifierMixin, BaseEstimator):
    """Calibrated fraud probability for one entity level; see the module docstring.

    Parameters are plain values so ``get_params`` / ``set_params`` and MLflow logging work.
    """

    def __init__(self, *, seed: int = 0, min_positives: int = 20, min_negatives: int = 20,
                 calibration_folds: int = 5, isotonic_min_positives: int = 100,
                 min_calibration_labels: int = 3, unlabelled_prior: float = 0.2,
                 n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 15,
                 min_child_samples: int = 10, scale_pos_weight: float = 1.0) -> None:
        self.seed = seed
        self.min_positives = min_positives
        self.min_negatives = min_negatives
        self.calibration_folds = calibration_folds
        self.isotonic_min_positives = isotonic_min_positives
        self.min_calibration_labels = min_calibration_labels
        self.unlabelled_prior = unlabelled_prior
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.scale_pos_weight = scale_pos_weight

    # -- fitting ------------------------------------------------------------------------------------

    def fit(self, X: pd.DataFrame, y) -> FraudScorer:
        X = self._frame(X, fitting=True)
        y = np.asarray(y, dtype=int)
        if len(y) != len(X):
            raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
        self.classes_ = np.array([0, 1])
        self.n_positives_ = int(y.sum())
        self.n_negatives_ = int(len(y) - y.sum())
        self.base_rate_ = float(y.mean()) if len(y) else 0.0
        supervised = self.n_positives_ >= self.min_positives and self.n_negatives_ >= self.min_negatives
        self.mode_ = "supervised" if supervised else "unsupervised"
        if supervised:
            self._fit_supervised(X, y)
        else:
            self._fit_unsupervised(X, y)
        return self

    def _fit_supervised(self, X: pd.DataFrame, y: np.ndarray) -> None:
        folds = min(self.calibration_folds, self.n_positives_, self.n_negatives_)
        oof = np.zeros(len(y))
        for k, (tr, va) in enumerate(StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(X, y)):
            oof[va] = self._lgbm(seed=self.seed + k).fit(X.iloc[tr], y[tr]).predict_proba(X.iloc[va])[:, 1]
        self.oof_raw_ = oof
        self.booster_ = self._lgbm(seed=self.seed).fit(X, y)
        if self.n_positives_ >= self.isotonic_min_positives:
            self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof, y)
            self.calibration_ = "isotonic"
        else:
            self.calibrator_ = LogisticRegression(C=1e4).fit(_logit(oof)[:, None], y)
            self.calibration_ = "sigmoid"
        self.calibrated_ = True

    def _fit_unsupervised(self, X: pd.DataFrame, y: np.ndarray) -> None:
        self.fill_ = X.median().fillna(0.0)
        self.forest_ = IsolationForest(n_estimators=200, random_state=self.seed, n_jobs=1).fit(X.fillna(self.fill_))
        self.reference_scores_ = np.sort(-self.forest_.score_samples(X.fillna(self.fill_)))
        pct = self._percentile(X)
        enough = min(self.n_positives_, self.n_negatives_) >= self.min_calibration_labels
        if enough:
            self.calibrator_ = LogisticRegression(C=1.0).fit(pct[:, None], y)
            self.calibration_ = "sigmoid-on-percentile"
            self.calibrated_ = True
        else:
            self.calibrator_ = None
            self.calibration_ = f"prior {self.unlabelled_prior} × percentile (uncalibrated)"
            self.calibrated_ = False

    def _lgbm(self, *, seed: int) -> lgb.LGBMClassifier:
        params = {**LGBM_PARAMS, "n_estimators": self.n_estimators, "learning_rate": self.learning_rate,
                  "num_leaves": self.num_leaves, "min_child_samples": self.min_child_samples,
                  "scale_pos_weight": self.scale_pos_weight}
        return lgb.LGBMClassifier(**params, random_state=seed)

    # -- scoring ------------------------------------------------------------------------------------

    def raw_score(self, X: pd.DataFrame) -> np.ndarray:
        """Uncalibrated score: LightGBM probability, or the anomaly percentile (0–1)."""
        X = self._frame(X)
        if self.mode_ == "supervised":
            return self.booster_.predict_proba(X)[:, 1]
        return self._percentile(X)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self._calibrated(self.raw_score(X))
        return np.column_stack([1.0 - p, p])

    def use_threads(self, n: int) -> FraudScorer:
        """Score with ``n`` threads from now on (the service: 1, one row per request, requests side by side);
        the fallback's isolation forest already runs on one."""
        if getattr(self, "booster_", None) is not None:
            self.booster_.set_params(num_threads=n)
        self.predict_threads_ = n
        return self

    def score_with_contributions(self, X: pd.DataFrame) -> tuple[np.ndarray, Contributions]:
        """P(fraud) and the SHAP values of the same rows, from one pass over the trees in supervised mode.

        LightGBM's ``pred_contrib`` values and base add up to the log-odds margin, so the probability is
        their sum through the sigmoid (then calibrated): the pre-check's model score and its reasons for
        the price of one call. Same numbers as ``predict_proba`` and ``contributions``."""
        if self.mode_ != "supervised":
            return self.predict_proba(X)[:, 1], self.contributions(X)
        X = self._frame(X)
        # the Booster itself, not the wrapper (no frame checks), with the thread count of use_threads: the
        # service sets one (serving.runtime), and an OpenMP team per one-row request costs more than the row
        threads = getattr(self, "predict_threads_", None)  # get_params() would cost 0.13 ms a call
        raw = self.booster_.booster_.predict(X.to_numpy(), pred_contrib=True,
                                             **({"num_threads": threads} if threads else {}))
        p = self._calibrated(1.0 / (1.0 + np.exp(-raw.sum(axis=1))))
        return p, Contributions(pd.DataFrame(raw[:, :-1], columns=self.feature_names_in_, index=X.index),
                                raw[:, -1], "log-odds")

    def _calibrated(self, raw: np.ndarray) -> np.ndarray:
        """P(fraud) from the uncalibrated score (:meth:`raw_score`)."""
        if self.mode_ == "supervised":
            if self.calibration_ == "isotonic":
                # what IsotonicRegression(out_of_bounds="clip").predict computes, without its input checks
                p = np.interp(raw, self.calibrator_.X_thresholds_, self.calibrator_.y_thresholds_)
            else:
                p = self.calibrator_.predict_proba(_logit(raw)[:, None])[:, 1]
        elif self.calibrator_ is not None:
            p = self.calibrator_.predict_proba(raw[:, None])[:, 1]
        else:
            p = self.unlabelled_prior * raw
        return np.clip(np.asarray(p, dtype=float), 0.0, 1.0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def contributions(self, X: pd.DataFrame) -> Contributions:
        """SHAP values per row and feature: LightGBM's exact TreeSHAP (``pred_contrib``) in supervised
        mode, ``shap.TreeExplainer`` on the IsolationForest otherwise. Costs milliseconds per row: call it
        for the rows that reach a clue list or a pre-check, not for a whole region."""
        X = self._frame(X)
        if self.mode_ == "supervised":
            raw = self.booster_.predict(X, pred_contrib=True)
            return Contributions(pd.DataFrame(raw[:, :-1], columns=self.feature_names_in_, index=X.index),
                                 raw[:, -1], "log-odds")
        import shap

        explainer = shap.TreeExplainer(self.forest_)
        vals = explainer.shap_values(X.fillna(self.fill_))
        # shap explains the forest's path length (short path = anomalous): flip so positive = riskier.
        base = np.full(len(X), -float(np.ravel(explainer.expected_value)[0]))
        return Contributions(pd.DataFrame(-np.asarray(vals), columns=self.feature_names_in_, index=X.index),
                             base, "anomaly")

    def summary(self) -> dict:
        """What was fitted, for reports and MLflow: mode, labels seen, calibration."""
        return {"mode": self.mode_, "n_positives": self.n_positives_, "n_negatives": self.n_negatives_,
                "calibration": self.calibration_, "calibrated": self.calibrated_,
                "n_features": len(self.feature_names_in_)}

    # -- helpers ------------------------------------------------------------------------------------

    def _frame(self, X: pd.DataFrame, *, fitting: bool = False) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("FraudScorer expects a pandas DataFrame with named feature columns")
        if fitting:
            self.feature_names_in_ = np.array(X.columns, dtype=object)
            self.n_features_in_ = X.shape[1]
            return X.astype(float)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise ValueError(f"missing feature columns: {missing[:10]}{' …' if len(missing) > 10 else ''}")
        if X.columns.equals(pd.Index(self.feature_names_in_)):  # already in order (the pre-check's rows)
            return X.astype(float, copy=False)
        return X[list(self.feature_names_in_)].astype(float)

    def _percentile(self, X: pd.DataFrame) -> np.ndarray:
        s = -self.forest_.score_samples(X.fillna(self.fill_))
        return np.searchsorted(self.reference_scores_, s, side="right") / len(self.reference_scores_)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))

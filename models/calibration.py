"""Per-region calibration (本地校准): the shipped model's probabilities set right with a region's first outcomes.

A model trained on other regions ranks a new region's entities usefully, but its P(fraud) is that of the
regions it learned from: another fraud rate, another mix. Once investigators have verified some clues (even
twenty), :func:`fit_region_calibration` fits a logistic map of the model's log-odds on those outcomes
(Platt: ``logit p' = a + b · logit p``, with a mild ridge towards "no change", ``a = 0, b = 1``, so that a
handful of outcomes cannot swing it) and reports how much it changes the fit on them, in-sample and
leave-one-out. Below :data:`MIN_OUTCOMES`, or without both outcomes, nothing is fitted and the scores are
said to be uncalibrated for the region. The map keeps the ranking (it is monotone): it changes the expected
recovery that orders entities of different levels, and what a P(fraud) means.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> p = rng.uniform(0.05, 0.95, 60); y = (rng.random(60) < p / 3).astype(int)   # the region has less fraud
>>> cal = fit_region_calibration(p, y, model_id="m1")
>>> cal.fitted, cal.a < 0, cal.logloss_after < cal.logloss_before
(True, True, True)
>>> bool(apply_calibration(p, cal).mean() < p.mean())
True
>>> fit_region_calibration(p[:10], y[:10], model_id="m1").fitted
False
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

__all__ = ["MIN_OUTCOMES", "RegionCalibration", "fit_region_calibration", "apply_calibration", "model_id",
           "CALIBRATION_FILE"]

MIN_OUTCOMES = 20
CALIBRATION_FILE = "calibration.json"  # beside the region's warehouse
_RIDGE = 1.0  # strength of the pull towards a = 0, b = 1 (in units of one outcome's log-likelihood)
_EPS = 1e-6


@dataclass(frozen=True)
class RegionCalibration:
    model_id: str
    fitted: bool
    n: int
    positives: int
    a: float = 0.0
    b: float = 1.0
    logloss_before: float | None = None
    logloss_after: float | None = None
    logloss_after_loo: float | None = None  # each outcome predicted by a map fitted without it
    brier_before: float | None = None
    brier_after: float | None = None
    mean_p_before: float | None = None
    mean_p_after: float | None = None
    observed_rate: float | None = None
    fitted_at: str = ""
    note_zh: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @staticmethod
    def load(path: Path) -> RegionCalibration | None:
        path = Path(path)
        if not path.is_file():
            return None
        return RegionCalibration(**json.loads(path.read_text(encoding="utf-8")))


def model_id(meta: dict) -> str:
    """A short id of a trained bundle (from its metadata): a calibration belongs to one model."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode()).hexdigest()[:12]


def fit_region_calibration(p, y, *, model_id: str, min_outcomes: int = MIN_OUTCOMES) -> RegionCalibration:
    """Fit the region's map from the model's P(fraud) ``p`` of verified entities and their outcomes ``y``."""
    p = np.clip(np.asarray(p, dtype=float), _EPS, 1 - _EPS)
    y = np.asarray(y, dtype=int)
    n, pos = int(len(y)), int(y.sum())
    now = datetime.now().isoformat(timespec="seconds")
    if n < min_outcomes or pos == 0 or pos == n:
        why = (f"仅有 {n} 条核实结果（至少需要 {min_outcomes} 条）" if n < min_outcomes
               else "核实结果只有一类（全部属实或全部不实）")
        return RegionCalibration(model_id, False, n, pos, fitted_at=now,
                                 note_zh=f"模型概率未针对本地区校准：{why}；排序仍可用，概率按训练地区的水平理解。")
    x = _logit(p)
    a, b = _fit(x, y)
    loo = np.array([_sigmoid(np.dot(_fit(np.delete(x, i), np.delete(y, i)), (1.0, x[i]))) for i in range(n)])
    after = _sigmoid(a + b * x)
    return RegionCalibration(
        model_id, True, n, pos, round(a, 4), round(b, 4), _logloss(y, p), _logloss(y, after), _logloss(y, loo),
        round(float(np.mean((p - y) ** 2)), 4), round(float(np.mean((after - y) ** 2)), 4),
        round(float(p.mean()), 4), round(float(after.mean()), 4), round(pos / n, 4), now,
        f"已按本地区 {n} 条核实结果（{pos} 条属实）校准：平均概率 {p.mean():.3f} → {after.mean():.3f}，"
        f"实际属实率 {pos / n:.3f}。")


def apply_calibration(p, calibration: RegionCalibration | None) -> np.ndarray:
    """The calibrated P(fraud) (unchanged without a fitted calibration)."""
    p = np.asarray(p, dtype=float)
    if calibration is None or not calibration.fitted:
        return p
    return _sigmoid(calibration.a + calibration.b * _logit(np.clip(p, _EPS, 1 - _EPS)))


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Ridge-penalised logistic regression of y on (1, x), the penalty pulling (a, b) to (0, 1); Newton steps."""
    w = np.array([0.0, 1.0])
    prior = np.array([0.0, 1.0])
    X = np.column_stack([np.ones_like(x), x])
    for _ in range(50):
        q = _sigmoid(X @ w)
        grad = X.T @ (q - y) + _RIDGE * (w - prior)
        hess = X.T @ (X * (q * (1 - q))[:, None]) + _RIDGE * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    return float(w[0]), float(w[1])


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def _sigmoid(z) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def _logloss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    return round(float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), 4)

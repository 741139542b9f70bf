"""The trained scorers as one object (模型包): what training produces, MLflow stores and the service loads.

A :class:`ScorerBundle` holds one :class:`~models.scorers.FraudScorer` per level, the features each
expects, the recovery share per level (for amounts at risk), the peer medians used in reason sentences,
and where it came from (seed, evaluation window, rule-pack version). ``score`` gives P(fraud) for rows of a
level's feature table; ``explain`` gives the top reasons in Chinese for a few rows.

**Region-relative features.** A model shipped to a region it never saw meets other amounts, volumes and
habits. For the entity levels named in ``region_scaled`` (persons, doctors, institutions, pharmacies,
rings: always scored a whole region at a time) the scorers see each feature as its percentile among the
region's own rows (:class:`RegionScale`), not its raw value, so "the top 1 % of this region's pharmacies by
evening share" means the same in every region. ``score``/``explain`` take the region's rows as ``region``
(default: the rows given). Reasons still quote the raw values. The settlement level (scored one visit at a
time by the pre-check) keeps raw features.

The bundle is pickled with joblib; :func:`load_registered` fetches a registered version or alias
(``champion``) from MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from models.explain import Reason, top_reasons
from models.scorers import FraudScorer

__all__ = ["ScorerBundle", "RegionScale", "BUNDLE_FILE", "MODEL_NAME", "ModelNotRegistered", "load_registered",
           "shown_uri"]

BUNDLE_FILE = "scorer_bundle.joblib"
MODEL_NAME = "yibao-fraud"


class RegionScale:
    """Each feature's empirical distribution in one region: ``transform`` gives a value's percentile (0–1,
    ties at their mid-rank) among the region's rows; missing values stay missing.

    >>> region = pd.DataFrame({"x": [1.0, 2.0, 2.0, 10.0]})
    >>> RegionScale(region, ["x"]).transform(pd.DataFrame({"x": [2.0, 50.0, None]}))["x"].tolist()
    [0.5, 1.0, nan]
    """

    def __init__(self, region: pd.DataFrame, features: list[str]):
        self.features = list(features)
        self._sorted = {c: np.sort(pd.to_numeric(region[c], errors="coerce").dropna().to_numpy(dtype=float))
                        for c in self.features}

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        out = {}
        for c in self.features:
            v = pd.to_numeric(X[c], errors="coerce").to_numpy(dtype=float)
            ref = self._sorted[c]
            if len(ref) == 0:
                out[c] = np.where(np.isnan(v), np.nan, 0.5)
                continue
            mid = (np.searchsorted(ref, v, "left") + np.searchsorted(ref, v, "right")) / (2.0 * len(ref))
            out[c] = np.where(np.isnan(v), np.nan, mid)
        return pd.DataFrame(out, index=X.index)


@dataclass
class ScorerBundle:
    scorers: dict[str, FraudScorer]
    features: dict[str, list[str]]
    shares: dict[str, float]
    medians: dict[str, pd.DataFrame]
    peer_columns: dict[str, str | None] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    region_scaled: tuple[str, ...] = ()  # levels whose features are region percentiles (module docstring)

    @property
    def levels(self) -> list[str]:
        return list(self.scorers)

    def score(self, level: str, frame: pd.DataFrame, *, region: pd.DataFrame | None = None) -> np.ndarray:
        """P(fraud) for each row of ``frame`` (a feature table of ``level``; extra columns are ignored,
        missing feature columns are an error naming them); ``region``: all the region's rows of the level,
        when ``frame`` is only some of them. No rows, no scores (a region without pharmacies)."""
        if len(frame) == 0:
            self._features(level, frame)  # still an error when the columns are not the level's
            return np.zeros(0)
        return self._scorer(level).predict_proba(self._model_input(level, frame, region))[:, 1]

    def score_input(self, level: str, model_input: pd.DataFrame) -> np.ndarray:
        """P(fraud) of rows already in the form the level's scorer reads (the region percentiles of a scaled
        level: the Spark screening computes them on the executors)."""
        if len(model_input) == 0:
            return np.zeros(0)
        return self._scorer(level).predict_proba(model_input[self.features[level]])[:, 1]

    def explain(self, level: str, frame: pd.DataFrame, *, n: int = 3, region: pd.DataFrame | None = None,
                model_input: pd.DataFrame | None = None) -> list[list[Reason]]:
        """Top ``n`` reasons per row of ``frame`` (SHAP on the level's model, see :mod:`models.explain`);
        ``model_input``: the same rows as the scorer reads them, when already computed (else from ``region``)."""
        X = self._features(level, frame)
        if model_input is None:
            model_input = self._model_input(level, frame, region)
        else:
            model_input = model_input[self.features[level]].set_axis(frame.index)
        contrib = self._scorer(level).contributions(model_input)
        return top_reasons(level, contrib.values.reset_index(drop=True), X.reset_index(drop=True),
                           self.medians[level], groups=self._groups(level, frame), n=n)

    def _model_input(self, level: str, frame: pd.DataFrame, region: pd.DataFrame | None) -> pd.DataFrame:
        """What the level's scorer reads: the features, as region percentiles where the level is scaled."""
        X = self._features(level, frame)
        if level not in getattr(self, "region_scaled", ()):  # bundles saved before it scale nothing
            return X
        return RegionScale(self._features(level, frame if region is None else region), self.features[level]).transform(X)

    def _groups(self, level: str, frame: pd.DataFrame) -> pd.Series | None:
        """Each row's peer group (the level's peer column), for the medians of the reason sentences."""
        col = self.peer_columns.get(level)
        return frame[col].reset_index(drop=True) if col and col in frame.columns else None

    def score_and_explain(self, level: str, frame: pd.DataFrame, *, n: int = 3, region: pd.DataFrame | None = None
                          ) -> tuple[np.ndarray, list[list[Reason]]]:
        """:meth:`score` and :meth:`explain` of the same rows with one model pass (the pre-check's path)."""
        X = self._features(level, frame)
        p, contrib = self._scorer(level).score_with_contributions(self._model_input(level, frame, region))
        return p, top_reasons(level, contrib.values.reset_index(drop=True), X.reset_index(drop=True),
                              self.medians[level], groups=self._groups(level, frame), n=n)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path, compress=3)
        return path

    @staticmethod
    def load(path: Path) -> ScorerBundle:
        obj = joblib.load(Path(path))
        if not isinstance(obj, ScorerBundle):
            raise TypeError(f"{path} is not a ScorerBundle")
        return obj

    def _scorer(self, level: str) -> FraudScorer:
        if level not in self.scorers:
            raise KeyError(f"模型包中没有层级 (no model for level) {level!r}; 有: {', '.join(self.scorers)}")
        return self.scorers[level]

    def _features(self, level: str, frame: pd.DataFrame) -> pd.DataFrame:
        """The level's feature columns of ``frame``, in the model's order (``frame`` itself when it is
        exactly that, as the pre-check's rows are); missing columns are an error naming them."""
        features = self.features[level]
        if frame.columns.equals(pd.Index(features)):
            return frame
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise ValueError(f"{level}: 缺少特征列 (missing feature columns) {missing[:8]}"
                             f"{' …' if len(missing) > 8 else ''}")
        return frame[features]


class TrackingServerError(ConnectionError):
    """The MLflow tracking server of an ``http(s)://`` tracking URI does not answer."""


def require_tracking_server(tracking_uri: str, *, timeout: float = 5.0) -> None:
    """For an ``http(s)://`` tracking URI, the server must answer ``/health`` within ``timeout`` seconds, else
    :class:`TrackingServerError` naming the server (without any user or password in the URI) and why.
    MLflow's own client retries a refused connection for about four minutes before it says anything, and
    then only that the request failed; a local store (``sqlite:``, a folder) is not checked.

    >>> require_tracking_server("sqlite:///mlruns/mlflow.db")
    >>> require_tracking_server("http://user:secret@127.0.0.1:9", timeout=1)
    Traceback (most recent call last):
    ...
    models.bundle.TrackingServerError: MLflow 跟踪服务器无法连接 (tracking server unreachable): http://127.0.0.1:9 — ...
    """
    import urllib.error
    import urllib.parse
    import urllib.request

    if urllib.parse.urlsplit(tracking_uri).scheme not in ("http", "https"):
        return
    shown = shown_uri(tracking_uri)
    try:
        with urllib.request.urlopen(f"{shown.rstrip('/')}/health", timeout=timeout):
            return
    except urllib.error.HTTPError:
        return  # it answered (an auth proxy's 401, say): the server is there
    except (OSError, ValueError) as e:
        why = getattr(e, "reason", None) or e
        raise TrackingServerError(f"MLflow 跟踪服务器无法连接 (tracking server unreachable): {shown} — {why}; "
                                  "检查 MLFLOW_TRACKING_URI / --tracking-uri 与服务器是否运行") from None


class ModelNotRegistered(LookupError):
    """The registry has no such model, version or alias (a new registry: nothing trained and promoted yet)."""


def shown_uri(uri: str) -> str:
    """``uri`` without the user and password of its network location, for messages.

    >>> shown_uri("http://user:secret@mlflow.example:5000/x"), shown_uri("sqlite:///mlruns/mlflow.db")
    ('http://mlflow.example:5000/x', 'sqlite:///mlruns/mlflow.db')
    """
    import urllib.parse

    parts = urllib.parse.urlsplit(uri)
    if not parts.netloc:
        return uri
    host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else (parts.hostname or "")
    return urllib.parse.urlunsplit(parts._replace(netloc=host + (f":{parts.port}" if parts.port else "")))


def load_registered(tracking_uri: str, ref: str = "champion", *, name: str = MODEL_NAME) -> ScorerBundle:
    """Load a registered bundle: ``ref`` is an alias (``champion``) or a version number. Raises
    :class:`ModelNotRegistered`, saying how to register one, when the registry has no such model, version or
    alias (MLflow's own error names neither the registry nor what to do)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    require_tracking_server(tracking_uri)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        mv = client.get_model_version(name, ref) if str(ref).isdigit() else client.get_model_version_by_alias(name, ref)
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        what = f"版本 (version) {ref}" if str(ref).isdigit() else f"别名 (alias) {ref}"
        raise ModelNotRegistered(
            f"模型登记处 {shown_uri(tracking_uri)} 没有模型 {name} 的{what} (no such registered model): "
            f"先训练并晋级一个模型 (train and promote one first): yibao train --warehouse W, "
            f"然后 yibao promote --yes; 或用 --bundle 指定评分包文件 (or pass a scorer bundle file with --bundle). "
            f"MLflow: {str(e).splitlines()[0][:200]}") from None
    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=f"bundle/{BUNDLE_FILE}")
    return ScorerBundle.load(Path(local))

"""FraudScorer: supervised with enough labels, the unsupervised fallback below, calibration, SHAP."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.ranking import rank_clues, recovery_share
from models.scorers import FraudScorer


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"round_share": rng.random(n), "n_setl_365": rng.integers(0, 50, n).astype(float),
                      "noise": rng.normal(size=n)})
    y = ((X["round_share"] > 0.85) | (X["n_setl_365"] > 47)).astype(int).to_numpy()
    return X, y


def test_supervised_probabilities_are_calibrated_on_held_out_scores():
    X, y = _data()
    s = FraudScorer(seed=1).fit(X, y)
    assert s.mode_ == "supervised" and s.calibrated_
    p = s.predict_proba(X)[:, 1]
    assert abs(p.mean() - y.mean()) < 0.05  # calibrated: mean probability ≈ base rate
    Xt, yt = _data(seed=5)
    pt = s.predict_proba(Xt)[:, 1]
    assert pt[yt == 1].mean() > 0.7 and pt[yt == 0].mean() < 0.1


def test_few_labels_switch_to_the_unsupervised_fallback_and_say_so():
    X, y = _data()
    few = np.zeros_like(y)
    few[np.flatnonzero(y)[:5]] = 1
    s = FraudScorer(seed=0, min_positives=20).fit(X, few)
    assert s.mode_ == "unsupervised" and s.summary()["mode"] == "unsupervised"
    none = FraudScorer(seed=0).fit(X, np.zeros_like(y))
    assert not none.calibrated_ and "uncalibrated" in none.calibration_
    p = none.predict_proba(X)[:, 1]
    assert p.max() <= none.unlabelled_prior + 1e-9


def _fitted(labels: str) -> tuple[pd.DataFrame, FraudScorer]:
    """The data and a scorer fitted on it: supervised ("many" labels) or the fallback ("few")."""
    X, y = _data()
    if labels == "few":
        y = np.where(np.arange(len(y)) < 40, y, 0)
    return X, FraudScorer(seed=0).fit(X, y)


@pytest.mark.parametrize("labels", ["many", "few"])
def test_contributions_explain_each_row(labels):
    X, s = _fitted(labels)
    c = s.contributions(X.head(4))
    assert c.values.shape == (4, 3) and list(c.values.columns) == list(X.columns)
    assert np.isfinite(c.values.to_numpy()).all()


@pytest.mark.parametrize("labels", ["many", "few"])
def test_one_pass_score_and_contributions_equal_the_two_calls(labels):
    # the pre-check's path (score_with_contributions) must give what predict_proba and contributions give,
    # whatever order the columns come in
    X, s = _fitted(labels)
    rows = X.iloc[::37]
    for frame in (rows, rows[list(reversed(X.columns))]):
        p, c = s.score_with_contributions(frame)
        np.testing.assert_allclose(p, s.predict_proba(frame)[:, 1], rtol=0, atol=1e-12)
        two = s.contributions(frame)
        np.testing.assert_allclose(c.values.to_numpy(), two.values.to_numpy(), rtol=0, atol=1e-12)
        np.testing.assert_allclose(c.base, two.base, rtol=0, atol=1e-12)
        assert list(c.values.columns) == list(X.columns)


def test_the_one_pass_score_uses_the_thread_count_the_service_sets(monkeypatch):
    # the service scores one row per request with one thread (serving.runtime); an OpenMP team per row
    # was most of a pre-check's time on a busy machine
    import lightgbm

    X, s = _fitted("many")
    s.use_threads(1)
    seen = []
    real = lightgbm.Booster.predict
    monkeypatch.setattr(lightgbm.Booster, "predict",
                        lambda self, *a, **kw: seen.append(kw.get("num_threads")) or real(self, *a, **kw))
    s.score_with_contributions(X.head(1))
    assert seen == [1]


def test_same_seed_same_scores_and_errors_on_missing_columns():
    X, y = _data()
    a = FraudScorer(seed=3).fit(X, y).predict_proba(X)
    b = FraudScorer(seed=3).fit(X, y).predict_proba(X)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="missing feature columns"):
        FraudScorer(seed=3).fit(X, y).predict_proba(X.drop(columns=["noise"]))


def test_rank_clues_orders_by_expected_recovery_with_stable_ties():
    s = pd.DataFrame({"entity_type": ["psn", "psn", "fixmedins"], "entity_id": ["B", "A", "H"],
                      "p_fraud": [0.5, 0.5, 0.1], "rule_amount": [100.0, 100.0, 0.0],
                      "exposure": [0.0, 0.0, 10_000.0]})
    r = rank_clues(s, {"fixmedins": 0.1})
    assert r["entity_id"].tolist() == ["H", "A", "B"] and r["rank"].tolist() == [1, 2, 3]
    assert recovery_share(pd.Series([5.0]), pd.Series([0.0]), pd.Series([1])) == 0.0


def test_screening_with_a_model_of_settlements_only_says_what_is_missing(tmp_path):
    """A bundle trained with ``TrainConfig(levels=("setl",))`` has no level a clue is raised on: screening it
    said "No objects to concatenate" (pandas); it names the levels instead, before reading the warehouse."""
    from types import SimpleNamespace

    from models.screening import screen

    with pytest.raises(ValueError, match=r"no clue level; it has \['setl'\].*psn"):
        screen(tmp_path / "absent.duckdb", SimpleNamespace(scorers={"setl": object()}, meta={}))

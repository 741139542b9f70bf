"""The Kaggle provider-fraud benchmark (part a): real third-party data, skipped when it is absent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app
import pandas as pd

from training.benchmarks.kaggle import FEATURES_DIR, LEAKING_COLUMNS, RECIPE_DESCRIPTIONS, add_ratios, load_split

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
FEATURES = BENCHMARKS / FEATURES_DIR
needs_data = pytest.mark.skipif(not FEATURES.is_dir(), reason=f"Kaggle benchmark data not found at {FEATURES}")


@pytest.fixture(scope="module")
def report():
    """Part (a) once, through the command line's JSON (what an analyst runs), as a dict."""
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(BENCHMARKS), "--part", "a", "--seed", "0",
                                      "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"a"}
    return payload["a"]


@needs_data
def test_split_drops_leaking_columns_and_keeps_the_fixed_sizes():
    split = load_split(FEATURES)
    assert (len(split.X_train), len(split.X_test)) == (4328, 1082)
    assert (len(split.y_train), len(split.y_test)) == (4328, 1082)
    assert (int(split.y_train.sum()), int(split.y_test.sum())) == (403, 103)
    for col in (*LEAKING_COLUMNS, "Provider"):
        assert col not in split.X_train.columns and col not in split.X_test.columns
    assert list(split.X_train.columns) == list(split.X_test.columns)
    assert split.X_train.shape[1] == 102


@needs_data
@pytest.mark.slow
def test_benchmark_beats_amount_ranking_on_test(report):
    """The command's figures (one run: the benchmark takes a minute; determinism of the same seed is tested on
    our own training, tests/training/test_train.py)."""
    assert report["chosen"] in report["cv"]
    assert report["test"]["model"]["pr_auc"] > report["test"]["amount_ranking"]["pr_auc"]
    assert report["test"]["model"]["roc_auc"] > 0.9
    assert report["test"]["amount_ranking"]["pr_auc"] == pytest.approx(0.705, abs=0.001)  # README anchor
    assert set(report) >= {"cv", "test", "chosen", "seed", "dropped_columns"}
    assert report["chosen_description"] == RECIPE_DESCRIPTIONS[report["chosen"]]
    assert report["n_model_features"] == report["n_features"] + 11


def test_missing_data_folder_is_skipped_with_a_message(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(tmp_path / "absent"), "--part", "a"])
    assert result.exit_code == 0
    assert "skipped:" in result.output and "not found" in result.output


def test_ratios_split_claims_by_setting_and_give_zero_without_inpatients():
    X = pd.DataFrame({"ClaimCounts": [10.0, 4.0], "InClmsPct": [0.2, 0.0], "uniqBeneCount": [5.0, 0.0],
                      "uniqATPhysnCount": [2.0, 1.0], "TotalInscClaimAmtReimbursed": [1000.0, 80.0],
                      "MeanHospitalDays": [0.8, 0.0], "TotalProcCodeNum": [3.0, 0.0],
                      "DeductibleAmtPaid_mean": [10.0, 0.0], "TotalIPAnnualReimbursementAmt": [3000.0, 0.0],
                      "OPAnnualReimbursementAmt_sum": [1000.0, 0.0]})
    r = add_ratios(X)
    assert list(r.columns[:X.shape[1]]) == list(X.columns) and r.shape[1] == X.shape[1] + 11
    assert r.IPClaims.tolist() == [2.0, 0.0] and r.OPClaims.tolist() == [8.0, 4.0]
    assert r.ProcPerIPClaim.tolist() == [1.5, 0.0] and r.DaysPerIPClaim.tolist() == [4.0, 0.0]
    assert r.AmtPerBene.tolist() == [200.0, 80.0]  # no beneficiary counted: divided by 1, not by 0
    assert not r.isna().any().any()

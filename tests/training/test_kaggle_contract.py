"""Kaggle benchmark part (b): raw inpatient claims mapped into the data contract, skipped without the data."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.config import Settings
from features.contract import TABLES
from features.ingest import ingest
from serving.cli import app
from training.benchmarks.kaggle_contract import (
    BASELINE_PR_AUC,
    FRAUD_TYPE,
    PROC_COLUMNS,
    RAW_DIR,
    find_raw,
    load_raw,
    provider_amounts,
    run_contract_benchmark,
    to_contract,
    write_region,
)

BENCHMARKS = Path(__file__).resolve().parents[2].parent / "shared" / "benchmarks"
RAW = BENCHMARKS / RAW_DIR
needs_data = pytest.mark.skipif(find_raw(BENCHMARKS) is None, reason=f"Kaggle raw claims not found at {RAW}")
N_PROVIDERS = 50


@pytest.fixture(scope="module")
def raw():
    return load_raw(BENCHMARKS, providers=N_PROVIDERS)


@pytest.fixture(scope="module")
def tables(raw):
    return to_contract(raw)


@pytest.fixture(scope="module")
def loaded(tables, tmp_path_factory):
    """The slice written as a region and ingested into a fresh warehouse: (report, warehouse path)."""
    root = tmp_path_factory.mktemp("kaggle_b")
    write_region(tables, root / "region")
    settings = Settings(warehouse=root / "w.duckdb")
    return ingest(root / "region", settings), settings.warehouse


@needs_data
def test_slice_keeps_the_first_providers_and_their_people(raw):
    assert raw.inpatient["Provider"].nunique() == N_PROVIDERS
    assert set(raw.beneficiary["BeneID"]) == set(raw.inpatient["BeneID"])
    assert set(raw.provider_labels["Provider"]) == set(raw.inpatient["Provider"])


@needs_data
def test_every_contract_table_ingests_without_quarantine(tables, loaded):
    report, _ = loaded
    assert report.ok, report.problems
    for name, df in tables.items():
        t = report.table(name)
        assert (t.status, t.rows_in, t.loaded, t.quarantined) == ("ok", len(df), len(df), 0), (name, t)
        assert set(TABLES[name].required) <= set(df.columns), name
    # hilist and stock_moves are optional and have nothing to come from in Kaggle
    assert set(report.missing_tables) == {"hilist", "stock_moves"}


@needs_data
def test_settlements_add_up_and_match_the_raw_claims(raw, tables, loaded):
    setl, lines = tables["setl_d"], tables["fee_list_d"]
    assert len(setl) == len(raw.inpatient) == setl["setl_id"].nunique()
    np.testing.assert_allclose(setl["medfee_sumamt"], setl["fund_pay_sumamt"] + setl["psn_pay"], atol=0.005)
    by_setl = lines.groupby("setl_id")["det_item_fee_sumamt"].sum().reindex(setl["setl_id"])
    np.testing.assert_allclose(by_setl.to_numpy(), setl["medfee_sumamt"].to_numpy(), atol=0.005)
    # one line for the whole claim plus one per procedure code
    n_proc = int(raw.inpatient[list(PROC_COLUMNS)].notna().sum().sum())
    assert len(lines) == len(raw.inpatient) + n_proc
    # and the same in the warehouse, per provider, against Kaggle's own reimbursed amounts
    _, warehouse = loaded
    with duckdb.connect(str(warehouse), read_only=True) as con:
        fund = con.sql("SELECT fixmedins_code, sum(fund_pay_sumamt)::DOUBLE AS fund FROM setl_d GROUP BY 1").df()
        gap = con.execute("""SELECT count(*) FROM setl_d s JOIN (SELECT setl_id, sum(det_item_fee_sumamt) AS t
                         FROM fee_list_d GROUP BY 1) l USING (setl_id) WHERE s.medfee_sumamt <> l.t""").fetchone()[0]
    assert gap == 0
    expected = provider_amounts(raw.inpatient)
    np.testing.assert_allclose(fund.set_index("fixmedins_code")["fund"].reindex(expected.index), expected, atol=0.005)


@needs_data
def test_fields_are_mapped_as_documented(raw, tables):
    claims = raw.inpatient.set_index("ClaimID")
    mdtrt = tables["mdtrt_d"].set_index("mdtrt_id")
    assert (mdtrt["chfpdr_code"].fillna("") == claims["AttendingPhysician"].reindex(mdtrt.index).fillna("")).all()
    assert (mdtrt["dscg_maindiag_code"] == claims["ClmDiagnosisCode_1"].reindex(mdtrt.index)).all()
    assert (mdtrt["med_type"] == "21").all()
    diag = tables["setl_list_diag_d"]
    assert (diag.groupby("setl_id")["maindiag_flag"].apply(lambda f: (f == "1").sum()) == 1).all()
    assert set(diag["diag_code"]) <= set(pd.unique(raw.inpatient.filter(like="ClmDiagnosisCode_").values.ravel()))
    psn = tables["psn_info"].set_index("psn_no")
    dod = raw.beneficiary.set_index("BeneID")["DOD"]
    assert (psn["die_date"].isna() == dod.reindex(psn.index).isna()).all()
    assert (psn["insu_admdvs"].str.len() == 7).all()
    lab = tables["labels"]
    truth = raw.provider_labels.set_index("Provider")["PotentialFraud"].eq("Yes").astype(int)
    assert (lab.set_index("entity_id")["label"] == truth.reindex(lab["entity_id"]).to_numpy()).all()
    assert set(lab["entity_type"]) == {"fixmedins"} and set(lab["fraud_type"]) == {FRAUD_TYPE}
    assert set(tables["practitioner"]["fixmedins_code"]) <= set(tables["fixmedins"]["fixmedins_code"])


@needs_data
@pytest.mark.slow  # the whole pipeline and 5 × 6 LightGBM fits: ~10 s of CPU, 25 s on the busy 2 cores
def test_cli_part_b_on_a_slice_gives_json_figures(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(BENCHMARKS), "--part", "b",
                                      "--providers", "60", "--workdir", str(tmp_path / "b"), "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"b"}
    b = payload["b"]
    assert b["n_providers"] == 60 and b["ingest"]["quarantined"] == 0
    assert 0 <= b["model"]["pr_auc"] <= 1 and 0 <= b["amount_ranking"]["pr_auc"] <= 1
    assert len(b["scorer"]["modes"]) == 5
    assert (tmp_path / "b" / "warehouse.duckdb").is_file()


def test_missing_raw_folder_is_skipped_with_a_message(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(tmp_path / "absent"), "--part", "b"])
    assert result.exit_code == 0
    assert "skipped:" in result.output and "not found" in result.output
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(tmp_path / "absent"), "--json"])
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["a"]["skipped"].startswith("skipped:") and payload["b"]["skipped"].startswith("skipped:")


def test_unknown_part_is_an_error(tmp_path):
    result = CliRunner().invoke(app, ["benchmark", "kaggle", "--data", str(tmp_path), "--part", "c"])
    assert result.exit_code == 2


@needs_data
@pytest.mark.slow
def test_full_benchmark_beats_the_amount_ranking(tmp_path):
    report = run_contract_benchmark(BENCHMARKS, tmp_path, seed=0)
    assert (report.n_providers, report.n_fraud, report.n_claims) == (2092, 440, 40474)
    assert report.ingest["quarantined"] == 0
    assert report.amount_ranking["pr_auc"] == pytest.approx(BASELINE_PR_AUC, abs=0.001)  # README anchor
    assert report.amount_ranking["roc_auc"] == pytest.approx(0.864, abs=0.001)
    assert report.model["pr_auc"] > BASELINE_PR_AUC and report.reached


def test_module_doctests_run_without_the_data():
    import doctest

    import training.benchmarks.kaggle_contract as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0

"""Transfer evaluation: a clue list judged by labels; models trained on several regions, scaled per region."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from models.bundle import RegionScale
from models.levels import ring_truth
from training.transfer import judge_clues, warehouse_of
from features.warehouse import copy_warehouse


def test_judge_counts_labelled_fraudsters_and_matching_rings(tiny_warehouse):
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        lab = con.sql("SELECT entity_type, entity_id FROM labels WHERE label = 1").df()
        truth = ring_truth(con)
        psn = lab.loc[lab.entity_type == "psn", "entity_id"].iloc[0]
        inst = lab.loc[lab.entity_type == "fixmedins", "entity_id"].iloc[0]
        true_rings = truth[truth.ring_share >= 0.5]
        ring = true_rings["community_id"]
        clean_psn = con.execute("SELECT psn_no FROM psn_info WHERE psn_no NOT IN "
                            "(SELECT entity_id FROM labels WHERE entity_type = 'psn') LIMIT 1").fetchall()[0][0]
        clues = pd.DataFrame({"entity_type": ["psn", "fixmedins", "psn"] + (["ring"] if len(ring) else []),
                              "entity_id": [psn, inst, clean_psn] + list(ring[:1]),
                              "typologies": [[], [], []] + ([[true_rings["fraud_type"].iloc[0]]] if len(ring) else [])})
        judged = judge_clues(con, clues, capacities=(2, 3, 4))
    assert judged["precision"]["2"] == 1.0
    assert judged["precision"]["3"] == pytest.approx(2 / 3, abs=1e-4)
    assert judged["precision_loose"]["3"] >= judged["precision"]["3"]
    assert inst in judged["fraud_institutions"]["in_top_4"]
    if len(ring):
        assert judged["precision"]["4"] == 0.75
        assert all(f["type_right"] for f in judged["rings"]["found"].values())
    assert 0 < judged["at"]["2"]["money_caught"] <= judged["at"]["4"]["money_caught"] <= 1


def test_region_scale_ranks_within_the_region():
    region = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [10.0, 10.0, 10.0, np.nan]})
    out = RegionScale(region, ["a", "b"]).transform(region)
    assert out["a"].tolist() == [0.125, 0.375, 0.625, 0.875]
    assert out["b"].tolist()[:3] == [0.5, 0.5, 0.5] and np.isnan(out["b"].iloc[3])
    # a region ten times richer gets the same percentiles
    assert RegionScale(region * 10, ["a"]).transform(region * 10)["a"].tolist() == out["a"].tolist()


@pytest.mark.slow
def test_a_model_trained_on_two_regions_screens_a_region_by_its_own_percentiles(tiny_warehouse, tmp_path):
    from training.train import TrainConfig, load_regions, train

    config = TrainConfig(seed=0, levels=("psn", "fixmedins", "pharmacy"), n_estimators=40, folds=3)
    data, ledger, _ = load_regions([tiny_warehouse, tiny_warehouse], config)
    ids = data["psn"].frame["psn_no"]
    assert ids.str.startswith("r0:").sum() == ids.str.startswith("r1:").sum() == len(ids) // 2
    assert set(ledger["case_id"].str[:3]) == {"r0:", "r1:"}
    assert data["psn"].scaled is not None and data["psn"].scaled.max().max() <= 1.0

    result = train([tiny_warehouse, tiny_warehouse], config, tracking_uri=None, out_dir=tmp_path / "r")
    bundle = result.bundle
    assert bundle.region_scaled == ("psn", "fixmedins", "pharmacy")
    frame = data["psn"].frame[data["psn"].frame["_region"] == 0]
    whole = bundle.score("psn", frame)
    part = bundle.score("psn", frame.iloc[:50], region=frame)  # some rows, judged against their region
    assert np.allclose(whole[:50], part)
    # the same rows in a region where every amount is ten times larger score the same
    amounts = [c for c in bundle.features["psn"] if c.startswith(("amt", "fund_amt", "rh_amt"))]
    richer = frame.assign(**{c: frame[c] * 10 for c in amounts})
    assert np.allclose(bundle.score("psn", richer), whole)


def test_warehouse_of_a_run_folder(tmp_path):
    (tmp_path / "warehouse.duckdb").write_bytes(b"")
    assert warehouse_of(tmp_path) == tmp_path / "warehouse.duckdb"
    with pytest.raises(FileNotFoundError, match="yibao run"):
        warehouse_of(tmp_path / "nowhere")


def test_a_region_calibrates_the_shipped_model_on_its_first_outcomes(tiny_warehouse, tiny_trained, tmp_path):
    from models.calibration import RegionCalibration
    from models.screening import screen
    from training.calibrate import calibrate_region, region_outcomes

    _, result = tiny_trained
    wh = tmp_path / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, wh)
    with duckdb.connect(str(wh), read_only=True) as con:
        outcomes = region_outcomes(con, sources=("simulated",))
        assert region_outcomes(con).empty  # no verified outcomes in a simulated region
    few = calibrate_region(wh, result.bundle, outcomes=outcomes.head(10), save=False)
    assert not few.fitted and "未针对本地区校准" in few.note_zh and "10" in few.note_zh

    cal = calibrate_region(wh, result.bundle, sources=("simulated",))
    assert cal.fitted and cal.n >= 20 and 0 < cal.positives < cal.n
    assert cal.logloss_after <= cal.logloss_before
    assert RegionCalibration.load(tmp_path / "calibration.json") == cal

    raw = screen(wh, result.bundle, max_clues=50)
    calibrated = screen(wh, result.bundle, max_clues=50, calibration=cal)
    assert "已按本地区" in calibrated.calibration_zh and "未针对" in raw.calibration_zh
    p_raw = {(c["entity_type"], c["entity_id"]): c["p_fraud"] for c in raw.clues}
    p_cal = {(c["entity_type"], c["entity_id"]): c["p_fraud"] for c in calibrated.clues}
    shared = sorted(set(p_raw) & set(p_cal))
    assert shared and any(abs(p_raw[k] - p_cal[k]) > 1e-6 for k in shared)
    order = np.argsort([p_raw[k] for k in shared], kind="stable")  # the map is monotone
    assert np.all(np.diff(np.array([p_cal[k] for k in shared])[order]) >= -1e-12)
    other = RegionCalibration(**(cal.to_dict() | {"model_id": "another-model"}))
    assert screen(wh, result.bundle, max_clues=5, calibration=other).calibration_zh == raw.calibration_zh

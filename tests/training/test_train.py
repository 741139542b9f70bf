"""Retraining end to end on the tiny region: models, report, MLflow run and registry, promotion, screening."""

from __future__ import annotations

import json

import duckdb
import mlflow
import numpy as np
import pytest

from models.bundle import MODEL_NAME, ScorerBundle, load_registered
from models.ranking import risk_level
from models.screening import screen
from training.promote import compare, promote
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow


def test_training_logs_a_run_with_report_model_and_lineage(tiny_trained):
    uri, result = tiny_trained
    rep = result.report
    assert set(rep["levels"]) == {"setl", "psn", "prac", "fixmedins", "pharmacy", "ring"}
    assert rep["levels"]["setl"]["evaluation"].startswith("按时间切分")
    # every level says which mode it ran in; few labels means the unsupervised fallback
    for lv, r in rep["levels"].items():
        assert r["mode"]["mode"] == ("supervised" if r["mode"]["n_positives"] >= 10 else "unsupervised"), lv
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(result.run_id)
    assert run.data.params["seed"] == "0"
    assert run.data.tags["git_commit"] and run.data.tags["rule_pack_version"] != "none"
    assert "combined.precision_at_100" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(result.run_id, "report")}
    assert {"report/report.html", "report/report.json", "report/precision_at_k.png",
            "report/calibration.png"} <= arts
    assert len(run.inputs.dataset_inputs) == 6
    # the run's duration covers the training, not only the logging at its end
    assert (run.info.end_time - run.info.start_time) / 1000 >= 0.8 * result.seconds
    mv = client.get_model_version(MODEL_NAME, result.model_version)
    assert mv.run_id == result.run_id
    mlflow.set_tracking_uri(uri)  # a models:/ URI resolves through the process-wide registry
    mlflow.set_registry_uri(uri)
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{result.model_version}")
    assert model.metadata.signature is not None


def test_combined_ranking_is_evaluated_against_both_baselines(tiny_trained):
    _, result = tiny_trained
    rep = result.report
    for name in ("combined", "rules_alone", "amount_ranking"):
        at = rep["rankings"][name]["at"]
        assert set(at) == {"50", "100", "500"}
        assert all(0 <= a["precision"] <= 1 and 0 <= a["amount_recall"] <= 1 for a in at.values())
    comb, rules = rep["rankings"]["combined"]["at"]["100"], rep["rankings"]["rules_alone"]["at"]["100"]
    assert comb["precision"] > rules["precision"]
    # reasons come from SHAP; a level whose rows are all alike (2 communities on tiny) has none to give
    supervised = [c for c in rep["top_clues"] if rep["levels"][c["entity_type"]]["mode"]["mode"] == "supervised"]
    assert supervised and all(c["reasons"] for c in supervised)
    assert all("同类中位数" in text for c in supervised for text in c["reasons"])
    html = (result.report_dir / "report.html").read_text(encoding="utf-8")
    assert "线索清单效果" in html and "仅规则" in html


def test_the_report_is_in_chinese_with_intervals_and_its_plots_inside(tiny_trained, tmp_path):
    import warnings

    from features.contract import FRAUD_TYPES
    from training.report import write_report

    _, result = tiny_trained
    rep = result.report
    import matplotlib

    # every label drawn in a font that has its glyphs, from matplotlib's defaults (as in a fresh process)
    with matplotlib.rc_context(), warnings.catch_warnings(record=True) as caught:
        matplotlib.rcdefaults()
        warnings.simplefilter("always")
        write_report(rep, result.clues, tmp_path)
    assert not [str(w.message) for w in caught if "Glyph" in str(w.message)]
    at = rep["rankings"]["combined"]["at"]["50"]
    lo, hi = at["precision_ci"]
    assert lo <= at["precision"] <= hi and hi - lo > 0  # an interval, around the figure
    for lv in ("setl", "fixmedins"):
        m = rep["levels"][lv]["metrics"]
        if m["roc_auc"] is not None:
            assert m["roc_auc_ci"][0] <= m["roc_auc"] <= m["roc_auc_ci"][1]
    html = (result.report_dir / "report.html").read_text(encoding="utf-8")
    # the plots are inside the page (MLflow's artifact view shows an HTML artifact without its neighbours)
    assert html.count('src="data:image/png;base64,') == 4 and 'src="precision_at_k.png"' not in html
    # per typology at every capacity, by Chinese name, not by id
    assert all(f"@{k}" in html for k in ("50", "100", "500"))
    typ = next(iter(rep["rankings"]["combined"]["at"]["500"]["typology_amount_recall"]))
    assert FRAUD_TYPES[typ][0] in html and f"({typ})" not in html
    for english in ("time split", "cross-fitting", "per level", "recall per typology"):
        assert english not in html


def test_same_seed_gives_the_same_models_and_report(tiny_warehouse, tiny_trained, tmp_path):
    _, first = tiny_trained
    again = train(tiny_warehouse, TrainConfig(seed=0), tracking_uri=None, out_dir=tmp_path / "rep")
    assert again.report["rankings"] == first.report["rankings"]
    assert again.report["levels"] == first.report["levels"]
    assert again.clues[["entity_type", "entity_id"]].equals(first.clues[["entity_type", "entity_id"]])


def test_promote_moves_the_alias_only_when_asked(tiny_warehouse, tiny_trained):
    uri, result = tiny_trained
    first = compare(uri, tiny_warehouse, candidate=result.model_version)
    assert first.champion is None and first.recommended
    promote(uri, result.model_version, reason=first.reason)
    champion = load_registered(uri, "champion")
    assert champion.levels == result.bundle.levels
    # a second comparison re-scores the same window with both models and shows the figures
    again = compare(uri, tiny_warehouse, candidate=result.model_version)
    window = {r["metric"]: r for r in again.rows if r["metric"].startswith("window.setl")}
    assert window["window.setl.pr_auc"]["delta"] == 0.0
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == result.model_version


def test_promote_command_with_and_without_a_champion(tiny_warehouse, tiny_trained, tmp_path):
    from typer.testing import CliRunner

    from serving.cli import app

    uri, result = tiny_trained
    fresh = f"sqlite:///{tmp_path / 'mlflow.db'}"  # no champion there yet
    fresh_result = train(tiny_warehouse, TrainConfig(seed=0, levels=("setl",)), tracking_uri=fresh,
                         out_dir=tmp_path / "rep")
    runner = CliRunner()
    for tracking in (fresh, uri):
        promote(uri, result.model_version, reason="a champion exists") if tracking == uri else None
        for extra in ([], ["--json"]):
            out = runner.invoke(app, ["promote", "--warehouse", str(tiny_warehouse), "--tracking-uri", tracking, *extra])
            assert out.exit_code == 0, out.output
            if extra:
                payload = json.loads(out.stdout)
                assert isinstance(payload["candidate"], str)
                assert payload["champion"] is None if tracking == fresh else isinstance(payload["champion"], str)
            else:
                assert ("尚无 champion" in out.output) == (tracking == fresh)
    assert fresh_result.model_version == "1"


def test_screening_gives_one_clue_per_entity_with_reasons_and_evidence(tiny_warehouse, tiny_trained, tmp_path):
    from serving.clues.store import open_store

    _, result = tiny_trained
    bundle = ScorerBundle.load(result.report_dir / "scorer_bundle.joblib")
    out = screen(tiny_warehouse, bundle, run_id="r1")
    clues = out.clues
    assert clues and len({(c["entity_type"], c["entity_id"]) for c in clues}) == len(clues)
    # priority = P × amount in yuan to the fen (models.ranking): equal fen tie, and the tie is broken by P
    prio = [round(c["p_fraud"] * c["amount_at_risk"], 2) for c in clues]
    assert prio == sorted(prio, reverse=True)
    assert all(c["sources"] for c in clues)
    # a ring's risk level follows the stronger of its P(fraud) and the graph's own risk score
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        graph_risk = dict(con.execute("SELECT community_id, risk_score FROM graph_communities").fetchall())
        candidates = {c for (c,) in con.execute("SELECT community_id FROM graph_communities WHERE in_ring_candidates")
                      .fetchall()}
    rings = [c for c in clues if c["entity_type"] == "ring"]
    assert rings and all(c["risk_level"] == risk_level(max(c["p_fraud"], graph_risk[c["entity_id"]])) for c in rings)
    # a ring candidate's risk level follows the stronger of the ring model's P and the graph's risk score,
    # and it is ranked by it when the ring model is the unsupervised fallback (a supervised one's P stands)
    weak = bundle.scorers["ring"].mode_ != "supervised"
    cands = [c for c in rings if c["entity_id"] in candidates]
    assert cands and all(c["risk_level"] != "low" for c in cands)
    for c in cands:
        g = c["evidence"]["graph"]
        assert c["p_fraud"] == pytest.approx(max(g["model_p_fraud"], g["risk_score"]) if weak else g["model_p_fraud"],
                                             abs=1e-4), (weak, c["p_fraud"], g)
    with_rules = [c for c in clues if "rule" in c["sources"]]
    assert with_rules and all(c["rule_hits"] for c in with_rules)
    assert any(c["evidence"]["setl_id"] for c in clues)
    assert json.dumps(clues, ensure_ascii=False)  # serialisable for the store and the API
    # a reason is a cause: never a value at or below its peers' median, never a z-score below the mean
    cited = [r for c in clues for r in c["reasons"]]
    assert cited and all(r["value"] > r["peer_value"] for r in cited
                         if r["value"] is not None and r["peer_value"] is not None), \
        [r["text_zh"] for r in cited if r["value"] is not None and r["peer_value"] is not None
         and r["value"] <= r["peer_value"]][:5]
    assert all(r["value"] > 0 for r in cited if r["feature"].startswith("z_"))
    assert not any("%" in r["text_zh"] and r["feature"].startswith("z_") for r in cited)
    again = screen(tiny_warehouse, bundle, run_id="r2")
    assert [c["entity_id"] for c in again.clues] == [c["entity_id"] for c in clues]
    store = open_store(f"sqlite:///{tmp_path / 'clues.db'}")
    assert store.upsert_clues("r1", clues).new == len(clues)
    assert store.upsert_clues("r2", again.clues).new == 0


def test_bundle_scores_explain_and_refuse_missing_features(tiny_warehouse, tiny_trained):
    from models.levels import load_level

    _, result = tiny_trained
    d = load_level(tiny_warehouse, "psn")
    p = result.bundle.score("psn", d.frame)
    assert p.shape == (len(d.frame),) and np.all((p >= 0) & (p <= 1))
    # a few rows of a region-scaled level are judged against the whole region's rows
    reasons = result.bundle.explain("psn", d.frame.iloc[np.argsort(-p)[:3]], region=d.frame)
    assert len(reasons) == 3 and all(r and r[0].text_zh.startswith("该参保人") for r in reasons)
    top = d.frame.iloc[np.argsort(-p)[:3]]
    p1, reasons1 = result.bundle.score_and_explain("psn", top, region=d.frame)  # one pass: the same answer
    np.testing.assert_allclose(p1, np.sort(p)[::-1][:3], rtol=0, atol=1e-12)
    assert reasons1 == reasons
    with pytest.raises(ValueError, match="缺少特征列"):
        result.bundle.score("psn", d.frame.drop(columns=[d.features[0]]))


def test_training_only_the_settlement_level_still_reports(tiny_warehouse, tmp_path):
    r = train(tiny_warehouse, TrainConfig(seed=0, levels=("setl",)), tracking_uri=None, out_dir=tmp_path)
    assert r.bundle.levels == ["setl"] and r.report["levels"]["setl"]["metrics"]["n"] > 0
    assert r.report["rankings"]["combined"]["n_candidates"] == 0 and (tmp_path / "report.html").is_file()


def test_a_region_without_pharmacies_is_trained_and_screened(tiny_warehouse, tiny_trained, tmp_path):
    """An extract of hospitals only (no retail pharmacies): a model trained elsewhere screens the other levels
    and raises no pharmacy clue, and a model trained there leaves the level out and says so (both used to
    fail on the pharmacy scorer's zero rows)."""
    from features.warehouse import copy_warehouse

    warehouse = tmp_path / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DELETE FROM feat_pharmacy")
    out = screen(warehouse, tiny_trained[1].bundle)
    assert out.clues and "pharmacy" not in out.by_type and {"psn", "fixmedins"} <= set(out.by_type)
    local = train(warehouse, TrainConfig(seed=0), out_dir=tmp_path / "report")
    assert "pharmacy" not in local.bundle.scorers and {"setl", "psn", "fixmedins"} <= set(local.bundle.scorers)
    assert "feat_pharmacy 0 行" in local.report["skipped_levels"]["pharmacy"]
    assert "未训练" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    again = screen(warehouse, local.bundle)
    assert again.clues and "pharmacy" not in again.by_type


def test_a_region_without_labels_trains_unsupervised_and_says_it_cannot_be_evaluated(tiny_warehouse, tmp_path):
    """Day one in a 医保局: no verified outcomes (no labels table). Training gives anomaly models at every
    level (it used to fail in the ranking evaluation on the empty ledger), the report says the list cannot
    be evaluated there, and the model screens."""
    from features.warehouse import copy_warehouse

    warehouse = tmp_path / "warehouse.duckdb"
    copy_warehouse(tiny_warehouse, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("DROP TABLE labels")
    result = train(warehouse, TrainConfig(seed=0), out_dir=tmp_path / "report")
    assert {lv: rep["mode"]["mode"] for lv, rep in result.report["levels"].items()} == {
        lv: "unsupervised" for lv in result.report["levels"]}
    combined = result.report["rankings"]["combined"]
    assert combined["n_fraud_entities"] == 0 and combined["fraud_money"] == 0
    assert "本地区没有标注的欺诈" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    out = screen(warehouse, result.bundle)
    assert out.clues and all(c["sources"] for c in out.clues)

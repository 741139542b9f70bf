"""Transfer evaluation (迁移评估): the clue list of a region the model never saw, judged by that region's labels.

A 医保局 that installs the system has no verified outcomes on day one: it screens its extract with the
model we ship and works the clue list. :func:`evaluate_transfer` measures exactly that: the model is
trained on some regions (:func:`training.train.train`), the test region — another seed, another scenario
config, another extract dialect — is screened with it (:func:`models.screening.screen`, the region's labels
unused), and only then are the region's labels read to judge the list (:func:`judge_clues`):

- **precision@k** (k = 50, 100, 200): a clue counts when its entity is a labelled fraudster (a person,
  doctor, institution or pharmacy with a positive label), or a community that matches a labelled ring (most
  of its persons belong to one); ``loose`` also counts any entity whose claims contain labelled fraud (the
  ledger's reach: an institution that billed a labelled line);
- **money caught@100**: the share of the labelled fraud money the first 100 clues reach;
- **recall per typology@200**: per fraud type, the share of its cases (and of its money) reached;
- **institutions and rings**: which labelled fraud institutions, pharmacies and rings are in the first 100.

>>> p = precision_at([1, 0, 1, 1], ks=(2, 4))
>>> p == {"2": 0.5, "4": 0.75}
True
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from features.contract import FRAUD_TYPES

__all__ = ["TRANSFER_CAPACITIES", "judge_clues", "precision_at", "evaluate_transfer", "TransferReport",
           "warehouse_of"]

TRANSFER_CAPACITIES = (50, 100, 200)
_LEDGER_TYPE = {"psn": "psn", "prac": "prac", "fixmedins": "fixmedins", "pharmacy": "fixmedins", "ring": "ring"}


def warehouse_of(region: Path | str) -> Path:
    """The warehouse of a region: a ``.duckdb`` file, or a work folder holding ``warehouse.duckdb``."""
    path = Path(region)
    if path.is_dir():
        path = path / "warehouse.duckdb"
    if not path.is_file():
        raise FileNotFoundError(f"仓库不存在 (warehouse not found): {path}; build the region with `yibao run`")
    return path


def precision_at(hits, *, ks=TRANSFER_CAPACITIES) -> dict[str, float]:
    """Share of true clues among the first k, per k (over the clues there are when fewer than k)."""
    y = np.asarray(hits, dtype=float)
    return {str(k): round(float(y[:k].mean()), 4) if len(y[:k]) else 0.0 for k in ks}


def judge_clues(con: duckdb.DuckDBPyConnection, clues: pd.DataFrame, *,
                capacities=TRANSFER_CAPACITIES) -> dict:
    """Figures of a ranked clue list (``entity_type, entity_id``, best first; ``typologies`` optional) against
    the labels of the warehouse on ``con`` (see the module docstring)."""
    from models.levels import ring_truth
    from training.evaluate import fraud_ledger

    clues = clues.reset_index(drop=True)
    lab = con.sql("SELECT entity_type, entity_id, fraud_type FROM labels WHERE label = 1").df()
    positive = set(zip(lab["entity_type"], lab["entity_id"]))
    truth = ring_truth(con)
    true_rings = truth[truth["ring_share"] >= 0.5]
    ring_of = dict(zip(true_rings["community_id"], true_rings["ring_id"]))
    ring_type = dict(zip(true_rings["community_id"], true_rings["fraud_type"]))
    ledger = fraud_ledger(con)
    reach = set(zip(ledger["entity_type"], ledger["entity_id"]))

    def ledger_key(t: str, i: str) -> tuple[str, str]:
        return (_LEDGER_TYPE[t], ring_of.get(i, i) if t == "ring" else i)

    strict = [((_LEDGER_TYPE[t], i) in positive) if t != "ring" else (i in ring_of)
              for t, i in zip(clues["entity_type"], clues["entity_id"])]
    loose = [s or ledger_key(t, i) in reach for s, t, i in zip(strict, clues["entity_type"], clues["entity_id"])]
    out = {"clues": int(len(clues)), "precision": precision_at(strict, ks=capacities),
           "precision_loose": precision_at(loose, ks=capacities)}
    total = float(ledger.groupby("case_id")["amount"].first().sum())
    by_k = {}
    for k in capacities:
        top = clues.head(k)
        keys = {ledger_key(t, i) for t, i in zip(top["entity_type"], top["entity_id"])}
        cases = ledger.assign(reached=[(t, i) in keys for t, i in zip(ledger["entity_type"], ledger["entity_id"])])
        per_case = cases.groupby(["case_id", "fraud_type"], as_index=False).agg(
            amount=("amount", "first"), reached=("reached", "max"))
        per_type = {}
        for t, g in per_case.groupby("fraud_type"):
            per_type[t] = {"typology_zh": FRAUD_TYPES[t][0], "cases": int(len(g)), "reached": int(g["reached"].sum()),
                           "recall": round(float(g["reached"].mean()), 4),
                           "money_recall": round(float(g.loc[g["reached"], "amount"].sum() / g["amount"].sum()), 4)
                           if g["amount"].sum() else None}
        by_k[str(k)] = {"money_caught": round(float(per_case.loc[per_case["reached"], "amount"].sum() / total), 4)
                        if total else 0.0, "per_typology": per_type}
    out["at"] = by_k
    k_top = str(100 if 100 in capacities else capacities[-1])
    top = clues.head(int(k_top))
    in_top = set(zip(top["entity_type"].map(_LEDGER_TYPE), top["entity_id"]))
    institutions = sorted({i for t, i in positive if t == "fixmedins"})
    out["fraud_institutions"] = {"labelled": len(institutions),
                                 f"in_top_{k_top}": sorted(i for i in institutions if ("fixmedins", i) in in_top),
                                 "missing": sorted(i for i in institutions if ("fixmedins", i) not in in_top)}
    rings = set(lab.loc[lab["entity_type"] == "ring", "entity_id"]) | _card_pools(con)
    ring_clues = clues[clues["entity_type"] == "ring"]
    typed = ring_clues["typologies"] if "typologies" in ring_clues else pd.Series([None] * len(ring_clues))
    found = {}
    for rank, (cid, types) in enumerate(zip(ring_clues["entity_id"], typed)):
        rid = ring_of.get(cid)
        if rid is not None and rid not in found:
            found[rid] = {"community_id": cid, "rank": int(ring_clues.index[rank]) + 1,
                          "type_right": bool(types is not None and ring_type.get(cid) in list(types))}
    out["rings"] = {"labelled": len(rings),
                    "found": {r: found[r] for r in sorted(found)},
                    f"in_top_{k_top}": sorted(r for r, f in found.items() if f["rank"] <= int(k_top)),
                    "missing": sorted(rings - {r for r, f in found.items() if f["rank"] <= int(k_top)})}
    return out


def _card_pools(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The labelled card pools, named as :func:`models.levels.ring_truth` names them (``POOL:<pharmacy>``):
    pharmacies where a card has two or more labelled phantom-purchase settlements."""
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'setl_d'").fetchone()[0]:
        return set()
    return {r[0] for r in con.execute("""
        SELECT DISTINCT 'POOL:' || s.fixmedins_code
        FROM labels l JOIN setl_d s ON l.entity_type = 'setl' AND s.setl_id = l.entity_id
        WHERE l.label = 1 AND l.fraud_type = 'phantom_purchase'
        GROUP BY s.psn_no, s.fixmedins_code HAVING count(*) >= 2""").fetchall()}


@dataclass
class TransferReport:
    train: list[str]
    test: str
    model: str
    clue_list: dict
    in_region: dict | None
    seconds: float

    def to_dict(self) -> dict:
        return {"train": self.train, "test": self.test, "model": self.model, "clue_list": self.clue_list,
                "in_region": self.in_region, "seconds": self.seconds}


def evaluate_transfer(train: list[Path], test: Path, *, config=None, bundle_path: Path | None = None,
                      out_dir: Path | None = None, tracking_uri: str | None = None, max_clues: int = 1000,
                      progress=None) -> TransferReport:
    """Train on the regions ``train`` (or take the bundle at ``bundle_path``), screen ``test`` and judge its
    clue list by its labels. Logs one MLflow run when ``tracking_uri`` is given."""
    from models.bundle import ScorerBundle
    from models.screening import screen
    from training.train import TrainConfig, train as fit

    t0 = time.perf_counter()
    tick = progress or (lambda *_: None)
    test_wh = warehouse_of(test)
    train_whs = [warehouse_of(r) for r in train]
    out_dir = Path(out_dir or Path("mlruns") / "transfer" / time.strftime("%Y%m%dT%H%M%S"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if bundle_path is None:
        if not train_whs:
            raise ValueError("--train: 至少需要一个训练区域 (at least one training region), or a bundle")
        tick("训练 train", 0, 3)
        trained = fit(train_whs, config or TrainConfig(), tracking_uri=None, register=False,
                      out_dir=out_dir / "train")
        bundle, model = trained.bundle, f"trained on {', '.join(map(str, train_whs))}"
    else:
        bundle, model = ScorerBundle.load(bundle_path), str(bundle_path)
    tick("筛查 screen", 1, 3)
    result = screen(test_wh, bundle, max_clues=max_clues)
    clues = pd.DataFrame([{"entity_type": c["entity_type"], "entity_id": c["entity_id"], "p_fraud": c["p_fraud"],
                           "amount_at_risk": c["amount_at_risk"], "typologies": c["typologies"],
                           "sources": ",".join(c["sources"])} for c in result.clues])
    tick("评估 judge", 2, 3)
    with duckdb.connect(str(test_wh), read_only=True) as con:
        judged = judge_clues(con, clues)
        judged["calibration"] = _first_outcomes_calibration(con, bundle, clues)
    report = TransferReport([str(w) for w in train_whs], str(test_wh), model, judged, None,
                            round(time.perf_counter() - t0, 1))
    (out_dir / "transfer.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=1), "utf-8")
    clues.to_csv(out_dir / "clues.csv", index=False)
    if tracking_uri:
        _log(tracking_uri, report, out_dir)
    tick("完成 done", 3, 3)
    return report


def _first_outcomes_calibration(con: duckdb.DuckDBPyConnection, bundle, clues: pd.DataFrame,
                                ns=(20, 50)) -> dict:
    """What calibrating on the first n verified clues does: the region verifies its top n clues (their
    truth is the labels), the map is fitted on them and judged leave-one-out (models.calibration)."""
    from models.calibration import fit_region_calibration, model_id
    from training.calibrate import scored_outcomes

    lab = con.sql("SELECT entity_type, entity_id FROM labels WHERE label = 1").df()
    positive = set(zip(lab["entity_type"], lab["entity_id"]))
    from models.levels import ring_truth

    truth = ring_truth(con)
    true_rings = set(truth.loc[truth["ring_share"] >= 0.5, "community_id"])
    out = {}
    for n in ns:
        top = clues.head(n)
        outcomes = pd.DataFrame({
            "entity_type": top["entity_type"].map(_LEDGER_TYPE), "entity_id": top["entity_id"],
            "label": [int(i in true_rings) if t == "ring" else int((_LEDGER_TYPE[t], i) in positive)
                      for t, i in zip(top["entity_type"], top["entity_id"])]})
        scored = scored_outcomes(con, bundle, outcomes)
        cal = fit_region_calibration(scored["p_fraud"].to_numpy(dtype=float), scored["label"].to_numpy(dtype=int),
                                     model_id=model_id(bundle.meta))
        out[str(n)] = {k: v for k, v in cal.to_dict().items() if k not in ("model_id", "fitted_at")}
    return out


def _log(tracking_uri: str, report: TransferReport, out_dir: Path) -> None:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("yibao-transfer")
    with mlflow.start_run(run_name=f"transfer → {Path(report.test).parent.name}"):
        mlflow.log_params({"train": ",".join(report.train)[:500], "test": report.test, "model": report.model[:500]})
        c = report.clue_list
        for k, v in c["precision"].items():
            mlflow.log_metric(f"precision_at_{k}", v)
            mlflow.log_metric(f"precision_loose_at_{k}", c["precision_loose"][k])
            mlflow.log_metric(f"money_caught_at_{k}", c["at"][k]["money_caught"])
        mlflow.log_artifacts(str(out_dir))

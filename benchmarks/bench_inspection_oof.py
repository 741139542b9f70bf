#!/usr/bin/env python
"""Lift of risk-weighted inspection plans with out-of-fold model scores (no label the plan is judged on
was seen by the model that scored that institution)."""
import json
import duckdb
from models.credit import institutions_from_warehouse, load_credit_config, rate_institutions
from models.inspection import inspection_lift, load_inspection_config
from training.dataset import load_level
from training.train import TrainConfig, cross_fit

wh = "data/small/warehouse.duckdb"
inst = institutions_from_warehouse(wh, None)
oof = {}
for lv in ("fixmedins", "pharmacy"):
    d = load_level(wh, lv)
    p = cross_fit(d, TrainConfig(seed=0))
    oof.update(dict(zip(d.ids.astype(str), p)))
inst["p_fraud"] = inst["fixmedins_code"].astype(str).map(oof)
ccfg = load_credit_config(None)
ratings = rate_institutions(inst, None, config=ccfg)
inst = inst.merge(ratings[["fixmedins_code", "score", "grade"]], on="fixmedins_code")
cfg = load_inspection_config(None, credit_config=ccfg, weighting="none")
fraud = duckdb.connect(wh, read_only=True).sql(
    "SELECT DISTINCT entity_id FROM labels WHERE entity_type='fixmedins' AND label=1").df()["entity_id"].tolist()
out = inspection_lift(inst, fraud, seeds=100, config=cfg, weightings=("risk", "credit"))
print(json.dumps(out, ensure_ascii=False, indent=1))

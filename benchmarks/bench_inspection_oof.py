#!/usr/bin/env python
"""Lift of weighted inspection plans on `small`, with nothing the plans are judged on seen by what ranks them.

- ``risk``: the suspicion index (models.inspection.institution_risk): rule hits, 进销存 gap and dialysis
  frequency, no label and no model (what ``yibao inspection plan --weighting risk`` draws by);
- ``credit``: credit grades whose model factor is the institutions' and pharmacies' out-of-fold P(fraud)
  (5-fold cross-fitting, seed 0), so no institution is scored by a model that saw its label.

Usage: ``.venv/bin/python benchmarks/bench_inspection_oof.py [WAREHOUSE] [SEEDS]``.
"""
import json
import sys

import duckdb

from models.credit import institutions_from_warehouse, load_credit_config, rate_institutions
from models.inspection import inspection_lift, institution_risk, load_inspection_config, risk_signals_from_warehouse
from models.levels import load_level
from training.train import TrainConfig, cross_fit

wh = sys.argv[1] if len(sys.argv) > 1 else "data/small/warehouse.duckdb"
seeds = int(sys.argv[2]) if len(sys.argv) > 2 else 100
inst = institutions_from_warehouse(wh, None)
oof = {}
for lv in ("fixmedins", "pharmacy"):
    d = load_level(wh, lv)
    oof.update(dict(zip(d.ids.astype(str), cross_fit(d, TrainConfig(seed=0)))))
inst["p_fraud"] = inst["fixmedins_code"].astype(str).map(oof)
risk = institution_risk(risk_signals_from_warehouse(wh))
inst = inst.merge(risk[["fixmedins_code", "risk"]], on="fixmedins_code", how="left")
ccfg = load_credit_config(None)
ratings = rate_institutions(inst, None, config=ccfg)
inst = inst.merge(ratings[["fixmedins_code", "score", "grade"]], on="fixmedins_code")
cfg = load_inspection_config(None, credit_config=ccfg, weighting="none")
with duckdb.connect(wh, read_only=True) as con:
    fraud = con.sql("SELECT DISTINCT entity_id FROM labels WHERE entity_type='fixmedins' AND label=1"
                    ).df()["entity_id"].tolist()
out = inspection_lift(inst, fraud, seeds=seeds, config=cfg, weightings=("risk", "credit"))
print(json.dumps(out, ensure_ascii=False, indent=1))

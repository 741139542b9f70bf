"""Online settlement features (features/online.py) against the batch build (features/sql/feat_setl.sql).

The same features are defined twice, in SQL for the warehouse and in Python for one new visit; this
parity test is what keeps them equal. For a sample of the tiny region's settlements (every 40th, plus
those where the rarer features are not zero) each column of the ``feat_setl`` catalogue must agree:
counts, sums, flags and keys exactly, ratios (shares, z-score, percent rank, per-day rates, age) within
1e-9; and the settlement model's scores of the two rows must agree too. The rule-hit columns are given
the batch's hits here (the pre-check's own hits see only real-time rules over the past: the service
names them as approximated).
"""

from __future__ import annotations

import doctest
import importlib

import math
from collections import defaultdict
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.catalogue import PEER_STATS, TABLES
from features.online import PersonHistory, load_context, settlement_features
from models.rules.precheck import Prechecker
from serving.scoring import visit_from_warehouse

COLUMNS = [c for c in TABLES["feat_setl"].columns]
# ratios of two amounts or counts: equal within float rounding, not bit for bit
RATIOS = {c.name for c in COLUMNS if c.name.endswith("_share")} | {
    "z_amt_peer", "pct_amt_peer", "lines_per_day", "age_years"}
RARE = ("is_readmit_15d", "n_other_setl_during_stay", "is_during_other_stay", "n_over_cap", "is_after_death",
        "vbp_nonselected_share", "n_dialysis", "n_rehab", "is_out_of_region", "is_injury", "rh_n_hits")


@pytest.fixture(scope="module")
def checker(tiny_warehouse):
    with Prechecker(tiny_warehouse) as c:
        yield c


@pytest.fixture(scope="module")
def parity(tiny_warehouse, checker):
    """``(batch rows, online rows)`` of the sample, both indexed by setl_id, in catalogue columns."""
    context = load_context(tiny_warehouse)
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        rare = " UNION ".join(f"(SELECT setl_id FROM feat_setl WHERE {c} > 0 ORDER BY setl_id LIMIT 15)"
                              for c in RARE)
        batch = con.execute(f"""
            SELECT * FROM feat_setl WHERE setl_id IN (
                SELECT setl_id FROM (SELECT setl_id, row_number() OVER (ORDER BY setl_id) AS i FROM feat_setl)
                WHERE i % 40 = 0 UNION {rare})
            ORDER BY setl_id""").df().set_index("setl_id", drop=False)
        hits = defaultdict(list)
        for setl_id, rule_id, typology_id, amount in con.execute(
                "SELECT setl_id, rule_id, typology_id, amount_at_risk FROM rule_hits WHERE setl_id IN "
                "(SELECT unnest($ids))", {"ids": list(batch.index)}).fetchall():
            hits[setl_id].append({"setl_id": setl_id, "rule_id": rule_id, "typology_id": typology_id,
                                  "amount_at_risk": amount})
        visits = {s: checker.visit(visit_from_warehouse(con, s)) for s in batch.index}
    rows = {}
    for setl_id, v in visits.items():
        history = PersonHistory.from_index(checker.history, v.setl.psn_no)
        as_of = batch.at[setl_id, "as_of"].to_pydatetime()
        rows[setl_id] = settlement_features(v, history, context=context, hits=hits[setl_id], as_of=as_of).values
    online = pd.DataFrame.from_dict(rows, orient="index")
    return batch, online


def test_the_sample_exercises_the_features(parity):
    batch, _ = parity
    assert len(batch) > 400
    for c in RARE:
        assert (batch[c] > 0).any(), c


@pytest.mark.parametrize("column", [c.name for c in COLUMNS])
def test_online_feature_equals_batch(parity, column):
    batch, online = parity
    assert column in online.columns, f"online features lack {column}"
    wrong = []
    for setl_id in batch.index:
        want, got = batch.at[setl_id, column], online.at[setl_id, column]
        if _missing(want) or _missing(got):
            ok = _missing(want) and _missing(got)
        elif isinstance(want, str) or column in ("setl_time", "as_of"):
            ok = pd.Timestamp(want) == pd.Timestamp(got) if column in ("setl_time", "as_of") else want == got
        elif column in RATIOS:
            ok = abs(float(want) - float(got)) <= 1e-9
        else:  # counts, sums, flags: exactly
            ok = float(want) == float(got)
        if not ok:
            wrong.append((setl_id, want, got))
    assert not wrong, f"{column}: {len(wrong)} of {len(batch)} differ, e.g. {wrong[:3]}"


def test_online_scores_equal_batch_scores(parity, tiny_trained):
    batch, online = parity
    bundle = tiny_trained[1].bundle
    columns = bundle.features["setl"]
    as_float = lambda f: f[columns].apply(pd.to_numeric, errors="coerce").astype(float)  # noqa: E731
    p_batch = bundle.score("setl", as_float(batch))
    p_online = bundle.score("setl", as_float(online.loc[batch.index]))
    assert np.max(np.abs(np.asarray(p_batch) - np.asarray(p_online))) <= 1e-9


def test_the_peer_snapshot_is_a_table_of_the_build(tiny_warehouse):
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        got = [r[0] for r in con.execute(f"DESCRIBE {PEER_STATS.name}").fetchall()]
        n, members = con.execute(f"SELECT count(*), sum(n) FROM {PEER_STATS.name}").fetchone()
        (settlements,) = con.execute("SELECT count(*) FROM feat_setl").fetchone()
    assert got == [c.name for c in PEER_STATS.columns]
    assert n > 1 and members == settlements  # every settlement in exactly one group


def test_a_new_visit_is_counted_in_and_names_what_is_approximated(tiny_warehouse, checker):
    context = load_context(tiny_warehouse)
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        (setl_id,) = con.execute("SELECT setl_id FROM feat_setl ORDER BY setl_time DESC, setl_id LIMIT 1").fetchone()
        raw = visit_from_warehouse(con, setl_id)
    later = datetime.fromisoformat(raw["setl"]["setl_time"]) + timedelta(days=2)
    new_id = "NEW-" + setl_id
    raw["setl"] = {k: v for k, v in raw["setl"].items() if k not in ("fund_pay_sumamt", "psn_pay", "acct_pay")} | {
        "setl_id": new_id, "setl_time": str(later)}
    raw["lines"] = [ln | {"setl_id": new_id} for ln in raw["lines"]]
    raw["diagnoses"] = [d | {"setl_id": new_id} for d in raw["diagnoses"]]
    v = checker.visit(raw)
    row = settlement_features(v, PersonHistory.from_index(checker.history, v.setl.psn_no), context=context)
    assert not row.in_snapshot
    assert {"fund_amt", "psn_pay_amt", "acct_pay_amt", "fund_share", "n_same_inst_10min"} <= set(row.approximated)
    assert row.values["n_psn_setl_same_day"] == 1 and row.values["n_same_inst_10min"] >= 1
    assert 0 <= row.values["pct_amt_peer"] <= 1 and math.isfinite(row.values["z_amt_peer"])
    assert set(c.name for c in COLUMNS) <= set(row.values)


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x)) or x is pd.NaT


@pytest.mark.parametrize("module", ['features.online'])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0

"""precheck(visit): the same rule SQL on one visit and the person's history; the same hits as the batch run."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType

import duckdb
import pytest

from rules_mini import warehouse_visit

from models.rules.precheck import Prechecker, Visit, VisitError, precheck

# The batch hits of these settlements must come back from precheck, with the same hit ids. Card theft
# cannot: the stay it needs is settled only at discharge, after the purchase (see docs/rules.md).
SAME_AS_BATCH = ["GENDER-HIT", "AGE-HIT", "INS-HIT", "CARE-HIT", "LEVEL-HIT", "COURSE-HIT", "DUP-HIT", "FREQ-HIT",
                 "PERIOD-HIT", "SURG-HIT", "PRICE-HIT", "DEAD-HIT", "SPLIT-HIT", "STAY-BEDHOLD", "RX-HIT",
                 "THIRD-HIT"]


@pytest.fixture(scope="module")
def checker(case_warehouse):
    with Prechecker(case_warehouse) as c:
        yield c


@pytest.mark.parametrize("setl_id", SAME_AS_BATCH)
def test_precheck_gives_the_batch_hits(checker, case_region_rows, case_hits, setl_id):
    hits = checker.check(case_region_rows.visit_dict(setl_id))
    batch = case_hits[(case_hits.setl_id == setl_id) & (case_hits.rule_id != "vbp_noncompliance")]
    assert sorted(h.hit_id for h in hits) == sorted(batch.hit_id)
    assert {h.message_zh for h in hits} == set(batch.message_zh)
    assert all(h.run_id == "precheck" for h in hits)


@pytest.mark.parametrize("setl_id", ["GENDER-NEAR", "SPLIT-NEAR", "RX-NEAR", "PERIOD-NEAR", "BUY-THEFT-NEAR"])
def test_near_misses_stay_clean(checker, case_region_rows, setl_id):
    assert checker.check(case_region_rows.visit_dict(setl_id)) == []


def test_a_refund_visit_has_no_hits(checker, case_region_rows):
    visit = case_region_rows.visit_dict("GENDER-HIT")
    visit["setl"] = visit["setl"] | {"refd_setl_flag": "1"}
    assert checker.check(visit) == []


def test_lookback_bounds_the_history(case_warehouse, case_region_rows):
    visit = case_region_rows.visit_dict("SPLIT-HIT")  # the earlier stay ended 7 days before
    assert [h.rule_id for h in precheck(visit, warehouse=case_warehouse)] == ["split_admission"]
    assert precheck(visit, warehouse=case_warehouse, lookback_days=3) == []


def test_hit_to_dict_is_plain(checker, case_region_rows):
    (hit,) = checker.check(case_region_rows.visit_dict("PRICE-HIT"))
    d = hit.to_dict()
    assert d["rule_id"] == "price_over_cap" and d["evidence"] == ["PRICE-HIT-L00"] and d["amount_at_risk"] == 24.0
    assert d["detail"]["excess"] == 4.0 and isinstance(d["event_time"], str)
    assert hit.amount_at_risk == Decimal("24.00")


def test_only_the_rules_that_can_fire_run(checker, case_region_rows):
    outpatient = Visit.from_dict(case_region_rows.visit_dict("PRICE-HIT"))
    assert checker.relevant_rules(outpatient) == ("price_over_cap",)
    stay = Visit.from_dict(case_region_rows.visit_dict("FREQ-HIT"))
    assert {"liangku_frequency", "bed_hold"} <= set(checker.relevant_rules(stay))
    # split admission needs an earlier stay in the look-back (precheck_when.history_med_type)
    assert "split_admission" not in checker.relevant_rules(stay)
    assert "split_admission" in checker.relevant_rules(case_region_rows.visit_dict("SPLIT-HIT"))
    assert "dead_person" in checker.relevant_rules(case_region_rows.visit_dict("DEAD-HIT"))
    assert "dead_person" not in checker.relevant_rules(case_region_rows.visit_dict("DEAD-HIT"), {"die_date": None})


def _ungated(config):
    """The config with every rule's precheck_when removed: every real-time rule runs on every visit."""
    return replace(config, rules=tuple(replace(r, precheck_when=MappingProxyType({})) for r in config.rules))


def _key(hits):
    return sorted((h.rule_id, h.hit_id, h.message_zh, h.amount_at_risk, h.evidence) for h in hits)


def test_precheck_when_are_necessary_conditions(checker, case_warehouse, case_region_rows, tiny_warehouse):
    """Skipping the rules whose precheck_when fails never loses a hit: the same hits as running them all."""
    with Prechecker(case_warehouse, config=_ungated(checker.config)) as everything:
        for setl in case_region_rows.rows["setl_d"]:
            visit = case_region_rows.visit_dict(setl["setl_id"])
            assert _key(checker.check(visit)) == _key(everything.check(visit)), setl["setl_id"]
    with duckdb.connect(str(tiny_warehouse), read_only=True) as con:
        # the settlements the batch run hit, and as many without a hit
        hit = [r[0] for r in con.execute("SELECT DISTINCT setl_id FROM rule_hits WHERE setl_id IS NOT NULL "
                                         "ORDER BY 1 LIMIT 100").fetchall()]
        clean = [r[0] for r in con.execute("SELECT setl_id FROM setl_d WHERE setl_id NOT IN (SELECT setl_id FROM "
                                           "rule_hits WHERE setl_id IS NOT NULL) ORDER BY hash(setl_id) LIMIT 60"
                                           ).fetchall()]
        visits = [warehouse_visit(con, s) for s in hit + clean]
    found = 0
    with Prechecker(tiny_warehouse) as gated, Prechecker(tiny_warehouse, config=_ungated(gated.config)) as everything:
        for visit in visits:
            hits = gated.check(visit)
            assert _key(hits) == _key(everything.check(visit)), visit["setl"]["setl_id"]
            found += len(hits)
    assert found > 20  # the sample does exercise the rules


def test_checks_from_many_threads_give_the_same_hits(case_warehouse, case_region_rows):
    ids = [s["setl_id"] for s in case_region_rows.rows["setl_d"]]
    visits = [case_region_rows.visit_dict(s) for s in ids]
    with Prechecker(case_warehouse, sessions=2) as checker:
        expected = [_key(checker.check(v)) for v in visits]
        got: dict[int, list] = {}
        errors: list[BaseException] = []

        def work(offset: int) -> None:
            try:
                for i in range(offset, offset + 2 * len(visits)):
                    got.setdefault(i % len(visits), []).append(_key(checker.check(visits[i % len(visits)])))
            except BaseException as e:  # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert sum(len(v) for v in got.values()) == 4 * 2 * len(visits)
    for i, results in got.items():
        assert all(r == expected[i] for r in results), ids[i]
    assert any(expected)


def test_a_closed_checker_refuses(case_warehouse, case_region_rows):
    checker = Prechecker(case_warehouse, sessions=1)
    checker.close()
    checker.close()  # twice is fine
    with pytest.raises(RuntimeError, match="closed"):
        checker.check(case_region_rows.visit_dict("PRICE-HIT"))


def test_history_since_bounds_the_store(case_warehouse, case_region_rows):
    visit = case_region_rows.visit_dict("SPLIT-HIT")  # the earlier stay ended 7 days before
    with Prechecker(case_warehouse, history_since=datetime(2030, 1, 1), sessions=1) as recent_only:
        assert recent_only.check(visit) == []


def test_a_store_in_a_file_gives_the_same_hits(checker, case_warehouse, case_region_rows, tmp_path):
    with Prechecker(case_warehouse, store_path=tmp_path / "store.duckdb", sessions=1) as on_disk:
        for setl_id in SAME_AS_BATCH:
            visit = case_region_rows.visit_dict(setl_id)
            assert _key(on_disk.check(visit)) == _key(checker.check(visit)), setl_id
    assert (tmp_path / "store.duckdb").is_file()


def test_a_large_warehouse_builds_its_store_in_a_temporary_file(checker, case_warehouse, case_region_rows,
                                                                 tmp_path, monkeypatch):
    # from FILE_STORE_FROM_BYTES on, the store the kernels' index is built from goes to a temporary file
    # (a lower start-up peak on city), which is gone once the checker is built; same hits
    import models.rules.precheck as precheck_module

    monkeypatch.setattr(precheck_module, "FILE_STORE_FROM_BYTES", 0)
    monkeypatch.setattr(precheck_module.tempfile, "tempdir", str(tmp_path))
    stores = []
    load_store = precheck_module._load_store

    def spy(db, warehouse, since, store_path):
        version = load_store(db, warehouse, since, store_path)
        stores.append((store_path, store_path is not None and store_path.is_file()))
        return version

    monkeypatch.setattr(precheck_module, "_load_store", spy)
    with Prechecker(case_warehouse, sessions=1) as large:
        [(path, written)] = stores
        assert written and path.parent.parent == tmp_path  # the store was written there ...
        assert not large.sql_store and list(tmp_path.iterdir()) == []  # ... and is gone
        for setl_id in SAME_AS_BATCH:
            visit = case_region_rows.visit_dict(setl_id)
            assert _key(large.check(visit)) == _key(checker.check(visit)), setl_id



def test_a_visit_before_settlement_needs_only_keys_and_lines():
    visit = Visit.from_dict({
        "setl": {"setl_id": "S9", "mdtrt_id": "M9", "psn_no": "P9", "fixmedins_code": "H3", "med_type": "11",
                 "setl_time": "2025-03-01 10:00:00"},
        "lines": [{"bkkp_sn": "L1", "fee_ocur_time": "2025-03-01 09:30:00", "hilist_code": "X", "hilist_name": "药",
                   "list_type": "101", "med_chrgitm_type": "09", "cnt": 2, "pric": "3.5",
                   "det_item_fee_sumamt": 7}]})
    assert visit.setl.medfee_sumamt == Decimal("7.00") and visit.setl.refd_setl_flag == "0"
    assert visit.lines[0].psn_no == "P9" and visit.mdtrt.begntime == datetime(2025, 3, 1, 10)


@pytest.mark.parametrize("change, where", [
    (lambda v: v["lines"][0].update(pric="12,50"), "visit.lines[0].pric"),
    (lambda v: v["lines"][0].pop("hilist_code"), "visit.lines[0].hilist_code"),
    (lambda v: v["setl"].update(setl_time="yesterday"), "visit.setl.setl_time"),
    (lambda v: v["setl"].update(fixmedins_code=3.0), "visit.setl.fixmedins_code"),
    (lambda v: v["diagnoses"][0].pop("diag_code"), "visit.diagnoses[0].diag_code"),
    (lambda v: v["lines"][0].update(setl_id="OTHER"), "visit.lines[0].setl_id"),
])
def test_a_malformed_visit_names_the_field(case_region_rows, change, where):
    visit = case_region_rows.visit_dict("PRICE-HIT")
    change(visit)
    with pytest.raises(VisitError) as err:
        Visit.from_dict(visit)
    assert str(err.value).startswith(where + ":"), str(err.value)

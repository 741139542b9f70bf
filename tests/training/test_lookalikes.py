"""Honest look-alikes in the simulated region (training/simulator/lookalikes.py): present, labelled clean for
the typology each resembles, reproducible, and gone when the scenario file switches them off."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import pytest

from features.contract import TABLES
from training.simulator import simulate
from training.simulator.config import load_scenarios


def _con(region):
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"create view {t} as select * from read_parquet('{region / t}/*.parquet')")
    return con


@pytest.fixture(scope="module")
def rich_region(tmp_path_factory):
    """A small tiny-sized region with every look-alike made frequent (seed 3)."""
    sc = load_scenarios()
    sc = replace(sc, lookalikes=replace(sc.lookalikes, chemotherapy_courses=0.5, radiotherapy_courses=0.5,
                                        staged_operations=1.0, transfers=0.1, in_hospital_deaths=0.8))
    out = tmp_path_factory.mktemp("lookalikes") / "region"
    simulate("tiny", seed=3, out=out, scenarios=sc)
    return out


def _clean(con, fraud_type, entity_type):
    return {r[0] for r in con.execute("select entity_id from labels where label = 0 and fraud_type = ? "
                                      "and entity_type = ?", [fraud_type, entity_type]).fetchall()}


def test_chemotherapy_cycles_come_back_within_the_split_window_and_are_clean(rich_region):
    con = _con(rich_region)
    cycles = con.execute("""
        with c as (select m.*, lag(endtime) over (partition by psn_no, fixmedins_code order by begntime) prev_end
                   from mdtrt_d m where dscg_maindiag_code = 'Z51.100')
        select mdtrt_id, date_diff('day', prev_end::date, begntime::date) gap from c where prev_end is not null
        """).fetchall()
    gaps = [g for _, g in cycles]
    assert len(gaps) >= 3 and min(gaps) >= 5 and sum(7 <= g <= 20 for g in gaps) >= 3, gaps
    clean = _clean(con, "split_admission", "mdtrt")
    assert {m for m, _ in cycles} <= clean
    # the cancer is a secondary diagnosis of every course admission
    missing = con.execute("""select count(*) from setl_d s join mdtrt_d m using (mdtrt_id)
        where m.dscg_maindiag_code = 'Z51.100' and not exists (select 1 from setl_list_diag_d d
        where d.setl_id = s.setl_id and d.diag_code = 'C34.900' and d.maindiag_flag = '0')""").fetchall()[0][0]
    assert missing == 0


def test_radiotherapy_staged_operations_and_transfers(rich_region):
    con = _con(rich_region)
    codes = dict(con.execute("select dscg_maindiag_code, count(*) from mdtrt_d group by 1").fetchall())
    assert codes.get("Z51.000", 0) >= 2 and codes.get("Z47.800", 0) >= 1
    staged = con.execute("""select date_diff('day', a.endtime::date, b.begntime::date) from mdtrt_d a
        join mdtrt_d b on b.psn_no = a.psn_no and b.fixmedins_code = a.fixmedins_code and b.begntime > a.endtime
        where a.dscg_maindiag_code = 'S82.200' and b.dscg_maindiag_code = 'Z47.800'""").fetchall()
    assert staged and all(7 <= g <= 20 for (g,) in staged), staged
    transfers = con.execute("""select count(*) from mdtrt_d a join mdtrt_d b on b.psn_no = a.psn_no
        and b.fixmedins_code <> a.fixmedins_code and b.med_type = '21'
        and date_diff('day', a.endtime::date, b.begntime::date) between 0 and 1
        and b.dscg_maindiag_code = a.dscg_maindiag_code where a.dscg_way = '2'""").fetchall()[0][0]
    assert transfers >= 1


def test_injuries_at_home_are_paid_and_clean_liability_paid_injuries_cost_the_fund_nothing(tiny_region):
    con = _con(tiny_region)
    injuries = con.execute("""
        select s.setl_id, s.fund_pay_sumamt, list(d.diag_code) filter (where d.maindiag_flag = '0') causes
        from setl_d s join setl_list_diag_d d using (setl_id)
        where s.refd_setl_flag = '0' and exists (select 1 from setl_list_diag_d i where i.setl_id = s.setl_id
              and i.maindiag_flag = '1' and left(i.diag_code, 1) in ('S', 'T'))
        group by all""").df()
    positives = {r[0] for r in con.execute("select entity_id from labels where label = 1 "
                                           "and fraud_type = 'third_party_liability'").fetchall()}
    clean = _clean(con, "third_party_liability", "setl")

    def third_party(causes):
        return any(c.startswith("V") or c.startswith("Y96") or (c[:1] in "WX" and c[4:5] == "6") for c in causes)

    home = injuries[~injuries.causes.map(third_party)]
    paid_elsewhere = injuries[injuries.causes.map(third_party) & (injuries.fund_pay_sumamt == 0)]
    # the old rule's W20-W31 at home and at play, paid by the fund: many, all clean
    w20_31 = home[home.causes.map(lambda cs: any("W20" <= c[:3] <= "W31" for c in cs))]
    assert len(w20_31) >= 10 and (w20_31.fund_pay_sumamt > 0).mean() > 0.8
    assert not set(home.setl_id) & positives and set(w20_31.setl_id) <= clean
    assert len(paid_elsewhere) >= 1 and not set(paid_elsewhere.setl_id) & positives
    # every positive is a traffic or work injury billed to the fund; some work injuries are marked by Y96
    pos = injuries[injuries.setl_id.isin(positives)]
    assert len(pos) == len(positives) and pos.causes.map(third_party).all() and (pos.fund_pay_sumamt > 0).all()


def test_deaths_in_hospital_are_settled_after_the_death_and_clean(rich_region):
    con = _con(rich_region)
    late = con.execute("""select s.setl_id from setl_d s join mdtrt_d m using (mdtrt_id) join psn_info p on p.psn_no = s.psn_no
        where m.dscg_way = '5' and m.begntime::date <= p.die_date and s.setl_time::date > p.die_date""").fetchall()
    assert len(late) >= 3
    assert {r[0] for r in late} <= _clean(con, "dead_person", "setl")


def test_chronic_refill_lookalikes_and_over_prescription_positives(tiny_region):
    con = _con(tiny_region)
    supply = con.execute("""
        select l.psn_no, coalesce(h.vbp_group, h.generic_name) drug, count(distinct l.fixmedins_code) places,
               count(distinct l.fixmedins_code) filter (where f.fixmedins_type <> 'pharmacy') prescribers,
               sum(l.prd_days) supplied, date_diff('day', min(l.fee_ocur_time::date), max(l.fee_ocur_time::date)) span,
               bool_or(b.label = 1) drawn_beyond_need
        from fee_list_d l join hilist h using (hilist_code) join setl_d s using (setl_id)
        join fixmedins f on f.fixmedins_code = l.fixmedins_code
        left join labels b on b.entity_id = l.setl_id and b.fraud_type = 'over_prescription'
        where s.med_type in ('140104', '41') and h.chrgitm_lv <> '03' and l.prd_days between 1 and 84 and l.cnt > 0
        group by all having count(*) >= 4""").df()
    positives = {r[0] for r in con.execute("select entity_id from labels where label = 1 and entity_type = 'psn' "
                                           "and fraud_type = 'over_prescription'").fetchall()}
    lookalikes = _clean(con, "over_prescription", "psn")
    # the drug of each positive's extra dispensings: from several prescribers, well beyond the days
    pos = supply[supply.psn_no.isin(positives) & supply.drawn_beyond_need.fillna(False)]
    assert len(pos) == len(positives) >= 3
    # (span: first to last dispensing; the last one's own month comes on top)
    assert (pos.prescribers >= 2).all() and (pos.supplied - pos.span >= 60).all(), pos.to_string()
    alike = supply[supply.psn_no.isin(lookalikes - positives)]
    # honest patients seen at two places (early refills, a move, refills at a pharmacy) ...
    assert (alike.places >= 2).sum() >= 20
    # ... without drawing much more than they need over the year
    assert (alike.supplied - alike.span < 60).mean() > 0.95, (alike.supplied - alike.span).describe()


def test_the_lookalikes_switch_off(tmp_path):
    sc = load_scenarios()
    off = replace(sc, lookalikes=replace(sc.lookalikes, enabled=False))
    simulate("tiny", seed=3, out=tmp_path, scenarios=off, n_persons=600)
    con = _con(tmp_path)
    assert con.execute("select count(*) from mdtrt_d where dscg_maindiag_code like 'Z%' or dscg_way = '2'"
                       ).fetchall()[0][0] == 0
    assert con.execute("select count(*) from labels where label = 0 and fraud_type = 'over_prescription' "
                       "and entity_type = 'psn'").fetchall()[0][0] <= sc.clean_checked


def test_an_unknown_lookalike_key_is_a_clear_error(tmp_path):
    bad = tmp_path / "scenarios.yaml"
    text = (load_scenarios.__globals__["DEFAULT_SCENARIOS"]).read_text(encoding="utf-8")
    bad.write_text(text.replace("  transfers: 0.02", "  transfer: 0.02"), encoding="utf-8")
    with pytest.raises(ValueError, match="unknown lookalikes keys.*transfer"):
        load_scenarios(bad)

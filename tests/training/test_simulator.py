"""The simulated pooling region: complete, labelled, consistent and reproducible."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest

from features.contract import FRAUD_TYPES, TABLES
from models.rules.pack import load_pack
from training.simulator import simulate


def _read(region, table) -> pd.DataFrame:
    return pd.read_parquet(region / table)


def _con(region):
    con = duckdb.connect()
    for t in TABLES:
        con.execute(f"create view {t} as select * from read_parquet('{region / t}/*.parquet')")
    return con


def test_every_contract_table_with_contract_fields(tiny_region):
    for name, spec in TABLES.items():
        df = _read(tiny_region, name)
        assert len(df) > 0, name
        missing = set(spec.required) - set(df.columns)
        assert not missing, f"{name} lacks required {missing}"
        assert set(df.columns) <= set(spec.names), f"{name} has fields outside the contract"


def test_labels_cover_all_24_typology_ids_with_positives_and_clean_rows(tiny_region):
    lab = _read(tiny_region, "labels")
    pos = set(lab.loc[lab["label"] == 1, "fraud_type"])
    neg = set(lab.loc[lab["label"] == 0, "fraud_type"])
    assert pos == set(FRAUD_TYPES)
    assert neg == set(FRAUD_TYPES)
    assert not lab.duplicated(["entity_type", "entity_id", "fraud_type"]).any()
    assert (lab.loc[lab["label"] == 1, "amount"] > 0).mean() > 0.95
    assert set(lab["source"]) == {"simulated"}


def test_labels_point_at_real_entities(tiny_region):
    con = _con(tiny_region)
    orphans = con.execute("""
        select entity_type, count(*) from labels l where not (
          (entity_type = 'line' and exists (select 1 from fee_list_d f where f.bkkp_sn = l.entity_id)) or
          (entity_type = 'setl' and exists (select 1 from setl_d s where s.setl_id = l.entity_id)) or
          (entity_type = 'mdtrt' and exists (select 1 from mdtrt_d m where m.mdtrt_id = l.entity_id)) or
          (entity_type = 'psn' and exists (select 1 from psn_info p where p.psn_no = l.entity_id)) or
          (entity_type = 'fixmedins' and exists (select 1 from fixmedins i where i.fixmedins_code = l.entity_id)) or
          (entity_type = 'prac' and exists (select 1 from practitioner d where d.prac_code = l.entity_id)) or
          entity_type = 'ring') group by 1""").fetchall()
    assert orphans == []


def test_rings_have_an_organiser_and_members(tiny_region):
    lab = _read(tiny_region, "labels")
    rings = lab[(lab["entity_type"] == "ring") & (lab["label"] == 1)]
    assert set(rings["fraud_type"]) == {"drug_resale", "collusive_ring"}
    for rid in rings["entity_id"]:
        members = lab[(lab["ring_id"] == rid) & (lab["entity_type"] == "psn")]
        assert (members["role"] == "organiser").sum() == 1
        assert (members["role"] == "member").sum() >= 3


def test_amounts_add_up(tiny_region):
    con = _con(tiny_region)
    bad_lines = con.execute("""select count(*) from fee_list_d
        where abs(round(cnt * pric, 2) - det_item_fee_sumamt) > 0.011""").fetchone()[0]
    assert bad_lines == 0
    bad = con.execute("""select count(*) from setl_d s join (select setl_id, sum(det_item_fee_sumamt) l
        from fee_list_d group by 1) f using (setl_id) where abs(s.medfee_sumamt - f.l) > 0.02""").fetchone()[0]
    assert bad == 0
    split = con.execute("""select count(*) from setl_d
        where abs(medfee_sumamt - fund_pay_sumamt - psn_pay) > 0.011 or abs(acct_pay) > abs(psn_pay) + 0.001""").fetchone()[0]
    assert split == 0


def test_refunds_cancel_their_original(tiny_region):
    con = _con(tiny_region)
    n, unmatched = con.execute("""select count(*), count(*) filter (where o.setl_id is null or
        abs(r.medfee_sumamt + o.medfee_sumamt) > 0.001) from setl_d r left join setl_d o on o.setl_id = r.init_setl_id
        where r.refd_setl_flag = '1'""").fetchone()
    assert n > 0 and unmatched == 0
    neg_outside = con.execute("""select count(*) from fee_list_d f join setl_d s using (setl_id)
        where f.cnt < 0 and s.refd_setl_flag = '0'""").fetchone()[0]
    assert neg_outside == 0


def test_resident_ids_have_valid_check_digits(tiny_region):
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    psn = _read(tiny_region, "psn_info")
    for c, brdy in zip(psn["certno"].head(300), psn["brdy"].head(300)):
        assert len(c) == 18
        assert "10X98765432"[sum(int(d) * w for d, w in zip(c[:17], weights)) % 11] == c[17]
        assert c[6:14] == pd.Timestamp(brdy).strftime("%Y%m%d")


def test_dead_persons_have_care_after_death_only_when_labelled(tiny_region):
    con = _con(tiny_region)
    # care that began after the death (a settlement after it may close a stay that ended with the death)
    after = set(r[0] for r in con.execute("""select distinct s.psn_no from setl_d s join psn_info p using (psn_no)
        join mdtrt_d m using (mdtrt_id) where p.die_date is not null and m.begntime::date > p.die_date""").fetchall())
    labelled = set(r[0] for r in con.execute("""select entity_id from labels where entity_type = 'psn'
        and fraud_type = 'dead_person' and label = 1""").fetchall())
    assert after and after == labelled


def test_restricted_items_use_real_national_codes(tiny_region):
    pack_codes = set(load_pack()["hilist_code"])
    fee = _read(tiny_region, "fee_list_d")
    lab = _read(tiny_region, "labels")
    bad = lab[(lab["entity_type"] == "line") & (lab["label"] == 1) & lab["fraud_type"].isin(
        ["gender_age_limit", "insurance_type_limit", "care_setting_limit", "institution_level_limit"])]
    codes = set(fee.loc[fee["bkkp_sn"].isin(bad["entity_id"]), "hilist_code"])
    assert codes and codes <= pack_codes
    assert fee["hilist_code"].map(type).eq(str).all()


def test_care_looks_real(tiny_region):
    con = _con(tiny_region)
    by_type = dict(con.execute("select med_type, count(*) from setl_d group by 1").fetchall())
    for mt in ("11", "13", "140104", "140201", "21", "41"):
        assert by_type.get(mt, 0) > 0, mt
    weekend, weekday = con.execute("""select avg(n) filter (where dow in (0, 6)), avg(n) filter (where dow between 1 and 5)
        from (select setl_time::date d, dayofweek(setl_time) dow, count(*) n from setl_d where med_type = '11'
        group by all)""").fetchone()
    assert weekend < weekday
    ip = con.execute("select avg(ipt_days), avg(n) from mdtrt_d m join (select mdtrt_id, count(*) n from fee_list_d "
                     "group by 1) using (mdtrt_id) where med_type = '21'").fetchone()
    assert 4 < ip[0] < 20 and ip[1] > 20


@pytest.mark.slow
def test_same_seed_same_bytes_other_seed_other_region(tmp_path, tiny_region):
    def digest(folder):
        h = hashlib.sha256()
        for f in sorted(folder.rglob("*.parquet")):
            h.update(f.relative_to(folder).as_posix().encode())
            h.update(f.read_bytes())
        return h.hexdigest()

    simulate("tiny", seed=7, out=tmp_path / "again")
    assert digest(tmp_path / "again") == digest(tiny_region)
    simulate("tiny", seed=8, out=tmp_path / "other")
    assert digest(tmp_path / "other") != digest(tiny_region)


def test_csv_output_follows_the_contract_formats(tmp_path):
    simulate("tiny", seed=3, out=tmp_path, fmt="csv", n_persons=300)
    setl = pd.read_csv(tmp_path / "setl_d" / "part-00000.csv", dtype=str)
    assert setl["setl_time"].str.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}").all()
    fee = pd.read_csv(tmp_path / "fee_list_d" / "part-00000.csv", dtype=str)
    assert fee["hilist_code"].str.len().ge(15).all()


def test_unknown_preset_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        simulate("county", seed=1, out=tmp_path)


def test_one_role_per_catalogue_code_at_any_size():
    """`--preset city --persons 100000 --seed 7` stopped with "catalogue codes must be unique": one drawn
    duplicate-charge pair's sub item was another's main item. The draw is kept (the regions of every other
    size and seed are the same as before); a pair or operation whose code already has a role is passed over."""
    from dataclasses import replace

    from training.simulator.config import PRESETS, load_scenarios
    from training.simulator.world import build_world

    sc = load_scenarios(None)
    world = build_world(sc.applied_to(replace(PRESETS["city"], n_persons=100_000)), sc, load_pack(), 7)
    codes = world.cat["hilist_code"]
    assert not codes.duplicated().any()
    assert len(world.dup_pairs) >= 1
    paired = list(world.dup_pairs["main"]) + list(world.dup_pairs["sub"])
    assert len(set(paired)) == len(paired)
    assert set(world.cat.loc[paired, "role"]) == {"dup_main", "dup_sub"}


def test_a_region_written_in_several_chunks_has_unique_keys(tmp_path):
    from dataclasses import replace

    from training.simulator.config import PRESETS

    preset = replace(PRESETS["tiny"], n_persons=1500, chunk_persons=600)
    simulate(preset, seed=5, out=tmp_path)
    assert len(list((tmp_path / "fee_list_d").glob("part-*.parquet"))) == 3
    for table in ("setl_d", "mdtrt_d", "fee_list_d", "psn_info", "setl_list_diag_d", "labels"):
        df = _read(tmp_path, table)
        key = list(TABLES[table].key)
        assert not df.duplicated(key).any(), table
    lab = _read(tmp_path, "labels")
    assert set(lab.loc[lab["label"] == 1, "fraud_type"]) == set(FRAUD_TYPES)
    # a pharmacy's card pool is one set of cards, drawn in one chunk: not one pool per chunk that never
    # swipe together (what a graph finds as several groups, and the truth had called one)
    phantom = lab.loc[(lab["fraud_type"] == "phantom_purchase") & (lab["entity_type"] == "setl"), "entity_id"]
    setl = _read(tmp_path, "setl_d")
    swipes = setl[setl["setl_id"].isin(phantom) & setl["fixmedins_code"].str.startswith("P")]
    # the pool as `yibao graph eval` takes it: the cards with two or more such swipes at the pharmacy
    cards = swipes.groupby(["fixmedins_code", "psn_no"]).size().reset_index(name="n").query("n >= 2")
    chunk = cards["psn_no"].str[-14:].astype(int) // preset.chunk_persons
    per_shop = chunk.groupby(cards["fixmedins_code"]).nunique()
    assert len(per_shop) > 0 and (per_shop == 1).all(), per_shop.to_dict()


def test_a_lake_holds_the_same_rows_in_month_and_region_partitions(tmp_path, monkeypatch):
    """``layout="lake"``: the claim tables in partition folders, each row where its settlement's month and
    the insured region put it, the same rows as the plain layout, several chunks in one file per
    partition (a new file after ``FILE_CHUNKS`` chunks); ingest reads the lake into the same warehouse."""
    from dataclasses import replace

    from features.config import Settings
    from features.ingest import ingest
    from serving.pipeline import fingerprint
    from training.simulator.config import PRESETS

    preset = replace(PRESETS["tiny"], n_persons=900, chunk_persons=400)
    monkeypatch.setattr("training.simulator._LakeWriter.FILE_CHUNKS", 2)  # a new file after two chunks
    plain = simulate(preset, seed=5, out=tmp_path / "plain")
    lake = simulate(preset, seed=5, out=tmp_path / "lake", layout="lake")
    assert lake.layout == "lake" and lake.rows == plain.rows
    assert lake.partitions["setl_d"] > 12 and lake.partitions["psn_info"] >= 2
    for table in ("setl_d", "mdtrt_d", "fee_list_d", "setl_list_diag_d", "psn_info"):
        files = sorted((tmp_path / "lake" / table).rglob("*.parquet"))
        assert files and {f.name for f in files} == {"part-00000.parquet", "part-00001.parquet"}, table
        assert not list((tmp_path / "lake" / table).glob("*.parquet")), table  # only in partition folders
    setl = pd.concat(pd.read_parquet(f).assign(part=str(f.parent.relative_to(tmp_path / "lake" / "setl_d")))
                     for f in (tmp_path / "lake" / "setl_d").rglob("*.parquet"))
    assert (setl["part"] == "month=" + setl["setl_time"].dt.strftime("%Y-%m") + "/region=" + setl["insu_admdvs"]).all()
    fee = pd.concat(pd.read_parquet(f).assign(part=str(f.parent.relative_to(tmp_path / "lake" / "fee_list_d")))
                    for f in (tmp_path / "lake" / "fee_list_d").rglob("*.parquet"))
    placed = fee.merge(setl[["setl_id", "part"]], on="setl_id", suffixes=("", "_setl"))
    assert len(placed) == len(fee) and (placed["part"] == placed["part_setl"]).all()
    # the chunks are appended to a partition's file, a row group each, and a new file begun after two
    assert max(pq_row_groups(f) for f in (tmp_path / "lake" / "fee_list_d").rglob("part-00000.parquet")) == 2
    assert max(pq_row_groups(f) for f in (tmp_path / "lake" / "fee_list_d").rglob("part-00001.parquet")) == 1
    with pytest.raises(ValueError, match="Parquet"):
        simulate(preset, seed=5, out=tmp_path / "csv", fmt="csv", layout="lake")

    stores = {}
    for name in ("plain", "lake"):
        settings = Settings(warehouse=tmp_path / f"{name}.duckdb")
        report = ingest(tmp_path / name, settings)
        assert report.table("fee_list_d").loaded == plain.rows["fee_list_d"]
        with duckdb.connect(str(settings.warehouse), read_only=True) as con:
            stores[name] = {t: fingerprint(con, t) for t in TABLES}
    assert stores["lake"] == stores["plain"]


def pq_row_groups(path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(path).num_row_groups


# -- the institution schemes and their honest look-alikes (docs/simulator.md) ---------------------

def _purchases(con):
    """Pharmacy purchases with their basket, total and counter time, and whether the pharmacy is honest."""
    con.execute("""create or replace temp view purchase as
        select s.setl_id, s.psn_no, s.fixmedins_code, min(l.fee_ocur_time) as t, sum(l.det_item_fee_sumamt) as total,
               string_agg(l.hilist_code || 'x' || l.cnt, ',' order by l.hilist_code, l.cnt) as basket,
               s.fixmedins_code not in (select entity_id from labels where label = 1 and entity_type = 'fixmedins'
                                        and fraud_type in ('phantom_purchase', 'drug_substitution')) as honest,
               s.setl_id in (select entity_id from labels where label = 1 and fraud_type = 'phantom_purchase') as phantom
        from setl_d s join fee_list_d l using (setl_id)
        where s.med_type = '41' and s.refd_setl_flag = '0' group by s.setl_id, s.psn_no, s.fixmedins_code""")
    con.execute("""create or replace temp view same_basket_run as
        select fixmedins_code, honest, basket, total, bool_or(phantom) as phantom, count(distinct psn_no) as cards,
               max(gap) as max_gap
        from (select *, sum(case when gap is null or gap > 300 then 1 else 0 end)
                          over (partition by fixmedins_code, basket, total order by t, setl_id) as run
              from (select *, date_diff('second', lag(t) over (partition by fixmedins_code, basket, total
                                                               order by t, setl_id), t) as gap from purchase))
        group by fixmedins_code, honest, basket, total, run""")


def test_phantom_swipes_come_in_bursts_of_one_basket_at_a_round_sum(tiny_region):
    con = _con(tiny_region)
    _purchases(con)
    bursts = con.execute("""select cards, total from same_basket_run where phantom""").fetchall()
    assert bursts and min(c for c, _ in bursts) >= 5
    assert all(float(total) % 50 == 0 for _, total in bursts)
    # the swipes go through the stock system: the basket drugs' sales have stock behind them
    gap = con.execute("""
        with billed as (select fixmedins_code, hilist_code, sum(cnt) as q from fee_list_d
                        where setl_id in (select entity_id from labels where fraud_type = 'phantom_purchase')
                          and list_type = '101' group by all)
        select sum(b.q), sum(s.out) from billed b join (select fixmedins_code, hilist_code, sum(out_qty) as out
                                                        from stock_moves group by all) s using (fixmedins_code, hilist_code)
        """).fetchone()
    assert gap[1] >= gap[0]


def test_honest_pharmacies_have_families_queues_and_late_hours(tiny_region):
    con = _con(tiny_region)
    _purchases(con)
    # families at the counter: 2-4 cards with one basket at one total within minutes — never 5
    family = con.execute("""select max(cards) from same_basket_run where honest and cards >= 2""").fetchone()[0]
    assert family is not None and 2 <= family <= 4
    # a queue: customers in a row each within four minutes of the previous, with their own baskets (the
    # hospitals of `tiny` are small: four in a row; on `small` they are longer)
    queue = con.execute("""
        select max(n) from (
          select count(*) as n, count(distinct basket) as baskets from (
            select *, sum(case when gap is null or gap > 240 then 1 else 0 end)
                        over (partition by fixmedins_code order by t, setl_id) as run
            from (select *, date_diff('second', lag(t) over (partition by fixmedins_code order by t, setl_id), t) as gap
                  from purchase where honest))
          group by fixmedins_code, run) where baskets = n""").fetchone()[0]
    assert queue >= 4
    late = con.execute("""select max(share) from (
        select avg(case when hour(t) >= 19 or isodow(t) >= 6 then 1.0 else 0.0 end) as share
        from purchase where honest group by fixmedins_code)""").fetchone()[0]
    assert late >= 0.4


def test_honest_stock_books_lag_but_balance(tiny_region):
    con = _con(tiny_region)
    honest = """fixmedins_code not in (select entity_id from labels where label = 1 and entity_type = 'fixmedins'
                                      and fraud_type = 'drug_substitution')"""
    lagging, negative = con.execute(f"""
        with billed as (select fixmedins_code, hilist_code, strftime(fee_ocur_time, '%Y-%m') as month, sum(cnt) as q
                        from fee_list_d where cnt > 0 and list_type = '101' group by all)
        select count(*) filter (where b.q > s.out_qty), count(*) filter (where s.closing_qty < 0)
        from stock_moves s join billed b using (fixmedins_code, hilist_code, month) where s.{honest}""").fetchone()
    assert lagging > 0 and negative > 0
    short = con.execute(f"""
        with billed as (select fixmedins_code, hilist_code, sum(cnt) as q from fee_list_d
                        where cnt > 0 and list_type = '101' group by all)
        select sum(b.q - s.out) from billed b join (select fixmedins_code, hilist_code, sum(out_qty) as out
            from stock_moves group by all) s using (fixmedins_code, hilist_code)
        where b.{honest} and b.q > s.out""").fetchone()[0]
    total = con.execute(f"select sum(cnt) from fee_list_d where cnt > 0 and list_type = '101' and {honest} "
                        "and fixmedins_code in (select fixmedins_code from stock_moves)").fetchone()[0]
    assert (short or 0) < 0.05 * total  # over the year the honest books hold the sales


def test_focus_area_look_alikes(tiny_region):
    con = _con(tiny_region)
    fake = "select entity_id from labels where label = 1 and entity_type = 'fixmedins' and fraud_type = 'fake_treatment'"
    weeks = dict(con.execute(f"""
        select n, count(*) from (select psn_no, date_trunc('week', fee_ocur_time) w, count(distinct fee_ocur_time::date) n
                                 from fee_list_d where hilist_name like '%血液透析%' and fixmedins_code not in ({fake})
                                 group by all) group by n""").fetchall())
    assert weeks.get(3, 0) > 10 * weeks.get(4, 0) > 0 and max(weeks) <= 4  # 3 a week, a rare make-up 4th
    long_stays = con.execute("""select count(*) from mdtrt_d where med_type = '21' and dscg_maindiag_code = 'F20.900'
                                and ipt_days >= 60""").fetchone()[0]
    assert long_stays > 0


def test_the_cardiac_centre_examines_more_for_sicker_patients(tiny_region):
    con = _con(tiny_region)
    rows = con.execute("""
        select m.fixmedins_code, avg(case when m.dscg_maindiag_code = 'I50.900' then 1.0 else 0.0 end) as heart_failure,
               sum(e.n) / count(*) as exams
        from mdtrt_d m join fixmedins f using (fixmedins_code)
        left join (select mdtrt_id, sum(cnt) n from fee_list_d where med_chrgitm_type in ('03', '04') group by 1) e
               using (mdtrt_id)
        where m.med_type = '11' and m.adm_dept_codg = 'A03.04' and f.hosp_lv in ('02', '03')
        group by 1 order by heart_failure desc""").fetchall()
    assert len(rows) >= 2
    centre, others = rows[0], rows[1:]
    assert centre[1] > 2 * max(r[1] for r in others)
    assert centre[2] > 1.3 * float(np.median([r[2] for r in others]))  # well above the typical department
    positive = {r[0] for r in con.execute("select entity_id from labels where label = 1 and "
                                          "fraud_type = 'over_examination'").fetchall()}
    assert centre[0] not in positive


def test_over_examination_runs_in_one_or_two_departments(tiny_region):
    con = _con(tiny_region)
    depts = con.execute("""
        select p.fixmedins_code, count(distinct p.dept_codg) from labels l join practitioner p on p.prac_code = l.entity_id
        where l.label = 1 and l.entity_type = 'prac' and l.fraud_type = 'over_examination' group by 1""").fetchall()
    assert depts and all(1 <= n <= 2 for _, n in depts)


def test_over_examination_runs_where_the_patients_are(tiny_region):
    # a revenue scheme in a department that sees a handful of visits a year would be no scheme: each scheme
    # department holds at least a twentieth of its institution's visits
    con = _con(tiny_region)
    shares = con.execute("""
        with scheme as (select distinct p.fixmedins_code, p.dept_codg from labels l
                        join practitioner p on p.prac_code = l.entity_id
                        where l.label = 1 and l.entity_type = 'prac' and l.fraud_type = 'over_examination'),
             visits as (select fixmedins_code, adm_dept_codg, count(*) as n from mdtrt_d group by all)
        select s.fixmedins_code, s.dept_codg,
               coalesce(v.n, 0) / (select sum(n) from visits w where w.fixmedins_code = s.fixmedins_code)
        from scheme s left join visits v on v.fixmedins_code = s.fixmedins_code and v.adm_dept_codg = s.dept_codg
        """).fetchall()
    assert shares and all(share >= 0.05 for *_, share in shares), shares


def test_a_visit_goes_to_its_department_else_internal_medicine_else_general():
    from training.simulator.world import visit_role

    assert visit_role(["general", "internal", "cardiology"], "cardiology") == "cardiology"
    assert visit_role(["general", "internal"], "surgery") == "internal"
    assert visit_role(["general"], "surgery") == "general"


def test_another_region_config_and_domain_randomisation(tmp_path):
    """The second scenario config changes the institution mix; randomisation is seeded and recorded."""
    from training.simulator.config import DEFAULT_SCENARIOS

    east = DEFAULT_SCENARIOS.with_name("scenarios-east.yaml")
    base = simulate("tiny", seed=3, out=tmp_path / "base")
    other = simulate("tiny", seed=3, out=tmp_path / "east", scenarios=east)
    assert other.scenario["institution_mix"]["persons_per_pharmacy"] < base.scenario["institution_mix"][
        "persons_per_pharmacy"]
    assert other.rows["fixmedins"] != base.rows["fixmedins"]
    a = simulate("tiny", seed=3, out=tmp_path / "r1", n_persons=800, randomise=9)
    b = simulate("tiny", seed=3, out=tmp_path / "r2", n_persons=800, randomise=9)
    assert a.scenario == b.scenario and a.scenario["randomise"] == 9
    assert a.scenario["rates"] != base.scenario["rates"]
    assert a.rows == b.rows


def test_districts_are_real_changchun_codes_named_from_the_code_list():
    """The simulator's districts are 医保区划 codes that exist (220107 does not: 双阳区 is 220112), named from
    the national code list the pages read too; a preset wanting more gets made-up codes of the same city."""
    import doctest

    from features.contract import code_meaning
    from training.simulator import world

    six = world.district_codes(6)
    assert six == ["220102", "220103", "220104", "220105", "220106", "220112"]
    assert [world.district_name(c) for c in six] == [code_meaning("admdvs", c) for c in six]
    forty = world.district_codes(40)
    assert len(set(forty)) == 40 and all(c.startswith("2201") for c in forty)
    assert world.district_name(forty[-1]).startswith("第")
    assert doctest.testmod(world).failed == 0

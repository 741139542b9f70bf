"""Turn a chunk's encounters and fee lines into the contract tables and its ground truth (labels).

Amounts add up the way the national tables do: fee lines sum to the settlement's ``medfee_sumamt``;
the fund pays the in-scope part (甲类 in full, 乙类 90 %, 丙类 nothing) above the deductible (起付线) at
a rate set by insurance type, care type and hospital level; the rest is the person's (个人负担), of which
employees pay part from their personal account (个人账户). A few settlements are refunded (退费): a
reversal settlement with ``refd_setl_flag = '1'`` cancels ``init_setl_id``, with negative lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .care import CHRONIC, DAY, DIAG_CODE, DIAG_NAME, ER, F_SICK, IP, MED_TYPE, OP, PHARM, TYPES, T, Chunk, _ids
from .lookalikes import clean_labels, settle
from .reference import DEPTS, GIVEN_CHARS, SURNAMES
from .world import World

__all__ = ["assemble_chunk", "certno_for", "LINE_TYPES", "SETL_TYPES", "MDTRT_TYPES", "PSN_TYPES", "INST_TYPES"]

LINE_TYPES = ["gender_age_limit", "insurance_type_limit", "care_setting_limit", "institution_level_limit",
              "duplicate_charge", "frequency_limit", "unbundled_surgery", "price_over_cap"]
MDTRT_TYPES = ["split_admission", "bed_hold", "low_threshold_admission"]
SETL_TYPES = ["third_party_liability", "dead_person", "card_theft", "phantom_purchase", "fake_treatment",
              "drug_resale", "collusive_ring", "over_prescription", "cross_region"]
PSN_TYPES = ["dead_person", "card_theft", "over_prescription", "cross_region", "course_length_limit"]
INST_TYPES = ["over_examination", "fake_treatment", "drug_substitution", "phantom_purchase", "vbp_noncompliance",
              "low_threshold_admission", "price_over_cap"]

_RATE = {  # (care group, insutype) -> fund rate by level 3/2/1/clinic
    ("ip", 310): (0.85, 0.88, 0.90, 0.90),
    ("ip", 340): (0.95, 0.95, 0.95, 0.95),
    ("ip", 390): (0.65, 0.75, 0.85, 0.85),
    ("op", 310): (0.50, 0.55, 0.60, 0.70),
    ("op", 340): (0.80, 0.80, 0.80, 0.80),
    ("op", 390): (0.40, 0.50, 0.55, 0.60),
}
_DEDUCTIBLE = (900.0, 600.0, 300.0, 200.0)
_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2])
_CHECK = "10X98765432"


def certno_for(district: np.ndarray, brdy: np.ndarray, seq: np.ndarray, sex: np.ndarray) -> np.ndarray:
    """18-digit resident IDs (居民身份证号) with a valid GB 11643 check digit."""
    ymd = pd.to_datetime(brdy).strftime("%Y%m%d").to_numpy().astype(str)
    seq3 = (seq % 500) * 2 + np.where(sex == 1, 1, 0)  # odd = male
    body = np.char.add(np.char.add(district.astype(str), ymd), np.char.zfill(seq3.astype(str), 3))
    digits = np.frombuffer("".join(body).encode(), dtype=np.uint8).reshape(len(body), 17) - 48
    check = np.array(list(_CHECK))[(digits @ _WEIGHTS) % 11]
    return np.char.add(body, check)


def _names(rng, n):
    s = rng.choice(SURNAMES, n)
    g1 = rng.choice(GIVEN_CHARS, n)
    g2 = np.where(rng.random(n) < 0.6, rng.choice(GIVEN_CHARS, n), "")
    return np.char.add(np.char.add(s, g1), g2)


def _ts(world: World, secs: np.ndarray) -> np.ndarray:
    return world.start.astype("datetime64[s]") + secs.astype("timedelta64[s]")


def assemble_chunk(world: World, sc, p, enc, lines, rings, chunk_no, rng) -> Chunk:
    inst, prac, cat = world.inst, world.prac, world.cat
    ne, nl = len(enc["psn"]), len(lines["enc"])
    base = f"{chunk_no:04d}"
    mdtrt_id = _ids("MD" + base, np.arange(ne), 9)
    setl_id = _ids("ST" + base, np.arange(ne), 9)
    bkkp_sn = _ids("FL" + base, np.arange(nl), 10)
    psn_no = p["psn_no"]
    kind, einst = enc["kind"], enc["inst"]
    begin = enc["day"] * DAY + enc["sec"]
    end = np.where(kind == IP, (enc["day"] + enc["los"]) * DAY + 10 * 3600,
                   begin + np.where(kind == PHARM, 300, 2400))
    # amounts
    amount = lines["amount"]
    lv_item = cat["chrgitm_lv"].to_numpy()[lines["item"]]
    inscp = np.round(amount * np.select([lv_item == "01", lv_item == "02"], [1.0, 0.9], 0.0), 2)
    medfee = np.round(np.bincount(lines["enc"], amount, ne), 2)
    inscp_sum = np.bincount(lines["enc"], inscp, ne)
    level = inst["level"].to_numpy()[einst]
    lvl_i = np.select([level == 3, level == 2, level == 1], [0, 1, 2], 3)
    ins = p["insutype"][enc["psn"]]
    group = np.where(kind == IP, "ip", "op")
    rate = np.zeros(ne)
    for (g, it), rates in _RATE.items():
        m = (group == g) & (ins == it)
        rate[m] = np.asarray(rates)[lvl_i[m]]
    rate = np.where(kind == PHARM, np.where(ins == 310, 0.3, 0.2), rate)
    deductible = np.where(kind == IP, np.asarray(_DEDUCTIBLE)[lvl_i], 0.0)
    fund = np.round(np.clip(inscp_sum - deductible, 0, None) * rate, 2)
    fund = np.minimum(fund, medfee)
    psn_pay = np.round(medfee - fund, 2)
    acct = np.round(np.where(ins == 310, psn_pay * 0.6, 0.0), 2)

    # diagnoses and departments
    diag = enc["diag"]
    dept_code = np.array([d[0] for d in DEPTS])[enc["dept"]]
    doc_code = prac["prac_code"].to_numpy()[enc["doc"]]
    inst_code = inst["fixmedins_code"].to_numpy()[einst]
    age_at = (enc["day"] + (world.start - p["brdy"][enc["psn"]]).astype(int)) / 365.25
    died_here = (p["die_day"][enc["psn"]] >= 0) & (kind == IP) & (
        np.abs(p["die_day"][enc["psn"]] - (enc["day"] + enc["los"])) <= 1)
    setl_time = end + rng.integers(60, 1800, ne)
    fund, acct, setl_time, dscg_way = settle(enc, sc.lookalikes, fund, acct, setl_time, died_here, rng)
    # a traffic or work injury the fund paid nothing for (all under the deductible) cost the fund nothing
    unpaid = (enc["tag"] == T["third_party_liability"]) & (fund <= 0)
    enc["tag"][unpaid], enc["alike"][unpaid] = -1, T["third_party_liability"]
    psn_pay = np.round(medfee - fund, 2)

    mdtrt = pd.DataFrame({
        "mdtrt_id": mdtrt_id, "psn_no": psn_no[enc["psn"]], "fixmedins_code": inst_code,
        "med_type": np.array([MED_TYPE[k] for k in range(7)])[kind],
        "begntime": _ts(world, begin), "endtime": _ts(world, end),
        "dscg_maindiag_code": DIAG_CODE[diag], "dscg_maindiag_name": DIAG_NAME[diag],
        "adm_dept_codg": dept_code, "chfpdr_code": doc_code,
        "ipt_days": np.where(kind == IP, enc["los"], 0).astype(np.int32),
        "dscg_way": dscg_way, "insu_admdvs": p["insu_admdvs"][enc["psn"]],
        "pay_loc": np.where(p["elsewhere"][enc["psn"]], "2", "1"),
    })
    setl = pd.DataFrame({
        "setl_id": setl_id, "mdtrt_id": mdtrt_id, "psn_no": psn_no[enc["psn"]], "fixmedins_code": inst_code,
        "med_type": mdtrt["med_type"].to_numpy(), "insutype": ins.astype(str), "setl_time": _ts(world, setl_time),
        "medfee_sumamt": medfee, "fund_pay_sumamt": fund, "hifp_pay": fund, "psn_pay": psn_pay, "acct_pay": acct,
        "insu_admdvs": p["insu_admdvs"][enc["psn"]], "refd_setl_flag": "0",
        "begndate": _ts(world, begin).astype("datetime64[D]"), "enddate": _ts(world, end).astype("datetime64[D]"),
        "fix_blng_admdvs": inst["district"].to_numpy()[einst], "hosp_lv": inst["hosp_lv"].to_numpy()[einst],
        "gend": p["sex"][enc["psn"]].astype(str), "brdy": p["brdy"][enc["psn"]],
        "age": np.round(age_at, 1), "dise_no": DIAG_CODE[diag], "dise_name": DIAG_NAME[diag],
        "init_setl_id": None,
    })
    le = lines["enc"]
    dpu = cat["days_per_unit"].to_numpy()[lines["item"]]
    fee = pd.DataFrame({
        "bkkp_sn": bkkp_sn, "setl_id": setl_id[le], "mdtrt_id": mdtrt_id[le], "psn_no": psn_no[enc["psn"][le]],
        "fixmedins_code": inst_code[le], "fee_ocur_time": _ts(world, lines["sec"]),
        "hilist_code": cat["hilist_code"].to_numpy()[lines["item"]],
        "hilist_name": cat["hilist_name"].to_numpy()[lines["item"]],
        "list_type": cat["list_type"].to_numpy()[lines["item"]],
        "med_chrgitm_type": cat["med_chrgitm_type"].to_numpy()[lines["item"]],
        "cnt": lines["cnt"], "pric": lines["price"], "det_item_fee_sumamt": amount, "chrgitm_lv": lv_item,
        "inscp_amt": inscp, "pric_uplmt_amt": cat["pric_uplmt_amt"].to_numpy()[lines["item"]],
        "bilg_dr_code": doc_code[le], "bilg_dept_codg": dept_code[le],
        "prd_days": np.where(dpu > 0, lines["cnt"] * dpu, np.nan), "hi_nego_drug_flag": "0",
        "med_list_codg": cat["hilist_code"].to_numpy()[lines["item"]],
    })
    # diagnoses: main, external cause for injuries, chronic conditions on admissions
    d_setl = [setl_id]
    d_code = [diag]
    d_main = [np.full(ne, "1")]
    cause = enc["cause"]
    c = np.flatnonzero(cause >= 0)
    d_setl.append(setl_id[c])
    d_code.append(cause[c])
    d_main.append(np.full(len(c), "0"))
    c = np.flatnonzero(enc["extra"] >= 0)  # a third diagnosis (Y96 of a work injury)
    d_setl.append(setl_id[c])
    d_code.append(enc["extra"][c])
    d_main.append(np.full(len(c), "0"))
    from .care import DIAG_IDX
    recorded = (kind == IP) | ((enc["flag"] & F_SICK) > 0)  # stays, and visits that work the comorbidities up
    for flag, code in (("htn", "I10.x00"), ("dm", "E11.900")):
        c = np.flatnonzero(recorded & p[flag][enc["psn"]] & (diag != DIAG_IDX[code]))
        d_setl.append(setl_id[c])
        d_code.append(np.full(len(c), DIAG_IDX[code]))
        d_main.append(np.full(len(c), "0"))
    ds = np.concatenate(d_setl)
    dc = np.concatenate(d_code)
    pos = np.searchsorted(setl_id, ds)  # setl ids are sorted by construction
    diag_df = pd.DataFrame({
        "setl_id": ds, "mdtrt_id": mdtrt_id[pos], "psn_no": psn_no[enc["psn"][pos]],
        "maindiag_flag": np.concatenate(d_main), "diag_code": DIAG_CODE[dc],
        "diag_type": np.where(np.concatenate(d_main) == "1", "1", "2"), "diag_name": DIAG_NAME[dc],
    }).sort_values(["setl_id", "maindiag_flag"], ascending=[True, False], kind="stable")
    diag_df = diag_df.drop_duplicates(["setl_id", "diag_code"]).reset_index(drop=True)

    # refunds (退费): a reversal settlement and negative lines, for a few honest outpatient settlements
    tainted = np.zeros(ne, dtype=bool)
    tainted[lines["enc"][lines["tag"] >= 0]] = True
    cand = np.flatnonzero(np.isin(kind, [OP, PHARM, ER, CHRONIC]) & (enc["tag"] < 0) & ~tainted & (medfee > 0))
    refund = np.sort(rng.choice(cand, int(len(cand) * 0.004), replace=False)) if len(cand) else np.array([], int)
    if len(refund):
        r = setl.iloc[refund].copy()
        r["init_setl_id"] = r["setl_id"]
        r["setl_id"] = _ids("RF" + base, np.arange(len(r)), 9)
        r["refd_setl_flag"] = "1"
        r["setl_time"] = r["setl_time"] + pd.to_timedelta(rng.integers(3600, 3 * DAY, len(r)), unit="s")
        for col in ("medfee_sumamt", "fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay"):
            r[col] = -r[col]
        lm = np.isin(le, refund)
        rl = fee[lm].copy()
        new_setl = dict(zip(setl_id[refund], r["setl_id"]))
        rl["setl_id"] = rl["setl_id"].map(new_setl)
        rl["bkkp_sn"] = _ids("RL" + base, np.arange(len(rl)), 10)
        rl["cnt"] = -rl["cnt"]
        for col in ("det_item_fee_sumamt", "inscp_amt"):
            rl[col] = -rl[col]
        rl["fee_ocur_time"] = rl["setl_id"].map(dict(zip(r["setl_id"], r["setl_time"])))
        setl = pd.concat([setl, r], ignore_index=True)
        fee = pd.concat([fee, rl], ignore_index=True)

    labels = _labels(world, p, enc, lines, rings, setl_id, mdtrt_id, bkkp_sn, medfee, chunk_no)
    persons = _person_table(world, p, rng)
    stock = _stock(world, enc, lines)
    clean = _clean_pools(p, enc, lines, setl_id, mdtrt_id, bkkp_sn, rings, rng, labels)
    lookalike = clean_labels(enc, psn_no, setl_id, mdtrt_id, died_here)
    labels = pd.concat([labels, lookalike], ignore_index=True) if len(lookalike) else labels
    tables = {"psn_info": persons, "mdtrt_d": mdtrt, "setl_d": setl, "fee_list_d": fee, "setl_list_diag_d": diag_df}
    return Chunk(tables=tables, labels=labels, stock=stock, clean=clean)


def _person_table(world, p, rng) -> pd.DataFrame:
    n = p["n"]
    district = np.where(p["elsewhere"], p["insu_admdvs"], np.array(world.districts)[p["district"]])
    certno = certno_for(district, p["brdy"], np.arange(n) + int(p["psn_no"][0][-6:]), p["sex"])
    ins = p["insutype"]
    psn_type = np.select([(ins == 310) & (p["age"] < 60), ins == 310, ins == 340, p["age"] < 18],
                         ["1101", "1201", "1300", "1403"], np.where(rng.random(n) < 0.5, "151001", "151002"))
    die = np.where(p["die_day"] >= 0, world.start + p["die_day"], np.datetime64("NaT"))
    return pd.DataFrame({
        "psn_no": p["psn_no"], "gend": p["sex"].astype(str), "brdy": p["brdy"], "insutype": ins.astype(str),
        "insu_admdvs": p["insu_admdvs"], "die_date": die.astype("datetime64[D]"), "psn_type": psn_type,
        "certno": certno, "psn_name": _names(rng, n),
    })


def _labels(world, p, enc, lines, rings, setl_id, mdtrt_id, bkkp_sn, medfee, chunk_no) -> pd.DataFrame:
    out = []
    ltag = lines["tag"]
    etag = enc["tag"]
    amount = lines["amount"]

    def lab(entity_type, ids, types, amounts, ring_id=None, role=None):
        if len(ids) == 0:
            return
        df = pd.DataFrame({"entity_type": entity_type, "entity_id": ids, "label": 1, "fraud_type": types,
                           "amount": np.round(amounts, 2)})
        df["ring_id"] = ring_id
        df["role"] = role
        out.append(df)

    types = np.array(TYPES)
    m = np.isin(ltag, [T[t] for t in LINE_TYPES])
    lab("line", bkkp_sn[m], types[ltag[m]], amount[m])
    m = np.isin(etag, [T[t] for t in MDTRT_TYPES])
    lab("mdtrt", mdtrt_id[m], types[etag[m]], medfee[m])
    m = np.isin(etag, [T[t] for t in SETL_TYPES])
    lab("setl", setl_id[m], types[etag[m]], medfee[m])
    # persons: sums of their tagged settlements (and of course-length lines)
    psn = enc["psn"]
    for t in PSN_TYPES:
        if t == "course_length_limit":
            m = ltag == T[t]
            who, amt = psn[lines["enc"][m]], amount[m]
        else:
            m = etag == T[t]
            who, amt = psn[m], medfee[m]
        if len(who):
            s = pd.Series(amt).groupby(who).sum()
            lab("psn", p["psn_no"][s.index.to_numpy()], t, s.to_numpy())
    # institutions and doctors: partial sums for this chunk (added up across chunks)
    inst_code = world.inst["fixmedins_code"].to_numpy()
    line_inst = enc["inst"][lines["enc"]]
    sel_price = _selected_price(world)[lines["item"]]
    for t in INST_TYPES:
        flag = world.inst[t].to_numpy() > 0
        if t in ("low_threshold_admission", "phantom_purchase"):
            m = (etag == T[t]) & flag[enc["inst"]]
            who, amt = enc["inst"][m], medfee[m]
        elif t == "fake_treatment":
            m = (ltag == T[t]) & flag[line_inst]
            who, amt = line_inst[m], amount[m]
        elif t == "vbp_noncompliance":
            m = (ltag == T[t]) & flag[line_inst]
            who, amt = line_inst[m], (lines["price"][m] - sel_price[m]) * lines["cnt"][m]
        elif t == "price_over_cap":
            m = (ltag == T[t]) & flag[line_inst]
            who, amt = line_inst[m], amount[m]
        else:
            m = (ltag == T[t]) & flag[line_inst]
            who, amt = line_inst[m], amount[m]
        if len(who):
            s = pd.Series(amt).groupby(who).sum()
            lab("fixmedins", inst_code[s.index.to_numpy()], t, s.to_numpy())
    prac_code = world.prac["prac_code"].to_numpy()
    m = ltag == T["over_examination"]
    drivers = world.prac["over_examination"].to_numpy() > 0
    doc = enc["doc"][lines["enc"][m]]
    keep = drivers[doc]
    if keep.any():
        s = pd.Series(amount[m][keep]).groupby(doc[keep]).sum()
        lab("prac", prac_code[s.index.to_numpy()], "over_examination", s.to_numpy())
    # rings: the ring, its organiser and members, and colluding doctors
    for r in rings:
        rid = f"R{chunk_no:04d}{r['ring']:03d}"
        m = (enc["ring"] == r["ring"])
        total = medfee[m].sum()
        lab("ring", np.array([rid]), r["type"], np.array([total]), ring_id=rid, role="ring")
        who = np.concatenate([[r["organiser"]], r["members"]])
        per = pd.Series(medfee[m]).groupby(enc["psn"][m]).sum().reindex(who, fill_value=0.0)
        roles = np.where(np.arange(len(who)) == 0, "organiser", "member")
        df = pd.DataFrame({"entity_type": "psn", "entity_id": p["psn_no"][who], "label": 1, "fraud_type": r["type"],
                           "amount": np.round(per.to_numpy(), 2), "ring_id": rid, "role": roles})
        out.append(df)
        for d in r["docs"]:
            md = m & (enc["doc"] == d)
            lab("prac", np.array([prac_code[d]]), r["type"], np.array([medfee[md].sum()]), ring_id=rid, role="doctor")
    if not out:
        return pd.DataFrame(columns=["entity_type", "entity_id", "label", "fraud_type", "amount", "ring_id", "role"])
    return pd.concat(out, ignore_index=True)


def _selected_price(world) -> np.ndarray:
    cat = world.cat
    price = cat["price"].to_numpy().copy()
    out = price.copy()
    for g, grp in cat.groupby("vbp_group"):
        sel = grp[grp["vbp_flag"] == "1"]
        if len(sel):
            out[grp.index.to_numpy()] = sel["price"].iloc[0]
    return out


def _stock(world, enc, lines) -> pd.DataFrame:
    """Dispensed and billed quantities per pharmacy, drug and month (for 进销存)."""
    kinds = world.inst["kind"].to_numpy()
    pharmacy = kinds[enc["inst"][lines["enc"]]] == 2
    drug = world.cat["list_type"].to_numpy()[lines["item"]] == "101"
    m = pharmacy & drug & (lines["cnt"] > 0)
    day = lines["sec"][m] // DAY
    month = (world.start + day).astype("datetime64[M]").astype(int)
    inst = enc["inst"][lines["enc"][m]]
    billed = pd.DataFrame({"inst": inst, "item": lines["item"][m], "month": month, "billed": lines["cnt"][m],
                           "dispensed": 0.0})
    disp_item = lines["dispensed"][m]
    ok = disp_item >= 0
    disp = pd.DataFrame({"inst": inst[ok], "item": disp_item[ok], "month": month[ok], "billed": 0.0,
                         "dispensed": lines["cnt"][m][ok]})
    return pd.concat([billed, disp]).groupby(["inst", "item", "month"], as_index=False).sum()


def _clean_pools(p, enc, lines, setl_id, mdtrt_id, bkkp_sn, rings, rng, labels) -> dict[str, np.ndarray]:
    def sample(ids, k=300):
        ids = np.asarray(ids)
        return ids[np.sort(rng.choice(len(ids), min(k, len(ids)), replace=False))] if len(ids) else ids

    bad_psn = set(labels.loc[labels["entity_type"] == "psn", "entity_id"])
    bad_enc = enc["tag"] >= 0
    tainted_enc = np.zeros(len(enc["psn"]), dtype=bool)
    tainted_enc[lines["enc"][lines["tag"] >= 0]] = True
    clean_enc = ~bad_enc & ~tainted_enc
    ip = enc["kind"] == IP
    return {
        "line": sample(bkkp_sn[lines["tag"] < 0]),
        "setl": sample(setl_id[clean_enc]),
        "mdtrt": sample(mdtrt_id[clean_enc & ip]),
        "psn": sample([x for x in p["psn_no"] if x not in bad_psn]),
        "household": sample(np.unique(p["hh"]), 100),
        "_hh_psn": p["psn_no"],
        "_hh": p["hh"],
    }


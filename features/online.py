"""Online settlement features (实时结算特征): the ``feat_setl`` row of one visit the warehouse has not seen.

The batch build (``features/sql/feat_setl.sql``) computes a settlement's features over the whole
warehouse. Most of them are the visit's own (its lines by charge category, amounts, times, flags); the
rest need context, and each has its source here:

========================================  ==================================================================
feature                                   context
========================================  ==================================================================
``age_years``, ``is_after_death``         the person's register row (birth year and death date)
``n_psn_setl_same_day``                   the person's settlements that day
``days_since_prev_discharge``,            the person's earlier inpatient stays at the same institution
``is_readmit_15d``
``n_other_setl_during_stay`` (and         the person's settlements during this stay; the stays elsewhere
``n_elsewhere``, ``amt_``),               around this settlement
``is_during_other_stay``
``n_same_inst_10min``                     settlements at the institution within 10 minutes either side
                                          (:class:`InstitutionClock`)
``z_amt_peer``, ``pct_amt_peer``          the peer group's amounts as the last batch build left them
                                          (``feat_setl_peer_stats``, :class:`PeerStats`), with this visit
                                          counted in as the batch would count it
``hosp_level``, ``admdvs_distance``,      the institution register and the catalogue
shares of class, 集采, over-cap lines     (:class:`Reference`)
``rh_*``                                  the visit's own rule hits (the pre-check's)
========================================  ==================================================================

:func:`settlement_features` is a pure function of the visit, the person's rows (:class:`PersonHistory`,
read from the pre-check's person-history index, :class:`models.rules.history.HistoryIndex`), the
context (:class:`FeatureContext`, loaded once from the warehouse by :func:`load_context`) and the hits.
For a settlement the batch build knows, given the same history it returns the same values (counts and
sums exactly, ratios within float rounding; ``tests/features/test_online.py``). What it cannot know is
named in ``approximated``: the fund's share before the settlement is made (estimated from the peer
group's median share), an insured region not given.

>>> from decimal import Decimal
>>> category("101", "09"), category(None, "03"), category("201", "05"), category(None, None)
('drug', 'exam', 'treatment', 'other')
>>> is_round(Decimal("120.00")), is_round(Decimal("125.00")), is_round(Decimal("40.00"))
(True, False, False)
>>> weekday(date(2025, 3, 1))  # a Saturday
5
>>> peers = PeerStats.from_rows([(("11", "hospital", 3), 4, 12.5, 25.0, (10.0, 15.0), (2, 2), 0.5, 0.3, 0.2)])
>>> peers.z_and_pct(("11", "hospital", 3), 15.0, known=15.0)   # in the snapshot: as the batch gave it
(1.0, 0.6666666666666666)
>>> peers.z_and_pct(("11", "hospital", 3), 20.0)   # a new visit, counted in: 10, 10, 15, 15, 20
(1.6035674514745464, 1.0)
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from features.catalogue import PEER_STATS
from features.contract import FRAUD_TYPES

__all__ = [
    "PEER_STATS_TABLE",
    "PeerStats",
    "Reference",
    "InstitutionClock",
    "PersonHistory",
    "FeatureContext",
    "OnlineRow",
    "settlement_features",
    "load_context",
    "category",
    "is_round",
    "weekday",
    "hosp_level",
]

PEER_STATS_TABLE = PEER_STATS.name  # written by the batch build (features/sql/feat_setl_peer_stats.sql)
# A settlement the institution made within this many seconds either side counts as "at the same time".
SAME_TIME_SECONDS = 600
READMIT_DAYS = 15
_MONDAY = date(1970, 1, 5)
_EPOCH = datetime(1970, 1, 1)
_DRUG_LIST_TYPES = ("101", "102", "106")
_DRUG_ITEM_TYPES = ("09", "10", "11")
_CONSUMABLE_ITEM_TYPES = ("08", "0801", "1402", "1403")
_EXAM_ITEM_TYPES = ("03", "1408", "1409", "1410", "145301")


@functools.cache
def _care_codes() -> tuple[Mapping[str, int], frozenset[str], frozenset[str]]:
    """hosp_lv → level, the inpatient and the emergency med_types: the rule config's code sets
    (``rules.yaml`` ``codes``), as the batch staging takes them (``RuleConfig.staging_values``)."""
    from models.rules.config import active_config

    cfg = active_config()
    return cfg.hosp_level, frozenset(cfg.inpatient_med_types), frozenset(cfg.emergency_med_types)


def is_inpatient(med_type: str | None) -> bool:
    """A stay (住院): a med_type of the config's ``inpatient_med_types``."""
    return (med_type or "") in _care_codes()[1]


def category(list_type: str | None, med_chrgitm_type: str | None) -> str:
    """The charge category of a fee line, as ``stg_line`` gives it (drug, consumable, exam, lab, bed,
    nursing, surgery, treatment, other)."""
    if list_type in _DRUG_LIST_TYPES or med_chrgitm_type in _DRUG_ITEM_TYPES:
        return "drug"
    if list_type == "301" or med_chrgitm_type in _CONSUMABLE_ITEM_TYPES:
        return "consumable"
    if med_chrgitm_type in _EXAM_ITEM_TYPES:
        return "exam"
    return {"04": "lab", "01": "bed", "07": "nursing", "06": "surgery", "1413": "surgery",
            "05": "treatment"}.get(med_chrgitm_type or "", "other")


def is_round(amount: Decimal | None) -> bool:
    """整数金额: a whole multiple of 10 yuan of at least 50 yuan."""
    return amount is not None and amount >= 50 and int((amount * 100).to_integral_value()) % 1000 == 0


def weekday(day: date) -> int:
    """0 = Monday … 6 = Sunday, as the SQL computes it (days since a known Monday, modulo 7)."""
    return (day - _MONDAY).days % 7


def hosp_level(hosp_lv: str | None) -> int:
    """三级 3, 二级 2, 一级 1, none 0 from the national ``hosp_lv`` code."""
    return _care_codes()[0].get(hosp_lv or "", 0)


@dataclass(frozen=True)
class PeerStats:
    """The settlement amounts of each peer group (same med_type, institution type and grade) as the last
    batch build counted them: count, mean, sum of squared deviations, the distinct amounts (rounded to
    6 digits, as the SQL orders them) with their counts, and median payment shares."""

    groups: Mapping[tuple, tuple]  # key -> (n, mean, m2, values ndarray, n_below ndarray, medians dict)
    as_of: datetime | None = None

    @classmethod
    def from_rows(cls, rows: Iterable[tuple], as_of: datetime | None = None) -> "PeerStats":
        """Rows of ``(key, n, mean, m2, values, counts, median_fund_share, median_psn_pay_share,
        median_acct_pay_share)``; ``values`` sorted ascending."""
        groups = {}
        for key, n, mean, m2, values, counts, fund, psn, acct in rows:
            v = np.asarray(values, dtype=float)
            below = np.concatenate([[0], np.cumsum(np.asarray(counts, dtype=np.int64))[:-1]])
            groups[tuple(key)] = (int(n), float(mean), float(m2), v, below,
                                  {"fund_share": fund, "psn_pay_share": psn, "acct_pay_share": acct})
        return cls(groups, as_of)

    def z_and_pct(self, key: tuple, amount: float, *, known: float | None = None) -> tuple[float | None, float]:
        """``(z_amt_peer, pct_amt_peer)`` of a settlement of ``amount`` in group ``key``.

        ``known``: the amount the snapshot already counts for this settlement (it was in the batch
        build); it is taken out and ``amount`` put in. Otherwise the settlement is counted in as one
        more member — what the batch build would give with this visit in the warehouse.
        """
        group = self.groups.get(tuple(key))
        if group is None:  # a group of one: no spread, the lowest (and only) rank
            return None, 0.0
        n, mean, m2, values, below = group[:5]
        rounded = round(amount, 6)
        i = bisect.bisect_left(values, rounded)
        less = int(below[i]) if i < len(values) else n
        if known is not None and known == amount:
            total = n
        elif known is not None:  # the recorded amount out, the posted one in
            n_out, mean_out, m2_out = _welford_remove(n, mean, m2, known)
            n, mean, m2 = _welford_add(n_out, mean_out, m2_out, amount)
            total = n
            less -= 1 if round(known, 6) < rounded else 0
        else:
            n, mean, m2 = _welford_add(n, mean, m2, amount)
            total = n
        std = math.sqrt(m2 / n) if n and m2 > 0 else 0.0
        z = (amount - mean) / std if std > 0 else None
        pct = less / (total - 1) if total > 1 else 0.0
        return z, pct

    def medians(self, key: tuple) -> dict[str, float | None]:
        group = self.groups.get(tuple(key))
        return dict(group[5]) if group is not None else {}


@dataclass(frozen=True)
class Reference:
    """The institution register and the catalogue attributes the line features read."""

    institutions: Mapping[str, tuple[str | None, int, str | None]]  # code -> (fixmedins_type, level, admdvs)
    catalogue: Mapping[str, tuple[str | None, Decimal | None, str | None, str | None]]
    # code -> (chrgitm_lv, pric_uplmt_amt, vbp_group, vbp_flag)


class InstitutionClock:
    """Settlement times per institution (µs since the epoch, sorted): how many it made around a moment."""

    def __init__(self, times: Mapping[str, np.ndarray]):
        self._times = dict(times)
        newest = max((int(t[-1]) for t in self._times.values() if len(t)), default=None)
        # the last settlement the snapshot holds: the clock knows nothing made after it
        self.newest: datetime | None = None if newest is None else _EPOCH + timedelta(microseconds=newest)

    def around(self, fixmedins_code: str, moment: datetime, seconds: int = SAME_TIME_SECONDS) -> int:
        """Settlements of the institution with ``|time - moment| <= seconds``."""
        t = self._times.get(fixmedins_code)
        if t is None or not len(t):
            return 0
        us = _micros(moment)
        lo = np.searchsorted(t, us - seconds * 1_000_000, "left")
        hi = np.searchsorted(t, us + seconds * 1_000_000, "right")
        return int(hi - lo)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self._times.values())


@dataclass(frozen=True)
class HistorySetl:
    setl_id: str
    mdtrt_id: str
    fixmedins_code: str
    med_type: str | None
    setl_time: datetime | None
    medfee_sumamt: Decimal | None
    begntime: datetime | None  # of its visit (mdtrt_d)
    endtime: datetime | None

    @property
    def is_inpatient(self) -> bool:
        return is_inpatient(self.med_type)


@dataclass(frozen=True)
class PersonHistory:
    """A person's settlements that count (refunds and what they cancel left out), each with its visit's
    begin and end, and the register row (``birth_year``, ``die_date``). The birth year only, as the batch
    features read it: the warehouse keeps no birth date (the identity vault does, for the age rules)."""

    settlements: tuple[HistorySetl, ...] = ()
    birth_year: int | None = None
    die_date: date | None = None
    known: bool = False  # the person is in the register

    @classmethod
    def from_index(cls, index, psn_no: str, *, until: datetime | None = None) -> "PersonHistory":
        """The person's rows of a :class:`models.rules.history.HistoryIndex` (the pre-check's): every
        settlement up to ``until`` (all when None)."""
        setls = index.rows("setl_d", psn_no)
        visits = {r[0]: (r[3], r[4]) for r in index.rows("mdtrt_d", psn_no)}
        person = index.rows("psn_info", psn_no)
        return cls.from_rows(setls, visits, person[0] if person else None, until=until)

    @classmethod
    def from_rows(cls, setl_rows: Sequence[tuple], visits: Mapping[str, tuple], person: tuple | None, *,
                  until: datetime | None = None) -> "PersonHistory":
        """From ``setl_d`` rows in :data:`models.rules.history.STORE_COLUMNS` order, visit times by
        mdtrt_id and the register row ``(gend, brdy, die_date)`` (of the birth date, the year is kept)."""
        refunded = set()
        for r in setl_rows:
            if r[12] == "1":
                refunded.add(r[0])
                if r[13] is not None:
                    refunded.add(r[13])
        out = []
        for (setl_id, mdtrt_id, fix, med_type, _insutype, setl_time, medfee, *_rest) in setl_rows:
            if setl_id in refunded or setl_time is None or (until is not None and setl_time > until):
                continue
            begn, end = visits.get(mdtrt_id, (None, None))
            out.append(HistorySetl(setl_id, mdtrt_id, fix, med_type, setl_time, medfee, begn, end))
        brdy = person[1] if person else None
        return cls(tuple(out), brdy.year if brdy is not None else None, person[2] if person else None,
                   person is not None)


@dataclass(frozen=True)
class FeatureContext:
    """What the online features read besides the visit and the person: loaded once (:func:`load_context`)."""

    peers: PeerStats
    reference: Reference
    clock: InstitutionClock
    typologies: tuple[str, ...] = tuple(FRAUD_TYPES)


@dataclass(frozen=True)
class OnlineRow:
    """The feature row of one visit: ``values`` by ``feat_setl`` column; ``approximated`` names each
    feature whose value is an estimate, with why (Chinese, then English)."""

    values: dict[str, Any]
    approximated: dict[str, str] = field(default_factory=dict)
    in_snapshot: bool = False  # the settlement was in the batch build the peer statistics come from


def settlement_features(visit, history: PersonHistory, *, context: FeatureContext,
                        hits: Iterable[Mapping[str, Any]] = (), as_of: datetime | None = None) -> OnlineRow:
    """The ``feat_setl`` row of ``visit`` (a :class:`models.rules.precheck.Visit`).

    ``history``: the person's settlements that count (the visit's own among them when the warehouse has
    it: it is then taken as recorded, not counted twice). ``hits``: the visit's rule hits (dicts or
    objects with ``setl_id``, ``rule_id``, ``typology_id``, ``amount_at_risk``). ``as_of``: the moment the
    row is computed as of (``age_days``); default the settlement time.
    """
    s, m = visit.setl, visit.mdtrt
    ref = context.reference
    approx: dict[str, str] = {}
    inst = ref.institutions.get(s.fixmedins_code)
    fix_type, level, inst_admdvs = (inst if inst is not None else (None, None, None))
    setl_time = s.setl_time
    setl_date = setl_time.date()
    as_of = as_of or setl_time
    amt = float(s.medfee_sumamt)
    v: dict[str, Any] = {"setl_id": s.setl_id, "mdtrt_id": s.mdtrt_id, "psn_no": s.psn_no,
                         "fixmedins_code": s.fixmedins_code, "prac_code": m.chfpdr_code, "setl_time": setl_time,
                         "as_of": as_of, "medfee_amt": amt}
    med_type = s.med_type or ""
    peer_key = (s.med_type, fix_type, level)

    # payments: unknown before the settlement is made; the peer group's median shares stand in
    paid = {"fund_amt": s.fund_pay_sumamt, "psn_pay_amt": s.psn_pay, "acct_pay_amt": s.acct_pay}
    medians = context.peers.medians(peer_key)
    for name, value in paid.items():
        if value is not None:
            v[name] = float(value)
            continue
        share = medians.get(name.replace("_amt", "_share")) if medians else None
        v[name] = amt * share if share is not None else 0.0
        approx[name] = (f"结算前未知, 按同组中位占比 {share:.3f} 估计 (not known before settlement: the peer "
                        f"group's median share)" if share is not None else
                        "结算前未知, 记为 0 (not known before settlement; no peer median: 0)")
    v["fund_share"] = v["fund_amt"] / amt if amt else 0.0
    if "fund_amt" in approx:
        approx["fund_share"] = approx["fund_amt"]

    v["is_inpatient"] = int(is_inpatient(med_type))
    v["is_pharmacy"] = int(med_type == "41" or fix_type == "pharmacy")
    v["is_chronic"] = int(med_type.startswith("14"))
    v["is_emergency"] = int(med_type in _care_codes()[2])
    v["hosp_level"] = level or 0
    # from the middle (2 July) of the birth year, as features/sql/_stage.sql
    v["age_years"] = ((setl_date - date(history.birth_year, 7, 2)).days / 365.25
                      if history.birth_year is not None else None)
    v["age_days"] = (as_of.date() - setl_date).days
    v["ipt_days"] = float(m.ipt_days) if m.ipt_days is not None else None
    begin = m.begntime.date() if m.begntime else None
    end = m.endtime.date() if m.endtime else None
    stay_days = (end - begin).days if begin is not None and end is not None else None
    v["stay_days"] = float(stay_days) if stay_days is not None else None

    lines = _line_totals(visit.lines, ref)
    v.update({k: lines[k] for k in ("n_lines", "n_items", "n_exam", "n_lab", "n_treatment", "n_over_cap",
                                    "over_cap_amt", "n_dialysis", "n_rehab", "n_psychiatry", "drug_supply_days")})
    days = max(stay_days, 1) if stay_days is not None else 1
    v["lines_per_day"] = lines["n_lines"] / days
    v["care_day_share"] = lines["n_care_days"] / days
    line_amt = lines["line_amt"]
    for cat in ("exam", "lab", "drug", "consumable", "bed", "treatment"):
        v[f"{cat}_share"] = lines[f"amt_{cat}"] / line_amt if line_amt else 0.0
    for cls in ("a", "b", "c"):
        v[f"class_{cls}_share"] = lines[f"amt_class_{cls}"] / line_amt if line_amt else 0.0
    v["vbp_nonselected_share"] = (lines["amt_vbp_nonselected"] / lines["amt_vbp_group"]
                                  if lines["amt_vbp_group"] else 0.0)

    v["setl_hour"] = setl_time.hour
    v["weekday"] = weekday(setl_date)
    v["is_weekend"] = int(v["weekday"] >= 5)
    v["is_off_hours"] = int(setl_time.hour < 7 or setl_time.hour >= 19)
    v["is_round"] = int(is_round(s.medfee_sumamt))
    insu = s.insu_admdvs
    if insu is None:
        approx["admdvs_distance"] = approx["is_out_of_region"] = \
            "未提供参保地, 按本地参保计 (insured region not given: taken as local)"
        insu = inst_admdvs
    v["admdvs_distance"] = _distance(insu, inst_admdvs)
    v["is_out_of_region"] = int(v["admdvs_distance"] >= 2)
    main = m.dscg_maindiag_code or s.dise_no or ""
    v["is_injury"] = int(main[:1] in ("S", "T"))
    v["is_after_death"] = int(history.die_date is not None and setl_date > history.die_date)

    # the person's other settlements (the visit's own, when recorded, is the visit itself)
    recorded = next((h for h in history.settlements if h.setl_id == s.setl_id), None)
    others = [h for h in history.settlements if h.setl_id != s.setl_id]
    within = context.clock.around(s.fixmedins_code, setl_time)
    if recorded is not None and recorded.setl_time is not None and \
            abs((recorded.setl_time - setl_time).total_seconds()) <= SAME_TIME_SECONDS \
            and recorded.fixmedins_code == s.fixmedins_code:
        within -= 1  # the clock counts the recorded settlement: counted once below, as this visit
    v["n_same_inst_10min"] = within + 1
    v["n_psn_setl_same_day"] = 1 + sum(1 for h in others if h.setl_time.date() == setl_date)
    newest = context.clock.newest
    if recorded is None and (newest is None or setl_time + timedelta(seconds=SAME_TIME_SECONDS) > newest):
        # the warehouse is a snapshot: what the institution and the person settled after it is not counted yet
        after = f"快照 {newest:%Y-%m-%d %H:%M} 之后的结算未计入 (settlements after the snapshot not counted)" \
            if newest is not None else "无快照 (no snapshot)"
        approx["n_same_inst_10min"] = approx["n_psn_setl_same_day"] = after
        if v["is_inpatient"]:
            approx["n_other_setl_during_stay"] = approx["n_elsewhere_during_stay"] = \
                approx["amt_other_setl_during_stay"] = after

    v["days_since_prev_discharge"] = None
    if v["is_inpatient"]:
        key = _stay_order(m.begntime, s.setl_id)
        earlier = [h for h in others if h.is_inpatient and h.fixmedins_code == s.fixmedins_code
                   and _stay_order(h.begntime, h.setl_id) < key]
        if earlier:
            prev = max(earlier, key=lambda h: _stay_order(h.begntime, h.setl_id))
            if prev.endtime is not None and begin is not None:
                v["days_since_prev_discharge"] = float((begin - prev.endtime.date()).days)
    gap = v["days_since_prev_discharge"]
    v["is_readmit_15d"] = int(gap is not None and gap <= READMIT_DAYS)
    n_other = n_elsewhere = 0
    amt_other = 0.0
    if v["is_inpatient"] and m.begntime is not None and m.endtime is not None:
        for h in others:
            if h.mdtrt_id != s.mdtrt_id and m.begntime < h.setl_time < m.endtime:
                n_other += 1
                n_elsewhere += int(h.fixmedins_code != s.fixmedins_code)
                amt_other += float(h.medfee_sumamt) if h.medfee_sumamt is not None else 0.0
    v["n_other_setl_during_stay"], v["n_elsewhere_during_stay"] = n_other, n_elsewhere
    v["amt_other_setl_during_stay"] = amt_other
    v["is_during_other_stay"] = int(any(
        h.is_inpatient and h.mdtrt_id != s.mdtrt_id and h.begntime is not None and h.endtime is not None
        and h.begntime < setl_time < h.endtime and h.fixmedins_code != s.fixmedins_code for h in others))

    in_snapshot = (recorded is not None and context.peers.as_of is not None and recorded.setl_time is not None
                   and recorded.setl_time <= context.peers.as_of)
    known = float(recorded.medfee_sumamt) if in_snapshot and recorded.medfee_sumamt is not None else None
    z, pct = context.peers.z_and_pct(peer_key, amt, known=known)
    v["z_amt_peer"], v["pct_amt_peer"] = (z if z is not None else 0.0), pct

    # the batch-only rules (institution and doctor level: 集采, 进销存, 空刷 ...) name no settlement, so the
    # visit's rule-hit columns are its real-time hits
    v.update(_rule_hit_columns(hits, s.setl_id, context.typologies))
    return OnlineRow(v, approx, in_snapshot)


def load_context(warehouse: Path | str | duckdb.DuckDBPyConnection) -> FeatureContext:
    """Read the peer statistics of the last batch build, the institution register, the catalogue and
    the settlement times per institution from ``warehouse`` (read-only) — the edge where the I/O is.

    Raises ``FileNotFoundError`` when the warehouse has no ``feat_setl_peer_stats`` (features built
    before it existed: rebuild them)."""
    own = not isinstance(warehouse, duckdb.DuckDBPyConnection)
    con = duckdb.connect(str(warehouse), read_only=True) if own else warehouse
    try:
        have = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if PEER_STATS_TABLE not in have:
            raise FileNotFoundError(f"no {PEER_STATS_TABLE} table: run `yibao features build` again")
        rows = con.execute(f"""
            SELECT med_type, fixmedins_type, hosp_level, n, mean_amt, m2_amt, amt_values, amt_counts,
                   median_fund_share, median_psn_pay_share, median_acct_pay_share, as_of
            FROM {PEER_STATS_TABLE}""").fetchall()
        as_of = max((r[11] for r in rows), default=None)
        peers = PeerStats.from_rows((((r[0], r[1], r[2]), *r[3:11]) for r in rows), as_of)
        institutions = {code: (typ, hosp_level(lv), adm) for code, typ, lv, adm in con.execute(
            "SELECT fixmedins_code, fixmedins_type, hosp_lv, admdvs FROM fixmedins").fetchall()}
        catalogue = {code: (lv, cap, grp, flag) for code, lv, cap, grp, flag in con.execute(
            "SELECT hilist_code, chrgitm_lv, pric_uplmt_amt, vbp_group, vbp_flag FROM hilist").fetchall()}
        frame = con.execute("""
            WITH refunded AS (
                SELECT setl_id FROM setl_d WHERE refd_setl_flag = '1'
                UNION SELECT init_setl_id FROM setl_d WHERE refd_setl_flag = '1' AND init_setl_id IS NOT NULL)
            SELECT fixmedins_code, epoch_us(setl_time) AS us FROM setl_d
            WHERE setl_time IS NOT NULL AND COALESCE(refd_setl_flag, '0') <> '1'
              AND setl_id NOT IN (SELECT setl_id FROM refunded WHERE setl_id IS NOT NULL)
            ORDER BY fixmedins_code, us""").fetchnumpy()
    finally:
        if own:
            con.close()
    codes, us = frame["fixmedins_code"], np.asarray(frame["us"], dtype=np.int64)
    times: dict[str, np.ndarray] = {}
    if len(codes):
        starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], len(codes)]):
            times[str(codes[a])] = us[a:b].copy()
    return FeatureContext(peers, Reference(institutions, catalogue), InstitutionClock(times))


# -- private helpers ------------------------------------------------------------------------------


def _line_totals(lines: Sequence[Any], ref: Reference) -> dict[str, float]:
    """``stg_setl_lines`` for the visit's lines: money and quantities summed in Decimal, as the staging sums
    DECIMAL(18, 2) and DECIMAL(18, 4) (features/sql/_stage.sql), then made floats."""
    out: dict[str, Any] = dict.fromkeys(("line_amt", "amt_exam", "amt_lab", "amt_drug", "amt_consumable", "amt_bed",
                         "amt_treatment", "n_exam", "n_lab", "n_treatment", "amt_class_a", "amt_class_b",
                         "amt_class_c", "amt_vbp_group", "amt_vbp_nonselected", "over_cap_amt", "n_dialysis",
                         "n_rehab", "n_psychiatry", "drug_supply_days"), Decimal(0))
    n_over, items, care_days = 0, set(), set()
    for ln in lines:
        cat = category(ln.list_type, ln.med_chrgitm_type)
        known = ref.catalogue.get(ln.hilist_code)
        c_lv, c_cap, grp, flag = known if known is not None else (None, None, None, None)
        amt = Decimal(str(ln.det_item_fee_sumamt))
        cnt = _quantity(ln.cnt)
        out["line_amt"] += amt
        if cat in ("exam", "lab", "drug", "consumable", "bed", "treatment"):
            out[f"amt_{cat}"] += amt
        if cat in ("exam", "lab", "treatment"):
            out[f"n_{cat}"] += cnt
        lv = ln.chrgitm_lv if ln.chrgitm_lv is not None else c_lv
        if lv == "01":
            out["amt_class_a"] += amt
        elif lv == "02":
            out["amt_class_b"] += amt
        elif lv in ("03", "04"):
            out["amt_class_c"] += amt
        if grp is not None:
            out["amt_vbp_group"] += amt
            if (flag or "0") != "1":
                out["amt_vbp_nonselected"] += amt
        cap = ln.pric_uplmt_amt if ln.pric_uplmt_amt is not None else c_cap
        if cap is not None and ln.pric is not None and ln.pric > cap + Decimal("0.005"):
            n_over += 1
            out["over_cap_amt"] += (ln.pric - cap) * cnt
        if ln.list_type == "201" and "透析" in (ln.hilist_name or ""):
            out["n_dialysis"] += cnt
        dept = ln.bilg_dept_codg or ""
        if dept.startswith("A21"):
            out["n_rehab"] += cnt
        if dept.startswith("A15"):
            out["n_psychiatry"] += cnt
        if cat == "drug" and ln.prd_days is not None:
            out["drug_supply_days"] += _quantity(ln.prd_days)
        if ln.hilist_code is not None:
            items.add(ln.hilist_code)
        if cat not in ("bed", "nursing") and ln.fee_ocur_time is not None:
            care_days.add(ln.fee_ocur_time.date())
    out = {k: float(v) for k, v in out.items()}
    out["n_lines"], out["n_items"], out["n_over_cap"], out["n_care_days"] = \
        len(lines), len(items), n_over, len(care_days)
    return out


def _quantity(value: Any) -> Decimal:
    """A quantity or a number of days as the staging has it: DECIMAL(18, 4), 0 when missing."""
    if value is None:
        return Decimal(0)
    return Decimal(str(float(value))).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def _rule_hit_columns(hits: Iterable[Any], setl_id: str, typologies: Sequence[str]) -> dict[str, Any]:
    """``rule_hits.sql`` for the hits of one settlement; amounts summed in fen-exact Decimal, as the SQL
    sums DECIMAL, then made floats."""
    out: dict[str, Any] = {"rh_n_hits": 0, "rh_amt_hits": Decimal(0)}
    rules, types = set(), set()
    for t in typologies:
        out[f"rh_n_{t}"], out[f"rh_amt_{t}"] = 0, Decimal(0)
    for h in hits:
        get = h.get if isinstance(h, Mapping) else (lambda k, h=h: getattr(h, k, None))
        if get("setl_id") != setl_id:
            continue
        amount = Decimal(str(get("amount_at_risk") or 0))
        out["rh_n_hits"] += 1
        out["rh_amt_hits"] += amount
        rules.add(get("rule_id"))
        t = get("typology_id")
        types.add(t)
        if f"rh_n_{t}" in out:
            out[f"rh_n_{t}"] += 1
            out[f"rh_amt_{t}"] += amount
    out["rh_n_rules"], out["rh_n_typologies"] = len(rules), len(types)
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in out.items()}


def _distance(insured: str | None, care: str | None) -> int:
    """参保地-就医地: 0 same district, 1 same city, 2 same province, 3 another (or unknown)."""
    if insured is None or care is None:
        return 3
    if insured == care:
        return 0
    if insured[:4] == care[:4]:
        return 1
    if insured[:2] == care[:2]:
        return 2
    return 3


def _stay_order(begntime: datetime | None, setl_id: str) -> tuple:
    """The order of ``stg_readmit`` (begntime, then setl_id; a missing begntime last)."""
    return (begntime is None, begntime or datetime.min, setl_id)


def _welford_add(n: int, mean: float, m2: float, x: float) -> tuple[int, float, float]:
    n1 = n + 1
    delta = x - mean
    mean1 = mean + delta / n1
    return n1, mean1, m2 + delta * (x - mean1)


def _welford_remove(n: int, mean: float, m2: float, x: float) -> tuple[int, float, float]:
    if n <= 1:
        return 0, 0.0, 0.0
    n0 = n - 1
    mean0 = (mean * n - x) / n0
    return n0, mean0, max(0.0, m2 - (x - mean0) * (x - mean))


def _micros(t: datetime) -> int:
    d = t - _EPOCH
    return (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds

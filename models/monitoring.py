"""监测 (monitoring): a system that watches its own rules and models.

Nobody notices a rule that stops firing after an institution changes its codes, prices that pile up just
under a cap once an institution has learnt it, or a model whose inputs drift. :func:`monitor` reads the
warehouse (``setl_d``, ``fee_list_d``, ``hilist``, ``rule_hits``; ``feat_setl`` and a scorer bundle when
given) and reports, each finding in Chinese with its numbers:

* **rule rates** (规则命中率): per rule, and per rule and institution, hits per 1,000 settlements by month,
  with a change-point test (:func:`change_point`): for every month at which the rate could have changed,
  the hits after it are binomial given all the hits and the settlements before and after; the smallest
  p-value over the months is Bonferroni-corrected for the months tried and then for the series of its
  family. The test counts persons hit, not hits (one person's hits come together — a stolen card, a
  course of care — and would fake a change). Only hits on a settlement are dated (institution- and
  doctor-level rules judge a whole period). A drop (a rule gone silent, 规则沉默) is an **alarm**; a rise
  is a **notice** (more hits are what rules exist to find: they reach the clue list anyway).
* **evasion at a price cap** (规避限价, bunching): per institution, the share of its settlements with a
  capped fee line that have one priced strictly within ``band`` under the cap (at the cap is the standard
  price), by month, with the same change-point test (a rise is the alarm), and the shares just over the
  cap and over it at all, before and after.
* **evasion at a frequency limit** (规避限定频次): per institution, the share of its person-days with a
  两库 item limited to N a day (N ≥ 2) that bill within ``band`` under N, the same way.
* **codes the rules cannot read** (编码改写, the silent-rule report per institution and month): per
  institution, the share of its settlements with a fee line whose code neither the catalogue nor the
  两库 pack knows, with the same change-point test (a rise is the alarm: the rules keyed on those items go
  silent there), naming the codes' written form (:func:`features.codes.code_form`) and the institution's
  两库 hits per 1,000 settlements either side.
* **drift** (漂移): the population stability index (PSI, :func:`psi`) of each model feature and of the
  model's score between the training window (the bundle's evaluation cut-off; without a bundle, every
  month before the latest) and the latest month. Under no drift, ``PSI · n₁n₂/(n₁+n₂)`` is about χ² with
  bins − 1 degrees of freedom (:func:`psi_critical`); a feature drifts when its PSI exceeds that critical
  value at ``alpha`` (Bonferroni over the features) **and** the customary 0.1 (a shift worth a look, the
  credit-scoring convention: with 10⁵ settlements a month the test alone would flag shifts of no
  consequence).

Thresholds come from the tests' own error rates (``alpha``, family-wise per family of tests), never from
what a region happens to show. Months: complete months only (a last month with fewer than half the
median month's settlements is left out, as is anything after it).

>>> tau, p, before, after = change_point([30, 32, 29, 31, 0, 0], [1000] * 6)
>>> tau, p < 1e-10, before, after
(4, True, 0.0305, 0.0)
>>> change_point([30, 32, 29, 31, 30, 28], [1000] * 6)[1] > 0.5
True
>>> round(psi([0.5, 0.5], [0.5, 0.5]), 6), round(psi([0.5, 0.5], [0.6, 0.4]), 4)
(0.0, 0.0405)
>>> round(psi_critical(10, 200_000, 20_000, alpha=0.01), 5)
0.00119
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["MonitorConfig", "Finding", "MonitorReport", "monitor", "change_point", "psi", "psi_critical"]


@dataclass(frozen=True)
class MonitorConfig:
    alpha: float = 0.01  # family-wise false-alarm probability of each family of tests
    band: float = 0.05  # "just under / just over" a price cap: within 5 % of it
    min_months: int = 4  # fewer complete months: no change-point test
    bins: int = 10  # PSI bins: deciles of the training window
    psi_material: float = 0.1  # the customary "worth a look" PSI (see the module docstring)


@dataclass(frozen=True)
class Finding:
    kind: str  # rule_rate | rule_institution | evasion | feature_drift | score_drift
    level: str  # alarm | notice
    message_zh: str
    rule_id: str | None = None
    fixmedins_code: str | None = None
    month: str | None = None  # the first month after the change (YYYY-MM)
    before: float | None = None
    after: float | None = None
    p_value: float | None = None
    threshold: float | None = None  # the p-value (or PSI) the finding had to pass
    detail: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MonitorReport:
    months: tuple[str, ...]
    findings: tuple[Finding, ...]
    tests: dict[str, int]  # series tested per family (the Bonferroni denominators)
    config: MonitorConfig

    @property
    def alarms(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.level == "alarm")

    def to_dict(self) -> dict:
        return {"months": list(self.months), "tests": self.tests, "config": asdict(self.config),
                "alarms": len(self.alarms), "notices": len(self.findings) - len(self.alarms),
                "findings": [f.to_dict() for f in self.findings]}


def monitor(warehouse: Path | str, *, config: MonitorConfig = MonitorConfig(), bundle=None) -> MonitorReport:
    """Every finding of the warehouse (see the module docstring); ``bundle``: a
    :class:`models.bundle.ScorerBundle` for score and feature drift (feature drift only without it)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        have = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        setl = con.execute(_SETL_MONTHS).df()
        months = _complete_months(setl)
        findings: list[Finding] = []
        tests: dict[str, int] = {}
        if "rule_hits" in have and len(months) >= config.min_months:
            hits = con.execute(_HIT_MONTHS).df()
            findings += _rule_findings(hits, setl, months, config, tests)
        if len(months) >= config.min_months:
            findings += _evasion_findings(con.execute(_CAP_MONTHS, {"band": config.band}).df(), months, config,
                                          tests, family="evasion", rule_id="price_over_cap",
                                          units_zh="含限价项目的结算", limit_zh="限价")
            if "rule_pack" in have:
                findings += _evasion_findings(con.execute(_FREQUENCY_MONTHS, {"band": config.band}).df(), months,
                                              config, tests, family="evasion_frequency",
                                              rule_id="liangku_frequency", units_zh="限频次项目的人日",
                                              limit_zh="限定频次")
            pack = "UNION SELECT hilist_code FROM rule_pack UNION SELECT related_code FROM rule_pack" \
                if "rule_pack" in have else ""
            unknown = con.execute(_UNKNOWN_CODE_MONTHS.format(pack=pack)).df()
            liangku = con.execute(_LIANGKU_MONTHS).df() if "rule_hits" in have else unknown.iloc[:0]
            findings += _code_findings(unknown, liangku, setl, months, config, tests)
        if "feat_setl" in have and months:
            findings += _drift_findings(con, months, bundle, config, tests)
    order = {"alarm": 0, "notice": 1}
    findings.sort(key=lambda f: (order[f.level], f.kind, f.p_value if f.p_value is not None else 1.0))
    return MonitorReport(tuple(months), tuple(findings), tests, config)


def change_point(counts: Sequence[float], exposure: Sequence[float]) -> tuple[int, float, float, float]:
    """The most likely month at which the rate ``counts / exposure`` changed: ``(tau, p, before, after)``.

    ``tau`` is the index of the first month after the change; ``p`` the smallest two-sided binomial
    p-value over the splits (hits after the split given all hits, with the exposure's share as the
    probability), times the number of splits tried; ``before`` and ``after`` the rates either side.
    """
    x = np.asarray(counts, dtype=float)
    n = np.asarray(exposure, dtype=float)
    total_x, total_n = x.sum(), n.sum()
    if len(x) < 2 or total_n <= 0:
        return 0, 1.0, math.nan, math.nan
    after_x = np.cumsum(x[::-1])[::-1][1:]  # hits from split k+1 on, k = 0 .. T-2
    after_n = np.cumsum(n[::-1])[::-1][1:]
    q = after_n / total_n
    low = stats.binom.cdf(after_x, total_x, q)
    high = stats.binom.sf(after_x - 1, total_x, q)
    p = np.minimum(1.0, 2 * np.minimum(low, high))
    k = int(np.argmin(p))
    before_n, after_n_k = total_n - after_n[k], after_n[k]
    before = (total_x - after_x[k]) / before_n if before_n else math.nan
    after = after_x[k] / after_n_k if after_n_k else math.nan
    return k + 1, float(min(1.0, p[k] * (len(x) - 1))), float(before), float(after)


def psi(expected: Sequence[float], actual: Sequence[float], *, floor: float = 1e-4) -> float:
    """Population stability index of two distributions over the same bins (shares; ``floor`` keeps an
    empty bin finite)."""
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_critical(bins: int, n_expected: int, n_actual: int, *, alpha: float) -> float:
    """The PSI that two samples of the same distribution exceed with probability ``alpha``."""
    return float(stats.chi2.ppf(1 - alpha, bins - 1) * (1 / n_expected + 1 / n_actual))


# -- private helpers ------------------------------------------------------------------------------

_SETL_MONTHS = """
    SELECT strftime(setl_time, '%Y-%m') AS month, fixmedins_code, count(*) AS n_setl
    FROM setl_d
    WHERE COALESCE(refd_setl_flag, '0') <> '1' AND setl_time IS NOT NULL
    GROUP BY ALL"""

# hits on a settlement (institution- and doctor-level rules judge a whole period: no month of their own);
# persons: the unit the test counts (one person's hits come together: a stolen card, a course of care)
_HIT_MONTHS = """
    SELECT h.rule_id, strftime(s.setl_time, '%Y-%m') AS month, s.fixmedins_code,
           count(*) AS hits, count(DISTINCT s.psn_no) AS persons
    FROM rule_hits h
    JOIN setl_d s ON s.setl_id = h.setl_id
    WHERE s.setl_time IS NOT NULL
    GROUP BY ALL"""

# settlements with a capped fee line per institution and month (the settlement is the unit: its lines come
# together), and how many have a line strictly inside the band under the cap (at the cap is the standard
# price, not bunching), strictly inside the band over it, over the cap at all
_CAP_MONTHS = """
    WITH l AS (
        SELECT l.fixmedins_code, l.setl_id, strftime(l.fee_ocur_time, '%Y-%m') AS month,
               CAST(l.pric AS DOUBLE) AS pric, CAST(COALESCE(l.pric_uplmt_amt, h.pric_uplmt_amt) AS DOUBLE) AS cap
        FROM fee_list_d l LEFT JOIN hilist h ON h.hilist_code = l.hilist_code
        WHERE l.fee_ocur_time IS NOT NULL)
    SELECT fixmedins_code, month, count(DISTINCT setl_id) AS n,
           count(DISTINCT setl_id) FILTER (WHERE pric > cap * (1 - $band) AND pric < cap - 0.005) AS n_below,
           count(DISTINCT setl_id) FILTER (WHERE pric > cap + 0.005 AND pric < cap * (1 + $band)) AS n_above,
           count(DISTINCT setl_id) FILTER (WHERE pric > cap + 0.005) AS n_over
    FROM l WHERE cap > 0 AND pric IS NOT NULL
    GROUP BY ALL"""


# per institution and month, the person-days with a 两库 item limited to N a day (times, or hours of
# monitoring; per calendar day, where the rule counts per stay) for N >= 2 (with a limit of 1 the limit is
# every honest use, and evasion shows as the rule's hits stopping), and how many of them bill within the
# band under N, within it over N, over N at all
_FREQUENCY_MONTHS = """
    WITH lim AS (
        SELECT hilist_code, min(max_count) AS max_count
        FROM rule_pack WHERE rule_kind = 'frequency' GROUP BY hilist_code),
    d AS (
        SELECT l.fixmedins_code, l.psn_no, l.hilist_code, CAST(l.fee_ocur_time AS DATE) AS day,
               sum(CAST(l.cnt AS DOUBLE)) AS qty, any_value(lim.max_count) AS max_count
        FROM fee_list_d l JOIN lim ON lim.hilist_code = l.hilist_code
        WHERE l.fee_ocur_time IS NOT NULL AND lim.max_count >= 2
        GROUP BY ALL)
    SELECT fixmedins_code, strftime(day, '%Y-%m') AS month, count(*) AS n,
           count(*) FILTER (WHERE qty > max_count * (1 - $band) AND qty <= max_count) AS n_below,
           count(*) FILTER (WHERE qty > max_count AND qty <= max_count * (1 + $band)) AS n_above,
           count(*) FILTER (WHERE qty > max_count) AS n_over
    FROM d GROUP BY ALL"""

# settlements per institution and month with a fee line of a code the catalogue and the pack do not know,
# and one such code (its written form goes into the message)
_UNKNOWN_CODE_MONTHS = """
    WITH known AS (SELECT hilist_code FROM hilist {pack})
    SELECT l.fixmedins_code, strftime(l.fee_ocur_time, '%Y-%m') AS month, count(DISTINCT l.setl_id) AS n_unknown,
           count(*) AS n_lines, min(COALESCE(l.hilist_code_raw, l.hilist_code)) AS example
    FROM fee_list_d l
    WHERE l.fee_ocur_time IS NOT NULL AND l.hilist_code IS NOT NULL
      AND l.hilist_code NOT IN (SELECT hilist_code FROM known WHERE hilist_code IS NOT NULL)
    GROUP BY ALL"""

_LIANGKU_MONTHS = """
    SELECT s.fixmedins_code, strftime(s.setl_time, '%Y-%m') AS month, count(*) AS hits
    FROM rule_hits h JOIN setl_d s ON s.setl_id = h.setl_id
    WHERE h.rule_id LIKE 'liangku%' AND s.setl_time IS NOT NULL
    GROUP BY ALL"""


def _complete_months(setl: pd.DataFrame) -> list[str]:
    per = setl.groupby("month")["n_setl"].sum().sort_index()
    if per.empty:
        return []
    keep = per[per >= 0.5 * per.median()]
    first_short = per.index[per < 0.5 * per.median()]
    last_full = keep.index.max()
    # a short month in the middle (a gap in the extract) stays; a short tail does not
    return [m for m in per.index if m <= last_full and (m in keep.index or m < first_short.max())]


def _matrix(frame: pd.DataFrame, keys: list[str], value: str, months: list[str]) -> pd.DataFrame:
    frame = frame[frame["month"].isin(months)]
    return frame.pivot_table(index=keys, columns="month", values=value, aggfunc="sum", fill_value=0) \
        .reindex(columns=months, fill_value=0)


def _rule_findings(hits: pd.DataFrame, setl: pd.DataFrame, months: list[str], config: MonitorConfig,
                   tests: dict[str, int]) -> list[Finding]:
    out: list[Finding] = []
    region_n = _matrix(setl.assign(all="*"), ["all"], "n_setl", months).iloc[0].to_numpy(float)
    inst_n = _matrix(setl, ["fixmedins_code"], "n_setl", months)
    persons = _matrix(hits, ["rule_id"], "persons", months)
    counts = _matrix(hits, ["rule_id"], "hits", months)
    tests["rule_rate"] = len(persons)
    for rule_id, row in persons.iterrows():
        out += _rate_finding("rule_rate", row.to_numpy(float), counts.loc[rule_id].to_numpy(float), region_n, months,
                             config, len(persons), rule_id=rule_id, who="全统筹区")
    hits = hits[hits["fixmedins_code"].isin(inst_n.index)]
    persons = _matrix(hits, ["rule_id", "fixmedins_code"], "persons", months)
    counts = _matrix(hits, ["rule_id", "fixmedins_code"], "hits", months)
    tests["rule_institution"] = len(persons)
    for (rule_id, code), row in persons.iterrows():
        out += _rate_finding("rule_institution", row.to_numpy(float), counts.loc[(rule_id, code)].to_numpy(float),
                             inst_n.loc[code].to_numpy(float), months, config, len(persons), rule_id=rule_id,
                             code=code, who=f"机构 {code} ")
    return out


def _rate_finding(kind: str, persons: np.ndarray, hits: np.ndarray, n: np.ndarray, months: list[str],
                  config: MonitorConfig, m: int, *, rule_id: str, who: str, code: str | None = None) -> list[Finding]:
    """A finding when the rate of persons hit per settlement changed (the test's unit: a person's hits
    are not independent of each other); the message gives hits per 1,000 settlements either side."""
    tau, p, before, after = change_point(persons, n)
    cut = config.alpha / max(m, 1)
    if p > cut or tau == 0:
        return []
    drop = after < before
    h0, h1, n0, n1 = hits[:tau].sum(), hits[tau:].sum(), n[:tau].sum(), n[tau:].sum()
    rate0, rate1 = 1000 * h0 / n0, 1000 * h1 / n1
    what = "骤降" + ("至零 (规则沉默)" if h1 == 0 else "") if drop else "骤升"
    msg = (f"规则 {rule_id} 在{who}的命中率自 {months[tau]} 起{what}: 每千笔结算 {rate0:.2f} → {rate1:.2f} 次 "
           f"(此前 {int(h0)} 次 {int(persons[:tau].sum())} 人/{int(n0)} 笔, 此后 {int(h1)} 次 "
           f"{int(persons[tau:].sum())} 人/{int(n1)} 笔; 按人次的变点检验 p={p:.2g} < {cut:.2g})")
    return [Finding(kind, "alarm" if drop else "notice", msg, rule_id, code, months[tau], rate0, rate1, p, cut,
                    {"hits": hits.astype(int).tolist(), "persons": persons.astype(int).tolist(),
                     "settlements": n.astype(int).tolist()})]


def _evasion_findings(frame: pd.DataFrame, months: list[str], config: MonitorConfig, tests: dict[str, int], *,
                      family: str, rule_id: str, units_zh: str, limit_zh: str) -> list[Finding]:
    """Per institution, a rise in the share of ``n`` (its units with a limited item) that sit just under the
    limit (``n_below``), with the shares just over it and over it at all either side."""
    total = _matrix(frame, ["fixmedins_code"], "n", months)
    below, above, over = (_matrix(frame, ["fixmedins_code"], c, months).reindex(total.index, fill_value=0)
                          for c in ("n_below", "n_above", "n_over"))
    tested = total.index[below.sum(axis=1) > 0]
    tests[family] = len(tested)
    cut = config.alpha / max(len(tested), 1)
    out = []
    pct = lambda a, b: 100 * a / b if b else 0.0  # noqa: E731
    band = f"{100 * config.band:g}%"
    for code in tested:
        n, x = total.loc[code].to_numpy(float), below.loc[code].to_numpy(float)
        tau, p, before, after = change_point(x, n)
        if p > cut or after <= before:
            continue
        n0, n1 = n[:tau].sum(), n[tau:].sum()
        a0, a1 = above.loc[code].to_numpy()[:tau].sum(), above.loc[code].to_numpy()[tau:].sum()
        o0, o1 = over.loc[code].to_numpy()[:tau].sum(), over.loc[code].to_numpy()[tau:].sum()
        msg = (f"机构 {code} 自 {months[tau]} 起{limit_zh}下方 {band} 内的{units_zh}占比 {100 * before:.1f}% → "
               f"{100 * after:.1f}%, {limit_zh}上方 {band} 内 {pct(a0, n0):.1f}% → {pct(a1, n1):.1f}%, 超出"
               f"{limit_zh} {pct(o0, n0):.1f}% → {pct(o1, n1):.1f}% ({units_zh} {int(n0)} / {int(n1)}; 变点检验 "
               f"p={p:.2g} < {cut:.2g}): 疑似规避{limit_zh}, 聚集于{limit_zh}之下")
        out.append(Finding(family, "alarm", msg, rule_id, code, months[tau], before, after, p, cut,
                           {"units": n.astype(int).tolist(), "just_below": x.astype(int).tolist(),
                            "just_above": above.loc[code].astype(int).tolist(),
                            "over": over.loc[code].astype(int).tolist()}))
    return out


def _code_findings(unknown: pd.DataFrame, liangku: pd.DataFrame, setl: pd.DataFrame, months: list[str],
                   config: MonitorConfig, tests: dict[str, int]) -> list[Finding]:
    from features.codes import code_form
    from models.rules.coverage import FORM_ZH

    inst_n = _matrix(setl, ["fixmedins_code"], "n_setl", months)
    per = _matrix(unknown, ["fixmedins_code"], "n_unknown", months)
    per = per[per.index.isin(inst_n.index)]
    hits = _matrix(liangku, ["fixmedins_code"], "hits", months) if len(liangku) else per.iloc[:0]
    tests["unknown_codes"] = len(per)
    cut = config.alpha / max(len(per), 1)
    out = []
    for code, row in per.iterrows():
        x, n = row.to_numpy(float), inst_n.loc[code].to_numpy(float)
        tau, p, before, after = change_point(x, n)
        if p > cut or after <= before:
            continue
        after_months = unknown[(unknown["fixmedins_code"] == code) & (unknown["month"] >= months[tau])]
        example = str(after_months["example"].min()) if len(after_months) else ""
        h = hits.loc[code].to_numpy(float) if code in hits.index else np.zeros(len(months))
        n0, n1 = n[:tau].sum(), n[tau:].sum()
        msg = (f"机构 {code} 自 {months[tau]} 起含目录和两库均不认识的编码的结算占比 {100 * before:.1f}% → "
               f"{100 * after:.1f}% (如 {example}, {FORM_ZH[code_form(example)]}; 变点检验 p={p:.2g} < {cut:.2g}): "
               f"疑似编码改写, 两库规则对这些项目失明; 该机构两库规则命中每千笔结算 {1000 * h[:tau].sum() / n0:.2f} → "
               f"{1000 * h[tau:].sum() / n1:.2f} 次")
        out.append(Finding("unknown_codes", "alarm", msg, None, code, months[tau], before, after, p, cut,
                           {"settlements_with_unknown_code": x.astype(int).tolist(), "settlements": n.astype(int).tolist(),
                            "liangku_hits": h.astype(int).tolist(), "example": example}))
    return out


def _drift_findings(con: duckdb.DuckDBPyConnection, months: list[str], bundle, config: MonitorConfig,
                    tests: dict[str, int]) -> list[Finding]:
    latest = months[-1]
    cutoff = ((bundle.meta.get("eval_window") or {}).get("cutoff") if bundle is not None else None)
    if bundle is not None and "setl" in bundle.scorers:
        columns = list(bundle.features["setl"])
    else:
        skip = {"as_of", "age_days", "setl_time"}
        columns = [c for c, t in con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                             "WHERE table_name = 'feat_setl'").fetchall()
                   if c not in skip and t in ("DOUBLE", "BIGINT", "INTEGER", "FLOAT")]
    baseline_where = (f"setl_time < DATE '{cutoff}'" if cutoff else f"strftime(setl_time, '%Y-%m') < '{latest}'")
    sel = ", ".join(f'"{c}"' for c in columns)
    base = con.execute(f"SELECT {sel} FROM feat_setl WHERE {baseline_where}").df()
    new = con.execute(f"SELECT {sel} FROM feat_setl WHERE strftime(setl_time, '%Y-%m') = '{latest}'").df()
    if len(base) < 100 or len(new) < 100:
        return []
    window = f"训练窗口 (截至 {cutoff})" if cutoff else f"{months[0]}–{months[-2]}"
    out = []
    drifted = []
    tests["feature_drift"] = len(columns)
    for c in columns:
        value, k = _psi_of(base[c].to_numpy(float), new[c].to_numpy(float), config.bins)
        crit = psi_critical(k, len(base), len(new), alpha=config.alpha / len(columns)) if k > 1 else math.inf
        if value > max(crit, config.psi_material):
            drifted.append((c, value, crit))
    for c, value, crit in sorted(drifted, key=lambda d: -d[1]):
        out.append(Finding("feature_drift", "alarm",
                           f"特征 {c} 在 {latest} 相对{window}发生漂移: PSI={value:.3f} (临界值 {crit:.4f}, 且 ≥ "
                           f"{config.psi_material}; 样本 {len(base)} / {len(new)} 笔)", month=latest, after=value,
                           threshold=max(crit, config.psi_material), detail={"feature": c}))
    if bundle is not None and "setl" in bundle.scorers:
        tests["score_drift"] = 1
        p0, p1 = bundle.score("setl", base), bundle.score("setl", new)
        value, k = _psi_of(np.asarray(p0, float), np.asarray(p1, float), config.bins)
        crit = psi_critical(k, len(base), len(new), alpha=config.alpha) if k > 1 else math.inf
        level = "alarm" if value > max(crit, config.psi_material) else "notice"
        out.append(Finding("score_drift", level,
                           f"结算模型评分分布 {latest} 相对{window}: PSI={value:.3f} (临界值 {crit:.4f}, 且 ≥ "
                           f"{config.psi_material} 才报警); 平均 P(欺诈) {np.mean(p0):.4f} → {np.mean(p1):.4f}, "
                           f"P ≥ 0.7 占比 {100 * np.mean(np.asarray(p0) >= 0.7):.2f}% → "
                           f"{100 * np.mean(np.asarray(p1) >= 0.7):.2f}%" + ("" if level == "alarm" else ": 未见漂移"),
                           month=latest, after=value, threshold=max(crit, config.psi_material),
                           detail={"mean_before": float(np.mean(p0)), "mean_after": float(np.mean(p1))}))
    return out


def _psi_of(base: np.ndarray, new: np.ndarray, bins: int) -> tuple[float, int]:
    """PSI over the baseline's quantile bins (a missing value is a bin of its own); the bins used."""
    finite = base[~np.isnan(base)]
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])

    def shares(v: np.ndarray) -> np.ndarray:
        missing = np.isnan(v)
        counts = np.bincount(np.searchsorted(edges, v[~missing], side="right"), minlength=len(edges) + 1)
        return np.append(counts, missing.sum()) / len(v)

    e, a = shares(base), shares(new)
    used = (e > 0) | (a > 0)
    return psi(e[used], a[used]), int(used.sum())


"""The 两库 conformance suite (models/rules/conformance.py): its claims sit on the boundaries, the fast form
meets every expected verdict, and it catches a rule broken on purpose.

The fast form is a seeded sample of 20 knowledge points per batch (every distinct restriction first), run
through the batch SQL and the pre-check kernels; the whole suite runs with ``yibao rules conformance``.
"""

from __future__ import annotations

import doctest
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

import pytest

from features.codes import canonical
from models.rules import conformance as cf
from models.rules.config import SQL_DIR, load_config
from models.rules.conformance import DAY0, SuiteContext, point_claims, run_conformance, sample_points
from models.rules.kernels import KERNELS
from models.rules.pack import load_pack

SAMPLE = 20  # points per batch in the fast form


@pytest.fixture(scope="module")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def ctx(pack):
    return SuiteContext.build(pack, load_config())


def _point(pack, point_id):
    return pack[pack.point_id == point_id].iloc[0]


def _plans(pack, ctx, point_id):
    plans = point_claims(_point(pack, point_id), ctx)
    assert not isinstance(plans, str), plans
    return plans


def _lines(plan):
    return [ln for v in plan.visits for ln in v.lines]


def test_docstring_examples():
    result = doctest.testmod(cf, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


def test_sample_takes_every_restriction_first(pack):
    sample = sample_points(pack, SAMPLE, seed=3)
    per_batch = pack.groupby("batch").size().items()
    assert sample.groupby("batch").size().to_dict() == {b: min(SAMPLE, n) for b, n in per_batch}
    first = sample[sample.batch == "1"]
    assert set(first.file) == set(pack[pack.batch == "1"].file)            # drug and item, gender and age
    assert set(first.age_max.dropna().round(3)) == {0.077, 3.0, 18.0}      # newborn, infant, child
    assert set(sample[sample.batch == "7"].window) == {"day", "visit", "6h", "hour"}
    assert sample_points(pack, SAMPLE, seed=3).point_id.tolist() == sample.point_id.tolist()
    assert sample_points(pack, SAMPLE, seed=4).point_id.tolist() != sample.point_id.tolist()


def test_every_point_gets_both_claims(pack, ctx):
    claims, uncovered = cf.generate(pack, ctx, forms=("canonical",))
    assert not uncovered, uncovered[:5]
    verdicts = {}
    for c in claims:
        verdicts.setdefault(c.point_id, set()).add(c.verdict)
    assert len(verdicts) == len(pack) and all(v == {"violating", "compliant"} for v in verdicts.values())
    assert len({c.psn_no for c in claims}) == len(claims)  # one person per claim: no interference


def test_age_claims_are_one_day_either_side(pack, ctx):
    child = _plans(pack, ctx, "b1-drug-age-000002")  # 儿童: under 18
    assert [(p.verdict, p.brdy) for p in child] == [("violating", date(2007, 3, 10)), ("compliant", date(2007, 3, 11))]
    newborn = _plans(pack, ctx, "b1-item-age-000012")  # 新生儿: under 28 days
    assert [(DAY0 - p.brdy).days for p in newborn] == [28, 27]
    working = _plans(pack, ctx, "b8-2-item-age-000002")  # 16 to 60
    assert [(p.verdict, p.brdy) for p in working] == [
        ("violating", date(1965, 3, 10)), ("compliant", date(1965, 3, 11)),
        ("violating", date(2009, 3, 11)), ("compliant", date(2009, 3, 10))]


def test_course_claims_end_on_day_n_and_n_plus_1(pack, ctx):
    drug = pack[(pack.rule_kind == "course_length") & (pack.max_days == 14)].iloc[0]
    plans = point_claims(drug, ctx)
    for plan, last in zip(plans[:2], (15, 14)):
        days = [(ln.time.date() - DAY0).days + 1 for ln in _lines(plan)]
        assert days[0] == 1 and days[-1] == last and max(b - a for a, b in zip(days, days[1:])) <= 7
        assert [ln.target for ln in _lines(plan)] == [False] * (len(days) - 1) + [plan.verdict == "violating"]
    # 手功能评定: 90 days, assessments at least 14 days apart
    hand = _plans(pack, ctx, "b8-3-item-course_length-000002")
    days = [(ln.time.date() - DAY0).days + 1 for ln in _lines(hand[0])]
    gaps = [b - a for a, b in zip(days, days[1:])]
    assert days[-1] == 91 and min(gaps) >= 14 and max(gaps) <= 14 + 7


def test_window_and_count_claims(pack, ctx):
    six = pack[(pack.rule_kind == "duplicate_charge") & (pack.window == "6h")].iloc[0]
    violating, compliant = point_claims(six, ctx)
    assert [ln.time - _lines(violating)[0].time for ln in _lines(violating)][1] == timedelta(hours=6)
    assert [ln.time - _lines(compliant)[0].time for ln in _lines(compliant)][1] == timedelta(hours=6, seconds=1)
    bed = _plans(pack, ctx, "b8-1-item-frequency-000007")  # 普通病房床位费: once a day
    assert [(p.verdict, sum(ln.cnt for ln in _lines(p))) for p in bed] == [
        ("violating", 4), ("violating", 4), ("compliant", 3), ("violating", 2), ("compliant", 1)]
    hba1c = _plans(pack, ctx, "b8-4-item-period_frequency-000003")  # once in 15 days
    assert [(p.verdict, (p.visits[1].begin - p.visits[0].begin).days) for p in hba1c][:2] == [
        ("violating", 14), ("compliant", 15)]


def test_surgery_claims_price_the_second_operation(pack, ctx):
    plans = _plans(pack, ctx, "b2-item-primary_secondary_surgery-000002")
    seconds = [(p.verdict, _lines(p)[1].pric, _lines(p)[1].time - _lines(p)[0].time) for p in plans]
    assert seconds == [("violating", Decimal("2000.00"), timedelta(hours=1)),
                       ("compliant", Decimal("1000.00"), timedelta(hours=1)),
                       ("violating", Decimal("2000.00"), timedelta(hours=6)),
                       ("compliant", Decimal("2000.00"), timedelta(hours=6, seconds=1))]


def test_raw_code_forms_are_restored_by_the_canonical_form(pack):
    item, drug = "001103000010000", "XB05BAU012B002010102180"
    assert cf.code_in_form(item, "raw", 0) == "1103000010000"
    raw = {cf.code_in_form(drug, "raw", salt) for salt in (0, 1)}
    assert raw == {drug.lower(), f" {drug} "}
    for code in (item, drug):
        for salt in (0, 1):
            assert canonical("list", cf.code_in_form(code, "raw", salt)).code == code


def test_fast_form_meets_every_expected_verdict():
    """The CI form: every batch sampled, both engines, both code forms (the raw forms rely on the ingest and
    the pre-check storing canonical codes), every verdict met."""
    report = run_conformance(sample=SAMPLE)
    assert {b.batch for b in report.batches} == {"1", "2", "3", "4", "5", "6", "7", "8-1", "8-2", "8-3", "8-4"}
    assert all(b.covered == b.points for b in report.batches) and not report.uncovered
    assert not report.failures and report.ok
    for engine in ("sql", "precheck"):
        assert {f: sum(b.claims[f] for b in report.batches) for f in ("canonical", "raw")} == {
            f: sum(b.met[engine][f] for b in report.batches) for f in ("canonical", "raw")}
    assert sum(b.claims["canonical"] for b in report.batches) > 400
    # levels qualified by an indication the pack does not encode (限三级综合医院眼科 …): listed, not hidden
    assert any(c.batch == "5" and "qualified by the note" in c.warning for c in report.caveats)


def test_a_short_look_back_misses_the_long_courses_and_says_so():
    """The pre-check looks back as far as the batch run (history_days): a 180-day look-back would miss the
    365-day courses of batch 8-3, and the suite names why."""
    assert run_conformance(batches=["8-3"], engines=("precheck",)).ok
    short = run_conformance(batches=["8-3"], engines=("precheck",), lookback_days=180)
    assert short.failures and all(f.reason.endswith("the pre-check looks back 180)") for f in short.failures)


def _broken_sql(tmp_path, rule_id: str, old: str, new: str):
    """The committed config with one rule's SQL broken on purpose (a copy with *old* replaced by *new*)."""
    config = load_config()
    text = (SQL_DIR / f"{rule_id}.sql").read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / f"{rule_id}.sql"
    broken.write_text(text.replace(old, new), encoding="utf-8")
    return replace(config, rules=tuple(replace(r, sql_path=broken) if r.id == rule_id else r for r in config.rules))


def test_the_suite_catches_an_off_by_one_age(tmp_path):
    """An age limit that lets the 18th birthday through: the violating claims at the boundary are missed."""
    config = _broken_sql(tmp_path, "liangku_age", "age_years >= age_max", "age_years > age_max")
    report = run_conformance(config=config, sample=SAMPLE, batches=["1"], engines=("sql",), forms=("canonical",))
    missed = {(f.rule_id, f.verdict, f.reason) for f in report.failures}
    assert ("liangku_age", "violating", "liangku_age did not fire") in missed
    assert {f.rule_id for f in report.failures} == {"liangku_age"}


def test_the_suite_catches_a_window_edge(tmp_path):
    """A 6-hour window that leaves out exactly six hours."""
    config = _broken_sql(tmp_path, "liangku_duplicate_charge", "<= 6 * 3600", "< 6 * 3600")
    report = run_conformance(config=config, sample=SAMPLE, batches=["7"], engines=("sql",), forms=("canonical",))
    assert report.failures and all(f.verdict == "violating" and "6 h" in f.boundary for f in report.failures)


class _VisitOnly:
    """A kernel's claim views with the person's history hidden: only the visit's own lines."""

    def __init__(self, claims):
        self._claims = claims

    def __getattr__(self, name):
        return getattr(self._claims, name)

    @property
    def lines(self):
        return self._claims.visit_lines


def test_the_suite_catches_a_broken_kernel(monkeypatch):
    """A course kernel that forgets the person's earlier visits: the last use is no longer day N+1."""
    course = KERNELS["liangku_course_length"]
    monkeypatch.setitem(KERNELS, "liangku_course_length", lambda params, claims: course(params, _VisitOnly(claims)))
    report = run_conformance(sample=5, batches=["6"], engines=("precheck",), forms=("canonical",))
    assert report.failures and {f.verdict for f in report.failures} == {"violating"}
    assert all(f.reason == "liangku_course_length did not fire" for f in report.failures)

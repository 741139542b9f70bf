"""The monitor (models/monitoring.py): its tests keep their error rate, it finds the simulator's evasion and
code-change scenarios, and a region without them raises no alarm.

The regions: the ``small`` preset cut to 6,000 persons (12 months), seed 7, once with
``scenarios-monitoring.yaml`` (an evader under the price cap and a code changer, both from July) and once
with the default scenarios, each ingested and run through the rules.
"""

from __future__ import annotations

import doctest
import importlib

import json

import numpy as np
import pytest

from models.monitoring import MonitorConfig, change_point, monitor, psi_critical
from training.simulator.config import DEFAULT_SCENARIOS

MONITORING_SCENARIOS = DEFAULT_SCENARIOS.with_name("scenarios-monitoring.yaml")


def _region(tmp_path_factory, name: str, scenarios) -> tuple:
    from features.config import load_settings
    from features.ingest import ingest
    from models.rules.config import DEFAULT_CONFIG, load_config
    from models.rules.engine import run_rules
    from training.simulator import simulate

    root = tmp_path_factory.mktemp(name)
    simulate("small", seed=7, out=root / "region", scenarios=scenarios, n_persons=6000)
    warehouse = root / "warehouse.duckdb"
    ingest(root / "region", load_settings(warehouse=warehouse))
    run_rules(warehouse, load_config(DEFAULT_CONFIG))
    truth = json.loads((root / "region" / "simulation.json").read_text(encoding="utf-8"))["scenario"]
    return warehouse, truth.get("monitoring") or {}


@pytest.fixture(scope="module")
def with_scenarios(tmp_path_factory):
    return _region(tmp_path_factory, "monitor_scenarios", MONITORING_SCENARIOS)


@pytest.fixture(scope="module")
def without_scenarios(tmp_path_factory):
    return _region(tmp_path_factory, "monitor_clean", None)


def test_change_point_keeps_its_false_alarm_rate():
    """On 2,000 series of a constant rate the Bonferroni-corrected p-value is under 0.05 for about 5 % of
    them at most (it is conservative: it corrects for every split tried)."""
    rng = np.random.default_rng(0)
    exposure = rng.integers(500, 3000, size=12)
    p = np.array([change_point(rng.poisson(0.01 * exposure), exposure)[1] for _ in range(2000)])
    assert (p < 0.05).mean() <= 0.05


def test_change_point_finds_a_rule_gone_silent():
    tau, p, before, after = change_point([12, 9, 11, 10, 13, 0, 0, 0], [1000] * 8)
    assert tau == 5 and p < 1e-6 and before == pytest.approx(0.011) and after == 0


def test_psi_critical_shrinks_with_the_samples():
    assert psi_critical(10, 10_000, 1_000, alpha=0.01) > psi_critical(10, 100_000, 10_000, alpha=0.01) > 0


@pytest.mark.slow
def test_monitor_finds_the_evasion_and_the_code_change(with_scenarios):
    warehouse, truth = with_scenarios
    report = monitor(warehouse)
    evader, changer = truth["evasion"]["fixmedins_code"][0], truth["code_change"]["fixmedins_code"][0]
    month = f"2025-{truth['evasion']['from_month']:02d}"
    evasion = [f for f in report.alarms if f.kind == "evasion"]
    assert [(f.fixmedins_code, f.month) for f in evasion] == [(evader, month)]
    assert "规避限价" in evasion[0].message_zh and evasion[0].after > evasion[0].before
    codes = [f for f in report.alarms if f.kind == "unknown_codes"]
    assert [(f.fixmedins_code, f.month) for f in codes] == [(changer, month)]
    assert "编码改写" in codes[0].message_zh
    # every other alarm is about the two institutions: the evader's over-cap hits stopping, at the
    # institution and in the region's rate
    rest = [f for f in report.alarms if f.kind not in ("evasion", "unknown_codes")]
    assert all(f.rule_id == "price_over_cap" and f.fixmedins_code in (evader, None) and f.month == month
               for f in rest), [f.message_zh for f in rest]


@pytest.mark.slow
def test_monitor_raises_no_alarm_on_a_region_without_the_scenarios(without_scenarios):
    warehouse, truth = without_scenarios
    assert truth == {}
    report = monitor(warehouse, config=MonitorConfig())
    assert [f.message_zh for f in report.alarms] == []
    assert report.tests["rule_institution"] > 100  # it did look



@pytest.mark.parametrize("module", ['models.monitoring', 'training.simulator.monitoring'])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0

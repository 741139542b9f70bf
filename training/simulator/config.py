"""Simulator presets and the scenario config, read once into frozen objects.

>>> PRESETS["tiny"].n_persons
2000
>>> sc = load_scenarios()
>>> sorted(sc.scenarios) == sorted(FRAUD_TYPES)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from features.contract import FRAUD_TYPES

__all__ = ["Preset", "PRESETS", "Scenario", "ScenarioConfig", "load_scenarios", "DEFAULT_SCENARIOS"]

DEFAULT_SCENARIOS = Path(__file__).with_name("scenarios.yaml")


@dataclass(frozen=True)
class Preset:
    """Size of a simulated pooling region (统筹区)."""

    name: str
    n_persons: int
    months: int = 12
    start: str = "2025-01-01"
    chunk_persons: int = 40_000
    persons_per_hospital: int = 3_000
    persons_per_clinic: int = 900
    persons_per_pharmacy: int = 1_500
    n_districts: int = 6


PRESETS: dict[str, Preset] = {
    "tiny": Preset("tiny", 2_000, persons_per_hospital=250, persons_per_clinic=150, persons_per_pharmacy=150,
                   n_districts=2),
    "small": Preset("small", 20_000, persons_per_hospital=1_000, persons_per_clinic=500,
                    persons_per_pharmacy=600, n_districts=3),
    "city": Preset("city", 300_000),
    "province": Preset("province", 3_000_000, n_districts=40),
}


@dataclass(frozen=True)
class Scenario:
    id: str
    rate: float
    min_cases: int = 1
    intensity: tuple[float, float] = (1.0, 1.0)
    share: tuple[float, float] = (0.0, 0.0)
    members: tuple[int, int] = (0, 0)
    gap_days: tuple[int, int] = (1, 14)
    unit: str = ""


@dataclass(frozen=True)
class ScenarioConfig:
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    clean_checked: int = 20

    def __getitem__(self, key: str) -> Scenario:
        return self.scenarios[key]


def load_scenarios(path: Path | None = None) -> ScenarioConfig:
    """Read a scenario file; every typology id must be present, nothing else."""
    path = Path(path or DEFAULT_SCENARIOS)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    entries = raw.get("scenarios") or {}
    unknown = set(entries) - set(FRAUD_TYPES)
    missing = set(FRAUD_TYPES) - set(entries)
    if unknown or missing:
        raise ValueError(f"{path}: unknown scenario ids {sorted(unknown)}, missing {sorted(missing)}")
    scenarios = {}
    for sid, e in entries.items():
        e = dict(e)
        for k in ("intensity", "share", "members", "gap_days"):
            if k in e:
                e[k] = tuple(e[k])
        scenarios[sid] = Scenario(id=sid, **e)
    return ScenarioConfig(scenarios=scenarios, clean_checked=int(raw.get("clean_checked", 20)))

"""Simulator presets and the scenario config, read once into frozen objects.

>>> PRESETS["tiny"].n_persons
2000
>>> sc = load_scenarios()
>>> sorted(sc.scenarios) == sorted(FRAUD_TYPES)
True
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import yaml

from features.contract import FRAUD_TYPES
from .monitoring import MonitoringScenarios

__all__ = ["Preset", "PRESETS", "Scenario", "Lookalikes", "ScenarioConfig", "load_scenarios", "DEFAULT_SCENARIOS",
           "REGION_KEYS", "randomised"]

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
class Lookalikes:
    """Honest care that resembles a violation (看似违规的合规诊疗), simulated by default.

    Each rate says how much of the eligible care does it; the ranges say how (days). Modelled on what
    honest care does — chemotherapy courses come back every few weeks, a fall at home is the fund's to
    pay, a family settles an in-hospital death days later — not on what a rule checks. See
    ``docs/simulator.md`` and ``training/simulator/lookalikes.py``.

    >>> Lookalikes().enabled, Lookalikes().chemotherapy_cycle_days
    (True, (14, 21, 28))
    """

    enabled: bool = True
    # 计划性再入院: chemotherapy courses (Z51.1) of cancer patients, cycles measured admission to admission
    chemotherapy_courses: float = 0.6          # share of cancer patients on a course during the period
    chemotherapy_cycles: tuple[int, int] = (4, 6)
    chemotherapy_cycle_days: tuple[int, ...] = (14, 21, 28)
    chemotherapy_stay_days: tuple[int, int] = (2, 5)
    # split-course radiotherapy (分段放疗, Z51.0): two segments with a planned break
    radiotherapy_courses: float = 0.2          # share of cancer patients
    radiotherapy_break_days: tuple[int, int] = (7, 14)
    # staged operations (分期手术): definitive fixation of a fracture after external fixation, coded as
    # orthopaedic follow-up care (Z47.8) with the fracture as a secondary diagnosis
    staged_operations: float = 0.3             # share of tibial-fracture admissions
    staged_gap_days: tuple[int, int] = (7, 20)
    # transfers (医嘱转院, dscg_way 2) to a higher-level hospital, admitted there the same or the next day
    transfers: float = 0.02                    # share of admissions at level 1-2 hospitals
    # injuries at home and at play (W/X external causes: falls, struck by objects, cuts), paid by the fund
    home_injuries: float = 0.04                # minor-injury visits per person and year
    # traffic and work injuries paid by the liable party or the work-injury fund: nothing from the fund
    liable_party_paid: float = 0.004           # such visits per person and year
    # deaths in hospital (院内死亡): the stay ends with the death, the family settles some days later
    in_hospital_deaths: float = 0.35           # share of deaths
    late_settlement_days: tuple[int, int] = (1, 10)
    # chronic refills (门诊慢特病): one refill a few days early; one move of the 慢病 registration
    early_refills: float = 0.3                 # share of chronic patients
    early_refill_days: tuple[int, int] = (3, 12)
    registration_moves: float = 0.05           # share of chronic patients
    registration_move_overlap_days: tuple[int, int] = (7, 21)
    # a chronic patient who fills some refills at a pharmacy instead (门诊慢病 双通道), a third of them
    pharmacy_refills: float = 0.15             # share of chronic patients


# Preset fields a scenario file may override in its ``region`` section: the region's institution mix.
REGION_KEYS = ("persons_per_hospital", "persons_per_clinic", "persons_per_pharmacy", "n_districts")


@dataclass(frozen=True)
class ScenarioConfig:
    scenarios: dict[str, Scenario] = field(default_factory=dict)
    clean_checked: int = 20
    lookalikes: Lookalikes = field(default_factory=Lookalikes)
    # The institution mix of the region, as multipliers of the preset's (``REGION_KEYS``: 1.5 = 50 % more
    # persons per hospital, i.e. fewer, busier hospitals).
    region: dict[str, float] = field(default_factory=dict)
    # behaviour that changes during the period, for the monitor (off unless a scenario file has the section)
    monitoring: MonitoringScenarios = field(default_factory=MonitoringScenarios)

    def __getitem__(self, key: str) -> Scenario:
        return self.scenarios[key]

    def applied_to(self, preset: Preset) -> Preset:
        """``preset`` with this config's institution mix."""
        if not self.region:
            return preset
        values = {k: max(1, int(round(getattr(preset, k) * m))) for k, m in self.region.items()}
        return replace(preset, **values)


def randomised(sc: ScenarioConfig, seed: int, *, spread: float = 0.5) -> ScenarioConfig:
    """Domain randomisation: ``sc`` with every fraud rate, the intensities, the look-alike rates and the
    institution mix drawn around their values (log-normal, ``spread`` the sd of the log; shares and
    probabilities kept below 1), so that a model trained on several such regions learns what is
    common to them, not one region's numbers. The same seed gives the same config.

    >>> a, b = randomised(load_scenarios(), 1), randomised(load_scenarios(), 1)
    >>> a == b, a["card_theft"].rate != load_scenarios()["card_theft"].rate
    (True, True)
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 77]))

    def scale(x: float, sd: float = spread, cap: float | None = None) -> float:
        y = float(x) * float(np.exp(rng.normal(0.0, sd)))
        return min(y, cap) if cap is not None else y

    scenarios = {}
    for sid in sorted(sc.scenarios):
        s = sc.scenarios[sid]
        f = float(np.exp(rng.normal(0.0, spread / 2)))
        intensity = s.intensity if s.intensity == (1.0, 1.0) else (round(s.intensity[0] * f, 3),
                                                                    round(s.intensity[1] * f, 3))
        if sid in ("over_examination", "over_prescription"):  # stays a multiple of the need above 1
            intensity = (max(1.2, intensity[0]), max(1.3, intensity[1]))
        share = tuple(min(0.95, round(v * f, 3)) for v in s.share) if s.share != (0.0, 0.0) else s.share
        scenarios[sid] = replace(s, rate=round(scale(s.rate, cap=0.9), 6), intensity=intensity, share=share)
    la = sc.lookalikes
    rates = {f.name: round(scale(getattr(la, f.name), cap=0.95), 4) for f in fields(Lookalikes)
             if isinstance(getattr(la, f.name), float)}
    region = {k: round(scale(sc.region.get(k, 1.0), spread / 2), 3) for k in REGION_KEYS if k != "n_districts"}
    return ScenarioConfig(scenarios=scenarios, clean_checked=sc.clean_checked, lookalikes=replace(la, **rates),
                          region=region, monitoring=sc.monitoring)


def load_scenarios(path: Path | None = None) -> ScenarioConfig:
    """Read a scenario file; every typology id must be present, nothing else.

    ``base: other.yaml`` (beside the file) reads that one first; the file's own top-level sections
    replace the base's (a variant names only what it changes)."""
    path = Path(path or DEFAULT_SCENARIOS)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if raw.get("base"):
        base = yaml.safe_load((path.parent / raw["base"]).read_text(encoding="utf-8"))
        raw = {**base, **{k: v for k, v in raw.items() if k != "base"}}
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
    region = raw.get("region") or {}
    if set(region) - set(REGION_KEYS) or not all(isinstance(v, (int, float)) and v > 0 for v in region.values()):
        raise ValueError(f"{path}: region: multipliers (> 0) of {', '.join(REGION_KEYS)}, not {region!r}")
    return ScenarioConfig(scenarios=scenarios, clean_checked=int(raw.get("clean_checked", 20)),
                          lookalikes=_lookalikes(raw.get("lookalikes") or {}, path),
                          region={k: float(v) for k, v in region.items()},
                          monitoring=MonitoringScenarios.from_dict(raw.get("monitoring"), f"{path}: monitoring"))


def _lookalikes(entries: dict, path: Path) -> Lookalikes:
    """The ``lookalikes`` section of a scenario file (absent keys keep their defaults)."""
    known = {f.name: f for f in fields(Lookalikes)}
    unknown = set(entries) - set(known)
    if unknown:
        raise ValueError(f"{path}: unknown lookalikes keys {sorted(unknown)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in entries.items()}
    return Lookalikes(**values)

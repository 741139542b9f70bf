"""Scenarios for the monitor (监测场景): behaviour that changes during the period, off by default.

Two things the rules and models do not see and the monitor (``models/monitoring.py``) must:

* **evasion** (规避限价): an institution that billed over the price cap learns the cap, and from a given
  month keeps its inflated prices *just under* it (``below``: a share of the cap drawn per line). Its
  over-cap hits stop; its mass of lines just under the cap appears. The lines under the cap break no
  rule and carry no label: catching them is the monitor's bunching test, not a rule's job.
* **code change** (编码改写): from a given month an institution writes the 两库 service items it bills
  in a local code of its own (``J`` and seven digits), a form neither the catalogue nor the 两库 pack
  knows and the ingest cannot bring back. The rules keyed on those items go silent at that institution;
  the violations it still commits keep their labels.

Switched on by a ``monitoring`` section in a scenario file (``scenarios-monitoring.yaml``). Each draws
from its own random stream, so a region without the section is byte for byte what it was.

>>> MonitoringScenarios.from_dict({}).enabled
False
>>> m = MonitoringScenarios.from_dict({"evasion": {"from_month": 7}, "code_change": {"from_month": 8}})
>>> m.evasion.from_month, m.evasion.below, m.code_change.institutions
(7, (0.97, 0.995), 1)
>>> local_code("001204000010000", "H22010200001")
'J4806023'
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd

__all__ = ["EvasionScenario", "CodeChangeScenario", "MonitoringScenarios", "assign_monitoring", "evade_price_caps",
           "apply_code_change", "local_code", "month_of"]


@dataclass(frozen=True)
class EvasionScenario:
    institutions: int = 1
    from_month: int = 7  # 1-based month of the period from which the institution keeps under the cap
    below: tuple[float, float] = (0.97, 0.995)  # price as a share of the cap


@dataclass(frozen=True)
class CodeChangeScenario:
    institutions: int = 1
    from_month: int = 7


@dataclass(frozen=True)
class MonitoringScenarios:
    evasion: EvasionScenario | None = None
    code_change: CodeChangeScenario | None = None

    @property
    def enabled(self) -> bool:
        return self.evasion is not None or self.code_change is not None

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str = "monitoring") -> "MonitoringScenarios":
        raw = dict(raw or {})
        unknown = set(raw) - {"evasion", "code_change"}
        if unknown:
            raise ValueError(f"{where}: unknown scenarios {sorted(unknown)}; known: evasion, code_change")
        out = {}
        for name, kind in (("evasion", EvasionScenario), ("code_change", CodeChangeScenario)):
            if raw.get(name) is None:
                continue
            entry = dict(raw[name])
            allowed = set(kind.__dataclass_fields__)
            if set(entry) - allowed:
                raise ValueError(f"{where}.{name}: unknown keys {sorted(set(entry) - allowed)}")
            if "below" in entry:
                lo, hi = (float(x) for x in entry["below"])
                if not 0 < lo < hi < 1:
                    raise ValueError(f"{where}.{name}.below: two shares of the cap, 0 < lo < hi < 1")
                entry["below"] = (lo, hi)
            if int(entry.get("from_month", 1)) < 2:
                raise ValueError(f"{where}.{name}.from_month: 2 or later (a month before it to compare with)")
            out[name] = kind(**entry)
        return cls(**out)


def assign_monitoring(inst: pd.DataFrame, ms: MonitoringScenarios, price_scenario, rng: np.random.Generator) -> None:
    """Choose the institutions (columns ``evade_from`` and ``code_change_from``: a 1-based month, 0 never).

    The evader is a price-over-cap offender below grade 3 (its honest prices are under the cap, so
    prices just under it are still inflated); if there is none, a grade-1/2 hospital or clinic becomes
    one (intensity and share drawn from ``price_scenario``). The code changer is another hospital.
    """
    inst["evade_from"] = 0
    inst["code_change_from"] = 0
    kind, level = inst["kind"].to_numpy(), inst["level"].to_numpy()
    medical = (kind != 2) & (level < 3)
    taken: set[int] = set()
    if ms.evasion is not None:
        offenders = np.flatnonzero(medical & (inst["price_over_cap"].to_numpy() > 0))
        k = ms.evasion.institutions
        chosen = list(rng.choice(offenders, min(k, len(offenders)), replace=False)) if len(offenders) else []
        if len(chosen) < k:
            rest = np.setdiff1d(np.flatnonzero(medical), chosen)
            extra = rng.choice(rest, k - len(chosen), replace=False)
            lo, hi = price_scenario.intensity
            inst.loc[extra, "price_over_cap"] = rng.uniform(lo, hi, len(extra))
            lo, hi = price_scenario.share
            inst.loc[extra, "price_share"] = rng.uniform(max(lo, 0.1), max(hi, 0.2), len(extra))
            chosen += list(extra)
        inst.loc[chosen, "evade_from"] = ms.evasion.from_month
        taken |= {int(i) for i in chosen}
    if ms.code_change is not None:
        hospitals = np.setdiff1d(np.flatnonzero(kind == 0), sorted(taken))
        chosen = rng.choice(hospitals, min(ms.code_change.institutions, len(hospitals)), replace=False)
        inst.loc[chosen, "code_change_from"] = ms.code_change.from_month


def month_of(start: np.datetime64, seconds: np.ndarray) -> np.ndarray:
    """1-based month of the period of moments given in seconds since ``start``."""
    t = start.astype("datetime64[s]") + seconds.astype("timedelta64[s]")
    return (t.astype("datetime64[M]") - start.astype("datetime64[M]")).astype(int) + 1


def evade_price_caps(world, ms: MonitoringScenarios, enc: dict, lines: dict, cap: np.ndarray, over: np.ndarray,
                     seed: int) -> tuple[np.ndarray, np.ndarray]:
    """New ``(price, tag)`` of the lines: from its month on, an evader's would-be over-cap lines are priced
    just under the cap and carry no label."""
    price, tag = lines["price"], lines["tag"]
    if ms.evasion is None or "evade_from" not in world.inst:
        return price, tag
    evade_from = world.inst["evade_from"].to_numpy()[enc["inst"]][lines["enc"]]
    late = (evade_from > 0) & over & (month_of(world.start, lines["sec"]) >= evade_from)
    if not late.any():
        return price, tag
    rng = np.random.default_rng(np.random.SeedSequence([world.seed, 31, seed]))
    lo, hi = ms.evasion.below
    share = rng.uniform(lo, hi, int(late.sum()))
    price, tag = price.copy(), tag.copy()
    price[late] = np.floor(cap[late] * share * 100) / 100
    tag[late] = -1
    return price, tag


def apply_code_change(tables: dict[str, pd.DataFrame], world, pack_codes: frozenset[str]) -> dict[str, pd.DataFrame]:
    """The chunk's fee lines with, from each code changer's month on, its 两库 service items in local codes."""
    inst = world.inst
    if "code_change_from" not in inst or not (inst["code_change_from"] > 0).any():
        return tables
    fee = tables["fee_list_d"]
    months = dict(zip(inst["fixmedins_code"], inst["code_change_from"]))
    from_month = fee["fixmedins_code"].map(months).fillna(0).to_numpy()
    when = pd.to_datetime(fee["fee_ocur_time"]).to_numpy().astype("datetime64[M]")
    month = (when - world.start.astype("datetime64[M]")).astype(int) + 1
    hit = (from_month > 0) & (month >= from_month) & fee["hilist_code"].isin(pack_codes).to_numpy() \
        & (fee["list_type"].to_numpy() == "201")
    if not hit.any():
        return tables
    fee = fee.copy()
    codes = fee["hilist_code"].to_numpy(dtype=object).copy()
    owners = fee["fixmedins_code"].to_numpy(dtype=object)
    for i in np.flatnonzero(hit):
        codes[i] = local_code(codes[i], owners[i])
    fee["hilist_code"] = codes
    fee["med_list_codg"] = codes
    return {**tables, "fee_list_d": fee}


def local_code(code: str, fixmedins_code: str) -> str:
    """An institution's own code for a catalogue item: ``J`` and seven digits, stable per (institution, item)."""
    digest = hashlib.sha256(f"{fixmedins_code}|{code}".encode()).hexdigest()
    return "J" + str(int(digest[:12], 16) % 10_000_000).zfill(7)

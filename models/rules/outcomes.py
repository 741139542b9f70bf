"""查实率: how often the clues a rule raised were confirmed, from the outcomes investigators recorded.

A clue carries the rules whose hits it holds (``rule_hits`` of the clue store); once an investigator
decides it (``outcome``: confirmed 查实 or dismissed 排除) each of those rules counts one decided clue and,
if confirmed, one confirmation. :func:`confirmation_rates` gives per rule the count, the rate and its
95 % Wilson interval, and flags a rule **for review** (建议复核) when the interval's upper end lies below
the confirmation rate of all decided clues: its clues are dismissed more often than the others', beyond
what chance explains at that many decisions — a statistical flag, no hand-set rate.

>>> rates = confirmation_rates([(["a", "b"], True)] + [(["a"], True)] * 10 + [(["b"], False)] * 10)
>>> rates["a"].confirmed, rates["a"].decided, round(rates["b"].rate, 3), round(rates["b"].overall, 3)
(11, 11, 0.091, 0.524)
>>> rates["b"].review, rates["a"].review, round(rates["b"].high, 3)
(True, False, 0.377)
>>> rates["b"].text_zh
'1/11 = 9% [2–38%] 建议复核'
>>> wilson(0, 0), wilson(0, 3)[0], wilson(3, 3)[1]
((0.0, 1.0), 0.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

__all__ = ["RuleOutcome", "confirmation_rates", "outcome_rates", "wilson", "OUTCOME_VIEWS"]

# The views of the rates: what a decided clue counts under (its rules, its typologies, its model level).
OUTCOME_VIEWS = {"rule": "规则", "typology": "违规类型", "level": "模型层级"}

Z95 = 1.959963984540054


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: str
    decided: int  # decided clues holding a hit of the rule
    confirmed: int
    rate: float | None
    low: float  # 95 % Wilson interval of the rate
    high: float
    overall: float | None  # the confirmation rate of all decided clues
    review: bool  # the interval lies below ``overall``

    @property
    def text_zh(self) -> str:
        if not self.decided:
            return "无已结论线索"
        flag = " 建议复核" if self.review else ""
        return (f"{self.confirmed}/{self.decided} = {100 * self.rate:.0f}% "
                f"[{100 * self.low:.0f}–{100 * self.high:.0f}%]{flag}")

    def to_dict(self) -> dict:
        return asdict(self) | {"text_zh": self.text_zh}


def confirmation_rates(decided: Iterable[tuple[Iterable[str], bool]], *, z: float = Z95) -> dict[str, RuleOutcome]:
    """Per rule id, its :class:`RuleOutcome`, from ``(rule ids of a decided clue, confirmed?)`` pairs."""
    counts: dict[str, list[int]] = {}
    n_all = k_all = 0
    for rule_ids, confirmed in decided:
        n_all += 1
        k_all += bool(confirmed)
        for rule_id in set(rule_ids):
            c = counts.setdefault(rule_id, [0, 0])
            c[0] += 1
            c[1] += bool(confirmed)
    overall = k_all / n_all if n_all else None
    out = {}
    for rule_id, (n, k) in sorted(counts.items()):
        low, high = wilson(k, n, z=z)
        out[rule_id] = RuleOutcome(rule_id, n, k, k / n, low, high, overall,
                                   overall is not None and high < overall)
    return out


def outcome_rates(decided: Iterable[dict]) -> dict[str, dict[str, RuleOutcome]]:
    """查实率 per rule, per typology and per model level (the clue's entity type: psn, prac, fixmedins,
    pharmacy, ring), from the clue store's decided clues (``ClueStore.decided_clues``): each view as
    :func:`confirmation_rates` gives it, keyed by :data:`OUTCOME_VIEWS`.

    >>> d = [{"rule_ids": ["a"], "typologies": ["bed_hold"], "entity_type": "psn", "confirmed": True},
    ...      {"rule_ids": ["a"], "typologies": ["bed_hold", "card_theft"], "entity_type": "ring", "confirmed": False}]
    >>> r = outcome_rates(d)
    >>> r["rule"]["a"].text_zh, r["typology"]["card_theft"].decided, r["level"]["ring"].confirmed
    ('1/2 = 50% [9–91%]', 1, 0)
    """
    decided = list(decided)
    keys = {"rule": lambda d: d["rule_ids"], "typology": lambda d: d["typologies"],
            "level": lambda d: [d["entity_type"]]}
    return {view: confirmation_rates((key(d), d["confirmed"]) for d in decided) for view, key in keys.items()}


def wilson(k: int, n: int, *, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``k`` successes in ``n`` trials ((0, 1) when ``n`` is 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # the bounds at 0 and n are 0 and 1 exactly; computed they come out a rounding error off (5.6e-17)
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high

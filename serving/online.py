"""The pre-check's model score for a visit the warehouse has not seen (新就诊的实时评分).

:class:`OnlineSettlementFeatures` is loaded once per worker, beside the rule checker: the peer-group
statistics the last batch feature build wrote, the institution register, the catalogue and the
settlement times per institution (:func:`features.online.load_context`). Per visit it reads the
person's rows from the checker's own person-history index (no second store) and computes the visit's
``feat_setl`` row (:func:`features.online.settlement_features`), with the visit's pre-check hits as its
rule-hit columns. The service then scores that row with the settlement model, as it scores a recorded
settlement.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from features.online import FeatureContext, OnlineRow, PersonHistory, load_context, settlement_features

__all__ = ["OnlineSettlementFeatures"]


class OnlineSettlementFeatures:
    """Online ``feat_setl`` rows for single visits (see the module docstring).

    ``checker`` is the service's :class:`models.rules.precheck.Prechecker`; its person-history index
    is read, never copied. ``columns``: the model's feature columns, in order.
    """

    def __init__(self, warehouse: Path, checker, columns: list[str]):
        t0 = time.perf_counter()
        index = getattr(checker, "history", None)
        if index is None:
            raise ValueError("the rule checker keeps no person-history index (engine='sql'): no online features")
        self.context: FeatureContext = load_context(warehouse)
        self.index, self.columns = index, list(columns)
        self.as_of = None if self.context.peers.as_of is None else str(self.context.peers.as_of)
        self.setup_seconds = round(time.perf_counter() - t0, 2)

    def row(self, visit, hits: Iterable[Any]) -> OnlineRow:
        """The visit's online feature row (``hits``: its pre-check hits)."""
        history = PersonHistory.from_index(self.index, visit.setl.psn_no)
        row = settlement_features(visit, history, context=self.context, hits=hits)
        # the batch counts every rule's hits, found with hindsight too (a stay settled later); here only
        # the real-time rules over the past have run
        row.approximated["rh_*"] = ("仅含实时规则对既往记录的命中 (real-time rules over the history only; "
                                    "batch-only rules and hits found later are not in)")
        return row

    def frame(self, row: OnlineRow) -> pd.DataFrame:
        """The model's columns of ``row`` as a one-row frame (a NULL feature as NaN, as in ``feat_setl``)."""
        values = [row.values.get(c) for c in self.columns]
        data = np.array([[np.nan if x is None else float(x) for x in values]], dtype=float)
        return pd.DataFrame(data, columns=self.columns)

    def approximated(self, row: OnlineRow) -> list[dict[str, str]]:
        """The model's features (of ``row``) that are estimates, each with why; ``rh_*`` stands for the
        rule-hit columns."""
        used = set(self.columns)
        return [{"feature": name, "why_zh": why} for name, why in row.approximated.items()
                if name in used or (name == "rh_*" and any(c.startswith("rh_") for c in used))]

"""What the service computes per request: the pre-check of one visit (事前提醒 / 事中审核) and batch scoring.

:func:`precheck_visit` runs the rule pre-check (:class:`models.rules.precheck.Prechecker`) on a visit and,
when the bundle has a settlement model, its P(fraud) and the top reasons in Chinese. The settlement's
features (``feat_setl``) come from the batch build when the warehouse has the settlement and the posted
lines agree with the recorded ones (事中审核 of a settlement under review: ``features_source:
"feat_setl"``); otherwise — a visit nobody has seen yet, or one whose lines changed — they are computed
online for that one visit (:class:`serving.online.OnlineSettlementFeatures`: the person's history, the
visit, the peer-group snapshot the last build wrote; ``features_source: "online"``), and the answer names
each feature of the model that is an estimate (``approximated_features``, with why). Without the online
features (a checker without its history index) such a visit gets ``model_score_available: false``.

:func:`score_settlements` scores a batch of settlements given by id (looked up in ``feat_setl``) or as
feature rows (the columns of ``feat_setl``).

>>> decide("pre", [], None)
('pass', '通过')
>>> decide("during", [{"severity": "high"}], 0.1)
('review', '暂停结算, 转人工审核')
>>> risk_level(0.75), risk_level(0.1), risk_level(None)
('high', 'low', None)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from features.contract import FRAUD_TYPES, TABLES
from models.bundle import ScorerBundle
from models.ranking import RISK_CUTS, risk_level  # noqa: F401  (RISK_CUTS re-exported)
from models.rules.precheck import Prechecker, Visit, VisitError
from serving.clues.access import mask_id
from serving.online import OnlineSettlementFeatures

__all__ = [
    "MODES",
    "DECISIONS",
    "RISK_CUTS",
    "SettlementFeatures",
    "precheck_visit",
    "score_settlements",
    "decide",
    "risk_level",
    "visit_from_warehouse",
    "visit_error_problem",
    "masked",
]

# 事前提醒: before the doctor orders or the pharmacist dispenses, a reminder; 事中审核: while the
# settlement is processed, a hold for manual review when the risk is high.
MODES: dict[str, str] = {"pre": "事前提醒", "during": "事中审核"}
DECISIONS: dict[str, str] = {"pass": "通过", "remind": "提醒", "review": "暂停结算, 转人工审核"}
RISK_ZH = {"high": "高", "medium": "中", "low": "低"}
# Settlements of the last this many days are kept in memory for the pre-check's model score; older
# ones are read from the warehouse on demand (batch scoring).
HOT_DAYS = 92


class SettlementFeatures:
    """The settlement features (``feat_setl``) a bundle's ``setl`` model reads, for lookups by ``setl_id``.

    The settlements of the last ``hot_days`` (before the newest one) are copied into memory at start-up
    as one float32 matrix: a pre-check looks its settlement up in microseconds. Older settlements are
    read from the warehouse, read-only, when asked for (a batch pays that once). The warehouse file is
    not held open between calls, so ingest and the batch jobs can write it while the service runs; the
    copy is a snapshot as of start-up (``as_of``).
    """

    def __init__(self, warehouse: Path, columns: list[str], *, hot_days: int = HOT_DAYS) -> None:
        self.warehouse, self.columns, self.hot_days = Path(warehouse), list(columns), hot_days
        t0 = time.perf_counter()
        with duckdb.connect(str(self.warehouse), read_only=True) as con:
            have = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() "
                                              "WHERE table_name = 'feat_setl'").fetchall()}
            if not have:
                raise FileNotFoundError(f"{warehouse}: no feat_setl table; run `yibao features build` first")
            missing = [c for c in self.columns if c not in have]
            if missing:
                raise ValueError(f"feat_setl lacks the model's feature columns {missing[:8]}: rebuild the "
                                 "features or retrain")
            newest = con.execute("SELECT max(setl_time) FROM feat_setl").fetchone()[0]
            frame = con.execute(
                f"SELECT setl_id, medfee_amt AS _medfee_amt, n_lines AS _n_lines, {self._select()} FROM feat_setl "
                "WHERE setl_time >= $newest - to_days($days)", {"newest": newest, "days": hot_days}).df()
        self.as_of = None if newest is None else str(newest)
        self._index = {s: i for i, s in enumerate(frame["setl_id"])}
        self._check = frame[["_medfee_amt", "_n_lines"]].to_numpy(dtype=float)
        self._matrix = frame[self.columns].to_numpy(dtype=np.float32)
        self.hot_rows = len(frame)
        self.setup_seconds = round(time.perf_counter() - t0, 2)

    def hot(self, setl_id: str) -> tuple[pd.DataFrame, float, int] | None:
        """The in-memory feature row of ``setl_id`` with its recorded amount and line count, or None."""
        i = self._index.get(setl_id)
        if i is None:
            return None
        row = pd.DataFrame(self._matrix[i:i + 1].astype(float), columns=self.columns)
        return row, float(self._check[i, 0]), int(self._check[i, 1])

    def rows(self, setl_ids: list[str]) -> pd.DataFrame:
        """Feature rows of ``setl_ids`` (index ``setl_id``; settlements not in ``feat_setl`` are left out)."""
        found = {s: self._index[s] for s in setl_ids if s in self._index}
        parts = [pd.DataFrame(self._matrix[list(found.values())].astype(float), columns=self.columns,
                              index=pd.Index(list(found), name="setl_id"))]
        cold = [s for s in dict.fromkeys(setl_ids) if s not in found]
        if cold:
            with duckdb.connect(str(self.warehouse), read_only=True) as con:
                parts.append(con.execute(f"SELECT setl_id, {self._select()} FROM feat_setl "
                                         "WHERE setl_id IN (SELECT unnest($ids))", {"ids": cold})
                             .df().set_index("setl_id"))
        return pd.concat([p for p in parts if len(p)] or parts[:1])

    def _select(self) -> str:
        return ", ".join(f'"{c}"' for c in self.columns)


def precheck_visit(visit: Mapping[str, Any], *, checker: Prechecker, bundle: ScorerBundle | None,
                   features: SettlementFeatures | None, mode: str = "pre", n_reasons: int = 3,
                   model_note: str | None = None, online: OnlineSettlementFeatures | None = None) -> dict:
    """Rule hits, risk score and top reasons of one visit (see the module docstring).

    ``visit`` is ``{"setl": {...}, "lines": [...], "diagnoses": [...], "mdtrt": {...}}`` in contract field
    names; raises :class:`models.rules.precheck.VisitError` naming the bad field. ``model_note`` says why
    there is no model when ``bundle`` or ``features`` is None. Every string of the answer has resident
    IDs masked.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(f'{k} ({v})' for k, v in MODES.items())}, not {mode!r}")
    t0 = time.perf_counter()
    v = checker.visit(visit)
    found = checker.check(v)
    hits = [_hit(h) for h in found]
    p, reasons, note, source, approx = _model_score(v, found, bundle, features, online, n_reasons, model_note)
    decision, decision_zh = decide(mode, hits, p)
    rule_level = next((lv for lv in ("high", "medium", "low") if any(h["severity"] == lv for h in hits)), None)
    level = _max_level(rule_level, risk_level(p))
    reasons_zh = [h["message_zh"] for h in hits][:n_reasons]
    reasons_zh += [r["text_zh"] for r in reasons][:max(0, n_reasons - len(reasons_zh))]
    return masked({
        "setl_id": v.setl.setl_id, "psn_no": v.setl.psn_no, "fixmedins_code": v.setl.fixmedins_code,
        "mode": mode, "mode_zh": MODES[mode], "decision": decision, "decision_zh": decision_zh,
        "risk_level": level, "risk_level_zh": RISK_ZH.get(level), "reasons_zh": reasons_zh,
        "rule_hits": hits, "n_rule_hits": len(hits),
        "amount_at_risk": round(sum(h["amount_at_risk"] or 0.0 for h in hits), 2),
        "model_score_available": p is not None, "p_fraud": p, "model_reasons": reasons, "model_note": note,
        "features_source": source, "approximated_features": approx,
        "rules_checked": len(checker.rules), "pack_version": checker.pack_version,
        "milliseconds": round((time.perf_counter() - t0) * 1000, 2),
    })


def score_settlements(items: list[Mapping[str, Any]], *, bundle: ScorerBundle,
                      features: SettlementFeatures | None) -> list[dict]:
    """P(fraud) of each item: ``{"setl_id": ...}`` (features from ``feat_setl``) or ``{"features": {...}}``.

    One answer per item, in order: ``{setl_id, p_fraud, risk_level, risk_level_zh, source}`` or
    ``{setl_id, p_fraud: None, error}`` for an item that cannot be scored (unknown settlement, missing
    feature columns), so that one bad item does not fail the others of a batch.
    """
    out: list[dict | None] = [None] * len(items)
    rows, where, ids_wanted = [], [], []
    for i, item in enumerate(items):
        item = dict(item or {})
        feats, sid = item.get("features"), item.get("setl_id")
        if feats is not None:
            if not isinstance(feats, Mapping):
                out[i] = _score_error(sid, "features must be an object of feature columns")
                continue
            missing = [c for c in bundle.features["setl"] if c not in feats]
            if missing:
                out[i] = _score_error(sid, f"缺少特征列 (missing feature columns) {missing[:8]}"
                                           f"{' …' if len(missing) > 8 else ''}")
                continue
            try:
                rows.append([_number(feats[c]) for c in bundle.features["setl"]])
            except (TypeError, ValueError) as e:
                out[i] = _score_error(sid, f"特征值须为数值 (feature values must be numbers): {e}")
                continue
            where.append((i, None if sid is None else str(sid), "features"))
        elif sid is not None:
            ids_wanted.append((i, str(sid)))
        else:
            out[i] = _score_error(None, "each item needs setl_id or features")
    if ids_wanted:
        if features is None:
            for i, sid in ids_wanted:
                out[i] = _score_error(sid, "未载入结算特征 (settlement features not loaded): send feature rows")
        else:
            known = features.rows([sid for _, sid in ids_wanted])
            for i, sid in ids_wanted:
                if sid in known.index:
                    rows.append(known.loc[sid].to_numpy(dtype=float).tolist())
                    where.append((i, sid, "feat_setl"))
                else:
                    out[i] = _score_error(sid, f"结算不在特征表中 (settlement {sid} not in feat_setl)")
    if rows:
        frame = pd.DataFrame(rows, columns=bundle.features["setl"])
        p = bundle.score("setl", frame)
        for (i, sid, source), pi in zip(where, p):
            level = risk_level(float(pi))
            out[i] = {"setl_id": sid, "p_fraud": round(float(pi), 6), "risk_level": level,
                      "risk_level_zh": RISK_ZH[level], "source": source}
    return [masked(o) for o in out]


def decide(mode: str, hits: list[dict], p: float | None) -> tuple[str, str]:
    """What the hospital system should do: pass, remind the doctor (事前), or hold for review (事中)."""
    level = risk_level(p)
    if mode == "during" and (any(h.get("severity") == "high" for h in hits) or level == "high"):
        return "review", DECISIONS["review"]
    if hits or level in ("high", "medium"):
        return "remind", DECISIONS["remind"]
    return "pass", DECISIONS["pass"]


def visit_from_warehouse(con: duckdb.DuckDBPyConnection, setl_id: str) -> dict:
    """The visit of settlement ``setl_id`` as the pre-check takes it, read from a warehouse connection.

    For tests, the benchmark and re-checking a recorded settlement; raises ``KeyError`` when unknown.
    """
    parts: dict[str, Any] = {}
    for part, table in (("setl", "setl_d"), ("mdtrt", "mdtrt_d"), ("lines", "fee_list_d"),
                        ("diagnoses", "setl_list_diag_d")):
        cols = [f.name for f in TABLES[table].fields if f.coarse is None]  # the warehouse keeps no birth date
        key = ("mdtrt_id = (SELECT mdtrt_id FROM setl_d WHERE setl_id = $s)" if table == "mdtrt_d"
               else "setl_id = $s")
        cur = con.execute(f"SELECT {', '.join(cols)} FROM {table} WHERE {key}", {"s": setl_id})
        rows = [{c: _jsonable(v) for c, v in zip(cols, r) if v is not None} for r in cur.fetchall()]
        if part in ("lines", "diagnoses"):
            parts[part] = rows
        elif rows:
            parts[part] = rows[0]
        elif part == "setl":
            raise KeyError(f"no settlement {setl_id} in the warehouse")
    return parts


def visit_error_problem(error: VisitError) -> tuple[str, str, str]:
    """``(field, problem, message)`` of a visit the pre-check cannot read, without the value it was given.

    >>> visit_error_problem(VisitError("visit.lines[2].pric: 应为金额 (an amount), not '王涛-secret'"))
    ('lines[2].pric', 'invalid_visit', '应为金额 (an amount)')
    """
    where, _, what = mask_id(str(error)).partition(": ")
    what = re.sub(r"'[^']*'", "…", re.sub(r",? not .*$", "", what, flags=re.S))
    return where.removeprefix("visit.") or "(body)", "invalid_visit", what.strip() or "取值无效"


def masked(value: Any) -> Any:
    """``value`` with resident IDs masked in every string (keys included)."""
    if isinstance(value, str):
        return mask_id(value)
    if isinstance(value, Mapping):
        return {mask_id(str(k)): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- private ------------------------------------------------------------------------------------------

def _hit(h) -> dict:
    d = h.to_dict()
    keep = ("rule_id", "typology_id", "severity", "message_zh", "basis_zh", "amount_at_risk", "entity_type",
            "entity_id", "evidence", "detail")
    out = {k: d[k] for k in keep}
    out["typology_zh"] = FRAUD_TYPES.get(h.typology_id, ("",))[0]
    out["severity_zh"] = RISK_ZH.get(h.severity, h.severity)
    return out


def _model_score(v: Visit, found: list, bundle: ScorerBundle | None, features: SettlementFeatures | None,
                 online: OnlineSettlementFeatures | None, n: int, note: str | None
                 ) -> tuple[float | None, list[dict], str, str | None, list[dict]]:
    """``(p_fraud, reasons, note, features_source, approximated_features)`` of the visit."""
    if bundle is None or "setl" not in bundle.scorers:
        return None, [], note or "未载入结算模型 (no settlement model loaded): 仅规则 (rules only)", None, []
    hot = features.hot(v.setl.setl_id) if features is not None else None
    why_online = "该结算不在已载入的结算特征中 (not among the settlement feature rows loaded)"
    if hot is not None:
        row, amount, n_lines = hot
        posted = float(sum(ln.det_item_fee_sumamt for ln in v.lines))
        if len(v.lines) == n_lines and abs(posted - amount) <= 0.01:  # NaN never agrees
            p, reasons = bundle.score_and_explain("setl", row, n=n)
            return (round(float(p[0]), 6), [r.to_dict() for r in reasons[0]],
                    f"结算模型, 特征截至 {features.as_of} (settlement model, features as of {features.as_of})",
                    "feat_setl", [])
        why_online = (f"提交的明细与已记录的结算不一致 ({len(v.lines)} 条 {posted:.2f} 元 vs 记录 {n_lines} 条 "
                      f"{amount:.2f} 元) (posted lines differ from the recorded settlement)")
    if online is None:
        return None, [], (note or f"{why_online}; 未载入实时特征 (no online features): 仅规则 (rules only)"), None, []
    row = online.row(v, found)
    p, reasons = bundle.score_and_explain("setl", online.frame(row), n=n)
    return (round(float(p[0]), 6), [r.to_dict() for r in reasons[0]],
            f"{why_online}; 结算模型, 实时特征 (同组统计截至 {online.as_of}) (settlement model, features computed "
            f"online; peer statistics as of {online.as_of})", "online", online.approximated(row))


def _max_level(*levels: str | None) -> str | None:
    order = {"high": 3, "medium": 2, "low": 1}
    present = [lv for lv in levels if lv]
    return max(present, key=order.__getitem__) if present else None


def _score_error(sid, message: str) -> dict:
    return {"setl_id": None if sid is None else str(sid), "p_fraud": None, "error": message}


def _number(x) -> float:
    if x is None:
        return float("nan")
    if isinstance(x, bool):
        raise ValueError(f"{x!r}")
    return float(x)


def _jsonable(v: Any) -> Any:
    if isinstance(v, int | float | str | bool):
        return v
    return str(v)

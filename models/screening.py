"""Screening (筛查): champion models + rule hits + graph → one clue per entity, ranked by expected recovery.

``screen(warehouse, bundle)`` scores every person, doctor, institution, pharmacy and ring of the
warehouse with the bundle's scorers, ranks them with :func:`models.ranking.rank_clues` (priority =
P(fraud) × amount at risk) and turns the entities worth verifying into clue dicts in the format of
:meth:`serving.clues.store.ClueStore.upsert_clues`:

- an entity becomes a clue when its P(fraud) reaches ``min_p`` (source ``model``; ``graph`` for rings),
  when it is a ring candidate of the graph (``graph_communities.in_ring_candidates``: five or more members
  and the graph's own risk score ≥ 0.5 — label-free evidence, as a rule hit is; source ``graph``), or when
  its rule hits put at least ``min_rule_amount`` yuan at risk (source ``rule``); the list keeps the
  ``max_clues`` with the highest priority. A ring model trained on a region with fewer than ten labelled
  rings is an isolation forest that cannot tell rings apart (≈ 0.1 for every community): without the
  graph's candidates such a region's rings would reach the list only through their members' rule hits,
  and ranked by that ≈ 0.1 they fall below the first hundred. So with such a model (``mode_``
  ``unsupervised``) a ring candidate's P(fraud) is the stronger of the model's and the graph's risk score
  (both are in the clue's graph evidence: ``model_p_fraud``, ``risk_score``); a supervised ring model has
  learnt from labelled rings what the graph's evidence is worth, and its P(fraud) stands. A ring's risk
  level is the stronger of the two either way;
- each clue gathers its rule hits (per rule: typology, hits, amount), the typologies of those hits and,
  for a ring, the ring's own type from the graph's evidence (``graph_communities.ring_type``:
  ``drug_resale``, ``collusive_ring`` or ``phantom_purchase``, see ``features.graph.evidence``), the top
  reasons of its score in Chinese (SHAP), and evidence: the settlements behind it (largest first) and its
  graph neighbourhood (the co-visit community and its members; for a ring also its type, the evidence
  for it, and the pharmacy (counter) of a card pool or the drug and broker of a resale ring). A card
  pool's clue points at its pharmacy: the pharmacy's rule hits are the pool's too, and its name and
  region are the pharmacy's.

Persons are named only by their pseudonymous ``psn_no``; no resident ID is read.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb
import numpy as np
import pandas as pd

from models.bundle import ScorerBundle
from models.calibration import RegionCalibration, apply_calibration, model_id
from models.levels import load_level
from models.ranking import rank_clues, risk_level
from models.rules.engine import ENTITY_HIT_COLUMN
from models.screening_spark import ENTITY_LEVELS, spark_candidates

__all__ = ["ScreenResult", "screen", "clue_risk_level", "CLUE_LEVELS"]

CLUE_LEVELS = ("psn", "prac", "fixmedins", "pharmacy", "ring")
Progress = Callable[[str, int, int], None]


@dataclass
class ScreenResult:
    run_id: str
    clues: list[dict]
    candidates: int
    seconds: float
    by_type: dict[str, int] = field(default_factory=dict)
    calibration_zh: str = ""  # whether the scores are calibrated for this region (models.calibration)

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "clues": len(self.clues), "candidates": self.candidates,
                "seconds": self.seconds, "by_type": self.by_type, "calibration": self.calibration_zh}


def screen(warehouse: Path, bundle: ScorerBundle, *, max_clues: int = 1000, min_p: float = 0.3,
           min_rule_amount: float = 500.0, n_reasons: int = 3, evidence_settlements: int = 20,
           run_id: str | None = None, calibration: RegionCalibration | None = None,
           progress: Progress | None = None, exports=None) -> ScreenResult:
    """Score, rank and assemble clues (see the module docstring). ``calibration``: the region's map of this
    bundle's probabilities (``models.calibration``); a map fitted for another model is not applied.
    ``exports`` (a pipeline run's ``features.spark.ParquetExports``): persons, doctors, institutions and
    pharmacies are scored on Spark and only the clue list's entities come to this process
    (:mod:`models.screening_spark`); the same list."""
    if calibration is not None and calibration.model_id != model_id(bundle.meta):
        calibration = None
    note = calibration.note_zh if calibration is not None else (
        "模型概率未针对本地区校准：尚无本地区核实结果（yibao calibrate）；排序仍可用。")
    t0 = time.perf_counter()
    tick = progress or (lambda *_: None)
    levels = [lv for lv in CLUE_LEVELS if lv in bundle.scorers]
    if not levels:  # a bundle trained on settlements only (TrainConfig.levels): nothing to raise clues on
        raise ValueError(f"模型包没有可出线索的层级 (the model has no clue level; it has {sorted(bundle.scorers)}, "
                         f"a clue needs one of {', '.join(CLUE_LEVELS)}): 用 yibao train 训练全部层级")
    on_spark = [lv for lv in levels if lv in ENTITY_LEVELS] if exports is not None else []
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        frames, parts, counted = {}, [], 0
        if on_spark:
            found = spark_candidates(con, bundle, exports, on_spark, calibration=calibration, min_p=min_p,
                                     min_rule_amount=min_rule_amount, max_clues=max_clues,
                                     progress=lambda text, done, _: tick(text, done, len(levels) + 2))
            counted += found.counted
            top = found.top.drop(columns=["amount_at_risk", "priority"])
            rows = []
            for level in on_spark:
                ids = top.loc[top["entity_type"] == level, "entity_id"].tolist()
                d = load_level(con, level, ids=ids)  # the feature rows of the clue list's entities only
                d.scaled = found.model_input[level].loc[d.ids.astype(str)].reset_index(drop=True)
                frames[level] = d
                position = pd.Series(np.arange(len(d.frame)), index=d.ids.astype(str).to_numpy())
                rows.append(pd.Series(position.loc[ids].to_numpy(), index=top.index[top["entity_type"] == level]))
            parts.append(top.assign(row=pd.concat(rows)))
        for i, level in enumerate(levels):
            if level in on_spark:
                continue
            tick(f"评分 {level}", i, len(levels) + 2)
            d = load_level(con, level)
            frames[level] = d
            counted += len(d.frame)
            p = apply_calibration(bundle.score(level, d.frame), calibration)
            candidate = (d.frame["in_ring_candidates"].fillna(0).to_numpy(dtype=float) > 0
                         if "in_ring_candidates" in d.frame else np.zeros(len(d.frame), dtype=bool))
            graph_risk = (d.frame["risk_score"].fillna(0).to_numpy(dtype=float) if level == "ring"
                          else np.zeros(len(d.frame)))
            # a ring candidate, when the ring model has learnt nothing from labels: the stronger of its
            # P(fraud) and the graph's own risk score
            weak = getattr(bundle.scorers[level], "mode_", "supervised") != "supervised"
            parts.append(pd.DataFrame({
                "entity_type": level, "entity_id": d.ids.astype(str).to_numpy(),
                "p_fraud": np.where(candidate & weak, np.maximum(p, graph_risk), p), "p_model": p,
                "rule_amount": d.frame["rule_amount"].fillna(0).to_numpy(dtype=float),
                "exposure": d.frame["exposure"].to_numpy(dtype=float), "graph_candidate": candidate,
                "graph_risk": graph_risk, "row": np.arange(len(d.frame))}))
        ranked = rank_clues(pd.concat(parts, ignore_index=True), bundle.shares)
        keep = ranked[((ranked["p_fraud"] >= min_p) | (ranked["rule_amount"] >= min_rule_amount)
                       | ranked["graph_candidate"]) & (ranked["priority"] > 0)].head(max_clues)
        tick("原因与证据 reasons and evidence", len(levels), len(levels) + 2)
        clues = _assemble(con, keep, frames, bundle, min_p=min_p, min_rule_amount=min_rule_amount,
                          n_reasons=n_reasons, n_setl=evidence_settlements)
    finally:
        con.close()
    tick("完成 done", len(levels) + 2, len(levels) + 2)
    by_type = {t: int(n) for t, n in keep["entity_type"].value_counts().sort_index().items()}
    return ScreenResult(run_id or f"screen-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}", clues,
                        counted, round(time.perf_counter() - t0, 1), by_type, note)


def clue_risk_level(p_fraud: float, graph_risk: float = 0.0) -> str:
    """风险等级 of a clue: from the stronger of the model's P(fraud) and, for a ring, the graph's own risk score
    (``graph_communities.risk_score``, label-free evidence: synchrony, shared providers, rule hits of the
    members). A region's ring model trained on few rings scores every community ≈ 0.1 (the module docstring):
    without the graph's score every ring would be rated 低.

    >>> clue_risk_level(0.1, 0.8), clue_risk_level(0.5), clue_risk_level(0.1)
    ('high', 'medium', 'low')
    """
    return risk_level(max(p_fraud, graph_risk))


# -- private helpers ------------------------------------------------------------------------------


def _assemble(con, keep: pd.DataFrame, frames: dict, bundle: ScorerBundle, *, min_p: float,
              min_rule_amount: float, n_reasons: int, n_setl: int) -> list[dict]:
    reasons: dict[tuple[str, str], list] = {}
    for level, group in keep.groupby("entity_type", sort=True):
        d = frames[level]
        rows = d.frame.iloc[group["row"].to_numpy()]
        scaled = d.scaled.iloc[group["row"].to_numpy()] if d.scaled is not None else None  # computed on Spark
        for eid, rs in zip(group["entity_id"], bundle.explain(level, rows, n=n_reasons, region=d.frame,
                                                               model_input=scaled)):
            reasons[(level, eid)] = [r.to_dict() for r in rs]
    members = _ring_members(con, keep)
    ring_info = _ring_info(frames)
    counters = {cid: i["counter"] for cid, i in ring_info.items() if i.get("counter")}
    hits = _rule_hits(con, keep, members, counters)
    settlements = _settlements(con, keep, members, n_setl)
    names, regions = _names_regions(con, keep, frames, ring_info)
    community = _community_of(con, keep)
    out = []
    for r in keep.itertuples(index=False):
        key = (r.entity_type, r.entity_id)
        rh = hits.get(key, [])
        sources = []
        if r.p_fraud >= min_p or r.graph_candidate:
            sources.append("graph" if r.entity_type == "ring" else "model")
        if r.rule_amount >= min_rule_amount or (rh and not sources):
            sources.append("rule")
        typologies = sorted({h["typology"] for h in rh})
        graph = {"community_id": r.entity_id if r.entity_type == "ring" else community.get(key),
                 "members": members.get(r.entity_id, []) if r.entity_type == "ring" else []}
        if r.entity_type == "ring":
            info = ring_info.get(r.entity_id, {})
            typologies = sorted(set(typologies) | {info.get("ring_type") or "collusive_ring"})
            graph.update({k: v for k, v in info.items() if v is not None})
            graph.update({"risk_score": round(float(r.graph_risk), 4), "model_p_fraud": round(float(r.p_model), 4)})
        out.append({
            "entity_type": r.entity_type, "entity_id": r.entity_id, "entity_name": names.get(key),
            "region": regions.get(key), "p_fraud": float(r.p_fraud),
            "risk_level": clue_risk_level(float(r.p_fraud), float(r.graph_risk)),
            "amount_at_risk": float(r.amount_at_risk), "typologies": typologies, "sources": sources,
            "reasons": reasons.get(key, []), "rule_hits": rh,
            "evidence": {"setl_id": settlements.get(key, []), "graph": graph},
        })
    return out


def _ring_members(con, keep: pd.DataFrame) -> dict[str, list[str]]:
    rings = keep.loc[keep["entity_type"] == "ring", "entity_id"].tolist()
    if not rings:
        return {}
    df = con.execute("""SELECT community_id, node_type, node_id FROM graph_membership
                        WHERE community_id IN (SELECT unnest(?)) ORDER BY 1, 2, 3""", [rings]).df()
    return {c: [f"{t}:{i}" for t, i in zip(g["node_type"], g["node_id"])] for c, g in df.groupby("community_id")}


def _ring_info(frames: dict) -> dict[str, dict]:
    """Per ring (community id): its type, the evidence in words, and the counter, drug and broker."""
    if "ring" not in frames:
        return {}
    f = frames["ring"].frame
    out = {}
    for r in f.to_dict("records"):
        kind = r.get("ring_type")
        out[r["community_id"]] = {
            "ring_type": kind if isinstance(kind, str) else None,
            "type_basis": r.get("type_basis") if isinstance(r.get("type_basis"), str) else None,
            "counter": r.get("top_counter") if kind == "phantom_purchase" and isinstance(r.get("top_counter"), str)
            else None,
            "drug": r.get("resale_drug") if kind == "drug_resale" and isinstance(r.get("resale_drug"), str) else None,
            "broker": r.get("broker") if kind == "drug_resale" and isinstance(r.get("broker"), str) else None,
        }
    return out


def _entity_keys(keep: pd.DataFrame, members: dict, counters: dict | None = None) -> pd.DataFrame:
    rows = [(t, i, ENTITY_HIT_COLUMN[t], i) for t, i in zip(keep["entity_type"], keep["entity_id"])
            if t in ENTITY_HIT_COLUMN]
    for cid, ms in members.items():
        rows += [("ring", cid, "psn_no", m.split(":", 1)[1]) for m in ms if m.split(":", 1)[0] in ("psn", "person")]
    # a card pool's pharmacy: its rule hits (空刷 at the counter) belong to the pool's clue
    rows += [("ring", cid, "fixmedins_code", shop) for cid, shop in (counters or {}).items() if cid in members]
    return pd.DataFrame(rows, columns=["entity_type", "entity_id", "column", "value"])


def _rule_hits(con, keep: pd.DataFrame, members: dict, counters: dict | None = None) -> dict:
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'rule_hits'").fetchall()[0][0]:
        return {}
    keys = _entity_keys(keep, members, counters)
    con.register("_clue_keys", keys)
    try:
        df = con.sql("""
            SELECT k.entity_type, k.entity_id, h.rule_id, h.typology_id, count(*) AS hits,
                   CAST(sum(h.amount_at_risk) AS DOUBLE) AS amount
            FROM _clue_keys k JOIN rule_hits h ON k."column" = 'psn_no' AND h.psn_no = k.value
            GROUP BY ALL
            UNION ALL
            SELECT k.entity_type, k.entity_id, h.rule_id, h.typology_id, count(*), CAST(sum(h.amount_at_risk) AS DOUBLE)
            FROM _clue_keys k JOIN rule_hits h ON k."column" = 'prac_code' AND h.prac_code = k.value
            GROUP BY ALL
            UNION ALL
            SELECT k.entity_type, k.entity_id, h.rule_id, h.typology_id, count(*), CAST(sum(h.amount_at_risk) AS DOUBLE)
            FROM _clue_keys k JOIN rule_hits h ON k."column" = 'fixmedins_code' AND h.fixmedins_code = k.value
            GROUP BY ALL ORDER BY 1, 2, amount DESC, 3
        """).df()
    finally:
        con.unregister("_clue_keys")
    out: dict = {}
    for r in df.itertuples(index=False):
        out.setdefault((r.entity_type, r.entity_id), []).append(
            {"rule_id": r.rule_id, "typology": r.typology_id, "hits": int(r.hits),
             "amount_at_risk": round(float(r.amount), 2)})
    return out


def _settlements(con, keep: pd.DataFrame, members: dict, n: int) -> dict:
    keys = _entity_keys(keep, members)
    con.register("_clue_keys", keys)
    try:
        df = con.sql(f"""
            WITH s AS (
                SELECT k.entity_type, k.entity_id, f.setl_id, f.fund_amt,
                       row_number() OVER (PARTITION BY k.entity_type, k.entity_id
                                          ORDER BY f.rh_amt_hits DESC, f.fund_amt DESC, f.setl_id) AS r
                FROM _clue_keys k JOIN (
                    SELECT 'psn_no' AS "column", psn_no AS value, setl_id, fund_amt, rh_amt_hits FROM feat_setl
                    UNION ALL SELECT 'prac_code', prac_code, setl_id, fund_amt, rh_amt_hits FROM feat_setl
                    UNION ALL SELECT 'fixmedins_code', fixmedins_code, setl_id, fund_amt, rh_amt_hits FROM feat_setl
                ) f USING ("column", value))
            SELECT entity_type, entity_id, setl_id FROM s WHERE r <= {int(n)} ORDER BY 1, 2, r
        """).df()
    finally:
        con.unregister("_clue_keys")
    return {k: g["setl_id"].tolist() for k, g in df.groupby(["entity_type", "entity_id"])}


_RING_NAMES = {"drug_resale": "疑似倒卖医保药品团伙", "phantom_purchase": "疑似空刷卡池", "collusive_ring": "疑似团伙"}


def _names_regions(con, keep: pd.DataFrame, frames: dict, ring_info: dict) -> tuple[dict, dict]:
    def of(level: str) -> list[str]:  # the listed entities of a level: a province's persons stay in the warehouse
        return keep.loc[keep["entity_type"] == level, "entity_id"].astype(str).tolist()

    inst = con.sql("SELECT fixmedins_code, fixmedins_name, admdvs FROM fixmedins").df().set_index("fixmedins_code")
    prac = con.execute("SELECT prac_code, fixmedins_code FROM practitioner WHERE prac_code IN (SELECT unnest(?))",
                       [of("prac")]).df().set_index("prac_code")
    psn = con.execute("SELECT psn_no, insu_admdvs FROM psn_info WHERE psn_no IN (SELECT unnest(?))",
                      [of("psn")]).df().set_index("psn_no")
    names, regions = {}, {}
    for t, i in zip(keep["entity_type"], keep["entity_id"]):
        key = (t, i)
        if t in ("fixmedins", "pharmacy") and i in inst.index:
            names[key], regions[key] = inst.at[i, "fixmedins_name"], inst.at[i, "admdvs"]
        elif t == "prac" and i in prac.index:
            h = prac.at[i, "fixmedins_code"]
            names[key] = f"医师 {i}（{inst.at[h, 'fixmedins_name'] if h in inst.index else h}）"
            regions[key] = inst.at[h, "admdvs"] if h in inst.index else None
        elif t == "psn" and i in psn.index:
            names[key], regions[key] = f"参保人 {i}", psn.at[i, "insu_admdvs"]
        elif t == "ring":
            top = frames["ring"].frame.set_index("community_id").get("top_provider")
            info = ring_info.get(i, {})
            h = info.get("counter") or (top.get(i) if top is not None else None)
            names[key] = f"{_RING_NAMES.get(info.get('ring_type'), '疑似团伙')} {i}"
            if info.get("counter"):
                shop = info["counter"]
                names[key] += f"（药店 {inst.at[shop, 'fixmedins_name'] if shop in inst.index else shop}）"
            regions[key] = inst.at[h, "admdvs"] if h in inst.index else None
    return names, regions


def _community_of(con, keep: pd.DataFrame) -> dict:
    if not con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'graph_membership'"
                       ).fetchall()[0][0]:
        return {}
    df = con.execute("SELECT node_type, node_id, community_id FROM graph_membership WHERE node_id IN (SELECT unnest(?))",
                     [keep["entity_id"].astype(str).tolist()]).df()
    kind = {"psn": "psn", "prac": "prac", "fixmedins": "fixmedins", "pharmacy": "pharmacy"}
    lookup = {(t, i): c for t, i, c in zip(df["node_type"], df["node_id"], df["community_id"])}
    return {(t, i): lookup.get((kind.get(t, t), i)) for t, i in zip(keep["entity_type"], keep["entity_id"])}

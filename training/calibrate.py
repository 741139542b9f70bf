"""Calibrating the shipped model on a region's first verified outcomes (``yibao calibrate``).

The outcomes are the region's labels from verification (``labels.source`` ``verified_clue`` or ``inspection``
by default; the simulator's ``simulated`` labels only when asked for), one per entity: a person, doctor,
institution or pharmacy, or a ring (a community of the graph, or a labelled ring through the community most
of whose persons belong to it). Each is scored by the model as the screening scores it (its level's rows of
the whole region), and :func:`models.calibration.fit_region_calibration` fits the region's map. The result
is saved beside the warehouse (``calibration.json``); the screening applies it to that model's scores.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from models.bundle import ScorerBundle
from models.calibration import CALIBRATION_FILE, RegionCalibration, fit_region_calibration, model_id

__all__ = ["DEFAULT_SOURCES", "region_outcomes", "scored_outcomes", "calibrate_region"]

DEFAULT_SOURCES = ("verified_clue", "inspection")
_LEVEL_OF_LABEL = {"psn": ("psn",), "prac": ("prac",), "fixmedins": ("fixmedins", "pharmacy"), "ring": ("ring",)}


def region_outcomes(con: duckdb.DuckDBPyConnection, *, sources=DEFAULT_SOURCES) -> pd.DataFrame:
    """Verified outcomes per entity: ``entity_type`` (label type), ``entity_id``, ``label`` (1 when any
    verification of it found fraud)."""
    return con.execute("""
        SELECT entity_type, entity_id, max(label) AS label FROM labels
        WHERE list_contains(?, source) AND entity_type IN ('psn', 'prac', 'fixmedins', 'ring')
        GROUP BY 1, 2 ORDER BY 1, 2""", [list(sources)]).df()


def scored_outcomes(con: duckdb.DuckDBPyConnection, bundle: ScorerBundle, outcomes: pd.DataFrame) -> pd.DataFrame:
    """``outcomes`` with the model's P(fraud) of each entity (``p_fraud``; entities the model does not score
    are left out)."""
    from models.levels import load_level, ring_truth

    parts = []
    for label_type, levels in _LEVEL_OF_LABEL.items():
        wanted = outcomes[outcomes["entity_type"] == label_type]
        if wanted.empty:
            continue
        for level in levels:
            if level not in bundle.scorers:
                continue
            d = load_level(con, level)
            scores = pd.DataFrame({"key": d.ids.astype(str).to_numpy(), "p_fraud": bundle.score(level, d.frame)})
            if level == "ring":  # a labelled ring is judged by the community most of its persons are in
                truth = ring_truth(con)
                best = truth[truth["ring_share"] >= 0.5].drop_duplicates("ring_id")
                scores = pd.concat([scores, scores.merge(best, left_on="key", right_on="community_id")
                                    .assign(key=lambda f: f["ring_id"])[["key", "p_fraud"]]])
            parts.append(wanted.merge(scores, left_on="entity_id", right_on="key").drop(columns="key"))
    cols = list(outcomes.columns) + ["p_fraud"]
    return (pd.concat(parts, ignore_index=True).drop_duplicates(["entity_type", "entity_id"])
            if parts else pd.DataFrame(columns=cols))


def calibrate_region(warehouse: Path, bundle: ScorerBundle, *, sources=DEFAULT_SOURCES,
                     outcomes: pd.DataFrame | None = None, save: bool = True) -> RegionCalibration:
    """Fit (and save beside the warehouse) the region's calibration of ``bundle`` on its verified outcomes
    (``outcomes``, else those of the ``labels`` table from ``sources``)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        outcomes = region_outcomes(con, sources=sources) if outcomes is None else outcomes
        scored = scored_outcomes(con, bundle, outcomes)
    cal = fit_region_calibration(scored["p_fraud"].to_numpy(dtype=float) if len(scored) else np.array([]),
                                 scored["label"].to_numpy(dtype=int) if len(scored) else np.array([], dtype=int),
                                 model_id=model_id(bundle.meta))
    if save:
        cal.save(Path(warehouse).parent / CALIBRATION_FILE)
    return cal

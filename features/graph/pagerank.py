"""Personalised PageRank from known fraud (欺诈关联度): how close a node sits to confirmed fraud in the
heterogeneous graph, without using its own label.

``personalised_pagerank`` takes the seed set explicitly: the training code passes the positives of the
training fold only. ``cross_fitted_pagerank`` does the same for every node at once: nodes are split into
``n_folds`` folds by a stable hash of ``(node_type, node_id)`` (``fold_of``), and a node's score comes from
the run whose seeds leave its own fold out, so no node ever sees its own label. A model evaluated on fold
k must then hold out fold k as ``fold_of`` defines it (or recompute with its own seeds).

Scores are scaled so that 1.0 is the average node; unreachable nodes score 0.

>>> import pandas as pd
>>> edges = pd.DataFrame({"src_type": "psn", "src_id": ["A", "B", "C"], "dst_type": "prac",
...                       "dst_id": ["D1", "D1", "D2"], "n_events": [3, 3, 3]})
>>> r = personalised_pagerank(edges, seeds=[("psn", "A")])
>>> bool(r[("psn", "B")] > r[("psn", "C")]), float(r[("psn", "C")])
(True, 0.0)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse

__all__ = ["fold_of", "personalised_pagerank", "cross_fitted_pagerank"]


def fold_of(node_type: str, node_id: str, n_folds: int = 5) -> int:
    """The fold of a node: a stable hash (CRC-32) of ``node_type:node_id`` modulo ``n_folds``.

    >>> fold_of("psn", "220100000000001202")
    2
    """
    return zlib.crc32(f"{node_type}:{node_id}".encode()) % n_folds


def personalised_pagerank(
    edges: pd.DataFrame,
    seeds: Iterable[tuple[str, str]],
    *,
    alpha: float = 0.85,
    weight: str = "n_events",
    tol: float = 1e-10,
    max_iter: int = 200,
) -> pd.Series:
    """PageRank restarted at ``seeds`` on the undirected graph of ``edges`` (``src_type, src_id, dst_type,
    dst_id`` and a ``weight`` column; parallel edges add up). Returns a Series indexed by
    ``(node_type, node_id)``, 1.0 = the average node. Seeds missing from the graph are ignored; no seed
    in the graph gives all zeros.
    """
    index, a = _adjacency(edges, weight)
    return _ppr(index, a, seeds, alpha=alpha, tol=tol, max_iter=max_iter)


def cross_fitted_pagerank(
    edges: pd.DataFrame,
    seeds: Iterable[tuple[str, str]],
    *,
    n_folds: int = 5,
    alpha: float = 0.85,
    weight: str = "n_events",
) -> pd.Series:
    """Every node's personalised PageRank from the seeds outside its own fold (see the module docstring).

    >>> import pandas as pd
    >>> edges = pd.DataFrame({"src_type": "psn", "src_id": ["A", "D"], "dst_type": "prac",
    ...                       "dst_id": ["D1", "D1"], "n_events": [1, 1]})
    >>> r = cross_fitted_pagerank(edges, [("psn", "A"), ("psn", "D")], n_folds=2)
    >>> [fold_of("psn", p, 2) for p in "AD"], [bool(r[("psn", p)] > 0) for p in "AD"]
    ([1, 0], [True, True])
    >>> float(cross_fitted_pagerank(edges, [("psn", "A")], n_folds=2)[("psn", "A")])
    0.0
    """
    index, a = _adjacency(edges, weight)
    seeds = list(seeds)
    folds = np.array([fold_of(t, i, n_folds) for t, i in index])
    seed_fold = {s: fold_of(*s, n_folds) for s in seeds}
    # all folds' walks at once: one pass over the matrix per step for every fold (a fold stops when it
    # converges, as it would alone)
    r = _ppr_columns(index, a, [[s for s in seeds if seed_fold[s] != k] for k in range(n_folds)],
                     alpha=alpha, tol=1e-10, max_iter=200)
    out = np.zeros(len(index))
    for k in range(n_folds):
        mine = folds == k
        out[mine] = r[mine, k]
    return pd.Series(out, index=index, name="ppr_fraud")


# -- private helpers ------------------------------------------------------------------------------


def _adjacency(edges: pd.DataFrame, weight: str) -> tuple[pd.MultiIndex, sparse.csr_matrix]:
    src = pd.MultiIndex.from_arrays([edges["src_type"], edges["src_id"]])
    dst = pd.MultiIndex.from_arrays([edges["dst_type"], edges["dst_id"]])
    index = src.append(dst).unique().sort_values()
    i, j = index.get_indexer(src), index.get_indexer(dst)
    w = edges[weight].to_numpy(dtype=float) if weight in edges else np.ones(len(edges))
    n = len(index)
    a = sparse.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    index.names = ["node_type", "node_id"]
    return index, a.tocsr()


def _ppr(index, a, seeds, *, alpha: float, tol: float, max_iter: int) -> pd.Series:
    r = _ppr_columns(index, a, [list(seeds)], alpha=alpha, tol=tol, max_iter=max_iter)[:, 0]
    return pd.Series(r, index=index, name="ppr_fraud")


def _ppr_columns(index, a, seed_sets: list[list], *, alpha: float, tol: float, max_iter: int) -> np.ndarray:
    """One column per seed set: its PageRank restarted at the set (1.0 = the average node), each column
    stopped when it converges; a set without a seed in the graph gives zeros."""
    n, m = len(index), len(seed_sets)
    s = np.zeros((n, m))
    live = np.zeros(m, dtype=bool)
    for k, seeds in enumerate(seed_sets):
        pos = index.get_indexer(pd.MultiIndex.from_tuples(seeds)) if seeds and n else np.array([], int)
        pos = pos[pos >= 0]
        if len(pos):
            s[pos, k] = 1.0 / len(pos)
            live[k] = True
    if not live.any():
        return np.zeros((n, m))
    deg = np.asarray(a.sum(axis=1)).ravel()
    inv = np.divide(1.0, deg, out=np.zeros(n), where=deg > 0)
    pt = (sparse.diags(inv) @ a).T.tocsr()  # column-stochastic transition
    dangling = np.flatnonzero(deg == 0)
    r = s.copy()
    for _ in range(max_iter):
        cols = np.flatnonzero(live)
        rc, sc = (r, s) if len(cols) == m else (r[:, cols], s[:, cols])
        nxt = pt @ rc
        nxt *= alpha
        nxt += (1 - alpha) * sc
        if len(dangling):
            nxt += alpha * rc[dangling].sum(axis=0) * sc  # dangling mass goes back to the seeds
        done = np.abs(nxt - rc).sum(axis=0) < tol
        if len(cols) == m:
            r = nxt
        else:
            r[:, cols] = nxt
        live[cols[done]] = False
        if not live.any():
            break
    return r * n

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

__all__ = ["fold_of", "personalised_pagerank", "cross_fitted_pagerank", "cross_fitted_scores", "adjacency"]


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
    folds = np.array([fold_of(t, i, n_folds) for t, i in index], dtype=np.int64)
    pos = index.get_indexer(pd.MultiIndex.from_tuples(seeds)) if seeds and len(index) else np.array([], int)
    out = cross_fitted_scores(a, folds, pos[pos >= 0], n_folds=n_folds, alpha=alpha)
    return pd.Series(out, index=index, name="ppr_fraud")


def cross_fitted_scores(a: sparse.spmatrix, folds: np.ndarray, seeds: np.ndarray, *, n_folds: int = 5,
                        alpha: float = 0.85) -> np.ndarray:
    """:func:`cross_fitted_pagerank` on numbers: ``a`` the symmetric weighted adjacency of ``n`` nodes
    (:func:`adjacency`), ``folds`` each node's :func:`fold_of`, ``seeds`` the positions of the seed nodes.
    One score per node (1.0 = the average node). What a graph too large for a table on one machine sends
    to it: 16 bytes an edge (``features.graph.build``).

    >>> a = adjacency(3, np.array([0, 1]), np.array([2, 2]), np.ones(2))
    >>> cross_fitted_scores(a, np.array([0, 1, 0]), np.array([0, 1]), n_folds=2).round(3).tolist()
    [0.586, 0.586, 1.378]
    """
    n = a.shape[0]
    seeds = np.unique(np.asarray(seeds, dtype=np.int64))
    # all folds' walks at once: one pass over the matrix per step for every fold (a fold stops when it
    # converges, as it would alone)
    r = _ppr_columns(n, a, [seeds[folds[seeds] != k] for k in range(n_folds)], alpha=alpha, tol=1e-10, max_iter=200)
    out = np.zeros(n)
    for k in range(n_folds):
        mine = folds == k
        out[mine] = r[mine, k]
    return out


def adjacency(n: int, i: np.ndarray, j: np.ndarray, w: np.ndarray) -> sparse.csr_matrix:
    """The symmetric ``n`` × ``n`` adjacency of the edges ``i``–``j`` with weights ``w`` (parallel edges add
    up; the sum is exact for whole-number weights, in whatever order the edges come)."""
    a = sparse.coo_matrix((np.concatenate([w, w]), (np.concatenate([i, j]), np.concatenate([j, i]))), shape=(n, n))
    return a.tocsr()


# -- private helpers ------------------------------------------------------------------------------


def _adjacency(edges: pd.DataFrame, weight: str) -> tuple[pd.MultiIndex, sparse.csr_matrix]:
    src = pd.MultiIndex.from_arrays([edges["src_type"], edges["src_id"]])
    dst = pd.MultiIndex.from_arrays([edges["dst_type"], edges["dst_id"]])
    index = src.append(dst).unique().sort_values()
    i, j = index.get_indexer(src), index.get_indexer(dst)
    w = edges[weight].to_numpy(dtype=float) if weight in edges else np.ones(len(edges))
    index.names = ["node_type", "node_id"]
    return index, adjacency(len(index), i, j, w)


def _ppr(index, a, seeds, *, alpha: float, tol: float, max_iter: int) -> pd.Series:
    seeds = list(seeds)
    pos = index.get_indexer(pd.MultiIndex.from_tuples(seeds)) if seeds and len(index) else np.array([], int)
    r = _ppr_columns(len(index), a, [pos[pos >= 0]], alpha=alpha, tol=tol, max_iter=max_iter)[:, 0]
    return pd.Series(r, index=index, name="ppr_fraud")


def _ppr_columns(n: int, a, seed_sets: list[np.ndarray], *, alpha: float, tol: float, max_iter: int) -> np.ndarray:
    """One column per set of seed positions: its PageRank restarted at the set (1.0 = the average node),
    each column stopped when it converges; a set without a seed gives zeros."""
    m = len(seed_sets)
    s = np.zeros((n, m))
    live = np.zeros(m, dtype=bool)
    for k, pos in enumerate(seed_sets):
        pos = np.unique(pos)
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

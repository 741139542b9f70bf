"""Community detection (社区发现) on the co-visit projection, with a fast path and a pure-BSD fallback.

``method="auto"`` takes the first installed of: Leiden (``leidenalg``, GPL-3.0+), Louvain in igraph
(``igraph``, GPL-2.0+), Louvain in networkx (BSD). igraph and leidenalg are optional (the ``graph-fast``
extra); without them everything still works, about twenty times slower on a city (docs/graph.md).
Every method is seeded: the same graph and seed give the same communities.

>>> import networkx as nx
>>> g = nx.Graph()
>>> g.add_weighted_edges_from([(a, b, 5.0) for a in "ABCD" for b in "ABCD" if a < b])
>>> g.add_weighted_edges_from([(a, b, 5.0) for a in "WXYZ" for b in "WXYZ" if a < b])
>>> g.add_edge("D", "W", weight=0.5)
>>> [sorted(c) for c in detect_communities(g, method="networkx", seed=1)]
[['A', 'B', 'C', 'D'], ['W', 'X', 'Y', 'Z']]
>>> detect_communities(g, seed=1) == detect_communities(g, method="networkx", seed=1)
True
"""

from __future__ import annotations

import importlib.util
import random

import networkx as nx

__all__ = ["METHODS", "available_methods", "resolve_method", "detect_communities"]

METHODS = ("leiden", "louvain", "networkx")


def available_methods() -> list[str]:
    """The methods that can run here, fastest first (``networkx`` is always there)."""
    out = []
    if _installed("igraph") and _installed("leidenalg"):
        out.append("leiden")
    if _installed("igraph"):
        out.append("louvain")
    return out + ["networkx"]


def resolve_method(method: str = "auto") -> str:
    """``auto`` → the fastest available method; a named method must be installed."""
    if method == "auto":
        return available_methods()[0]
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose auto, {', '.join(METHODS)}")
    if method not in available_methods():
        raise ImportError(f"method {method!r} needs igraph{' and leidenalg' if method == 'leiden' else ''} "
                          "(pip install '.[graph-fast]'; GPL-licensed)")
    return method


def detect_communities(
    g: nx.Graph,
    *,
    method: str = "auto",
    seed: int = 0,
    resolution: float = 1.0,
    weight: str = "weight",
) -> list[frozenset]:
    """Partition the nodes of ``g`` into communities maximising (weighted) modularity.

    Returns frozensets of nodes, largest first, ties broken by the smallest node, so the order is stable.
    Isolated nodes come back as communities of one.

    >>> import networkx as nx
    >>> g = nx.path_graph(3)
    >>> detect_communities(g, method="networkx")
    [frozenset({0, 1, 2})]
    >>> detect_communities(nx.empty_graph(0))
    []
    """
    method = resolve_method(method)
    if g.number_of_nodes() == 0:
        return []
    if method == "networkx":
        parts = nx.community.louvain_communities(g, weight=weight, resolution=resolution, seed=seed)
    else:
        parts = _igraph_communities(g, method=method, seed=seed, resolution=resolution, weight=weight)
    out = [frozenset(p) for p in parts if p]
    return sorted(out, key=lambda c: (-len(c), min(map(str, c))))


# -- private helpers ------------------------------------------------------------------------------


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _igraph_communities(g: nx.Graph, *, method: str, seed: int, resolution: float, weight: str) -> list[set]:
    import igraph as ig

    nodes = list(g.nodes)
    index = {n: i for i, n in enumerate(nodes)}
    edges = [(index[a], index[b]) for a, b in g.edges]
    weights = [float(d.get(weight, 1.0)) for _, _, d in g.edges(data=True)]
    h = ig.Graph(n=len(nodes), edges=edges, directed=False)
    h.es["weight"] = weights
    if method == "leiden":
        import leidenalg

        part = leidenalg.find_partition(h, leidenalg.RBConfigurationVertexPartition, weights="weight",
                                        resolution_parameter=resolution, n_iterations=-1, seed=seed)
        membership = part.membership
    else:
        # igraph's Louvain draws from the random number generator set in igraph: seed one, then restore.
        ig.set_random_number_generator(random.Random(seed))
        try:
            membership = h.community_multilevel(weights="weight", resolution=resolution).membership
        finally:
            ig.set_random_number_generator(random)
    groups: dict[int, set] = {}
    for node, c in zip(nodes, membership):
        groups.setdefault(c, set()).add(node)
    return list(groups.values())

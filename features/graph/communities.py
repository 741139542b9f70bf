"""Community detection (社区发现) on the co-visit projection, with a fast path and a pure-BSD fallback,
per layer of ties (:func:`layered_communities`) or on one graph (:func:`detect_communities`).

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
import math
import random
from collections.abc import Callable, Mapping

import networkx as nx
import pandas as pd

__all__ = ["METHODS", "available_methods", "resolve_method", "detect_communities", "layered_communities",
           "component_communities", "BLOCK_PARTS_SCHEMA", "BLOCK_PERSONS", "map_here", "block_frame",
           "block_graph", "schema_columns"]

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


def layered_communities(
    g: nx.Graph,
    *,
    layers: tuple[str, ...] = ("co_purchase", "co_counter", "co_visit"),
    first: tuple[str, ...] = ("co_purchase",),
    method: str = "auto",
    seed: int = 0,
    resolution: float | Mapping[str, float] = 1.0,
) -> tuple[list[frozenset], dict[frozenset, str]]:
    """Communities found in each layer of ties separately, joined into one partition of the persons.

    ``g`` is the projection of ``features.graph.projection.co_visit_graph``, whose edges carry each layer's
    weight as ``w_<layer>``. Each layer's graph (the edges with a positive weight in that layer) is
    partitioned on its own by :func:`detect_communities`, so a resale ring (co-purchase ties) and a card
    pool (same-counter ties) that share pharmacies cannot be merged by modularity: neither layer sees both.
    A person found in groups of several layers joins its group in a ``first`` layer if it has one (the
    co-purchase layer: it ties a person by what the person does — buying far beyond need — where the
    other layers tie by presence, and a card in a pharmacy's pool may be there without its holder), else
    the group it is most strongly tied to (the sum of its projection weights to the group's other members;
    on a tie the earlier layer in ``layers`` wins). A group left with one person dissolves and that person
    tries its next group. The same group seen in two layers (a collusive ring that also goes to the
    pharmacy together) thus stays whole.

    Returns the communities (largest first, as :func:`detect_communities` orders them; persons in no group
    are communities of one) and the layer that made each one (``None`` for the singletons). ``resolution``
    may be given per layer (a mapping; :func:`component_communities` scales it per block of components).

    >>> import networkx as nx
    >>> g = nx.Graph()
    >>> g.add_edges_from([(a, b, {"weight": 4.0, "w_co_purchase": 4.0}) for a in "ABCDE" for b in "ABCDE" if a < b])
    >>> pool = "FGHIJKLM"
    >>> g.add_edges_from([(a, b, {"weight": 6.0, "w_co_counter": 6.0}) for a in pool for b in pool if a < b])
    >>> g.add_edges_from([("E", x, {"weight": 6.0, "w_co_counter": 6.0}) for x in "FGH"])  # E's card is in the pool
    >>> g.add_edges_from([(f"X{i}", f"Y{i}", {"weight": 6.0, "w_co_counter": 6.0}) for i in range(6)])  # couples
    >>> parts, layer = layered_communities(g, method="networkx", seed=1)
    >>> [("".join(sorted(c)), layer[c]) for c in parts[:3]]
    [('FGHIJKLM', 'co_counter'), ('ABCDE', 'co_purchase'), ('X0Y0', 'co_counter')]
    """
    groups: list[tuple[frozenset, str]] = []
    for name in layers:
        h = nx.Graph()
        h.add_edges_from((a, b, {"weight": d[f"w_{name}"]}) for a, b, d in g.edges(data=True)
                         if d.get(f"w_{name}", 0.0) > 0)
        gamma = resolution.get(name, 1.0) if isinstance(resolution, Mapping) else resolution
        groups += [(c, name) for c in detect_communities(h, method=method, seed=seed, resolution=gamma)
                   if len(c) >= 2]
    # Each person's groups, best first: a first layer's group, then by strength inside the group, then by
    # layer order and group order.
    options: dict = {}
    for k, (members, name) in enumerate(groups):
        for n in members:
            strength = sum(g[n][m].get("weight", 1.0) for m in g[n] if m in members)
            options.setdefault(n, []).append((name not in first, -strength, k))
    for n in options:
        options[n].sort()
    choice = {n: 0 for n in options}
    while True:
        count: dict[int, int] = {}
        for n, i in choice.items():
            if i < len(options[n]):
                count[options[n][i][-1]] = count.get(options[n][i][-1], 0) + 1
        lone = [n for n, i in choice.items() if i < len(options[n]) and count[options[n][i][-1]] < 2]
        if not lone:
            break
        for n in lone:
            choice[n] += 1
    final: dict[int, set] = {}
    for n, i in choice.items():
        if i < len(options[n]):
            final.setdefault(options[n][i][-1], set()).add(n)
    out = [(frozenset(m), groups[k][1]) for k, m in final.items()]
    placed = set().union(*(m for m, _ in out)) if out else set()
    out += [(frozenset([n]), None) for n in g.nodes if n not in placed]
    out.sort(key=lambda t: (-len(t[0]), min(map(str, t[0]))))
    return [c for c, _ in out], {c: name for c, name in out}


# What :func:`component_communities` maps over the blocks gives back: one row per person.
BLOCK_PARTS_SCHEMA = "block long, part long, psn_no string, layer string"
# A block: whole components of the projection, in the order of their smallest person, until it has this
# many persons (one call of the community code each: 10,380 components of `city` one by one took 106 s,
# the whole graph at once 2.8 s).
BLOCK_PERSONS = 5000

# ``map_blocks(frame, fn, schema)``: ``fn`` applied to the rows of each ``block`` of ``frame`` (a pandas
# frame in, one out), the results concatenated. In this process by default (:func:`map_here`); with Spark,
# ``applyInPandas`` on the executors (``features.graph.spark.SparkGraphInputs.map_blocks``).
MapBlocks = Callable[[pd.DataFrame, Callable[[pd.DataFrame], pd.DataFrame], str], pd.DataFrame]


def component_communities(
    g: nx.Graph,
    pairs: pd.DataFrame,
    *,
    layered: bool = True,
    method: str = "auto",
    seed: int = 0,
    resolution: float = 1.0,
    map_blocks: MapBlocks | None = None,
) -> tuple[list[frozenset], dict[frozenset, str | None]]:
    """:func:`layered_communities` (``layered=False``: :func:`detect_communities` of the summed weights) of
    the projection ``g`` block by block, joined: a block is a set of whole connected components
    (:data:`BLOCK_PERSONS`); ``pairs`` are the rows ``g`` was built from
    (``features.graph.projection.co_visit_graph``).

    Modularity at resolution γ is a sum over pairs inside a community, ``A_ij − γ k_i k_j / 2m``, and no
    community of an optimum spans two components (such a pair only subtracts). Within a block of total
    weight ``m_b`` the same terms are the block's own modularity at ``γ m_b / m``: each block is partitioned
    at that resolution (per layer: the layer's weights), so the sum that is maximised is the whole
    graph's; only the optimiser's path differs from one run over the whole graph (on `city`, 10,941 of
    10,944 communities the same). The blocks are independent: ``map_blocks`` runs them where it likes
    (Spark: side by side on the executors, each in one call of the same code), and the result does not
    depend on where or in which order — the blocks are cut from the data alone, each block's graph is
    rebuilt from its rows in ``pairs``' order, and its weights are summed exactly (``math.fsum``).

    Returns the communities, largest first and ties by their smallest person (as the functions above
    order them), and the layer of each (``None`` for the singletons and, unlayered, for all: the caller
    names the main one).

    >>> import pandas as pd
    >>> from features.graph.projection import co_visit_graph
    >>> rows = [(a, b, "co_visit") for a in "ABCD" for b in "ABCD" if a < b] + [("X", "Y", "co_counter")]
    >>> pairs = pd.DataFrame(rows, columns=["psn_a", "psn_b", "layer"]).assign(
    ...     shared_days=3, shared_events=3, shared_shops=1, expected=0.1, lift=30.0, surprise=5.0)
    >>> parts, layer = component_communities(co_visit_graph(None, pairs=pairs), pairs, method="networkx", seed=1)
    >>> [("".join(sorted(c)), layer[c]) for c in parts]
    [('ABCD', 'co_visit'), ('XY', 'co_counter')]
    """
    from features.graph.projection import LAYERS

    if g.number_of_nodes() == 0:
        return [], {}
    columns = [f"w_{name}" for name in LAYERS] if layered else ["weight"]
    totals = {c: math.fsum(d.get(c, 0.0) for _, _, d in g.edges(data=True)) for c in columns}
    frame = block_frame(g, pairs)

    def parts_of(rows: pd.DataFrame) -> pd.DataFrame:
        return _block_parts(rows, layered=layered, method=method, seed=seed, resolution=resolution, totals=totals)

    found = (map_blocks or map_here)(frame, parts_of, BLOCK_PARTS_SCHEMA)
    groups: dict[tuple[int, int], list] = {}
    layer_of_group: dict[tuple[int, int], str | None] = {}
    for b, part, psn, layer in found[["block", "part", "psn_no", "layer"]].itertuples(index=False, name=None):
        key = (int(b), int(part))
        groups.setdefault(key, []).append(psn)
        layer_of_group[key] = layer if isinstance(layer, str) else None
    out = [(frozenset(members), layer_of_group[key]) for key, members in groups.items()]
    out.sort(key=lambda t: (-len(t[0]), min(map(str, t[0]))))
    return [c for c, _ in out], {c: layer for c, layer in out}


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


def block_frame(g: nx.Graph, pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` (the rows the projection ``g`` was built from) with their position (``_row``) and their
    ``block``: whole connected components of ``g``, in the order of their smallest person, a new block
    begun once one holds :data:`BLOCK_PERSONS` persons. What :data:`MapBlocks` maps over."""
    block, size, n = {}, 0, 0
    for nodes in sorted((sorted(c, key=str) for c in nx.connected_components(g)), key=lambda c: str(c[0])):
        if size >= BLOCK_PERSONS:
            n, size = n + 1, 0
        block.update(dict.fromkeys(nodes, n))
        size += len(nodes)
    return pairs.assign(_row=range(len(pairs)), block=pairs["psn_a"].map(block).astype("int64"))


def block_graph(rows: pd.DataFrame) -> nx.Graph:
    """The projection's graph of one block's rows of :func:`block_frame` (in any order): built from them in
    their order in the whole ``pairs``, so each person's ties come in the same order as in the whole graph
    (sums over them are the same to the bit)."""
    from features.graph.projection import co_visit_graph

    keep = [c for c in rows.columns if c != "block" and not c.startswith("_")]  # the pairs' own columns
    return co_visit_graph(None, pairs=rows.sort_values("_row", kind="stable")[keep].reset_index(drop=True))


def _block_parts(rows: pd.DataFrame, *, layered: bool, method: str, seed: int, resolution: float,
                 totals: dict[str, float]) -> pd.DataFrame:
    """One block's communities as rows of :data:`BLOCK_PARTS_SCHEMA` (``rows``: its pairs, in any order)."""
    b = int(rows["block"].iloc[0])
    g = block_graph(rows)
    scaled = {}
    for column, total in totals.items():
        own = math.fsum(d.get(column, 0.0) for _, _, d in g.edges(data=True))
        scaled[column] = resolution * own / total if total > 0 else resolution
    if layered:
        parts, layer_of = layered_communities(g, method=method, seed=seed,
                                              resolution={c.removeprefix("w_"): r for c, r in scaled.items()})
    else:
        parts = detect_communities(g, method=method, seed=seed, resolution=scaled["weight"])
        layer_of = {}
    out = [(b, i, psn, layer_of.get(c)) for i, c in enumerate(parts) for psn in sorted(c, key=str)]
    return pd.DataFrame(out, columns=["block", "part", "psn_no", "layer"]).astype({"layer": object})


def map_here(frame: pd.DataFrame, fn, schema: str) -> pd.DataFrame:
    """:data:`MapBlocks` in this process, block after block."""
    outs = [fn(rows) for _, rows in frame.groupby("block", sort=True)]
    return pd.concat(outs, ignore_index=True) if outs else pd.DataFrame(columns=schema_columns(schema))


def schema_columns(schema: str) -> list[str]:
    """The column names of a Spark DDL schema string (``"a long, b string"`` → ``["a", "b"]``)."""
    return [c.split()[0] for c in schema.split(",")]

"""The patient–doctor–institution–pharmacy graph (就医关系图): edges from the warehouse, the person–person
co-visit projection scored against a null model, communities (社区发现), ring candidates (疑似团伙) and
per-node graph features. See docs/graph.md.

Modules, in pipeline order: ``edges`` (SQL), ``projection``, ``communities``, ``stats``, ``pagerank``,
``build`` (writes the warehouse tables), ``evaluate`` (ring recovery against the simulator's labels).
"""

from features.graph.communities import available_methods, detect_communities
from features.graph.pagerank import cross_fitted_pagerank, fold_of, personalised_pagerank
from features.graph.projection import co_purchase_pairs, co_visit_graph, co_visit_pairs, projection_pairs

__all__ = [
    "available_methods",
    "co_purchase_pairs",
    "co_visit_graph",
    "co_visit_pairs",
    "cross_fitted_pagerank",
    "detect_communities",
    "fold_of",
    "personalised_pagerank",
    "projection_pairs",
]

"""Writers of the case graph: GraphML, GEXF, Neo4j admin-import CSVs, an i2 Analyst's Notebook link table.

All of them come from one :class:`networkx.MultiDiGraph` (:func:`to_networkx`) whose attributes are
scalars only (str, int, float, bool) with the same keys and types on every node and on every edge, so
that GraphML and GEXF declare each attribute once. CSVs are UTF-8 without BOM, comma-separated, with a
header row (style pattern 10).
"""

from __future__ import annotations

import csv
from pathlib import Path

import networkx as nx

from serving.evidence_export.graph import EDGE_TYPES, NODE_TYPES, CaseGraph
from serving.evidence_export.redact import Redactor

__all__ = ["to_networkx", "write_graphml", "write_gexf", "write_neo4j", "write_i2", "write_csv",
           "NODE_ATTRS", "EDGE_ATTRS"]

# attribute -> (python type, Neo4j type suffix); the order is the column order of the CSVs
NODE_ATTRS = {"node_type": (str, ""), "type_zh": (str, ""), "label": (str, ""), "code": (str, ""),
              "name": (str, ""), "certno": (str, ""), "region": (str, ""), "gender": (str, ""),
              "employer": (str, ""), "community_id": (str, ""), "seed": (bool, ":boolean"),
              "n_events": (int, ":long"), "amount": (float, ":double")}
EDGE_ATTRS = {"rel_type": (str, ""), "type_zh": (str, ""), "kind": (str, ""), "n_events": (int, ":long"),
              "amount": (float, ":double"), "first_date": (str, ":date"), "last_date": (str, ":date"),
              "shared_days": (int, ":long"), "surprise": (float, ":double")}


def to_networkx(g: CaseGraph, r: Redactor) -> nx.MultiDiGraph:
    """The case graph with exported ids (``person:P001``, ``institution:H...``) and scalar attributes.

    Parallel edges (e.g. a co-visit and a co-purchase tie of one pair) are keyed by their ``rel_type``.
    ``certno`` is present only in a clear package.
    """
    out = nx.MultiDiGraph(name="case graph", redaction=r.mode)
    ids = {key: node_id(key, r) for key in g.nodes}
    for key, n in g.nodes.items():
        t = n["node_type"]
        is_psn = t == "psn"
        code = r.person(n["code"]) if is_psn else n["code"]
        name = r.name(n["code"]) if is_psn else n["name"]
        attrs = {"node_type": NODE_TYPES[t][0], "type_zh": NODE_TYPES[t][2],
                 "label": (name or r.alias.get(n["code"], code)) if is_psn else (name or code),
                 "code": code, "name": name, "certno": r.certno(n["code"]) if is_psn else "",
                 "region": n["region"], "gender": n["gender"], "employer": n["employer"],
                 "community_id": n["community_id"], "seed": bool(n["seed"]), "n_events": int(n["n_events"]),
                 "amount": float(n["amount"])}
        if not r.clear:
            attrs.pop("certno")
        out.add_node(ids[key], **attrs)
    for e in g.edges:
        rel, zh = EDGE_TYPES.get(e["kind"], (e["kind"].upper(), e["kind"]))
        out.add_edge(ids[e["src"]], ids[e["dst"]], key=rel,
                     **{"rel_type": rel, "type_zh": zh, "kind": e["kind"], "n_events": int(e["n_events"]),
                        "amount": float(e["amount"]), "first_date": e["first_date"], "last_date": e["last_date"],
                        "shared_days": int(e["shared_days"]), "surprise": float(e["surprise"])})
    return out


def node_id(key: str, r: Redactor) -> str:
    t, _, code = key.partition(":")
    return f"{NODE_TYPES[t][0]}:{r.person(code) if t == 'psn' else code}"


def write_graphml(g: nx.MultiDiGraph, path: Path) -> Path:
    nx.write_graphml(g, path, encoding="utf-8", prettyprint=True, named_key_ids=True)
    return path


def write_gexf(g: nx.MultiDiGraph, path: Path) -> Path:
    nx.write_gexf(g, path, encoding="utf-8", prettyprint=True)
    return path


def write_neo4j(g: nx.MultiDiGraph, folder: Path) -> tuple[Path, Path]:
    """``neo4j/nodes.csv`` (``id:ID``, ``:LABEL``, properties) and ``neo4j/relationships.csv``
    (``:START_ID``, ``:END_ID``, ``:TYPE``, properties), for ``neo4j-admin database import full``."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = {v[0]: v[1] for v in NODE_TYPES.values()}
    attrs = _node_attrs(g)
    nodes_path = folder / "nodes.csv"
    write_csv(nodes_path, ["id:ID", ":LABEL"] + [a + NODE_ATTRS[a][1] for a in attrs],
              ([n, labels[d["node_type"]]] + [_cell(d.get(a, "")) for a in attrs] for n, d in g.nodes(data=True)))
    rel_path = folder / "relationships.csv"
    eattrs = [a for a in EDGE_ATTRS if a != "rel_type"]
    write_csv(rel_path, [":START_ID", ":END_ID", ":TYPE"] + [a + EDGE_ATTRS[a][1] for a in eattrs],
              ([u, v, d["rel_type"]] + [_cell(d[a]) for a in eattrs] for u, v, d in g.edges(data=True)))
    return nodes_path, rel_path


def write_i2(g: nx.MultiDiGraph, path: Path) -> Path:
    """A link table for i2 Analyst's Notebook import: one row per link, both ends' attributes on the row."""
    end = _node_attrs(g)
    header = (["link_id", "link_type", "link_type_zh"] + ["from_id"] + [f"from_{a}" for a in end]
              + ["to_id"] + [f"to_{a}" for a in end] + [a for a in EDGE_ATTRS if a not in ("rel_type", "type_zh")])
    rows = []
    for i, (u, v, d) in enumerate(g.edges(data=True), start=1):
        rows.append([f"L{i:05d}", d["rel_type"], d["type_zh"], u] + [_cell(g.nodes[u].get(a, "")) for a in end]
                    + [v] + [_cell(g.nodes[v].get(a, "")) for a in end]
                    + [_cell(d[a]) for a in EDGE_ATTRS if a not in ("rel_type", "type_zh")])
    return write_csv(path, header, rows)


def write_csv(path: Path, header: list[str], rows) -> Path:
    """A CSV in UTF-8 without BOM (``\\n`` line ends, minimal quoting)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        for row in rows:
            w.writerow(row)
    return path


def _node_attrs(g: nx.MultiDiGraph) -> list[str]:
    """The node attributes in CSV order; ``certno`` only when the package is clear."""
    clear = any("certno" in d for _, d in g.nodes(data=True))
    return [a for a in NODE_ATTRS if a != "certno" or clear]


def _cell(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)

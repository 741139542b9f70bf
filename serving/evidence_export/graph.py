"""The case graph (案件关系图) of a clue: its entities and their neighbourhood to ``depth`` hops.

Read from the warehouse's ``graph_edges`` (care, visit, billing, purchase, works_at) and
``graph_covisit_pairs`` (co-visits and co-purchases between persons), undirected for the walk. Each hop
adds the neighbours of the current frontier, strongest ties (amount, then events) first, until
``max_nodes``; the graph then holds every edge of the two tables between the nodes kept (the induced
subgraph), so a reader sees all the ties among the people and providers named.

Nodes are keyed ``"<type>:<code>"`` with the warehouse's node types (``psn``, ``prac``, ``fixmedins``,
``pharmacy``); :data:`NODE_TYPES` gives the exported type names, :data:`EDGE_TYPES` the relationship
names. Persons are renamed later by the package's redaction (see :mod:`serving.evidence_export.redact`).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field, fields

import duckdb

__all__ = ["CaseGraph", "case_graph", "seeds_of", "NODE_TYPES", "EDGE_TYPES", "PERSON_TIES"]

# warehouse node type -> (exported type, Neo4j label, 中文)
NODE_TYPES = {
    "psn": ("person", "Person", "参保人"),
    "prac": ("doctor", "Doctor", "医师"),
    "fixmedins": ("institution", "Institution", "医疗机构"),
    "pharmacy": ("pharmacy", "Pharmacy", "零售药店"),
}
# warehouse edge kind -> (relationship type, 中文)
EDGE_TYPES = {
    "care": ("VISITED", "就医"),
    "visit": ("SEEN_BY", "就诊医师"),
    "billing": ("PRESCRIBED_BY", "开单医师"),
    "purchase": ("PURCHASED_AT", "购药"),
    "works_at": ("WORKS_AT", "执业于"),
    "co_visit": ("CO_VISITS", "结伴就医"),
    "co_purchase": ("CO_PURCHASES", "共同购药"),
    "co_counter": ("CO_SWIPES", "同柜台连续刷卡"),
}
# the person–person layers of the projection (graph_covisit_pairs): dated by what the two persons shared
PERSON_TIES = ("co_visit", "co_purchase", "co_counter")


def _co_purchase_window_days() -> int:
    """The co-purchase window of the projection (the build config does not set it: the function's default)."""
    from features.graph.projection import co_purchase_pairs

    return int(inspect.signature(co_purchase_pairs).parameters["window_days"].default)


@dataclass
class CaseGraph:
    """Nodes ``key -> {node_type, code}`` and edges (dicts with ``src``, ``dst``, ``kind`` and figures)."""

    seeds: list[str]
    nodes: dict[str, dict] = field(default_factory=dict)
    edges: list[dict] = field(default_factory=list)
    depth: int = 1
    truncated: bool = False

    def persons(self) -> list[str]:
        return sorted(n["code"] for n in self.nodes.values() if n["node_type"] == "psn")


def seeds_of(clue: dict) -> list[str]:
    """The node keys a clue is about: its entity, or a ring's members (``evidence.graph.members``)."""
    etype, eid = clue["entity_type"], str(clue["entity_id"])
    if etype == "ring":
        members = ((clue.get("evidence") or {}).get("graph") or {}).get("members") or []
        out = []
        for m in members:
            t, _, code = str(m).partition(":")
            out.append(f"{'psn' if t == 'person' else t}:{code}")
        return sorted(dict.fromkeys(out))
    return [f"{etype}:{eid}"]


def case_graph(con: duckdb.DuckDBPyConnection, seeds: list[str], *, depth: int = 1,
               max_nodes: int = 400) -> CaseGraph:
    """The neighbourhood of ``seeds`` to ``depth`` hops (see the module docstring)."""
    if depth < 0:
        raise ValueError(f"depth must be 0 or more, not {depth}")
    con.execute("CREATE OR REPLACE TEMP VIEW _case_ties AS "
                "SELECT src_type, src_id, dst_type, dst_id, kind, n_events, CAST(amount AS DOUBLE) AS amount "
                "FROM graph_edges " + (
                    "UNION ALL SELECT 'psn', psn_a, 'psn', psn_b, layer, shared_events, 0.0 FROM graph_covisit_pairs"
                    if _has_table(con, "graph_covisit_pairs") else ""))
    kept = dict.fromkeys(seeds)
    frontier = list(seeds)
    truncated = False
    for _ in range(depth):
        if not frontier or len(kept) >= max_nodes:
            truncated = truncated or bool(frontier)
            break
        rows = con.execute("""
            WITH f AS (SELECT split_part(k, ':', 1) AS t, substr(k, strpos(k, ':') + 1) AS i FROM unnest($f) AS u(k))
            SELECT nt, ni, max(amount) AS a, max(n_events) AS n FROM (
                SELECT e.dst_type AS nt, e.dst_id AS ni, e.amount, e.n_events FROM _case_ties e
                    JOIN f ON e.src_type = f.t AND e.src_id = f.i
                UNION ALL
                SELECT e.src_type, e.src_id, e.amount, e.n_events FROM _case_ties e
                    JOIN f ON e.dst_type = f.t AND e.dst_id = f.i)
            GROUP BY 1, 2 ORDER BY a DESC, n DESC, 1, 2""", {"f": frontier}).fetchall()
        frontier = []
        for nt, ni, _a, _n in rows:
            key = f"{nt}:{ni}"
            if key in kept:
                continue
            if len(kept) >= max_nodes:
                truncated = True
                break
            kept[key] = None
            frontier.append(key)
    g = CaseGraph(seeds=list(seeds), depth=depth, truncated=truncated)
    for key in kept:
        t, _, code = key.partition(":")
        g.nodes[key] = {"node_type": t, "code": code, "seed": key in seeds}
    keys = list(kept)
    edge_rows = con.execute("""
        WITH k AS (SELECT split_part(k, ':', 1) AS t, substr(k, strpos(k, ':') + 1) AS i FROM unnest($k) AS u(k))
        SELECT e.src_type, e.src_id, e.dst_type, e.dst_id, e.kind, e.n_events, CAST(e.amount AS DOUBLE),
               strftime(e.first_date, '%Y-%m-%d'), strftime(e.last_date, '%Y-%m-%d'), NULL, NULL
        FROM graph_edges e JOIN k a ON e.src_type = a.t AND e.src_id = a.i
                           JOIN k b ON e.dst_type = b.t AND e.dst_id = b.i
        ORDER BY 1, 2, 3, 4, 5""", {"k": keys}).fetchall()
    if _has_table(con, "graph_covisit_pairs"):
        edge_rows += con.execute("""
            WITH k AS (SELECT substr(k, 5) AS i FROM unnest($k) AS u(k) WHERE k LIKE 'psn:%')
            SELECT 'psn', p.psn_a, 'psn', p.psn_b, p.layer, p.shared_events, 0.0, NULL, NULL,
                   p.shared_days, CAST(p.surprise AS DOUBLE)
            FROM graph_covisit_pairs p JOIN k a ON p.psn_a = a.i JOIN k b ON p.psn_b = b.i
            ORDER BY 2, 4, 5""", {"k": keys}).fetchall()
    for st, si, dt, di, kind, n, amount, first, last, days, surprise in edge_rows:
        g.edges.append({"src": f"{st}:{si}", "dst": f"{dt}:{di}", "kind": kind, "n_events": int(n or 0),
                        "amount": round(float(amount or 0.0), 2), "first_date": first or "", "last_date": last or "",
                        "shared_days": int(days or 0), "surprise": round(float(surprise or 0.0), 3)})
    _date_person_ties(con, g)
    _describe_nodes(con, g)
    return g


def _date_person_ties(con: duckdb.DuckDBPyConnection, g: CaseGraph) -> None:
    """First and last date of what each person–person tie shares (同日同机构就医, 同柜台连刷, 同药同店购药).

    ``graph_covisit_pairs`` keeps counts, not dates: the dates are found again in the pair's own visits, with
    the window and hub of the graph build that made the pairs (``graph_build_log``), so they cover the
    shared events that were counted. Co-purchase dates are the days both bought one drug at one shop within
    the projection's window (also when the drug was not one they were oversupplied with).
    """
    ties = [(e["kind"], e["src"].partition(":")[2], e["dst"].partition(":")[2]) for e in g.edges
            if e["kind"] in PERSON_TIES]
    if not ties:
        return
    from features.graph.edges import _IS_PHARMACY, _VISITS_SQL

    config = _graph_build_config(con)
    hub = {"fixmedins": "hub_id", "dept": "dept_id", "prac": "prac_code"}.get(config.visit_hub, "hub_id")
    rows = con.execute(f"""
        WITH _case_ties_in AS (SELECT unnest($kinds) AS kind, unnest($a) AS psn_a, unnest($b) AS psn_b),
        persons AS (SELECT psn_a AS psn_no FROM _case_ties_in UNION SELECT psn_b FROM _case_ties_in),
        v AS (SELECT * FROM ({_VISITS_SQL}) WHERE psn_no IN (SELECT psn_no FROM persons)),
        drugs AS (
            SELECT DISTINCT m.psn_no, m.fixmedins_code AS shop, CAST(m.begntime AS DATE) AS day, fl.hilist_code
            FROM fee_list_d fl JOIN mdtrt_d m USING (mdtrt_id) LEFT JOIN fixmedins f ON f.fixmedins_code = m.fixmedins_code
            WHERE {_IS_PHARMACY} AND fl.hilist_code IS NOT NULL
              AND m.psn_no IN (SELECT psn_no FROM persons)),
        shared AS (
            SELECT t.kind, t.psn_a, t.psn_b, least(a.visit_date, b.visit_date) AS d0,
                   greatest(a.visit_date, b.visit_date) AS d1
            FROM _case_ties_in t JOIN v a ON a.psn_no = t.psn_a JOIN v b ON b.psn_no = t.psn_b
            WHERE t.kind = 'co_visit' AND a.hub_type = 'fixmedins' AND b.hub_type = 'fixmedins'
              AND a.{hub} = b.{hub} AND abs(date_diff('day', a.visit_date, b.visit_date)) < $window_days
            UNION ALL
            SELECT t.kind, t.psn_a, t.psn_b, a.visit_date, a.visit_date
            FROM _case_ties_in t JOIN v a ON a.psn_no = t.psn_a JOIN v b ON b.psn_no = t.psn_b
            WHERE t.kind = 'co_counter' AND a.hub_type = 'pharmacy' AND b.hub_type = 'pharmacy'
              AND a.hub_id = b.hub_id AND a.visit_date = b.visit_date AND a.visit_sec >= 0 AND b.visit_sec >= 0
              AND abs(a.visit_sec - b.visit_sec) <= $window_sec
            UNION ALL
            SELECT t.kind, t.psn_a, t.psn_b, least(a.day, b.day), greatest(a.day, b.day)
            FROM _case_ties_in t JOIN drugs a ON a.psn_no = t.psn_a JOIN drugs b ON b.psn_no = t.psn_b
            WHERE t.kind = 'co_purchase' AND a.shop = b.shop AND a.hilist_code = b.hilist_code
              AND abs(date_diff('day', a.day, b.day)) < $purchase_window_days)
        SELECT kind, psn_a, psn_b, strftime(min(d0), '%Y-%m-%d'), strftime(max(d1), '%Y-%m-%d')
        FROM shared GROUP BY 1, 2, 3""",
        {"kinds": [t[0] for t in ties], "a": [t[1] for t in ties], "b": [t[2] for t in ties],
         "window_days": int(config.window_days), "window_sec": float(config.window_minutes) * 60,
         "purchase_window_days": _co_purchase_window_days()}).fetchall()
    dates = {(kind, a, b): (first, last) for kind, a, b, first, last in rows}
    for e in g.edges:
        if e["kind"] in PERSON_TIES:
            first, last = dates.get((e["kind"], e["src"].partition(":")[2], e["dst"].partition(":")[2]), ("", ""))
            e["first_date"], e["last_date"] = e["first_date"] or first, e["last_date"] or last


def _graph_build_config(con: duckdb.DuckDBPyConnection):
    """The options of the newest graph build (``graph_build_log``), else the defaults."""
    from features.graph.build import GraphConfig

    if _has_table(con, "graph_build_log"):
        row = con.execute("SELECT config FROM graph_build_log ORDER BY built_at DESC LIMIT 1").fetchone()
        if row and row[0]:
            known = {f.name for f in fields(GraphConfig)}
            return GraphConfig(**{k: v for k, v in json.loads(row[0]).items() if k in known})
    return GraphConfig()


def _describe_nodes(con: duckdb.DuckDBPyConnection, g: CaseGraph) -> None:
    """Name, region and community of every node; events and amount summed over its case edges."""
    codes = {t: [n["code"] for n in g.nodes.values() if n["node_type"] == t] for t in NODE_TYPES}
    inst = dict(((c, (name, adm)) for c, name, adm in con.execute(
        "SELECT fixmedins_code, fixmedins_name, admdvs FROM fixmedins WHERE fixmedins_code IN (SELECT unnest($c))",
        {"c": codes["fixmedins"] + codes["pharmacy"]}).fetchall()))
    prac_at = {}
    if _has_table(con, "practitioner"):
        prac_at = dict(con.execute("SELECT prac_code, fixmedins_code FROM practitioner "
                                   "WHERE prac_code IN (SELECT unnest($c))", {"c": codes["prac"]}).fetchall())
    psn = {p: (gend, adm) for p, gend, adm in con.execute(
        "SELECT psn_no, gend, insu_admdvs FROM psn_info WHERE psn_no IN (SELECT unnest($c))",
        {"c": codes["psn"]}).fetchall()}
    community = {}
    if _has_table(con, "graph_membership"):
        community = {(t, i): c for t, i, c in con.execute(
            "SELECT node_type, node_id, community_id FROM graph_membership WHERE node_type = 'psn' "
            "AND node_id IN (SELECT unnest($c))", {"c": codes["psn"]}).fetchall()}
    totals: dict[str, list] = {k: [0, 0.0] for k in g.nodes}
    for e in g.edges:
        if e["kind"] in PERSON_TIES or e["kind"] == "works_at":
            continue
        for k in (e["src"], e["dst"]):
            totals[k][0] += e["n_events"]
            totals[k][1] += e["amount"]
    for key, n in g.nodes.items():
        t, code = n["node_type"], n["code"]
        name, region, gender, employer = "", "", "", ""
        if t in ("fixmedins", "pharmacy"):
            name, region = (str(x or "") for x in inst.get(code, ("", "")))
        elif t == "prac":
            employer = str(prac_at.get(code) or "")
            name = f"医师 {code}"
            region = str((inst.get(employer) or ("", ""))[1] or "")
        elif t == "psn":
            gender, region = (str(x or "") for x in psn.get(code, ("", "")))
        n.update({"name": name, "region": region, "gender": {"1": "男", "2": "女"}.get(gender, ""),
                  "employer": employer, "community_id": str(community.get((t, code)) or ""),
                  "n_events": int(totals[key][0]), "amount": round(totals[key][1], 2)})


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", [name]).fetchone()[0])

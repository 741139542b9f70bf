"""The claims behind a clue and its graph neighbourhood (线索证据), read from the warehouse read-only.

A clue's ``evidence`` names settlements (``setl_id``) and, for a ring, its members
(``graph.members``: ``"psn:<psn_no>"`` ...). :func:`claims` reads those settlements with their
institution, doctor, diagnosis and amounts; :func:`neighbourhood` draws the entity's surroundings: the
entity, the ring members, the people, doctors and institutions of the claims, and the edges between
them from the warehouse graph (``graph_edges``: care, purchase, visit, works_at) when it exists, else
from the claims themselves.

The warehouse is opened read-only for each call and closed again, so that a batch job may write it
meanwhile; when it cannot be opened (being written, moved) the answer says so instead of failing the
clue page. Person numbers (psn_no) are pseudonyms; resident IDs are never selected.

Opening the warehouse is most of the cost (60–200 ms on ``small`` with busy cores, the queries
10–80 ms): :func:`claims_and_graph` answers both over one connection, and :class:`EvidenceCache` keeps
recent answers per clue for as long as the warehouse file is unchanged (its size and modification time).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path

import duckdb

from features.contract import code_values
from serving.evidence_export.graph import NODE_TYPES
from serving.evidence_export.report import NODE_COLOURS
from serving.scoring import masked

__all__ = ["claims", "neighbourhood", "rule_hit_lines", "claims_and_graph", "graph_legend", "EvidenceCache",
           "MAX_CLAIMS", "MAX_NODES", "MAX_HITS_PER_RULE", "MAX_LINES_PER_HIT", "NODE_ZH", "NODE_COLOUR"]

MAX_CLAIMS = 200
MAX_NODES = 60
# The clue page shows at most this many hits of each rule, and this many flagged fee lines of each hit.
MAX_HITS_PER_RULE = 20
MAX_LINES_PER_HIT = 10
# Clue entity type -> the rule_hits column naming it (as models.screening joins the hits to a clue).
_HIT_COLUMN = {"psn": "psn_no", "prac": "prac_code", "fixmedins": "fixmedins_code", "pharmacy": "fixmedins_code"}
# Node type -> 中文 and colour: the evidence package's (its report's graph, the PDF) for the people and
# providers, so that the page and the PDF cannot drift; a ring (团伙) is drawn only on the page.
NODE_ZH = {t: zh for t, (_, _, zh) in NODE_TYPES.items()} | {"ring": "团伙"}
NODE_COLOUR = {t: NODE_COLOURS[exported] for t, (exported, _, _) in NODE_TYPES.items()} | {"ring": "#6e7781"}
EDGE_ZH = {"care": "就医", "purchase": "购药", "visit": "就诊医师", "works_at": "执业于", "member": "成员",
           "counter": "刷卡药店", "claim": "结算"}


def claims_and_graph(warehouse: Path | None, clue: dict) -> tuple[dict, dict]:
    """:func:`claims` of the clue's evidence settlements and its :func:`neighbourhood`, over one connection.

    The claims carry the clue's rule hits from the warehouse (:func:`rule_hit_lines`) under ``hits``, and
    each settlement row the ids of the rules that hit it (``rule_ids``), so that the page can mark them.
    """
    setl_ids = list((clue.get("evidence") or {}).get("setl_id") or [])
    con, note = _open(warehouse)
    try:
        found = claims(warehouse, setl_ids, con=con, note=note)
        hits = rule_hit_lines(con, clue) if con is not None else {}
        behind: dict[str, list[str]] = {}
        for rule_id, rows in hits.items():
            for h in rows:
                if h["setl_id"] and rule_id not in behind.setdefault(h["setl_id"], []):
                    behind[h["setl_id"]].append(rule_id)
        found = found | {"hits": hits, "rows": [r | {"rule_ids": behind.get(r["setl_id"], [])} for r in found["rows"]]}
        return found, neighbourhood(warehouse, clue, found["rows"], con=con, note=note)
    finally:
        if con is not None:
            con.close()


class EvidenceCache:
    """Recent :func:`claims_and_graph` answers, per clue, valid while the warehouse file is unchanged.

    The key is the clue's entity and evidence (what the answer is made from) and the warehouse's path,
    size and modification time: a rebuilt or re-ingested warehouse is read afresh. At most ``size``
    answers are kept (least recently used go first); safe to share between threads.
    """

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._answers: OrderedDict[str, tuple[dict, dict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, warehouse: Path | None, clue: dict) -> tuple[dict, dict]:
        key = self._key(warehouse, clue)
        with self._lock:
            if key is not None and key in self._answers:
                self._answers.move_to_end(key)
                return self._answers[key]
        answer = claims_and_graph(warehouse, clue)
        if key is not None and answer[0]["available"] and answer[1]["available"]:
            with self._lock:
                self._answers[key] = answer
                while len(self._answers) > self.size:
                    self._answers.popitem(last=False)
        return answer

    @staticmethod
    def _key(warehouse: Path | None, clue: dict) -> str | None:
        try:
            st = Path(warehouse).stat() if warehouse is not None else None
        except OSError:
            return None
        if st is None:
            return None
        made_of = [str(warehouse), st.st_size, st.st_mtime_ns, clue.get("entity_type"), clue.get("entity_id"),
                   clue.get("entity_name"), clue.get("evidence")]
        return hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def claims(warehouse: Path | None, setl_ids: list[str], *, limit: int = MAX_CLAIMS,
           con: duckdb.DuckDBPyConnection | None = None, note: str | None = None) -> dict:
    """The settlements ``setl_ids`` (at most ``limit``): ``{available, note, total, rows}``.

    ``con``: an open warehouse connection to use (left open); ``note`` why there is none.
    """
    ids = [str(s) for s in dict.fromkeys(setl_ids or [])][:limit]
    if not ids:
        return {"available": True, "note": "线索证据中没有结算 (no settlements in the evidence)", "total": 0,
                "rows": []}
    own = con is None and note is None
    if own:
        con, note = _open(warehouse)
    if con is None:
        return {"available": False, "note": note, "total": len(setl_ids or []), "rows": []}
    try:
        # each table filtered by the wanted ids first: a correlated count over fee_list_d, or a join to the
        # whole of mdtrt_d, read the whole table on every clue opened (city: 0.6 s a clue, now 65 ms)
        cur = con.execute("""
            WITH wanted AS (SELECT DISTINCT unnest($ids) AS setl_id),
            s AS (SELECT * FROM setl_d WHERE setl_id IN (SELECT setl_id FROM wanted)),
            m AS (SELECT mdtrt_id, chfpdr_code, dscg_maindiag_name FROM mdtrt_d
                  WHERE mdtrt_id IN (SELECT mdtrt_id FROM s)),
            n AS (SELECT setl_id, count(*) AS n_lines FROM fee_list_d
                  WHERE setl_id IN (SELECT setl_id FROM wanted) GROUP BY setl_id)
            SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.fixmedins_code, i.fixmedins_name, s.med_type,
                   strftime(s.setl_time, '%Y-%m-%d %H:%M') AS setl_time,
                   CAST(s.medfee_sumamt AS DOUBLE) AS medfee_sumamt,
                   CAST(s.fund_pay_sumamt AS DOUBLE) AS fund_pay_sumamt, CAST(s.psn_pay AS DOUBLE) AS psn_pay,
                   m.chfpdr_code AS prac_code, coalesce(m.dscg_maindiag_name, s.dise_name) AS diagnosis,
                   i.admdvs AS fixmedins_admdvs, coalesce(n.n_lines, 0) AS n_lines
            FROM s
            LEFT JOIN fixmedins i USING (fixmedins_code)
            LEFT JOIN m USING (mdtrt_id)
            LEFT JOIN n USING (setl_id)
            ORDER BY s.fund_pay_sumamt DESC, s.setl_id""", {"ids": ids})
        cols = [d[0] for d in cur.description]
        med_types = code_values("med_type")
        rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        rows = [r | {"med_type_zh": med_types.get(r["med_type"], "")} for r in rows]
    except duckdb.Error as e:
        return {"available": False, "note": f"结算读取失败 (cannot read settlements): {type(e).__name__}",
                "total": len(setl_ids), "rows": []}
    finally:
        if own:
            con.close()
    return masked({"available": True, "note": None, "total": len(setl_ids), "rows": rows,
                   "fund_pay_sumamt": round(sum(r["fund_pay_sumamt"] or 0 for r in rows), 2)})


def rule_hit_lines(con: duckdb.DuckDBPyConnection, clue: dict, *, per_rule: int = MAX_HITS_PER_RULE,
                   per_hit: int = MAX_LINES_PER_HIT) -> dict[str, list[dict]]:
    """The warehouse's ``rule_hits`` behind the clue's rule hits: rule id -> its hits (largest amount first,
    at most ``per_rule``), each with its message (提示), policy basis (政策依据), settlement and the fee lines
    it flags (``lines``: at most ``per_hit``, ``n_lines`` all of them).

    The hits are found as the screening found them: on the clue's person, doctor or institution (a ring:
    its members). Empty when the warehouse has no rule hits (rules not run) or the clue has none.
    """
    rule_ids = [str(h["rule_id"]) for h in clue.get("rule_hits") or [] if isinstance(h, dict) and h.get("rule_id")]
    etype, eid = clue.get("entity_type"), str(clue.get("entity_id"))
    if etype == "ring":
        members = ((clue.get("evidence") or {}).get("graph") or {}).get("members") or []
        column, keys = "psn_no", [_key(m).split(":", 1)[1] for m in members if _key(m).startswith("psn:")]
    else:
        column, keys = _HIT_COLUMN.get(etype), [eid]
    if not rule_ids or column is None or not keys:
        return {}
    have = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "rule_hits" not in have:
        return {}
    try:
        cur = con.execute(f"""
            WITH h AS (
                SELECT hit_id, rule_id, setl_id, mdtrt_id, psn_no, message_zh, basis_zh,
                       CAST(amount_at_risk AS DOUBLE) AS amount_at_risk,
                       strftime(event_time, '%Y-%m-%d %H:%M') AS event_time, evidence,
                       row_number() OVER (PARTITION BY rule_id ORDER BY amount_at_risk DESC NULLS LAST, hit_id) AS n
                FROM rule_hits
                WHERE {column} IN (SELECT unnest($keys)) AND rule_id IN (SELECT unnest($rules)))
            SELECT hit_id, rule_id, setl_id, mdtrt_id, psn_no, message_zh, basis_zh, amount_at_risk, event_time,
                   len(evidence) AS n_lines, evidence[1:$per_hit] AS shown
            FROM h WHERE n <= $per_rule ORDER BY rule_id, n""",
                          {"keys": keys, "rules": rule_ids, "per_rule": per_rule, "per_hit": per_hit})
        cols = [d[0] for d in cur.description]
        hits = [dict(zip(cols, r)) for r in cur.fetchall()]
        wanted = sorted({sn for h in hits for sn in h["shown"] or []})
        lines = {}
        if wanted and "fee_list_d" in have:
            cur = con.execute("""
                SELECT bkkp_sn, setl_id, strftime(fee_ocur_time, '%Y-%m-%d %H:%M') AS fee_ocur_time, hilist_code,
                       hilist_name, cnt, CAST(pric AS DOUBLE) AS pric,
                       CAST(det_item_fee_sumamt AS DOUBLE) AS det_item_fee_sumamt
                FROM fee_list_d WHERE bkkp_sn IN (SELECT unnest($sn))""", {"sn": wanted})
            lcols = [d[0] for d in cur.description]
            lines = {r[0]: dict(zip(lcols, r)) for r in cur.fetchall()}
    except duckdb.Error:
        return {}
    out: dict[str, list[dict]] = {}
    for h in hits:
        shown = [lines[sn] for sn in h.pop("shown") or [] if sn in lines]
        out.setdefault(h["rule_id"], []).append(h | {"lines": shown})
    return masked(out)


def neighbourhood(warehouse: Path | None, clue: dict, claim_rows: list[dict], *, max_nodes: int = MAX_NODES,
                  con: duckdb.DuckDBPyConnection | None = None, note: str | None = None) -> dict:
    """Nodes and edges around the clue's entity: ``{available, note, center, nodes, edges, legend}``.

    Each node is ``{id: "type:id", type, type_zh, label, role, colour, setl_ids}``: role ``center``,
    ``member`` or ``linked``; label the institution's name where the warehouse has one, else the code or
    pseudonym; ``setl_ids`` the claims among ``claim_rows`` it takes part in (a ring: its members'). Each
    edge is ``{source, target, kind, kind_zh, n_events, amount}``; ``legend`` is :func:`graph_legend`.
    """
    etype, eid = clue["entity_type"], str(clue["entity_id"])
    center = f"{etype}:{eid}"
    graph = (clue.get("evidence") or {}).get("graph") or {}
    nodes: dict[str, dict] = {center: _node(center, "center", clue.get("entity_name"))}
    edges: dict[tuple[str, str, str], dict] = {}
    for m in (graph.get("members") or [])[:max_nodes]:
        key = _key(m)
        nodes.setdefault(key, _node(key, "member"))
        if etype == "ring":
            edges[(center, key, "member")] = _edge(center, key, "member")
    if etype == "ring" and graph.get("counter"):  # a card pool: the pharmacy whose counter swiped the cards
        key = f"pharmacy:{graph['counter']}"
        nodes.setdefault(key, _node(key, "linked"))
        edges[(center, key, "counter")] = _edge(center, key, "counter")
    for r in claim_rows:
        for key in _claim_keys(r):
            if len(nodes) < max_nodes:
                nodes.setdefault(key, _node(key, "linked", r.get("fixmedins_name") if key.startswith(
                    ("fixmedins:", "pharmacy:")) else None))
    own = con is None and note is None
    if own:
        con, note = _open(warehouse)
    if con is not None:
        try:
            _graph_edges(con, nodes, edges)
            _institution_names(con, nodes)
        except duckdb.Error as e:
            note = f"关系图读取失败 (cannot read graph edges): {type(e).__name__}"
        finally:
            if own:
                con.close()
    if not any(e["kind"] not in ("member", "counter") for e in edges.values()):  # no warehouse graph: claims
        for r in claim_rows:
            p, h = f"psn:{r.get('psn_no')}", f"{_inst_type(r)}:{r.get('fixmedins_code')}"
            if p in nodes and h in nodes:
                e = edges.setdefault((p, h, "claim"), _edge(p, h, "claim"))
                e["n_events"] += 1
                e["amount"] = round(e["amount"] + float(r.get("fund_pay_sumamt") or 0), 2)
    _claims_of_nodes(nodes, claim_rows)
    return masked({"available": note is None, "note": note, "center": center,
                   "community_id": graph.get("community_id"), "nodes": list(nodes.values()),
                   "edges": list(edges.values()), "legend": graph_legend(n["type"] for n in nodes.values())})


def graph_legend(types=()) -> list[dict]:
    """The legend of the clue page's graph: ``{type, type_zh, colour}`` of every person and provider type
    (the PDF's colours, in its order), then of the other types among ``types`` (a ring).

    >>> [(x["type"], x["colour"]) for x in graph_legend()][:2]
    [('psn', '#d62728'), ('prac', '#1f77b4')]
    """
    shown = list(NODE_TYPES) + sorted(set(types) - set(NODE_TYPES))
    return [{"type": t, "type_zh": NODE_ZH.get(t, t), "colour": NODE_COLOUR.get(t, NODE_COLOUR["ring"])}
            for t in shown]


# -- private ------------------------------------------------------------------------------------------


def _open(warehouse: Path | None) -> tuple[duckdb.DuckDBPyConnection | None, str | None]:
    if warehouse is None or not Path(warehouse).is_file():
        return None, "仓库不可用 (warehouse not available)"
    try:
        return duckdb.connect(str(warehouse), read_only=True), None
    except duckdb.Error as e:  # e.g. held for writing by an ingest
        return None, f"仓库暂不可读 (warehouse busy, try again): {type(e).__name__}"


def _graph_edges(con, nodes: dict[str, dict], edges: dict) -> None:
    have = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "graph_edges" not in have:
        return
    pairs = [k.split(":", 1) for k in nodes if not k.startswith("ring:")]
    if not pairs:
        return
    types = [t for t, _ in pairs]
    ids = [i for _, i in pairs]
    rows = con.execute("""
        WITH n AS (SELECT unnest($types) AS t, unnest($ids) AS i)
        SELECT e.src_type, e.src_id, e.dst_type, e.dst_id, e.kind, e.n_events, e.amount FROM graph_edges e
        JOIN n a ON e.src_type = a.t AND e.src_id = a.i
        JOIN n b ON e.dst_type = b.t AND e.dst_id = b.i
        ORDER BY e.amount DESC NULLS LAST, 1, 2, 3, 4 LIMIT 500""", {"types": types, "ids": ids}).fetchall()
    for st, si, dt, di, kind, n, amount in rows:
        a, b = f"{st}:{si}", f"{dt}:{di}"
        edges[(a, b, kind)] = {"source": a, "target": b, "kind": kind, "kind_zh": EDGE_ZH.get(kind, kind),
                               "n_events": int(n or 0), "amount": round(float(amount or 0), 2)}


def _institution_names(con, nodes: dict[str, dict]) -> None:
    # the names of the institutions and pharmacies the claims did not name (a ring's counter, a neighbour)
    unnamed = {n["id"].split(":", 1)[1]: n for n in nodes.values()
               if n["type"] in ("fixmedins", "pharmacy") and n["label"] == n["id"].split(":", 1)[1]}
    if not unnamed:
        return
    rows = con.execute("SELECT fixmedins_code, fixmedins_name FROM fixmedins WHERE fixmedins_code IN "
                       "(SELECT unnest($codes)) AND fixmedins_name IS NOT NULL", {"codes": sorted(unnamed)}).fetchall()
    for code, name in rows:
        unnamed[code]["label"] = name


def _claims_of_nodes(nodes: dict[str, dict], claim_rows: list[dict]) -> None:
    for n in nodes.values():
        n["setl_ids"] = []
    for r in claim_rows:
        for key in _claim_keys(r):
            if key in nodes and r["setl_id"] not in nodes[key]["setl_ids"]:
                nodes[key]["setl_ids"].append(r["setl_id"])
    for ring in (n for n in nodes.values() if n["type"] == "ring"):
        ring["setl_ids"] = list(dict.fromkeys(s for m in nodes.values() if m["role"] == "member" for s in m["setl_ids"]))


def _claim_keys(row: dict) -> list[str]:
    """The node keys of a claim: its person, institution (or pharmacy) and doctor."""
    keys = [f"psn:{row.get('psn_no')}", f"{_inst_type(row)}:{row.get('fixmedins_code')}", f"prac:{row.get('prac_code')}"]
    return [k for k in keys if not k.endswith(":None")]


def _key(member: str) -> str:
    t, _, i = str(member).partition(":")
    return f"{'psn' if t == 'person' else t}:{i}"


def _inst_type(row: dict) -> str:
    return "pharmacy" if row.get("med_type") == "41" else "fixmedins"


def _node(key: str, role: str, label: str | None = None) -> dict:
    t, _, i = key.partition(":")
    return {"id": key, "type": t, "type_zh": NODE_ZH.get(t, t), "label": label or i, "role": role,
            "colour": NODE_COLOUR.get(t, NODE_COLOUR["ring"])}


def _edge(a: str, b: str, kind: str) -> dict:
    return {"source": a, "target": b, "kind": kind, "kind_zh": EDGE_ZH[kind], "n_events": 0, "amount": 0.0}

"""End to end on a `small` region, as an office would run it: the README's main job, then the service.

``yibao demo --preset small`` (simulate → ingest → rules → graph → features → train → promote → screen)
in a subprocess, then ``yibao users add`` and ``yibao evidence keygen``, then ``yibao serve`` on the
demo's warehouse, clue store and champion model; the tests call the running server over HTTP: pre-check,
scoring, every workflow transition on screened clues, and a ring's evidence package exported by the
public-security liaison and verified with the public key alone — once with the demo's SQLite clue store
and once with the clues screened into a real PostgreSQL database. A second ``yibao screen`` updates the
clues instead of duplicating them. The same calls on the tiny region, on SQLite and PostgreSQL, are in
test_service.py and test_evidence.py.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import duckdb
import networkx as nx
import pytest

from served import (YIBAO, free_port, launch_server, move, paths_covering_every_transition, unzip_package,
                    wait_ready)
from served import run_yibao as _yibao

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def small(request, small_demo, tmp_path_factory):
    """The demo on `small` (seed 7, conftest.py), three users, a signing key and the server on it; yields
    what tests need. ``sqlite``: the demo's own clue store; ``postgresql``: the demo's warehouse screened
    again by ``yibao screen`` into a fresh database on a real PostgreSQL server, which the server then uses."""
    work = tmp_path_factory.mktemp(f"e2e_small_{request.param}")
    demo, uri, warehouse = small_demo, small_demo["tracking_uri"], small_demo["warehouse"]
    common = ("--warehouse", str(warehouse))
    if request.param == "sqlite":
        clue_env, screened = {}, demo["steps"]["screen"]["upsert"]["new"]
    else:
        from pg_server import find_binaries

        if find_binaries() is None:
            pytest.skip("PostgreSQL is not installed (`apt-get install postgresql`; .ci/run installs it)")
        clue_env = {"YIBAO_CLUE_DB": request.getfixturevalue("pg_server").new_database()}
        screened = _yibao("screen", *common, "--tracking-uri", uri, env=clue_env)["upsert"]["new"]
    tokens = {name: _yibao("users", "add", name, "--role", role, "--region", region, *common, env=clue_env)["token"]
              for name, role, region in (("wang", "admin", ""), ("ana", "analyst", ""), ("gong", "liaison", ""))}
    keys = _yibao("evidence", "keygen", "--out", str(work / "keys"))
    port = free_port()
    log = work / "server.log"
    proc = launch_server([YIBAO, "serve", *common, "--tracking-uri", uri, "--port", str(port)],
                         {"YIBAO_EVIDENCE_KEY": keys["private_key"], **clue_env}, log)
    try:
        wait_ready(proc, port, log)
        yield {"work": work, "warehouse": warehouse, "demo": demo, "uri": uri, "tokens": tokens,
               "public_key": Path(keys["public_key"]), "base": f"http://127.0.0.1:{port}", "log": log,
               "backend": request.param, "clue_env": clue_env, "screened": screened}
    finally:
        import os
        import signal

        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _client(small, user: str):
    import httpx

    return httpx.Client(base_url=small["base"], headers={"Authorization": f"Bearer {small['tokens'][user]}"},
                        timeout=120)


def test_the_demo_found_clues_with_a_champion_model(small):
    steps = small["demo"]["steps"]
    assert steps["ingest"]["tables"]  # every step ran and reported
    assert steps["promote"]["promoted"] and steps["screen"]["upsert"]["new"] > 100
    with _client(small, "ana") as c:
        status = c.get("/api/status").json()
        assert status["model"] and "setl" in status["model_levels"] and status["precheck"]
        assert status["clue_store"] == small["backend"]
        clues = c.get("/api/clues", params={"limit": 1000}).json()
    assert clues["total"] == small["screened"] > 100
    assert {"ring", "fixmedins", "psn"} <= {x["entity_type"] for x in clues["items"]}
    priorities = [x["priority"] for x in clues["items"]]
    assert priorities == sorted(priorities, reverse=True)  # ranked by expected recovery


def test_precheck_and_scoring_over_http(small):
    from serving.scoring import visit_from_warehouse

    with duckdb.connect(str(small["warehouse"]), read_only=True) as con:
        hit = con.execute("SELECT setl_id FROM rule_hits WHERE rule_id = 'price_over_cap' ORDER BY setl_id "
                          "LIMIT 1").fetchone()[0]
        recent = [r[0] for r in con.execute("SELECT setl_id FROM feat_setl ORDER BY setl_time DESC, setl_id "
                                            "LIMIT 20").fetchall()]
        visits = [visit_from_warehouse(con, s) for s in (hit, recent[0])]
    with _client(small, "ana") as c:
        r = c.post("/precheck", json=visits[0] | {"mode": "during"})  # 事中审核
        assert r.status_code == 200, r.text[:500]
        found = r.json()
        assert "price_over_cap" in {h["rule_id"] for h in found["rule_hits"]}
        assert all(h["message_zh"] for h in found["rule_hits"]) and found["decision"] == "review"
        r = c.post("/precheck", json=visits[1])
        assert r.status_code == 200 and r.json()["model_score_available"] is True
        assert 0.0 <= r.json()["p_fraud"] <= 1.0 and r.json()["model_reasons"]
        r = c.post("/score", json={"settlements": [{"setl_id": s} for s in recent]})
        assert r.status_code == 200, r.text[:500]
        scores = r.json()
        assert len(scores) == len(recent) and all(0.0 <= s["p_fraud"] <= 1.0 for s in scores), scores[:3]


def test_every_workflow_transition_on_screened_clues(small):
    paths = paths_covering_every_transition()
    with _client(small, "wang") as c:
        items = c.get("/api/clues", params={"entity_type": "fixmedins", "limit": 1000}).json()["items"]
        items += c.get("/api/clues", params={"entity_type": "psn", "limit": 1000}).json()["items"]
        assert len(items) >= len(paths)
        for path, clue in zip(paths, items[-len(paths):]):  # the lowest ranked: keep the top for other tests
            for b in path[1:]:
                r = move(c, clue["id"], b, assignee="wang")
                assert r.status_code == 200 and r.json()["state"] == b, (path, b, r.text[:300])
            history = c.get(f"/api/clues/{clue['id']}").json()["transitions"]
            assert [t["to_state"] for t in history if not t["referral_outcome"]] == path[1:]


def test_a_transferred_ring_package_from_the_service_verifies(small, tmp_path):
    from serving.evidence_export import verify_package

    with _client(small, "wang") as admin:
        rings = admin.get("/api/clues", params={"entity_type": "ring", "limit": 1000}).json()["items"]
        ring = next(r for r in rings if r["state"] == "new")["id"]
        for state in ("assigned", "verifying", "confirmed", "transferred_police"):
            assert move(admin, ring, state, assignee="wang").status_code == 200
    with _client(small, "gong") as liaison:
        r = liaison.post(f"/api/clues/{ring}/evidence")
        assert r.status_code == 200, r.text[:500]
    pkg = unzip_package(r.content, tmp_path)
    result = verify_package(pkg, small["public_key"])
    assert result.ok, result.problems
    manifest = json.loads((pkg / "manifest.json").read_text("utf-8"))
    assert manifest["redaction"] == "clear" and manifest["exported_by"]["role"] == "liaison"
    graphml, gexf = nx.read_graphml(pkg / "case_graph.graphml"), nx.read_gexf(pkg / "case_graph.gexf")
    assert graphml.number_of_nodes() == manifest["graph"]["nodes"] > 3
    assert set(graphml.nodes) == set(gexf.nodes) and graphml.number_of_edges() == gexf.number_of_edges()
    types = {d["node_type"] for _, d in graphml.nodes(data=True)}
    assert "person" in types and types & {"institution", "pharmacy", "doctor"}
    setl = list(csv.DictReader((pkg / "settlements.csv").read_text("utf-8").splitlines()))
    assert len(setl) == manifest["counts"]["settlements"] > 0
    (pkg / "extra.txt").write_text("added after export", encoding="utf-8")
    assert not verify_package(pkg, small["public_key"]).ok


def test_a_second_screening_updates_instead_of_duplicating(small):
    with _client(small, "ana") as c:
        before = c.get("/api/statistics").json()["total"]
    again = _yibao("screen", "--warehouse", str(small["warehouse"]), "--tracking-uri", small["uri"],
                   env=small["clue_env"])
    assert again["upsert"]["new"] == 0 and again["upsert"]["updated"] + again["upsert"]["unchanged"] > 100
    with _client(small, "ana") as c:
        assert c.get("/api/statistics").json()["total"] == before


def test_every_clue_of_the_demo_cites_causes_toward_fraud_and_names_its_codes(small_demo):
    """Over every clue of the `small` demo: no reason cites a value at or below its peer median as a cause,
    and every code the page shows (region, typology, rule, source, risk) has a name."""
    from features.contract import FRAUD_TYPES, region_name
    from models.explain import NOT_CAUSES, is_reason
    from models.rules.config import DEFAULT_CONFIG, load_config
    from serving.clues import User, open_store
    from serving.clues.models import CLUE_SOURCES, RISK_LEVELS

    rule_names = {rule.id: rule.name_zh for rule in load_config(DEFAULT_CONFIG).rules}
    store = open_store(f"sqlite:///{small_demo['workdir'] / 'clues.db'}")
    admin = User("reviewer", "admin")
    try:
        total = store.list(admin, limit=1)["total"]
        ids = [c["id"] for off in range(0, total, 500) for c in store.list(admin, limit=500, offset=off)["items"]]
        assert len(ids) == total > 100
        cited = 0
        for clue_id in ids:
            c = store.get(clue_id, admin)
            for r in c["reasons"]:
                assert r["text_zh"] and "e+" not in r["text_zh"] and "低于" not in r["text_zh"], (clue_id, r)
                assert r.get("feature") not in NOT_CAUSES, (clue_id, r)  # no circular reason
                if isinstance(r.get("value"), (int, float)) and isinstance(r.get("peer_value"), (int, float)):
                    cited += 1
                    assert is_reason(r["value"], r["peer_value"], r.get("feature", "")), (clue_id, r)
            assert not c["region"] or c["region_zh"] == region_name(c["region"]) is not None, (clue_id, c["region"])
            assert all(t in FRAUD_TYPES for t in c["typologies"]), c["typologies"]
            assert all(s in CLUE_SOURCES for s in c["sources"]) and c["risk_level"] in RISK_LEVELS
            assert all(h["rule_id"] in rule_names for h in c["rule_hits"] or []), (clue_id, c["rule_hits"])
        assert cited > total  # the check ran on real reasons, not on an empty list
    finally:
        store.close()

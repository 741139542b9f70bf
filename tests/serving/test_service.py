"""The BentoML service over HTTP: a real server in a subprocess, on SQLite and on PostgreSQL.

Pre-check and scoring, every workflow transition, the clue detail with claims and graph, auth on every
route, role and region isolation, and no clear resident ID in answers, logs or the audit table.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import duckdb
import pytest

from models.bundle import ScorerBundle
from served import RESIDENT_ID, move, paths_covering_every_transition, unzip_package
from serving.clues.access import mask_id
from serving.clues.workflow import TRANSITIONS
from serving.scoring import visit_from_warehouse

pytestmark = pytest.mark.slow

MASKED_ID = mask_id(RESIDENT_ID)
WRONG_TOKEN = "not-a-token-0123456789abcdefghijklmnop"


def _visits(served, sql: str, n: int = 1) -> list[dict]:
    with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
        ids = [r[0] for r in con.execute(sql).fetchall()][:n]
        return [visit_from_warehouse(con, s) for s in ids]


def _recent_visit(served) -> dict:
    return _visits(served, "SELECT setl_id FROM feat_setl ORDER BY setl_time DESC, setl_id LIMIT 1")[0]


def _hit_visit(served) -> dict:
    return _visits(served, "SELECT setl_id FROM rule_hits WHERE rule_id = 'price_over_cap' "
                           "ORDER BY setl_id LIMIT 1")[0]


# -- pre-check and scoring ----------------------------------------------------------------------------


def test_precheck_gives_rule_hits_risk_and_reasons_in_chinese(served):
    with served.client("ana") as c:
        r = c.post("/precheck", json=_hit_visit(served) | {"mode": "during"})
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["mode_zh"] == "事中审核" and out["n_rule_hits"] >= 1
        hit = next(h for h in out["rule_hits"] if h["rule_id"] == "price_over_cap")
        assert hit["typology_zh"] == "超标准收费" and "限价" in hit["message_zh"] and hit["amount_at_risk"] > 0
        assert out["decision"] == "review" and out["reasons_zh"][0] == out["rule_hits"][0]["message_zh"]

        recent = _recent_visit(served)
        out = c.post("/precheck", json=recent).json()
        assert out["mode"] == "pre" and out["model_score_available"] is True
        assert 0 <= out["p_fraud"] <= 1 and out["risk_level"] in ("high", "medium", "low")
        assert out["model_reasons"] and all(any("\u4e00" <= ch <= "\u9fff" for ch in r["text_zh"])
                                            for r in out["model_reasons"])
        assert out["reasons_zh"]

        assert out["features_source"] == "feat_setl" and out["approximated_features"] == []

        changed = recent | {"lines": recent["lines"][:-1]} if len(recent["lines"]) > 1 else recent | {"lines": []}
        out = c.post("/precheck", json=changed).json()  # lines changed since recorded: computed online
        assert out["model_score_available"] is True and out["features_source"] == "online"
        assert "differ from the recorded" in out["model_note"]

        r = c.post("/precheck", json={"setl": {"setl_id": "S1"}})
        assert r.status_code == 422 and "setl.mdtrt_id" in {f["field"] for f in r.json()["fields"]}


def test_precheck_scores_a_visit_the_warehouse_has_not_seen(served):
    """事前提醒 of a visit being settled now: not in the warehouse, amounts paid not known yet."""
    recent = _recent_visit(served)
    with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
        assert not con.execute("SELECT count(*) FROM setl_d WHERE setl_id = 'UNSEEN-1'").fetchone()[0]
    later = str(datetime.fromisoformat(recent["setl"]["setl_time"]) + timedelta(days=1))
    keys = {"setl_id": "UNSEEN-1", "mdtrt_id": "UNSEEN-M1"}
    setl = {k: v for k, v in recent["setl"].items() if k not in ("fund_pay_sumamt", "hifp_pay", "psn_pay", "acct_pay",
                                                                   "begndate", "enddate")}
    visit = {"setl": setl | keys | {"setl_time": later},
             "lines": [ln | keys | {"fee_ocur_time": later} for ln in recent["lines"]],
             "diagnoses": [d | keys for d in recent["diagnoses"]]}
    with served.client("ana") as c:
        r = c.post("/precheck", json=visit)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_score_available"] is True and 0 <= out["p_fraud"] <= 1, out["model_note"]
    assert out["features_source"] == "online" and out["risk_level"] in ("high", "medium", "low")
    assert out["model_reasons"] and all(any("\u4e00" <= ch <= "\u9fff" for ch in m["text_zh"])
                                        for m in out["model_reasons"])
    approximated = {a["feature"]: a["why_zh"] for a in out["approximated_features"]}
    assert "fund_amt" in approximated and "中位" in approximated["fund_amt"]  # paid amounts: not known yet
    assert "n_same_inst_10min" in approximated


def test_monitoring_for_analysts_only(served):
    with served.client("ana") as c:
        r = c.get("/api/monitoring")
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["months"] and out["tests"]["rule_institution"] > 0 and out["computed_at"]
        assert out["alarms"] == sum(f["level"] == "alarm" for f in out["findings"])
        assert any(f["kind"] == "score_drift" and "PSI=" in f["message_zh"] for f in out["findings"])
        assert c.get("/api/monitoring").json()["computed_at"] == out["computed_at"]  # computed once per warehouse
    with served.client("li") as c:
        assert c.get("/api/monitoring").status_code == 403
    with served.client("wang") as c:
        page = c.get("/ui/")
        assert page.status_code == 200 and "监测: 规则与模型" in page.text


def test_score_by_id_and_by_feature_row_with_adaptive_batching(served):
    with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
        ids = [r[0] for r in con.execute("SELECT setl_id FROM feat_setl ORDER BY setl_id LIMIT 40").fetchall()]
        row = con.execute("SELECT * FROM feat_setl WHERE setl_id = ?", [ids[0]]).df().iloc[0]
    columns = ScorerBundle.load(served.data.bundle).features["setl"]
    features = {c: (None if row[c] != row[c] else float(row[c])) for c in columns}
    with served.client("li") as c:
        out = c.post("/score", json={"settlements": [{"setl_id": ids[0]}, {"setl_id": "NO-SUCH"},
                                                     {"features": features}, {"features": {"x": 1}}]})
        assert out.status_code == 200, out.text
        by_id, unknown, by_row, bad = out.json()
        assert 0 <= by_id["p_fraud"] <= 1 and by_id["source"] == "feat_setl"
        assert unknown["p_fraud"] is None and "not in feat_setl" in unknown["error"]
        assert by_row["p_fraud"] == pytest.approx(by_id["p_fraud"], abs=1e-5)
        assert bad["p_fraud"] is None and "missing feature columns" in bad["error"]

    def one(setl_id: str) -> tuple[str, str | None]:
        with served.client("li") as c:
            r = c.post("/score", json={"settlements": [{"setl_id": setl_id}]})
            assert r.status_code == 200 and r.text.startswith("["), r.text
            (answer,) = r.json()
            return setl_id, answer["setl_id"]

    with ThreadPoolExecutor(16) as pool:  # concurrent requests are batched; each gets its own answer back
        assert all(a == b for a, b in pool.map(one, ids))


# -- the clue workflow --------------------------------------------------------------------------------


def _move(c, clue_id: int, to_state: str, served):
    return move(c, clue_id, to_state)


def test_every_workflow_transition_over_http(served):
    paths = paths_covering_every_transition()
    assert len(paths) == sum(len(t) for t in TRANSITIONS.values()) <= 24
    done = set()
    with served.client("li") as c:
        for i, path in enumerate(paths):
            clue_id = served.ids[f"wf{i}"]
            for a, b in zip(path, path[1:]):
                r = _move(c, clue_id, b, served)
                assert r.status_code == 200, (path, a, b, r.text)
                assert r.json()["state"] == b
                done.add((a, b))
            detail = c.get(f"/api/clues/{clue_id}").json()  # moves, and a police outcome before closing
            assert [t["to_state"] for t in detail["transitions"] if not t["referral_outcome"]] == path[1:]
            assert all(t["actor"] == "li" for t in detail["transitions"])
    assert done == {(a, b) for a, ts in TRANSITIONS.items() for b in ts}


def test_workflow_refusals_comments_and_recovered_amount(served):
    clue = served.ids["wf23"]
    with served.client("li") as c:
        r = _move(c, clue, "closed", served)
        assert r.status_code == 409 and "不能从「新线索」转到「办结」" in r.json()["detail"]
        assert _move(c, clue, "assigned", served).status_code == 200
        assert _move(c, clue, "verifying", served).status_code == 200
        r = c.post(f"/api/clues/{clue}/transitions", json={"to_state": "confirmed"})
        assert r.status_code == 409 and "查实金额" in r.json()["detail"]
        r = c.post(f"/api/clues/{clue}/transitions", json={"to_state": "confirmed", "confirmed_amount": -5})
        assert r.status_code == 422
        assert c.post(f"/api/clues/{clue}/transitions", json={"to_state": "nowhere"}).status_code == 422
        r = c.post(f"/api/clues/{clue}/transitions", json={"to_state": "confirmed", "confirmed_amount": 800})
        assert r.status_code == 200 and r.json()["confirmed_amount"] == 800
        r = c.post(f"/api/clues/{clue}/transitions", json={"to_state": "closed", "recovered_amount": 750,
                                                           "reason": "已追回"})
        assert r.status_code == 200 and r.json()["recovered_amount"] == 750 and r.json()["allowed_transitions"] == []
        r = c.post(f"/api/clues/{clue}/comments", json={"text": f"病历与收费不符, 涉及证件 {RESIDENT_ID}"})
        assert r.status_code == 200 and MASKED_ID in r.json()["text"] and RESIDENT_ID not in r.text
        assert c.post(f"/api/clues/{clue}/comments", json={"text": ""}).status_code == 422


def test_list_filters_sorting_detail_statistics_and_overdue(served):
    with served.client("ana") as c:
        everything = c.get("/api/clues", params={"limit": 1000}).json()
        assert everything["total"] >= len(served.data.clues) + 26
        priorities = [x["priority"] for x in everything["items"]]
        assert priorities == sorted(priorities, reverse=True)
        by_amount = c.get("/api/clues", params={"sort": "amount", "limit": 1000}).json()["items"]
        assert [x["amount_at_risk"] for x in by_amount] == sorted((x["amount_at_risk"] for x in by_amount),
                                                                  reverse=True)
        persons = c.get("/api/clues", params={"entity_type": "psn"}).json()
        assert persons["total"] >= 1 and {x["entity_type"] for x in persons["items"]} == {"psn"}
        zj = c.get("/api/clues", params={"region": "33"}).json()
        assert [x["id"] for x in zj["items"]] == [served.ids["zhejiang"]]
        assert c.get("/api/clues", params={"state": "bogus"}).status_code == 422
        assert c.get("/api/clues", params={"region": "22x"}).status_code == 422

        clue_id = served.ids["screened"]
        d = c.get(f"/api/clues/{clue_id}").json()
        assert d["reasons"] and d["rule_hits"] and d["claims"]["available"] is True
        assert [r["setl_id"] for r in d["claims"]["rows"]] and {r["setl_id"] for r in d["claims"]["rows"]} <= set(
            d["evidence"]["setl_id"])
        assert d["graph"]["center"] == f"{d['entity_type']}:{d['entity_id']}"
        assert len(d["graph"]["nodes"]) > 1 and d["graph"]["edges"]
        stats = c.get("/api/statistics").json()
        assert stats["total"] == everything["total"] and sum(s["count"] for s in stats["by_state"].values()) == \
            stats["total"]
        assert isinstance(c.get("/api/overdue").json()["items"], list)
        meta = c.get("/api/meta").json()
        assert meta["states"]["confirmed"] == "查实" and "fake_treatment" in meta["typologies"]
    with served.store() as store:
        reads = store.audit_log(clue_id=clue_id, action="read_detail")
        assert any(a["actor"] == "ana" for a in reads)


def test_work_queue_search_filters_sort_statistics_export_and_bulk_assign(served):
    import io

    from openpyxl import load_workbook

    q = [served.ids[f"q{i}"] for i in range(6)]
    with served.client("li") as c:
        found = c.get("/api/clues", params={"q": "队列", "limit": 1000}).json()
        assert sorted(x["id"] for x in found["items"]) == sorted(q)
        assert [x["id"] for x in c.get("/api/clues", params={"q": "q-03"}).json()["items"]] == [q[3]]
        high = {"q": "队列", "risk_level": "high", "min_amount": 10000, "max_amount": 50000}
        page = c.get("/api/clues", params=high | {"sort": "amount", "order": "asc"}).json()
        assert [x["id"] for x in page["items"]] == [q[1], q[5]]  # 12,000 and 45,000; 88,000 is above the range
        stats = c.get("/api/statistics", params=high).json()
        assert stats["total"] == 2 and stats["amount_at_risk"] == 57000.0
        assert stats["by_risk"]["high"]["sla_days"] == 30 and stats["by_risk"]["low"]["sla_days"] == 90
        for bad in ({"min_amount": 5, "max_amount": 1}, {"risk_level": "urgent"}, {"order": "up"},
                    {"q": "x" * 65}, {"min_amount": -1}, {"assignee": "a b"}, {"sort": "name"}):
            r = c.get("/api/clues", params=bad)
            assert r.status_code == 422, (bad, r.text)
        assert c.get("/api/statistics", params={"max_amount": "NaN"}).status_code == 422

        r = c.get("/api/clues/export.xlsx", params={"q": "队列", "sort": "amount"})
        assert r.status_code == 200 and r.headers["content-type"].startswith(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        assert r.headers["x-total-count"] == "6"
        ws = load_workbook(io.BytesIO(r.content))["线索清单"]
        rows = list(ws.iter_rows(values_only=True))
        header = rows[0]
        assert header[:6] == ("编号", "对象类型", "对象编码", "名称", "地区代码", "地区")
        listed = c.get("/api/clues", params={"q": "队列", "sort": "amount"}).json()["items"]
        assert [row[0] for row in rows[1:]] == [x["id"] for x in listed]
        amount = header.index("涉及金额(元)")
        assert [row[amount] for row in rows[1:]] == [x["amount_at_risk"] for x in listed]
        assert all(type(row[amount]) in (int, float) for row in rows[1:]) and rows[1][5] == "宽城区"  # numbers
        assert c.get("/api/clues/export.xlsx", params={"limit": 10001}).status_code == 422

        mine = c.post("/api/clues/bulk-assign", json={"clue_ids": [q[0], q[1], served.ids["zhejiang"]],
                                                      "assignee": "li", "reason": "批量分派"})
        assert mine.status_code == 200, mine.text
        assert mine.json()["assigned"] == [q[0], q[1]]
        assert [x["id"] for x in mine.json()["refused"]] == [served.ids["zhejiang"]]  # another region
        assigned = c.get("/api/clues", params={"assignee": "li", "q": "队列"}).json()["items"]
        assert {q[0], q[1]} <= {x["id"] for x in assigned} and {x["assignee"] for x in assigned} == {"li"}
        assert c.post("/api/clues/bulk-assign", json={"clue_ids": [q[2]], "assignee": "ana"}).status_code == 422
        assert c.post("/api/clues/bulk-assign", json={"clue_ids": [], "assignee": "li"}).status_code == 422
        assert c.post("/api/clues/bulk-assign", json={"clue_ids": list(range(1, 202)),
                                                      "assignee": "li"}).status_code == 422
    with served.client("ana") as c:
        assert c.post("/api/clues/bulk-assign", json={"clue_ids": [q[2]], "assignee": "li"}).status_code == 403
        d = c.get(f"/api/clues/{served.ids['screened']}").json()  # the rule hits' lines, from the warehouse
        hits = d["claims"]["hits"]
        assert hits and set(hits) <= {h["rule_id"] for h in d["rule_hits"]}
        with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
            for rule_id, rows in hits.items():
                for h in rows:
                    message, basis, evidence = con.execute(
                        "SELECT message_zh, basis_zh, evidence FROM rule_hits WHERE hit_id = ?", [h["hit_id"]]).fetchone()
                    assert (h["message_zh"], h["basis_zh"], h["n_lines"]) == (message, basis, len(evidence))
                    assert [x["bkkp_sn"] for x in h["lines"]] == evidence[:10]
        flagged = {r["setl_id"]: r["rule_ids"] for r in d["claims"]["rows"] if r["rule_ids"]}
        assert flagged and all(any(h["setl_id"] == s for r in ids for h in hits[r]) for s, ids in flagged.items())
        assert all(r["med_type_zh"] for r in d["claims"]["rows"])
        with duckdb.connect(str(served.data.warehouse), read_only=True) as con:  # each claim's lines, counted
            counts = dict(con.execute("SELECT setl_id, count(*) FROM fee_list_d WHERE setl_id IN "
                                      "(SELECT unnest($ids)) GROUP BY setl_id",
                                      {"ids": [r["setl_id"] for r in d["claims"]["rows"]]}).fetchall())
        assert [r["n_lines"] for r in d["claims"]["rows"]] == [counts.get(r["setl_id"], 0) for r in d["claims"]["rows"]]
        assert sum(counts.values()) > 0
    with served.store() as store:
        assert store.get(q[0], store.user("wang"))["transitions"][-1]["reason"] == "批量分派"
        assert store.audit_log(action="bulk_assign")[-1]["detail"]["assigned"] == [q[0], q[1]]
        exported = store.audit_log(action="export_list")[-1]
        assert exported["actor"] == "li" and sorted(exported["detail"]["clue_ids"]) == sorted(q)


# -- security -----------------------------------------------------------------------------------------


def _routes(served) -> list[tuple[str, str]]:
    """Every route of the OpenAPI spec (with concrete ids) and the BentoML infrastructure routes."""
    with served.client("wang") as c:
        spec = c.get("/docs.json").json()
    routes = {(m.upper(), p.replace("{clue_id}", str(served.ids["wf0"]))) for p, ops in spec["paths"].items()
              for m in ops if m in ("get", "post", "put", "delete", "patch")}
    routes -= {("GET", "/livez"), ("GET", "/readyz"), ("GET", "/healthz")}
    return sorted(routes | {("GET", "/"), ("GET", "/docs.json"), ("GET", "/metrics"), ("GET", "/schema.json"),
                            ("GET", "/api/openapi.json"), ("GET", "/api/nowhere"), ("POST", "/nowhere")})


def test_every_route_refuses_a_missing_or_wrong_token(served):
    routes = _routes(served)
    assert {("POST", "/precheck"), ("POST", "/score"), ("GET", "/api/clues")} <= set(routes)
    for headers in ({}, {"Authorization": f"Bearer {WRONG_TOKEN}"}, {"Authorization": f"Basic {WRONG_TOKEN}"},
                    {"Authorization": "Bearer"}):
        with served.client() as c:
            for method, path in routes:
                r = c.request(method, path, headers=headers, json={} if method == "POST" else None)
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
                assert r.json()["error"] == "unauthorized" and r.headers["www-authenticate"].startswith("Bearer")
    with served.client() as c:  # the log-in page and the health probes only
        assert c.get("/ui/").status_code == 200 and "访问令牌" in c.get("/ui/").text
        assert c.get("/readyz").status_code == 200 and c.get("/livez").status_code == 200
    with served.store() as store:  # a disabled account's token stops working at once
        store.set_active("retired", False)
    with served.client("retired") as c:
        assert c.get("/api/me").status_code == 401


def test_roles_and_regions_are_isolated(served):
    visit = _recent_visit(served)
    screened, zj, wf = served.ids["screened"], served.ids["zhejiang"], served.ids["wf22"]
    with served.client("gong") as liaison:
        assert liaison.post("/precheck", json=visit).status_code == 403
        assert liaison.post("/score", json={"settlements": [{"setl_id": "x"}]}).status_code == 403
        assert liaison.get("/metrics").status_code == 403
        assert liaison.get(f"/api/clues/{screened}").status_code == 403
        assert liaison.get("/api/overdue").status_code == 403
        assert liaison.post(f"/api/clues/{wf}/comments", json={"text": "x"}).status_code == 403
    with served.client("zhao") as other_region:
        listed = other_region.get("/api/clues", params={"limit": 1000}).json()
        assert {x["region"][:4] for x in listed["items"]} == {"3301"}
        assert other_region.get(f"/api/clues/{screened}").status_code == 403
        assert other_region.get("/api/clues/999999").status_code == 403  # the same answer: nothing leaks
        assert _move(other_region, wf, "assigned", served).status_code == 403
        assert other_region.get(f"/api/clues/{zj}").status_code == 200
    with served.client("li") as investigator:
        listed = investigator.get("/api/clues", params={"limit": 1000}).json()["items"]
        assert listed and all(x["region"].startswith("2201") for x in listed)
        assert investigator.get(f"/api/clues/{zj}").status_code == 403
        assert investigator.get(f"/api/clues/{served.ids['person']}/identities").status_code == 403
    with served.client("ana") as analyst:
        assert _move(analyst, wf, "assigned", served).status_code == 403
        assert analyst.get("/api/clues/999999").status_code == 404
        assert analyst.post(f"/api/clues/{wf}/comments", json={"text": "请核查"}).status_code == 200
    with served.client("li") as investigator:  # the liaison sees a clue once it goes to public security
        for state in ("assigned", "verifying", "confirmed", "transferred_police"):
            assert _move(investigator, wf, state, served).status_code == 200
    with served.client("gong") as liaison:
        seen = liaison.get("/api/clues", params={"limit": 1000}).json()["items"]
        assert wf in [x["id"] for x in seen] and {x["state"] for x in seen} <= {"transferred_police", "closed"}
        d = liaison.get(f"/api/clues/{wf}").json()
        assert d["state"] == "transferred_police" and d["allowed_transitions"] == []
        assert _move(liaison, wf, "closed", served).status_code == 403


def test_no_resident_id_unmasked_in_answers_logs_or_audit(served):
    person, certno = served.ids["person"], served.data.person_certno
    with served.client("ana") as c:
        d = c.get(f"/api/clues/{person}")
        assert d.status_code == 200 and RESIDENT_ID not in d.text and MASKED_ID in d.text
        assert certno not in d.text
        assert c.get(f"/api/clues/{person}/identities").status_code == 403
        visit = _recent_visit(served)
        visit["setl"] = visit["setl"] | {"dise_name": f"证件号 {RESIDENT_ID}"}
        r = c.post("/precheck", json=visit)
        assert r.status_code == 200 and RESIDENT_ID not in r.text
        bad = visit | {"setl": visit["setl"] | {"medfee_sumamt": RESIDENT_ID + "元"}}
        r = c.post("/precheck", json=bad)
        assert r.status_code == 422 and RESIDENT_ID not in r.text and "medfee_sumamt" in r.text
        r = c.get("/api/clues", params={"region": RESIDENT_ID})
        assert r.status_code == 422 and RESIDENT_ID not in r.text
        r = c.get(f"/api/clues/{RESIDENT_ID}")
        assert r.status_code == 422 and RESIDENT_ID not in r.text
        for x in c.get("/api/clues", params={"limit": 1000}).json()["items"]:
            assert RESIDENT_ID not in json.dumps(x, ensure_ascii=False)
    with served.client("wang") as admin:  # an admin may resolve identities; the answer is the vault's
        r = admin.get(f"/api/clues/{person}/identities")
        assert r.status_code == 200 and r.json()["persons"][0]["certno"] == certno
    log = served.log()
    assert "precheck" in log or "/api/clues" in log  # the access log is there ...
    assert RESIDENT_ID not in log and certno not in log  # ... without clear IDs
    assert not any(token in log for token in served.tokens.values()) and WRONG_TOKEN not in log
    with served.store() as store:
        audit = json.dumps(store.audit_log(limit=100000), ensure_ascii=False)
    assert RESIDENT_ID not in audit and certno not in audit
    assert not any(token in audit for token in served.tokens.values())


def test_openapi_spec_is_served(served):
    with served.client("ana") as c:
        api = c.get("/api/openapi.json").json()
        assert "/clues/{clue_id}/transitions" in api["paths"]
        every = c.get("/docs.json").json()
        assert {"/precheck", "/score", "/api/clues", "/api/statistics"} <= set(every["paths"])
        status = c.get("/api/status").json()
        assert status["precheck"] is True and status["model_levels"][0] == "setl"
        assert status["clue_store"] == served.backend


# -- evidence packages from the service (issue 7: the same export as the CLI, for the liaison) ----------


def test_evidence_package_over_http_clear_only_for_the_liaison_on_a_police_case(served, tmp_path):
    import csv
    import hashlib

    from serving.evidence_export import verify_package

    ring = served.ids["ring"]
    with served.client("gong") as liaison:  # not transferred to public security: not the liaison's case
        assert liaison.post(f"/api/clues/{ring}/evidence").status_code == 403
    with served.client("ana") as analyst:
        r = analyst.post(f"/api/clues/{ring}/evidence", params={"pdf": "false"})
        assert r.status_code == 200, r.text[:300]
        assert r.headers["content-type"] == "application/zip" and "attachment" in r.headers["content-disposition"]
        ana = unzip_package(r.content, tmp_path / "ana")
        ana_hash = r.headers["x-package-sha256"]
    with served.client("wang") as admin:
        for state in ("assigned", "verifying", "confirmed", "transferred_police"):
            body = {"to_state": state, "reason": "移送公安测试"} | (
                {"assignee": "wang"} if state == "assigned" else {}) | (
                {"confirmed_amount": 100.0} if state == "confirmed" else {})
            assert admin.post(f"/api/clues/{ring}/transitions", json=body).status_code == 200
    with served.client("gong") as liaison:
        r = liaison.post(f"/api/clues/{ring}/evidence", params={"depth": 1})
        assert r.status_code == 200, r.text[:300]
        pol = unzip_package(r.content, tmp_path / "police")
        pol_hash = r.headers["x-package-sha256"]
        assert liaison.post(f"/api/clues/{ring}/evidence", params={"depth": 9}).status_code == 422

    for pkg, package_hash, mode in ((ana, ana_hash, "pseudonymised"), (pol, pol_hash, "clear")):
        manifest = json.loads((pkg / "manifest.json").read_text("utf-8"))
        assert manifest["redaction"] == mode and manifest["clue_id"] == ring
        assert hashlib.sha256((pkg / "manifest.json").read_bytes()).hexdigest() == package_hash
        assert verify_package(pkg, served.data.evidence_public_key).ok
        assert {"case_graph.graphml", "case_graph.gexf", "i2_links.csv", "settlements.csv", "report.html"} <= {
            p.name for p in pkg.iterdir()}
    from serving.evidence_export.report import chromium_path

    pdf = json.loads((pol / "manifest.json").read_text("utf-8"))["pdf"]["status"]
    assert pdf == ("rendered" if chromium_path() else "skipped") and ((pol / "report.pdf").is_file() == (pdf == "rendered"))

    # identities in clear for the liaison's police case only
    persons = {row["psn"] for row in csv.DictReader((pol / "settlements.csv").read_text("utf-8").splitlines())}
    with duckdb.connect(str(served.data.vault), read_only=True) as con:
        ids = con.execute("SELECT psn_no, certno FROM psn_identity WHERE psn_no IN (SELECT unnest(?))",
                          [sorted(persons)]).fetchall()
    assert ids
    ana_text = "\n".join(p.read_text("utf-8", errors="replace") for p in ana.rglob("*")
                         if p.is_file() and p.suffix in (".csv", ".graphml", ".gexf", ".html", ".json"))
    pol_text = (pol / "settlements.csv").read_text("utf-8") + (pol / "report.html").read_text("utf-8")
    assert any(certno in pol_text for _, certno in ids)
    assert not [p for p, certno in ids if certno in ana_text or p in ana_text]

    (pol / "settlements.csv").write_text((pol / "settlements.csv").read_text("utf-8") + "x\n", encoding="utf-8")
    assert not verify_package(pol, served.data.evidence_public_key).ok  # a changed file is caught

    with served.store() as store:  # both exports audited with their package hash
        audit = store.audit_log(clue_id=ring, action="export_evidence")
    assert {(e["actor"], e["detail"]["package_sha256"]) for e in audit} >= {("ana", ana_hash), ("gong", pol_hash)}


def test_outcomes_count_each_decided_clue_under_its_rules_typologies_and_level(served):
    """查实率 on the analysts' page (GET /api/outcomes): two clues decided here move the counts by exactly them.
    Last in the module: it decides two of the fixture's new clues, which earlier tests use."""
    def views(c):
        out = c.get("/api/outcomes")
        assert out.status_code == 200, out.text
        body = out.json()
        return body, {(v, r["key"]): (r["decided"], r["confirmed"]) for v, rows in body["views"].items() for r in rows}

    with served.client("wang") as c:
        fresh = [x for x in c.get("/api/clues", params={"state": "new", "limit": 200}).json()["items"]][:2]
        assert len(fresh) == 2
        before_body, before = views(c)
        details = [c.get(f"/api/clues/{x['id']}").json() for x in fresh]
        for x, to in zip(fresh, ("confirmed", "dismissed")):
            for step in (("assigned", "verifying", "confirmed") if to == "confirmed" else ("assigned", "dismissed")):
                assert move(c, x["id"], step).status_code == 200
        after_body, after = views(c)
    assert after_body["decided"] == before_body["decided"] + 2
    expected = dict(before)
    for d, confirmed in zip(details, (1, 0)):
        keys = [("level", d["entity_type"])] + [("typology", t) for t in d["typologies"]] + \
               [("rule", r) for r in {h["rule_id"] for h in d["rule_hits"] or []}]
        for key in keys:
            n, k = expected.get(key, (0, 0))
            expected[key] = (n + 1, k + confirmed)
    assert after == expected
    assert all(r["name_zh"] for rows in after_body["views"].values() for r in rows)
    with served.client("li") as c:
        assert c.get("/api/outcomes").status_code == 403
    with served.client("ana") as c:
        assert c.get("/api/outcomes").status_code == 200

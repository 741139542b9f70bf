"""The service refuses nonsense, keeps resident IDs out of answers, logs and audit, and does retried changes once.

Over HTTP against the real server (tests/serving/served.py), case by case as an attacker or an operator
found them (issue 20): out-of-range ids, offsets and dates; impossible pre-check visits; unbounded
amounts; resident IDs typed into addresses and comments (full-width too); values in the log; retried
transitions and comments; evidence exports as background jobs with a per-user limit.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

from served import RESIDENT_ID
from serving.schemas import MAX_AMOUNT, ErrorBody
from serving.scoring import visit_from_warehouse

pytestmark = pytest.mark.slow

BIG = 2**63  # one past the largest id the service takes
SECRET = "王涛-secret"
FULL_WIDTH_ID = "１１０１０５１９４９１２３１００２Ｘ"


def _recent_visit(served) -> dict:
    with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
        (sid,) = con.execute("SELECT setl_id FROM feat_setl ORDER BY setl_time DESC, setl_id LIMIT 1").fetchone()
        return visit_from_warehouse(con, sid)


def _refused(r, status: int, *fields: str) -> dict:
    """The answer is ``status`` with the service's error body, naming ``fields``; returns the body."""
    assert r.status_code == status, (r.status_code, r.text[:500])
    body = ErrorBody.model_validate(r.json()).model_dump()
    named = {f["field"] for f in body["fields"] or []}
    assert set(fields) <= named, (fields, named)
    return body


def _post_raw(client, path: str, payload) -> object:
    # json.dumps writes NaN and Infinity as the bare words a careless client sends
    return client.post(path, content=json.dumps(payload), headers={"Content-Type": "application/json"})


def test_out_of_range_ids_offsets_and_dates_are_422_for_every_role(served_sqlite):
    s = served_sqlite
    for user in ("ana", "li", "gong", "wang"):
        with s.client(user) as c:
            for path in (f"/api/clues/{BIG}", f"/api/clues/{BIG}/identities", f"/api/clues/{10**30}"):
                _refused(c.get(path), 422, "clue_id")
            _refused(c.post(f"/api/clues/{BIG}/comments", json={"text": "x"}), 422, "clue_id")
            _refused(c.post("/api/clues/0/transitions", json={"to_state": "assigned"}), 422, "clue_id")
            _refused(c.get("/api/clues", params={"offset": "99999999999999999999"}), 422, "offset")
            _refused(c.get("/api/clues", params={"limit": 0, "min_priority": "nan"}), 422, "limit", "min_priority")
    with s.client("ana") as c:  # the largest id is taken and simply not found
        assert _refused(c.get(f"/api/clues/{BIG - 1}"), 404)["error"] == "not_found"
        visit = _recent_visit(s)
        for when in ("0001-01-01", "1899-12-31 23:59:59", "2999-01-01 00:00:00", "2025-13-45"):
            _refused(c.post("/precheck", json=visit | {"setl": visit["setl"] | {"setl_time": when}}), 422,
                     "setl.setl_time")
        body = _refused(c.post("/precheck", json={"setl": {"setl_id": "S1"}, "lines": "x", "bogus": 1}), 422,
                        "setl.mdtrt_id", "lines")
        assert "缺少必填字段" in body["detail"]
        assert _refused(c.post("/precheck", content=b"{not json", headers={"Content-Type": "application/json"}),
                        422)["fields"][0]["problem"] == "json_invalid"
        _refused(c.post("/precheck", content=b"setl=1", headers={"Content-Type": "multipart/form-data"}), 415)


def test_impossible_visits_are_refused_naming_the_field(served_sqlite):
    s = served_sqlite
    visit = _recent_visit(s)
    line = visit["lines"][0]
    with s.client("ana") as c:
        recorded = c.post("/precheck", json=visit | {"mode": "during"}).json()
        assert recorded["model_score_available"] is True  # the recorded settlement as posted: scored
        nan = visit | {"lines": [line | {"det_item_fee_sumamt": float("nan")}] + visit["lines"][1:]}
        body = _refused(_post_raw(c, "/precheck", nan | {"mode": "during"}), 422, "lines[0].det_item_fee_sumamt")
        assert "NaN" in body["detail"] and "p_fraud" not in body
        _refused(_post_raw(c, "/precheck", visit | {"lines": [line | {"cnt": float("inf")}]}), 422, "lines[0].cnt")
        refund_line = line | {"cnt": -1, "pric": "500.00", "det_item_fee_sumamt": "-500.00"}
        body = _refused(c.post("/precheck", json=visit | {"lines": [refund_line]}), 422, "lines[0].cnt",
                        "lines[0].det_item_fee_sumamt")
        assert "非退费" in body["detail"]
        # the same line on a refund (退费结算) is what a refund looks like
        refund = visit | {"setl": visit["setl"] | {"refd_setl_flag": "1", "setl_id": "REFUND-1"},
                          "lines": [refund_line | {"setl_id": "REFUND-1"}], "diagnoses": []}
        assert c.post("/precheck", json=refund).status_code == 200
        wrong_total = visit | {"lines": [line | {"cnt": 3, "pric": "10.00", "det_item_fee_sumamt": "31.00"}]}
        assert "数量×单价" in _refused(c.post("/precheck", json=wrong_total), 422,
                                     "lines[0].det_item_fee_sumamt")["detail"]
        _refused(c.post("/precheck", json=visit | {"lines": [line | {"pric": "1e999"}]}), 422, "lines[0].pric")
        _refused(c.post("/score", json={"settlements": [{"features": {"x": 1e300}}]}), 422,
                 "settlements[0].features.x")


def test_amounts_are_bounded_and_statistics_stay_numbers(served_sqlite):
    s = served_sqlite
    a, b = s.ids["wf20"], s.ids["wf21"]
    with s.client("li") as c:
        for clue in (a, b):
            for state in ("assigned", "verifying"):
                body = {"to_state": state} | ({"assignee": "li"} if state == "assigned" else {})
                assert c.post(f"/api/clues/{clue}/transitions", json=body).status_code == 200
        _refused(c.post(f"/api/clues/{a}/transitions", json={"to_state": "confirmed", "confirmed_amount": 1e308}),
                 422, "confirmed_amount")
        _refused(_post_raw(c, f"/api/clues/{a}/transitions", {"to_state": "confirmed", "confirmed_amount": float("inf")}),
                 422, "confirmed_amount")
        for clue in (a, b):
            r = c.post(f"/api/clues/{clue}/transitions", json={"to_state": "confirmed", "confirmed_amount": MAX_AMOUNT})
            assert r.status_code == 200, r.text
    with s.client("ana") as c:
        stats = c.get("/api/statistics").json()
        assert stats["confirmed_amount"] is not None and stats["confirmed_amount"] >= 2 * MAX_AMOUNT


def test_resident_ids_masked_in_audit_comments_and_logs_and_no_values_logged(served_sqlite):
    s = served_sqlite
    numeric_id = "110105194912310021"  # a resident ID that is also a number, typed into the address
    with s.client("li") as c:
        assert c.get(f"/api/clues/{numeric_id}").status_code == 403
        r = c.post(f"/api/clues/{s.ids['wf19']}/comments", json={"text": f"当事人证件 {FULL_WIDTH_ID} 与 {RESIDENT_ID}"})
        assert r.status_code == 200 and r.json()["text"] == "当事人证件 110105***********X 与 110105***********X"
        assert FULL_WIDTH_ID not in r.text
        # bad input carrying a secret: refused, the secret neither echoed nor logged
        r = c.post("/precheck", json={"setl": {"setl_id": SECRET, "psn_no": SECRET, "setl_time": SECRET}})
        assert r.status_code == 422 and SECRET not in r.text
        r = c.post(f"/api/clues/{s.ids['wf19']}/comments", json={"text": SECRET * 1000})
        assert r.status_code == 422 and SECRET not in r.text
        assert SECRET not in c.get("/api/clues", params={"state": SECRET}).text
    with s.store() as store:
        audit = json.dumps(store.audit_log(limit=100000), ensure_ascii=False)
        comments = json.dumps(store.get(s.ids["wf19"], store.user("wang"))["comments"], ensure_ascii=False)
    assert numeric_id not in audit and "110105***********1" in audit
    assert FULL_WIDTH_ID not in comments and RESIDENT_ID not in comments
    log = s.log()
    assert SECRET not in log and "input_value" not in log and numeric_id not in log and FULL_WIDTH_ID not in log
    assert "422 POST /precheck: " in log and "setl.setl_time (string_pattern_mismatch)" in log  # names and types


def test_retried_transitions_and_comments_are_done_once(served):
    clue = served.ids["wf18"]
    with served.client("li") as c:
        move = {"to_state": "assigned", "assignee": "li", "reason": "分派"}
        first = c.post(f"/api/clues/{clue}/transitions", json=move, headers={"Idempotency-Key": "retry-move-1"})
        again = c.post(f"/api/clues/{clue}/transitions", json=move, headers={"Idempotency-Key": "retry-move-1"})
        assert first.status_code == again.status_code == 200 and again.json() == first.json()
        assert "idempotent-replayed" not in first.headers and again.headers["idempotent-replayed"] == "true"
        _refused(c.post(f"/api/clues/{clue}/transitions", json=move | {"reason": "另一理由"},
                        headers={"Idempotency-Key": "retry-move-1"}), 422)
        _refused(c.post(f"/api/clues/{clue}/comments", json={"text": "x"}, headers={"Idempotency-Key": "bad key!"}),
                 422, "Idempotency-Key")

        def post_comment(_) -> dict:
            with served.client("li") as cc:
                r = cc.post(f"/api/clues/{clue}/comments", json={"text": "重试的意见"},
                            headers={"Idempotency-Key": "retry-comment-1"})
                assert r.status_code == 200, r.text
                return r.json()

        with ThreadPoolExecutor(4) as pool:  # a client retrying while the first attempt is still in flight
            answers = list(pool.map(post_comment, range(4)))
        assert all(a == answers[0] for a in answers)
        detail = c.get(f"/api/clues/{clue}").json()
    assert [t["to_state"] for t in detail["transitions"]] == ["assigned"]
    assert [x["text"] for x in detail["comments"]].count("重试的意见") == 1


def test_evidence_export_as_a_job_limited_per_user(served_sqlite, tmp_path):
    from served import unzip_package

    from serving.evidence_export import verify_package

    s = served_sqlite
    ring = s.ids["ring"]
    with s.client("ana") as c:
        first = c.post(f"/api/clues/{ring}/evidence/jobs", params={"pdf": "false"})
        second = c.post(f"/api/clues/{ring}/evidence/jobs", params={"pdf": "false"})
        assert first.status_code == second.status_code == 202, (first.text, second.text)
        body = _refused(c.post(f"/api/clues/{ring}/evidence/jobs", params={"pdf": "false"}), 429)
        assert body["error"] == "too_many_jobs" and "每人最多同时 2 个" in body["detail"]
        job = first.json()
        assert job["state"] in ("queued", "running") and job["download_url"] is None
        if c.get(second.json()["status_url"]).json()["state"] != "done":
            assert _refused(c.get(f"/api/jobs/{second.json()['id']}/download"), 409)["error"] == "conflict"
        deadline = time.monotonic() + 300
        while job["state"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.5)
            job = c.get(job["status_url"]).json()
        assert job["state"] == "done", job
        r = c.get(job["download_url"])
        assert r.status_code == 200 and r.headers["x-package-sha256"] == job["result"]["sha256"]
        assert verify_package(unzip_package(r.content, tmp_path), s.data.evidence_public_key).ok
        assert job["id"] in [j["id"] for j in c.get("/api/jobs").json()["items"]]
    with s.client("li") as other:  # someone else's job is not found
        assert _refused(other.get(job["status_url"]), 404)["error"] == "not_found"
    with s.client("zhao") as outside:  # a clue outside the investigator's region: no job
        assert outside.post(f"/api/clues/{ring}/evidence/jobs").status_code == 403
    with s.store() as store:
        downloads = store.audit_log(action="download_job")
    assert any(d["actor"] == "ana" and d["detail"]["job_id"] == job["id"] for d in downloads)

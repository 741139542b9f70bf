"""The clue store's idempotency keys, background jobs and bounds, on SQLite and on a real PostgreSQL.

A transition or comment retried with the same key is written once and answered with the first answer,
also when the two attempts race; background jobs are limited per user and those of a dead service
process are found and failed; out-of-range clue ids and resident IDs never reach the audit log.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serving.clues import User, open_store
from serving.clues.access import mask_id
from serving.clues.store import MAX_AMOUNT, ClueNotFound, IdempotencyConflict, JobNotFound, Replayed, TooManyJobs

ADMIN = User("admin1", "admin")
FULL_WIDTH_ID = "１１０１０５１９４９１２３１００２Ｘ"


@pytest.fixture
def store(clue_db_url, tmp_path):
    s = open_store(clue_db_url, identity_vault=tmp_path / "w.identity.duckdb")
    s.upsert_clues("run-1", [{"entity_type": "fixmedins", "entity_id": f"H{i}", "region": "220102", "p_fraud": 0.9,
                              "amount_at_risk": 1000.0, "typologies": ["fake_treatment"]} for i in range(3)])
    s.create_user("li", "investigator", "2201")
    s.create_user("ana", "analyst")
    yield s
    s.close()


def _counts(store, clue_id: int) -> tuple[int, int]:
    detail = store.get(clue_id, ADMIN)
    return len(detail["transitions"]), len(detail["comments"])


def test_a_retried_transition_or_comment_is_done_once_with_the_first_answer(store):
    li = store.user("li")
    first = store.transition(1, "assigned", li, "分派", idempotency_key="move-1")
    again = store.transition(1, "assigned", li, "分派", idempotency_key="move-1")
    assert not isinstance(first, Replayed) and isinstance(again, Replayed) and again == first
    note = store.comment(1, li, "病历与收费不符", idempotency_key="note-1")
    assert store.comment(1, li, "病历与收费不符", idempotency_key="note-1") == note
    assert _counts(store, 1) == (1, 1)
    with pytest.raises(IdempotencyConflict):  # the same key for another request is refused, nothing written
        store.comment(1, li, "另一条意见", idempotency_key="note-1")
    assert _counts(store, 1) == (1, 1)
    # keys are per user: another user's same key is a new request
    store.comment(1, store.user("ana"), "病历与收费不符", idempotency_key="note-1")
    assert _counts(store, 1) == (1, 2)
    # without a key every request acts
    store.comment(1, li, "病历与收费不符")
    assert _counts(store, 1) == (1, 3)


def test_racing_retries_with_one_key_write_once(store):
    li = store.user("li")
    answers, errors = [], []
    barrier = threading.Barrier(6)

    def attempt() -> None:
        barrier.wait()
        try:
            answers.append(store.comment(2, li, "同一条意见", idempotency_key="race-1"))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(answers) == 6 and all(a == answers[0] for a in answers)
    assert _counts(store, 2) == (0, 1)


def test_amounts_are_bounded_and_statistics_stay_finite(store):
    store.transition(1, "assigned", ADMIN)
    store.transition(1, "verifying", ADMIN)
    with pytest.raises(ValueError, match="confirmed_amount"):
        store.transition(1, "confirmed", ADMIN, confirmed_amount=1e308)
    for clue_id in (1, 2):
        if clue_id == 2:
            store.transition(2, "assigned", ADMIN)
            store.transition(2, "verifying", ADMIN)
        store.transition(clue_id, "confirmed", ADMIN, confirmed_amount=MAX_AMOUNT)
    assert store.statistics(ADMIN)["confirmed_amount"] == 2 * MAX_AMOUNT


def test_resident_ids_in_comments_and_clue_numbers_never_reach_the_store_in_clear(store):
    li = store.user("li")
    assert store.comment(1, li, f"当事人身份证 {FULL_WIDTH_ID}")["text"] == "当事人身份证 110105***********X"
    assert mask_id("11010519491231002x") == "110105***********x"
    for clue_id in (110105194912310021, 2**63 - 1, 2**31):  # an ID typed as a clue number; ids no clue can have
        with pytest.raises(Exception, match="不存在"):
            store.get(clue_id, li)
    denied = store.audit_log(action="denied")
    assert len(denied) == 3 and all(d["clue_id"] is None for d in denied)
    text = json.dumps(store.audit_log(limit=100000), ensure_ascii=False)
    assert "110105194912310021" not in text and "110105***********1" in text
    assert FULL_WIDTH_ID not in json.dumps([c["text"] for c in store.get(1, ADMIN)["comments"]], ensure_ascii=False)


def test_jobs_are_limited_per_user_and_lost_ones_are_failed(store):
    li, ana = store.user("li"), store.user("ana")
    a = store.create_job("evidence_package", li, clue_id=1, params={"depth": 1}, per_user=2)
    store.create_job("evidence_package", li, clue_id=1, per_user=2)
    with pytest.raises(TooManyJobs, match="每人最多同时 2 个"):
        store.create_job("evidence_package", li, clue_id=1, per_user=2)
    with pytest.raises(TooManyJobs, match="服务繁忙"):
        store.create_job("evidence_package", ana, clue_id=1, per_user=2, max_live=2)
    with pytest.raises(JobNotFound):  # another user's job is not found; an admin sees it
        store.job(a["id"], ana)
    assert store.job(a["id"], ADMIN)["state"] == "queued"
    assert store.start_job(a["id"]) and not store.start_job(a["id"])
    store.finish_job(a["id"], {"sha256": "x" * 64, "filename": "clue-1-evidence.zip", "bytes": 10})
    assert store.job(a["id"], li)["state"] == "done"
    # a job of a service process that is gone (here: a process that has exited) is failed, and frees the slot
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lost = store.create_job("evidence_package", ana, clue_id=1, owner_pid=int(gone.stdout))
    assert store.job(lost["id"], ana)["state"] == "failed" and "退出" in store.job(lost["id"], ana)["error"]
    store.create_job("evidence_package", li, clue_id=1, per_user=2)  # a is done: li has 2 live again
    assert [j["state"] for j in store.jobs(li)].count("queued") == 2
    with pytest.raises(Exception, match="不存在"):  # a clue the user may not see: no job, refusal audited
        store.create_job("evidence_package", User("zhao", "investigator", "3301"), clue_id=1)


def _scheduling_of_a_child_that_asks_for_more() -> dict:
    """In a background process: start a child that, as Chromium does, sets its own priority back to nice 0
    (allowed as root), and report the scheduling class it ends up in."""
    import os

    code = ("import os\ntry:\n    os.setpriority(os.PRIO_PROCESS, 0, 0)\nexcept OSError:\n    pass\n"
            "print(os.sched_getscheduler(0))")
    code += "\nprint(open('/proc/self/cgroup').read())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    policy, groups = child.stdout.split("\n", 1)
    return {"self": os.sched_getscheduler(0), "child": int(policy), "idle": os.SCHED_IDLE,
            "self_group": _cpu_group(open("/proc/self/cgroup").read()), "child_group": _cpu_group(groups)}


def _cpu_group(proc_cgroup: str) -> str | None:
    """The CPU control group in a /proc/<pid>/cgroup text (cgroup v1's cpu controller), or None."""
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and "cpu" in parts[1].split(","):
            return parts[2]
    return None


def _idle_group_possible() -> bool:
    import os
    from pathlib import Path

    return os.geteuid() == 0 and (Path("/sys/fs/cgroup/cpu") / "cpu.idle").is_file()


@pytest.mark.skipif(not hasattr(__import__("os"), "SCHED_IDLE"), reason="the idle class is Linux's")
def test_background_work_and_what_it_starts_stay_in_the_idle_class(tmp_path):
    from serving.jobs import JobPool
    from features.config import Settings

    pool = JobPool(db_url=f"sqlite:///{tmp_path / 'c.db'}", settings=Settings(warehouse=tmp_path / "w.duckdb"),
                   folder=tmp_path / "jobs")
    try:
        seen = pool._pool().submit(_scheduling_of_a_child_that_asks_for_more).result(timeout=120)
    finally:
        pool.close()
    assert seen["self"] == seen["idle"]
    assert seen["child"] == seen["idle"]  # a renice by the child does not take it out of the class
    if _idle_group_possible():  # and both are in the idle CPU group, which holds across session groups
        assert seen["self_group"] == seen["child_group"] == "/yibao-background"
        assert Path("/sys/fs/cgroup/cpu/yibao-background/cpu.idle").read_text().strip() == "1"


def _scheduling_inside_a_store_transaction(db_url: str) -> dict:
    """In a background process: the scheduling class and nice value inside one clue-store transaction
    and after it, with the store as the evidence job opens it."""
    import os

    from sqlalchemy import text

    from serving.clues.store import open_store
    from serving.jobs import lift_priority_in_transactions

    store = open_store(db_url)
    lifted = lift_priority_in_transactions(store.engine)
    with store.engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        inside = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0),
                  _cpu_group(open("/proc/thread-self/cgroup").read()))
    after = (os.sched_getscheduler(0), os.getpriority(os.PRIO_PROCESS, 0),
             _cpu_group(open("/proc/thread-self/cgroup").read()))
    return {"lifted": lifted, "inside": inside, "after": after}


@pytest.mark.skipif(not hasattr(__import__("os"), "SCHED_IDLE"), reason="the idle class is Linux's")
@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="leaving the idle class needs CAP_SYS_NICE")
def test_a_background_store_transaction_runs_in_the_normal_class(tmp_path):
    # an idle-class process preempted while it holds the store's write lock would hold up every writer
    import os

    from features.config import Settings
    from serving.jobs import JobLimits, JobPool

    url = f"sqlite:///{tmp_path / 'c.db'}"
    pool = JobPool(db_url=url, settings=Settings(warehouse=tmp_path / "w.duckdb"), folder=tmp_path / "jobs",
                   limits=JobLimits(niceness=10))
    try:
        seen = pool._pool().submit(_scheduling_inside_a_store_transaction, url).result(timeout=120)
    finally:
        pool.close()
    assert seen["lifted"] is True
    assert seen["inside"][:2] == (os.SCHED_OTHER, 0)
    assert seen["after"][:2] == (os.SCHED_IDLE, 10)
    if _idle_group_possible():  # out of the idle CPU group for the transaction, back in after it
        assert seen["inside"][2] == "/" and seen["after"][2] == "/yibao-background"


def test_a_token_check_does_not_wait_for_the_connections_that_writers_hold(tmp_path):
    # The service checks every request's token on its event loop (SQLite). Requests that write hold the
    # store's pooled connections while they queue for the write lock; the token check must not queue
    # behind them (it had to, and the loop, with every route of the worker, stood still).
    store = open_store(f"sqlite:///{tmp_path / 'clues.db'}")
    token = store.create_user("li", "analyst")
    held = [store.engine.connect() for _ in range(store.engine.pool.size() + store.engine.pool._max_overflow)]
    answer: list = []
    checker = threading.Thread(target=lambda: answer.append(store.authenticate(token)), daemon=True)
    checker.start()
    checker.join(timeout=10)  # without its own pool: 30 s of waiting, then a pool time-out
    waited = checker.is_alive()
    for con in held:
        con.close()
    assert not waited and answer == [User("li", "analyst", "")]
    store.close()


def test_a_read_does_its_work_outside_the_write_lock_and_audits_before_it_answers(tmp_path, monkeypatch):
    # A read (the list, a clue, the statistics) writes an audit entry. It used to take the write lock for
    # the whole read: on SQLite one writer at a time, so every read queued behind every other and held
    # the lock while it built its answer in Python. Now it reads a snapshot without the lock, then writes
    # its entry in a short transaction of its own, before it answers.
    import serving.clues.store as store_module

    url = f"sqlite:///{tmp_path / 'clues.db'}"
    store = open_store(url)
    store.upsert_clues("run-1", [{"entity_type": "fixmedins", "entity_id": "H1", "entity_name": "甲医院",
                                  "region": "110101", "p_fraud": 0.9, "amount_at_risk": 1000.0,
                                  "typologies": ["fake_treatment"], "sources": ["model"], "reasons": [],
                                  "rule_hits": [], "evidence": {}}])
    analyst = User("li", "analyst", "")
    lock = store_module._WRITE_LOCKS[url]
    held_while_building: list[bool] = []
    building = store_module._statistics

    def watched(*a, **kw):
        held_while_building.append(lock.locked())
        return building(*a, **kw)

    monkeypatch.setattr(store_module, "_statistics", watched)
    summary = store._summary

    def watched_summary(*a, **kw):
        held_while_building.append(lock.locked())
        return summary(*a, **kw)

    monkeypatch.setattr(store, "_summary", watched_summary)
    before = len(store.audit_log())
    assert store.statistics(analyst)["total"] == 1
    clue_id = store.list(analyst)["items"][0]["id"]
    assert store.get(clue_id, analyst)["entity_id"] == "H1"
    assert held_while_building and not any(held_while_building)
    assert len(store.audit_log()) == before + 3
    assert {e["action"] for e in store.audit_log(clue_id=clue_id)} >= {"read_detail"}

    with pytest.raises(ClueNotFound):  # a refused read is still audited
        store.get(clue_id + 1, analyst)
    assert store.audit_log()[-1]["action"] == "denied"
    store.close()

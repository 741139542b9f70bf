"""The clue store on SQLite and on a real PostgreSQL: upsert, workflow, audit, access, SLA, statistics, labels."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import duckdb
import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from features.config import Settings
from serving.clues import (
    AccessDenied,
    ClueInputError,
    ClueNotFound,
    IllegalTransition,
    UnknownState,
    User,
    UserError,
    open_store,
)
from serving.clues.models import AppendOnlyError, AuditLog, Base, ClueTransition
from serving.clues.store import IdempotencyConflict, Replayed

ADMIN = User("admin1", "admin")
ANALYST = User("ana", "analyst")
CERTNO = "11010519491231002X"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t

    def advance(self, **kw) -> None:
        self.t += timedelta(**kw)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 3, 1, 9, 0, 0))


@pytest.fixture
def store(clue_db_url, clock, tmp_path):
    s = open_store(clue_db_url, sla_days=30, clock=clock, identity_vault=tmp_path / "w.identity.duckdb")
    yield s
    s.close()


def clue(entity_id: str, *, entity_type: str = "fixmedins", region: str = "220102", p: float = 0.9,
         amount: float = 10_000.0, typologies=("fake_treatment",), sources=("model",), **extra) -> dict:
    return {"entity_type": entity_type, "entity_id": entity_id, "region": region, "p_fraud": p,
            "amount_at_risk": amount, "typologies": list(typologies), "sources": list(sources),
            "reasons": [{"text_zh": "康复理疗人次为同级机构的 5.2 倍", "feature": "rehab_per_day", "value": 52,
                         "peer_value": 10, "contribution": 0.31}], **extra}


def confirm(store, clue_id: int, user: User = ADMIN, amount: float = 1000.0) -> dict:
    store.transition(clue_id, "assigned", user)
    store.transition(clue_id, "verifying", user, "现场核查")
    return store.transition(clue_id, "confirmed", user, "病历与收费不符", confirmed_amount=amount)


def test_schema_from_migrations_matches_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with store.engine.connect() as con:
        assert compare_metadata(MigrationContext.configure(con, opts={"compare_type": True}), Base.metadata) == []
        assert con.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0004"


def test_open_store_twice_migrates_once(clue_db_url, clock):
    open_store(clue_db_url, clock=clock).close()
    again = open_store(clue_db_url, clock=clock)
    assert again.list(ADMIN)["total"] == 0
    again.close()


def test_rerun_updates_clues_without_duplicating_or_resetting_state(store, clock):
    first = [clue("H001", amount=50_000), clue("H002"), clue("P9", entity_type="psn", typologies=["card_theft"])]
    assert store.upsert_clues("run-1", first).to_dict() == {"new": 3, "updated": 0, "unchanged": 0}
    h1 = next(c for c in store.list(ADMIN)["items"] if c["entity_id"] == "H001")
    assert h1["priority"] == pytest.approx(45_000) and h1["state"] == "new" and h1["first_seen_run"] == "run-1"
    store.transition(h1["id"], "assigned", ADMIN, assignee="admin1")
    store.transition(h1["id"], "verifying", ADMIN, "开始核查")
    clock.advance(days=1)
    second = [clue("H001", p=0.5, amount=80_000, sources=["rule"], typologies=["over_examination"],
                   risk_level="medium"),
              clue("H002"), clue("H003")]  # P9 is not found again
    assert store.upsert_clues("run-2", second).to_dict() == {"new": 1, "updated": 1, "unchanged": 1}
    items = {c["entity_id"]: c for c in store.list(ADMIN, limit=10)["items"]}
    assert set(items) == {"H001", "H002", "H003", "P9"}  # no duplicates, the vanished clue stays
    h1 = store.get(h1["id"], ADMIN)
    assert h1["state"] == "verifying" and h1["assignee"] == "admin1"  # workflow untouched
    assert h1["priority"] == pytest.approx(40_000) and h1["p_fraud"] == 0.5
    assert h1["sources"] == ["model", "rule"] and h1["typologies"] == ["fake_treatment", "over_examination"]
    assert (h1["first_seen_run"], h1["last_seen_run"]) == ("run-1", "run-2")
    assert items["H002"]["last_seen_run"] == "run-2" and items["P9"]["last_seen_run"] == "run-1"
    assert items["H002"]["updated_at"] == "2025-03-01 09:00:00"  # unchanged clues keep their time
    again = store.upsert_clues("run-2", second)  # a run written in two batches sums its counts
    assert again.to_dict() == {"new": 0, "updated": 0, "unchanged": 3}
    runs = {r["run_id"]: r["counts"] for r in store.runs()}
    assert runs["run-1"]["new"] == 3 and runs["run-2"] == {"new": 1, "updated": 1, "unchanged": 4, "clues": 6}


def test_bad_clues_are_rejected_and_nothing_is_written(store):
    bad = [clue("H001"), clue("H001"), clue("X", entity_type="hospital"), clue("H9", typologies=["made_up"]),
           clue(CERTNO, entity_type="psn"), clue("H8", p=1.5), clue("H7", region="22"), clue("H6", colour="red")]
    with pytest.raises(ClueInputError) as e:
        store.upsert_clues("run-1", bad)
    msg = str(e.value)
    for needle in ("one clue per entity", "entity_type must be", "unknown typologies ['made_up']",
                   "looks like a resident ID", "p_fraud", "6-digit", "unknown field(s) ['colour']", "7 clue(s)"):
        assert needle in msg
    assert store.list(ADMIN)["total"] == 0


def test_resident_ids_never_enter_the_store(store):
    reasons = [{"text_zh": f"举报称持 {CERTNO} 的人已死亡", "feature": "die_date"}]
    store.upsert_clues("run-1", [clue("P1", entity_type="psn", typologies=["dead_person"], reasons=reasons,
                                      entity_name=f"张三 {CERTNO}", evidence={"note": CERTNO, "psn_no": ["P1"]})])
    store.comment(1, ADMIN, f"核对身份证 {CERTNO.lower()} 无误")
    store.transition(1, "dismissed", ADMIN, f"{CERTNO} 查无此人")
    with store.engine.connect() as con:
        for table in ("clue", "clue_comment", "clue_transition", "audit_log"):
            for row in con.execute(text(f"SELECT * FROM {table}")):
                assert CERTNO not in str(row).upper(), table
    detail = store.get(1, ADMIN)
    assert "110105***********X" in detail["reasons"][0]["text_zh"]
    assert detail["evidence"]["psn_no"] == ["P1"]  # person numbers are not resident IDs


def test_workflow_records_who_when_why_and_amounts(store, clock):
    store.upsert_clues("run-1", [clue("H001")])
    inv = User("li", "investigator", "2201")
    store.create_user("li", "investigator", "2201")
    d = store.transition(1, "assigned", ADMIN, "分派给李", assignee="li")
    assert d["assignee"] == "li" and [m["state"] for m in d["allowed_transitions"]] == ["verifying", "assigned",
                                                                                        "dismissed"]
    clock.advance(hours=2)
    store.transition(1, "verifying", inv, "调取病历")
    d = store.transition(1, "confirmed", inv, "虚记理疗 120 次", confirmed_amount=12_345.678)
    assert d["state_zh"] == "查实" and d["confirmed_amount"] == 12_345.68 and d["outcome"] == "confirmed"
    d = store.transition(1, "transferred_police", ADMIN, "涉嫌诈骗")
    store.record_referral_outcome(1, ADMIN, "filed", date(2025, 3, 1), "长公立字〔2025〕1号")
    d = store.transition(1, "closed", ADMIN, "已追回", recovered_amount=10_000)
    assert d["recovered_amount"] == 10_000 and d["allowed_transitions"] == []
    hist = d["transitions"]
    assert [(t["from_state"], t["to_state"]) for t in hist] == [
        ("new", "assigned"), ("assigned", "verifying"), ("verifying", "confirmed"),
        ("confirmed", "transferred_police"), ("transferred_police", "transferred_police"),
        ("transferred_police", "closed")]
    assert [t["actor"] for t in hist] == ["admin1", "li", "li", "admin1", "admin1", "admin1"]
    assert hist[1]["at"] == "2025-03-01 11:00:00" and hist[1]["reason"] == "调取病历" and hist[1]["role"] == "investigator"
    assert hist[0]["assignee"] == "li" and hist[2]["confirmed_amount"] == 12_345.68


def test_illegal_transitions_raise_clear_errors_and_change_nothing(store):
    store.upsert_clues("run-1", [clue("H001")])
    with pytest.raises(IllegalTransition) as e:
        store.transition(1, "confirmed", ADMIN, "直接查实", confirmed_amount=1)
    msg = str(e.value)
    assert "#1 (fixmedins:H001)" in msg and "新线索" in msg and "查实" in msg
    assert "cannot move from new to confirmed" in msg and "allowed: assigned, dismissed" in msg
    with pytest.raises(IllegalTransition, match="needs reason"):
        store.transition(1, "dismissed", ADMIN, "  ")
    store.transition(1, "assigned", ADMIN)
    store.transition(1, "verifying", ADMIN)
    with pytest.raises(IllegalTransition, match="needs confirmed_amount"):
        store.transition(1, "confirmed", ADMIN, "查实")
    with pytest.raises(UnknownState, match=r"unknown state\) 'solved'"):
        store.transition(1, "solved", ADMIN)
    with pytest.raises(ValueError, match="non-negative"):
        store.transition(1, "confirmed", ADMIN, confirmed_amount=-5)
    with pytest.raises(ValueError, match="not confirmed"):
        store.transition(1, "dismissed", ADMIN, "无问题", recovered_amount=5)
    store.transition(1, "dismissed", ADMIN, "收费合规")
    store.transition(1, "closed", ADMIN, "办结")
    with pytest.raises(IllegalTransition, match="allowed: none"):
        store.transition(1, "verifying", ADMIN, "重新打开")
    d = store.get(1, ADMIN)
    assert d["state"] == "closed" and len(d["transitions"]) == 4
    with pytest.raises(ClueNotFound):
        store.transition(99, "assigned", ADMIN)


def test_a_dismissed_clue_can_be_reopened_and_then_is_no_label(store, tmp_path):
    store.upsert_clues("run-1", [clue("H001")])
    store.transition(1, "dismissed", ADMIN, "初筛排除")
    assert store.export_labels(tmp_path / "a.csv")["rows"] == 1
    store.transition(1, "verifying", ADMIN, "新的举报")
    assert store.get(1, ADMIN)["outcome"] is None
    assert store.export_labels(tmp_path / "b.csv")["rows"] == 0


def test_audit_log_has_every_read_and_change(store):
    store.upsert_clues("run-1", [clue("H001"), clue("H002")])
    store.list(ANALYST, state="new")
    store.get(1, ANALYST)
    store.comment(1, ANALYST, "建议优先核查")
    store.transition(2, "assigned", ADMIN)
    with pytest.raises(AccessDenied):
        store.transition(1, "assigned", ANALYST)
    log = store.audit_log()
    assert [(a["actor"], a["action"], a["clue_id"]) for a in log] == [
        ("system", "upsert", None), ("ana", "list", None), ("ana", "read_detail", 1), ("ana", "comment", 1),
        ("admin1", "transition", 2), ("ana", "denied", 1)]
    assert log[1]["detail"] == {"state": "new", "sort": "priority", "returned": 2, "total": 2}
    assert log[4]["detail"] == {"from": "new", "to": "assigned", "assignee": "admin1"}
    assert log[5]["detail"] == {"attempted": "transition", "why": "role"}
    assert log[2]["at"] == "2025-03-01 09:00:00" and log[2]["role"] == "analyst"


def test_audit_log_and_transitions_cannot_be_changed_or_deleted(store):
    store.upsert_clues("run-1", [clue("H001")])
    store.transition(1, "assigned", ADMIN)
    with store._sessions() as s:  # the ORM refuses
        entry = s.scalars(select(AuditLog)).first()
        entry.action = "nothing"
        with pytest.raises(AppendOnlyError, match="append-only"):
            s.flush()
        s.rollback()
        with pytest.raises(AppendOnlyError):
            s.delete(s.scalars(select(ClueTransition)).first())
            s.flush()
        s.rollback()
    for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                "UPDATE clue_transition SET reason = 'x'", "DELETE FROM clue_transition"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as con:  # so does the database
            con.execute(text(sql))
    if store.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as con:
            con.execute(text("TRUNCATE audit_log"))
    assert [a["action"] for a in store.audit_log()] == ["upsert", "transition"]
    with store.engine.begin() as con:  # appending still works
        con.execute(text("INSERT INTO audit_log (at, actor, role, action, detail) "
                         "VALUES (CURRENT_TIMESTAMP, 'x', 'admin', 'manual', '{}')"))


def test_region_and_role_isolation(store):
    store.upsert_clues("run-1", [clue("H001", region="220102"), clue("H002", region="220103"),
                                 clue("H003", region="220201"), clue("H004", region="310101")])
    for name, role, region in (("li", "investigator", "2201"), ("zhao", "investigator", "220201"),
                               ("gong", "liaison", ""), ("gong2", "liaison", "31")):
        store.create_user(name, role, region)
    li, zhao = User("li", "investigator", "2201"), User("zhao", "investigator", "220201")
    gong, gong2 = User("gong", "liaison"), User("gong2", "liaison", "31")

    def seen(user):
        return sorted(c["entity_id"] for c in store.list(user)["items"])

    assert seen(ANALYST) == seen(ADMIN) == ["H001", "H002", "H003", "H004"]
    assert seen(li) == ["H001", "H002"] and seen(zhao) == ["H003"]
    assert seen(gong) == []
    with pytest.raises(ClueNotFound, match="not found or not visible"):
        store.get(3, li)
    with pytest.raises(ClueNotFound):
        store.transition(3, "assigned", li)
    assert store.audit_log(action="denied")[-1]["detail"] == {"attempted": "transition", "why": "not_visible"}
    # cross-checking: a clue assigned to an investigator of another region becomes theirs to see
    store.transition(1, "assigned", ADMIN, "交叉检查", assignee="zhao")
    assert seen(zhao) == ["H001", "H003"]
    store.transition(1, "verifying", zhao)
    with pytest.raises(AccessDenied, match="may not transition"):
        store.transition(1, "confirmed", ANALYST, confirmed_amount=1)
    store.transition(1, "confirmed", zhao, "查实", confirmed_amount=500)
    store.transition(1, "transferred_police", zhao, "移送")
    confirm(store, 4)
    store.transition(4, "transferred_health", ADMIN, "移送卫健")
    assert seen(gong) == ["H001"] and seen(gong2) == []
    store.record_referral_outcome(1, gong, "not_filed", date(2025, 3, 1), "长公不立字〔2025〕3号")
    store.transition(1, "closed", ADMIN, "结案")
    assert seen(gong) == ["H001"]  # closed after a transfer to police: still theirs
    d = store.get(1, gong)
    assert d["allowed_transitions"] == [] and d["may_comment"] is False
    with pytest.raises(AccessDenied, match="may not comment"):
        store.comment(1, gong, "收到")
    with pytest.raises(AccessDenied):
        store.transition(1, "closed", gong)
    with pytest.raises(AccessDenied):
        store.export_labels("x.csv", gong)
    assert store.statistics(gong)["total"] == 1 and store.statistics(li)["total"] == 2


def test_users_and_tokens(store):
    token = store.create_user("li", "investigator", "2201")
    assert len(token) >= 40
    assert store.authenticate(token) == User("li", "investigator", "2201")
    assert store.authenticate("wrong") is None and store.authenticate("") is None and store.authenticate(None) is None
    with store.engine.connect() as con:
        stored = con.execute(text('SELECT token_sha256 FROM "user"')).scalar()
    assert token not in stored and len(stored) == 64
    with pytest.raises(UserError, match="user exists"):
        store.create_user("li", "analyst")
    with pytest.raises(UserError, match="needs a region"):
        store.create_user("wu", "investigator")
    with pytest.raises(UserError, match="unknown role"):
        store.create_user("wu", "boss")
    with pytest.raises(UserError, match="admdvs prefix"):
        store.create_user("wu", "analyst", "22x")
    with pytest.raises(AccessDenied):
        store.create_user("wu", "analyst", actor=ANALYST)
    new = store.reset_token("li")
    assert store.authenticate(token) is None and store.authenticate(new).username == "li"
    store.set_active("li", False)
    assert store.authenticate(new) is None and store.user("li") is None
    assert [u["username"] for u in store.users()] == ["li"] and "token" not in str(store.users())


def test_overdue_high_risk_clues_are_flagged_and_offered_for_cross_checking(store, clock):
    store.upsert_clues("run-1", [clue("H001", p=0.9, region="220102"), clue("H002", p=0.5, region="220102"),
                                 clue("H003", p=0.95, region="220102"), clue("H004", p=0.8, region="220201")])
    for name, region in (("li", "2201"), ("zhao", "220201"), ("qian", "3101")):
        store.create_user(name, "investigator", region)
    store.transition(4, "assigned", ADMIN, assignee="qian")  # qian is busier than zhao
    confirm(store, 3)  # verified in time
    clock.advance(days=29)
    assert store.overdue(ANALYST) == [] and store.list(ANALYST, overdue=True)["total"] == 0
    clock.advance(days=2)
    store.upsert_clues("run-2", [clue("H002", p=0.9)])  # becomes high risk now: its own 30 days start
    late = store.overdue(ANALYST)
    assert [c["entity_id"] for c in late] == ["H001", "H004"]
    h1 = late[0]
    assert h1["overdue"] and h1["overdue_days"] == 1 and h1["risk_level"] == "high"
    assert h1["cross_check"] == {"username": "zhao", "region": "220201", "open_clues": 0}
    assert late[1]["cross_check"]["username"] == "li"  # not the assignee, not from 2202
    assert store.get(1, ADMIN)["overdue_flagged_at"] == "2025-04-01 09:00:00"
    assert [c["entity_id"] for c in store.list(ANALYST, overdue=True)["items"]] == ["H001", "H004"]
    assert store.list(ANALYST, overdue=False)["total"] == 2
    assert store.statistics(ANALYST)["overdue"] == 2
    assert [c["entity_id"] for c in store.overdue(User("li", "investigator", "2201"))] == ["H001"]


def test_statistics_by_state_source_typology_region_age(store, clock):
    store.upsert_clues("run-1", [clue("H001", amount=1000, sources=["model", "rule"]),
                                 clue("H002", amount=2000, typologies=["over_examination"], region="220201")])
    clock.advance(days=40)
    store.upsert_clues("run-2", [clue("H003", amount=4000, sources=["report"], typologies=[]),
                                 clue("R1", entity_type="ring", amount=8000, sources=["graph"],
                                      typologies=["collusive_ring"], region="220102")])
    confirm(store, 1, amount=900)
    store.transition(1, "closed", ADMIN, "结案", recovered_amount=700)
    store.transition(2, "dismissed", ADMIN, "合规")
    st = store.statistics(ANALYST)
    assert st["total"] == 4 and st["cleared"] == 2 and st["open"] == 2 and st["share_cleared"] == 0.5
    assert st["amount_at_risk"] == 15_000 and st["confirmed_amount"] == 900 and st["recovered_amount"] == 700
    assert st["by_state"]["closed"] == {"count": 1, "amount_at_risk": 1000, "confirmed_amount": 900,
                                        "recovered_amount": 700, "label_zh": "办结"}
    assert st["by_state"]["new"]["count"] == 2 and st["by_state"]["dismissed"]["count"] == 1
    assert {k: v["count"] for k, v in st["by_source"].items() if v["count"]} == {"model": 2, "rule": 1,
                                                                                  "report": 1, "graph": 1}
    assert st["by_typology"]["fake_treatment"]["count"] == 1 and st["by_typology"]["collusive_ring"]["label_zh"] == \
        "结伙就医/团伙骗保"
    assert {k: v["count"] for k, v in st["by_region"].items()} == {"220102": 3, "220201": 1}
    assert {k: (v["count"], v["open"]) for k, v in st["by_age"].items()} == {"0-7": (2, 2), "8-30": (0, 0),
                                                                             "31-90": (2, 0), ">90": (0, 0)}
    assert store.statistics(User("x", "investigator", "220201"))["total"] == 1
    empty = open_store("sqlite://").statistics(ANALYST)
    assert empty["total"] == 0 and empty["share_cleared"] is None


def test_statistics_split_a_clues_money_over_its_typologies_instead_of_repeating_it(store):
    hits = [{"rule_id": "liangku_gender", "typology": "gender_age_limit", "hits": 3, "amount_at_risk": 300.0},
            {"rule_id": "split_admission", "typology": "split_admission", "hits": 1, "amount_at_risk": 900.0}]
    store.upsert_clues("run-1", [clue("H001", amount=6000, typologies=["gender_age_limit", "split_admission"],
                                      rule_hits=hits),
                                 clue("H002", amount=1000, typologies=["fake_treatment", "over_examination"])])
    st = store.statistics(ANALYST)
    by = {k: (v["count"], v["amount_at_risk"]) for k, v in st["by_typology"].items()}
    # by the hits' amounts (1:3) where there are hits, equally where there are none; counts per clue
    assert by == {"gender_age_limit": (1, 1500.0), "split_admission": (1, 4500.0),
                  "fake_treatment": (1, 500.0), "over_examination": (1, 500.0)}
    assert sum(a for _, a in by.values()) == st["amount_at_risk"] == 7000


def test_list_filters_sorting_and_paging(store, clock):
    store.upsert_clues("run-1", [clue("H001", amount=100, p=0.9), clue("H002", amount=5000, p=0.1,
                                                                       typologies=["duplicate_charge"]),
                                 clue("P1", entity_type="psn", amount=300, p=1.0, typologies=["card_theft"],
                                      sources=["report"], region="310101")])
    clock.advance(days=1)
    store.upsert_clues("run-2", [clue("Y1", entity_type="pharmacy", amount=50, typologies=["phantom_purchase"])])

    def ids(**kw):
        return [c["entity_id"] for c in store.list(ANALYST, **kw)["items"]]

    assert ids() == ["H002", "P1", "H001", "Y1"]  # priority = p × amount: 500, 300, 90, 45
    assert ids(sort="amount") == ["H002", "P1", "H001", "Y1"] and ids(sort="age")[-1] == "Y1"
    assert ids(entity_type="pharmacy") == ["Y1"] and ids(typology="card_theft") == ["P1"]
    assert ids(typology="duplicate_charge") == ["H002"] and ids(source="report") == ["P1"]
    assert ids(region="31") == ["P1"] and ids(min_priority=100) == ["H002", "P1"]
    page = store.list(ANALYST, limit=2, offset=1)
    assert page["total"] == 4 and [c["entity_id"] for c in page["items"]] == ["P1", "H001"]
    for bad in ({"state": "open"}, {"sort": "name"}, {"typology": "x"}, {"limit": 0}, {"source": "tip"}):
        with pytest.raises(ValueError, match="unknown|limit"):
            store.list(ANALYST, **bad)


def test_work_queue_search_risk_amount_assignee_and_column_sorts(store, clock):
    store.upsert_clues("run-1", [clue("H001", amount=100, p=0.9, entity_name="宽城区第1医院"),
                                 clue("H002", amount=5000, p=0.5, entity_name="南关区第2人民医院"),
                                 clue("P1", entity_type="psn", amount=300, p=0.2, region="310101")])
    store.create_user("li", "investigator", "2201")
    li = User("li", "investigator", "2201")
    store.transition(2, "assigned", ADMIN, assignee="li")

    def ids(**kw):
        return [c["entity_id"] for c in store.list(ANALYST, **kw)["items"]]

    assert ids(assignee="li") == ["H002"] and [c["id"] for c in store.list(li, assignee="li")["items"]] == [2]
    assert ids(q="h00") == ["H002", "H001"] and ids(q="宽城") == ["H001"] and ids(q="%") == []
    assert ids(risk_level="high") == ["H001"] and ids(risk_level="low") == ["P1"]
    assert ids(min_amount=100, max_amount=300) == ["H001", "P1"] and ids(min_amount=301) == ["H002"]
    assert ids(sort="p_fraud") == ["H001", "H002", "P1"] and ids(sort="p_fraud", order="asc") == ["P1", "H002", "H001"]
    assert ids(sort="state") == ["H001", "P1", "H002"]  # workflow order: 新线索 before 已分派
    assert ids(sort="assignee")[0] == "H002" and ids(sort="id", order="desc") == ["P1", "H002", "H001"]
    assert ids(sort="due") == ["H001", "H002", "P1"]  # 30, 60, 90 days
    with pytest.raises(ValueError, match="amount range is empty"):
        store.list(ANALYST, min_amount=10, max_amount=1)
    for bad in ({"risk_level": "urgent"}, {"order": "up"}, {"colour": "red"}):
        with pytest.raises(ValueError, match="unknown"):
            store.list(ANALYST, **bad)
    store.list(ANALYST, q="11010519491231002X")  # a resident ID typed into the search box is audited masked
    assert store.audit_log(action="list")[-1]["detail"]["q"] == "110105***********X"


def test_every_risk_level_has_a_deadline_and_a_raised_risk_shortens_it(clue_db_url, clock):
    store = open_store(clue_db_url, sla_days={"high": 10, "medium": 20, "low": 40}, clock=clock)
    store.upsert_clues("run-1", [clue("H", p=0.9), clue("M", p=0.5), clue("L", p=0.1)])
    due = {c["entity_id"]: c["due_at"] for c in store.list(ANALYST)["items"]}
    assert due == {"H": "2025-03-11 09:00:00", "M": "2025-03-21 09:00:00", "L": "2025-04-10 09:00:00"}
    clock.advance(days=21)
    assert [c["entity_id"] for c in store.overdue(ANALYST)] == ["H", "M"]
    store.upsert_clues("run-2", [clue("L", p=0.95)])  # now high risk: 10 days from now, earlier than day 40
    assert store.get(3, ADMIN)["due_at"] == "2025-04-01 09:00:00"
    clock.advance(days=11)
    late = store.list(ANALYST, overdue=True, sort="due")["items"]
    assert [c["entity_id"] for c in late] == ["H", "M", "L"] and all(c["overdue"] for c in late)
    by_risk = store.statistics(ANALYST)["by_risk"]
    assert by_risk["high"] == {"label_zh": "高", "sla_days": 10, "open": 2, "overdue": 2}
    assert by_risk["medium"]["overdue"] == 1 and by_risk["low"]["open"] == 0
    with pytest.raises(ValueError, match="risk level"):
        open_store(clue_db_url, sla_days={"urgent": 3})
    assert Settings().clue_sla_days_by_risk == {"high": 30, "medium": 60, "low": 90}
    store.close()


def test_bulk_assignment_moves_each_clue_audited_and_refuses_what_it_may_not(store):
    store.upsert_clues("run-1", [clue("H001"), clue("H002"), clue("H003"), clue("Z1", region="330102")])
    store.create_user("li", "investigator", "2201")
    store.create_user("zhao", "investigator", "3301")
    store.create_user("ana2", "analyst")
    confirm(store, 3)  # 查实: cannot be assigned again
    li = User("li", "investigator", "2201")
    out = store.bulk_assign([1, 2, 3, 4, 2], "zhao", li, "交叉检查")
    assert out["assigned"] == [1, 2] and [r["id"] for r in out["refused"]] == [3, 4]
    assert "不能从「查实」转到「已分派」" in out["refused"][0]["error"] and "无权查看" in out["refused"][1]["error"]
    for clue_id in (1, 2):
        d = store.get(clue_id, ADMIN)
        assert d["assignee"] == "zhao" and d["transitions"][-1]["actor"] == "li"
        assert d["transitions"][-1]["reason"] == "交叉检查"
    log = store.audit_log()
    assert [a["clue_id"] for a in log if a["action"] == "transition" and a["actor"] == "li"] == [1, 2]
    assert [a for a in log if a["action"] == "denied" and a["clue_id"] == 4]
    assert store.audit_log(action="bulk_assign")[0]["detail"] == {"assignee": "zhao", "assigned": [1, 2],
                                                                      "refused": [3, 4]}
    with pytest.raises(UserError, match="not an active investigator"):
        store.bulk_assign([1], "ana2", ADMIN)
    with pytest.raises(AccessDenied):
        store.bulk_assign([1], "li", ANALYST)
    with pytest.raises(ValueError, match="1..200"):
        store.bulk_assign(range(1, 300), "li", ADMIN)


def test_statistics_and_export_follow_the_list_filters(store):
    store.upsert_clues("run-1", [clue("H001", amount=100, p=0.9), clue("H002", amount=5000, p=0.5),
                                 clue("H003", amount=700, p=0.2, region="220201")])
    st = store.statistics(ANALYST, risk_level="medium")
    assert st["total"] == 1 and st["amount_at_risk"] == 5000.0
    st = store.statistics(ANALYST, region="2201", min_amount=50, max_amount=1000)
    assert st["total"] == 1 and st["amount_at_risk"] == 100.0 and list(st["by_region"]) == ["220102"]
    assert store.statistics(ANALYST)["total"] == 3
    out = store.export_list(ANALYST, max_amount=1000, sort="amount")
    assert out["total"] == 2 and [c["entity_id"] for c in out["items"]] == ["H003", "H001"] and not out["truncated"]
    assert store.export_list(ANALYST, limit=1)["truncated"]
    entry = store.audit_log(action="export_list")[0]["detail"]
    assert entry["max_amount"] == 1000 and entry["clue_ids"] == [3, 1] and entry["total"] == 2


def test_police_outcomes_are_recorded_audited_and_close_the_case_only_when_final(store, clock):
    store.upsert_clues("run-1", [clue("H001"), clue("H002"), clue("H003", region="310101")])
    gong, gong_sh = User("gong", "liaison", "2201"), User("gong3", "liaison", "31")
    for clue_id in (1, 2, 3):
        confirm(store, clue_id)
        store.transition(clue_id, "transferred_police", ADMIN, "涉嫌诈骗骗保")
    st = store.statistics(ANALYST)
    assert st["cleared"] == 0 and st["awaiting_referral_outcome"] == 3 and st["by_referral_outcome"]["none"]["count"] == 3

    clock.advance(days=3)
    d = store.record_referral_outcome(1, gong, "accepted", date(2025, 3, 2), "长公受字〔2025〕7号", "已受理")
    assert (d["referral_outcome"], d["referral_outcome_zh"], d["referral_outcome_date"], d["referral_doc_no"]) == (
        "accepted", "受理", "2025-03-02", "长公受字〔2025〕7号")
    with pytest.raises(IllegalTransition, match="only after a final outcome"):
        store.transition(1, "closed", ADMIN, "结案")  # 受理 is not final
    d = store.record_referral_outcome(1, gong, "filed", date(2025, 3, 4), "长公立字〔2025〕12号", idempotency_key="k-12")
    again = store.record_referral_outcome(1, gong, "filed", date(2025, 3, 4), "长公立字〔2025〕12号",
                                          idempotency_key="k-12")  # the liaison's retry: recorded once
    assert isinstance(again, Replayed) and again == d and len(store.audit_log(action="referral_outcome")) == 2
    with pytest.raises(IdempotencyConflict):  # the same key with another outcome is not a retry
        store.record_referral_outcome(1, gong, "returned", date(2025, 3, 4), "长公退字1号", idempotency_key="k-12")
    assert d["state"] == "transferred_police" and d["may_record_outcome"] is True
    last = d["transitions"][-1]
    assert (last["from_state"], last["to_state"], last["actor"], last["role"]) == (
        "transferred_police", "transferred_police", "gong", "liaison")
    assert last["referral_outcome"] == "filed" and last["doc_no"] == "长公立字〔2025〕12号"
    assert store.audit_log(action="referral_outcome")[-1]["detail"] == {
        "referral_outcome": "filed", "outcome_date": "2025-03-04", "doc_no": "长公立字〔2025〕12号"}
    st = store.statistics(ANALYST)
    assert st["cleared"] == 1 and st["awaiting_referral_outcome"] == 2 and st["by_referral_outcome"]["filed"]["count"] == 1
    assert store.transition(1, "closed", ADMIN, "结案")["state"] == "closed"
    assert store.statistics(ANALYST)["cleared"] == 1  # counted once, closed or not

    with pytest.raises(ClueNotFound):  # another region's liaison does not see it
        store.record_referral_outcome(2, gong_sh, "filed", date(2025, 3, 4), "沪公立字1号")
    with pytest.raises(AccessDenied):
        store.record_referral_outcome(2, ANALYST, "filed", date(2025, 3, 4), "x")
    with pytest.raises(IllegalTransition, match="only a clue transferred to public security"):
        store.record_referral_outcome(1, ADMIN, "returned", date(2025, 3, 4), "x")  # closed now
    for bad in ({"outcome": "arrested"}, {"doc_no": " "}, {"outcome_date": date(2025, 3, 5)},
                {"outcome_date": date(2025, 2, 1)}):
        args = {"outcome": "returned", "outcome_date": date(2025, 3, 4), "doc_no": "退字1号"} | bad
        with pytest.raises(ValueError):
            store.record_referral_outcome(2, gong, args["outcome"], args["outcome_date"], args["doc_no"])
    d = store.record_referral_outcome(2, gong, "returned", date(2025, 3, 4), f"退字 {CERTNO}")
    assert CERTNO not in str(d) and store.transition(2, "closed", ADMIN)["state"] == "closed"


def test_labels_export_round_trips_through_ingest(store, tmp_path):
    from features.ingest import ingest

    hits = [{"rule_id": "R1", "typology": "fake_treatment", "hits": 3, "amount_at_risk": 300.0},
            {"rule_id": "R2", "typology": "over_examination", "hits": 1, "amount_at_risk": 100.0}]
    store.upsert_clues("run-1", [
        clue("H001", typologies=["fake_treatment", "over_examination"], rule_hits=hits),
        clue("Y1", entity_type="pharmacy", typologies=["phantom_purchase"]),
        clue("R7", entity_type="ring", typologies=["collusive_ring", "drug_resale"]),
        clue("D1", entity_type="prac", typologies=[]),
        clue("P1", entity_type="psn", typologies=["card_theft"]),
    ])
    confirm(store, 1, amount=1000.01)
    store.transition(1, "transferred_discipline", ADMIN, "移送纪检")
    store.transition(2, "dismissed", ADMIN, "进销存相符")
    confirm(store, 3, amount=10)
    store.transition(4, "dismissed", ADMIN, "无问题")  # no typology: cannot be a label
    folder = tmp_path / "verified"
    summary = store.export_labels(folder / "labels.csv", ANALYST)
    assert summary == {"path": str(folder / "labels.csv"), "rows": 5, "clues": 3, "positives": 4, "negatives": 1,
                       "skipped_without_typology": 1}
    assert store.audit_log(action="export_labels")[0]["actor"] == "ana"
    raw = (folder / "labels.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    report = ingest(folder, Settings(warehouse=tmp_path / "w.duckdb"))
    assert report.table("labels").loaded == 5 and report.table("labels").quarantined == 0
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT entity_type, entity_id, label, fraud_type, amount, source, "
                           "strftime(decided_at, '%Y-%m-%d'), ring_id FROM labels ORDER BY entity_id, fraud_type"
                           ).fetchall()
    assert [(r[0], r[1], r[2], r[3], float(r[4]), r[5], r[6], r[7]) for r in rows] == [
        ("fixmedins", "H001", 1, "fake_treatment", 750.01, "verified_clue", "2025-03-01", None),
        ("fixmedins", "H001", 1, "over_examination", 250.0, "verified_clue", "2025-03-01", None),
        ("ring", "R7", 1, "collusive_ring", 5.0, "verified_clue", "2025-03-01", "R7"),
        ("ring", "R7", 1, "drug_resale", 5.0, "verified_clue", "2025-03-01", "R7"),
        ("fixmedins", "Y1", 0, "phantom_purchase", 0.0, "verified_clue", "2025-03-01", None),
    ]
    parquet = store.export_labels(tmp_path / "pq")
    assert parquet["path"].endswith("pq/labels.parquet") and parquet["rows"] == 5
    again = ingest(tmp_path / "pq", Settings(warehouse=tmp_path / "w.duckdb"))
    assert again.table("labels").unchanged == 5  # idempotent by key


def test_identity_resolution_only_for_allowed_roles_and_audited(store, tmp_path):
    vault = tmp_path / "w.identity.duckdb"
    with duckdb.connect(str(vault)) as con:
        con.execute("CREATE TABLE psn_identity (psn_no VARCHAR, certno_pseudonym VARCHAR, certno VARCHAR, "
                    "psn_name VARCHAR, _ingest_batch VARCHAR)")
        con.execute("INSERT INTO psn_identity VALUES ('P1', 'Pabc', ?, '张三', 'b1'), "
                    "('P2', 'Pdef', '110105194912310021', '李四', 'b1'), ('P3', 'Pghi', 'x', '王五', 'b1')",
                    [CERTNO])
    store.upsert_clues("run-1", [clue("P1", entity_type="psn", typologies=["card_theft"]),
                                 clue("R1", entity_type="ring", typologies=["collusive_ring"],
                                      evidence={"psn_no": ["P2"], "setl_id": ["S1"]})])
    assert store.resolve_identity(1, ADMIN) == [{"psn_no": "P1", "certno": CERTNO, "psn_name": "张三"}]
    assert [p["psn_no"] for p in store.resolve_identity(2, ADMIN)] == ["P2"]
    with pytest.raises(ClueNotFound, match="person not part"):
        store.resolve_identity(2, ADMIN, psn_no="P3")
    with pytest.raises(AccessDenied):
        store.resolve_identity(1, ANALYST)
    gong = User("gong", "liaison")
    with pytest.raises(ClueNotFound):
        store.resolve_identity(1, gong)
    confirm(store, 1)
    store.transition(1, "transferred_police", ADMIN, "移送公安")
    assert store.resolve_identity(1, gong, psn_no="P1")[0]["certno"] == CERTNO
    log = store.audit_log(action="resolve_identity")
    assert [(a["actor"], a["detail"]["psn_no"]) for a in log] == [("admin1", ["P1"]), ("admin1", ["P2"]),
                                                                  ("gong", ["P1"])]
    with store.engine.connect() as con:
        assert CERTNO not in " ".join(str(r) for r in con.execute(text("SELECT * FROM audit_log")))
    store.identity_vault = tmp_path / "missing.duckdb"
    with pytest.raises(FileNotFoundError, match="identity vault not found"):
        store.resolve_identity(1, ADMIN)


def test_concurrent_transitions_do_not_both_win(clue_db_url, clock):
    """Two investigators move the same clue at once: one wins, the other is refused (row lock / SQLite lock)."""
    import threading

    a = open_store(clue_db_url, clock=clock)
    b = open_store(clue_db_url, clock=clock)
    a.upsert_clues("run-1", [clue("H001")])
    a.transition(1, "assigned", ADMIN)
    a.transition(1, "verifying", ADMIN)
    results: list[str] = []

    def move(store, to, **kw):
        try:
            store.transition(1, to, ADMIN, "并发", **kw)
            results.append(to)
        except (IllegalTransition, DBAPIError) as e:
            results.append(type(e).__name__)

    threads = [threading.Thread(target=move, args=(a, "confirmed"), kwargs={"confirmed_amount": 1}),
               threading.Thread(target=move, args=(b, "dismissed"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    d = a.get(1, ADMIN)
    assert len(d["transitions"]) == 3 and d["state"] in ("confirmed", "dismissed")
    assert sorted(results) in (["IllegalTransition", d["state"]], ["OperationalError", d["state"]])
    a.close()
    b.close()


# -- attachments (附件) ---------------------------------------------------------------------------------

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def test_attachments_are_kept_with_their_hash_and_refused_by_content(store):
    import hashlib

    from serving.clues.attachments import AttachmentRefused

    store.upsert_clues("run-1", [clue("H001")])
    rec = store.attach(1, ADMIN, PDF, f"C:\\扫描\\现场核查记录 {CERTNO}.PDF", "inspection_record")
    assert rec["sha256"] == hashlib.sha256(PDF).hexdigest() and rec["bytes"] == len(PDF)
    assert rec["media_type"] == "application/pdf" and rec["kind_zh"] == "现场核查记录"
    assert rec["filename"].startswith("现场核查记录 110105") and CERTNO not in rec["filename"]  # no folder, ID masked
    assert rec["filename"].endswith(".pdf")
    meta, content = store.attachment(1, rec["id"], ADMIN)
    assert content == PDF and meta == rec
    assert [a["id"] for a in store.get(1, ADMIN)["attachments"]] == [rec["id"]]
    # judged by the bytes, not the name: an executable called .pdf, an empty file, an unknown kind
    for content, kind in ((b"MZ\x90\x00 not a pdf", "medical_record"), (b"", "other"), (PNG, "selfie")):
        with pytest.raises(AttachmentRefused):
            store.attach(1, ADMIN, content, "scan.pdf", kind)
    assert len(store.get(1, ADMIN)["attachments"]) == 1
    # a retry with the same key stores nothing more
    first = store.attach(1, ADMIN, PNG, "病历.png", "medical_record", idempotency_key="k-1")
    again = store.attach(1, ADMIN, PNG, "病历.png", "medical_record", idempotency_key="k-1")
    assert isinstance(again, Replayed) and again["id"] == first["id"]
    actions = [a for (a,) in store.engine.connect().execute(
        text("SELECT action FROM audit_log WHERE clue_id = 1 ORDER BY id")).all()]
    assert actions.count("attach") == 2 and actions.count("read_attachment") == 1


def test_attachments_follow_who_may_see_and_comment(store):
    store.upsert_clues("run-1", [clue("H001", region="220102")])
    rec = store.attach(1, ADMIN, PDF, "a.pdf", "other")
    elsewhere = User("zhao", "investigator", "3301")
    with pytest.raises(ClueNotFound):
        store.attachment(1, rec["id"], elsewhere)
    with pytest.raises(ClueNotFound):
        store.attach(1, elsewhere, PDF, "b.pdf", "other")
    with pytest.raises(ClueNotFound, match="附件"):
        store.attachment(1, rec["id"] + 1, ADMIN)
    liaison = User("gong", "liaison", "220102")
    with pytest.raises((AccessDenied, ClueNotFound)):  # a liaison does not comment, so does not attach
        store.attach(1, liaison, PDF, "c.pdf", "other")


def test_an_attachment_is_append_only_and_checked_when_read(store):
    from serving.clues.store import AttachmentCorrupted

    store.upsert_clues("run-1", [clue("H001")])
    rec = store.attach(1, ADMIN, PDF, "a.pdf", "other")
    for sql in ("UPDATE clue_attachment SET filename = 'x.pdf'", "DELETE FROM clue_attachment"):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as con:
            con.execute(text(sql))
    if store.engine.dialect.name == "sqlite":  # bytes changed behind the store's back are not handed on
        with store.engine.begin() as con:
            con.execute(text("DROP TRIGGER clue_attachment_no_update"))
            con.execute(text("UPDATE clue_attachment SET content = :c"), {"c": PDF + b"tampered"})
        with pytest.raises(AttachmentCorrupted, match="SHA-256"):
            store.attachment(1, rec["id"], ADMIN)

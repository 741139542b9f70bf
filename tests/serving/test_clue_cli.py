"""``yibao clues / users / labels`` end to end through typer's CliRunner, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from serving.cli import app
from serving.clues import open_store

runner = CliRunner()


def _run(url: str, *args: str):
    return runner.invoke(app, [*args], env={"YIBAO_CLUE_DB": url, "COLUMNS": "200"})


def _json(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def seeded(clue_db_url) -> str:
    with open_store(clue_db_url) as store:
        store.upsert_clues("run-1", [
            {"entity_type": "fixmedins", "entity_id": "H001", "entity_name": "市康复医院", "region": "220102",
             "p_fraud": 0.92, "amount_at_risk": 80_000, "typologies": ["fake_treatment"], "sources": ["model", "rule"],
             "reasons": [{"text_zh": "理疗人次为同级 5 倍", "feature": "rehab_per_day", "value": 50, "peer_value": 10,
                          "contribution": 0.4}],
             "rule_hits": [{"rule_id": "fake_treatment_rehab", "typology": "fake_treatment", "hits": 12,
                            "amount_at_risk": 80_000}],
             "evidence": {"setl_id": ["S1", "S2"]}},
            {"entity_type": "psn", "entity_id": "P7", "region": "310101", "p_fraud": 0.4, "amount_at_risk": 900,
             "typologies": ["card_theft"], "sources": ["report"]},
        ])
    return clue_db_url


def test_list_show_move_stats_export(seeded, tmp_path):
    page = _json(_run(seeded, "clues", "list", "--json"))
    assert page["total"] == 2 and [c["entity_id"] for c in page["items"]] == ["H001", "P7"]
    assert _json(_run(seeded, "clues", "list", "--typology", "card_theft", "--json"))["items"][0]["entity_id"] == "P7"
    table = _run(seeded, "clues", "list", "--type", "fixmedins")
    assert table.exit_code == 0 and "线索清单" in table.output and "市康复医院" in table.output
    detail = _json(_run(seeded, "clues", "show", "1", "--json"))
    assert detail["reasons"][0]["feature"] == "rehab_per_day" and detail["state"] == "new"
    shown = _run(seeded, "clues", "show", "1")
    assert shown.exit_code == 0 and "理疗人次为同级 5 倍" in shown.output and "规则命中" in shown.output
    token = _json(_run(seeded, "users", "add", "li", "--role", "investigator", "--region", "2201", "--json"))["token"]
    assert len(token) > 30
    moved = _json(_run(seeded, "clues", "move", "1", "assigned", "--assignee", "li", "--reason", "分派", "--json"))
    assert moved["state"] == "assigned" and moved["assignee"] == "li"
    assert _run(seeded, "clues", "move", "1", "verifying", "--user", "li").exit_code == 0
    bad = _run(seeded, "clues", "move", "1", "confirmed", "--user", "li")
    assert bad.exit_code == 2 and "needs confirmed_amount" in bad.output
    ok = _run(seeded, "clues", "move", "1", "confirmed", "--amount", "60000", "--reason", "虚记理疗", "--user", "li")
    assert ok.exit_code == 0 and "查实" in ok.output
    hidden = _run(seeded, "clues", "show", "2", "--user", "li")
    assert hidden.exit_code == 2 and "not found or not visible" in hidden.output
    assert _json(_run(seeded, "clues", "list", "--user", "li", "--json"))["total"] == 1
    stats = _json(_run(seeded, "clues", "stats", "--json"))
    assert stats["by_state"]["confirmed"]["confirmed_amount"] == 60_000 and stats["total"] == 2
    assert "清仓见底" in _run(seeded, "clues", "stats").output
    assert _json(_run(seeded, "clues", "comment", "1", "核查完毕", "--json"))["text"] == "核查完毕"
    assert _json(_run(seeded, "clues", "overdue", "--json"))["overdue"] == []
    out = tmp_path / "labels"
    summary = _json(_run(seeded, "labels", "export", "--out", str(out), "--json"))
    assert summary["positives"] == 1 and (out / "labels.parquet").is_file()
    users = _json(_run(seeded, "users", "list", "--json"))["users"]
    assert [u["username"] for u in users] == ["li"] and token not in json.dumps(users)
    with open_store(seeded) as store:
        actors = {a["actor"] for a in store.audit_log()}
        assert "li" in actors and any(a.startswith("cli:") for a in actors)


def test_clear_errors(seeded):
    for args, needle in (
        (("clues", "move", "1", "solved"), "unknown state"),
        (("clues", "move", "1", "closed"), "cannot move from new to closed"),
        (("clues", "move", "1", "dismissed"), "needs reason"),
        (("clues", "show", "99"), "clue #99 not found"),
        (("clues", "list", "--state", "open"), "unknown state"),
        (("clues", "list", "--user", "nobody"), "no such active user"),
        (("users", "add", "x", "--role", "boss"), "unknown role"),
        (("users", "add", "y", "--role", "investigator"), "needs a region"),
    ):
        r = _run(seeded, *args)
        assert r.exit_code == 2 and needle in r.output, (args, r.output)


def test_unreachable_database_is_a_clear_error():
    r = _run("postgresql+psycopg://u:secret@127.0.0.1:1/none", "clues", "list")
    assert r.exit_code == 2 and "cannot open clue store" in r.output and "secret" not in r.output


def test_a_mistyped_warehouse_is_an_error_not_an_empty_store(tmp_path):
    env = {"YIBAO_CLUE_DB": None, "YIBAO_WAREHOUSE": None, "COLUMNS": "200"}
    typo = tmp_path / "typo.duckdb"
    r = runner.invoke(app, ["clues", "list", "-w", str(typo)], env=env)
    assert r.exit_code == 2 and "线索库不存在" in r.output and str(tmp_path / "clues.db") in r.output
    assert not (tmp_path / "clues.db").exists()
    # the first user comes before the first screening: `users add` makes the store, and says which
    r = runner.invoke(app, ["users", "add", "ana", "--role", "analyst", "-w", str(typo)], env=env)
    assert r.exit_code == 0 and f"sqlite:///{tmp_path / 'clues.db'}" in r.output
    r = runner.invoke(app, ["clues", "list", "-w", str(typo), "--json"], env=env)
    assert r.exit_code == 0


def test_queue_filters_and_police_outcome_from_the_terminal(seeded):
    assert [c["entity_id"] for c in _json(_run(seeded, "clues", "list", "--search", "康复", "--json"))["items"]] == ["H001"]
    assert _json(_run(seeded, "clues", "list", "--risk", "medium", "--max-amount", "1000", "--json"))["total"] == 1
    assert [c["entity_id"] for c in _json(_run(seeded, "clues", "list", "--sort", "amount", "--order", "asc",
                                                "--json"))["items"]] == ["P7", "H001"]
    _run(seeded, "users", "add", "gong", "--role", "liaison")
    for state, extra in (("assigned", []), ("verifying", []), ("confirmed", ["--amount", "100"]),
                         ("transferred_police", [])):
        assert _run(seeded, "clues", "move", "1", state, *extra).exit_code == 0
    refused = _run(seeded, "clues", "move", "1", "closed")
    assert refused.exit_code == 2 and "final outcome" in refused.output
    bad = _run(seeded, "clues", "outcome", "1", "filed", "--date", "2026-13-01", "--doc", "x", "--user", "gong")
    assert bad.exit_code == 2 and "YYYY-MM-DD" in bad.output
    from datetime import date

    done = _run(seeded, "clues", "outcome", "1", "filed", "--date", date.today().isoformat(), "--doc",
                "长公立字〔2026〕12号", "--user", "gong")
    assert done.exit_code == 0 and "立案" in done.output
    stats = _json(_run(seeded, "clues", "stats", "--json"))
    assert stats["by_referral_outcome"]["filed"]["count"] == 1 and stats["awaiting_referral_outcome"] == 0
    assert _json(_run(seeded, "clues", "move", "1", "closed", "--json"))["state"] == "closed"
    with open_store(seeded) as store:
        assert store.audit_log(action="referral_outcome")[0]["actor"] == "gong"

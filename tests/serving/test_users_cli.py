"""``yibao users disable / enable / rotate-token / list`` against the store of a running server, checked over HTTP.

The service looks every request's token up, so a disabled account and a rotated (old) token are refused
from the next request on, without a restart; every change is in the audit log.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from serving.cli import app

pytestmark = pytest.mark.slow

runner = CliRunner()


def _yibao(db_url: str, *args: str) -> dict:
    result = runner.invoke(app, [*args, "--db", db_url, "--json"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_disable_enable_and_rotate_take_effect_at_once_over_http(served_sqlite):
    s = served_sqlite
    token = _yibao(s.db_url, "users", "add", "tian", "--role", "analyst")["token"]
    with s.client(token=token) as c:
        assert c.get("/api/me").json()["username"] == "tian"

    _yibao(s.db_url, "users", "disable", "tian")
    with s.client(token=token) as c:
        r = c.get("/api/me")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert c.post("/precheck", json={}).status_code == 401
    assert not next(u for u in _yibao(s.db_url, "users", "list")["users"] if u["username"] == "tian")["active"]

    _yibao(s.db_url, "users", "enable", "tian")
    with s.client(token=token) as c:
        assert c.get("/api/me").status_code == 200

    new = _yibao(s.db_url, "users", "rotate-token", "tian")["token"]
    assert new != token
    with s.client(token=token) as old, s.client(token=new) as fresh:
        assert old.get("/api/me").status_code == 401
        assert fresh.get("/api/me").json()["username"] == "tian"

    with s.store() as store:
        changes = [(a["action"], a["detail"]) for a in store.audit_log(limit=100000)
                   if a["action"] in ("set_active", "reset_token", "list_users")]
    assert ("set_active", {"username": "tian", "active": False}) in changes
    assert ("set_active", {"username": "tian", "active": True}) in changes
    assert ("reset_token", {"username": "tian"}) in changes and ("list_users", {}) in changes
    assert new not in json.dumps(changes) and token not in json.dumps(changes)


def test_only_admins_manage_users_and_unknown_users_are_named(served_sqlite):
    s = served_sqlite
    for args in (("users", "disable", "wang", "--user", "li"), ("users", "rotate-token", "wang", "--user", "ana"),
                 ("users", "list", "--user", "li")):
        result = runner.invoke(app, [*args, "--db", s.db_url], env={"COLUMNS": "200"})
        assert result.exit_code != 0 and "manage_users" in result.output, (args, result.output)
    result = runner.invoke(app, ["users", "disable", "nobody", "--db", s.db_url], env={"COLUMNS": "200"})
    assert result.exit_code != 0 and "no such user" in result.output
    with s.client("wang") as c:  # the refused attempts changed nothing
        assert c.get("/api/me").status_code == 200

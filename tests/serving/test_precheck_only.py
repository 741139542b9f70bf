"""`yibao serve --precheck-only`: the hospitals' interface alone, in processes of its own, over HTTP.

The same pre-check answers as the full service; no clue API and no page on that port; tokens checked as
everywhere; ``--nice`` lowers the priority of the server's processes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import psutil
import pytest

from serving.scoring import visit_from_warehouse

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def precheck_only(service_data, tmp_path_factory):
    from served import serving_alone

    def argv(port: int, db_url: str) -> list[str]:
        return [str(Path(sys.executable).with_name("yibao")), "serve", "--precheck-only", "--nice", "5",
                "--warehouse", str(service_data.warehouse), "--db", db_url, "--bundle", str(service_data.bundle),
                "--port", str(port), "--dev"]

    with serving_alone(service_data, tmp_path_factory.mktemp("precheck_only"), argv) as served:
        yield served


def _visit(served, sql: str) -> dict:
    with duckdb.connect(str(served.data.warehouse), read_only=True) as con:
        return visit_from_warehouse(con, con.execute(sql).fetchone()[0])


def test_the_precheck_alone_answers_as_the_full_service(precheck_only, served_sqlite):
    hit = _visit(precheck_only, "SELECT setl_id FROM rule_hits WHERE rule_id = 'price_over_cap' ORDER BY setl_id LIMIT 1")
    recent = _visit(precheck_only, "SELECT setl_id FROM feat_setl ORDER BY setl_time DESC, setl_id LIMIT 1")
    with precheck_only.client("ana") as alone, served_sqlite.client("ana") as full:
        for visit in (hit | {"mode": "during"}, recent):
            a, b = alone.post("/precheck", json=visit), full.post("/precheck", json=visit)
            assert a.status_code == b.status_code == 200, a.text
            a, b = a.json(), b.json()
            for key in ("decision", "n_rule_hits", "rule_hits", "p_fraud", "risk_level", "reasons_zh"):
                assert a[key] == b[key], key
        assert alone.post("/precheck", json={"setl": {"setl_id": "S1"}}).status_code == 422
        assert alone.post("/score", json={"settlements": [{"setl_id": recent["setl"]["setl_id"]}]}).status_code == 200


def test_the_precheck_port_has_no_clue_desk_and_checks_tokens(precheck_only):
    with precheck_only.client("ana") as c:
        assert c.get("/api/clues").status_code == 404
        assert c.get("/ui").status_code == 404
    with precheck_only.client() as anonymous:
        assert anonymous.post("/precheck", json={"setl": {"setl_id": "S1"}}).status_code == 401


def test_nice_lowers_the_servers_processes(precheck_only):
    workers = [p for p in psutil.Process(precheck_only.proc.pid).children(recursive=True)
               if "_bentoml_impl.worker.service" in " ".join(p.cmdline())]
    assert workers and all(p.nice() == 5 for p in workers)

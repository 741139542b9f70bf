"""Evidence packages (证据包): screen → clue store → export a ring's package → read it back.

Every test runs on the `tiny` region (tests/conftest.py) and on `small` (the README's main job, `yibao demo
--preset small`, conftest.py `small_demo`). One pseudonymised package (an analyst's) and one clear package
(a liaison's, after the ring is transferred to public security) are exported once per region; the tests
read them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import networkx as nx
import pytest

from serving.clues.access import User
from serving.clues.store import SYSTEM, open_store
from serving.evidence_export import export_package, generate_keypair, verify_package
from serving.evidence_export.formats import node_id
from serving.evidence_export.graph import case_graph, seeds_of
from serving.evidence_export.redact import Redactor
from serving.evidence_export.report import chromium_path

# the small demo is taken with request.getfixturevalue, which tests/conftest.py cannot see: grouped by hand
pytestmark = pytest.mark.xdist_group("small_demo")

ANALYST = User("ana", "analyst")
LIAISON = User("gong", "liaison")


@pytest.fixture(scope="module", params=["tiny", "small"])
def env(request, tmp_path_factory):
    from features.config import Settings
    from models.bundle import ScorerBundle
    from models.screening import screen

    if request.param == "tiny":
        warehouse, bundle = request.getfixturevalue("tiny_warehouse"), request.getfixturevalue("tiny_trained")[1].bundle
    else:
        demo = request.getfixturevalue("small_demo")
        warehouse, bundle = demo["warehouse"], ScorerBundle.load(demo["bundle"])
    folder = tmp_path_factory.mktemp(f"evidence_{request.param}")
    vault = Settings(warehouse=warehouse).identity_vault
    clues = screen(warehouse, bundle, max_clues=60).clues
    rings = [c for c in clues if c["entity_type"] == "ring" and c["evidence"]["graph"]["members"]]
    assert rings, f"the screening found no ring: {sorted({c['entity_type'] for c in clues})}"
    store = open_store(f"sqlite:///{folder / 'clues.db'}", identity_vault=vault)
    store.upsert_clues("screen-test", clues)
    for name, role in (("ana", "analyst"), ("gong", "liaison")):
        store.create_user(name, role)
    ids = {c["clue_key"]: c["id"] for c in store.list(SYSTEM, limit=1000)["items"]}
    ring_id = ids[f"ring:{rings[0]['entity_id']}"]
    priv, pub = generate_keypair(folder / "keys")
    analyst_pkg = export_package(warehouse, store, ring_id, ANALYST, folder / "analyst_pkg", signing_key=priv)
    for state, kw in (("assigned", {"assignee": "system"}), ("verifying", {}), ("confirmed", {"confirmed_amount": 1.0}),
                      ("transferred_police", {})):
        store.transition(ring_id, state, SYSTEM, "移送公安测试", **kw)
    liaison_pkg = export_package(warehouse, store, ring_id, LIAISON, folder / "liaison_pkg", signing_key=priv)
    yield {"store": store, "warehouse": warehouse, "vault": vault, "ring_id": ring_id, "priv": priv, "pub": pub,
           "analyst": analyst_pkg, "liaison": liaison_pkg, "folder": folder, "ids": ids}
    store.close()


def _manifest(pkg: Path) -> dict:
    return json.loads((pkg / "manifest.json").read_text(encoding="utf-8"))


def _edges(g) -> list[tuple]:
    return sorted((u, v, d["rel_type"], int(d["n_events"])) for u, v, d in g.edges(data=True))


def test_graphml_and_gexf_hold_the_case_graph(env):
    clue = env["store"].get(env["ring_id"], SYSTEM)
    with duckdb.connect(str(env["warehouse"]), read_only=True) as con:
        g = case_graph(con, seeds_of(clue), depth=1)
    clear = Redactor([], clear=True)  # the liaison package names persons by psn_no: comparable as is
    expected_nodes = {node_id(k, clear) for k in g.nodes}
    expected_edges = sorted((node_id(e["src"], clear), node_id(e["dst"], clear), e["kind"], e["n_events"])
                            for e in g.edges)
    assert len(expected_nodes) > len(seeds_of(clue)) and expected_edges
    kinds = {"care": "VISITED", "visit": "SEEN_BY", "billing": "PRESCRIBED_BY", "purchase": "PURCHASED_AT",
             "works_at": "WORKS_AT", "co_visit": "CO_VISITS", "co_purchase": "CO_PURCHASES",
             "co_counter": "CO_SWIPES"}
    expected_edges = sorted((u, v, kinds[k], n) for u, v, k, n in expected_edges)
    for name, reader in (("case_graph.graphml", nx.read_graphml), ("case_graph.gexf", nx.read_gexf)):
        got = reader(env["liaison"] / name)
        assert set(got.nodes) == expected_nodes, name
        assert _edges(got) == expected_edges, name
        types = {d["node_type"] for _, d in got.nodes(data=True)}
        assert types <= {"person", "doctor", "institution", "pharmacy"} and "person" in types
        for _, _, d in got.edges(data=True):  # scalar attributes with dates, counts, amounts
            assert all(isinstance(v, (str, int, float, bool)) for v in d.values())
            assert {"first_date", "last_date", "n_events", "amount"} <= set(d)
    # the pseudonymised package: the same graph under pseudonyms
    anon = nx.read_graphml(env["analyst"] / "case_graph.graphml")
    assert anon.number_of_nodes() == len(expected_nodes) and anon.number_of_edges() == len(expected_edges)
    assert {n for n in anon.nodes if not n.startswith("person:")} == {n for n in expected_nodes
                                                                      if not n.startswith("person:")}
    seeds = {n for n, d in anon.nodes(data=True) if d["seed"]}
    assert len(seeds) == len(seeds_of(clue)) and all(n.startswith("person:P") for n in seeds)


def test_neo4j_csvs_have_import_headers_and_matching_counts(env):
    for pkg in (env["analyst"], env["liaison"]):
        m = _manifest(pkg)
        nodes_raw = (pkg / "neo4j" / "nodes.csv").read_bytes()
        rels_raw = (pkg / "neo4j" / "relationships.csv").read_bytes()
        assert not nodes_raw.startswith(b"\xef\xbb\xbf") and not rels_raw.startswith(b"\xef\xbb\xbf")
        nodes = list(csv.reader(nodes_raw.decode("utf-8").splitlines()))
        rels = list(csv.reader(rels_raw.decode("utf-8").splitlines()))
        assert nodes[0][:2] == ["id:ID", ":LABEL"]
        assert rels[0][:3] == [":START_ID", ":END_ID", ":TYPE"]
        for header in (nodes[0], rels[0]):
            assert len(set(header)) == len(header)
            assert all(h.partition(":")[2] in ("", "ID", "LABEL", "START_ID", "END_ID", "TYPE", "boolean", "long",
                                            "double", "date") for h in header)
        assert len(nodes) - 1 == m["graph"]["nodes"] and len(rels) - 1 == m["graph"]["edges"]
        ids = {r[0] for r in nodes[1:]}
        assert len(ids) == len(nodes) - 1
        assert {r[1] for r in nodes[1:]} <= {"Person", "Doctor", "Institution", "Pharmacy"}
        assert all(r[0] in ids and r[1] in ids for r in rels[1:])
        i2 = list(csv.DictReader((pkg / "i2_links.csv").read_text(encoding="utf-8").splitlines()))
        assert len(i2) == m["graph"]["edges"]
        assert {"from_id", "from_node_type", "to_id", "to_node_type", "link_type", "amount"} <= set(i2[0])


def test_report_pdf_renders(env):
    pkg = env["analyst"]
    html = (pkg / "report.html").read_text(encoding="utf-8")
    for heading in ("案件概况", "关键数据", "时间线", "关系图", "规则命中与政策依据", "模型判断依据"):
        assert heading in html
    assert (pkg / "graph.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    m = _manifest(pkg)
    if chromium_path() is None or shutil.which("pdftoppm") is None:
        assert m["pdf"]["status"] == "skipped" or chromium_path() is not None
        pytest.skip("chromium or pdftoppm not installed (apt-get install chromium fonts-noto-cjk poppler-utils)")
    assert m["pdf"]["status"] == "rendered", m["pdf"]
    out = env["folder"] / "page"
    subprocess.run(["pdftoppm", "-r", "40", "-png", "-f", "1", "-l", "1", str(pkg / "report.pdf"), str(out)],
                   check=True, timeout=60)
    pages = list(env["folder"].glob("page*.png"))
    assert pages and pages[0].stat().st_size > 1000


def test_verify_passes_and_fails_on_any_change(env, tmp_path):
    assert verify_package(env["analyst"], env["pub"]).ok
    assert verify_package(env["liaison"], env["pub"]).ok

    def copy(name: str) -> Path:
        return Path(shutil.copytree(env["analyst"], tmp_path / name))

    changed = copy("changed")
    with (changed / "settlements.csv").open("a", encoding="utf-8") as fh:
        fh.write("x\n")
    added = copy("added")
    (added / "neo4j" / "extra.csv").write_text("a\n", encoding="utf-8")
    removed = copy("removed")
    (removed / "fee_lines.csv").unlink()
    altered = copy("altered")
    m = _manifest(altered)
    m["created_at"] = "2020-01-01T00:00:00+00:00"
    (altered / "manifest.json").write_text(json.dumps(m, ensure_ascii=False, indent=1, sort_keys=True) + "\n",
                                           encoding="utf-8")
    for folder, words in ((changed, "changed"), (added, "added"), (removed, "removed"), (altered, "signature")):
        result = verify_package(folder, env["pub"])
        assert not result.ok and any(words in p for p in result.problems), (folder.name, result.problems)
    other_key = generate_keypair(tmp_path / "other")[1]
    assert not verify_package(env["analyst"], other_key).ok
    # pointed at the folder the zip was unpacked into: says which folder to verify instead
    unpacked = tmp_path / "unpacked"
    shutil.copytree(env["analyst"], unpacked / "clue-1-evidence")
    result = verify_package(unpacked, env["pub"])
    assert not result.ok and any(str(unpacked / "clue-1-evidence") in p for p in result.problems), result.problems
    assert verify_package(unpacked / "clue-1-evidence", env["pub"]).ok


def _package_text(pkg: Path) -> str:
    """Every file of the package as text (the PDF through pdftotext when installed)."""
    parts = []
    for p in sorted(pkg.rglob("*")):
        if not p.is_file():
            continue
        if p.suffix == ".pdf":
            if shutil.which("pdftotext"):
                parts.append(subprocess.run(["pdftotext", str(p), "-"], capture_output=True, text=True,
                                            timeout=60).stdout)
            continue
        parts.append(p.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_non_liaison_package_has_no_identity(env):
    # the persons of the case, named by psn_no in the liaison's clear package
    persons = {r["psn"] for r in csv.DictReader((env["liaison"] / "settlements.csv").read_text("utf-8").splitlines())}
    persons |= {n.split(":", 1)[1] for n in nx.read_graphml(env["liaison"] / "case_graph.graphml").nodes
                if n.startswith("person:")}
    with duckdb.connect(str(env["vault"]), read_only=True) as con:
        identities = con.execute("SELECT psn_no, certno, psn_name FROM psn_identity WHERE psn_no IN (SELECT unnest(?))",
                                 [sorted(persons)]).fetchall()
    assert len(identities) == len(persons) > 5
    clear_text = _package_text(env["liaison"])
    assert _manifest(env["liaison"])["redaction"] == "clear"
    assert all(c in clear_text and n in clear_text for _, c, n in identities)  # the liaison's package is clear
    text = _package_text(env["analyst"])
    assert _manifest(env["analyst"])["redaction"] == "pseudonymised"
    leaks = [(p, what) for p, c, n in identities for what, v in (("certno", c), ("name", n), ("psn_no", p))
             if v and v in text]
    assert not leaks, leaks[:5]
    # pseudonyms are consistent across the files of the package
    graph_persons = {d["code"] for n, d in nx.read_graphml(env["analyst"] / "case_graph.graphml").nodes(data=True)
                     if d["node_type"] == "person"}
    setl_persons = {r["psn"] for r in csv.DictReader((env["analyst"] / "settlements.csv").read_text("utf-8")
                                                     .splitlines())}
    seeds = {r["id:ID"].split(":", 1)[1] for r in csv.DictReader((env["analyst"] / "neo4j" / "nodes.csv")
                                                                  .read_text("utf-8").splitlines())
             if r[":LABEL"] == "Person" and r["seed:boolean"] == "true"}
    assert seeds <= setl_persons and seeds <= graph_persons and all(p.startswith("P") for p in graph_persons)


def test_an_admin_export_of_a_transferred_case_stays_pseudonymised(env, tmp_path):
    pkg = export_package(env["warehouse"], env["store"], env["ring_id"], SYSTEM, tmp_path / "admin_pkg",
                         signing_key=env["priv"], pdf=False)
    m = _manifest(pkg)
    assert m["redaction"] == "pseudonymised" and m["pdf"]["status"] == "skipped"
    assert verify_package(pkg, env["pub"]).ok


def test_every_export_is_audited_with_the_package_hash(env):
    entries = env["store"].audit_log(clue_id=env["ring_id"], action="export_evidence")
    by_user = {e["actor"]: e for e in entries}
    for user, pkg in (("ana", env["analyst"]), ("gong", env["liaison"])):
        e = by_user[user]
        assert e["detail"]["package_sha256"] == hashlib.sha256((pkg / "manifest.json").read_bytes()).hexdigest()
        assert e["detail"]["redaction"] == _manifest(pkg)["redaction"]
    m = _manifest(env["liaison"])
    assert m["exported_by"]["username"] == "gong" and m["clue_id"] == env["ring_id"]
    assert m["rule_pack"]["config_version"] and m["code_version"]["commit"]
    assert {f["path"] for f in m["files"]} >= {"case_graph.graphml", "case_graph.gexf", "neo4j/nodes.csv",
                                               "neo4j/relationships.csv", "i2_links.csv", "settlements.csv",
                                               "fee_lines.csv", "report.html"}


def test_a_clue_the_user_cannot_see_is_refused(env, tmp_path):
    from serving.clues import ClueNotFound

    other = next(i for k, i in env["ids"].items() if i != env["ring_id"])
    with pytest.raises(ClueNotFound):
        export_package(env["warehouse"], env["store"], other, LIAISON, tmp_path / "x", signing_key=env["priv"])
    assert not (tmp_path / "x").exists()


def test_cli_keygen_export_verify(env, tmp_path):
    from typer.testing import CliRunner

    from serving.cli import app

    runner = CliRunner()
    keys = tmp_path / "keys"
    assert runner.invoke(app, ["evidence", "keygen", "--out", str(keys)]).exit_code == 0
    assert runner.invoke(app, ["evidence", "keygen", "--out", str(keys)]).exit_code != 0  # no overwrite
    db = f"sqlite:///{env['folder'] / 'clues.db'}"
    res = runner.invoke(app, ["evidence", "export", str(env["ring_id"]), "--out", str(tmp_path / "pkg"),
                              "--user", "ana", "--db", db, "--warehouse", str(env["warehouse"]), "--no-pdf", "--json"],
                        env={"YIBAO_EVIDENCE_KEY": str(keys / "evidence_signing_key.pem")})
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["redaction"] == "pseudonymised"
    pub = str(keys / "evidence_signing_key.pub.pem")
    assert runner.invoke(app, ["evidence", "verify", str(tmp_path / "pkg"), "--public-key", pub]).exit_code == 0
    (tmp_path / "pkg" / "report.html").write_text("changed", encoding="utf-8")
    res = runner.invoke(app, ["evidence", "verify", str(tmp_path / "pkg"), "--public-key", pub, "--json"])
    assert res.exit_code == 1 and json.loads(res.stdout)["ok"] is False

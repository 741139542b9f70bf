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
import re
import shutil
import subprocess
from html import unescape
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

    if request.param == "tiny":  # trained and registered, not promoted: the export names the version
        uri, trained = request.getfixturevalue("tiny_trained")
        warehouse, bundle, model_ref = request.getfixturevalue("tiny_warehouse"), trained.bundle, \
            f"registry:{trained.model_version}"
    else:  # the demo promotes its model: the export names the registry's champion by default
        demo = request.getfixturevalue("small_demo")
        warehouse, bundle, uri, model_ref = demo["warehouse"], ScorerBundle.load(demo["bundle"]), \
            demo["tracking_uri"], None
    settings = Settings(warehouse=warehouse, tracking_uri=uri)
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
    analyst_pkg = export_package(warehouse, store, ring_id, ANALYST, folder / "analyst_pkg", signing_key=priv,
                                 settings=settings, model_version=model_ref)
    for state, kw in (("assigned", {"assignee": "system"}), ("verifying", {}), ("confirmed", {"confirmed_amount": 1.0}),
                      ("transferred_police", {})):
        store.transition(ring_id, state, SYSTEM, "移送公安测试", **kw)
    liaison_pkg = export_package(warehouse, store, ring_id, LIAISON, folder / "liaison_pkg", signing_key=priv,
                                 settings=settings, model_version=model_ref)
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
    # no settings, so no registry to ask: only then does the report say the model version is unknown
    assert m["model"]["version"] is None and "模型版本 未知" in (pkg / "report.html").read_text("utf-8")


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


# -- the report a liaison reads: A4, page numbers, Beijing time, plain numbers, model version, dated ties ---


def _pdf_pages(pkg: Path) -> list[str]:
    """The text of each page of report.pdf (pdftotext), whitespace collapsed; skips without the tools."""
    if chromium_path() is None or shutil.which("pdftotext") is None or shutil.which("pdfinfo") is None:
        pytest.skip("chromium or poppler-utils not installed (apt-get install chromium fonts-noto-cjk poppler-utils)")
    text = subprocess.run(["pdftotext", "-layout", str(pkg / "report.pdf"), "-"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    return [" ".join(page.split()) for page in text.split("\f") if page.strip()]


def test_report_pdf_is_a4_with_page_numbers(env):
    for pkg in (env["analyst"], env["liaison"]):
        info = subprocess.run(["pdfinfo", str(pkg / "report.pdf")], capture_output=True, text=True, timeout=60,
                              check=True).stdout if shutil.which("pdfinfo") else ""
        pages = _pdf_pages(pkg)
        size = re.search(r"Page size:\s+([\d.]+) x ([\d.]+) pts", info)
        assert size and (round(float(size[1])), round(float(size[2]))) == (595, 842), info
        n = int(re.search(r"Pages:\s+(\d+)", info)[1])
        assert len(pages) == n >= 2
        for i, page in enumerate(pages, start=1):
            assert re.search(rf"第 ?{i} ?页 ?/ ?共 ?{n} ?页", page), (i, page[-200:])
            assert f"线索 #{env['ring_id']}" in page


def test_report_times_are_beijing_time(env):
    from serving.evidence_export.display import beijing_time

    m = _manifest(env["liaison"])
    assert m["created_at"].endswith("+08:00")  # the manifest keeps ISO 8601, in Beijing time
    html = (env["liaison"] / "report.html").read_text("utf-8")
    assert f"导出时间 {beijing_time(m['created_at'])}" in html
    assert re.search(r"导出时间 \d{4}-\d\d-\d\d \d\d:\d\d:\d\d（北京时间）", html)
    # the workflow moves: the store's local times, shown in Beijing time
    moves = env["store"].get(env["ring_id"], SYSTEM)["transitions"]
    assert moves and all(beijing_time(t["at"]) in html for t in moves)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", html), "an ISO time shown to the reader"


def test_report_numbers_are_plain(env):
    for pkg in (env["analyst"], env["liaison"]):
        html = (pkg / "report.html").read_text("utf-8")
        text = unescape(re.sub(r"<[^>]+>", " ", html.split("</style>", 1)[1]))
        if (pkg / "report.pdf").is_file() and shutil.which("pdftotext"):
            text += " ".join(_pdf_pages(pkg))
        sci = re.search(r".{0,40}\d[eE][+-]\d.{0,20}", text)  # 2.035e+05 (a commit hash has e without sign)
        assert sci is None, sci
        figures = _key_figures(html)
        for label, value in figures.items():
            if label.endswith("（元）"):
                assert re.fullmatch(r"-?\d{1,3}(,\d{3})*\.\d\d", value), (label, value)
            elif label.endswith(("（人）", "（家）", "（条）", "（笔）", "（次）")):
                assert re.fullmatch(r"\d{1,3}(,\d{3})*", value), (label, value)
        assert int(figures["结算（笔）"].replace(",", "")) == _manifest(pkg)["counts"]["settlements"]


def _key_figures(html: str) -> dict[str, str]:
    """The 关键数据 table of the report: label -> the text shown."""
    section = html.split("关键数据", 1)[1].split("</table>", 1)[0]
    return {unescape(k).strip(): unescape(v).strip()
            for k, v in re.findall(r"<tr><th>(.*?)</th><td[^>]*>(.*?)</td></tr>", section)}


def test_report_names_the_model_version(env):
    for pkg in (env["analyst"], env["liaison"]):
        m = _manifest(pkg)
        assert m["model"]["version"] and m["model"]["version"].startswith("yibao-fraud v"), m["model"]
        html = (pkg / "report.html").read_text("utf-8")
        assert f"模型版本 {m['model']['version']}" in html and "模型版本 未知" not in html
        assert m["model"]["screening_run"] and m["model"]["screening_run"] in html


def test_person_ties_carry_their_dates_in_every_graph_file(env):
    pkg = env["liaison"]
    ties = ("CO_VISITS", "CO_PURCHASES", "CO_SWIPES")
    found = {}
    for name, reader in (("case_graph.graphml", nx.read_graphml), ("case_graph.gexf", nx.read_gexf)):
        g = reader(pkg / name)
        found[name] = [(u, v, d) for u, v, d in g.edges(data=True) if d["rel_type"] in ties]
    rels = [r for r in csv.DictReader((pkg / "neo4j" / "relationships.csv").read_text("utf-8").splitlines())
            if r[":TYPE"] in ties]
    i2 = [r for r in csv.DictReader((pkg / "i2_links.csv").read_text("utf-8").splitlines()) if r["link_type"] in ties]
    found["neo4j"] = [(r[":START_ID"], r[":END_ID"], {"first_date": r["first_date:date"],
                                                      "last_date": r["last_date:date"],
                                                      "n_events": int(r["n_events:long"])}) for r in rels]
    found["i2"] = [(r["from_id"], r["to_id"], {"first_date": r["first_date"], "last_date": r["last_date"],
                                               "n_events": int(r["n_events"])}) for r in i2]
    assert found["case_graph.graphml"], "the ring's case graph has no co-visit / co-purchase tie"
    setl = list(csv.DictReader((pkg / "settlements.csv").read_text("utf-8").splitlines()))
    days = sorted(s["begndate"] for s in setl if s["begndate"])
    for name, edges in found.items():
        assert len(edges) == len(found["case_graph.graphml"]), name
        for u, v, d in edges:
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", d["first_date"]) and re.fullmatch(r"\d{4}-\d\d-\d\d",
                                                                                      d["last_date"]), (name, u, v, d)
            assert d["first_date"] <= d["last_date"] and int(d["n_events"]) >= 1
    # a co-visit of two members: both were at one institution on its first and on its last date
    seen = {(s["psn"], s["fixmedins_code"], s["begndate"]) for s in setl}
    places = {s["fixmedins_code"] for s in setl}
    members = {r["psn"] for r in setl if r["in_clue_evidence"] == "true"} | {
        n.split(":", 1)[1] for n, d in nx.read_graphml(pkg / "case_graph.graphml").nodes(data=True) if d["seed"]}
    for u, v, d in found["case_graph.graphml"]:
        a, b = u.split(":", 1)[1], v.split(":", 1)[1]
        if d["rel_type"] == "CO_VISITS" and a in members and b in members:
            for day in (d["first_date"], d["last_date"]):
                assert any((a, h, day) in seen and (b, h, day) in seen for h in places), (a, b, day)
        assert days[0][:10] <= d["first_date"] and d["last_date"] <= days[-1][:10] or a not in members
    # the report lists the strongest pairs with their dates
    html = (pkg / "report.html").read_text("utf-8")
    strongest = max(found["case_graph.graphml"], key=lambda e: (e[2]["surprise"], e[2]["n_events"]))
    assert "主要结伴关系" in html and strongest[2]["first_date"] in html and strongest[2]["last_date"] in html


def test_graph_drawing_names_nodes_and_labels_only_the_main_ones_of_a_big_graph():
    from serving.evidence_export.report import labelled_nodes, node_label

    g = nx.MultiDiGraph()
    g.add_node("person:P001", node_type="person", code="P001", label="P001", seed=True)
    g.add_node("institution:H1", node_type="institution", code="H22010200001", label="南关区社区卫生服务中心10",
               seed=False)
    for i in range(200):
        g.add_node(f"doctor:D{i}", node_type="doctor", code=f"D22010200{i:05d}", label=f"医师 D22010200{i:05d}",
                   seed=False)
        g.add_edge(f"doctor:D{i}", "institution:H1", rel_type="WORKS_AT")
    g.add_edge("person:P001", "doctor:D7", rel_type="SEEN_BY")
    chosen = labelled_nodes(g, 30)
    assert len(chosen) == 30 and chosen[:2] == ["person:P001", "institution:H1"]
    labels = [node_label(g.nodes[v]) for v in chosen]
    assert labels[:2] == ["P001", "南关区社区…中心10"] and "医师·0007" in labels
    assert all(len(x) <= 10 and not re.search(r"\d{9,}", x) for x in labels)

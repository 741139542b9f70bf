"""The investigator page in a real browser: headless Debian Chromium driven by Playwright.

Log in with a token, filter the clue list, open a clue (reasons, rule hits, claims, graph drawing),
assign it, start verifying, confirm it with an amount, reload, and see the new state from the server;
download the clue's evidence package with the page's button and verify it. The case graph on a desktop
and a phone: Cytoscape.js from the service, the API's nodes without the isolated ones, zoom, a node's
claims, the PDF's colours, the same picture after a reload, and the static drawing without the library.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="/usr/bin/chromium is not installed "
                       "(`apt-get install chromium`; .ci/run installs it): the browser test needs it"),
]


@pytest.fixture()
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN")
            yield context.new_page()
        finally:
            browser.close()


def test_log_in_filter_open_confirm_reload(page, served_sqlite, tmp_path):
    from playwright.sync_api import expect

    s = served_sqlite
    clue_id = s.ids["screened_ui"]
    with s.store() as store:
        entity_type = store.get(clue_id, store.user("li"))["entity_type"]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{s.base_url}/ui/")
    expect(page.locator("#login-view")).to_be_visible()
    page.fill("#token", "wrong-token-0123456789")
    page.click("#login-btn")
    expect(page.locator("#login-error")).to_contain_text("令牌")
    errors.clear()  # the refused log-in logs a 401 in the console, as it should
    page.fill("#token", s.tokens["li"])
    page.click("#login-btn")
    expect(page.locator("#whoami")).to_contain_text("li · 核查人员")
    expect(page.locator("#clue-table tbody tr.clue-row").first).to_be_visible()

    page.select_option("#f-state", "new")
    page.select_option("#f-entity", entity_type)
    page.fill("#f-region", "2201")
    page.click("#apply-filters")
    row = page.locator(f'#clue-table tbody tr.clue-row[data-id="{clue_id}"]')
    expect(row).to_be_visible()
    states = page.locator("#clue-table tbody td.state").all_inner_texts()
    assert states and set(states) == {"新线索"}

    row.click()
    expect(page.locator("#clue-title")).to_contain_text(f"线索 #{clue_id}")
    expect(page.locator("#clue-state")).to_have_text("新线索")
    expect(page.locator("#reasons li").first).to_be_visible()
    expect(page.locator("#rule-hits details.hit-rule").first).to_be_visible()
    expect(page.locator("#claims tbody tr").first).to_be_visible()
    page.wait_for_function("() => S.cy && S.cy.nodes().length > 1 && S.cy.edges().length > 0")

    page.click("#wf-assigned")
    expect(page.locator("#wf-assignee option[value='li']")).to_have_count(1)
    page.select_option("#wf-assignee", "li")
    page.click("#wf-submit")
    expect(page.locator("#clue-state")).to_have_text("已分派")
    page.click("#wf-verifying")
    page.click("#wf-submit")
    expect(page.locator("#clue-state")).to_have_text("核查中")
    page.click("#wf-confirmed")
    page.fill("#wf-amount", "4321.50")
    page.fill("#wf-reason", "病历与收费明细不符")
    page.click("#wf-submit")
    expect(page.locator("#clue-state")).to_have_text("查实")
    expect(page.locator("#wf-message")).to_have_text("已保存")

    page.reload()
    expect(page.locator("#clue-state")).to_have_text("查实")
    expect(page.locator("#clue-summary")).to_contain_text("4,321.50")
    expect(page.locator("#history tbody tr")).to_have_count(3)

    expect(page.locator("#evidence-mode")).to_contain_text("化名")  # not a police case: pseudonyms
    with page.expect_download(timeout=120_000) as download:
        page.click("#evidence-btn")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    expect(page.locator("#evidence-message")).to_contain_text("已导出")
    assert errors == [], errors

    from served import unzip_package

    from serving.evidence_export import verify_package

    folder = unzip_package(saved.read_bytes(), tmp_path / "pkg")
    assert verify_package(folder, s.data.evidence_public_key).ok

    with s.store() as store:
        assert store.get(clue_id, store.user("li"))["state"] == "confirmed"


# -- the work queue and the clue page (issue 19), on a desktop and on a phone ------------------------------

VIEWPORTS = {"desktop": {"width": 1440, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(params=list(VIEWPORTS))
def sized_page(request, tmp_path):
    """A page of the given viewport and a ``shot(step)`` that saves a screenshot per step (into tmp_path, and
    into $YIBAO_UI_SCREENSHOTS when set, to keep the last run's pictures)."""
    import os
    import shutil

    from playwright.sync_api import sync_playwright

    keep = os.environ.get("YIBAO_UI_SCREENSHOTS")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(locale="zh-CN", viewport=VIEWPORTS[request.param], accept_downloads=True,
                                          is_mobile=request.param == "phone", has_touch=request.param == "phone")
            page = context.new_page()
            steps: list[str] = []

            def shot(step: str, element=None) -> Path:
                """The whole page, or only ``element`` (a locator)."""
                path = tmp_path / f"{request.param}-{len(steps) + 1:02d}-{step}.png"
                steps.append(step)
                if element is None:
                    page.screenshot(path=str(path), full_page=True)
                else:
                    element.screenshot(path=str(path))
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    shutil.copy(path, Path(keep) / path.name)
                return path

            yield request.param, page, shot
        finally:
            browser.close()


def _no_horizontal_overflow(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide on a {page.viewport_size['width']} px screen"


def test_work_queue_filters_in_url_bulk_assign_export_and_clue_page(sized_page, served_sqlite, tmp_path):
    import io

    from openpyxl import load_workbook
    from playwright.sync_api import expect

    size, page, shot = sized_page
    s = served_sqlite
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    api = s.client("li")

    page.goto(f"{s.base_url}/ui/")
    page.fill("#token", s.tokens["li"])
    shot("login")
    page.click("#login-btn")
    expect(page.locator("#clue-table tbody tr.clue-row").first).to_be_visible()
    if size == "phone":
        title = page.locator("header h1").bounding_box()
        assert title["height"] < 40 and title["width"] > 150, title  # one line, not a character per line
        _no_horizontal_overflow(page)
    shot("list")

    # search, risk and amount range: the rows are the API's answer to the same filters
    page.fill("#f-q", "队列")
    page.select_option("#f-risk", "high")
    page.fill("#f-min-amount", "10000")
    page.fill("#f-max-amount", "50000")
    page.click("#apply-filters")
    wanted = {"q": "队列", "risk_level": "high", "min_amount": "10000", "max_amount": "50000"}
    expected = [c["id"] for c in api.get("/api/clues", params=wanted).json()["items"]]
    assert expected and set(expected) <= {s.ids[f"q{i}"] for i in range(6)}
    rows = page.locator("#clue-table tbody tr.clue-row")
    expect(rows).to_have_count(len(expected))
    assert [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.id)")] == expected
    assert "risk_level=high" in page.url and "min_amount=10000" in page.url
    expect(page.locator("#stats")).to_contain_text(f"共 {len(expected)} 条线索")
    shot("filtered")

    page.reload()  # the filters live in the address
    expect(page.locator("#f-q")).to_have_value("队列")
    expect(page.locator("#f-risk")).to_have_value("high")
    expect(page.locator("#f-min-amount")).to_have_value("10000")
    expect(rows).to_have_count(len(expected))

    # sort by amount, then the other way round: by the column header on a desktop, the form on a phone
    by_amount = [c["id"] for c in api.get("/api/clues", params=wanted | {"sort": "amount"}).json()["items"]]
    if size == "desktop":
        page.locator("#clue-table th[data-sort=amount]").click()
        expect(page.locator("#clue-table th[data-sort=amount]")).to_have_class("num sortable sorted-desc")
    else:
        page.select_option("#f-sort", "amount")
        page.click("#apply-filters")
    expect(rows.first).to_have_attribute("data-id", str(by_amount[0]))
    if size == "desktop":
        page.locator("#clue-table th[data-sort=amount]").click()
        expect(page.locator("#clue-table th[data-sort=amount]")).to_have_class("num sortable sorted-asc")
    else:
        page.select_option("#f-order", "asc")
        page.click("#apply-filters")
    expect(rows.first).to_have_attribute("data-id", str(by_amount[-1]))
    expect(page.locator("#f-order")).to_have_value("asc")
    assert "order=asc" in page.url

    # bulk assignment of the whole page to li, audited per clue
    page.check("#select-all")
    expect(page.locator("#selected-info")).to_have_text(f"已选 {len(expected)} 条")
    page.select_option("#bulk-assignee", "li")
    shot("selected")
    page.click("#bulk-assign")
    expect(page.locator("#bulk-message")).to_contain_text("已分派")
    with s.store() as store:
        for clue_id in expected:
            assert store.get(clue_id, store.user("wang"))["assignee"] == "li"
    expect(page.locator("#clue-table tbody td.assignee")).to_have_text(["li"] * len(expected))

    # 我的线索: everything assigned to li, as the API counts it
    page.click("#reset-filters")
    page.check("#f-mine")
    page.click("#apply-filters")
    mine = api.get("/api/clues", params={"assignee": "li", "limit": 50}).json()
    expect(rows).to_have_count(min(mine["total"], 50))
    assert set(page.locator("#clue-table tbody td.assignee").all_inner_texts()) == {"li"}
    assert "mine=1" in page.url
    shot("mine")

    # export of the filtered list: the workbook holds the API's list, amounts as numbers
    with page.expect_download() as download:
        page.click("#export-xlsx")
    saved = tmp_path / f"{size}-{download.value.suggested_filename}"
    download.value.save_as(saved)
    expect(page.locator("#bulk-message")).to_contain_text("已导出")
    sheet = load_workbook(io.BytesIO(saved.read_bytes()))["线索清单"]
    table = list(sheet.iter_rows(values_only=True))
    listed = api.get("/api/clues", params={"assignee": "li", "limit": 1000}).json()["items"]
    assert [r[0] for r in table[1:]] == [c["id"] for c in listed]
    amount = table[0].index("涉及金额(元)")
    assert [r[amount] for r in table[1:]] == [c["amount_at_risk"] for c in listed]

    # the 清仓见底 dashboard follows the filters and matches the store
    with s.store() as store:
        st = store.statistics(store.user("li"), assignee="li")
    for level, b in st["by_risk"].items():
        cells = page.locator(f'#dash-risk tr[data-risk="{level}"] td').all_inner_texts()
        assert [int(x) for x in cells[1:]] == [b["sla_days"], b["open"], b["overdue"]]
    for band, b in st["by_age"].items():
        cells = page.locator(f'#dash-age tr[data-age="{band}"] td').all_inner_texts()
        assert [int(x) for x in cells[1:3]] == [b["count"], b["open"]]
    assert page.locator("#dash-region tbody tr").count() == len(st["by_region"])
    if size == "phone":
        _no_horizontal_overflow(page)
    page.locator("#dashboard").scroll_into_view_if_needed()
    shot("dashboard")

    # the clue page: the one-line summary, each rule with its message, 政策依据 and flagged lines; claims marked
    clue_id = s.ids["screened"]
    page.goto(f"{s.base_url}/ui/#/clue/{clue_id}")
    expect(page.locator("#clue-headline")).to_contain_text("涉及基金")
    expect(page.locator("#clue-headline")).to_contain_text("主要规则")
    first_rule = page.locator("#rule-hits details.hit-rule").first
    expect(first_rule.locator(".basis")).to_contain_text("政策依据")
    expect(first_rule.locator(".hit").first).to_be_visible()
    assert first_rule.locator("tr.hit-line").count() >= 1
    detail = api.get(f"/api/clues/{clue_id}").json()
    flagged = [r["setl_id"] for r in detail["claims"]["rows"] if r["rule_ids"]]
    assert flagged and page.locator("#claims tbody tr.flagged").count() == len(flagged)
    assert "21" not in page.locator("#claims td.med-type").all_inner_texts()  # 医疗类别 by name, not code
    from features.contract import code_values

    region_name = code_values("admdvs").get(detail["region"])
    assert region_name and region_name in page.locator("#clue-summary").inner_text()  # 区划 by name
    page.select_option("#claims-filter", "*")
    expect(page.locator("#claims tbody tr")).to_have_count(len(flagged))
    if size == "phone":
        _no_horizontal_overflow(page)
    shot("clue")
    page.click("#back")
    expect(page.locator("#f-mine")).to_be_checked()  # back to the list with its filters

    # a liaison records public security's 立案 on a transferred clue; the store has it, audited
    from datetime import date

    from served import move

    police = s.ids["q3"]
    with s.client("wang") as admin:
        state = admin.get(f"/api/clues/{police}").json()["state"]
        path = ["assigned", "verifying", "confirmed", "transferred_police"]
        for step in path[path.index(state) + 1 if state in path else 0:]:
            assert move(admin, police, step, assignee="wang").status_code == 200
    page.click("#logout")
    page.fill("#token", s.tokens["gong"])
    page.click("#login-btn")
    expect(page.locator("#whoami")).to_contain_text("公安联络员")
    page.goto(f"{s.base_url}/ui/#/clue/{police}")
    expect(page.locator("#outcome-form")).to_be_visible()
    page.select_option("#outcome-kind", "filed")
    page.fill("#outcome-date", date.today().isoformat())
    page.fill("#outcome-doc", f"长公立字〔2026〕{size}号")
    page.click("#outcome-submit")
    expect(page.locator("#outcome-message")).to_have_text("已登记")
    expect(page.locator("#outcome-current")).to_contain_text("立案")
    expect(page.locator("#history")).to_contain_text(f"长公立字〔2026〕{size}号")
    if size == "phone":
        _no_horizontal_overflow(page)
    shot("police-outcome")
    with s.store() as store:
        d = store.get(police, store.user("wang"))
        assert (d["referral_outcome"], d["referral_doc_no"]) == ("filed", f"长公立字〔2026〕{size}号")
        entry = store.audit_log(clue_id=police, action="referral_outcome")[-1]
        assert entry["actor"] == "gong" and entry["detail"]["referral_outcome"] == "filed"
    assert errors == [], errors


# -- the interactive case graph (Cytoscape.js served by the service), on a desktop and on a phone -----------

CY_READY = "() => typeof S !== 'undefined' && S.cy !== null && S.cy !== undefined && S.cy.nodes().length > 0"


def _drawable(graph: dict) -> set[str]:
    """The API's nodes the page draws: those tied to another node, and the clue's own entity."""
    tied = {e["source"] for e in graph["edges"]} | {e["target"] for e in graph["edges"]}
    return {n["id"] for n in graph["nodes"] if n["id"] == graph["center"] or n["id"] in tied}


def _rgb(hex_colour: str) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def _tap_node(page, size: str, node_id: str) -> None:
    """Tap (phone) or click (desktop) the node where Cytoscape drew it."""
    page.locator("#graph-canvas").scroll_into_view_if_needed()
    box = page.locator("#graph-canvas").bounding_box()
    p = page.evaluate("id => S.cy.getElementById(id).renderedPosition()", node_id)
    x, y = box["x"] + p["x"], box["y"] + p["y"]
    assert box["x"] <= x <= box["x"] + box["width"] and box["y"] <= y <= box["y"] + box["height"], (p, box)
    if size == "phone":
        page.touchscreen.tap(x, y)
    else:
        page.mouse.click(x, y)


def test_case_graph_interactive(sized_page, served_sqlite):
    from playwright.sync_api import expect

    from serving.evidence_export.graph import NODE_TYPES
    from serving.evidence_export.report import NODE_COLOURS

    size, page, shot = sized_page
    s = served_sqlite
    clue_id = s.ids["ring"]  # a ring: members, a pharmacy, doctors; some pharmacists tied to nothing
    detail = s.client("wang").get(f"/api/clues/{clue_id}").json()
    graph = detail["graph"]
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    scripts: list[str] = []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.goto(f"{s.base_url}/ui/")
    page.fill("#token", s.tokens["wang"])
    page.click("#login-btn")
    expect(page.locator("#whoami")).to_contain_text("wang")
    page.goto(f"{s.base_url}/ui/#/clue/{clue_id}")
    page.wait_for_function(CY_READY)

    # the library came from the service, not from a CDN
    assert scripts == [f"{s.base_url}/ui/vendor/cytoscape.min.js"], scripts
    expect(page.locator("#graph-missing")).to_be_hidden()
    # every node the API gave but the isolated ones (the clue's own entity always)
    drawn = set(page.evaluate("S.cy.nodes().map(n => n.id())"))
    assert drawn == _drawable(graph) and graph["center"] in drawn
    assert len(drawn) < len(graph["nodes"]), "this ring's pharmacists are tied to nothing: the test needs them"
    expect(page.locator("#graph-note")).to_contain_text(f"{len(drawn)} 个节点")
    # labels: names where the warehouse has them, pseudonyms (never clear IDs) otherwise
    labels = dict(page.evaluate("S.cy.nodes().map(n => [n.id(), n.data('short')])"))
    for n in graph["nodes"]:
        code = n["id"].split(":", 1)[1]
        if n["type"] in ("fixmedins", "pharmacy") and n["id"] in drawn:
            assert n["label"] != code and code not in labels[n["id"]], n
    # the PDF's colours, in the legend and on the nodes
    legend_colours = {t: page.locator(f"#graph-legend .legend-item[data-type='{t}'] .swatch").evaluate(
        "e => getComputedStyle(e).backgroundColor") for t in NODE_TYPES}
    assert legend_colours == {t: _rgb(NODE_COLOURS[exported]) for t, (exported, _, _) in NODE_TYPES.items()}
    for node_type, colour in page.evaluate("S.cy.nodes().map(n => [n.data('node').type, n.style('background-color')])"):
        if node_type in NODE_TYPES:
            assert colour.replace(" ", "") == legend_colours[node_type].replace(" ", ""), node_type
    if size == "phone":
        _no_horizontal_overflow(page)
    shot("graph", page.locator("#graph-card"))

    # zoom with the buttons (and the wheel on a desktop), then back to the whole graph
    fitted = page.evaluate("S.cy.zoom()")
    shown = page.locator("#graph-zoom").inner_text()
    page.click("#graph-zoom-in")
    assert page.evaluate("S.cy.zoom()") > fitted * 1.2
    expect(page.locator("#graph-zoom")).not_to_have_text(shown)
    if size == "desktop":
        before = page.evaluate("S.cy.zoom()")
        box = page.locator("#graph-canvas").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.wheel(0, -300)
        page.wait_for_function(f"() => S.cy.zoom() > {before}")
    shot("graph-zoomed", page.locator("#graph-card"))
    page.click("#graph-fit")
    assert abs(page.evaluate("S.cy.zoom()") - fitted) < 0.01

    # a member with claims: its claims only, then all of them again
    member = next(n for n in graph["nodes"] if n["role"] == "member" and n["setl_ids"] and n["id"] in drawn)
    all_rows = len(detail["claims"]["rows"])
    _tap_node(page, size, member["id"])
    expect(page.locator("#graph-detail")).to_have_attribute("data-node", member["id"])
    expect(page.locator("#claims-node")).to_be_visible()
    rows = page.locator("#claims tbody tr")
    expect(rows).to_have_count(len(member["setl_ids"]))
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.setl)")) == sorted(member["setl_ids"])
    assert len(member["setl_ids"]) < all_rows
    shot("node-claims", page.locator("#clue-view"))
    page.click("#claims-node-clear")
    expect(rows).to_have_count(all_rows)
    expect(page.locator("#claims-node")).to_be_hidden()

    # the same clue gives the same picture
    where = "S.cy.nodes().map(n => [n.id(), Math.round(n.position('x')), Math.round(n.position('y'))])"
    before = sorted(page.evaluate(where))
    page.reload()
    page.wait_for_function(CY_READY)
    assert sorted(page.evaluate(where)) == before
    assert errors == [], errors


def test_case_graph_without_the_library(page, served_sqlite):
    """Cytoscape.js not installed: the page draws the static graph and says how to install it."""
    from playwright.sync_api import expect

    s = served_sqlite
    clue_id = s.ids["ring"]
    graph = s.client("wang").get(f"/api/clues/{clue_id}").json()["graph"]
    page.route("**/ui/vendor/cytoscape.min.js", lambda route: route.fulfill(status=404, body="not installed"))
    page.goto(f"{s.base_url}/ui/")
    page.fill("#token", s.tokens["wang"])
    page.click("#login-btn")
    expect(page.locator("#whoami")).to_contain_text("wang")
    page.goto(f"{s.base_url}/ui/#/clue/{clue_id}")
    expect(page.locator("#graph-missing")).to_be_visible()
    expect(page.locator("#graph-missing")).to_contain_text("scripts/setup.sh")
    expect(page.locator("#graph g.node")).to_have_count(len(_drawable(graph)))
    expect(page.locator("#graph-tools")).to_be_hidden()


def test_attach_a_scan_list_it_and_download_it_checked(sized_page, served_sqlite, tmp_path):
    """附件: upload a 现场核查记录 (PDF) from the clue page, see it listed with its hash, download the same
    bytes; a file of another format is refused with the reason in Chinese."""
    import hashlib

    from playwright.sync_api import expect

    size, page, shot = sized_page
    s = served_sqlite
    clue_id = s.ids["ring"]
    pdf = b"%PDF-1.4\n% scan of the inspection record\n" + size.encode() * 64 + b"\n%%EOF\n"
    page.goto(f"{s.base_url}/ui/")
    page.fill("#token", s.tokens["wang"])
    page.click("#login-btn")
    expect(page.locator("#whoami")).to_contain_text("wang")
    page.goto(f"{s.base_url}/ui/#/clue/{clue_id}")
    card = page.locator("section.card", has=page.locator("#attach-form"))
    expect(page.locator("#attach-kind option")).to_have_count(3)
    page.select_option("#attach-kind", "inspection_record")
    page.set_input_files("#attach-file", files=[{"name": f"现场核查记录-{size}.pdf", "mimeType": "application/pdf",
                                                 "buffer": pdf}])
    page.click("#attach-btn")
    expect(page.locator("#attach-message")).to_contain_text("已上传")
    row = page.locator("#attachments tbody tr", has_text=f"现场核查记录-{size}.pdf")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("现场核查记录")
    expect(row).to_contain_text(hashlib.sha256(pdf).hexdigest()[:16])
    with page.expect_download() as download:
        row.locator("a").click()
    saved = tmp_path / "downloaded.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == pdf and download.value.suggested_filename == f"现场核查记录-{size}.pdf"
    # an executable named .pdf is judged by its bytes
    page.set_input_files("#attach-file", files=[{"name": "scan.pdf", "mimeType": "application/pdf",
                                                 "buffer": b"MZ\x90\x00 this is not a scan"}])
    page.click("#attach-btn")
    expect(page.locator("#attach-message")).to_contain_text("只接受 PDF")
    expect(page.locator("#attachments tbody tr", has_text="scan.pdf")).to_have_count(0)
    shot("attachments", card)
    if size == "phone":
        _no_horizontal_overflow(page)

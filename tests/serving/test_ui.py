"""The investigator page in a real browser: headless Debian Chromium driven by Playwright.

Log in with a token, filter the clue list, open a clue (reasons, rule hits, claims, graph drawing),
assign it, start verifying, confirm it with an amount, reload, and see the new state from the server;
download the clue's evidence package with the page's button and verify it.
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
    expect(page.locator("#rule-hits tbody tr").first).to_be_visible()
    expect(page.locator("#claims tbody tr").first).to_be_visible()
    assert page.locator("#graph g.node").count() > 1 and page.locator("#graph line.edge").count() > 0

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

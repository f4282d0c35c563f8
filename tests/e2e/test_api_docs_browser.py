"""The API's docs page in Chromium: Swagger UI, served from the project's own static files
(no CDN), lists every operation of the schema, and a logged-in operator runs a real call
from it (their session is the credential; the page sends the CSRF token)."""

from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOT_DIR

DOCS = "/api/warlock/schema/docs/"


def test_operator_browses_the_api_and_calls_it(
    runs, page, staff_user, login, screenshot, live_server
):
    runs.completed("done-1")
    runs.stale("stale-1")
    outside = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url)
            if not request.url.startswith(live_server.url) and not request.url.startswith("data:")
            else None
        ),
    )
    login(staff_user("ops", "view_snapshot", "cancel_snapshot"))
    page.goto(DOCS)
    operations = page.locator(".opblock")
    expect(operations).to_have_count(14)
    expect(page.locator(".info .title")).to_contain_text("warlock_ai API")
    screenshot(page, "api-docs")
    page.screenshot(path=str(SCREENSHOT_DIR / "api-docs-top.png"))  # the docs' picture

    page.click("#operations-runs-runs_list .opblock-summary")
    page.click("#operations-runs-runs_list .try-out__btn")
    page.click("#operations-runs-runs_list .execute")
    answer = page.locator(
        "#operations-runs-runs_list .live-responses-table tbody .response-col_status"
    )
    expect(answer.first).to_have_text("200")
    body = page.locator("#operations-runs-runs_list .live-responses-table .microlight").first
    expect(body).to_contain_text('"stale-1"')
    screenshot(page, "api-docs-call")
    assert outside == [], f"the page fetched from outside the project: {outside}"


def test_the_docs_page_is_not_for_anonymous_visitors(page, transactional_db):
    response = page.goto(DOCS)
    assert response.status == 403

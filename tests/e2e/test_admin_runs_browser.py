"""The runs admin in a real browser: an operator finds the stuck runs and fixes each one;
permissions and tampered requests are refused; without a background worker a resume runs
nothing and shows the command to run. Saves the screenshots the docs use."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.django.admin_runs import orders
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

LIST = "/admin/warlock_ai/snapshot/"
ALL_ACTIONS = (
    "view_snapshot",
    "resume_snapshot",
    "force_resume_snapshot",
    "discard_snapshot",
    "cancel_snapshot",
    "migrate_snapshot",
)


def row(run_id):
    return Snapshot.objects.filter(pk=run_id).first()


@pytest.fixture
def fleet(runs):
    """The morning after a bad deploy: runs of orders v1 in every state, then v2 deployed
    (``extract`` renamed ``parse``) and new runs written by it."""
    runs.completed("order-1040")
    runs.failed("order-1041")
    runs.interrupted("order-1042")  # its worker is alive and holds it
    runs.stale("order-1043")  # its worker died an hour ago
    runs.drifted("order-1044")  # registers v2
    runs.stale("order-1045")
    registry.register(orders("2"), replace=True)
    v2 = registry.get("workflow", "orders")
    for n in (1046, 1047):
        v2.execute({"items": 4}, run_id=f"order-{n}")
    v2.execute({"fail": True, "items": 4}, run_id="order-1048")
    return runs


def flash(page):
    return page.locator("ul.messagelist").inner_text()


def test_operator_finds_and_fixes_stuck_runs(
    fleet, page, staff_user, login, screenshot, admin_runs_inline
):
    # The actions run in the request here (the development opt-in), so the story can go on.
    login(staff_user("ops", *ALL_ACTIONS))
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(9)
    expect(page.locator("td.field-definition .warlock-drifted")).to_have_count(6)
    screenshot(page, "runs-list")

    page.click("#changelist-filter >> text=drifted")
    assert "definition=drifted" in page.url
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
    page.click("#changelist-filter >> text=stale (worker gone)")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    shown = set(page.locator("#result_list tbody th a").all_inner_texts())
    assert shown == {"order-1043", "order-1044", "order-1045"}

    # A failed run of the current definition: what failed, where, and its data.
    page.goto(f"{LIST}order-1048/change/")
    assert "vendor feed row 17 has no price" in page.locator(".warlock-alert-error").inner_text()
    page.click("summary:text('Input')")
    assert '"fail": true' in page.locator("details[open] pre").last.inner_text()
    screenshot(page, "run-failed")

    # The drifted run: the diff, then migrate through the mapping form, then resume.
    page.goto(f"{LIST}order-1044/change/")
    assert (
        'step "extract" renamed to "parse"' in page.locator(".warlock-alert-warning").inner_text()
    )
    screenshot(page, "run-drifted")
    page.click("text=Migrate…")
    assert page.locator("select[name=step_1]").input_value() == "parse"  # guessed from the diff
    screenshot(page, "run-migrate")
    page.click("input[type=submit][value='Yes, migrate']")
    assert "migrated (extract → parse); signature accepted" in flash(page)
    assert row("order-1044").signature == registry.get("workflow", "orders").signature
    page.click("button.warlock-action-resume")
    assert "completed" in flash(page)
    assert row("order-1044").status == "completed"

    # Force-resume another drifted run: the page says the drift check is bypassed.
    page.goto(f"{LIST}order-1045/change/")
    page.click("text=Force-resume…")
    assert "WITHOUT the drift check" in page.locator("#content-main").inner_text()
    page.click("input[type=submit][value='Yes, force-resume']")
    assert row("order-1045").status == "completed"

    # A stale run of the current definition, resumed in bulk from the list.
    registry.register(orders("1"), replace=True)  # order-1043 is a v1 run
    page.goto(LIST)
    page.check("input.action-select[value='order-1043']")
    page.select_option("select[name=action]", "resume_selected")
    page.click("button[name=index]")
    assert 'run "order-1043" completed' in flash(page)
    assert row("order-1043").status == "completed"

    # The failed run: discard it and start again from scratch with the same id.
    before = row("order-1041").started_at
    page.goto(f"{LIST}order-1041/change/")
    page.click("text=Discard…")
    page.check("input[name=restart]")
    page.click("input[type=submit][value='Yes, discard']")
    assert row("order-1041").started_at > before  # a new run under the same id

    # The live run: cancel it with a reason.
    page.goto(f"{LIST}order-1042/change/")
    page.click("text=Cancel…")
    page.fill("input[name=reason]", "deploy rolled back")
    page.click("input[type=submit][value='Yes, cancel']")
    assert row("order-1042").cancel_reason == "deploy rolled back"

    # Every action is in the run's history with who did it.
    page.goto(f"{LIST}order-1044/history/")
    history = page.locator("#change-history").inner_text()
    assert "ops" in history and "Migrate" in history and "Resume" in history


def test_a_live_lease_disables_resume_and_discard(fleet, page, staff_user, login):
    login(staff_user("ops", *ALL_ACTIONS))
    page.goto(f"{LIST}order-1042/change/")
    holder = row("order-1042").lease_owner
    assert holder in page.locator(".warlock-alert-info").inner_text()
    tools = page.locator(".object-tools")
    assert tools.locator(".warlock-button-disabled", has_text=re.compile("^Resume$")).count() == 1
    assert tools.locator(".warlock-button-disabled", has_text="Discard").count() == 1
    assert tools.locator("a", has_text="Cancel…").count() == 1


BUTTONS = {
    "resume_snapshot": "Resume",
    "force_resume_snapshot": "Force-resume",
    "discard_snapshot": "Discard",
    "cancel_snapshot": "Cancel",
    "migrate_snapshot": "Migrate",
}


@pytest.mark.parametrize("permission", list(BUTTONS))
def test_each_permission_shows_only_its_action(fleet, page, staff_user, login, permission):
    login(staff_user("operator", "view_snapshot", permission))
    page.goto(f"{LIST}order-1042/change/")  # running: every action applies to it
    labels = page.locator(".object-tools li").all_inner_texts()
    shown = {label.strip().rstrip("…").lower() for label in labels} - {"history"}
    assert shown == {BUTTONS[permission].lower()}
    page.goto(LIST)
    # the blank choice ("---------" on Django 5.2, "- Select an option -" on 6.1) has no value
    options = page.locator('select[name=action] option:not([value=""])').all_inner_texts()
    assert options == [f"{BUTTONS[permission]} selected runs"]
    for other, label in BUTTONS.items():
        if other != permission:
            slug = label.lower()
            response = page.goto(f"{LIST}order-1043/actions/{slug}/")
            assert response.status == 403, slug
    assert row("order-1043").status == "running"


def test_tampered_posts_are_refused(fleet, page, staff_user, login):
    login(staff_user("ops", *ALL_ACTIONS))
    page.goto(f"{LIST}order-1044/actions/migrate/")
    token = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    before = row("order-1044")
    url = f"{LIST}order-1044/actions/migrate/"

    no_csrf = page.request.post(url, form={"post": "yes", "step_0": "fetch", "step_1": "parse"})
    assert no_csrf.status == 403

    unknown_step = page.request.post(
        url,
        form={"csrfmiddlewaretoken": token, "post": "yes", "step_0": "fetch", "step_1": "rm -rf"},
    )
    assert unknown_step.status == 200
    assert re.search(r"rm -rf is not one of the available choices", unknown_step.text())

    no_such_run = page.request.post(
        f"{LIST}order-9999/actions/discard/", form={"csrfmiddlewaretoken": token, "post": "yes"}
    )
    assert "doesn" in no_such_run.text() and "order-9999" in no_such_run.text()

    after = row("order-1044")
    assert (after.signature, after.steps, after.saved_at) == (
        before.signature,
        before.steps,
        before.saved_at,
    )


def test_a_supervisor_run_shows_its_iterations(
    supervised, page, staff_user, login, screenshot, admin_runs_inline
):
    supervised.completed("ticket-7")
    supervised.stale("ticket-8")
    login(staff_user("ops", *ALL_ACTIONS))
    page.goto(f"{LIST}ticket-7/change/")
    rows = page.locator(".warlock-iterations tr.warlock-iteration")
    expect(rows).to_have_count(3)
    assert "triage" in rows.nth(0).inner_text() and "billing" in rows.nth(1).inner_text()
    page.locator(".warlock-branches summary").first.click()
    assert '"category": "billing"' in page.locator(".warlock-branches pre").first.inner_text()
    screenshot(page, "run-supervisor")
    page.goto(f"{LIST}ticket-8/change/")
    page.click("button.warlock-action-resume")
    assert 'run "ticket-8" completed' in flash(page)
    assert row("ticket-8").status == "completed"


def test_without_a_worker_resume_shows_the_command(fleet, page, staff_user, login, screenshot):
    """A new project's default (no django-rq): the run page and the Resume button give the
    command to run on a server, and the run is left exactly as it was."""
    registry.register(orders("1"), replace=True)  # order-1043 is a v1 run
    before = row("order-1043")
    login(staff_user("ops", *ALL_ACTIONS))
    page.goto(f"{LIST}order-1043/change/")
    command = "python manage.py resume_run order-1043"
    expect(page.locator(".warlock-no-worker code.warlock-command")).to_have_text(command)
    page.click("button.warlock-action-resume")
    expect(page.locator("ul.messagelist li.warning code.warlock-command")).to_have_text(command)
    assert "nothing was run or changed" in flash(page)
    screenshot(page, "run-no-worker")
    after = row("order-1043")
    assert (after.saved_at, after.status, after.steps) == (before.saved_at, "running", before.steps)

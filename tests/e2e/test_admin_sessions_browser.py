"""The sessions admin in Chromium: browse sessions, read what each turn changed and its state,
fork a session, resume an interrupted turn, discard a session through its confirmation page;
a view-only user can do none of the changing."""

from datetime import UTC, datetime, timedelta

from playwright.sync_api import expect

from warlock_ai.models import Checkpoint, Snapshot

LIST = "/admin/warlock_ai/checkpoint/"
T0 = datetime(2026, 3, 4, 9, 30, tzinfo=UTC)
CONVERSATION = [
    ("triage", "Hi, I was charged twice for my March invoice."),
    ("billing", "I can see two charges of €49.00 on 3 March."),
    (["billing", "refunds"], "Refund of €49.00 issued; it arrives in 3-5 days."),
]
#: What the orchestrator knows after each turn of the conversation, besides the messages.
FACTS = [
    {"status": "new"},
    {"status": "investigating", "invoice": "INV-0312"},
    {"status": "refunded", "invoice": "INV-0312", "refund": {"amount": 49, "currency": "EUR"}},
]


def add_session(name, session_id, turns, start=T0):
    """A support conversation of ``turns`` settled turns, as an orchestrator saves them."""
    for turn in range(turns):
        position = turn % len(CONVERSATION)
        route = CONVERSATION[position][0]
        history = [said for _route, said in CONVERSATION[: position + 1]]
        Checkpoint.objects.create(
            orchestrator_name=name,
            session_id=session_id,
            turn_index=turn,
            state={
                "customer": {"id": 1042, "name": "Zoë Martin", "vip": position > 1},
                "messages": history,
                **FACTS[position],
            },
            last_route=route,
            signature="9f2c41d0a7b3e815",
            version="3",
            summarized_through=0 if turn >= 2 else None,
            saved_at=start + timedelta(minutes=4 * turn),
        )


def add_sessions():
    add_session("support-desk", "chat-7f3a91", 3)
    add_session("support-desk", "chat-2b08c4", 2, start=T0 + timedelta(hours=2))
    add_session("sales-assistant", "lead-5521", 1, start=T0 + timedelta(days=1))


def interrupted_turn(name, session_id, turn):
    """The snapshot an orchestrator leaves for a turn its process did not finish."""
    Snapshot.objects.create(
        run_id=f"{session_id}.3.{turn}",
        kind="orchestrator",
        name=name,
        version="3",
        signature="9f2c41d0a7b3e815",
        status="running",
        iteration=1,
        input="Can I get the refund on my card instead?",
        started_at=T0 + timedelta(hours=3),
        saved_at=T0 + timedelta(hours=3, seconds=4),
    )


def sessions_left():
    return sorted(set(Checkpoint.objects.values_list("orchestrator_name", "session_id")))


def csrf_post(page, url, form):
    """POST ``form`` from the logged-in browser with a valid CSRF token, as a crafted form
    would: only the permission check can refuse it."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.request.post(url, form={**form, "csrfmiddlewaretoken": token})


def test_operator_reads_a_session_and_deletes_it(page, staff_user, login, screenshot):
    add_sessions()
    interrupted_turn("support-desk", "chat-2b08c4", 2)
    login(staff_user("ops", "view_checkpoint", "delete_checkpoint"))
    page.goto(LIST)
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    chat = rows.filter(has_text="chat-7f3a91")
    assert chat.locator("td.field-turns").inner_text() == "3"
    assert chat.locator("td.field-route").inner_text() == "billing, refunds"
    interrupted = rows.filter(has_text="chat-2b08c4").locator("td.field-interrupted")
    assert interrupted.inner_text() == "turn 2"
    screenshot(page, "sessions-list")

    page.click("text=chat-7f3a91")
    turns = page.locator("#turns tbody tr")
    expect(turns).to_have_count(3)
    assert turns.locator("td.turn-index").all_inner_texts() == ["0", "1", "2"]
    state = page.locator("#turn-2 pre.warlock-json")
    assert not state.is_visible()
    page.click("#turn-2 summary")
    assert state.is_visible() and "Zoë Martin" in state.inner_text()
    assert '"messages": [' in state.inner_text()
    screenshot(page, "session-detail")

    page.click("#delete-session")
    assert page.locator("#sessions-to-delete tbody tr").inner_text().split() == [
        "support-desk",
        "chat-7f3a91",
        "3",
        "-",
    ]
    assert len(sessions_left()) == 3
    page.click("input[type=submit][value='Yes, discard']")
    page.wait_for_selector(".messagelist")
    assert "Discarded 1 session (3 turns)." in page.locator(".messagelist").inner_text()
    assert sessions_left() == [("sales-assistant", "lead-5521"), ("support-desk", "chat-2b08c4")]


def test_operator_reads_what_each_turn_changed_and_forks_the_session(
    page, staff_user, login, screenshot
):
    add_sessions()
    login(staff_user("ops", "view_checkpoint", "add_checkpoint"))
    page.goto(LIST)
    page.click("text=chat-7f3a91")
    first = page.locator("#turn-0 td.warlock-changes")
    assert first.inner_text().strip() == "the first turn"
    changes = page.locator("#turn-2 .warlock-diff li")
    assert changes.all_inner_texts() == [
        "~ customer.vip false → true",
        '+ messages[2] "Refund of €49.00 issued; it arrives in 3-5 days."',
        '~ status "investigating" → "refunded"',
        '+ refund {"amount": 49, "currency": "EUR"}',
    ]
    expect(page.locator("#turn-1 .warlock-diff li.warlock-added")).to_have_count(2)
    screenshot(page, "session-detail")

    page.click("#turn-1 a.warlock-fork-link")
    expect(page.locator("#id_turn")).to_have_value("1")
    page.fill("#id_new_session_id", "chat-2b08c4")  # taken: refused on the form
    page.click("#fork-form input[type=submit]")
    error = page.locator(".field-new_session_id .errorlist")
    expect(error).to_have_text(
        'session "chat-2b08c4" of orchestrator "support-desk" already exists; choose another id'
    )
    screenshot(page, "session-fork")
    page.fill("#id_new_session_id", "chat-7f3a91 (retry)")
    page.click("#fork-form input[type=submit]")
    page.wait_for_selector(".messagelist")
    assert "forked at turn 1 into" in page.locator(".messagelist").inner_text()
    assert page.locator(".breadcrumbs").inner_text().endswith("support-desk / chat-7f3a91 (retry)")
    turns = page.locator("#turns tbody tr")
    expect(turns).to_have_count(2)
    page.click("#turn-1 summary")
    assert "I can see two charges" in page.locator("#turn-1 pre.warlock-json").inner_text()
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(4)
    assert len(Checkpoint.objects.filter(session_id="chat-7f3a91")) == 3  # source untouched


def test_operator_resumes_an_interrupted_turn(
    page, staff_user, login, screenshot, chat_sessions, settings
):
    turn = chat_sessions.interrupted("chat-41", "Where is my parcel?")
    login(staff_user("ops", "view_checkpoint", "resume_snapshot", "view_snapshot"))
    page.goto(f"{LIST}?interrupted=yes")
    row = page.locator("#result_list tbody tr")
    expect(row).to_have_count(1)
    assert row.locator("td.field-interrupted").inner_text() == "turn 1"
    page.click("text=chat-41")
    panel = page.locator("#interrupted-turn")
    expect(panel).to_contain_text("Turn 1 was interrupted")
    command = "python manage.py resume_turn desk-chat --session chat-41"
    expect(page.locator("#resume-command")).to_have_text(command)
    screenshot(page, "session-interrupted")
    page.click("#interrupted-run")  # the turn's run page, in the runs admin
    expect(page.locator(".breadcrumbs")).to_contain_text("chat-41.unversioned.1")
    page.go_back()

    page.click("#resume-turn")  # no worker: nothing runs, the message gives the command
    page.wait_for_selector(".messagelist")
    assert command in page.locator(".messagelist").inner_text()
    expect(page.locator("#turns tbody tr")).to_have_count(1)
    screenshot(page, "session-no-worker")

    settings.WARLOCK_AI = {"ADMIN_RUNS_INLINE": True}
    page.reload()
    page.click("#resume-turn")
    page.wait_for_selector(".messagelist")
    assert "turn 1 of session" in page.locator(".messagelist").inner_text()
    expect(page.locator("#interrupted-turn")).to_have_count(0)
    expect(page.locator("#turns tbody tr")).to_have_count(2)
    assert not type(turn).objects.filter(pk=turn.pk).exists()


def test_operator_deletes_sessions_with_the_list_action(page, staff_user, login):
    add_sessions()
    login(staff_user("ops", "view_checkpoint", "delete_checkpoint"))
    page.goto(LIST)
    for session_id in ("chat-2b08c4", "lead-5521"):
        row = page.locator("#result_list tbody tr", has_text=session_id)
        row.locator("input.action-select").check()
    page.select_option("select[name=action]", "delete_sessions")
    page.click("button[name=index]")
    expect(page.locator("#sessions-to-delete tbody tr")).to_have_count(2)
    page.click("input[type=submit][value='Yes, discard']")
    page.wait_for_selector(".messagelist")
    assert "Discarded 2 sessions (3 turns)." in page.locator(".messagelist").inner_text()
    assert sessions_left() == [("support-desk", "chat-7f3a91")]


def test_view_only_user_sees_no_deletion_and_a_forced_post_is_refused(
    page, staff_user, login, live_server
):
    add_sessions()
    login(staff_user("viewer", "view_checkpoint"))
    page.goto(LIST)
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    expect(page.locator("select[name=action]")).to_have_count(0)
    page.click("text=chat-7f3a91")
    expect(page.locator("#turns tbody tr")).to_have_count(3)
    expect(page.locator("#delete-session")).to_have_count(0)
    expect(page.locator("#fork-session")).to_have_count(0)
    expect(page.locator("a.warlock-fork-link")).to_have_count(0)

    url = f"{live_server.url}/admin/warlock_ai/checkpoint/session/delete/"
    response = csrf_post(page, url, {"orchestrator": "support-desk", "session": "chat-7f3a91"})
    assert response.status == 403
    latest = Checkpoint.objects.get(session_id="chat-7f3a91", turn_index=2).pk
    action = {"action": "delete_sessions", "_selected_action": str(latest), "post": "yes"}
    response = csrf_post(page, f"{live_server.url}{LIST}", action)
    assert response.ok and "Discarded" not in response.text()  # no such action for this user
    assert len(sessions_left()) == 3

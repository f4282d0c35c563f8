"""The sessions admin (``Checkpoint``): one row per session, a page per session, and discarding
whole sessions behind a permission, through Django's test client on SQLite. (Resume, fork and
what discard does to turn snapshots: test_admin_session_actions.py.)"""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from warlock_ai.models import Checkpoint

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
CHANGELIST = reverse("admin:warlock_ai_checkpoint_changelist")
SESSION = reverse("admin:warlock_ai_checkpoint_session")
DELETE = reverse("admin:warlock_ai_checkpoint_delete_session")


def add_session(name, session_id, turns, first=0, **fields):
    """Turns ``first`` .. ``first + turns - 1`` of a session, one minute apart."""
    rows = [
        Checkpoint(
            orchestrator_name=name,
            session_id=session_id,
            turn_index=turn,
            state={"turn": turn, "notes": [f"note {turn}"]},
            last_route=["billing", "refunds"] if turn % 2 else "triage",
            signature="sig-1",
            version="2",
            saved_at=T0 + timedelta(minutes=turn),
            **fields,
        )
        for turn in range(first, first + turns)
    ]
    Checkpoint.objects.bulk_create(rows)


def latest_pk(name, session_id):
    return Checkpoint.objects.for_session(name, session_id).order_by("-turn_index")[0].pk


def turns_left():
    return sorted(Checkpoint.objects.values_list("orchestrator_name", "session_id", "turn_index"))


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


@pytest.fixture
def sessions():
    add_session("support", "s-1", 3)
    add_session("support", "s-2", 1)
    add_session("billing", "s-1", 2)


# --- the changelist -------------------------------------------------------------------------


def test_changelist_shows_one_row_per_session_with_turn_counts(admin_client, sessions):
    response = admin_client.get(CHANGELIST)
    assert response.status_code == 200
    rows = {
        (row.orchestrator_name, row.session_id): (row.turn_count, row.turn_index)
        for row in response.context["cl"].result_list
    }
    assert rows == {
        ("support", "s-1"): (3, 2),
        ("support", "s-2"): (1, 0),
        ("billing", "s-1"): (2, 1),
    }
    assert f"{SESSION}?orchestrator=support&amp;session=s-1" in response.content.decode()


def test_turn_count_counts_rows_not_the_latest_index_after_pruning(admin_client):
    add_session("support", "pruned", 3, first=5)
    (row,) = admin_client.get(CHANGELIST).context["cl"].result_list
    assert (row.turn_count, row.turn_index) == (3, 7)


@pytest.mark.django_db(databases=["default", "pg"])
def test_latest_turns_gives_one_row_per_session_on_postgres_too():
    for alias in ("default", "pg"):
        rows = [
            Checkpoint(orchestrator_name=name, session_id=sid, turn_index=turn, signature="s")
            for name, sid, turns in (("a", "s-1", 3), ("a", "s-2", 1), ("b", "s-1", 2))
            for turn in range(turns)
        ]
        Checkpoint.objects.using(alias).bulk_create(rows)
        latest = Checkpoint.objects.using(alias).latest_turns().order_by("pk")
        found = [(r.orchestrator_name, r.session_id, r.turn_index, r.turn_count) for r in latest]
        assert found == [("a", "s-1", 2, 3), ("a", "s-2", 0, 1), ("b", "s-1", 1, 2)], alias


def changelist_queries(client, count):
    Checkpoint.objects.all().delete()
    for number in range(count):
        add_session("support" if number % 2 else "billing", f"s-{number}", 2)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == count
    return len(captured)


def test_changelist_query_count_does_not_grow_with_sessions(admin_client):
    assert changelist_queries(admin_client, 3) == changelist_queries(admin_client, 30)


def test_changelist_filters_by_orchestrator_searches_and_drills_by_date(admin_client, sessions):
    def listed(query):
        response = admin_client.get(CHANGELIST, query)
        return sorted(
            (r.orchestrator_name, r.session_id) for r in response.context["cl"].result_list
        )

    assert listed({"orchestrator_name": "billing"}) == [("billing", "s-1")]
    assert listed({"q": "s-2"}) == [("support", "s-2")]
    assert len(listed({"saved_at__year": "2026", "saved_at__month": "3"})) == 3
    assert listed({"saved_at__year": "2025"}) == []
    facets = admin_client.get(CHANGELIST, {"_facets": "True"}).content.decode()
    assert "support (2)" in facets and "billing (1)" in facets  # facet counts are sessions


# --- the session page -----------------------------------------------------------------------


def test_session_page_lists_every_turn_in_order_with_formatted_state(admin_client, sessions):
    response = admin_client.get(SESSION, {"orchestrator": "support", "session": "s-1"})
    assert response.status_code == 200
    html = response.content.decode()
    positions = [html.index(f'id="turn-{turn}"') for turn in range(3)]
    assert positions == sorted(positions)
    assert "billing, refunds" in html and "triage" in html
    assert '<pre class="warlock-json">{\n  &quot;turn&quot;: 1,' in html
    assert "<details" in html and "sig-1" in html
    assert "s-2" not in html  # only this session's turns


def test_session_page_escapes_state_and_keeps_unicode(admin_client):
    Checkpoint.objects.create(
        orchestrator_name="support",
        session_id="x/y?z",
        turn_index=0,
        state={"reply": "<script>alert(1)</script>", "note": "Lämp ☀"},
        signature="sig",
        summarized_through=0,
    )
    response = admin_client.get(SESSION, {"orchestrator": "support", "session": "x/y?z"})
    html = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert "Lämp ☀" in html and "turn 0" in html


def test_a_turns_own_url_opens_its_session_at_that_turn(admin_client, sessions):
    pk = Checkpoint.objects.for_session("support", "s-1").get(turn_index=1).pk
    response = admin_client.get(reverse("admin:warlock_ai_checkpoint_change", args=[pk]))
    assert response.status_code == 302
    assert response.url == f"{SESSION}?orchestrator=support&session=s-1#turn-1"


def test_unknown_session_page_says_so(admin_client, sessions):
    response = admin_client.get(
        SESSION, {"orchestrator": "support", "session": "nope"}, follow=True
    )
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert messages_of(response) == ["Session “nope” of orchestrator “support” does not exist."]


# --- read only ------------------------------------------------------------------------------


def test_no_add_change_or_single_turn_delete_even_for_a_superuser(admin_client, sessions):
    pk = latest_pk("support", "s-1")
    before = turns_left()
    assert admin_client.get(reverse("admin:warlock_ai_checkpoint_add")).status_code == 403
    change = reverse("admin:warlock_ai_checkpoint_change", args=[pk])
    assert admin_client.post(change, {"state": "{}", "signature": "x"}).status_code == 302
    delete_one = reverse("admin:warlock_ai_checkpoint_delete", args=[pk])
    assert admin_client.post(delete_one, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [pk], "post": "yes"},
        follow=True,
    )
    assert messages_of(response) == ["No action selected."]
    assert turns_left() == before
    assert Checkpoint.objects.get(pk=pk).signature == "sig-1"


def test_view_permission_is_enough_to_browse_but_offers_no_deletion(staff_client, sessions):
    client = staff_client("view_checkpoint")
    response = client.get(CHANGELIST)
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 3
    assert "delete_sessions" not in response.content.decode()
    assert 'name="_selected_action"' not in response.content.decode()
    page = client.get(SESSION, {"orchestrator": "support", "session": "s-1"})
    assert page.status_code == 200 and 'id="delete-session"' not in page.content.decode()


def test_staff_without_view_permission_is_refused(staff_client, sessions):
    client = staff_client()
    assert client.get(CHANGELIST).status_code == 403
    page = client.get(SESSION, {"orchestrator": "support", "session": "s-1"})
    assert page.status_code == 403


# --- discarding sessions ----------------------------------------------------------------------


def test_delete_sessions_action_confirms_then_deletes_only_that_session(admin_client, sessions):
    selected = {"action": "delete_sessions", "_selected_action": [latest_pk("support", "s-1")]}
    confirm = admin_client.post(CHANGELIST, selected)
    assert confirm.status_code == 200
    assert [(s.session_id, s.turn_count) for s in confirm.context["sessions"]] == [("s-1", 3)]
    assert "In all: 3 turns." in confirm.content.decode()
    assert len(turns_left()) == 6

    response = admin_client.post(CHANGELIST, {**selected, "post": "yes"}, follow=True)
    assert messages_of(response) == ["Discarded 1 session (3 turns)."]
    assert turns_left() == [("billing", "s-1", 0), ("billing", "s-1", 1), ("support", "s-2", 0)]
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.user.username) == (DELETION, "admin")
    assert entry.object_repr == "support / s-1"
    assert entry.change_message == "Discarded session “s-1” of orchestrator “support”: 3 turns."
    assert entry.content_type.model_class() is Checkpoint


def test_delete_sessions_action_deletes_several_and_logs_each(admin_client, sessions):
    pks = [latest_pk("support", "s-1"), latest_pk("billing", "s-1")]
    data = {"action": "delete_sessions", "_selected_action": pks, "post": "yes"}
    response = admin_client.post(CHANGELIST, data, follow=True)
    assert messages_of(response) == ["Discarded 2 sessions (5 turns)."]
    assert turns_left() == [("support", "s-2", 0)]
    assert sorted(LogEntry.objects.values_list("object_repr", flat=True)) == [
        "billing / s-1",
        "support / s-1",
    ]


def test_session_page_button_confirms_then_deletes(staff_client, sessions):
    client = staff_client("view_checkpoint", "delete_checkpoint")
    page = client.get(SESSION, {"orchestrator": "billing", "session": "s-1"}).content.decode()
    assert f'href="{DELETE}?orchestrator=billing&amp;session=s-1"' in page
    confirm = client.get(DELETE, {"orchestrator": "billing", "session": "s-1"})
    assert confirm.status_code == 200 and "In all: 2 turns." in confirm.content.decode()
    assert len(turns_left()) == 6

    response = client.post(DELETE, {"orchestrator": "billing", "session": "s-1"}, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert messages_of(response) == ["Discarded 1 session (2 turns)."]
    assert {row[:2] for row in turns_left()} == {("support", "s-1"), ("support", "s-2")}
    assert LogEntry.objects.get().user.username == "ops"


def test_deleting_needs_the_delete_permission(staff_client, sessions):
    client = staff_client("view_checkpoint")
    key = {"orchestrator": "support", "session": "s-1"}
    assert client.get(DELETE, key).status_code == 403
    assert client.post(DELETE, key).status_code == 403
    data = {"action": "delete_sessions", "_selected_action": [latest_pk(*key.values())]}
    # With no action allowed, Django's changelist ignores the action and just lists again.
    response = client.post(CHANGELIST, {**data, "post": "yes"})
    assert response.status_code == 200 and len(response.context["cl"].result_list) == 3
    assert len(turns_left()) == 6 and not LogEntry.objects.exists()


# --- tampered requests ----------------------------------------------------------------------


def test_deleting_an_unknown_session_is_refused(admin_client, sessions):
    response = admin_client.post(DELETE, {"orchestrator": "support", "session": "s-9"}, follow=True)
    assert messages_of(response) == ["Session “s-9” of orchestrator “support” does not exist."]
    response = admin_client.post(DELETE, {"orchestrator": "billing", "session": ""}, follow=True)
    assert "does not exist" in messages_of(response)[0]
    assert len(turns_left()) == 6 and not LogEntry.objects.exists()


def test_the_action_refuses_ids_that_are_not_a_sessions_latest_turn(admin_client, sessions):
    older = Checkpoint.objects.for_session("support", "s-1").get(turn_index=0).pk
    for selected in ([older], [987654], ["abc"]):
        data = {"action": "delete_sessions", "_selected_action": selected, "post": "yes"}
        response = admin_client.post(CHANGELIST, data, follow=True)
        assert "nothing was" in messages_of(response)[0]
    assert len(turns_left()) == 6 and not LogEntry.objects.exists()


def test_a_post_without_csrf_token_is_refused(admin_user, sessions):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(DELETE, {"orchestrator": "support", "session": "s-1"})
    assert response.status_code == 403
    data = {"action": "delete_sessions", "_selected_action": [latest_pk("support", "s-1")]}
    assert client.post(CHANGELIST, {**data, "post": "yes"}).status_code == 403
    assert len(turns_left()) == 6 and not LogEntry.objects.exists()


def test_get_never_deletes_and_the_session_page_refuses_post(admin_client, sessions):
    key = {"orchestrator": "support", "session": "s-1"}
    assert admin_client.get(DELETE, {**key, "post": "yes"}).status_code == 200
    assert admin_client.post(SESSION, key).status_code == 405
    assert admin_client.put(DELETE, key).status_code == 405
    assert len(turns_left()) == 6 and not LogEntry.objects.exists()

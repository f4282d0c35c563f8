"""The sessions admin's page and actions on sessions the real orchestrator wrote (ORM
checkpoints and turn snapshots on SQLite): the turn diffs, the interrupted turn, resume, fork
and discard, each behind its permission, each logged, none changing anything when refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.test import Client
from django.urls import reverse

from tests.django.admin_sessions import CALLS, NAME
from tests.users import make_staff_user
from warlock_ai.models import Checkpoint, Snapshot

CHANGELIST = reverse("admin:warlock_ai_checkpoint_changelist")
SESSION = reverse("admin:warlock_ai_checkpoint_session")
RESUME = reverse("admin:warlock_ai_checkpoint_resume_turn")
FORK = reverse("admin:warlock_ai_checkpoint_fork")
DELETE = reverse("admin:warlock_ai_checkpoint_delete_session")
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)


def client_with(*codenames: str, username: str = "ops") -> Client:
    client = Client()
    client.force_login(make_staff_user(username, *codenames))
    return client


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def key(session_id: str = "s-1") -> dict[str, str]:
    return {"orchestrator": NAME, "session": session_id}


def rows(session_id: str = "s-1") -> list[tuple[int, dict]]:
    turns = Checkpoint.objects.for_session(NAME, session_id).order_by("turn_index")
    return [(row.turn_index, row.state) for row in turns]


def add_turns(session_id: str, states: list[dict], first: int = 0, name: str = NAME) -> None:
    Checkpoint.objects.bulk_create(
        Checkpoint(
            orchestrator_name=name,
            session_id=session_id,
            turn_index=first + offset,
            state=state,
            last_route="note",
            signature="sig-1",
            version="3",
            summarized_through=1 if offset else None,
            saved_at=T0 + timedelta(minutes=offset),
        )
        for offset, state in enumerate(states)
    )


# --- the session page: diffs, pruning, the interrupted turn ---------------------------------


@pytest.mark.django_db
def test_each_turn_shows_what_changed_since_the_turn_before(admin_client):
    add_turns(
        "s-1",
        [
            {"customer": {"id": 7, "tier": None}, "notes": ["hi"], "odd key": 1},
            {"customer": {"id": 7, "tier": "gold"}, "notes": ["hi", "refund?"], "odd key": 1},
            {"customer": {"id": 7}, "notes": ["hi", "refund!"], "flag": True, "odd key": True},
        ],
    )
    html = admin_client.get(SESSION, key()).content.decode()
    turn = {i: html[html.index(f'id="turn-{i}"') :] for i in range(3)}
    assert "the first turn" in text_of(turn[0][: turn[0].index("</tr>")])
    first = text_of(turn[1][: turn[1].index("</tr>")])
    assert '~ customer.tier null → "gold"' in first
    assert '+ notes[1] "refund?"' in first
    second = text_of(turn[2][: turn[2].index("</tr>")])
    assert '\N{MINUS SIGN} customer.tier "gold"' in second
    assert 'notes[1] "refund?" → "refund!"' in second
    assert "+ flag true" in second
    assert '~ ["odd key"] 1 → true' in second  # JSON values: 1 and true differ
    assert 'class="warlock-removed"' in turn[2] and 'class="warlock-added"' in turn[2]


@pytest.mark.django_db
def test_an_unchanged_state_says_so_and_a_huge_change_is_cut(admin_client):
    add_turns("s-1", [{"n": list(range(150))}, {"n": list(range(150))}, {"n": []}])
    html = admin_client.get(SESSION, key()).content.decode()
    assert "no change" in text_of(html[html.index('id="turn-1"') : html.index('id="turn-2"')])
    last = html[html.index('id="turn-2"') :]
    assert last.count('class="warlock-removed"') == 100
    assert "… and 50 more changes" in text_of(last)


@pytest.mark.django_db
def test_pruned_history_says_so(admin_client):
    add_turns("s-1", [{"a": 1}, {"a": 2}], first=5)
    html = text_of(admin_client.get(SESSION, key()).content.decode())
    assert "Turns 0 to 4 were pruned: the oldest stored turn is turn 5." in html
    assert "the oldest stored turn" in html and "the first turn" not in html
    add_turns("s-2", [{"a": 1}], first=1)
    html = text_of(admin_client.get(SESSION, key("s-2")).content.decode())
    assert "Turn 0 was pruned: the oldest stored turn is turn 1." in html


def test_the_interrupted_turn_is_shown_with_a_link_to_its_run(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello", "my invoice")
    client = client_with("view_checkpoint")
    html = client.get(SESSION, key()).content.decode()
    run_url = reverse("admin:warlock_ai_snapshot_change", args=[turn.run_id])
    assert f'<a href="{run_url}" id="interrupted-run">s-1.unversioned.2</a>' in html
    assert "Turn 2 was interrupted" in html
    assert 'id="resume-turn"' not in html  # no permission to resume
    assert "expired at" in text_of(html)


def test_the_changelist_shows_and_filters_interrupted_turns(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello")
    chat_sessions.settled("s-2", "hi")
    client = client_with("view_checkpoint")
    response = client.get(CHANGELIST)
    listed = {row.session_id: row.interrupted_run for row in response.context["cl"].result_list}
    assert listed == {"s-1": turn.run_id, "s-2": None}
    run_url = reverse("admin:warlock_ai_snapshot_change", args=[turn.run_id])
    assert f'<a href="{run_url}" class="warlock-interrupted">turn 1</a>' in (
        response.content.decode()
    )

    def filtered(value):
        result = client.get(CHANGELIST, {"interrupted": value}).context["cl"].result_list
        return [row.session_id for row in result]

    assert filtered("yes") == ["s-1"]
    assert filtered("no") == ["s-2"]


def test_a_finished_or_failed_turn_snapshot_is_no_interrupted_turn(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello")
    Snapshot.objects.filter(pk=turn.pk).update(status="failed")
    client = client_with("view_checkpoint")
    (row,) = client.get(CHANGELIST).context["cl"].result_list
    assert row.interrupted_run is None
    assert "was interrupted" not in client.get(SESSION, key()).content.decode()


@pytest.mark.django_db(databases=["default", "pg"])
def test_interrupted_turns_are_found_on_postgres_too():
    from django.utils import timezone

    for alias in ("default", "pg"):
        add_turns_on = [
            Checkpoint(orchestrator_name="o", session_id=sid, turn_index=t, signature="s")
            for sid, turns, version in (("a.b", 2, None), ("a", 1, "7"))
            for t in range(turns)
        ]
        Checkpoint.objects.using(alias).bulk_create(add_turns_on)
        now = timezone.now()
        for run_id, version in (("a.b.unversioned.2", None), ("a.7.1", "7"), ("a.7.0", "7")):
            Snapshot.objects.using(alias).create(
                run_id=run_id,
                kind="orchestrator",
                name="o",
                version=version,
                signature="s",
                status="running",
                started_at=now,
                saved_at=now,
            )
        found = Checkpoint.objects.using(alias).latest_turns().with_interrupted_turn()
        pairs = sorted((row.session_id, row.interrupted_run) for row in found)
        assert pairs == [("a", "a.7.1"), ("a.b", "a.b.unversioned.2")], alias


# --- resume an interrupted turn --------------------------------------------------------------


def test_resume_without_a_worker_shows_the_command_and_changes_nothing(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello")
    client = client_with("view_checkpoint", "resume_snapshot")
    page = client.get(SESSION, key()).content.decode()
    command = "python manage.py resume_turn desk-chat --session s-1"
    assert 'id="resume-turn"' in page and command in page
    calls = dict(CALLS)
    response = client.post(RESUME, key(), follow=True)
    (message,) = messages_of(response)
    assert message.startswith("Resume: nothing was run or changed (no background worker")
    assert command in message
    assert Snapshot.objects.get(pk=turn.pk).saved_at == turn.saved_at
    assert len(rows()) == 1 and dict(CALLS) == calls
    assert not LogEntry.objects.exists()


def test_resume_inline_finishes_the_turn_and_logs_it(chat_sessions, admin_runs_inline):
    turn = chat_sessions.interrupted("s-1", "hello")
    client = client_with("view_checkpoint", "resume_snapshot")
    response = client.post(RESUME, key(), follow=True)
    assert response.redirect_chain[-1][0] == f"{SESSION}?orchestrator={NAME}&session=s-1"
    assert messages_of(response) == ['Resume: turn 1 of session "s-1" finished: awaiting-input']
    assert [index for index, _state in rows()] == [0, 1]
    assert rows()[1][1]["notes"] == ["hello", "crash course"]
    assert not Snapshot.objects.filter(pk=turn.pk).exists()  # settled: the row is the record
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_id, entry.user.username) == (CHANGE, turn.pk, "ops")
    assert entry.content_type.model_class() is Snapshot
    assert entry.change_message == messages_of(response)[0]


def test_resume_needs_its_permission(chat_sessions, admin_runs_inline):
    turn = chat_sessions.interrupted("s-1", "hello")
    for client in (client_with("view_checkpoint", "change_snapshot"), Client()):
        response = client.post(RESUME, key())
        assert response.status_code in (403, 302)  # 302: to the login page
    client = client_with("resume_snapshot", username="ops2")  # may resume, not see sessions
    assert client.post(RESUME, key()).status_code == 403
    assert Snapshot.objects.get(pk=turn.pk).status == "running" and len(rows()) == 1
    assert not LogEntry.objects.exists()


def test_resume_refuses_a_turn_a_live_worker_holds(chat_sessions, admin_runs_inline):
    turn = chat_sessions.interrupted("s-1", "hello", stale=False)
    client = client_with("view_checkpoint", "resume_snapshot")
    page = text_of(client.get(SESSION, key()).content.decode())
    assert "Resume is not possible now: a worker is running it now" in page
    response = client.post(RESUME, key(), follow=True)
    (message,) = messages_of(response)
    assert message.startswith(f'Resume: cannot resume run "{turn.run_id}": it is leased by')
    assert Snapshot.objects.get(pk=turn.pk).saved_at == turn.saved_at and len(rows()) == 1
    assert not LogEntry.objects.exists()


def test_resume_refuses_a_drifted_or_unregistered_orchestrator(chat_sessions, admin_runs_inline):
    from warlock_ai.registry import registry

    chat_sessions.interrupted("s-1", "hello")
    client = client_with("view_checkpoint", "resume_snapshot")
    chat_sessions.drift()
    page = text_of(client.get(SESSION, key()).content.decode())
    assert "changed since this session was saved" in page
    assert "python manage.py resume_turn desk-chat --session s-1 --force on a server" in page
    (message,) = messages_of(client.post(RESUME, key(), follow=True))
    assert message.startswith('Resume: orchestrator "desk-chat" changed since session "s-1"')
    registry.unregister("orchestrator", NAME)
    page = text_of(client.get(SESSION, key()).content.decode())
    assert 'orchestrator "desk-chat" is not registered in this project' in page
    (message,) = messages_of(client.post(RESUME, key(), follow=True))
    assert message.startswith('Resume: unknown orchestrator "desk-chat"; registered flows:')
    assert len(rows()) == 1 and not LogEntry.objects.exists()


def test_resume_without_an_interrupted_turn_or_session_says_so(chat_sessions, admin_runs_inline):
    chat_sessions.settled("s-1", "hello")
    client = client_with("view_checkpoint", "resume_snapshot")
    response = client.post(RESUME, key(), follow=True)
    assert messages_of(response) == ["Session “s-1” has no interrupted turn: nothing to resume."]
    response = client.post(RESUME, key("nope"), follow=True)
    assert "does not exist" in messages_of(response)[0]
    assert client.get(RESUME, key()).status_code == 405
    assert len(rows()) == 1 and not LogEntry.objects.exists()


# --- fork -------------------------------------------------------------------------------------


def test_fork_copies_the_turns_up_to_n_into_a_new_session(chat_sessions):
    source = chat_sessions.settled("s-1", "hello", "my invoice", "thanks")
    client = client_with("view_checkpoint", "add_checkpoint")
    page = client.get(SESSION, key()).content.decode()
    assert f'href="{FORK}?orchestrator={NAME}&amp;session=s-1&amp;turn=1"' in page
    form = client.get(FORK, {**key(), "turn": "1"})
    assert form.status_code == 200 and form.context["form"]["turn"].value() == "1"

    response = client.post(FORK, {**key(), "turn": "1", "new_session_id": "s-1/b"}, follow=True)
    assert response.redirect_chain[-1][0] == f"{SESSION}?orchestrator={NAME}&session=s-1%2Fb"
    assert messages_of(response) == [
        'Fork: session "s-1" of orchestrator "desk-chat" forked at turn 1 into "s-1/b": '
        "2 turns copied (0-1)"
    ]
    copies = list(Checkpoint.objects.for_session(NAME, "s-1/b").order_by("turn_index"))
    fields = ("turn_index", "state", "last_route", "signature", "version", "summarized_through")
    for copy, original in zip(copies, source[:2], strict=True):
        assert [getattr(copy, f) for f in fields] == [getattr(original, f) for f in fields]
        assert copy.saved_at > original.saved_at
    after = list(Checkpoint.objects.for_session(NAME, "s-1").order_by("turn_index"))
    assert [(r.pk, r.saved_at, r.state) for r in after] == [
        (r.pk, r.saved_at, r.state) for r in source
    ]
    entry = LogEntry.objects.get()
    assert (entry.action_flag, entry.object_repr) == (ADDITION, f"{NAME} / s-1/b")
    assert entry.object_id == str(copies[-1].pk)
    # The fork is a session of its own: its next turn continues from turn 1.
    result = chat_sessions.orchestrator.execute("again", session_id="s-1/b")
    assert result.turn_index == 2 and rows("s-1/b")[-1][1]["notes"] == [
        "hello",
        "my invoice",
        "again",
    ]


@pytest.mark.parametrize(
    ("new_id", "error"),
    [
        ("", "This field is required."),
        ("   ", "session_id must be a non-empty string, got '   '"),
        ("bad\x07id", "session_id 'bad\\x07id' contains an unprintable character (U+0007 at "),
        ("x" * 256, "session_id is 256 characters long; the limit is 255"),
        ("x" * 250, "session_id is too long for iterate=True"),
        ("s-2", 'session "s-2" of orchestrator "desk-chat" already exists; choose another id'),
    ],
)
def test_bad_fork_input_is_one_line_on_the_form_and_writes_nothing(chat_sessions, new_id, error):
    chat_sessions.settled("s-1", "hello", "again")
    chat_sessions.settled("s-2", "other")
    before = sorted(Checkpoint.objects.values_list("session_id", "turn_index"))
    client = client_with("view_checkpoint", "add_checkpoint")
    response = client.post(FORK, {**key(), "turn": "1", "new_session_id": new_id})
    assert response.status_code == 200
    (message,) = response.context["form"].errors["new_session_id"]
    assert message.startswith(error) and "\n" not in message
    assert sorted(Checkpoint.objects.values_list("session_id", "turn_index")) == before
    assert not LogEntry.objects.exists()


def test_fork_refuses_a_turn_the_session_does_not_store(chat_sessions):
    chat_sessions.settled("s-1", "hello")
    client = client_with("view_checkpoint", "add_checkpoint")
    for turn in ("5", "-1", "x"):
        response = client.post(FORK, {**key(), "turn": turn, "new_session_id": "s-9"})
        assert response.status_code == 200 and "turn" in response.context["form"].errors
    assert not Checkpoint.objects.filter(session_id="s-9").exists()


@pytest.mark.django_db
def test_fork_of_a_pruned_session_copies_what_is_stored_and_says_so(admin_client):
    add_turns("s-1", [{"a": 3}, {"a": 4}, {"a": 5}], first=3)
    form = admin_client.get(FORK, key()).content.decode()
    assert "Turns before turn 3 were pruned from this session" in form
    response = admin_client.post(FORK, {**key(), "turn": "4", "new_session_id": "s-2"}, follow=True)
    assert messages_of(response) == [
        'Fork: session "s-1" of orchestrator "desk-chat" forked at turn 4 into "s-2": '
        "2 turns copied (3-4); turns 0-2 were pruned from the source, so the fork starts at "
        "turn 3"
    ]
    assert rows("s-2") == [(3, {"a": 3}), (4, {"a": 4})]
    html = text_of(response.content.decode())
    assert "Turns 0 to 2 were pruned" in html


def test_fork_needs_its_permission(chat_sessions):
    chat_sessions.settled("s-1", "hello")
    client = client_with("view_checkpoint")
    assert 'id="fork-session"' not in client.get(SESSION, key()).content.decode()
    assert client.get(FORK, key()).status_code == 403
    assert client.post(FORK, {**key(), "turn": "0", "new_session_id": "s-2"}).status_code == 403
    client = client_with("add_checkpoint", username="ops2")  # may add, not see sessions
    assert client.post(FORK, {**key(), "turn": "0", "new_session_id": "s-2"}).status_code == 403
    assert not Checkpoint.objects.filter(session_id="s-2").exists()
    assert not LogEntry.objects.exists()


def test_fork_of_an_unknown_session_and_without_csrf_is_refused(chat_sessions, admin_user):
    chat_sessions.settled("s-1", "hello")
    client = client_with("view_checkpoint", "add_checkpoint")
    response = client.get(FORK, key("nope"), follow=True)
    assert "does not exist" in messages_of(response)[0]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    data = {**key(), "turn": "0", "new_session_id": "s-2"}
    assert strict.post(FORK, data).status_code == 403
    assert not Checkpoint.objects.filter(session_id="s-2").exists()


# --- discard ----------------------------------------------------------------------------------


def test_discard_removes_the_rows_and_the_interrupted_turn(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello", "again")
    chat_sessions.settled("s-2", "other")
    client = client_with("view_checkpoint", "delete_checkpoint")
    confirm = text_of(client.get(DELETE, key()).content.decode())
    assert turn.run_id in confirm
    assert "In all: 2 turns. 1 interrupted turn will not be resumed." in confirm
    response = client.post(DELETE, key(), follow=True)
    assert messages_of(response) == ["Discarded 1 session (2 turns, 1 turn snapshot)."]
    assert rows() == [] and not Snapshot.objects.filter(pk=turn.pk).exists()
    assert [index for index, _ in rows("s-2")] == [0]
    entry = LogEntry.objects.get()
    assert entry.action_flag == DELETION
    assert entry.change_message == (
        "Discarded session “s-1” of orchestrator “desk-chat”: 2 turns, 1 turn snapshot."
    )


def test_discard_of_an_unregistered_orchestrators_session_removes_its_rows_too(chat_sessions):
    from warlock_ai.registry import registry

    turn = chat_sessions.interrupted("s-1", "hello")
    registry.unregister("orchestrator", NAME)
    client = client_with("view_checkpoint", "delete_checkpoint")
    response = client.post(DELETE, key(), follow=True)
    assert messages_of(response) == ["Discarded 1 session (1 turn, 1 turn snapshot)."]
    assert rows() == [] and not Snapshot.objects.filter(pk=turn.pk).exists()


def test_discard_needs_its_permission(chat_sessions):
    turn = chat_sessions.interrupted("s-1", "hello")
    client = client_with("view_checkpoint", "resume_snapshot", "discard_snapshot")
    assert client.post(DELETE, key()).status_code == 403
    assert len(rows()) == 1 and Snapshot.objects.filter(pk=turn.pk).exists()
    assert not LogEntry.objects.exists()

"""``sessions/`` and ``cache/stats/``: orchestrator sessions and their turns, sending a turn
(inline, or the command when no worker runs it), the cache's entries by namespace."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.utils import timezone

from tests.api.conftest import error_of
from tests.django.admin_sessions import CALLS, NAME
from warlock_ai.models import CacheEntry, Checkpoint

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def ops(api_as):
    return api_as("view_checkpoint", "add_checkpoint", "view_cacheentry")


def test_sessions_list_one_row_per_session_with_its_latest_turn(chat_sessions, ops):
    chat_sessions.settled("s-1", "hi", "again")
    chat_sessions.interrupted("s-2", "hello")
    body = ops.get("sessions/").json()
    by_id = {s["session_id"]: s for s in body["results"]}
    assert by_id["s-1"]["turns"] == 2 and by_id["s-1"]["latest_turn"] == 1
    assert by_id["s-1"]["interrupted_run"] is None
    assert by_id["s-2"]["interrupted_run"] == "s-2.unversioned.1"
    assert by_id["s-1"]["turns_url"] == f"/api/warlock/sessions/{NAME}/s-1/turns/"
    waiting = ops.get("sessions/", interrupted="true").json()["results"]
    assert [s["session_id"] for s in waiting] == ["s-2"]
    assert [s["session_id"] for s in ops.get("sessions/", search="s-1").json()["results"]] == [
        "s-1"
    ]
    error_of(ops.get("sessions/", interrupted="maybe"), 400, "INVALID")


def test_turns_are_listed_oldest_first_with_their_state(chat_sessions, ops):
    chat_sessions.settled("s-1", "hi", "again")
    turns = ops.get(f"sessions/{NAME}/s-1/turns/").json()["results"]
    assert [t["turn_index"] for t in turns] == [0, 1]
    assert turns[1]["state"]["notes"] == ["hi", "again"]


def test_turns_of_an_unknown_session_are_a_404(chat_sessions, ops):
    body = error_of(ops.get(f"sessions/{NAME}/nobody/turns/"), 404, "ORCHESTRATOR_UNKNOWN_SESSION")
    assert body["session_id"] == "nobody"


def test_sending_a_turn_inline_stores_it_and_logs_it(chat_sessions, ops, admin_runs_inline):
    chat_sessions.settled("s-1", "hi")
    response = ops.post(f"sessions/{NAME}/s-1/turns/", {"input": "and now?"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["turn_index"] == 1 and body["status"] == "awaiting-input" and body["ok"] is True
    row = Checkpoint.objects.for_session(NAME, "s-1").get(turn_index=1)
    assert row.state["notes"] == ["hi", "and now?"]
    entry = LogEntry.objects.get(object_id=str(row.pk))
    assert entry.action_flag == ADDITION and entry.change_message.startswith("Turn: ")


def test_sending_a_turn_to_a_new_session_starts_it(chat_sessions, ops, admin_runs_inline):
    response = ops.post(f"sessions/{NAME}/fresh/turns/", {"input": "first"})
    assert response.status_code == 201 and response.json()["turn_index"] == 0


def test_sending_a_turn_without_a_worker_gives_the_command(chat_sessions, ops):
    chat_sessions.settled("s-1", "hi")
    calls = dict(CALLS)
    body = error_of(
        ops.post(f"sessions/{NAME}/s-1/turns/", {"input": "x"}), 409, "NO_BACKGROUND_WORKER"
    )
    assert body["command"] == f"python manage.py execute_turn {NAME} --session s-1 --input '\"x\"'"
    assert dict(CALLS) == calls and Checkpoint.objects.count() == 1


def test_a_turn_over_an_interrupted_one_is_a_409(chat_sessions, ops, admin_runs_inline):
    chat_sessions.interrupted("s-2", "hello")
    error_of(
        ops.post(f"sessions/{NAME}/s-2/turns/", {"input": "x"}),
        409,
        "ORCHESTRATOR_TURN_INTERRUPTED",
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (f"sessions/{NAME}/s-1/turns/", {}, 400, "INVALID"),
        (f"sessions/{NAME}/s-1/turns/", {"input": "x", "turn_key": 5}, 400, "INVALID"),
        (f"sessions/{NAME}/s-1/turns/", {"input": "x", "history": []}, 400, "INVALID"),
        ("sessions/no-such-bot/s-1/turns/", {"input": "x"}, 404, "UNKNOWN_ORCHESTRATOR"),
    ],
)
def test_bad_turns_are_refused(chat_sessions, ops, admin_runs_inline, path, body, status, code):
    chat_sessions.settled("s-1", "hi")
    error_of(ops.post(path, body), status, code)
    assert Checkpoint.objects.count() == 1


def test_cache_stats_count_entries_expired_entries_and_hits_by_namespace(ops):
    past = timezone.now() - timedelta(hours=1)
    CacheEntry.objects.create(namespace="ai.cache", key="a", value=1, hits=4)
    CacheEntry.objects.create(namespace="ai.cache", key="b", value=2, hits=1, expires_at=past)
    CacheEntry.objects.create(namespace="ai.memory", key="c", value=3, embedding=[0.1, 0.2])
    body = ops.get("cache/stats/").json()
    assert (body["entries"], body["expired"], body["hits"]) == (3, 1, 5)
    assert body["namespaces"] == [
        {"namespace": "ai.cache", "entries": 2, "expired": 1, "hits": 5, "with_embedding": 0},
        {"namespace": "ai.memory", "entries": 1, "expired": 0, "hits": 0, "with_embedding": 1},
    ]


def test_a_session_id_that_cannot_name_a_session_is_a_400_naming_it(chat_sessions, ops):
    body = error_of(ops.post(f"sessions/{NAME}/{'s' * 300}/turns/", {"input": "x"}), 400, "INVALID")
    assert "session_id" in body["fields"] and body["message"].startswith("session_id: ")
    assert not Checkpoint.objects.exists()


# --- one session: read, discard, resume its interrupted turn --------------------------------


@pytest.fixture
def session_ops(api_as):
    return api_as(
        "view_checkpoint", "delete_checkpoint", "resume_snapshot", "force_resume_snapshot"
    )


def test_a_session_reads_as_the_list_shows_it(chat_sessions, session_ops):
    chat_sessions.interrupted("s-2", "hello")
    body = session_ops.get(f"sessions/{NAME}/s-2/").json()
    assert body["session_id"] == "s-2" and body["turns"] == 1
    assert body["interrupted_run"] == "s-2.unversioned.1"
    assert body["url"] == f"/api/warlock/sessions/{NAME}/s-2/"
    error_of(session_ops.get(f"sessions/{NAME}/nobody/"), 404, "ORCHESTRATOR_UNKNOWN_SESSION")


def test_discarding_a_session_deletes_its_turns_and_turn_snapshot(chat_sessions, session_ops):
    from warlock_ai.models import Snapshot

    chat_sessions.interrupted("s-2", "hello")
    chat_sessions.settled("s-1", "kept")
    assert session_ops.delete(f"sessions/{NAME}/s-2/").status_code == 204
    assert not Checkpoint.objects.for_session(NAME, "s-2").exists()
    assert not Snapshot.objects.filter(kind="orchestrator", run_id__startswith="s-2.").exists()
    assert Checkpoint.objects.for_session(NAME, "s-1").count() == 1
    entry = LogEntry.objects.get(object_repr=f"{NAME} / s-2")
    assert entry.action_flag == DELETION and entry.change_message.startswith("Discarded session")
    error_of(session_ops.delete(f"sessions/{NAME}/s-2/"), 404, "ORCHESTRATOR_UNKNOWN_SESSION")


def test_resume_finishes_the_interrupted_turn_without_rerunning_its_settled_iteration(
    chat_sessions, session_ops, admin_runs_inline
):
    chat_sessions.interrupted("s-2", "hello")
    noted = CALLS["note"]
    response = session_ops.post(f"sessions/{NAME}/s-2/resume/", {})
    assert response.status_code == 200, response.content
    assert response.json()["turn_index"] == 1 and response.json()["ok"] is True
    assert CALLS["note"] == noted  # iteration 0 of the turn had settled before the crash
    assert Checkpoint.objects.for_session(NAME, "s-2").count() == 2
    entry = LogEntry.objects.filter(object_repr=f"{NAME} / s-2").latest("action_time")
    assert entry.action_flag == CHANGE and entry.change_message.startswith("Resume: ")


def test_resume_of_a_session_whose_first_turn_was_interrupted(
    chat_sessions, session_ops, admin_runs_inline
):
    chat_sessions.interrupted("first")
    assert not Checkpoint.objects.for_session(NAME, "first").exists()
    response = session_ops.post(f"sessions/{NAME}/first/resume/", {})
    assert response.status_code == 200, response.content
    assert Checkpoint.objects.for_session(NAME, "first").count() == 1


def test_resume_without_a_worker_gives_the_command(chat_sessions, session_ops):
    chat_sessions.interrupted("s-2", "hello")
    body = error_of(
        session_ops.post(f"sessions/{NAME}/s-2/resume/", {}), 409, "NO_BACKGROUND_WORKER"
    )
    assert body["command"] == f"python manage.py resume_turn {NAME} --session s-2"


def test_resume_with_nothing_to_resume_is_a_409(chat_sessions, session_ops, admin_runs_inline):
    chat_sessions.settled("s-1", "hi")
    error_of(
        session_ops.post(f"sessions/{NAME}/s-1/resume/", {}), 409, "ORCHESTRATOR_NOTHING_TO_RESUME"
    )


def test_resume_after_the_orchestrator_changed_needs_force(
    chat_sessions, session_ops, admin_runs_inline, api_as
):
    chat_sessions.interrupted("s-2", "hello")
    chat_sessions.drift()
    body = error_of(session_ops.post(f"sessions/{NAME}/s-2/resume/", {}), 409, "ORCHESTRATOR_DRIFT")
    assert body["saved_signature"] != body["current_signature"]
    plain = api_as("view_checkpoint", "resume_snapshot")
    refused = error_of(
        plain.post(f"sessions/{NAME}/s-2/resume/", {"force": True}), 403, "PERMISSION_DENIED"
    )
    assert refused["message"].endswith("warlock_ai.force_resume_snapshot")
    assert session_ops.post(f"sessions/{NAME}/s-2/resume/", {"force": True}).status_code == 200


def test_session_ids_with_slashes_are_reachable(chat_sessions, session_ops):
    chat_sessions.settled("team/a/turns", "hi")
    chat_sessions.settled("team/b/resume", "hi")
    assert session_ops.get(f"sessions/{NAME}/team/b/resume/").json()["session_id"] == (
        "team/b/resume"
    )
    assert session_ops.delete(f"sessions/{NAME}/team/a/turns/").status_code == 204
    assert not Checkpoint.objects.for_session(NAME, "team/a/turns").exists()

"""The admin's resume and restart with django-rq configured: jobs on the real Redis, and a
queue that cannot be reached refused with one clear message, losing nothing. Nothing runs in
the request either way (the stored run is unchanged, no step is called)."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from tests.django.admin_runs import CALLS
from tests.django.admin_sessions import NAME
from tests.users import make_staff_user
from warlock_ai import jobs, operations
from warlock_ai.models import Snapshot

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

LIST = "/admin/warlock_ai/snapshot/"


@pytest.fixture
def rq_admin(settings, queue_name):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_rq"]
    client = Client()
    client.force_login(
        make_staff_user(
            "ops", "view_snapshot", "resume_snapshot", "force_resume_snapshot", "discard_snapshot"
        )
    )
    return client


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def unchanged(before):
    """The stored run is exactly as it was: nothing ran in the request."""
    after = Snapshot.objects.get(pk=before.pk)
    fields = ("saved_at", "status", "steps", "next_step", "state", "lease_owner")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]


def test_resume_enqueues_when_rq_is_configured(runs, rq_admin, queue_name):
    import django_rq

    stale = runs.stale()
    calls = dict(CALLS)
    assert operations.rq_configured()
    response = rq_admin.post(f"{LIST}stale-1/actions/resume/", {"post": "yes"}, follow=True)
    job_id = jobs.job_id_for("stale-1")
    assert messages_of(response) == [
        f'Resume: run "stale-1" enqueued as job {job_id}: a worker resumes it'
    ]
    assert django_rq.get_queue(queue_name).get_job_ids() == [job_id]
    unchanged(stale)  # not run here
    assert dict(CALLS) == calls
    assert "enqueued" in LogEntry.objects.get(object_id="stale-1").change_message


def test_force_resume_enqueues_with_force(runs, rq_admin, queue_name):
    import django_rq

    drifted = runs.drifted()
    response = rq_admin.post(f"{LIST}drift-1/actions/force-resume/", {"post": "yes"}, follow=True)
    job_id = jobs.job_id_for("drift-1")
    assert any(f"enqueued as job {job_id}" in m for m in messages_of(response))
    job = django_rq.get_queue(queue_name).fetch_job(job_id)
    assert job is not None and job.args == ("drift-1", True)
    unchanged(drifted)


def test_the_run_page_shows_no_command_when_rq_is_configured(runs, rq_admin, queue_name):
    runs.stale()
    page = rq_admin.get(f"{LIST}stale-1/change/").content.decode()
    assert "warlock-command" not in page and "manage.py resume_run" not in page


def test_restart_enqueues_a_fresh_run(runs, rq_admin, queue_name):
    import django_rq

    runs.failed()
    data = {"post": "yes", "restart": "on"}
    rq_admin.post(f"{LIST}failed-1/actions/discard/", data, follow=True)
    job = django_rq.get_queue(queue_name).fetch_job(jobs.job_id_for("failed-1"))
    assert job is not None and job.args == ("workflow:orders", {"fail": True}, "failed-1")
    assert not Snapshot.objects.filter(pk="failed-1").exists()  # the job starts it afresh


def test_an_unreachable_queue_is_refused_and_loses_nothing(runs, rq_admin, settings):
    settings.RQ_QUEUES = {settings.WARLOCK_AI["RQ_QUEUE"]: {"URL": "redis://127.0.0.1:1/0"}}
    failed = runs.failed()
    data = {"post": "yes", "restart": "on"}
    response = rq_admin.post(f"{LIST}failed-1/actions/discard/", data, follow=True)
    (message,) = messages_of(response)
    assert "could not enqueue run" in message and "failed-1" in message
    kept = Snapshot.objects.get(pk="failed-1")  # put back after the failed enqueue
    assert (kept.status, kept.steps, kept.input) == (failed.status, failed.steps, failed.input)
    assert not LogEntry.objects.filter(object_id="failed-1").exists()


@pytest.mark.parametrize(("name", "run"), [("resume", "stale"), ("force-resume", "drifted")])
def test_an_unreachable_queue_refuses_a_resume_and_runs_nothing(
    runs, rq_admin, settings, name, run
):
    settings.RQ_QUEUES = {settings.WARLOCK_AI["RQ_QUEUE"]: {"URL": "redis://127.0.0.1:1/0"}}
    before = getattr(runs, run)()
    calls = dict(CALLS)
    response = rq_admin.post(f"{LIST}{before.pk}/actions/{name}/", {"post": "yes"}, follow=True)
    (message,) = messages_of(response)
    queue = settings.WARLOCK_AI["RQ_QUEUE"]
    assert message.startswith(
        f'{before.pk}: could not enqueue run "{before.pk}" on the django-rq queue "{queue}": '
        "ConnectionError"
    )
    assert [m.level_tag for m in response.context["messages"]] == ["error"]
    unchanged(before)
    assert dict(CALLS) == calls
    assert not LogEntry.objects.filter(object_id=before.pk).exists()


# --- the sessions admin's resume of an interrupted turn ------------------------------------

SESSION = "/admin/warlock_ai/checkpoint/session/"
RESUME_TURN = "/admin/warlock_ai/checkpoint/session/resume/"


@pytest.fixture
def rq_sessions_admin(settings, queue_name):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_rq"]
    client = Client()
    client.force_login(make_staff_user("ops", "view_checkpoint", "resume_snapshot"))
    return client


def test_resuming_an_interrupted_turn_enqueues_its_run(
    chat_sessions, rq_sessions_admin, queue_name
):
    import django_rq

    turn = chat_sessions.interrupted("s-1", "hello")
    key = {"orchestrator": NAME, "session": "s-1"}
    page = rq_sessions_admin.get(SESSION, key).content.decode()
    assert 'id="resume-turn"' in page and "manage.py resume_turn" not in page
    response = rq_sessions_admin.post(RESUME_TURN, key, follow=True)
    job_id = jobs.job_id_for(turn.run_id)
    assert messages_of(response) == [
        f'Resume: turn 1 of session "s-1" (run "{turn.run_id}") enqueued as job {job_id}: '
        "a worker finishes it"
    ]
    job = django_rq.get_queue(queue_name).fetch_job(job_id)
    assert job is not None and job.args == (turn.run_id, False)
    unchanged(turn)  # not run here
    assert "enqueued" in LogEntry.objects.get(object_id=turn.run_id).change_message


def test_an_unreachable_queue_refuses_a_turn_resume(chat_sessions, rq_sessions_admin, settings):
    settings.RQ_QUEUES = {settings.WARLOCK_AI["RQ_QUEUE"]: {"URL": "redis://127.0.0.1:1/0"}}
    turn = chat_sessions.interrupted("s-1", "hello")
    key = {"orchestrator": NAME, "session": "s-1"}
    (message,) = messages_of(rq_sessions_admin.post(RESUME_TURN, key, follow=True))
    assert message.startswith(f'Resume: could not enqueue run "{turn.run_id}" on the django-rq')
    unchanged(turn)
    assert not LogEntry.objects.exists()

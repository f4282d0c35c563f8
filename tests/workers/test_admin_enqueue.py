"""The admin's resume and restart with django-rq configured: jobs on the real Redis, and a
queue that cannot be reached refused with one clear message, losing nothing."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

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
        make_staff_user("ops", "view_snapshot", "resume_snapshot", "discard_snapshot")
    )
    return client


def messages_of(response):
    return [str(m) for m in response.context["messages"]]


def test_resume_enqueues_when_rq_is_configured(runs, rq_admin, queue_name):
    import django_rq

    stale = runs.stale()
    assert operations.rq_configured()
    response = rq_admin.post(f"{LIST}stale-1/actions/resume/", {"post": "yes"}, follow=True)
    job_id = jobs.job_id_for("stale-1")
    assert any(f"enqueued as job {job_id}" in m for m in messages_of(response))
    assert django_rq.get_queue(queue_name).get_job_ids() == [job_id]
    assert Snapshot.objects.get(pk="stale-1").saved_at == stale.saved_at  # not run here
    assert "enqueued" in LogEntry.objects.get(object_id="stale-1").change_message


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

"""The API with django-rq configured: starts, resumes and turns become jobs on the real
Redis (202 with the job id), nothing runs in the request, and the same start twice is one
job; a different start for a waiting run id is refused."""

from __future__ import annotations

import json

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from tests.django.admin_runs import CALLS
from tests.django.admin_sessions import NAME
from tests.users import make_staff_user
from warlock_ai import jobs
from warlock_ai.models import Checkpoint, Snapshot

pytestmark = [pytest.mark.services, pytest.mark.django_db(transaction=True)]

API = "/api/warlock/"


@pytest.fixture
def rq_api(settings, queue_name):
    settings.INSTALLED_APPS = [*settings.INSTALLED_APPS, "django_rq"]
    client = Client()
    client.force_login(make_staff_user("ops", "add_snapshot", "resume_snapshot", "add_checkpoint"))
    return client


def post(client, path, body):
    return client.post(API + path, json.dumps(body), content_type="application/json")


def test_start_enqueues_once_and_refuses_another_body(runs, rq_api, queue_name):
    import django_rq

    start = {"flow": "orders", "input": {"items": 2}, "run_id": "q-1"}
    first = post(rq_api, "runs/", start)
    assert first.status_code == 202, first.content
    job_id = jobs.job_id_for("q-1")
    assert first.json()["job_id"] == job_id and first.json()["run"] is None
    again = post(rq_api, "runs/", start)
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["job_id"] == job_id
    other = post(rq_api, "runs/", {**start, "input": {"items": 3}})
    assert other.status_code == 409 and other.json()["code"] == "RUN_EXISTS"
    assert django_rq.get_queue(queue_name).get_job_ids() == [job_id]
    assert not Snapshot.objects.exists() and not CALLS
    assert LogEntry.objects.filter(object_id="q-1").count() == 1


def test_resume_enqueues(runs, rq_api, queue_name):
    runs.stale("stale-1")
    calls = dict(CALLS)
    response = post(rq_api, "runs/stale-1/resume/", {})
    assert response.status_code == 202, response.content
    assert response.json()["job_id"] == jobs.job_id_for("stale-1")
    assert dict(CALLS) == calls and Snapshot.objects.get(pk="stale-1").status == "running"


def test_a_turn_is_enqueued(chat_sessions, rq_api, queue_name):
    import django_rq

    chat_sessions.settled("s-1", "hi")
    response = post(rq_api, f"sessions/{NAME}/s-1/turns/", {"input": "later"})
    assert response.status_code == 202, response.content
    job = django_rq.get_queue(queue_name).fetch_job(response.json()["job_id"])
    assert job is not None and job.args == (NAME, "s-1", "later")
    assert Checkpoint.objects.count() == 1

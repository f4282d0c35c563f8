"""``WARLOCK_AI["BACKGROUND"] = "tasks"`` in one process: the API, the commands and the
operations enqueue deliveries on django-tasks-db (real tables, SQLite), the checks refuse a
background that cannot work, and deliveries whose task was lost are pushed again."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.test import Client
from django.utils import timezone

from tests.django.admin_runs import CALLS
from tests.django.admin_sessions import NAME
from tests.users import make_staff_user
from warlock_ai import background, checks, operations, task_queue
from warlock_ai.core.errors import QueueUnavailableError, RunExistsError
from warlock_ai.models import Checkpoint, Delivery, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/warlock/"


@pytest.fixture
def tasks_background(settings):
    settings.WARLOCK_AI = {"BACKGROUND": "tasks"}
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult


@pytest.fixture
def api(tasks_background):
    client = Client()
    client.force_login(make_staff_user("ops", "add_snapshot", "resume_snapshot", "add_checkpoint"))
    return client


def post(client, path, body):
    return client.post(API + path, json.dumps(body), content_type="application/json")


def test_the_api_starts_resumes_and_sends_turns_as_tasks(
    runs, chat_sessions, api, tasks_background
):
    assert operations.run_placement() == operations.QUEUE
    start = {"flow": "orders", "input": {"items": 2}, "run_id": "q-1"}
    first = post(api, "runs/", start)
    assert first.status_code == 202, first.content
    assert first.json()["job_id"] == "warlock-run-q-1"
    again = post(api, "runs/", start)
    assert again.status_code == 200 and again.json()["created"] is False
    other = post(api, "runs/", {**start, "input": {"items": 3}})
    assert other.status_code == 409 and other.json()["code"] == "RUN_EXISTS"

    assert not CALLS  # the start ran nothing here
    runs.stale("stale-1")
    calls = dict(CALLS)
    resumed = post(api, "runs/stale-1/resume/", {})
    assert resumed.status_code == 202, resumed.content
    assert resumed.json()["job_id"] == "warlock-run-stale-1"

    chat_sessions.settled("s-1", "hi")
    turn = post(api, f"sessions/{NAME}/s-1/turns/", {"input": "later"})
    assert turn.status_code == 202, turn.content

    deliveries = {d.key: d for d in Delivery.objects.all()}
    assert deliveries["warlock-run-q-1"].arguments == {
        "flow": "workflow:orders",
        "input": {"items": 2},
        "run_id": "q-1",
    }
    assert deliveries["warlock-run-stale-1"].task == "resume"
    assert deliveries[turn.json()["job_id"]].arguments["input"] == "later"
    results = tasks_background.objects.order_by("enqueued_at")
    assert [r.args_kwargs["args"] for r in results] == [[key] for key in deliveries]
    assert {r.queue_name for r in results} == {"default"}
    # Nothing ran in the requests.
    assert dict(CALLS) == calls and not Snapshot.objects.filter(pk="q-1").exists()
    assert Snapshot.objects.get(pk="stale-1").status == "running"
    assert Checkpoint.objects.count() == 1


def test_the_admin_resumes_and_force_resumes_through_tasks(runs, tasks_background):
    runs.stale()
    client = Client()
    client.force_login(
        make_staff_user("ops", "view_snapshot", "resume_snapshot", "force_resume_snapshot",
                        "discard_snapshot")
    )  # fmt: skip
    calls = dict(CALLS)
    listing = "/admin/warlock_ai/snapshot/"
    response = client.post(f"{listing}stale-1/actions/resume/", {"post": "yes"}, follow=True)
    assert [str(m) for m in response.context["messages"]] == [
        'Resume: run "stale-1" enqueued as job warlock-run-stale-1: a worker resumes it'
    ]
    page = client.get(f"{listing}stale-1/change/").content.decode()
    assert "manage.py resume_run" not in page  # a background is configured: no command
    assert dict(CALLS) == calls  # nothing ran in the request
    runs.drifted()
    calls = dict(CALLS)
    client.post(f"{listing}drift-1/actions/force-resume/", {"post": "yes"})
    assert Delivery.objects.get(key="warlock-run-drift-1").arguments == {
        "run_id": "drift-1",
        "force": True,
    }
    assert dict(CALLS) == calls
    assert tasks_background.objects.count() == 2


def test_commands_enqueue_on_the_configured_queue(tasks_background, runs):
    out = StringIO()
    call_command("execute_run", "orders", "--run-id", "c-1", "--enqueue", "--queue", "other",
                 "--json", stdout=out)  # fmt: skip
    document = json.loads(out.getvalue())
    assert document == {
        "run_id": "c-1",
        "job_id": "warlock-run-c-1",
        "job_status": "waiting",
        "queue": "other",
    }
    assert tasks_background.objects.get().queue_name == "other"
    with pytest.raises(CommandError, match='unknown tasks queue "nowhere"'):
        call_command("execute_run", "orders", "--enqueue", "--queue", "nowhere")


def test_a_delivery_is_pushed_when_the_transaction_commits(tasks_background, runs):
    with transaction.atomic():
        background.enqueue_execute("orders", {"items": 1}, "t-1")
        assert not tasks_background.objects.exists()  # not before the commit
    assert tasks_background.objects.count() == 1
    assert Delivery.objects.get().result_id == str(tasks_background.objects.get().id)
    with pytest.raises(RuntimeError), transaction.atomic():
        background.enqueue_execute("orders", {"items": 1}, "t-2")
        raise RuntimeError("rolled back")
    assert not Delivery.objects.filter(key="warlock-run-t-2").exists()
    assert tasks_background.objects.count() == 1


def test_lost_tasks_are_pushed_again(tasks_background, runs):
    lost = background.enqueue_execute("orders", {"items": 1}, "l-1")
    tasks_background.objects.filter(id=lost.result_id).update(status="FAILED")
    never = background.enqueue_execute("orders", {"items": 1}, "l-2")
    long_ago = timezone.now() - timedelta(seconds=task_queue.PUSH_GRACE_SECONDS + 1)
    Delivery.objects.filter(key=never.key).update(result_id="", enqueued_at=long_ago)
    waiting = background.enqueue_execute("orders", {"items": 1}, "l-3")

    assert sorted(background.requeue_abandoned()) == [
        ("l-1", "requeued: its task ended (FAILED) without running it"),
        ("l-2", "requeued: its task was never pushed"),
    ]
    rows = {d.key: d for d in Delivery.objects.all()}
    assert rows[lost.key].result_id not in ("", lost.result_id)
    assert rows[never.key].result_id != ""
    assert rows[waiting.key].result_id == waiting.result_id  # live: left alone
    # l-2's first task is still there (its push was only made to look lost): whichever runs
    # second finds the delivery finished and runs nothing.
    assert tasks_background.objects.filter(status="READY").count() == 4
    assert background.requeue_abandoned() == []


def test_a_push_that_fails_leaves_no_delivery(settings, tasks_background, runs):
    """The task could not be pushed (here: a queue the backend does not have): the error is
    raised, one line, and no delivery is left looking enqueued."""
    settings.WARLOCK_AI = {"BACKGROUND": "tasks", "TASKS_QUEUE": "nowhere"}
    assert not background.configured()  # so the admin and the API offer the command instead
    with pytest.raises(Exception, match="nowhere") as raised:
        background.enqueue_execute("orders", {"items": 1}, "f-1")
    assert "\n" not in str(raised.value)
    assert not Delivery.objects.exists() and not tasks_background.objects.exists()
    with pytest.raises(QueueUnavailableError, match='could not enqueue run "f-1" on the tasks'):
        operations.start_run("orders", {"items": 1}, "f-1", enqueue=True)
    assert not Delivery.objects.exists()


def test_one_delivery_that_cannot_be_put_back_does_not_stop_the_others(
    settings, tasks_background, runs
):
    gone = background.enqueue_execute("orders", {"items": 1}, "g-1")
    lost = background.enqueue_execute("orders", {"items": 1}, "g-2")
    tasks_background.objects.update(status="FAILED")  # both tasks ended without running
    Delivery.objects.filter(key=gone.key).update(backend="removed", queue="old")
    settings.TASKS = {
        **settings.TASKS,
        "default": {**settings.TASKS["default"], "QUEUES": ["default", "other", "old"]},
    }
    Delivery.objects.filter(key=lost.key).update(queue="old")  # a queue kept
    outcomes = dict(background.requeue_abandoned())
    assert outcomes == {
        "g-1": 'requeued: its tasks backend "removed" is not configured any more',
        "g-2": "requeued: its task ended (FAILED) without running it",
    }
    rows = {d.key: d for d in Delivery.objects.all()}
    assert (rows[gone.key].backend, rows[gone.key].queue) == ("default", "default")
    assert rows[lost.key].queue == "old"
    assert tasks_background.objects.filter(status="READY").count() == 2


def test_the_immediate_backend_runs_the_run_inside_enqueue(settings, runs):
    """Any tasks backend takes warlock_ai's tasks: Django's ImmediateBackend runs the task
    (claim, body, settle) inside ``enqueue``."""
    settings.WARLOCK_AI = {"BACKGROUND": "tasks", "TASKS_BACKEND": "immediate"}
    delivery = background.enqueue_execute("orders", {"items": 2}, "i-1")
    assert Snapshot.objects.get(pk="i-1").status == "completed"
    row = Delivery.objects.get(key=delivery.key)
    assert (row.state, row.attempts, row.backend) == ("finished", 1, "immediate")
    assert row.outcome == {"run_id": "i-1", "status": "completed", "outcome": "ran"}
    # Enqueued again: the run is stored, so it is refused as with rq (resume it instead).
    with pytest.raises(RunExistsError, match='run "i-1" already exists'):
        background.enqueue_execute("orders", {"items": 2}, "i-1")


def test_deliveries_in_the_admin_are_read_only(tasks_background, runs):
    delivery = background.enqueue_execute("orders", {"items": 2}, "a-1")
    client = Client()
    client.force_login(make_staff_user("viewer", "view_delivery"))
    listed = client.get("/admin/warlock_ai/delivery/")
    assert listed.status_code == 200 and delivery.key in listed.content.decode()
    page = client.get(f"/admin/warlock_ai/delivery/{delivery.key}/change/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "waiting" in text and "&quot;items&quot;: 2" in text
    assert 'name="_save"' not in text  # nothing to change
    assert client.get("/admin/warlock_ai/delivery/add/").status_code == 403
    deleted = client.post(f"/admin/warlock_ai/delivery/{delivery.key}/delete/", {"post": "yes"})
    assert deleted.status_code == 403 and Delivery.objects.filter(key=delivery.key).exists()


def test_prune_runs_removes_settled_deliveries(settings, runs):
    settings.WARLOCK_AI = {"BACKGROUND": "tasks", "TASKS_BACKEND": "immediate"}
    background.enqueue_execute("orders", {"items": 2}, "p-1")
    settings.WARLOCK_AI = {"BACKGROUND": "tasks"}  # the database backend: it waits
    background.enqueue_execute("orders", {"items": 2}, "p-2")
    assert operations.prune_runs(older_than=timedelta(seconds=0)) == 1
    assert list(Delivery.objects.values_list("key", flat=True)) == ["warlock-run-p-2"]


def test_checks_refuse_a_background_that_cannot_work(settings):
    settings.WARLOCK_AI = {"BACKGROUND": "celery"}
    [error] = checks.check_background()
    assert error.id == "warlock_ai.E004" and "celery" in error.msg
    settings.WARLOCK_AI = {"BACKGROUND": "tasks", "TASKS_QUEUE": "nowhere"}
    [error] = checks.check_background()
    assert 'unknown tasks queue "nowhere"' in error.msg
    settings.WARLOCK_AI = {"BACKGROUND": "tasks", "TASKS_BACKEND": "missing"}
    [error] = checks.check_background()
    assert '"missing"' in error.msg
    assert not background.configured()
    settings.WARLOCK_AI = {"BACKGROUND": "tasks"}
    assert checks.check_background() == [] and background.configured()
    settings.WARLOCK_AI = {}
    assert background.kind() is None  # no django-rq configured here: nothing in the background

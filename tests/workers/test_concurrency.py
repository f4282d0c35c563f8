"""Concurrency limits (``warlock_ai.concurrency``) in one process, on the test database: the
setting and its check, slots taken up to the limit, waiting then refusing, slots of dead or
vanished holders freed, a run counted once however often it is delivered, and the job
bodies putting a job back rather than failing it. Across real worker processes:
``test_concurrency_workers.py``."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from warlock_ai import checks, concurrency, run_jobs
from warlock_ai.core.errors import ConcurrencyLimitError
from warlock_ai.core.runs.leases import local_owner_prefix
from warlock_ai.models import ConcurrencySlot, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)

LIMITED = {"CONCURRENCY": {"FLOWS": {"orders": 2}, "QUEUES": {"bulk": 1}}}


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_limits_name_the_scopes_a_run_is_under(settings):
    settings.WARLOCK_AI = LIMITED
    assert concurrency.limits("orders", None) == [("flow:orders", 2)]
    assert concurrency.limits("orders", "bulk") == [("flow:orders", 2), ("queue:bulk", 1)]
    assert concurrency.limits("other", "default") == []


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ([1], 'WARLOCK_AI["CONCURRENCY"] must be {"FLOWS": {name: n}, "QUEUES": {name: n}}, '
         "got [1]"),
        ({"FLOW": {}}, 'WARLOCK_AI["CONCURRENCY"] must be {"FLOWS": {name: n}, "QUEUES": '
         "{name: n}}, got {'FLOW': {}}"),
        ({"FLOWS": ["orders"]}, 'WARLOCK_AI["CONCURRENCY"]["FLOWS"] must be a dict of names to '
         "limits, got ['orders']"),
        ({"QUEUES": {"bulk": 0}}, 'WARLOCK_AI["CONCURRENCY"]["QUEUES"]["bulk"] must be an '
         "integer of 1 or more, got 0"),
        ({"FLOWS": {"orders": "3"}}, 'WARLOCK_AI["CONCURRENCY"]["FLOWS"]["orders"] must be an '
         "integer of 1 or more, got '3'"),
    ],
)  # fmt: skip
def test_a_bad_setting_is_one_line_at_check_time_and_at_run_time(settings, setting, message):
    settings.WARLOCK_AI = {"CONCURRENCY": setting}
    [error] = checks.check_concurrency()
    assert (error.id, error.msg) == ("warlock_ai.E011", message)
    with pytest.raises(Exception, match="^" + message.replace("[", r"\[").replace("{", r"\{")):
        concurrency.limits("orders", None)


def test_no_limit_takes_no_slot(settings):
    settings.WARLOCK_AI = {}
    with concurrency.slot("orders", "r-1"):
        assert not ConcurrencySlot.objects.exists()


def test_slots_up_to_the_limit_then_a_wait_then_a_one_line_refusal(settings):
    settings.WARLOCK_AI = {**LIMITED, "CONCURRENCY_WAIT_SECONDS": 0.3}
    with concurrency.slot("orders", "r-1"), concurrency.slot("orders", "r-2"):
        assert sorted(ConcurrencySlot.objects.values_list("scope", "holder")) == [
            ("flow:orders", "r-1"),
            ("flow:orders", "r-2"),
        ]
        started = time.monotonic()
        with pytest.raises(ConcurrencyLimitError) as refused, concurrency.slot("orders", "r-3"):
            pytest.fail("a third run of orders got a slot")
        assert time.monotonic() - started >= 0.3
        error = refused.value
        assert (error.code, error.scope, error.limit) == ("CONCURRENCY_LIMIT", "flow:orders", 2)
        assert error.message.startswith("flow:orders has its 2 run(s) at once: run 'r-3' waited ")
        assert error.message.endswith(" s for a slot; its job goes back on its queue")
    assert not ConcurrencySlot.objects.exists()  # both freed on the way out
    with concurrency.slot("orders", "r-3"):
        assert list(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["r-3"]


def test_a_waiting_run_takes_the_slot_a_finishing_run_frees(settings):
    settings.WARLOCK_AI = {"CONCURRENCY": {"FLOWS": {"orders": 1}}, "CONCURRENCY_WAIT_SECONDS": 5}
    release = threading.Event()

    def hold() -> None:
        with concurrency.slot("orders", "first"):
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    while not ConcurrencySlot.objects.filter(holder="first").exists():
        time.sleep(0.01)
    threading.Timer(0.4, release.set).start()
    started = time.monotonic()
    with concurrency.slot("orders", "second"):
        waited = time.monotonic() - started
        assert list(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["second"]
    holder.join(5)
    assert 0.3 < waited < 4


def test_every_limit_or_none(settings):
    """A run under two limits takes both slots or neither: the queue's being full, the
    flow's slot is not kept either."""
    settings.WARLOCK_AI = {**LIMITED, "CONCURRENCY_WAIT_SECONDS": 0.1}
    concurrency.current_queue.set("bulk")
    try:
        with concurrency.slot("orders", "r-1"):
            refused = pytest.raises(ConcurrencyLimitError, match=r"^queue:bulk has its 1 run")
            with refused, concurrency.slot("orders", "r-2"):
                pass
            assert list(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["r-1"] * 2
    finally:
        concurrency.current_queue.set(None)


def test_slots_of_dead_or_vanished_holders_are_freed(settings):
    settings.WARLOCK_AI = {**LIMITED, "CONCURRENCY_WAIT_SECONDS": 0.1}
    later = timezone.now() + timedelta(minutes=5)
    ConcurrencySlot.objects.create(  # a process of this host that died
        scope="flow:orders", holder="dead-1", owner=f"{local_owner_prefix()}{dead_pid()}:x",
        expires_at=later,
    )  # fmt: skip
    ConcurrencySlot.objects.create(  # elsewhere, not renewed for a lease
        scope="flow:orders", holder="gone-1", owner="elsewhere:1:x",
        expires_at=timezone.now() - timedelta(seconds=1),
    )  # fmt: skip
    with concurrency.slot("orders", "r-1"), concurrency.slot("orders", "r-2"):
        assert sorted(ConcurrencySlot.objects.values_list("holder", flat=True)) == ["r-1", "r-2"]


def test_a_live_slot_elsewhere_counts_until_it_expires(settings):
    settings.WARLOCK_AI = {**LIMITED, "CONCURRENCY_WAIT_SECONDS": 0.1}
    ConcurrencySlot.objects.create(
        scope="flow:orders", holder="far-1", owner="elsewhere:1:x",
        expires_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    refused = pytest.raises(ConcurrencyLimitError)
    with concurrency.slot("orders", "r-1"), refused, concurrency.slot("orders", "r-2"):
        pytest.fail("a second run of orders got a slot")


def test_a_run_is_counted_once_however_it_is_delivered(settings):
    """A start that turns into a resume (execute_job, then _resume inside it) counts its run
    once, and the inner block frees only its own row."""
    settings.WARLOCK_AI = {"CONCURRENCY": {"FLOWS": {"orders": 1}}, "CONCURRENCY_WAIT_SECONDS": 0.1}
    with concurrency.slot("orders", "r-1"):
        with concurrency.slot("orders", "r-1"):
            assert ConcurrencySlot.objects.count() == 2  # a row each, one run
        assert ConcurrencySlot.objects.count() == 1  # the outer one still holds it
    assert not ConcurrencySlot.objects.exists()


def test_two_deliveries_of_one_run_hold_a_row_each_and_count_once(settings):
    """A run redelivered while its first delivery (here: on another host) still holds a slot:
    the second takes a row of its own, the run still counts once, and when the first
    delivery's row goes (freed, or expired), the second still holds the run's slot."""
    settings.WARLOCK_AI = {"CONCURRENCY": {"FLOWS": {"orders": 1}}, "CONCURRENCY_WAIT_SECONDS": 0}
    first = ConcurrencySlot.objects.create(
        scope="flow:orders", holder="r-1", owner="elsewhere:1:x",
        expires_at=timezone.now() + timedelta(minutes=5),
    )  # fmt: skip
    with concurrency.slot("orders", "r-1"):
        assert sorted(ConcurrencySlot.objects.values_list("owner", flat=True))[0] == "elsewhere:1:x"
        assert ConcurrencySlot.objects.filter(holder="r-1").count() == 2
        first.delete()  # the first delivery ends (or its slot expires and a taker frees it)
        refused = pytest.raises(ConcurrencyLimitError)
        with refused, concurrency.slot("orders", "r-2"):
            pytest.fail("r-1 still runs: no slot for r-2")
    assert not ConcurrencySlot.objects.exists()


def test_a_slot_is_renewed_while_its_run_runs(settings):
    settings.WARLOCK_AI = {**LIMITED, "LEASE_SECONDS": 0.6}
    with concurrency.slot("orders", "r-1"):
        first = ConcurrencySlot.objects.get().expires_at
        time.sleep(0.5)
        assert ConcurrencySlot.objects.get().expires_at > first


def test_an_rq_job_at_the_limit_goes_back_on_its_queue(settings, runs):
    """The job body (rq's) returns ``Retry`` instead of failing: the run is not started."""
    from rq import Retry

    settings.WARLOCK_AI = {"CONCURRENCY": {"FLOWS": {"orders": 1}}, "CONCURRENCY_WAIT_SECONDS": 0}
    with concurrency.slot("orders", "someone-else"):
        deferred = run_jobs.execute_job("orders", {"items": 2}, "c-1")
        assert isinstance(deferred, Retry) and deferred.max == run_jobs.DEFERRALS
        assert not Snapshot.objects.filter(pk="c-1").exists()
        runs.stale("stale-1")
        assert isinstance(run_jobs.resume_job("stale-1"), Retry)
        assert Snapshot.objects.get(pk="stale-1").status == "running"
    assert run_jobs.execute_job("orders", {"items": 2}, "c-1")["status"] == "completed"
    assert not ConcurrencySlot.objects.exists()


def test_a_task_at_the_limit_is_pushed_again_without_using_an_attempt(settings, runs):
    from django_tasks_db.models import DBTaskResult

    from warlock_ai import background
    from warlock_ai.models import Delivery

    settings.WARLOCK_AI = {
        "BACKGROUND": "tasks",
        "CONCURRENCY": {"FLOWS": {"orders": 1}},
        "CONCURRENCY_WAIT_SECONDS": 0,
    }
    delivery = background.enqueue_execute("orders", {"items": 2}, "t-1")
    [task] = DBTaskResult.objects.all()
    with concurrency.slot("orders", "someone-else"):
        from warlock_ai.task_queue import deliver_task

        context = type("Context", (), {"task_result": task})()
        outcome = deliver_task.func(context, delivery.key)
    assert outcome == {"key": delivery.key, "outcome": "pushed again: flow:orders was at its limit"}
    row = Delivery.objects.get(pk=delivery.key)
    assert (row.state, row.attempts, row.notes["deferred"]) == ("waiting", 0, 1)
    assert row.result_id != str(task.id)  # a new task carries it
    assert not Snapshot.objects.filter(pk="t-1").exists()


def test_the_slots_in_the_admin_are_read_only(settings):
    from django.test import Client

    from tests.users import make_staff_user

    settings.WARLOCK_AI = LIMITED
    client = Client()
    client.force_login(make_staff_user("viewer", "view_concurrencyslot"))
    with concurrency.slot("orders", "r-admin"):
        page = client.get("/admin/warlock_ai/concurrencyslot/")
        assert page.status_code == 200
        assert b"r-admin" in page.content and b"flow:orders" in page.content
        slot = ConcurrencySlot.objects.get()
        detail = client.get(f"/admin/warlock_ai/concurrencyslot/{slot.pk}/change/")
        assert detail.status_code == 200 and b"Save" not in detail.content
    assert client.get("/admin/warlock_ai/concurrencyslot/add/").status_code == 403

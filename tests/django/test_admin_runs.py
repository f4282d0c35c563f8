"""The runs admin through Django's test client: list, filters, detail, the five actions,
permissions, LogEntry, and tampered POSTs. Runs are made by the real engine (admin_runs.py)."""

from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, DELETION, LogEntry
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests.django.admin_runs import CALLS, orders
from tests.owners import dead_owner
from tests.users import make_staff_user
from warlock_ai import operations
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

LIST = "/admin/warlock_ai/snapshot/"
ALL_ACTIONS = (
    "resume_snapshot",
    "force_resume_snapshot",
    "discard_snapshot",
    "cancel_snapshot",
    "migrate_snapshot",
)


def detail(run_id):
    return f"{LIST}{run_id}/change/"


def action(run_id, name):
    return f"{LIST}{run_id}/actions/{name}/"


def client_for(*codenames, username="ops"):
    client = Client()
    client.force_login(make_staff_user(username, "view_snapshot", *codenames))
    return client


@pytest.fixture
def ops():
    """A staff user with every run permission (not a superuser)."""
    return client_for(*ALL_ACTIONS)


def text(response):
    return html.unescape(response.content.decode())


def messages_of(response):
    return [str(m) for m in response.context["messages"]] if response.context else []


def row(run_id):
    return Snapshot.objects.filter(pk=run_id).first()


def logs(run_id):
    return list(LogEntry.objects.filter(object_id=run_id).order_by("pk"))


# The list.


def test_list_shows_flow_status_next_step_age_lease_and_definition(runs, ops):
    runs.completed()
    runs.failed()
    runs.interrupted()
    runs.stale()
    page = text(ops.get(LIST))
    for expected in ("done-1", "failed-1", "live-1", "stale-1", "orders v1", "workflow"):
        assert expected in page
    assert 'class="warlock-status warlock-failed"' in page
    assert 'class="warlock-status warlock-running"' in page
    assert "warlock-lease-live" in page and "warlock-lease-expired" in page
    assert "minutes left" in page and "3\xa0minutes ago" in page
    # Every run matches the registered definition.
    assert page.count('warlock-current">current<') == 4
    assert "extract" in page  # the next step of the interrupted runs


def test_drift_flag_and_unregistered_flow(runs, ops):
    runs.stale("old-1")
    runs.drifted("drift-1")  # registers version 2: old-1 is drifted too
    runs.completed("new-1")  # written by version 2
    Snapshot.objects.filter(pk="new-1").update(name="retired-flow")
    page = text(ops.get(LIST))
    assert page.count('warlock-drifted">drifted<') == 2
    assert ">not registered<" in page


def test_list_query_count_does_not_grow_with_rows(runs, ops):
    template = runs.completed()

    def count_queries():
        with CaptureQueriesContext(connection) as queries:
            assert ops.get(LIST).status_code == 200
        return len(queries)

    small = count_queries()
    clone(template, 80)
    assert count_queries() == small


def test_list_does_not_fetch_the_json_columns(runs, ops):
    runs.completed()
    with CaptureQueriesContext(connection) as queries:
        ops.get(LIST)
    row_query = next(q["sql"] for q in queries if '"warlock_ai_snapshot"."kind"' in q["sql"])
    for column in ("input", "state", "steps", "error", "fingerprint"):
        assert f'"warlock_ai_snapshot"."{column}"' not in row_query


def clone(template, n, **changes):
    fields = {f.attname: getattr(template, f.attname) for f in Snapshot._meta.concrete_fields}
    rows = [
        Snapshot(**{**fields, "run_id": f"{template.run_id}-c{i}", **changes}) for i in range(n)
    ]
    Snapshot.objects.bulk_create(rows)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=failed", {"failed-1"}),
        ("status__exact=running", {"live-1", "stale-1", "drift-1"}),
        ("kind__exact=workflow", {"done-1", "failed-1", "live-1", "stale-1", "drift-1"}),
        ("flow=orders", {"done-1", "failed-1", "live-1", "stale-1", "drift-1"}),
        ("definition=drifted", {"done-1", "failed-1", "live-1", "stale-1", "drift-1"}),
        ("definition=current", set()),
        ("lease=stale", {"stale-1", "drift-1"}),
        ("lease=live", {"live-1"}),
        ("q=stale-1", {"stale-1"}),
        ("q=d", {"done-1", "drift-1"}),
    ],
)
def test_filters_and_search(runs, ops, query, expected):
    runs.completed()
    runs.failed()
    runs.interrupted()
    runs.drifted()
    runs.stale()  # registered after the drift: orders v1 again, so drift-1 stays drifted
    registry.register(orders("2"), replace=True)
    response = ops.get(f"{LIST}?{query}")
    assert response.status_code == 200
    shown = {r.run_id for r in response.context["cl"].result_list}
    assert shown == expected


def test_the_stale_filter_and_drain_runs_agree_on_a_dead_holder(runs, ops):
    """One lease rule: a run whose holder died on this host is stale before its lease
    expires, for the admin's lease filter and for drain_runs alike."""
    runs.completed()
    runs.interrupted()  # live-1: held by this process, alive
    runs.stale()  # stale-1: its lease expired
    runs.interrupted("dead-1")
    Snapshot.objects.filter(pk="dead-1").update(
        lease_owner=dead_owner(),
        lease_expires_at=timezone.now() + timedelta(minutes=5),
        input={"interrupt": False},  # resumable: its worker died, the cause did not stay
    )
    shown = {
        lease: {r.run_id for r in ops.get(f"{LIST}?lease={lease}").context["cl"].result_list}
        for lease in ("stale", "live")
    }
    assert shown == {"stale": {"stale-1", "dead-1"}, "live": {"live-1"}}
    assert set(operations.stale_runs()) == shown["stale"]
    assert set(Snapshot.objects.stale().values_list("pk", flat=True)) == shown["stale"]
    assert "warlock-lease-dead" in text(ops.get(LIST))
    assert set(dict(operations.drain_runs())) == shown["stale"]
    assert {r.run_id for r in ops.get(f"{LIST}?lease=stale").context["cl"].result_list} == set()


def test_unregistered_filter(runs, ops):
    runs.completed()
    clone(row("done-1"), 2, name="retired-flow")
    shown = {r.run_id for r in ops.get(f"{LIST}?definition=unregistered").context["cl"].result_list}
    assert shown == {"done-1-c0", "done-1-c1"}


def test_date_hierarchy_on_saved_time(runs, ops):
    runs.completed()
    Snapshot.objects.filter(pk="done-1").update(saved_at=timezone.now() - timedelta(days=400))
    runs.completed("done-2")
    year = (timezone.now() - timedelta(days=400)).year
    shown = ops.get(f"{LIST}?saved_at__year={year}").context["cl"].result_list
    assert "done-1" in {r.run_id for r in shown}
    assert ops.get(LIST).context["cl"].date_hierarchy == "saved_at"


# The detail page.


def test_failed_run_shows_error_and_timeline(runs, ops):
    runs.failed()
    page = text(ops.get(detail("failed-1")))
    assert "vendor feed row 17 has no price" in page
    assert "STEP_FAILED" in page
    steps = page[page.index("warlock-timeline") :]
    assert steps.index(">fetch<") < steps.index(">extract<")  # in the order they started
    assert "warlock-status warlock-completed" in page and "warlock-status warlock-failed" in page
    assert "<details open><summary>State</summary>" in page
    assert '"items": 3' in page  # state as indented JSON


def test_completed_run_timeline_nests_parallel_children(runs, ops):
    runs.completed()
    page = text(ops.get(detail("done-1")))
    for name in ("fetch", "extract", "notify", "email", "slack", "save"):
        assert f">{name}<" in page or f"↳ {name}<" in page
    assert "↳ email" in page and "↳ slack" in page


def test_drifted_run_shows_what_changed(runs, ops):
    runs.drifted()
    page = text(ops.get(detail("drift-1")))
    assert "started by a different definition of orders" in page
    assert 'step "extract" renamed to "parse"' in page
    assert "version changed from 1 to 2" in page


def test_unregistered_flow_says_so(runs, ops):
    runs.completed()
    Snapshot.objects.filter(pk="done-1").update(name="retired-flow")
    page = text(ops.get(detail("done-1")))
    assert "No workflow named “retired-flow” is registered" in page


def test_state_is_escaped(runs, ops):
    runs.completed()
    Snapshot.objects.filter(pk="done-1").update(state={"note": "<script>alert(1)</script>"})
    raw = ops.get(detail("done-1")).content.decode()
    assert "<script>alert(1)</script>" not in raw
    assert "&lt;script&gt;" in raw


def test_live_lease_disables_resume_and_discard(runs, ops):
    live = runs.interrupted()
    page = text(ops.get(detail("live-1")))
    assert "A live worker is running this run" in page
    assert live.lease_owner in page
    assert f'href="{action("live-1", "discard")}"' not in page
    assert f'action="{action("live-1", "resume")}"' not in page
    assert f'href="{action("live-1", "cancel")}"' in page


def test_buttons_follow_permissions(runs):
    runs.stale()
    client = client_for("resume_snapshot")
    page = text(client.get(detail("stale-1")))
    assert f'action="{action("stale-1", "resume")}"' in page
    for other in ("force-resume", "discard", "cancel", "migrate"):
        assert action("stale-1", other) not in page


# The actions, one run at a time.


def test_resume_runs_in_the_request_when_opted_in_and_logs(runs, ops, admin_runs_inline):
    runs.stale()
    calls_before = dict(CALLS)
    response = ops.post(action("stale-1", "resume"), {"post": "yes"}, follow=True)
    assert any("completed" in m for m in messages_of(response))
    assert row("stale-1").status == "completed"
    assert CALLS["fetch"] == calls_before["fetch"]  # the settled step did not run again
    (entry,) = logs("stale-1")
    assert entry.action_flag == CHANGE and entry.user.username == "ops"
    assert "Resume" in entry.change_message and "completed" in entry.change_message


def test_resume_refuses_a_live_lease_naming_the_holder(runs, ops):
    live = runs.interrupted()
    response = ops.post(action("live-1", "resume"), {"post": "yes"}, follow=True)
    message = messages_of(response)[-1]  # after the first request's own line
    assert live.lease_owner in message
    assert row("live-1").saved_at == live.saved_at
    assert logs("live-1") == []


def test_resume_refuses_a_drifted_run(runs, ops):
    before = runs.drifted()
    response = ops.post(action("drift-1", "resume"), {"post": "yes"}, follow=True)
    assert any("changed since" in m for m in messages_of(response))
    assert row("drift-1").saved_at == before.saved_at


def test_resume_of_a_completed_run_is_refused(runs, ops):
    runs.completed()
    response = ops.post(action("done-1", "resume"), {"post": "yes"}, follow=True)
    assert any("already completed" in m for m in messages_of(response))


def test_force_resume_confirms_then_bypasses_the_drift_check(runs, ops, admin_runs_inline):
    runs.drifted()
    page = text(ops.get(action("drift-1", "force-resume")))
    assert "WITHOUT the drift check" in page
    assert row("drift-1").status == "running"  # GET changes nothing
    ops.post(action("drift-1", "force-resume"), {"post": "yes"})
    assert row("drift-1").status == "completed"
    assert "Force-resume" in logs("drift-1")[0].change_message


def test_discard_confirms_then_deletes_and_logs(runs, ops):
    runs.failed()
    assert "Start again from scratch" in text(ops.get(action("failed-1", "discard")))
    assert row("failed-1") is not None
    response = ops.post(action("failed-1", "discard"), {"post": "yes"})
    assert response.status_code == 302 and response.url == LIST
    assert row("failed-1") is None
    (entry,) = logs("failed-1")
    assert entry.action_flag == DELETION and "discarded" in entry.change_message


def test_discard_and_start_again_from_scratch(runs, ops, admin_runs_inline):
    failed = runs.failed()
    Snapshot.objects.filter(pk="failed-1").update(input={"items": 5})  # the input was fixed
    before = CALLS["fetch"]
    ops.post(action("failed-1", "discard"), {"post": "yes", "restart": "on"})
    again = row("failed-1")
    assert again.status == "completed"
    assert again.started_at > failed.started_at  # a new run under the same id
    assert again.state["items"] == 5 and CALLS["fetch"] == before + 1


def test_discard_refuses_a_live_lease(runs, ops):
    runs.interrupted()
    response = ops.post(action("live-1", "discard"), {"post": "yes"}, follow=True)
    assert any("leased by worker" in m for m in messages_of(response))
    assert row("live-1") is not None


def test_cancel_records_the_request_with_a_reason(runs, ops):
    runs.interrupted()
    ops.post(action("live-1", "cancel"), {"post": "yes", "reason": "bad deploy"})
    cancelled = row("live-1")
    assert cancelled.cancel_requested_at is not None and cancelled.cancel_reason == "bad deploy"
    assert "Cancel" in logs("live-1")[0].change_message


def test_a_second_cancel_says_one_is_pending(runs, ops):
    runs.interrupted()
    ops.post(action("live-1", "cancel"), {"post": "yes", "reason": "bad deploy"})
    response = ops.post(action("live-1", "cancel"), {"post": "yes", "reason": "again"}, follow=True)
    message = messages_of(response)[-1]  # after the first request's own line
    assert message.startswith('Cancel: a cancel is already pending for run "live-1" (requested at ')
    assert "bad deploy" in message
    assert row("live-1").cancel_reason == "bad deploy"  # the first request is kept


def test_cancel_of_a_run_no_live_worker_holds_cancels_it_at_once(runs, ops):
    runs.stale()
    response = ops.post(action("stale-1", "cancel"), {"post": "yes", "reason": "gone"}, follow=True)
    assert messages_of(response) == ['Cancel: run "stale-1" cancelled (no live worker held it)']
    cancelled = row("stale-1")
    assert (cancelled.status, cancelled.lease_owner) == ("cancelled", None)
    assert cancelled.error["reason"] == "gone" and cancelled.cancel_requested_at is None


def test_cancel_refuses_a_run_that_is_not_running(runs, ops):
    runs.failed()
    response = ops.post(action("failed-1", "cancel"), {"post": "yes"}, follow=True)
    assert any("not running" in m for m in messages_of(response))
    assert row("failed-1").cancel_requested_at is None


def test_migrate_form_is_prefilled_then_renames_and_accepts(runs, ops, admin_runs_inline):
    runs.drifted()
    form = ops.get(action("drift-1", "migrate")).context["form"]
    assert form.stored == ["fetch", "extract"]
    assert [form[f"step_{i}"].initial for i in range(2)] == ["fetch", "parse"]
    current = registry.get("workflow", "orders")
    ops.post(
        action("drift-1", "migrate"),
        {"post": "yes", "step_0": "fetch", "step_1": "parse", "accept_signature": "on"},
    )
    migrated = row("drift-1")
    assert migrated.signature == current.signature and migrated.next_step == "parse"
    assert "fetch" in migrated.steps
    assert "extract → parse" in logs("drift-1")[0].change_message
    fetched = CALLS["fetch"]
    ops.post(action("drift-1", "resume"), {"post": "yes"})  # a plain resume now works
    assert row("drift-1").status == "completed" and CALLS["fetch"] == fetched


def test_migrate_refuses_an_unknown_target_step(runs, ops):
    before = runs.drifted()
    response = ops.post(
        action("drift-1", "migrate"),
        {"post": "yes", "step_0": "fetch", "step_1": "no-such-step", "accept_signature": "on"},
    )
    assert response.status_code == 200
    assert "no-such-step is not one of the available choices" in text(response)
    assert row("drift-1").signature == before.signature and logs("drift-1") == []


def test_migrate_refuses_two_steps_mapped_to_one(runs, ops):
    before = runs.drifted()
    response = ops.post(
        action("drift-1", "migrate"), {"post": "yes", "step_0": "parse", "step_1": "parse"}
    )
    assert "both mapped to" in text(response)
    assert row("drift-1").steps == before.steps


def test_migrate_can_drop_a_record(runs, ops):
    runs.drifted()
    ops.post(action("drift-1", "migrate"), {"post": "yes", "step_0": "__drop__", "step_1": "parse"})
    migrated = row("drift-1")
    assert (
        "fetch" not in migrated.steps
        and migrated.signature != registry.get("workflow", "orders").signature
    )  # not accepted: the box was unticked


# In bulk, from the list.


def bulk(client, name, run_ids, **extra):
    data = {"action": name, "_selected_action": run_ids, **extra}
    return client.post(LIST, data, follow=True)


def test_bulk_resume(runs, ops, admin_runs_inline):
    runs.stale("stale-1")
    runs.stale("stale-2")
    response = bulk(ops, "resume_selected", ["stale-1", "stale-2"], index=0)
    assert {row("stale-1").status, row("stale-2").status} == {"completed"}
    assert sum("completed" in m for m in messages_of(response)) == 2
    assert len(logs("stale-1")) == len(logs("stale-2")) == 1


def test_bulk_discard_asks_first(runs, ops):
    runs.failed("f-1")
    runs.failed("f-2")
    page = bulk(ops, "discard_selected", ["f-1", "f-2"], index=0)
    assert "Yes, discard 2 runs" in text(page)
    assert row("f-1") and row("f-2")
    bulk(ops, "discard_selected", ["f-1", "f-2"], post="yes")
    assert row("f-1") is None and row("f-2") is None


def test_bulk_migrate_refuses_mixed_flows(runs, ops):
    runs.drifted()
    runs.completed("done-1")
    Snapshot.objects.filter(pk="done-1").update(name="other")
    response = bulk(ops, "migrate_selected", ["drift-1", "done-1"], index=0)
    assert any("one flow at a time" in m for m in messages_of(response))


def test_bulk_migrate_maps_many_runs(runs, ops):
    runs.stale("a-1")
    runs.drifted("a-2")
    form = bulk(ops, "migrate_selected", ["a-1", "a-2"], index=0).context["form"]
    assert form.stored == ["fetch", "extract"]
    data = {"post": "yes", "step_0": "fetch", "step_1": "parse", "accept_signature": "on"}
    bulk(ops, "migrate_selected", ["a-1", "a-2"], **data)
    assert row("a-1").next_step == row("a-2").next_step == "parse"


# Refused: permissions, unknown runs, CSRF.


@pytest.mark.parametrize("name", ["resume", "force-resume", "discard", "cancel", "migrate"])
def test_each_action_needs_its_permission(runs, name):
    runs.stale()
    others = [p for p in ALL_ACTIONS if not p.startswith(name.replace("-", "_"))]
    client = client_for(*others)
    before = row("stale-1")
    assert client.get(action("stale-1", name)).status_code == 403
    assert client.post(action("stale-1", name), {"post": "yes"}).status_code == 403
    assert row("stale-1").saved_at == before.saved_at and logs("stale-1") == []


def test_bulk_actions_are_offered_only_with_permission(runs):
    runs.stale()
    client = client_for("cancel_snapshot")
    choices = dict(client.get(LIST).context["action_form"].fields["action"].choices)
    assert set(choices) - {""} == {"cancel_selected"}
    response = bulk(client, "discard_selected", ["stale-1"], post="yes")
    assert response.status_code == 200  # Django refuses an action it did not offer
    assert row("stale-1") is not None


def test_a_run_that_does_not_exist(runs, ops):
    response = ops.post(action("no-such-run", "discard"), {"post": "yes"}, follow=True)
    missing = "doesn\N{RIGHT SINGLE QUOTATION MARK}t exist"  # Django's own wording
    assert any("no-such-run" in m and missing in m for m in messages_of(response))
    response = bulk(ops, "resume_selected", ["no-such-run"], index=0)
    assert any("None of the selected runs exist" in m for m in messages_of(response))


def test_an_unknown_action_is_404(runs, ops):
    runs.completed()
    assert ops.post(action("done-1", "explode"), {"post": "yes"}).status_code == 404


def test_missing_csrf_token_is_refused(runs):
    runs.failed()
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff_user("ops", "view_snapshot", *ALL_ACTIONS))
    response = client.post(action("failed-1", "discard"), {"post": "yes"})
    assert response.status_code == 403
    assert row("failed-1") is not None


def test_user_without_view_permission_sees_nothing(runs):
    runs.completed()
    client = Client()
    client.force_login(make_staff_user("nobody"))
    assert client.get(LIST).status_code == 403
    assert client.get(detail("done-1")).status_code == 403


# Supervisor runs: same list, same actions, one row per iteration.


def test_supervisor_runs_in_the_list(supervised, ops):
    supervised.completed()
    supervised.stale()
    page = text(ops.get(LIST))
    assert page.count('<span class="warlock-kind">supervisor</span>') == 2
    assert "iteration 1" in page  # the stale run resumes at iteration 1


def test_supervisor_detail_shows_one_row_per_iteration(supervised, ops):
    supervised.completed()
    page = text(ops.get(detail("sv-done")))
    assert "Iterations" in page
    body = page[page.index("warlock-iterations") :]
    assert body.index(">triage<") < body.index(">billing<")
    assert '"refund": 49' in body and '"category": "billing"' in body
    assert ">end<" in body  # the terminal END iteration


def test_resume_a_supervisor_from_the_admin(supervised, ops, admin_runs_inline):
    supervised.stale()
    ops.post(action("sv-stale", "resume"), {"post": "yes"})
    row_ = row("sv-stale")
    assert (row_.status, row_.iteration) == ("completed", 2)
    assert CALLS["triage"] == 1  # iteration 0 was snapshotted before the crash: not run again
    assert CALLS["billing"] == 2  # iteration 1 was in flight: it ran again
    assert row_.state == {"category": "billing", "refund": 49}


def test_supervisors_cannot_be_migrated(supervised, ops, admin_runs_inline):
    before = supervised.drifted()
    page = text(ops.get(detail("sv-drift")))
    assert 'intent "resolver" added' in page
    assert "a supervisor run has iterations, not step records to rename" in page
    response = ops.post(action("sv-drift", "migrate"), {"post": "yes"}, follow=True)
    assert any("Only workflow runs can be migrated" in m for m in messages_of(response))
    assert row("sv-drift").signature == before.signature
    ops.post(action("sv-drift", "force-resume"), {"post": "yes"})
    assert row("sv-drift").status == "completed"

"""``runs/``: list, filter, start (idempotent), read, discard, resume, cancel, migrate: each
through the operation the admin uses, each acting call logged as the admin logs it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.utils import timezone

from tests.api.conftest import error_of
from tests.django.admin_runs import CALLS
from warlock_ai.models import Snapshot
from warlock_ai.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)

ALL = (
    "view_snapshot",
    "add_snapshot",
    "resume_snapshot",
    "force_resume_snapshot",
    "discard_snapshot",
    "cancel_snapshot",
    "migrate_snapshot",
)


@pytest.fixture
def ops(api_as):
    return api_as(*ALL)


def ids(response):
    return [run["run_id"] for run in response.json()["results"]]


def last_log(run_id):
    return LogEntry.objects.filter(object_id=run_id).latest("action_time")


# --- list ----------------------------------------------------------------------------------


def test_list_is_paginated_newest_saved_first(runs, ops):
    runs.completed("done-1")
    runs.failed("failed-1")
    runs.stale("stale-1")
    page = ops.get("runs/", page_size=2)
    assert page.status_code == 200
    body = page.json()
    assert body["count"] == 3 and body["next"] and body["previous"] is None
    assert ids(page) == ["stale-1", "failed-1"]
    assert ids(ops.get("runs/", page_size=2, page=2)) == ["done-1"]


def test_list_shows_what_the_admin_list_shows(runs, ops):
    runs.stale("stale-1")
    (run,) = ops.get("runs/").json()["results"]
    assert run["flow"] == "orders" and run["kind"] == "workflow" and run["version"] == "1"
    assert run["status"] == "running" and run["next_step"] == "extract"
    assert run["position"] == "extract"
    assert run["lease"]["state"] == "expired" and run["lease"]["blocks"] is False
    assert run["definition"] == "current" and run["unreadable"] is None
    assert run["url"] == "/api/warlock/runs/stale-1/"
    assert "state" not in run and "input" not in run  # the list never carries JSON columns


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, ["failed-1"]),
        ({"status": ["failed", "completed"]}, ["v2-1", "failed-1", "done-1"]),
        ({"stale": "true"}, ["stale-1"]),
        ({"stale": "false"}, ["v2-1", "failed-1", "done-1"]),
        ({"drifted": "true"}, ["stale-1", "failed-1", "done-1"]),
        ({"drifted": "false"}, ["v2-1"]),
        ({"definition": "current"}, ["v2-1"]),
        ({"definition": "unregistered"}, []),
        ({"flow": "orders", "kind": "workflow", "status": "completed"}, ["v2-1", "done-1"]),
        ({"flow": "nothing"}, []),
        ({"kind": "supervisor"}, []),
        ({"search": "v2"}, ["v2-1"]),
        ({"ordering": "run_id"}, ["done-1", "failed-1", "stale-1", "v2-1"]),
    ],
)
def test_list_filters_search_and_ordering(runs, ops, params, expected):
    """Three runs of version 1 of ``orders`` (one stale), then version 2 registered (the
    three are drifted) and one run of it."""
    runs.completed("done-1")
    runs.failed("failed-1")
    runs.drifted("stale-1")
    registry.get("workflow", "orders").execute({"items": 1}, run_id="v2-1")
    response = ops.get("runs/", **params)
    assert response.status_code == 200, response.content
    assert ids(response) == expected


def test_list_filters_by_dates(runs, ops):
    runs.completed("old")
    runs.completed("new")
    past = timezone.now() - timedelta(days=3)
    Snapshot.objects.filter(pk="old").update(started_at=past, saved_at=past)
    cut = (timezone.now() - timedelta(days=1)).isoformat()
    assert ids(ops.get("runs/", started_after=cut)) == ["new"]
    assert ids(ops.get("runs/", saved_before=cut)) == ["old"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "sleeping"}, "status"),
        ({"stale": "perhaps"}, "stale"),
        ({"started_after": "yesterday"}, "started_after"),
        ({"definition": "new"}, "definition"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(runs, ops, params, field):
    body = error_of(ops.get("runs/", **params), 400, "INVALID")
    assert field in body["fields"] and body["message"].startswith(f"{field}: ")


def test_a_page_past_the_end_is_a_404(runs, ops):
    runs.completed()
    error_of(ops.get("runs/", page=9), 404, "NOT_FOUND")


# --- read ----------------------------------------------------------------------------------


def test_detail_has_the_timeline_state_input_attempts_and_lease(runs, ops):
    runs.completed("done-1")
    body = ops.get("runs/done-1/").json()
    assert body["status"] == "completed" and body["input"] == {"items": 2}
    assert body["state"] == {"items": 2, "extracted": True, "saved": True}
    assert set(body["steps"]) >= {"fetch", "extract", "notify", "save"}
    assert body["steps"]["extract"]["status"] == "completed"
    assert len(body["attempts"]) == 1 and body["attempts"][0]["end"] == "completed"
    assert body["error"] is None and body["drift"] is None and body["position"] is None
    assert body["lease"]["state"] == "none" and len(body["signature"]) == 8


def test_detail_of_a_drifted_run_has_both_signatures_and_the_changes(runs, ops):
    runs.drifted("drift-1")
    body = ops.get("runs/drift-1/").json()
    drift = body["drift"]
    assert body["definition"] == "drifted"
    assert drift["saved_signature"] == body["signature"] != drift["current_signature"]
    assert any("parse" in line for line in drift["changes"])


def test_detail_of_a_failed_run_has_its_error(runs, ops):
    runs.failed("failed-1")
    error = ops.get("runs/failed-1/").json()["error"]
    assert "row 17 has no price" in error["message"]


def test_unknown_run_is_a_404(ops, db):
    body = error_of(ops.get("runs/nope/"), 404, "UNKNOWN_RUN")
    assert '"nope"' in body["message"]


def test_run_ids_with_slashes_are_reachable(runs, ops):
    runs.completed("tenant/a/run-1")
    assert ops.get("runs/tenant/a/run-1/").json()["run_id"] == "tenant/a/run-1"
    runs.completed("x/resume")  # GET on an action's path reads the run of that id
    assert ops.get("runs/x/resume/").json()["run_id"] == "x/resume"


# --- start ---------------------------------------------------------------------------------


def test_start_without_a_worker_runs_nothing_and_gives_the_command(runs, ops):
    response = ops.post("runs/", {"flow": "orders", "input": {"items": 1}, "run_id": "r-1"})
    body = error_of(response, 409, "NO_BACKGROUND_WORKER")
    assert body["command"].startswith("python manage.py execute_run workflow:orders --run-id r-1")
    assert not Snapshot.objects.exists() and not CALLS
    assert not LogEntry.objects.exists()


def test_start_inline_runs_the_flow_and_logs_it(runs, ops, admin_runs_inline):
    response = ops.post("runs/", {"flow": "orders", "input": {"items": 4}, "run_id": "r-1"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["ok"] is True and body["job_id"] is None
    assert body["run"]["status"] == "completed"
    assert Snapshot.objects.get(pk="r-1").state["items"] == 4
    entry = last_log("r-1")
    assert entry.action_flag == ADDITION and entry.change_message.startswith("Start: ")


def test_start_generates_a_run_id_when_none_is_given(runs, ops, admin_runs_inline):
    body = ops.post("runs/", {"flow": "orders", "input": {}}).json()
    assert Snapshot.objects.get(pk=body["run_id"]).status == "completed"


def test_the_same_start_twice_starts_one_run(runs, ops, admin_runs_inline):
    start = {"flow": "orders", "input": {"items": 2, "tags": ["a"]}, "run_id": "same"}
    assert ops.post("runs/", start).status_code == 201
    again = ops.post("runs/", {**start, "input": {"tags": ["a"], "items": 2}})
    assert again.status_code == 200 and again.json()["created"] is False
    assert CALLS["fetch"] == 1
    assert LogEntry.objects.filter(object_id="same").count() == 1


@pytest.mark.parametrize(
    "changed",
    [{"input": {"items": 3}}, {"input": {"items": True}}, {"flow": "workflow:orders2"}],
)
def test_another_start_under_a_taken_run_id_is_a_409(runs, ops, admin_runs_inline, changed):
    import warlock_ai as ai

    registry.register(ai.workflow(name="orders2", steps=[ai.step("a", lambda c: None)]))
    try:
        start = {"flow": "orders", "input": {"items": 1}, "run_id": "taken"}
        assert ops.post("runs/", start).status_code == 201
        body = error_of(ops.post("runs/", {**start, **changed}), 409, "RUN_EXISTS")
        assert '"taken"' in body["message"]
    finally:
        registry.unregister("workflow", "orders2")
    assert Snapshot.objects.get(pk="taken").input == {"items": 1}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "flow"),
        ({"flow": "nope"}, "flow"),
        ({"flow": 7}, "flow"),
        ({"flow": "orders", "run_id": ""}, "run_id"),
        ({"flow": "orders", "run_id": "a\nb"}, "run_id"),
        ({"flow": "orders", "run_id": "r" * 300}, "run_id"),
        ({"flow": "orders", "colour": "red"}, "colour"),
    ],
)
def test_a_bad_start_is_a_400_naming_the_field(runs, ops, admin_runs_inline, body, field):
    error = error_of(ops.post("runs/", body), 400, error_code(body, field))
    assert field in error["fields"] and error["message"].startswith(f"{field}: ")
    assert not Snapshot.objects.exists()


def error_code(body, field):
    return "UNKNOWN_FLOW" if body.get("flow") == "nope" else "INVALID"


@pytest.mark.parametrize("raw", ["{", "[1, 2]", '"text"', "null"])
def test_a_body_that_is_not_an_object_is_a_400(runs, ops, raw):
    response = ops.post("runs/", raw=raw)
    assert response.status_code == 400 and response.json()["code"] in ("PARSE_ERROR", "INVALID")


# --- discard -------------------------------------------------------------------------------


def test_discard_deletes_the_run_and_logs_it(runs, ops):
    runs.failed("failed-1")
    assert ops.delete("runs/failed-1/").status_code == 204
    assert not Snapshot.objects.filter(pk="failed-1").exists()
    entry = last_log("failed-1")
    assert entry.action_flag == DELETION and entry.change_message.startswith("Discard: ")


def test_discard_is_refused_while_a_live_worker_holds_the_run(runs, ops):
    runs.interrupted("live-1")
    body = error_of(ops.delete("runs/live-1/"), 409, "LEASE_HELD")
    assert body["run_id"] == "live-1" and body["owner"]
    assert Snapshot.objects.filter(pk="live-1").exists()
    assert not LogEntry.objects.exists()


# --- resume --------------------------------------------------------------------------------


def test_resume_inline_finishes_the_run_without_rerunning_settled_steps(
    runs, ops, admin_runs_inline
):
    runs.stale("stale-1")
    fetched = CALLS["fetch"]
    response = ops.post("runs/stale-1/resume/", {})
    assert response.status_code == 200, response.content
    assert response.json()["run"]["status"] == "completed" and response.json()["ok"] is True
    assert CALLS["fetch"] == fetched
    entry = last_log("stale-1")
    assert entry.action_flag == CHANGE and entry.change_message.startswith("Resume: ")


def test_resume_without_a_worker_gives_the_command(runs, ops):
    runs.stale("stale-1")
    body = error_of(ops.post("runs/stale-1/resume/"), 409, "NO_BACKGROUND_WORKER")
    assert body["command"] == "python manage.py resume_run stale-1"
    assert Snapshot.objects.get(pk="stale-1").status == "running"


def test_resume_of_a_drifted_run_is_a_409_with_both_signatures(runs, ops, admin_runs_inline):
    row = runs.drifted("drift-1")
    body = error_of(ops.post("runs/drift-1/resume/", {}), 409, "WORKFLOW_DRIFT")
    assert body["saved_signature"] == row.signature
    assert body["current_signature"] not in (None, row.signature)
    assert Snapshot.objects.get(pk="drift-1").status == "running"


def test_force_resume_runs_a_drifted_run(runs, ops, admin_runs_inline):
    runs.drifted("drift-1")
    response = ops.post("runs/drift-1/resume/", {"force": True})
    assert response.status_code == 200, response.content
    assert last_log("drift-1").change_message.startswith("Force-resume: ")


def test_resume_of_a_completed_run_is_a_409(runs, ops, admin_runs_inline):
    runs.completed("done-1")
    error_of(ops.post("runs/done-1/resume/", {}), 409, "RUN_COMPLETED")


def test_resume_of_a_run_a_live_worker_holds_is_a_409(runs, ops, admin_runs_inline):
    runs.interrupted("live-1")
    error_of(ops.post("runs/live-1/resume/", {}), 409, "LEASE_HELD")


@pytest.mark.parametrize("force", ["yes", 1, "true", None])
def test_force_must_be_a_boolean(runs, ops, force):
    runs.stale("stale-1")
    body = error_of(ops.post("runs/stale-1/resume/", {"force": force}), 400, "INVALID")
    assert body["message"].startswith("force: ")


# --- cancel --------------------------------------------------------------------------------


def test_cancel_of_an_unheld_run_cancels_it_at_once(runs, ops):
    runs.stale("stale-1")
    response = ops.post("runs/stale-1/cancel/", {"reason": "customer withdrew"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["cancel"]["action"] == "cancelled"
    assert body["cancel"]["reason"] == "customer withdrew"
    assert body["run"]["status"] == "cancelled"
    assert last_log("stale-1").change_message.startswith("Cancel: ")


def test_cancel_of_a_held_run_asks_its_worker(runs, ops):
    runs.interrupted("live-1")
    body = ops.post("runs/live-1/cancel/", {}).json()
    assert body["cancel"]["action"] == "requested" and body["cancel"]["worker"]
    assert Snapshot.objects.get(pk="live-1").cancel_requested_at is not None


def test_cancel_of_a_finished_run_is_a_409(runs, ops):
    runs.completed("done-1")
    error_of(ops.post("runs/done-1/cancel/", {}), 409, "RUN_NOT_RUNNING")


def test_a_reason_must_be_a_string(runs, ops):
    runs.stale("stale-1")
    error_of(ops.post("runs/stale-1/cancel/", {"reason": 7}), 400, "INVALID")


# --- migrate -------------------------------------------------------------------------------


def test_migrate_renames_steps_and_accepts_the_signature(runs, ops, admin_runs_inline):
    runs.drifted("drift-1")
    response = ops.post(
        "runs/drift-1/migrate/", {"rename": {"extract": "parse"}, "accept_signature": True}
    )
    assert response.status_code == 200, response.content
    assert "extract → parse" in response.json()["message"]
    row = Snapshot.objects.get(pk="drift-1")
    assert row.next_step == "parse"
    assert last_log("drift-1").change_message.startswith("Migrate: ")
    assert ops.post("runs/drift-1/resume/", {}).json()["run"]["status"] == "completed"


def test_a_mapping_that_does_not_fit_is_a_400_and_saves_nothing(runs, ops):
    row = runs.drifted("drift-1")
    body = error_of(
        ops.post("runs/drift-1/migrate/", {"rename": {"extract": "nowhere"}}),
        400,
        "MIGRATION_INVALID",
    )
    assert "nowhere" in body["message"]
    assert Snapshot.objects.get(pk="drift-1").saved_at == row.saved_at


@pytest.mark.parametrize(
    "body", [{"rename": ["extract"]}, {"rename": {"extract": 3}}, {"drop": "fetch"}]
)
def test_migrate_bodies_are_read_strictly(runs, ops, body):
    runs.drifted("drift-1")
    error_of(ops.post("runs/drift-1/migrate/", body), 400, "INVALID")


def test_a_supervisor_run_cannot_be_migrated(supervised, ops):
    supervised.stale("sv-stale")
    error_of(ops.post("runs/sv-stale/migrate/", {}), 400, "MIGRATION_INVALID")


def test_an_ordering_that_cannot_be_used_is_a_400_naming_the_allowed_ones(runs, ops):
    runs.completed()
    body = error_of(ops.get("runs/", ordering="flow"), 400, "INVALID")
    assert "saved_at" in body["message"] and "name" in body["message"]
    assert ids(ops.get("runs/", ordering="-name")) == ["done-1"]


def test_the_same_start_of_a_run_that_failed_says_it_failed(runs, ops, admin_runs_inline):
    start = {"flow": "orders", "input": {"fail": True}, "run_id": "bad"}
    first = ops.post("runs/", start).json()
    assert first["created"] is True and first["ok"] is False
    again = ops.post("runs/", start).json()
    assert again["created"] is False and again["ok"] is False
    assert "it is failed" in again["message"]


def test_detail_state_includes_the_keys_stored_apart(api_as):
    from tests.django.test_state_apart import BIG, shown_run

    shown_run()
    body = api_as("view_snapshot").get("runs/shown-1/").json()
    assert body["state"] == {"rows": BIG, "customer": "acme"}

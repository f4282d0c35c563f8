"""Who may call what: nothing is anonymous, each route needs the admin's permission for the
same thing, ``API_PERMISSION_CLASSES`` replaces the defaults, and ``API_QUERYSET`` narrows
every queryset (a tenant sees only its own runs, sessions and cache entries)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from django.test import Client

from tests.api.conftest import API, ApiClient, error_of
from tests.django.admin_sessions import NAME
from tests.users import PASSWORD, make_staff_user
from warlock_ai.models import CacheEntry, Checkpoint, Snapshot

pytestmark = pytest.mark.django_db(transaction=True)

#: Every operation with a body it accepts, and the permission it needs.
ROUTES = [
    ("get", "runs/", None, "view_snapshot"),
    ("post", "runs/", {"flow": "orders", "input": {}}, "add_snapshot"),
    ("get", "runs/stale-1/", None, "view_snapshot"),
    ("delete", "runs/stale-1/", None, "discard_snapshot"),
    ("post", "runs/stale-1/resume/", {}, "resume_snapshot"),
    ("post", "runs/stale-1/resume/", {"force": True}, "force_resume_snapshot"),
    ("post", "runs/stale-1/cancel/", {"reason": "r"}, "cancel_snapshot"),
    ("post", "runs/stale-1/migrate/", {}, "migrate_snapshot"),
    ("get", "sessions/", None, "view_checkpoint"),
    ("get", f"sessions/{NAME}/s-1/turns/", None, "view_checkpoint"),
    ("post", f"sessions/{NAME}/s-1/turns/", {"input": "hello"}, "add_checkpoint"),
    ("get", f"sessions/{NAME}/s-1/", None, "view_checkpoint"),
    ("delete", f"sessions/{NAME}/s-1/", None, "delete_checkpoint"),
    ("post", f"sessions/{NAME}/s-3/resume/", {}, "resume_snapshot"),
    ("post", f"sessions/{NAME}/s-3/resume/", {"force": True}, "force_resume_snapshot"),
    ("get", "cache/stats/", None, "view_cacheentry"),
]
ROUTE_IDS = [f"{m} {p} {perm}" for m, p, _, perm in ROUTES]


def call(client: ApiClient, method: str, path: str, body: Any) -> Any:
    return client.post(path, body) if method == "post" else getattr(client, method)(path)


@pytest.fixture
def seeded(runs, chat_sessions, admin_runs_inline):
    runs.stale("stale-1")
    chat_sessions.settled("s-1", "hi")
    chat_sessions.interrupted("s-3", "hey")
    return runs


@pytest.mark.parametrize(("method", "path", "body", "permission"), ROUTES, ids=ROUTE_IDS)
def test_nothing_is_anonymous(seeded, anonymous, method, path, body, permission):
    before = Snapshot.objects.get(pk="stale-1").saved_at
    error_of(call(anonymous, method, path, body), 403, "NOT_AUTHENTICATED")
    assert Snapshot.objects.get(pk="stale-1").saved_at == before


@pytest.mark.parametrize(("method", "path", "body", "permission"), ROUTES, ids=ROUTE_IDS)
def test_each_route_needs_its_permission(seeded, api_as, method, path, body, permission):
    others = {p for *_, p in ROUTES} - {permission}
    refused = call(api_as(*others), method, path, body)
    error = error_of(refused, 403, "PERMISSION_DENIED")
    assert error["message"].endswith(f"needs the permission warlock_ai.{permission}")
    allowed = call(api_as(permission), method, path, body)
    assert allowed.status_code < 300, (allowed.status_code, allowed.content)


def test_basic_authentication_works_and_bad_credentials_are_refused(seeded):
    make_staff_user("basic", "view_snapshot")
    good = base64.b64encode(f"basic:{PASSWORD}".encode()).decode()
    ok = Client().get(API + "runs/", HTTP_AUTHORIZATION=f"Basic {good}")
    assert ok.status_code == 200 and ok.json()["count"] == 2  # stale-1, the turn of s-3
    bad = base64.b64encode(b"basic:wrong").decode()
    refused = Client().get(API + "runs/", HTTP_AUTHORIZATION=f"Basic {bad}")
    # 403, not 401: DRF's first default authentication (the session) sends no challenge.
    error_of(refused, 403, "AUTHENTICATION_FAILED")


def test_a_session_login_needs_the_csrf_token_to_act(seeded):
    client = Client(enforce_csrf_checks=True)
    client.force_login(make_staff_user("csrf", "cancel_snapshot"))
    response = client.post(API + "runs/stale-1/cancel/", "{}", content_type="application/json")
    error = error_of(response, 403, "PERMISSION_DENIED")
    assert "CSRF" in error["message"]
    assert Snapshot.objects.get(pk="stale-1").status == "running"


def test_api_permission_classes_replace_the_defaults(seeded, api_as, settings):
    settings.WARLOCK_AI = {"API_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"]}
    plain = api_as("view_snapshot")
    error_of(plain.get("runs/"), 403, "PERMISSION_DENIED")
    staff = Client()
    staff.force_login(make_staff_user("staffer"))  # staff, no warlock_ai permission
    assert staff.get(API + "runs/").status_code == 200


# --- the queryset hook ----------------------------------------------------------------------


def tenant_of(request: Any) -> str:
    return request.user.username.split("-")[0]


def narrow_to_tenant(request: Any, queryset: Any) -> Any:
    """The documented example: run ids, session ids and namespaces start with the tenant."""
    tenant = tenant_of(request) + "-"
    if queryset.model is Snapshot:
        return queryset.filter(run_id__startswith=tenant)
    if queryset.model is Checkpoint:
        return queryset.filter(session_id__startswith=tenant)
    return queryset.filter(namespace__startswith=tenant)


@pytest.fixture
def tenants(runs, chat_sessions, settings, admin_runs_inline):
    settings.WARLOCK_AI = {
        **settings.WARLOCK_AI,
        "API_QUERYSET": "tests.api.test_access.narrow_to_tenant",
    }
    for tenant in ("acme", "globex"):
        runs.stale(f"{tenant}-stale")
        runs.completed(f"{tenant}-done")
        chat_sessions.settled(f"{tenant}-chat", "hello")
        CacheEntry.objects.create(namespace=f"{tenant}-cache", key="k", value=1, hits=3)
    clients = {}
    for tenant in ("acme", "globex"):
        user = make_staff_user(f"{tenant}-ops", superuser=True)
        client = Client()
        client.force_login(user)
        clients[tenant] = ApiClient(client)
    return clients


def test_the_hook_narrows_lists(tenants):
    acme = tenants["acme"]
    assert {r["run_id"] for r in acme.get("runs/").json()["results"]} == {
        "acme-stale",
        "acme-done",
    }
    sessions = acme.get("sessions/").json()["results"]
    assert [s["session_id"] for s in sessions] == ["acme-chat"]
    stats = acme.get("cache/stats/").json()
    assert [n["namespace"] for n in stats["namespaces"]] == ["acme-cache"]
    assert stats["entries"] == 1 and stats["hits"] == 3


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "runs/globex-done/", None),
        ("delete", "runs/globex-done/", None),
        ("post", "runs/globex-stale/resume/", {}),
        ("post", "runs/globex-stale/cancel/", {}),
        ("post", "runs/globex-stale/migrate/", {}),
        ("get", f"sessions/{NAME}/globex-chat/turns/", None),
        ("post", f"sessions/{NAME}/globex-chat/turns/", {"input": "sneaky"}),
        ("get", f"sessions/{NAME}/globex-chat/", None),
        ("delete", f"sessions/{NAME}/globex-chat/", None),
        ("post", f"sessions/{NAME}/globex-chat/resume/", {}),
    ],
)
def test_another_tenants_rows_do_not_exist(tenants, method, path, body):
    before = sorted(Snapshot.objects.values_list("run_id", "saved_at", "status"))
    turns = Checkpoint.objects.count()
    response = call(tenants["acme"], method, path, body)
    assert response.status_code == 404, response.content
    assert response.json()["code"] in ("UNKNOWN_RUN", "ORCHESTRATOR_UNKNOWN_SESSION")
    assert sorted(Snapshot.objects.values_list("run_id", "saved_at", "status")) == before
    assert Checkpoint.objects.count() == turns


def test_a_start_reusing_another_tenants_run_id_says_nothing_about_it(tenants):
    response = tenants["acme"].post(
        "runs/", {"flow": "orders", "input": {"items": 2}, "run_id": "globex-done"}
    )
    body = error_of(response, 409, "RUN_EXISTS")
    assert body["message"] == 'run "globex-done" already exists; choose another run_id'


def test_own_rows_still_act(tenants):
    response = tenants["acme"].post("runs/acme-stale/resume/", {})
    assert response.status_code == 200 and response.json()["run"]["status"] == "completed"


def test_a_hook_returning_something_else_is_a_clear_configuration_error(runs, api_as, settings):
    settings.WARLOCK_AI = {"API_QUERYSET": lambda request, queryset: list(queryset)}
    client = api_as("view_snapshot")
    with pytest.raises(Exception, match="must return a queryset of Snapshot, got list"):
        client.get("runs/")

"""schemathesis against the API's live OpenAPI schema: every operation, with the credentials
of a user who may do everything and with none, positive and negative data. No answer may be
a server error or differ from what the schema says (status, content type, body).

The schema is fetched from the running view (``schema/``), the calls go through the
project's real WSGI application to the real database; runs, sessions and cache entries are
seeded so that known ids are there to be found among the generated ones.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import ignored_auth, positive_data_acceptance

from tests.api.conftest import API
from tests.users import PASSWORD, make_staff_user
from warlock_ai.models import CacheEntry

pytestmark = pytest.mark.django_db(transaction=True)

#: Examples per operation and mode (14 operations, positive and negative data).
EXAMPLES = 40


@pytest.fixture
def api_schema(runs, chat_sessions, supervised) -> Any:
    runs.completed("done-1")
    runs.failed("failed-1")
    runs.stale("stale-1")
    runs.interrupted("live-1")
    supervised.completed("sv-done")
    chat_sessions.settled("s-1", "hi")
    chat_sessions.interrupted("s-2", "hello")
    CacheEntry.objects.create(namespace="ai.cache", key="k", value={"a": 1}, hits=2)
    make_staff_user("fuzz", superuser=True)
    client = Client()
    client.login(username="fuzz", password=PASSWORD)
    response = client.get(API + "schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200, response.content
    raw = json.loads(response.content)
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = WSGIHandler()
    return loaded


BASIC = "Basic " + base64.b64encode(f"fuzz:{PASSWORD}".encode()).decode()
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
#: ``ignored_auth`` sends the case's generated (invalid) credentials along with ours and
#: expects a refusal; ours are valid, so it cannot apply here (the anonymous test is what
#: shows no call passes without credentials). ``positive_data_acceptance`` wants every
#: schema-valid request accepted, but a well-formed body can still name a flow that is not
#: registered or a run id with a control character: those are 400s naming the field, by
#: design. Every other check runs: server errors, status codes, content types, headers,
#: response bodies, and invalid data accepted.
EXCLUDED = [ignored_auth, positive_data_acceptance]


def fuzz(api_schema: Any, headers: dict[str, str], check: Any = None) -> list[str]:
    """Every operation of the schema, in both modes; what each call did, for the asserts.

    (schemathesis' own pytest integration, ``from_fixture``, does not run on pytest 9: the
    cases are drawn here with hypothesis directly.)
    """
    seen: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 14  # 10 paths
    for operation in operations:
        for mode in MODES:

            @FUZZ
            @given(case=operation.as_strategy(generation_mode=mode))
            def call(case: Any) -> None:
                response = case.call_and_validate(headers=headers, excluded_checks=EXCLUDED)
                seen.append(f"{case.operation.label} {response.status_code}")
                if check is not None:
                    check(response)

            call()
    return seen


def test_the_api_keeps_to_its_schema_with_credentials(api_schema: Any) -> None:
    seen = fuzz(api_schema, {"Authorization": BASIC})
    assert not [s for s in seen if s.endswith((" 500", " 502", " 503"))]
    assert any(s.startswith("GET /api/warlock/runs/ 200") for s in seen)


def test_the_api_keeps_to_its_schema_without_credentials(api_schema: Any) -> None:
    def refused(response: Any) -> None:
        assert response.status_code in (400, 403, 404), response.text

    seen = fuzz(api_schema, {}, refused)
    assert any(s.endswith(" 403") for s in seen)


SESSION_2 = {"orchestrator": "desk-chat", "session_id": "s-2"}
#: Calls on the seeded runs and sessions, so real answers (a run's detail, each action on
#: each kind of run, a turn run here) are validated against the schema too.
KNOWN = [
    ("GET", "/api/warlock/runs/{run_id}/", {"run_id": run_id}, None)
    for run_id in ("done-1", "failed-1", "stale-1", "live-1", "sv-done", "s-2.unversioned.1")
] + [
    ("POST", "/api/warlock/runs/{run_id}/cancel/", {"run_id": "live-1"}, {"reason": "x"}),
    ("POST", "/api/warlock/runs/{run_id}/cancel/", {"run_id": "done-1"}, {}),
    ("POST", "/api/warlock/runs/{run_id}/migrate/", {"run_id": "failed-1"}, {"drop": ["x"]}),
    ("POST", "/api/warlock/runs/{run_id}/migrate/", {"run_id": "failed-1"}, {}),
    ("POST", "/api/warlock/runs/{run_id}/resume/", {"run_id": "stale-1"}, {}),
    ("POST", "/api/warlock/runs/{run_id}/resume/", {"run_id": "live-1"}, {"force": True}),
    ("POST", "/api/warlock/runs/{run_id}/resume/", {"run_id": "sv-done"}, {}),
    ("DELETE", "/api/warlock/runs/{run_id}/", {"run_id": "failed-1"}, None),
    ("DELETE", "/api/warlock/runs/{run_id}/", {"run_id": "live-1"}, None),
    ("POST", "/api/warlock/runs/", {}, {"flow": "orders", "input": {"items": 1}, "run_id": "n"}),
    ("POST", "/api/warlock/runs/", {}, {"flow": "orders", "input": {"items": 1}, "run_id": "n"}),
    ("POST", "/api/warlock/runs/", {}, {"flow": "orders", "input": {"items": 2}, "run_id": "n"}),
    ("GET", "/api/warlock/sessions/{orchestrator}/{session_id}/turns/", None, None),
    ("POST", "/api/warlock/sessions/{orchestrator}/{session_id}/turns/", None, {"input": "hi"}),
    ("POST", "/api/warlock/sessions/{orchestrator}/{session_id}/turns/", None, {"input": 1}),
    ("GET", "/api/warlock/sessions/{orchestrator}/{session_id}/", None, None),
    ("POST", "/api/warlock/sessions/{orchestrator}/{session_id}/resume/", SESSION_2, {}),
    ("POST", "/api/warlock/sessions/{orchestrator}/{session_id}/resume/", SESSION_2, {}),
    ("GET", "/api/warlock/sessions/{orchestrator}/{session_id}/", SESSION_2, None),
    ("DELETE", "/api/warlock/sessions/{orchestrator}/{session_id}/", SESSION_2, None),
    ("DELETE", "/api/warlock/sessions/{orchestrator}/{session_id}/", SESSION_2, None),
]


@pytest.mark.parametrize("inline", [True, False], ids=["inline", "no-worker"])
def test_answers_about_known_runs_and_sessions_keep_to_the_schema(
    api_schema: Any, settings: Any, inline: bool
) -> None:
    from tests.django.admin_sessions import NAME

    settings.WARLOCK_AI = {"ADMIN_RUNS_INLINE": inline}
    statuses = []
    for method, path, params, body in KNOWN:
        operation = api_schema[path][method]
        parameters = params if params is not None else {"orchestrator": NAME, "session_id": "s-1"}
        case = operation.Case(
            path_parameters=parameters, **({} if body is None else {"body": body})
        )
        response = case.call_and_validate(
            headers={"Authorization": BASIC}, excluded_checks=EXCLUDED
        )
        assert response.status_code < 500, response.text
        statuses.append(response.status_code)
    assert {200, 204, 404, 409} <= set(statuses)
    if inline:
        assert {201, 400} <= set(statuses)

"""The run page shows each attempt of a run (issue 12: "Resumes are recorded"): a run that
crashed and was resumed does not look like a clean run with a gap; ``list_runs --json``
carries the same attempts."""

from __future__ import annotations

import html
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

import warlock_ai as ai
from tests.owners import dead_owner
from tests.users import make_staff_user
from warlock_ai.core.runs.leases import ACQUIRE, LeaseClaim
from warlock_ai.registry import registry

pytestmark = pytest.mark.django_db(transaction=True)

FLOW = "attempts-admin"


@pytest.fixture
def crashed_then_resumed():
    """A run whose first worker died after step one, resumed to the end by another."""
    store = ai.snapshot.db()
    wf = registry.register(
        ai.workflow(
            name=FLOW,
            steps=[ai.step("one", lambda ctx: None), ai.step("two", lambda ctx: None)],
            snapshot_store=store,
        ),
        replace=True,
    )
    wf.execute(run_id="att-seed")
    seed = store.load("att-seed")
    owner = dead_owner()
    crashed = type(seed).from_dict(
        {
            **seed.to_dict(),
            "run_id": "att-1",
            "status": "running",
            "next": "two",
            "steps": {"one": seed.to_dict()["steps"]["one"]},
            "attempts": [{"number": 1, "worker": owner, "started_at": "2026-12-01T10:00:00Z"}],
        }
    )
    store.save(crashed, claim=LeaseClaim(owner, ACQUIRE))
    assert wf.resume("att-1").status == "completed"
    yield owner
    registry.unregister("workflow", FLOW)


def test_the_run_page_lists_each_attempt(crashed_then_resumed):
    client = Client()
    client.force_login(make_staff_user("viewer", "view_snapshot"))
    response = client.get("/admin/warlock_ai/snapshot/att-1/change/")
    assert response.status_code == 200
    page = html.unescape(response.content.decode())
    section = page[page.index("<h2>Attempts</h2>") :]
    section = section[: section.index("</fieldset>")]
    rows = section.split("<tr>")[2:]  # after the header row
    assert len(rows) == 2
    assert crashed_then_resumed in rows[0] and "crashed" in rows[0]
    assert "it never wrote how it ended" in rows[0] and ">start<" in rows[0]
    assert "resumed at <code>two</code>" in rows[1] and "completed" in rows[1]


def test_list_runs_json_carries_the_attempts(crashed_then_resumed):
    out = StringIO()
    call_command("list_runs", "--json", "--flow", FLOW, stdout=out)
    (run,) = [r for r in json.loads(out.getvalue()) if r["run_id"] == "att-1"]
    first, second = run["attempts"]
    assert (first["worker"], first["end"]) == (crashed_then_resumed, "crashed")
    assert (second["number"], second["resumed_at"], second["end"]) == (2, "two", "completed")

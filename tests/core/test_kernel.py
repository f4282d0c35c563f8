"""What the run kernel does the same for every kind: the stored result of a completed run,
a lease lost at the last write, and a lease taken only by the terminal write."""

from __future__ import annotations

import dataclasses

import pytest

import warlock_ai as ai
from warlock_ai.core.runs.leases import LeaseClaim


class FirstWriteFails(type(ai.snapshot.memory())):
    """A memory store whose first save fails (a blip): the run goes on without its lease."""

    def __init__(self) -> None:
        super().__init__()
        self.saves = 0

    def save(self, snapshot, *, claim=None):
        self.saves += 1
        if self.saves == 1:
            raise ConnectionError("blip")
        return super().save(snapshot, claim=claim)


def two_steps(store) -> ai.Workflow:
    steps = [ai.step("a", lambda ctx: None), ai.step("b", lambda ctx: None)]
    return ai.workflow(name="kernel-wf", steps=steps, snapshot_store=store)


def supervisor(store, output=None) -> ai.Supervisor:
    return ai.supervisor(
        name="kernel-sv",
        intents={"w": lambda ctx: {"n": 1}},
        route=lambda ctx: "w" if ctx.iteration == 0 else ai.END,
        snapshot_store=store,
        output=output,
    )


@pytest.mark.parametrize("kind", ["workflow", "supervisor"])
def test_a_lease_taken_by_the_terminal_write_is_released(kind):
    store = FirstWriteFails()
    definition = two_steps(store) if kind == "workflow" else supervisor(store)
    result = definition.execute({"x": 1}, run_id="k-1")
    assert result.status == "completed"
    assert store.load("k-1").status == "completed"
    assert store.lease("k-1") is None  # a finished run keeps no lease


@pytest.mark.parametrize("kind", ["workflow", "supervisor"])
def test_a_lease_lost_at_the_last_write_is_the_results_error(kind):
    class TakenAtTheEnd(type(ai.snapshot.memory())):
        def save(self, snapshot, *, claim=None):
            if claim is not None and claim.mode == "release":
                super().save(snapshot, claim=LeaseClaim("other:1:aa", "acquire"))
            return super().save(snapshot, claim=claim)

    store = TakenAtTheEnd()
    store.lease_seconds = -1  # expired at once: "other" may take it (the constructor refuses)
    definition = two_steps(store) if kind == "workflow" else supervisor(store)
    errors = []
    result = definition.execute({"x": 1}, run_id="k-2", on={f"{kind}.error": errors.append})
    assert result.status == "failed"
    assert isinstance(result.error, ai.LeaseLostError)
    assert errors and isinstance(errors[-1]["error"], ai.LeaseLostError)
    assert store.lease("k-2")[0] == "other:1:aa"


def test_a_completed_supervisor_resumes_to_its_stored_state_without_running_output():
    store = ai.snapshot.memory()
    first = supervisor(store)
    done = first.execute("go", run_id="k-3")
    assert done.data == {"n": 1}

    def strict(state):
        raise ValueError("the new output schema refuses the stored state")

    changed = supervisor(store, output=strict)  # output= is not part of the signature
    assert changed.signature == first.signature
    resumed = changed.resume("k-3")
    assert (resumed.status, resumed.data, resumed.error) == ("completed", {"n": 1}, None)
    assert resumed.report.iterations == done.report.iterations


@pytest.mark.parametrize("kind", ["workflow", "supervisor"])
def test_a_forced_resume_of_a_completed_run_reports_the_runs_own_signature(kind):
    store = ai.snapshot.memory()
    definition = two_steps(store) if kind == "workflow" else supervisor(store)
    definition.execute("go", run_id="k-4")
    stored = store.load("k-4")
    store.save(dataclasses.replace(stored, signature="0ld5162e"))
    result = definition.resume("k-4", force=True)
    assert result.status == "completed"
    assert result.report.signature == "0ld5162e" != definition.signature
    assert result.report.ended_at == stored.saved_at

"""Leases: one worker at a time per run, and fenced writes (issue 4, "Leases").

For every snapshot store that declares ``supports_leases``: the store rules (acquire, renew,
release, take-over, fencing) driven directly with the claims the engine attaches, then the
same rules end to end through ``Workflow.resume``.
"""

from __future__ import annotations

import os
import re
import signal
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import warlock_ai as ai
from tests.stores.worker import make_snapshot, save_claimed, wait_for
from warlock_ai.core.errors import LeaseHeldError, LeaseLostError, StoreError
from warlock_ai.core.runs.leases import LeaseState, new_owner_id


@pytest.fixture
def leased_backend(snapshot_backend, snapshot_store):
    if not snapshot_store.supports_leases:
        pytest.skip(f"{type(snapshot_store).__name__} declares supports_leases = False")
    return snapshot_backend


def save(store: Any, run_id: str, owner: str | None, mode: str = "acquire", **state: Any) -> Any:
    snapshot = make_snapshot(run_id, state)
    save_claimed(store, snapshot, owner, mode)
    return snapshot


def close_enough(a: datetime, b: datetime, seconds: float = 2.0) -> bool:
    return abs((a - b).total_seconds()) <= seconds


def lease_expired(store: Any, run_id: str) -> bool:
    """Expired with a margin: stores keep expiries at millisecond precision (Redis) and
    compare strictly, so "expired" must not be decided within the same millisecond."""
    lease = store.lease(run_id)
    return lease is not None and lease[1] + timedelta(milliseconds=20) < datetime.now(UTC)


# --- the store rules ----------------------------------------------------------------------


def test_acquire_takes_the_lease_for_lease_seconds(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    owner = new_owner_id()
    before = datetime.now(UTC)
    save(store, "l-1", owner, v=1)
    holder, expires = store.lease("l-1")
    assert holder == owner
    assert expires.tzinfo is not None
    assert close_enough(expires, before + timedelta(seconds=120))
    # The holder may acquire again (a restart of the same execution).
    save(store, "l-1", owner, v=2)
    assert store.lease("l-1")[0] == owner and store.load("l-1").state == {"v": 2}


def test_second_owner_is_refused_with_the_holder_and_expiry(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    first, second = new_owner_id(), new_owner_id()
    save(store, "l-2", first, by="first")
    holder, expires = store.lease("l-2")
    with pytest.raises(LeaseHeldError) as info:
        save(store, "l-2", second, by="second")
    err = info.value
    assert isinstance(err, StoreError) and err.code == "LEASE_HELD"
    assert (err.run_id, err.owner) == ("l-2", first)
    assert close_enough(datetime.fromisoformat(err.expires_at), expires, 0.001)
    message = str(err)
    assert "l-2" in message and first in message
    assert expires.isoformat(timespec="seconds") in message
    assert store.load("l-2").state == {"by": "first"}
    assert store.lease("l-2") == (holder, expires)


def test_a_lease_without_an_expiry_counts_as_expired_everywhere(leased_backend):
    """The stores' atomic checks (SQL, Lua, a lock) and leases.lease_state agree on the
    corner case of an owner with no expiry: nobody holds the run, a new worker takes it."""
    store = leased_backend.snapshot_store(lease_seconds=120)
    save(store, "l-9", "elsewhere:1:cafebabe", by="first")
    leased_backend.forget_lease_expiry(store, "l-9")
    (info,) = store.runs()
    now = datetime.now(UTC)
    assert info.lease_state(now) is LeaseState.EXPIRED and info.is_stale(now)
    second = new_owner_id()
    save(store, "l-9", second, by="second")
    assert store.lease("l-9")[0] == second and store.load("l-9").state == {"by": "second"}


def test_expired_lease_is_taken_over_and_the_old_owner_is_fenced(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=0.2)
    first, second = new_owner_id(), new_owner_id()
    save(store, "l-3", first, by="first")
    wait_for(lambda: lease_expired(store, "l-3"), timeout=5, what="the lease to expire")
    save(store, "l-3", second, by="second")
    assert store.lease("l-3")[0] == second

    for mode in ("renew", "release"):
        with pytest.raises(LeaseLostError) as info:
            save(store, "l-3", first, mode, by=f"first {mode}")
        err = info.value
        assert err.code == "LEASE_LOST"
        assert (err.run_id, err.owner) == ("l-3", second)
        assert first in str(err) and second in str(err)
        assert store.load("l-3").state == {"by": "second"}, "the newer snapshot must be kept"
        assert store.lease("l-3")[0] == second


def test_renew_keeps_the_lease_and_pushes_the_expiry(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=60)
    owner = new_owner_id()
    save(store, "l-4", owner, v=1)
    _, first_expiry = store.lease("l-4")
    wait_for(lambda: datetime.now(UTC) > first_expiry - timedelta(seconds=59.99))
    save(store, "l-4", owner, "renew", v=2)
    holder, expiry = store.lease("l-4")
    assert holder == owner and expiry > first_expiry
    assert store.load("l-4").state == {"v": 2}


def test_release_clears_the_lease(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    owner, other = new_owner_id(), new_owner_id()
    save(store, "l-5", owner, v=1)
    save(store, "l-5", owner, "renew", v=2)
    save(store, "l-5", owner, "release", v=3)
    assert store.lease("l-5") is None
    assert store.load("l-5").state == {"v": 3}
    save(store, "l-5", other, v=4)  # free at once, no waiting for an expiry
    assert store.lease("l-5")[0] == other


def test_renew_or_release_without_the_lease_writes_nothing(leased_backend):
    """Renew and release need the stored owner to be this one: a run nobody leases (never
    saved, or deleted while the worker ran) is refused, not re-created."""
    store = leased_backend.snapshot_store(lease_seconds=120)
    owner = new_owner_id()
    for mode in ("renew", "release"):
        with pytest.raises(LeaseLostError):
            save(store, f"l-6-{mode}", owner, mode)
        assert store.load(f"l-6-{mode}") is None
    save(store, "l-6", owner, v=1)
    assert store.delete("l-6") is True
    with pytest.raises(LeaseLostError):
        save(store, "l-6", owner, "renew", v=2)
    assert store.load("l-6") is None


def test_unfenced_save_leaves_the_lease_untouched(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    owner, other = new_owner_id(), new_owner_id()
    save(store, "l-7", None, v=0)
    assert store.lease("l-7") is None
    save(store, "l-7", owner, v=1)
    lease = store.lease("l-7")
    save(store, "l-7", None, v=2)  # e.g. a manual migration: no claim
    assert store.load("l-7").state == {"v": 2}
    assert store.lease("l-7") == lease
    with pytest.raises(LeaseHeldError):
        save(store, "l-7", other, v=3)
    save(store, "l-7", owner, "renew", v=4)
    assert store.load("l-7").state == {"v": 4}


def test_holder_killed_with_sigkill_is_taken_over_at_once(leased_backend, writers):
    """The holder is a process of this host that no longer exists: no wait for the expiry."""
    store = leased_backend.snapshot_store(lease_seconds=300)
    holder = writers.spawn(leased_backend, "hold", "l-8")
    dead_owner = writers.read_line(holder)["owner"]
    assert dead_owner.split(":")[1] == str(holder.pid)
    if not leased_backend.shared:
        save(store, "l-8", dead_owner, held_by=dead_owner)  # the memory store is ours
    assert store.lease("l-8")[0] == dead_owner
    owner = new_owner_id()
    with pytest.raises(LeaseHeldError):
        save(store, "l-8", owner, by="survivor")  # alive: refused
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    save(store, "l-8", owner, by="survivor")
    assert store.lease("l-8")[0] == owner
    assert store.load("l-8").state == {"by": "survivor"}


def test_acquire_race_between_two_writers_has_one_winner_per_run(
    leased_backend, snapshot_store, writers
):
    """Check and write are one atomic step: two processes (threads for memory) acquiring
    the same 30 runs at once never both win one."""
    run_ids = [f"race-{i:02d}" for i in range(30)]
    results = writers.run(leased_backend, snapshot_store, [["acquire", *run_ids]] * 2)
    for run_id in run_ids:
        winners = [r["owner"] for r in results if run_id in r["won"]]
        assert len(winners) == 1, f"{run_id}: won by {winners}"
        assert snapshot_store.lease(run_id)[0] == winners[0]
        assert snapshot_store.load(run_id).state == {"owner": winners[0]}
    assert sorted(results[0]["won"] + results[1]["won"]) == run_ids
    assert sorted(results[0]["held"] + results[1]["held"]) == run_ids


# --- end to end through the engine --------------------------------------------------------


def failed_run(store: Any, run_id: str, calls: list[str], gate: dict[str, Any]) -> Any:
    """A workflow whose run ``run_id`` stopped at step "two"; resuming it runs "two"."""

    def two(ctx):
        calls.append("two")
        gate["hook"]()
        if gate["fail"]:
            raise RuntimeError("not yet")
        ctx.state["two"] = True

    wf = ai.workflow(
        name="leased",
        steps=[ai.step("one", lambda ctx: calls.append("one")), ai.step("two", two)],
        snapshot_store=store,
    )
    assert wf.execute(run_id=run_id).status == "failed"
    assert store.lease(run_id) is None  # the terminal write released it
    calls.clear()
    gate["fail"] = False
    return wf


def test_resume_while_another_worker_holds_the_lease_runs_nothing(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    calls: list[str] = []
    wf = failed_run(store, "e-1", calls, {"fail": True, "hook": lambda: None})
    other = new_owner_id()  # a live worker (this very process)
    stored = store.load("e-1")
    save_claimed(store, stored, other)
    lease = store.lease("e-1")
    with pytest.raises(LeaseHeldError) as info:
        wf.resume("e-1")
    assert info.value.owner == other and info.value.run_id == "e-1"
    assert calls == []
    after = store.load("e-1")
    assert (after.status, after.saved_at) == (stored.status, stored.saved_at)
    assert store.lease("e-1") == lease


def test_two_workers_resuming_one_expired_run_execute_it_once(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=120)
    calls: list[str] = []
    loser_done = threading.Event()
    gate = {"fail": True, "hook": lambda: None}
    wf = failed_run(store, "e-2", calls, gate)
    # A crashed worker's lease, already expired; the two new workers get 120 s leases.
    store.lease_seconds, crashed = -1, store.lease_seconds
    save_claimed(store, store.load("e-2"), "elsewhere:1:deadbeef")
    store.lease_seconds = crashed
    assert lease_expired(store, "e-2")
    # The winner's step waits until the loser has given up, so both really overlap.
    gate["hook"] = lambda: loser_done.wait(10)
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []

    def worker() -> None:
        from django.db import connections

        barrier.wait(10)
        try:
            outcomes.append(wf.resume("e-2"))
        except Exception as exc:
            outcomes.append(exc)
            loser_done.set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert calls == ["two"], f"executed {len(calls)} times"
    errors = [o for o in outcomes if isinstance(o, Exception)]
    results = [o for o in outcomes if not isinstance(o, Exception)]
    # the loser is refused either by the live lease or, if the winner already wrote, because
    # the run changed since it was loaded: both mean "nothing ran"
    assert len(errors) == 1 and isinstance(errors[0], (LeaseHeldError, LeaseLostError)), outcomes
    assert [r.status for r in results] == ["completed"]
    final = store.load("e-2")
    assert final.status == "completed" and final.state == {"two": True}
    assert store.lease("e-2") is None


class PausedLoads:
    """Delegates to ``store``; a ``load`` made by the thread called ``name`` returns only once
    ``go`` is set: a worker that read the run, then stalled before its first write."""

    def __init__(self, store: Any, name: str) -> None:
        self._store, self._name = store, name
        self.loaded, self.go = threading.Event(), threading.Event()

    def load(self, run_id: str) -> Any:
        snapshot = self._store.load(run_id)
        if threading.current_thread().name == self._name:
            self.loaded.set()
            self.go.wait(10)
        return snapshot

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def test_a_worker_resuming_from_a_stale_read_does_not_run_the_run_again(leased_backend):
    """Worker B reads the failed run, stalls; worker A resumes it to the end and releases the
    lease; then B takes the (free) lease. B must not run step "two" again from its stale
    snapshot, nor overwrite A's completed snapshot."""
    store = leased_backend.snapshot_store(lease_seconds=120)
    paused = PausedLoads(store, "late-worker")
    calls: list[str] = []
    wf = failed_run(paused, "e-3", calls, {"fail": True, "hook": lambda: None})
    late: dict[str, Any] = {}

    def late_worker() -> None:
        from django.db import connections

        try:
            late["outcome"] = wf.resume("e-3")
        except Exception as exc:
            late["outcome"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=late_worker, name="late-worker")
    thread.start()
    try:
        assert paused.loaded.wait(10)
        assert wf.resume("e-3").status == "completed"
        done = store.load("e-3")
    finally:
        paused.go.set()
        thread.join(30)
    outcome = late["outcome"]
    described = getattr(outcome, "status", None) or repr(outcome)
    assert calls == ["two"], f"step two ran {len(calls)} times; the late worker: {described}"
    final = store.load("e-3")
    assert final.status == "completed" and final.saved_at == done.saved_at


# --- a write answered after its lease lapsed (a network cut) -------------------------------


class LateAnswers:
    """Delegates to ``store``, as seen by a worker whose network is cut: the ``late``-th save
    is made, then its answer is held back for ``delay`` seconds, during which the heartbeat's
    renewals fail and ``meanwhile()`` runs (another worker taking the run over once the lease
    lapsed). ``renewal`` replaces ``renew_lease`` outside the cut when set."""

    def __init__(self, store: Any, late: int, delay: float, meanwhile: Any) -> None:
        self._store, self.late, self.delay, self.meanwhile = store, late, delay, meanwhile
        self.saves = 0
        self.cut = threading.Event()
        self.renewal: Any = None

    def save(self, snapshot: Any, **kwargs: Any) -> Any:
        outcome = self._store.save(snapshot, **kwargs)
        self.saves += 1
        if self.saves == self.late:
            import time

            self.cut.set()
            time.sleep(self.delay)
            self.meanwhile()
            self.cut.clear()
        return outcome

    def renew_lease(self, run_id: str, owner: str) -> Any:
        if self.cut.is_set():
            raise ConnectionError("the network is cut")
        if self.renewal is not None:
            return self.renewal(run_id, owner)
        return self._store.renew_lease(run_id, owner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


LEASE = 1.5  # seconds: a late answer below waits 1.6 s (past the lease) or 1.1 s (within it)
WITHIN = 1.1  # seconds: past two thirds of the lease, with 0.4 s left for a loaded machine


def late_flow(store: Any, calls: list[str]) -> Any:
    def step(name: str) -> Any:
        def body(ctx: Any) -> None:
            calls.append(name)
            ctx.state[name] = True

        return ai.step(name, body)

    return ai.workflow(name="late", steps=[step("one"), step("two")], snapshot_store=store)


def main_thread_renewals(store: Any, answer: Any) -> list[str]:
    """Count the renewals the run makes itself (not its heartbeat's); ``answer`` makes them."""
    made: list[str] = []

    def renewal(run_id: str, owner: str) -> Any:
        if threading.current_thread() is threading.main_thread():
            made.append(owner)
            return answer(run_id, owner, len(made))
        return store._store.renew_lease(run_id, owner)

    store.renewal = renewal
    return made


@pytest.mark.parametrize("late", [1, 2], ids=["acquiring-write", "write-after-a-step"])
def test_a_write_answered_after_the_lease_lapsed_stops_before_the_next_step(leased_backend, late):
    """Worker A's write (the one taking the lease, or the one after step one) is stored, but
    its answer comes back only after the lease lapsed and worker B took the run: A must not
    run its next step (B runs it: its model call would be billed twice), and A writes nothing
    more. The run's result says so; nothing is raised."""
    store = leased_backend.snapshot_store(lease_seconds=LEASE)
    other = new_owner_id()

    def take_over() -> None:
        assert lease_expired(store, f"late-{late}")
        save_claimed(store, store.load(f"late-{late}"), other)  # B resumes from what is stored

    calls: list[str] = []
    slow = LateAnswers(store, late=late, delay=LEASE + 0.1, meanwhile=take_over)
    result = late_flow(slow, calls).execute(run_id=f"late-{late}")
    assert calls == ["one"][: late - 1], calls
    assert result.status == "failed" and isinstance(result.error, LeaseLostError), result.error
    message = str(result.error)
    assert re.search(r"was answered 1\.\d s after it was sent", message), message
    assert f"its lease is {other}'s now; this worker stops before the next step" in message
    assert result.error.owner == other and result.report.persisted is False
    assert store.lease(f"late-{late}")[0] == other  # B's lease, untouched
    assert late_state(store, f"late-{late}") == ({"one": True} if late == 2 else {})
    assert slow.saves == late


def late_state(store: Any, run_id: str) -> dict[str, Any]:
    return dict(store.load(run_id).state)


def test_a_late_answer_goes_on_when_the_lease_is_still_held(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=LEASE)
    calls: list[str] = []
    slow = LateAnswers(store, late=2, delay=WITHIN, meanwhile=lambda: None)
    made = main_thread_renewals(slow, lambda run_id, owner, n: store.renew_lease(run_id, owner))
    result = late_flow(slow, calls).execute(run_id="late-3")
    assert result.status == "completed" and calls == ["one", "two"]
    assert len(made) == 1  # the write's answer was late: renewed once before step two
    assert late_state(store, "late-3") == {"one": True, "two": True}


def test_a_renewal_that_fails_once_is_tried_again_within_the_lease(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=LEASE)
    calls: list[str] = []
    slow = LateAnswers(store, late=2, delay=WITHIN, meanwhile=lambda: None)

    def answer(run_id: str, owner: str, n: int) -> Any:
        if n == 1:
            raise ConnectionError("the store is flapping")
        return store.renew_lease(run_id, owner)

    made = main_thread_renewals(slow, answer)
    result = late_flow(slow, calls).execute(run_id="late-4")
    assert result.status == "completed" and calls == ["one", "two"], result.error
    assert len(made) == 2


def test_a_late_answer_whose_renewal_keeps_failing_stops_too(leased_backend):
    store = leased_backend.snapshot_store(lease_seconds=LEASE)
    calls: list[str] = []
    slow = LateAnswers(store, late=2, delay=WITHIN, meanwhile=lambda: None)

    def answer(run_id: str, owner: str, n: int) -> Any:
        raise ConnectionError("the store is still out of reach")

    made = main_thread_renewals(slow, answer)
    result = late_flow(slow, calls).execute(run_id="late-5")
    assert calls == ["one"] and len(made) >= 2  # tried again until the lease may lapse
    assert result.status == "failed" and isinstance(result.error, LeaseLostError), result.error
    assert "its renewal kept failing: the store is still out of reach" in str(result.error)

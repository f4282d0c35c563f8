"""The bad-input corpus of issue 12, store side: ``save`` / ``load`` / ``delete`` with bad run
ids and snapshots that cannot be stored, on SQLite, PostgreSQL 16 and Redis.

A store refuses what it cannot keep faithfully with one clear error (an ``AIError`` whose
message is one line), and the stored runs are exactly what they were: compared through the
store's own ``runs()`` and ``load()`` before and after. (The Django-side cases, commands, API
and admin, are in tests/django/test_bad_input_corpus.py.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

import warlock_ai as ai
from tests.stores.conftest import backend_params
from warlock_ai.core.errors import AIError

BACKENDS = [param for param in backend_params() if param.id in ("sqlite", "postgres16", "redis")]
SEEDS = ("seed-done", "seed-failed")


def _step(ctx: Any) -> None:
    ctx.state["n"] = 1


def template() -> Any:
    """A real completed snapshot (made on a memory store) to derive bad ones from."""
    memory = ai.snapshot.memory()
    flow = ai.workflow(name="shape", steps=[ai.step("a", _step)], snapshot_store=memory)
    flow.execute({"x": 1}, run_id="template")
    return memory.load("template")


def stored(store: Any) -> list[Any]:
    """What the store holds, through its own API: every run's info and full snapshot."""
    infos = store.runs()
    return [(info, store.load(info.run_id)) for info in sorted(infos, key=lambda i: i.run_id)]


@pytest.fixture(params=BACKENDS)
def seeded_store(request: pytest.FixtureRequest) -> Any:
    """A SQLite, PostgreSQL or Redis snapshot store holding two runs."""
    from tests.stores.conftest import _backend

    backends = _backend(request)
    backend = next(backends)
    store = backend.snapshot_store()
    snapshot = template()
    for run_id in SEEDS:
        store.save(dataclasses.replace(snapshot, run_id=run_id))
    yield store
    next(backends, None)


def one_line_ai_error(call: Any) -> str:
    with pytest.raises(AIError) as caught:
        call()
    message = str(caught.value)
    assert message.strip() and "\n" not in message and "\r" not in message, repr(message)
    return message


def changed(**fields: Any) -> Any:
    return dataclasses.replace(template(), **fields)


# case id -> (the snapshot to save, fragments of the one-line error)
BAD_SAVES: dict[str, tuple[Any, list[str]]] = {
    "run-id-empty": (lambda: changed(run_id=""), ["run"]),
    "run-id-too-long": (lambda: changed(run_id="r" * 300), ["255"]),
    "run-id-newline": (lambda: changed(run_id="a\nb"), ["run"]),
    "run-id-nul": (lambda: changed(run_id="a\x00b"), ["run"]),
    "run-id-esc": (lambda: changed(run_id="a\x1b[31mb"), ["run"]),
    "run-id-lone-surrogate": (lambda: changed(run_id="a\ud800"), ["run"]),
    "state-lone-surrogate": (lambda: changed(run_id="bad-2", state={"t": "\udfff"}), ["state.t"]),
    "state-int-key": (lambda: changed(run_id="bad-3", state={"n": {1: "a"}}), ["state.n"]),
    "state-set": (lambda: changed(run_id="bad-4", state={"tags": {1}}), ["state.tags"]),
    "state-nan": (lambda: changed(run_id="bad-5", state={"x": float("nan")}), ["state.x"]),
    "name-too-long": (lambda: changed(run_id="bad-7", workflow_name="w" * 201), ["200"]),
    "version-too-long": (lambda: changed(run_id="bad-8", version="v" * 101), ["100"]),
    "unknown-status": (lambda: changed(run_id="bad-9", status="exploded"), ["'exploded'"]),
}


@pytest.mark.parametrize("case", list(BAD_SAVES), ids=list(BAD_SAVES))
def test_store_refuses_a_snapshot_it_cannot_keep(seeded_store, case):
    make, fragments = BAD_SAVES[case]
    snapshot = make()
    before = stored(seeded_store)
    message = one_line_ai_error(lambda: seeded_store.save(snapshot))
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert stored(seeded_store) == before


BAD_IDS = {
    "empty": "",
    "too-long": "r" * 300,
    "nul": "a\x00b",
    "newline": "a\nb",
    "lone-surrogate": "a\ud800",
}


@pytest.mark.parametrize("case", list(BAD_IDS), ids=list(BAD_IDS))
def test_load_and_delete_of_a_bad_id_find_nothing_or_say_why(seeded_store, case):
    """No run can have such an id: ``load`` answers None (or one clear error), ``delete``
    False (or one clear error), and nothing stored changes."""
    run_id = BAD_IDS[case]
    before = stored(seeded_store)
    for call, nothing in ((seeded_store.load, None), (seeded_store.delete, False)):
        try:
            answer = call(run_id)
        except AIError as exc:
            assert "\n" not in str(exc), repr(str(exc))
        else:
            assert answer == nothing, answer
    assert stored(seeded_store) == before


# A NUL character: PostgreSQL cannot store it in jsonb, SQLite and Redis can. Either way is
# allowed (issue 12: refused naming the key path, or stored faithfully), never a third way.
NULS = {
    "state-nul": lambda: changed(run_id="nul-1", state={"text": "a\x00b"}),
    "input-nul": lambda: changed(run_id="nul-2", input={"q": "\x00"}),
}


@pytest.mark.parametrize("case", list(NULS), ids=list(NULS))
def test_a_nul_character_is_refused_by_path_or_stored_faithfully(seeded_store, case):
    snapshot = NULS[case]()
    before = stored(seeded_store)
    try:
        seeded_store.save(snapshot)
    except AIError as exc:
        message = str(exc)
        assert "\n" not in message, repr(message)
        assert ("state.text" in message) or ("input.q" in message), message
        assert stored(seeded_store) == before
        return
    loaded = seeded_store.load(snapshot.run_id)
    assert (loaded.state, loaded.input) == (snapshot.state, snapshot.input)
    assert [entry for entry in stored(seeded_store) if entry[0].run_id != snapshot.run_id] == before

"""What passes the JSON check is stored faithfully by every store, and a resumed run sees the
state an uninterrupted one sees; what a store would not keep as it is is refused before
anything is written (issue 12).

Equality here is strict: ``1 == 1.0 == True`` and ``0.0 == -0.0`` in Python, so values are
compared with their types (and a float by its ``repr``).
"""

from __future__ import annotations

from typing import Any

import pytest

import warlock_ai as ai
from tests.stores.worker import make_snapshot
from warlock_ai.core.errors import SnapshotSerializationError

#: Tricky but storable values: each must come back from every store exactly as it went in.
CORPUS: dict[str, Any] = {
    "emoji": "🎉🐍👩‍💻🇫🇷 \U0001f600",
    "cjk": "日本語の文章、中文 한국어",
    "separators": "line\u2028para\u2029end",
    "bom": "\ufeffstarts with a BOM",
    "escaped nul text": "a backslash then u0000: \\u0000 and \\\\u0000",
    "controls": "tab\t newline\n bell\x07 escape\x1b del\x7f",
    "quotes": 'quote " backslash \\ slash /',
    "empty": "",
    "big int": 2**200,
    "negative big int": -(10**40),
    "max safe": 2**53 + 1,
    "largest plain float": 9999999999999998.0,
    "negative float": -123456.789,
    "tiny float": 5e-324,
    "small float": 1e-7,
    "float": 0.1 + 0.2,
    "whole float": 3.0,
    "bools": [True, False, None],
    "keys": {"": 1, "1": "digit key", "null": None, "true": True, "ключ 🔑": [], "a.b[0]": {}},
    "deep": {"d": [[[[{"e": [[[{"f": ["bottom"]}]]]}]]]]},
    "mixed list": [1, 1.0, "1", True, None, [], {}],
}


#: Values JSON can encode that a store would not give back as they are, and the path and
#: the description the refusal names.
REFUSED = [
    pytest.param({"counts": {1: "one"}}, "state.counts[1]", "key of type int", id="int-key"),
    pytest.param({"by": {None: 0}}, "state.by[None]", "key of type NoneType", id="none-key"),
    pytest.param({"f": [{2.5: 1}]}, "state.f[0][2.5]", "key of type float", id="float-key"),
    pytest.param({"b": {True: 1}}, "state.b[True]", "key of type bool", id="bool-key"),
    pytest.param({"t": "a\x00b"}, "state.t", "str with a NUL character", id="nul"),
    pytest.param(
        {"k": {"x\x00": 1}}, "state.k['x\\x00']", "key with a NUL character", id="nul-key"
    ),
    pytest.param(
        {"t": ["ok", "\ud83d"]}, "state.t[1]", "str with a lone surrogate U+D83D", id="surrogate"
    ),
    pytest.param({"x": 1e308}, "state.x", "float 1e+308", id="huge-float"),
    pytest.param({"x": -1.5e16}, "state.x", "float -1.5e+16", id="big-float"),
]


def typed(value: Any) -> Any:
    """``value`` with each scalar tagged by its type, so equality is strict."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def test_every_store_gives_the_corpus_back_exactly(snapshot_store):
    snapshot = make_snapshot("corpus-1", dict(CORPUS), input={"corpus": CORPUS})
    snapshot_store.save(snapshot)
    loaded = snapshot_store.load("corpus-1")
    assert typed(loaded.state) == typed(CORPUS)
    assert typed(loaded.input) == typed({"corpus": CORPUS})


def test_negative_zero_comes_back_equal(snapshot_store, snapshot_backend):
    """-0.0 is accepted: PostgreSQL's jsonb has no negative zero and gives back 0.0 (equal
    in Python, a float still); the other stores keep the sign."""
    snapshot_store.save(make_snapshot("zero-1", {"z": -0.0}))
    got = snapshot_store.load("zero-1").state["z"]
    assert type(got) is float and got == 0.0
    expected = "0.0" if snapshot_backend.kind.startswith("postgres") else "-0.0"
    assert repr(got) == expected


@pytest.mark.parametrize(("state", "path", "what"), REFUSED)
def test_unstorable_state_is_refused_before_anything_is_written(
    snapshot_store, snapshot_backend, state, path, what
):
    with pytest.raises(SnapshotSerializationError) as info:
        snapshot_store.save(make_snapshot("refused-1", state))
    assert info.value.path == path
    assert info.value.type_name == what
    assert path in info.value.message and "\n" not in info.value.message
    assert snapshot_store.load("refused-1") is None
    assert snapshot_backend.snapshot_rows(snapshot_store) == 0


def corpus_workflow(store: Any, seen: list[Any], crash: list[bool]) -> ai.Workflow:
    """``fill`` puts the corpus in the state; ``look`` records the state it sees, and fails
    while ``crash`` holds True (the interruption a resume recovers from)."""

    def fill(ctx: Any) -> None:
        ctx.state.update(CORPUS)
        ctx.state["nested"] = {"corpus": CORPUS, "list": [CORPUS]}

    def look(ctx: Any) -> None:
        seen.append(typed(ctx.state))
        if crash and crash.pop():
            raise RuntimeError("interrupted")
        ctx.state["looked"] = True

    return ai.workflow(
        name="corpus",
        steps=[ai.step("fill", fill), ai.step("look", look)],
        snapshot_store=store,
    )


def test_a_resumed_run_sees_the_state_an_uninterrupted_run_sees(snapshot_store):
    straight: list[Any] = []
    result = corpus_workflow(snapshot_store, straight, []).execute({"in": CORPUS}, run_id="s-1")
    assert result.status == "completed", result.error

    resumed: list[Any] = []
    wf = corpus_workflow(snapshot_store, resumed, [True])
    assert wf.execute({"in": CORPUS}, run_id="r-1").status == "failed"
    again = wf.resume("r-1")
    assert again.status == "completed", again.error

    assert len(straight) == 1 and len(resumed) == 2
    assert resumed[1] == resumed[0] == straight[0]
    assert typed(snapshot_store.load("r-1").state) == typed(snapshot_store.load("s-1").state)
    assert typed(snapshot_store.load("r-1").input) == typed({"in": CORPUS})


@pytest.mark.parametrize(("state", "path", "what"), REFUSED)
def test_a_step_writing_unstorable_state_fails_and_the_store_keeps_the_last_good_state(
    snapshot_store, state, path, what
):
    def good(ctx: Any) -> None:
        ctx.state["good"] = 1

    def bad(ctx: Any) -> None:
        ctx.state.update(state)

    wf = ai.workflow(
        name="refusing",
        steps=[ai.step("good", good), ai.step("bad", bad)],
        snapshot_store=snapshot_store,
    )
    result = wf.execute(None, run_id="bad-run")
    assert result.status == "failed"
    assert isinstance(result.error, SnapshotSerializationError)
    assert result.error.path == path and result.error.step_name == "bad"
    stored = snapshot_store.load("bad-run")
    assert stored.status == "failed" and stored.state == {"good": 1}

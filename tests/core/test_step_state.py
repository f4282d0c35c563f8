"""StepState: a step attempt's state copies a value the first time it is reached, and knows
which keys it reached or wrote; StateEncoding re-encodes only those."""

import copy
import json

import pytest

import warlock_ai as ai
from warlock_ai.core.errors import SnapshotSerializationError
from warlock_ai.core.runs.state import (
    EXTERNAL_BYTES,
    StateEncoding,
    StepState,
    changed_items,
)


def base():
    return {"rows": [{"a": 1}], "meta": {"n": 1}, "n": 1, "s": "x"}


# Every way of reaching the values: each gives the attempt its own copies, marks the keys,
# and leaves the settled state as it was.
REACHES = {
    "getitem": lambda s: [s["rows"]],
    "get": lambda s: [s.get("rows")],
    "setdefault": lambda s: [s.setdefault("rows", [])],
    "items": lambda s: [v for _, v in s.items()],
    "values": lambda s: list(s.values()),
    "dict()": lambda s: list(dict(s).values()),
    "{**}": lambda s: list({**s}.values()),
    "f(**)": lambda s: list((lambda **kw: kw)(**s).values()),
    "copy()": lambda s: list(s.copy().values()),
    "copy.copy": lambda s: list(copy.copy(s).values()),
    "copy.deepcopy": lambda s: list(copy.deepcopy(s).values()),
    "|": lambda s: list((s | {}).values()),
    "ror": lambda s: list(({} | s).values()),
    "json.dumps": lambda s: [json.dumps(s)] and list(dict.values(s)),
}


@pytest.mark.parametrize("how", REACHES)
def test_reaching_a_value_copies_it_and_marks_its_key(how):
    settled = base()
    state = StepState.over(settled)
    for value in REACHES[how](state):
        if isinstance(value, list):
            value.append("changed")
        elif isinstance(value, dict):
            value["changed"] = True
    assert settled == base()  # the settled state is as it was
    assert "rows" in state.touched


def test_an_untouched_value_is_shared_not_copied():
    settled = base()
    state = StepState.over(settled)
    state["n"] = 2
    assert dict.__getitem__(state, "rows") is settled["rows"]
    assert state.touched == {"n"}
    assert state["s"] == "x" and "s" not in state.touched  # reading a scalar copies nothing


def test_writes_and_removals_are_marked():
    state = StepState.over(base())
    state.update(a=1)
    state |= {"b": 2}
    del state["n"]
    assert state.pop("meta") == {"n": 1}
    assert state.pop("missing", None) is None
    with pytest.raises(KeyError):
        state.pop("missing")
    assert state.touched == {"a", "b", "n", "meta"}
    key, value = state.popitem()
    assert (key, value) == ("b", 2)
    state.clear()
    assert state == {} and "rows" in state.touched


def test_a_state_over_a_settled_state_starts_untouched_unless_touched_since():
    first = StepState.over(base())
    first["rows"].append(2)
    first.settled()
    second = StepState.over(first)
    assert second.touched == set()
    first["meta"]["late"] = True  # a router changing the settled state
    third = StepState.over(first)
    assert third.touched == {"meta"}


def test_encoding_reuses_the_text_of_untouched_keys():
    settled = {"rows": [{"a": 1}] * 10, "n": 1}
    encoding = StateEncoding.of(settled)
    state = StepState.over(settled)
    state["n"] = 2
    updated = encoding.updated(state)
    assert updated.texts["rows"] is encoding.texts["rows"]
    assert json.loads(updated.json()) == {"rows": [{"a": 1}] * 10, "n": 2}
    assert encoding.updated(StepState.over(settled)) is encoding  # nothing touched


def test_a_value_mutated_in_place_is_encoded_again():
    settled = {"rows": [1, 2]}
    encoding = StateEncoding.of(settled)
    state = StepState.over(settled)
    state["rows"].append(3)
    assert json.loads(encoding.updated(state).json()) == {"rows": [1, 2, 3]}


def test_split_keeps_large_values_apart_and_reports_what_changed():
    big = "x" * EXTERNAL_BYTES
    encoding = StateEncoding.of({"big": big, "small": 1, "k" * 300: big})
    inline, apart = encoding.split()
    assert list(apart) == ["big"]  # a key longer than 255 characters stays inline
    assert json.loads(inline) == {"small": 1, "k" * 300: big}
    assert encoding.changed_since(None) == {"big": apart["big"]}
    assert encoding.changed_since(encoding) is None
    state = StepState.over({"big": big, "small": 1})
    state["small"] = 2
    assert encoding.updated(state).changed_since(encoding) is None
    state["big"] = big + "y"
    assert list(encoding.updated(state).changed_since(encoding)) == ["big"]
    # Nothing left apart: nothing to write (the store's list of keys apart says the rest).
    assert StateEncoding.of({"small": 1}).changed_since(encoding) is None
    two = StateEncoding.of({"big": big, "other": big + "z"})
    one = StateEncoding.of({"big": big})
    assert one.changed_since(two) == {}  # no value to write, one to remove
    reread = StepState.over({"big": [big]})
    assert reread["big"] == [big]  # reached: encoded again, equal, so not written
    assert reread.touched == {"big"}
    again = StateEncoding.of({"big": [big]})
    assert again.updated(reread).changed_since(again) is None


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ({"a": {"b": [1, object()]}}, "state.a.b[1]"),
        ({"a": float("nan")}, "state.a"),
        ({1: "x"}, "state[1]"),
        ({"a\x00": 1}, "state['a\\x00']"),
    ],
)
def test_errors_name_the_path_as_a_whole_state_encoding_did(state, path):
    with pytest.raises(SnapshotSerializationError) as caught:
        StateEncoding.of(state)
    assert caught.value.path == path
    step = StepState.over({"ok": 1})
    step.update(state)
    with pytest.raises(SnapshotSerializationError) as caught:
        StateEncoding.of({"ok": 1}).updated(step)
    assert caught.value.path == path


def test_changed_items_compares_only_touched_keys():
    settled = base()
    state = StepState.over(settled)
    state["n"] = 1  # written, same value
    state["rows"].append(2)
    state["new"] = True
    assert changed_items(state, settled) == {"rows": [{"a": 1}, 2], "new": True}


def test_a_step_sees_a_dict_and_its_result_state_is_a_plain_dict():
    seen = []

    def look(ctx):
        seen.append(isinstance(ctx.state, dict))
        ctx.state["rows"].append(len(ctx.state["rows"]))

    store = ai.snapshot.memory()
    wf = ai.workflow(
        name="plain",
        steps=[ai.step("a", lambda ctx: ctx.state.update(rows=[])), ai.step("b", look)],
        snapshot_store=store,
    )
    result = wf.execute({}, run_id="plain-1")
    assert seen == [True]
    assert type(result.report.state) is dict and result.report.state == {"rows": [0]}
    assert store.load("plain-1").state == {"rows": [0]}


def test_each_write_names_the_last_landed_encoding_and_none_after_a_failure():
    """The run writer's delta base: the state encoding of its last write that landed; after
    a write that failed, None (the store may hold it or not: the next write is whole)."""
    from warlock_ai.core.errors import StoreError

    class Recording(type(ai.snapshot.memory())):
        def __init__(self):
            super().__init__()
            self.seen, self.fail_at = [], 3

        def save(self, snapshot, *, claim=None):
            self.seen.append((snapshot.delta_base, snapshot.state_encoding()))
            if len(self.seen) == self.fail_at:
                raise StoreError("the disk is full")
            return super().save(snapshot, claim=claim)

    store = Recording()
    steps = [ai.step(f"s{i}", lambda ctx, i=i: ctx.state.update(n=i)) for i in range(4)]
    result = ai.workflow(name="bases", steps=steps, snapshot_store=store).execute(run_id="b-1")
    assert result.report.failed_writes == 1  # the failed write is reported
    bases = [base for base, _ in store.seen]
    encodings = [encoding for _, encoding in store.seen]
    assert bases[0] is None  # the first write of an execution knows nothing stored
    assert bases[1] is encodings[0] and bases[2] is encodings[1]
    assert bases[3] is None  # write 3 failed
    assert bases[4] is encodings[3]


def test_a_key_touched_after_the_state_settled_is_still_copied_for_the_next_attempt():
    """A router reaches the settled state (its keys are then encoded again at the next
    settle), yet the next attempt still gets its own copy: a failed attempt leaks nothing."""
    settled = StepState.over({"meta": {"n": 1}})
    settled["meta"]["router"] = True  # the router's change, on the settled state
    settled.settled()
    assert settled["meta"] == {"n": 1, "router": True}  # reached after settling
    attempt = StepState.over(settled)
    assert attempt.touched == {"meta"} and attempt.own == set()
    attempt["meta"]["failed attempt"] = True
    assert dict.__getitem__(settled, "meta") == {"n": 1, "router": True}


def test_attempts_are_isolated_without_a_store():
    seen = []

    def flaky(ctx):
        ctx.state["rows"].append("partial")
        seen.append(list(ctx.state["rows"]))
        if len(seen) == 1:
            raise RuntimeError("transient")

    wf = ai.workflow(
        name="no-store",
        steps=[
            ai.step("a", lambda ctx: ctx.state.update(rows=[])),
            ai.step("b", flaky, retry=ai.Retry(attempts=2, backoff="none")),
        ],
    )
    result = wf.execute()
    assert result.error is None
    assert seen == [["partial"], ["partial"]]
    assert result.report.state == {"rows": ["partial"]}

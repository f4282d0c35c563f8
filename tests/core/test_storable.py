"""What JSON can encode but a store would not keep as it is: refused by ``dumps`` with the
path, wherever the engine encodes (state, input, step records, supervisor iterations); names
too long for their columns or unstorable: refused when the definition is built (issue 12)."""

from __future__ import annotations

from collections import OrderedDict
from enum import StrEnum
from typing import Any

import pytest

import warlock_ai as ai
from warlock_ai.core.errors import SnapshotSerializationError
from warlock_ai.core.runs.limits import (
    MAX_FLOW_NAME_LENGTH,
    MAX_STEP_NAME_LENGTH,
    MAX_VERSION_LENGTH,
)
from warlock_ai.core.runs.serialization import dumps, has_non_string_key


def refusal(value: Any, path: str = "state") -> SnapshotSerializationError:
    with pytest.raises(SnapshotSerializationError) as info:
        dumps(value, path=path)
    return info.value


class Colour(StrEnum):
    RED = "red"


# --- dumps --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path", "what"),
    [
        ({"counts": {1: "a"}}, "state.counts[1]", "key of type int"),
        ({"a": [[{"b": {None: 1}}]]}, "state.a[0][0].b[None]", "key of type NoneType"),
        ([{"x": ({False: 1},)}], "state[0].x[0][False]", "key of type bool"),
        ({"has space": {"k": "\x00"}}, "state['has space'].k", "str with a NUL character"),
        ({"\x00k": 1}, "state['\\x00k']", "key with a NUL character"),
        ({"t": "ok \udfff"}, "state.t", "str with a lone surrogate U+DFFF"),
        ({"t": ["é", "\ud800x"]}, "state.t[1]", "str with a lone surrogate U+D800"),
        # Python never pairs surrogates: this is two lone ones, not an emoji.
        ({"pair": "\ud83d\ude00"}, "state.pair", "str with a lone surrogate U+D83D"),
        ({"big": [1.0, 2e16]}, "state.big[1]", "float 2e+16"),
    ],
)
def test_dumps_refuses_what_a_store_would_change_naming_the_path(value, path, what):
    error = refusal(value)
    assert (error.path, error.type_name, error.code) == (path, what, "SNAPSHOT_NOT_JSON")
    assert error.message.startswith(f"snapshot cannot be stored: {path}: {what};")


@pytest.mark.parametrize(
    "value",
    [
        {"text": "a backslash and u0000: \\u0000"},
        {"text": "\\\\u0000 and \\\\\\u0000"},
        {"emoji": "😀", "bom": "\ufeff", "sep": "\u2028", "cjk": "日本"},
        {"base64": "aGVsbG8e+3d29ybGQ=", "formula": "2e+3"},
        {"floats": [9999999999999998.0, -9999999999999998.0, 1e-300, 5e-324, -0.0]},
        {Colour.RED: 1},  # a str subclass is a string key
        OrderedDict(a=OrderedDict(b=[1, (2, 3)])),
        {"ints": list(range(1000)), "deep": [[[[[[{"k": "v"}]]]]]]},
    ],
    ids=[
        "escaped-nul",
        "more-backslashes",
        "unicode",
        "e-plus-text",
        "floats",
        "str-enum",
        "ordered",
        "shapes",
    ],
)
def test_dumps_accepts_storable_values(value):
    assert dumps(value) == ai.core.runs.serialization._encode(value)


def test_non_string_keys_are_found_at_any_depth_and_in_dict_subclasses():
    deep: Any = {"k": "v"}
    for _ in range(200):
        deep = {"d": [deep]}
    assert has_non_string_key(deep) is False
    deep["d"][0]["d"][0]["bad"] = OrderedDict({3: "x"})
    assert has_non_string_key(deep) is True
    assert refusal(deep).path.endswith(".bad[3]")


def test_a_key_that_is_not_even_coercible_keeps_the_not_json_message():
    error = refusal({"k": {(1, 2): 1}})
    assert error.path == "state.k[(1, 2)]"
    assert error.message.startswith("snapshot is not JSON: state.k[(1, 2)]: key of type tuple")


# --- where the engine encodes ------------------------------------------------------------


def test_a_step_output_with_an_int_key_fails_the_step_naming_the_record():
    store = ai.snapshot.memory()

    step = ai.step("count", noop, output=lambda ctx: {1: 2})
    wf = ai.workflow(name="w", steps=[step], snapshot_store=store)
    result = wf.execute(None, run_id="r")
    assert result.status == "failed"
    assert isinstance(result.error, SnapshotSerializationError)
    assert result.error.path == "steps.count.output[1]"
    assert store.load("r").status == "failed"


def test_an_input_with_a_nul_is_refused_and_nothing_is_written():
    store = ai.snapshot.memory()
    wf = ai.workflow(name="w", steps=[ai.step("a", lambda ctx: None)], snapshot_store=store)
    result = wf.execute({"q": "a\x00b"}, run_id="r")
    assert result.status == "failed"
    assert result.error.path == "input.q"
    assert store.load("r") is None


def test_a_supervisor_iteration_with_an_int_key_is_refused():
    store = ai.snapshot.memory()
    sup = ai.supervisor(
        name="s",
        intents={"worker": lambda ctx: {"by_id": {7: "seven"}}},
        route=lambda ctx: ai.END if ctx.iteration >= 1 else "worker",
        snapshot_store=store,
    )
    result = sup.execute("go", run_id="r")
    assert result.status == "failed"
    assert isinstance(result.error, SnapshotSerializationError)
    assert result.error.path == "snapshots.0.result.worker.output.by_id[7]"
    stored = store.load("r")
    assert (stored.status, stored.state, stored.snapshots) == ("failed", {}, [])


# --- names --------------------------------------------------------------------------------


def noop(ctx: Any) -> None:
    return None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: ai.step("s" * (MAX_STEP_NAME_LENGTH + 1), noop),
            "ai.step(): the step name 'ssss",
        ),
        (
            lambda: ai.parallel("p", [ai.step("c\x00", noop)]),
            "ai.step(): the step name 'c\\x00' contains a NUL character",
        ),
        (
            lambda: ai.workflow(name="w" * (MAX_FLOW_NAME_LENGTH + 1), steps=[ai.step("a", noop)]),
            f"is {MAX_FLOW_NAME_LENGTH + 1} characters long; the limit is {MAX_FLOW_NAME_LENGTH}",
        ),
        (
            lambda: ai.workflow(
                name="w", version="v" * (MAX_VERSION_LENGTH + 1), steps=[ai.step("a", noop)]
            ),
            'ai.workflow("w"): the version \'vvvv',
        ),
        (
            lambda: ai.workflow(name="w\ud800", steps=[ai.step("a", noop)]),
            "ai.workflow(): the name 'w\\ud800' contains a lone surrogate U+D800",
        ),
    ],
    ids=["long-step", "nul-child", "long-workflow", "long-version", "surrogate-name"],
)
def test_workflow_names_that_cannot_be_stored_are_refused_when_built(build, message):
    with pytest.raises(ai.WorkflowError) as info:
        build()
    assert message in info.value.message
    assert "\n" not in info.value.message and len(info.value.message) < 200


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "s" * (MAX_FLOW_NAME_LENGTH + 1)}, "ai.supervisor(): the name 'ssss"),
        ({"version": "9" * (MAX_VERSION_LENGTH + 1)}, 'ai.supervisor("s"): the version'),
        ({"version": 3}, 'ai.supervisor("s"): version must be a string, got 3'),
        ({"intents": {"a\x00": noop}}, "the intent name 'a\\x00' contains a NUL character"),
    ],
    ids=["long-name", "long-version", "int-version", "nul-intent"],
)
def test_supervisor_names_that_cannot_be_stored_are_refused_when_built(options, message):
    kwargs: dict[str, Any] = {"name": "s", "intents": {"worker": noop}, "route": noop}
    with pytest.raises(ai.SupervisorFailedError) as info:
        ai.supervisor(**{**kwargs, **options})
    assert message in info.value.message


def test_names_at_the_limits_are_accepted():
    step = ai.step("s" * MAX_STEP_NAME_LENGTH, noop)
    wf = ai.workflow(
        name="w" * MAX_FLOW_NAME_LENGTH, version="v" * MAX_VERSION_LENGTH, steps=[step]
    )
    assert wf.steps[0].name == step.name

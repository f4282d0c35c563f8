"""The turn-to-turn state diff of the sessions admin: JSON-path-like keys, nested objects and
lists, values compared as JSON."""

from __future__ import annotations

from warlock_ai.admin.state_diff import ADDED, CHANGED, REMOVED, Change, compact, state_changes


def test_nested_keys_are_named_by_path_in_document_order():
    old = {"customer": {"id": 7, "tier": None, "tags": ["a"]}, "notes": ["hi"], "gone": 1}
    new = {"customer": {"id": 7, "tier": "gold", "tags": ["a", "b"]}, "notes": [], "new": {}}
    assert state_changes(old, new) == [
        Change("customer.tier", CHANGED, None, "gold"),
        Change("customer.tags[1]", ADDED, new="b"),
        Change("notes[0]", REMOVED, old="hi"),
        Change("gone", REMOVED, old=1),
        Change("new", ADDED, new={}),
    ]


def test_keys_that_are_not_names_are_quoted():
    changes = state_changes({"a b": {"é-1": 1}, "2x": 0}, {"a b": {"é-1": 2}, "2x": 0})
    assert [c.path for c in changes] == ['["a b"]["é-1"]']


def test_values_compare_as_json_and_type_changes_are_changes():
    assert state_changes({"n": 1}, {"n": True}) == [Change("n", CHANGED, 1, True)]
    assert state_changes({"n": 1}, {"n": 1.0}) == [Change("n", CHANGED, 1, 1.0)]
    assert state_changes({"n": [1]}, {"n": {"0": 1}}) == [Change("n", CHANGED, [1], {"0": 1})]
    assert state_changes({"n": {"a": [1, {"b": 2}]}}, {"n": {"a": [1, {"b": 2}]}}) == []


def test_a_state_that_is_not_an_object_changes_whole():
    assert state_changes([1], "x") == [Change("(the whole state)", CHANGED, [1], "x")]


def test_long_values_are_cut_for_display_and_unicode_kept():
    text = compact({"reply": "Zoë " * 100})
    assert len(text) == 160 and text.endswith("…") and "Zoë" in text
    assert Change("p", ADDED, new="☀").new_text == '"☀"'

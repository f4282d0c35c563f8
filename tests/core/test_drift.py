"""The drift diff between a stored workflow fingerprint and the current definition."""

from __future__ import annotations

import warlock_ai as ai
from warlock_ai.core.workflow.drift import diff_definitions


def noop(ctx):
    return None


def wf(*steps, version=None):
    return ai.workflow(name="w", version=version, steps=list(steps))


def step(name):
    return ai.step(name, run=noop)


def diff(old, new):
    return diff_definitions(old.fingerprint, new.fingerprint)


def test_identical_definitions_have_no_diff():
    result = diff(wf(step("a"), step("b")), wf(step("a"), step("b")))
    assert not result
    assert result.lines() == []


def test_a_step_renamed_in_place_is_a_rename():
    result = diff(
        wf(step("fetch"), step("extract"), step("save")),
        wf(step("fetch"), step("parse"), step("save")),
    )
    assert result.renamed == [("extract", "parse")]
    assert (result.added, result.removed, result.moved) == ([], [], [])
    assert result.lines() == ['step "extract" renamed to "parse"']


def test_added_and_removed_steps():
    result = diff(wf(step("a"), step("b")), wf(step("a"), step("b"), step("c")))
    assert result.added == ["c"] and not result.removed
    result = diff(wf(step("a"), step("b"), step("c")), wf(step("a"), step("c")))
    assert result.removed == ["b"] and not result.added


def test_a_step_of_another_kind_in_place_is_not_a_rename():
    parallel = ai.parallel("fan", [step("x"), step("y")])
    result = diff(wf(step("a"), step("b")), wf(step("a"), parallel))
    assert result.removed == ["b"]
    assert result.added == ["fan"]
    assert not result.renamed


def test_reordered_steps_are_moved():
    result = diff(wf(step("a"), step("b"), step("c")), wf(step("a"), step("c"), step("b")))
    assert len(result.moved) == 1 and result.moved[0] in {"b", "c"}
    assert not (result.added or result.removed or result.renamed)


def test_parallel_children_are_compared_with_a_path():
    old = wf(ai.parallel("fan", [step("x"), step("y")]))
    new = wf(ai.parallel("fan", [step("x"), step("z"), step("w")]))
    result = diff(old, new)
    assert result.renamed == [("fan/y", "fan/z")]
    assert result.added == ["fan/w"]


def test_kind_change_under_the_same_name_is_a_change():
    old = wf(step("a"), step("b"))
    new = wf(step("a"), ai.parallel("b", [step("x")]))
    result = diff(old, new)
    assert ("b", "kind changed from run to parallel") in result.changed
    assert "fan" not in " ".join(result.lines())


def test_version_change_is_reported():
    result = diff(wf(step("a"), version="1"), wf(step("a"), version="2"))
    assert result.version == ("1", "2")
    assert result.lines() == ["version changed from 1 to 2"]


def test_a_missing_stored_fingerprint_says_so():
    result = diff_definitions(None, wf(step("a")).fingerprint)
    assert result
    assert result.unknown
    assert "did not record" in result.lines()[0]

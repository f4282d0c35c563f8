"""ai.config and store precedence (reference section 5, case 67)."""

import pytest

import warlock_ai as ai
from warlock_ai.core.runs import config as config_module


def test_case_67_config_starts_empty():
    """Case 67: {} initially."""
    assert ai.get_config() == {}


def test_case_67_set_then_resolve_returns_same_object():
    store = ai.snapshot.memory()
    ai.config(default_snapshot_store=store)
    assert config_module.resolve("default_snapshot_store") is store


def test_case_67_empty_set_keeps_earlier_values():
    store = ai.snapshot.memory()
    ai.config(default_snapshot_store=store)
    assert ai.config() == {"default_snapshot_store": store}
    assert ai.get_config()["default_snapshot_store"] is store


def test_case_67_mutating_a_copy_changes_nothing():
    store = ai.snapshot.memory()
    ai.config(default_snapshot_store=store)
    copy = ai.get_config()
    copy["default_snapshot_store"] = None
    copy["default_store"] = "x"
    assert ai.get_config() == {"default_snapshot_store": store}


def test_none_clears_a_key():
    ai.config(default_snapshot_store=ai.snapshot.memory())
    ai.config(default_snapshot_store=None)
    assert ai.get_config() == {}


def test_unknown_key_is_refused_with_the_known_keys():
    with pytest.raises(TypeError, match="default_snapshot_store"):
        ai.config(default_snapshot_stor=ai.snapshot.memory())


def test_listener_gets_a_copy_and_a_failing_listener_is_swallowed():
    seen = []
    remove_ok = config_module.on_config_applied(seen.append)

    def broken(_):
        raise RuntimeError("listener bug")

    remove_broken = config_module.on_config_applied(broken)
    try:
        store = ai.snapshot.memory()
        ai.config(default_snapshot_store=store)
        assert seen == [{"default_snapshot_store": store}]
    finally:
        remove_ok()
        remove_broken()


def test_precedence_definition_then_config_then_fallback():
    """Reference 5: explicit store, then ai.config, then the host's fallback, then nothing."""
    own, configured, fallback = ai.snapshot.memory(), ai.snapshot.memory(), ai.snapshot.memory()
    steps = [ai.step("a", lambda ctx: ctx.state.update(a=1))]
    bare = ai.workflow(name="p", steps=steps)
    assert bare.store is None
    assert bare.execute(run_id="r0").error is None  # no store: writes are skipped
    with pytest.raises(ai.WorkflowError, match="no snapshot store"):
        bare.resume("r0")

    config_module.register_fallback("default_snapshot_store", lambda: fallback)
    assert bare.store is fallback
    ai.config(default_snapshot_store=configured)
    assert bare.store is configured
    assert ai.workflow(name="p", steps=steps, snapshot_store=own).store is own

    bare.execute(run_id="r1")
    assert configured.load("r1") is not None and fallback.load("r1") is None


def test_default_is_read_when_used_not_at_definition_time():
    wf = ai.workflow(name="late", steps=[ai.step("a", lambda ctx: None)])
    store = ai.snapshot.memory()
    ai.config(default_snapshot_store=store)
    wf.execute(run_id="late-1")
    assert store.list() == ["late-1"]

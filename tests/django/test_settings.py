"""WARLOCK_AI settings: defaults, store selection by dotted path, clear errors."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import warlock_ai as ai
from warlock_ai.conf import warlock_settings
from warlock_ai.stores.handler import get_snapshot_store
from warlock_ai.stores.memory import MemorySnapshotStore
from warlock_ai.stores.orm import DatabaseSnapshotStore

MEMORY = {"BACKEND": "warlock_ai.stores.memory.MemorySnapshotStore"}


def steps():
    return [ai.step("a", lambda ctx: ctx.state.update(a=1))]


def test_defaults_without_any_setting():
    assert warlock_settings.FLOW_MODULES == ["flows"]
    assert warlock_settings.LEASE_SECONDS == 300
    store = get_snapshot_store()
    assert isinstance(store, DatabaseSnapshotStore) and store.using == "default"


@pytest.mark.django_db(databases=["default"])
def test_definitions_use_the_settings_store_by_default():
    wf = ai.workflow(name="settings-default", steps=steps())
    assert wf.store is get_snapshot_store()
    wf.execute(run_id="settings-1")
    from warlock_ai.models import Snapshot

    assert Snapshot.objects.get(pk="settings-1").status == "completed"


def test_backend_by_dotted_path_with_options():
    with override_settings(WARLOCK_AI={"SNAPSHOT_STORE": MEMORY}):
        store = get_snapshot_store()
        assert isinstance(store, MemorySnapshotStore)
        assert get_snapshot_store() is store  # built once
        wf = ai.workflow(name="settings-memory", steps=steps())
        wf.execute(run_id="m-1")
        assert store.load("m-1").status == "completed"
    with override_settings(
        WARLOCK_AI={
            "SNAPSHOT_STORE": {
                "BACKEND": DatabaseSnapshotStore.__module__ + ".DatabaseSnapshotStore",
                "OPTIONS": {"using": "pg"},
            }
        }
    ):
        assert get_snapshot_store().using == "pg"
    assert isinstance(get_snapshot_store(), DatabaseSnapshotStore)  # rebuilt after the change


def test_store_given_to_a_definition_and_ai_config_win_over_settings():
    own, configured = ai.snapshot.memory(), ai.snapshot.memory()
    with override_settings(WARLOCK_AI={"SNAPSHOT_STORE": MEMORY}):
        try:
            ai.config(default_snapshot_store=configured)
            assert ai.workflow(name="p", steps=steps()).store is configured
            assert ai.workflow(name="p", steps=steps(), snapshot_store=own).store is own
        finally:
            ai.reset_config()


def test_none_disables_the_default_store():
    with override_settings(WARLOCK_AI={"SNAPSHOT_STORE": None}):
        assert ai.workflow(name="p", steps=steps()).store is None


def test_misspelled_backend_names_the_path():
    bad = {"SNAPSHOT_STORE": {"BACKEND": "warlock_ai.stores.orm.DatabaseSnapshotStor"}}
    with override_settings(WARLOCK_AI=bad), pytest.raises(ImproperlyConfigured) as info:
        get_snapshot_store()
    assert "warlock_ai.stores.orm.DatabaseSnapshotStor" in str(info.value)
    assert 'WARLOCK_AI["SNAPSHOT_STORE"]["BACKEND"]' in str(info.value)


def test_options_that_do_not_fit_the_backend():
    bad = {"SNAPSHOT_STORE": {**MEMORY, "OPTIONS": {"colour": "blue"}}}
    with override_settings(WARLOCK_AI=bad), pytest.raises(ImproperlyConfigured, match="OPTIONS"):
        get_snapshot_store()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"SNAPSHOT_STOR": MEMORY}, "unknown keys"),
        ({"SNAPSHOT_STORE": "warlock_ai.stores.memory.MemorySnapshotStore"}, "must be"),
        ({"SNAPSHOT_STORE": {**MEMORY, "OPTIONS": []}}, "OPTIONS"),
        ({"SNAPSHOT_STORE": {**MEMORY, "TIMEOUT": 3}}, "unknown keys"),
        (["not", "a", "dict"], "must be a dict"),
    ],
)
def test_malformed_settings_fail_loudly(value, message):
    with override_settings(WARLOCK_AI=value), pytest.raises(ImproperlyConfigured, match=message):
        warlock_settings.SNAPSHOT_STORE  # noqa: B018


def test_unknown_attribute_is_an_error():
    with pytest.raises(AttributeError):
        warlock_settings.NOT_A_SETTING  # noqa: B018

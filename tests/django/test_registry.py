"""The flow registry: flows.py of every installed app is registered when Django starts."""

from __future__ import annotations

import types

import pytest

import warlock_ai as ai
from example_project.catalog import flows as catalog_flows
from warlock_ai.core.errors import WorkflowError
from warlock_ai.registry import UnknownFlowError, autodiscover, registry

FLOW = "catalog-import"


@pytest.fixture
def restore_registry():
    """Put the registry back exactly as Django's startup left it."""
    flows, origins = dict(registry._flows), dict(registry._origins)
    yield registry
    with registry._lock:
        registry._flows.clear()
        registry._flows.update(flows)
        registry._origins.clear()
        registry._origins.update(origins)


def noop(ctx):
    return None


def build(name: str, *steps: str, version: str = "1") -> ai.Workflow:
    return ai.workflow(
        name=name, version=version, steps=[ai.step(s, noop) for s in steps or ("only",)]
    )


class FakeSupervisor:
    """Has a supervisor's kind, name and signature, but is no ``Definition``: refused."""

    kind = "supervisor"
    signature = "0badcafe"

    def __init__(self, name: str) -> None:
        self.name = name


# --- what startup registered ---------------------------------------------------------------


def test_catalog_import_is_registered_at_startup():
    assert registry.find(FLOW) is catalog_flows.catalog_import
    assert registry.get("workflow", FLOW) is catalog_flows.catalog_import
    assert FLOW in registry.names()
    assert catalog_flows.catalog_import in registry.all()


def test_autodiscover_again_is_harmless(restore_registry):
    before = registry.all()
    autodiscover(["flows"])
    assert registry.all() == before
    assert registry.find(FLOW) is catalog_flows.catalog_import


def test_kind_prefix_picks_the_kind():
    assert registry.find(f"workflow:{FLOW}") is catalog_flows.catalog_import
    with pytest.raises(UnknownFlowError, match=f'unknown supervisor "{FLOW}"'):
        registry.find(f"supervisor:{FLOW}")


def test_a_colon_that_is_not_a_kind_is_part_of_the_name(restore_registry):
    definition = registry.register(build("team:import"))
    assert registry.find("team:import") is definition


# --- unknown names ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "lookup",
    [
        lambda: registry.find("no-such-flow"),
        lambda: registry.get("workflow", "no-such-flow"),
        lambda: registry.find("workflow:no-such-flow"),
    ],
    ids=["find", "get", "find-with-kind"],
)
def test_unknown_names_raise_listing_the_known_flows(lookup):
    with pytest.raises(UnknownFlowError) as info:
        lookup()
    error = info.value
    assert isinstance(error, LookupError) and isinstance(error, ai.AIError)
    assert error.code == "UNKNOWN_FLOW"
    assert '"no-such-flow"' in error.message
    assert f"registered flows: {', '.join(registry.names())}" in error.message
    assert FLOW in error.message


def test_unknown_name_in_an_empty_registry_says_where_flows_come_from(restore_registry):
    registry.clear()
    with pytest.raises(UnknownFlowError, match=r"flows\.py"):
        registry.find(FLOW)


def test_a_name_shared_by_two_kinds_must_be_qualified(restore_registry):
    supervisor = registry.register(
        ai.supervisor(name=FLOW, intents={"w": lambda ctx: {}}, route=lambda ctx: ai.END)
    )
    with pytest.raises(UnknownFlowError, match="several flows") as info:
        registry.find(FLOW)
    assert f"workflow:{FLOW}" in info.value.message
    assert f"supervisor:{FLOW}" in info.value.message
    assert registry.find(f"supervisor:{FLOW}") is supervisor
    assert registry.find(f"workflow:{FLOW}") is catalog_flows.catalog_import


# --- registering ------------------------------------------------------------------------


def test_a_different_definition_under_a_registered_name_is_refused(restore_registry):
    impostor = build(FLOW, "fetch", "upsert", version="9")
    with pytest.raises(WorkflowError, match="already registered") as info:
        registry.register(impostor, origin="somewhere_else.flows")
    assert "example_project.catalog.flows" in info.value.message  # where the first came from
    assert registry.find(FLOW) is catalog_flows.catalog_import


def test_an_identical_looking_copy_is_still_a_different_definition(restore_registry):
    copy = ai.workflow(name=FLOW, version="1", steps=list(catalog_flows.catalog_import.steps))
    with pytest.raises(WorkflowError, match="already registered"):
        registry.register(copy)


def test_registering_the_same_definition_again_is_a_no_op(restore_registry):
    before = registry.all()
    assert registry.register(catalog_flows.catalog_import) is catalog_flows.catalog_import
    assert registry.all() == before


def test_replace_true_swaps_the_definition(restore_registry):
    replacement = build(FLOW, "fetch", "upsert", version="9")
    assert registry.register(replacement, replace=True) is replacement
    assert registry.find(FLOW) is replacement
    assert registry.get("workflow", FLOW) is replacement
    assert registry.names().count(FLOW) == 1


def test_restore_registry_fixture_put_catalog_import_back():
    # Runs after the tests above (file order): they replaced or shadowed catalog-import.
    assert registry.find(FLOW) is catalog_flows.catalog_import
    assert registry.names().count(FLOW) == 1


def test_only_definitions_can_be_registered(restore_registry):
    for value in (object(), "catalog-import", ai.Workflow, FakeSupervisor, FakeSupervisor(FLOW)):
        with pytest.raises(TypeError):
            registry.register(value)


def test_unregister_removes_a_flow(restore_registry):
    registry.unregister("workflow", FLOW)
    assert FLOW not in registry.names()
    with pytest.raises(UnknownFlowError):
        registry.find(FLOW)
    registry.unregister("workflow", FLOW)  # unknown: nothing happens


# --- register_module ------------------------------------------------------------------------

MODULE_SOURCE = """
import warlock_ai as ai

def noop(ctx):
    return None

module_level = ai.workflow(name="module-level", steps=[ai.step("a", noop)])
also_module_level = ai.workflow(name="also-module-level", steps=[ai.step("b", noop)])
alias = module_level  # the same object twice: registered once

def factory():
    return ai.workflow(name="made-in-a-function", steps=[ai.step("c", noop)])

FLOWS = [ai.workflow(name="in-a-list", steps=[ai.step("d", noop)])]
SETTINGS = {"flow": ai.workflow(name="in-a-dict", steps=[ai.step("e", noop)])}

class Impostor:
    kind = "workflow"
    name = "a-class"
    signature = "12345678"

Workflow = ai.Workflow
"""


def test_register_module_takes_module_level_definitions_only(restore_registry):
    module = types.ModuleType("fake_app.flows")
    exec(compile(MODULE_SOURCE, "fake_app/flows.py", "exec"), module.__dict__)

    found = registry.register_module(module)

    assert {d.name for d in found} == {"module-level", "also-module-level"}
    assert registry.find("module-level") is module.module_level
    assert registry.find("also-module-level") is module.also_module_level
    for name in ("made-in-a-function", "in-a-list", "in-a-dict", "a-class"):
        assert name not in registry.names()
        with pytest.raises(UnknownFlowError):
            registry.find(name)
    assert FLOW in registry.names()  # the others stay

    # A second module defining a registered name is refused, naming the first module.
    other = types.ModuleType("other_app.flows")
    other.module_level = build("module-level", "z")
    with pytest.raises(WorkflowError, match=r"fake_app\.flows"):
        registry.register_module(other)
    assert registry.find("module-level") is module.module_level

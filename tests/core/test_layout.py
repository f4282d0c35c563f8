"""The package's architecture, checked on its source: the kernel never imports a kind, kinds do
not reach into each other, no module imports itself round in a cycle, every error class lives in
``core/errors.py``, and the public import paths users write keep working."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import warlock_ai
from warlock_ai.core.errors import AIError

PACKAGE = Path(warlock_ai.__file__).parent
KINDS = ("workflow", "supervisor", "orchestrator")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.parts and "management" not in path.parts
    }


ALL = modules()


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str) -> set[str]:
    """Modules of ``warlock_ai`` that module ``name`` imports (at run time: imports inside
    functions count, ``if TYPE_CHECKING:`` ones do not)."""
    path = ALL[name]
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from p import x": the module p.x, or p itself when x is a name in it.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in ALL else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in ALL:
                target = target.rpartition(".")[0]
            if target.startswith("warlock_ai") and target != name:
                found.add(target)
    return found


GRAPH = {name: imports_of(name) for name in ALL}


def test_the_kernel_never_imports_a_kind_or_the_agents():
    offenders = {
        name: sorted(
            t for t in targets if t.split(".")[2:3] and t.split(".")[2] in (*KINDS, "agents")
        )
        for name, targets in GRAPH.items()
        if name.startswith("warlock_ai.core.runs")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


#: The orchestrator is a supervisor with sessions around it (its turn is a supervisor run
#: subclass): it builds on the supervisor, never the other way round, and on nothing else.
BUILDS_ON = {"orchestrator": ("supervisor",)}


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_never_reaches_into_another_kind(kind):
    allowed = BUILDS_ON.get(kind, ())
    others = tuple(
        f"warlock_ai.core.{other}" for other in KINDS if other != kind and other not in allowed
    )
    offenders = {
        name: sorted(t for t in targets if t.startswith(others))
        for name, targets in GRAPH.items()
        if name.startswith(f"warlock_ai.core.{kind}")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_engine_imports_nothing_outside_core():
    offenders = {
        name: sorted(t for t in targets if not t.startswith("warlock_ai.core"))
        for name, targets in GRAPH.items()
        if name.startswith("warlock_ai.core")
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_import_cycles():
    """Tarjan's strongly connected components over the module graph: each must be one
    module (the package roots re-export their children and are left out)."""
    roots = {
        "warlock_ai",
        "warlock_ai.core.workflow",
        "warlock_ai.core.supervisor",
        "warlock_ai.core.orchestrator",
    }
    graph = {n: {t for t in ts if t not in roots} for n, ts in GRAPH.items() if n not in roots}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert cycles == []


def test_every_error_class_is_defined_in_core_errors():
    for info in pkgutil.walk_packages(warlock_ai.__path__, "warlock_ai."):
        if ".migrations" in info.name or info.name.endswith(("providers.local", "api")):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue

    def subclasses(cls: type) -> list[type]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    ours = [c for c in subclasses(AIError) if c.__module__.startswith("warlock_ai")]
    assert len(ours) > 30
    assert {c.__name__ for c in ours if c.__module__ != "warlock_ai.core.errors"} == set()


@pytest.mark.parametrize(
    "path",
    [
        "warlock_ai.stores.orm.DatabaseSnapshotStore",
        "warlock_ai.stores.redis.RedisSnapshotStore",
        "warlock_ai.stores.memory.MemorySnapshotStore",
        "warlock_ai.stores.orm_checkpoints.DatabaseCheckpointStore",
        "warlock_ai.stores.redis.RedisCheckpointStore",
        "warlock_ai.stores.memory.MemoryCheckpointStore",
        "warlock_ai.stores.base.SnapshotStore",
    ],
)
def test_the_dotted_paths_users_put_in_settings_import(path):
    module, _, attr = path.rpartition(".")
    assert inspect.isclass(getattr(importlib.import_module(module), attr))


def test_the_public_api_is_the_package_root():
    for name in warlock_ai.__all__:
        assert getattr(warlock_ai, name) is not None, name
    assert warlock_ai.workflow is warlock_ai.core.workflow.workflow
    assert warlock_ai.WorkflowSnapshot.kind == "workflow"
    assert warlock_ai.SupervisorSnapshot.kind == "supervisor"

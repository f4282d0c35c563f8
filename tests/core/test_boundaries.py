"""The engine and the memory store never import Django."""

import subprocess
import sys

CHECK = """
import sys
import warlock_ai
import warlock_ai.core.workflow.run, warlock_ai.core.supervisor.run, warlock_ai.core.runs.effects
import warlock_ai.stores.base, warlock_ai.stores.memory, warlock_ai.snapshot
wf = warlock_ai.workflow(name="w", steps=[warlock_ai.step("a", lambda ctx: None)],
                         snapshot_store=warlock_ai.snapshot.memory())
assert wf.execute().error is None
loaded = sorted(m for m in sys.modules if m == "django" or m.startswith("django."))
print(",".join(loaded))
"""


def test_core_and_memory_store_never_import_django():
    out = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing/using warlock_ai.core pulled in Django modules: {out}"


def test_core_sources_have_no_django_import_statement():
    from pathlib import Path

    import warlock_ai.core

    offenders = [
        str(path)
        for path in Path(warlock_ai.core.__file__).parent.rglob("*.py")
        if "import django" in path.read_text() or "from django" in path.read_text()
    ]
    assert offenders == []

"""Lease owner ids for tests: one of a process of this host that has exited."""

from __future__ import annotations

import subprocess
import sys

from warlock_ai.core.runs.leases import local_owner_prefix


def dead_owner() -> str:
    """The owner id of a process of this host that has exited (and been reaped)."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return f"{local_owner_prefix()}{child.stdout.strip()}:deadbeef"

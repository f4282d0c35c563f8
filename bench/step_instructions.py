"""Engine cost per step in CPU instructions, counted by valgrind's callgrind: the same count
on every run, whatever else the machine is doing, so a refactor of the hot path can be
compared before/after to a fraction of a percent (wall-clock figures on a shared machine
move by several percent between runs).

A 10-step workflow of trivial steps runs N times in a child process under callgrind, and
once with N=0; the difference divided by the number of steps is reported for no store, the
memory store (sync) and the memory store (``aexecute``). ``--tree`` measures another
checkout (its ``warlock_ai`` is imported instead of this one), e.g. the commit before a change:

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/step_instructions.py --tree /tmp/before
    .venv/bin/python bench/step_instructions.py

Needs valgrind (Debian's ``valgrind`` package). Takes about a minute.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

STEPS = 10
WORKLOAD = """
import asyncio, sys
sys.path.insert(0, sys.argv[1])
import warlock_ai as ai
n, mode = int(sys.argv[2]), sys.argv[3]
steps = [ai.step(f"s{i}", (lambda k: lambda ctx: ctx.state.__setitem__(k, 1))(f"k{i}"))
         for i in range(STEPS)]
store = None if mode == "no store" else ai.snapshot.memory()
wf = ai.workflow(name="bench", steps=steps, snapshot_store=store)
if mode == "memory async":
    async def main():
        for i in range(n):
            await wf.aexecute(run_id=f"r{i}")
    asyncio.run(main())
else:
    for i in range(n):
        wf.execute(run_id=f"r{i}")
""".replace("STEPS", str(STEPS))


def instructions(tree: Path, runs: int, mode: str) -> int:
    result = subprocess.run(
        [
            *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
            *(sys.executable, "-c", WORKLOAD, str(tree), str(runs), mode),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", result.stderr)
    if found is None:
        raise SystemExit(f"callgrind reported no count:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind")
    print(f"{args.tree}: {args.runs} runs x {STEPS} steps under callgrind\n")
    print("| mode | instructions per step |\n|---|---:|")
    for mode in ("no store", "memory sync", "memory async"):
        base = instructions(args.tree, 0, mode)
        total = instructions(args.tree, args.runs, mode)
        print(f"| {mode} | {(total - base) // (args.runs * STEPS):,} |")


if __name__ == "__main__":
    main()

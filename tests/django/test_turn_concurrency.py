"""Two real processes sending turns to one session at once: every turn lands exactly once.

Each child is a ``manage.py shell`` that waits at a barrier file, then runs
``execute_turn turn-counter --session race --input "<tag>-<i>"`` N times through
``call_command`` (the command itself, without paying a Python start per turn), pausing up to
30 ms between turns as a client does (the session lock is not fair: a process sending turns
back to back could keep it). The turns of the two processes interleave on the session; the
session's lock (the checkpoint store's cross-process lock: a PostgreSQL advisory lock, a file
lock beside SQLite) serialises them, so the rows are turns 0..2N-1, each input appears once,
and each row's state extends the previous one.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time

import pytest

from tests.django.project import REPO_ROOT, manage_args, project_env, stored_turns

TURNS = 15  # per process
WAIT = 120

CHILD = """
import json, os, random, time
from pathlib import Path
from django.core.management import call_command
from django.core.management.base import CommandError

turns = Path(os.environ["WARLOCK_TEST_TURN_DIR"])
tag = os.environ["RACE_TAG"]
(turns / f"ready-{tag}").touch()
while not (turns / "go").exists():
    time.sleep(0.005)
failures = []
for i in range(int(os.environ["RACE_TURNS"])):
    try:
        call_command("execute_turn", "turn-counter", "--session", "race",
                     "--input", json.dumps(f"{tag}-{i}"), verbosity=0)
    except CommandError as exc:
        failures.append(f"{tag}-{i}: {exc}")
    time.sleep(random.uniform(0, 0.03))  # a client between two messages
print(json.dumps(failures))
"""


def racer(db: dict, tag: str) -> subprocess.Popen[str]:
    env = project_env(db, RACE_TAG=tag, RACE_TURNS=str(TURNS))
    return subprocess.Popen(
        manage_args("shell", "-v", "0", "-c", CHILD),
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("fresh_project_db", ["sqlite", "postgres"], indirect=True)
def test_two_processes_sending_turns_to_one_session_lose_and_repeat_nothing(turn_project):
    project = turn_project
    children = {tag: racer(project, tag) for tag in ("a", "b")}
    try:
        deadline = time.monotonic() + WAIT
        while not all((project["turns"] / f"ready-{tag}").exists() for tag in children):
            assert time.monotonic() < deadline, "the children never got ready"
            for child in children.values():
                assert child.poll() is None, child.communicate()
            time.sleep(0.02)
        (project["turns"] / "go").touch()
        outputs = {tag: child.communicate(timeout=WAIT) for tag, child in children.items()}
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    for tag, (out, err) in outputs.items():
        assert children[tag].returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == [], err

    rows = stored_turns(project, "turn-counter", "race")
    assert [row["turn_index"] for row in rows] == list(range(2 * TURNS))
    inputs = rows[-1]["state"]["inputs"]
    expected = {f"{tag}-{i}" for tag in children for i in range(TURNS)}
    assert sorted(inputs) == sorted(expected)  # each input exactly once: none lost, none twice
    for row in rows:  # each turn extended the state the turn before it left
        assert row["state"]["count"] == row["turn_index"] + 1
        assert row["state"]["inputs"] == inputs[: row["turn_index"] + 1]
    for tag in children:  # each process's turns landed in the order it sent them
        mine = [value for value in inputs if value.startswith(f"{tag}-")]
        assert mine == [f"{tag}-{i}" for i in range(TURNS)]
    interleaved = sum(1 for x, y in itertools.pairwise(inputs) if x[0] != y[0])
    assert interleaved > 1, f"the two processes never took turns: {inputs}"

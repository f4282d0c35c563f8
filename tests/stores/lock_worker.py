"""A process taking session locks, for tests/stores/test_session_locks.py.

Run as ``python -m tests.stores.lock_worker COMMAND ARGS`` from the repository root; the lock
comes from ``$WARLOCK_STORE_WORKER`` (the same JSON as ``tests.stores.worker``: ``kind``, and
``database`` or ``redis_url`` and ``prefix``). The worker prints one JSON line when it is
ready and, for ``append``, waits for a line on stdin before starting.

Commands:
    hold NAME SESSION               take the lock, say so, then sleep until killed
    append FILE NAME SESSION COUNT  COUNT times: under the lock, append "start PID" to FILE,
                                    sleep a little, append "end PID"
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from tests.stores.worker import CONFIG_ENV, configure_django


def build_lock(config: dict[str, Any]) -> Any:
    if config.get("database") is not None:
        from warlock_ai.stores.session_locks import database_session_lock

        return database_session_lock("default")
    if config["kind"] == "redis":
        from warlock_ai.stores.session_locks import RedisSessionLock

        return RedisSessionLock(url=config["redis_url"], prefix=config["prefix"])
    raise SystemExit(f"lock_worker: a {config['kind']!r} lock cannot reach another process")


def _say(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _append(path: str, line: str) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


def main(argv: list[str]) -> int:
    command, args = argv[0], argv[1:]
    config = json.loads(os.environ[CONFIG_ENV])
    if config.get("database") is not None:
        configure_django(config["database"])
    lock = build_lock(config)
    pid = os.getpid()
    if command == "hold":
        held = lock.acquire(args[0], args[1], timeout=30)
        _say({"ready": True, "pid": pid, "token": str(held.token)})
        time.sleep(600)
        return 0
    if command == "append":
        path, name, session, count = args[0], args[1], args[2], int(args[3])
        _say({"ready": True, "pid": pid})
        sys.stdin.readline()
        for _ in range(count):
            with lock.hold(name, session, timeout=60):
                _append(path, f"start {pid}")
                time.sleep(0.01)
                _append(path, f"end {pid}")
        lock.close()
        _say({"done": count, "pid": pid})
        return 0
    raise SystemExit(f"lock_worker: unknown command {command!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

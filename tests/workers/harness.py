"""Real ``rqworker`` processes on a fresh project database, and the means to kill them.

A :class:`Project` is one fresh database (PostgreSQL or SQLite, from ``fresh_project_db``)
migrated with ``tests.workers.settings``, one rq queue of its own on a dedicated Redis
database, and a token that prefixes every run id, queue and worker name of the test, so two
test sessions sharing a Redis never see each other's keys. Workers are killed the way a
reclaimed machine dies: the worker and its work horse (rq forks one per job, in a process
group of its own) both get ``SIGKILL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.django.project import REPO_ROOT, check, describe, query, snapshot_row

SETTINGS = "tests.workers.settings"
#: Redis database of these tests (the other Redis tests use the URL's own, 15 by default).
REDIS_DB = 13
COMMAND_TIMEOUT = 120


def worker_redis_url(redis_url: str) -> str:
    return urlunsplit(urlsplit(redis_url)._replace(path=f"/{REDIS_DB}"))


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"after {timeout:.0f} s still waiting for: {what}")
        time.sleep(every)


def on_host(host: str | None, args: list[str]) -> list[str]:
    """``args`` run as if on another machine named ``host`` (None: this one): in a UTS
    namespace of its own, so its lease owners and rq's record name ``host``, whose processes
    this host cannot see die (only their leases expiring tells). Needs root."""
    if host is None:
        return args
    return ["unshare", "--uts", "--", "sh", "-c", 'hostname "$0" && exec "$@"', host, *args]


def needs_root() -> None:
    """Fail under CI, skip elsewhere, when this process cannot make namespaces."""
    if os.geteuid() == 0:
        return
    if os.environ.get("CI"):
        pytest.fail("this test makes namespaces (another host): CI must run it as root")
    pytest.skip("this test makes namespaces (another host) and needs root")


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Worker:
    """``manage.py rqworker <queue>`` in a child process, its output in a log file."""

    def __init__(
        self,
        project: Project,
        name: str,
        burst: bool = False,
        worker_class: str | None = None,
        host: str | None = None,
        machine: Any = None,
    ) -> None:
        """``machine`` (a ``tests.workers.hosts.Machine``) runs it on that machine's network
        with its settings; else ``host`` names the other host (``on_host``), if any."""
        self.project = project
        self.name = f"{project.token}-{name}"
        self.log = project.tmp / f"{self.name}.log"
        args = ["rqworker", project.queue, "--name", self.name]
        if worker_class is not None:
            args += ["--worker-class", worker_class]
        command = project.manage_args(*args, *(["--burst"] if burst else []))
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                machine.wrap(command) if machine is not None else on_host(host, command),
                cwd=REPO_ROOT,
                env={**project.env, **machine.env} if machine is not None else project.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> list[int]:
        """SIGKILL the worker and its work horse at once; returns the horse pids killed."""
        if self.process.poll() is not None:
            return []
        os.kill(self.pid, signal.SIGSTOP)  # frozen: it cannot fork a new horse meanwhile
        horses = children(self.pid)
        for pid in horses:
            os.kill(pid, signal.SIGKILL)
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return horses

    def stop(self) -> None:
        """Warm shutdown (SIGTERM: finish the current job), SIGKILL when that takes too long."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait(self, timeout: float = COMMAND_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class Project:
    """A migrated fresh database, a queue and a token for one test."""

    def __init__(self, db: dict[str, Any], redis_url: str, tmp: Path) -> None:
        self.db = db
        self.token = "wt" + uuid.uuid4().hex[:10]
        self.queue = f"{self.token}-q"
        self.redis_url = worker_redis_url(redis_url)
        self.tmp = tmp
        self.gates = tmp / "gates"
        self.gates.mkdir(exist_ok=True)
        self.env = {
            **db["env"],
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "PYTHONUNBUFFERED": "1",
            "WARLOCK_TEST_RQ_QUEUE": self.queue,
            "WARLOCK_TEST_RQ_URL": self.redis_url,
            "WARLOCK_TEST_GATE_DIR": str(self.gates),
            # The orchestrators of tests.turns_app log their calls and hold there.
            "WARLOCK_TEST_TURN_DIR": str(self.gates),
        }
        self.workers: list[Worker] = []

    # --- children ---------------------------------------------------------------------

    @staticmethod
    def manage_args(*args: str) -> list[str]:
        return [sys.executable, "manage.py", *args]

    def manage(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run(
            self.manage_args(*args),
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, **env: str) -> subprocess.Popen[str]:
        """``manage.py *args`` started, its stdout and stderr piped (as text)."""
        return subprocess.Popen(
            self.manage_args(*args),
            cwd=REPO_ROOT,
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def migrate(self) -> None:
        check(self.manage("migrate", "--no-input", "-v", "0"))

    def shell(self, code: str) -> Any:
        """Run ``code`` in ``manage.py shell``; it must ``print`` one JSON value last."""
        result = check(self.manage("shell", "-v", "0", "-c", code))
        return json.loads(result.stdout.strip().splitlines()[-1])

    def drain(self, *options: str) -> list[dict[str, str]]:
        result = self.manage("drain_runs", "--json", *options)
        assert result.returncode == 0, describe(result)
        return json.loads(result.stdout)

    def boot_recovery(self) -> list[dict[str, str]]:
        """What a worker runs when it boots: put back the jobs of dead workers, then
        ``drain_runs --enqueue``; in one child, to keep the soak short."""
        code = (
            "import io, json\n"
            "from django.core.management import call_command\n"
            "from warlock_ai import jobs\n"
            "out = [{'run_id': r, 'outcome': o} for r, o in jobs.requeue_abandoned_jobs()]\n"
            "buffer = io.StringIO()\n"
            "call_command('drain_runs', '--enqueue', '--json', stdout=buffer)\n"
            "print(json.dumps(out + json.loads(buffer.getvalue())))\n"
        )
        return self.shell(code)

    def worker(
        self,
        name: str,
        burst: bool = False,
        worker_class: str | None = None,
        host: str | None = None,
        machine: Any = None,
    ) -> Worker:
        worker = Worker(
            self, name, burst=burst, worker_class=worker_class, host=host, machine=machine
        )
        self.workers.append(worker)
        return worker

    def enqueue_execute(self, flow: str, run_ids: list[str], input: Any = None) -> list[str]:
        """``jobs.enqueue_execute`` for each run id, in one child; returns the job ids."""
        code = (
            "import json\nfrom warlock_ai import jobs\n"
            f"ids = [jobs.enqueue_execute({flow!r}, {input!r}, run_id=r).id for r in {run_ids!r}]\n"
            "print(json.dumps(ids))\n"
        )
        return self.shell(code)

    def run_id(self, name: str) -> str:
        return f"{self.token}-{name}"

    # --- reading what the processes left --------------------------------------------------

    def side_effects(self, run_id: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT run_id, step, pid FROM worker_flows_sideeffect"
        if run_id is None:
            return query(self.db, sql + " ORDER BY id")
        return query(self.db, sql + " WHERE run_id = ? ORDER BY id", (run_id,))

    def step_counts(self, run_id: str) -> Counter[str]:
        return Counter(row["step"] for row in self.side_effects(run_id))

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        return snapshot_row(self.db, run_id)

    def statuses(self) -> Counter[str]:
        rows = query(
            self.db, "SELECT status, COUNT(*) AS n FROM warlock_ai_snapshot GROUP BY status"
        )
        return Counter({row["status"]: row["n"] for row in rows})

    def open_gate(self, run_id: str) -> None:
        (self.gates / run_id).touch()

    # --- Redis ----------------------------------------------------------------------------

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis_url)

    def rq_queue(self, connection: Any) -> Any:
        from rq import Queue

        return Queue(self.queue, connection=connection)

    def unfinished_report(self, run_ids: list[str]) -> str:
        """What a test that timed out left behind: each run not completed, with its snapshot's
        status and lease and what ``about`` adds, then the workers' last lines."""
        lines = []
        for run_id in run_ids:
            row = self.snapshot(run_id)
            if row is not None and row["status"] == "completed":
                continue
            brief = {k: v for k, v in (row or {}).items() if k not in ("state", "steps", "data")}
            lines.append(f"run {run_id}: snapshot {json.dumps(brief, default=str)[:600]}")
            lines += self.about(run_id)
        for worker in self.logs()[-4:]:
            tail = worker.output().splitlines()[-15:]
            lines.append(f"worker {worker.name} (exit {worker.process.poll()}):")
            lines += [f"  {line}" for line in tail]
        return "\n".join(lines)

    def about(self, run_id: str) -> list[str]:
        """More lines on an unfinished run: its rq job's status."""
        from rq.job import Job

        connection = self.redis()
        try:
            job = Job.fetch_many([f"warlock-run-{run_id}"], connection=connection)[0]
            status = job.get_status() if job is not None else "missing"
            return [f"  job {status} {job.meta if job is not None else ''}"]
        finally:
            connection.close()

    def logs(self) -> list[Any]:
        return self.workers

    def cleanup(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.kill()
        client = self.redis()
        try:
            keys = list(client.scan_iter(match=f"*{self.token}*", count=1000))
            if keys:
                client.delete(*keys)
            client.srem("rq:queues", f"rq:queue:{self.queue}")
            workers = [w for w in client.smembers("rq:workers") if self.token.encode() in w]
            if workers:
                client.srem("rq:workers", *workers)
        finally:
            client.close()

"""Real ``manage.py db_worker`` processes (django-tasks-db) on a fresh project database.

A :class:`TasksProject` is the rq tests' :class:`~tests.workers.harness.Project` with the
settings ``tests.workers.settings_tasks``: ``WARLOCK_AI["BACKGROUND"] = "tasks"``, a queue of
the test's own. A :class:`TaskWorker` runs tasks in its own process (no fork per task), so
killing it is one ``SIGKILL``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Any

from tests.django.project import REPO_ROOT, query
from tests.workers.harness import COMMAND_TIMEOUT, Project, on_host

SETTINGS = "tests.workers.settings_tasks"


class TaskWorker:
    """``manage.py db_worker`` on the project's queue, its output in a log file."""

    def __init__(
        self,
        project: TasksProject,
        name: str,
        batch: bool = False,
        command: str = "db_worker",
        host: str | None = None,
    ) -> None:
        self.name = f"{project.token}-{name}"
        self.log = project.tmp / f"{self.name}.log"
        args = [command, "--queue-name", project.queue, "--worker-id", self.name]
        args += ["--interval", "0.05", "--no-startup-delay", "--no-reload"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                on_host(host, project.manage_args(*args, *(["--batch"] if batch else []))),
                cwd=REPO_ROOT,
                env=project.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> bool:
        """SIGKILL, as a reclaimed machine dies; False when it had exited already."""
        if self.process.poll() is not None:
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        return True

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def wait(self, timeout: float = COMMAND_TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


class TasksProject(Project):
    """A migrated fresh database with django-tasks-db, and a tasks queue of the test."""

    def __init__(self, db: dict[str, Any], redis_url: str, tmp: Any) -> None:
        super().__init__(db, redis_url, tmp)
        self.queue = self.token  # django-tasks-db's queue names hold 32 characters at most
        self.env["DJANGO_SETTINGS_MODULE"] = SETTINGS
        self.env["WARLOCK_TEST_TASKS_QUEUE"] = self.queue
        self.task_workers: list[TaskWorker] = []

    def task_worker(
        self, name: str, batch: bool = False, command: str = "db_worker", host: str | None = None
    ) -> TaskWorker:
        worker = TaskWorker(self, name, batch=batch, command=command, host=host)
        self.task_workers.append(worker)
        return worker

    def enqueue_execute(self, flow: str, run_ids: list[str], input: Any = None) -> list[str]:
        """``background.enqueue_execute`` for each run id, in one child; the delivery keys."""
        return self.shell(self.enqueue_code(flow, run_ids, input))

    @staticmethod
    def enqueue_code(flow: str, run_ids: list[str], input: Any = None) -> str:
        return (
            "import json\nfrom warlock_ai import background\n"
            f"ids = [background.enqueue_execute({flow!r}, {input!r}, run_id=r).id "
            f"for r in {run_ids!r}]\n"
            "print(json.dumps(ids))\n"
        )

    def boot_recovery(self) -> list[dict[str, str]]:
        """What a worker's boot runs: ``drain_runs --enqueue`` (which first puts back the
        deliveries of dead workers)."""
        return self.drain("--enqueue")

    def deliveries(self) -> dict[str, dict[str, Any]]:
        rows = query(self.db, "SELECT * FROM warlock_ai_delivery")
        for row in rows if self.db["vendor"] == "sqlite" else ():
            for field in ("arguments", "notes", "outcome"):
                if isinstance(row[field], str):
                    row[field] = json.loads(row[field])
        return {row["key"]: row for row in rows}

    def task_results(self) -> list[dict[str, Any]]:
        rows = query(
            self.db,
            "SELECT id, status, args_kwargs, worker_ids, return_value "
            "FROM django_tasks_database_dbtaskresult "
            "WHERE queue_name = ? ORDER BY enqueued_at",
            (self.queue,),
        )
        for row in rows if self.db["vendor"] == "sqlite" else ():
            for field in ("args_kwargs", "worker_ids", "return_value"):
                if isinstance(row[field], str):
                    row[field] = json.loads(row[field])
        return rows

    def about(self, run_id: str) -> list[str]:
        deliveries, tasks = self.deliveries(), self.task_results()
        key = f"warlock-run-{run_id}"
        lines = [f"  delivery {json.dumps(deliveries.get(key), default=str)}"]
        for task in tasks:
            if task["args_kwargs"] == {"args": [key], "kwargs": {}}:
                lines.append(f"  task {json.dumps(task, default=str)}")
        return lines

    def logs(self) -> list[Any]:
        return self.task_workers

    def cleanup(self) -> None:
        for worker in self.task_workers:
            if worker.process.poll() is None:
                worker.kill()
        super().cleanup()

"""The store conformance suite's fixtures: one parametrised fixture per contract, over every
implementation, each on a real service.

memory (in process); sqlite ("default"); postgres16 ("pg", pgserver + pgvector); postgres15
("pg15", the machine's PostgreSQL 15, no pgvector); redis (tests.services.redis_url(), a key
prefix unique to the test, its keys deleted afterwards). A service that cannot start fails the
test: nothing here is skipped for a missing server.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests import services
from tests.stores import worker

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("memory", "sqlite", "postgres16", "postgres15", "redis")
DB_ALIASES = {"sqlite": "default", "postgres16": "pg", "postgres15": "pg15"}


def backend_params() -> list[Any]:
    params = []
    for kind in KINDS:
        marks: list[Any] = []
        if kind in DB_ALIASES:
            marks.append(pytest.mark.django_db(databases=[DB_ALIASES[kind]], transaction=True))
        if kind != "memory":
            marks.append(pytest.mark.services)
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


@dataclass
class Backend:
    """One implementation under test, and how to reach its data from outside the store."""

    kind: str
    alias: str | None = None
    redis_url: str | None = None
    prefix: str = ""
    made: list[Any] = field(default_factory=list)

    @property
    def shared(self) -> bool:
        """Whether two processes can use the same data (every store but memory)."""
        return self.kind != "memory"

    def snapshot_store(self, **options: Any) -> Any:
        import warlock_ai as ai

        if self.kind == "memory":
            store = ai.snapshot.memory(**options)
        else:
            store = worker.build_store(self.worker_config(), "snapshot", self.alias, **options)
        self.made.append(store)
        return store

    def checkpoint_store(self, **options: Any) -> Any:
        import warlock_ai as ai

        if self.kind == "memory":
            store = ai.checkpoint.memory(**options)
        else:
            store = worker.build_store(self.worker_config(), "checkpoint", self.alias, **options)
        self.made.append(store)
        return store

    def worker_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"kind": self.kind}
        if self.alias is not None:
            from django.db import connections

            # The test database (pytest-django renamed NAME), exactly as this process sees it.
            config["database"] = dict(connections[self.alias].settings_dict)
        if self.kind == "redis":
            config.update(redis_url=self.redis_url, prefix=self.prefix)
        return config

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.redis_url)

    def redis_keys(self, part: str = "") -> list[bytes]:
        client = self.redis()
        try:
            return sorted(client.scan_iter(match=f"{self.prefix}{part}*", count=1000))
        finally:
            client.close()

    def forget_lease_expiry(self, store: Any, run_id: str) -> None:
        """Leave the run's lease with an owner but no expiry (a hand edit, an old writer)."""
        if self.alias is not None:
            from warlock_ai.models import Snapshot

            Snapshot.objects.using(self.alias).filter(pk=run_id).update(lease_expires_at=None)
        elif self.kind == "redis":
            client = self.redis()
            try:
                client.hdel(store.key(run_id), "lease_expires_at")
            finally:
                client.close()
        else:
            owner, _ = store._leases[run_id]
            store._leases[run_id] = (owner, None)

    def snapshot_rows(self, store: Any) -> int:
        """How many snapshots the backend holds, counted beside the store's own API."""
        if self.alias is not None:
            from warlock_ai.models import Snapshot

            return Snapshot.objects.using(self.alias).count()
        if self.kind == "redis":
            return len(self.redis_keys(worker.SNAPSHOT_PREFIX))
        return len(store.list())

    def checkpoint_rows(self, store: Any) -> int | None:
        """How many checkpoint rows (database) or keys (Redis) exist; None for memory."""
        if self.alias is not None:
            from warlock_ai.models import Checkpoint

            return Checkpoint.objects.using(self.alias).count()
        if self.kind == "redis":
            return len(self.redis_keys(worker.CHECKPOINT_PREFIX))
        return None


def _backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    kind = request.param
    if kind == "redis":
        backend = Backend(kind, redis_url=services.redis_url())
        backend.prefix = f"warlock-conformance:{uuid.uuid4().hex[:12]}:"
    else:
        backend = Backend(kind, alias=DB_ALIASES.get(kind))
    yield backend
    for store in backend.made:
        close = getattr(store, "close", None)
        if callable(close):
            close()
    if kind == "redis":
        client = backend.redis()
        try:
            keys = list(client.scan_iter(match=f"{backend.prefix}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


@pytest.fixture(params=backend_params())
def snapshot_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every SnapshotStore implementation, one per test run of the parametrisation."""
    yield from _backend(request)


@pytest.fixture
def snapshot_store(snapshot_backend: Backend) -> Any:
    return snapshot_backend.snapshot_store()


@pytest.fixture(params=backend_params())
def checkpoint_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Every CheckpointStore implementation, one per test run of the parametrisation."""
    yield from _backend(request)


@pytest.fixture
def checkpoint_store(checkpoint_backend: Backend) -> Any:
    return checkpoint_backend.checkpoint_store()


# --- concurrent writers -------------------------------------------------------------------


class Writers:
    """Runs writer jobs together: real processes when the store is shared between processes,
    threads on the test's own store when it is not (memory)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.processes: list[subprocess.Popen[str]] = []

    def spawn(
        self, backend: Backend, *argv: str, module: str = "tests.stores.worker"
    ) -> subprocess.Popen[str]:
        env = {**self.env, worker.CONFIG_ENV: json.dumps(backend.worker_config(), default=str)}
        process = subprocess.Popen(
            [sys.executable, "-m", module, *argv],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.processes.append(process)
        return process

    @staticmethod
    def read_line(process: subprocess.Popen[str]) -> dict[str, Any]:
        line = process.stdout.readline()
        if not line:
            process.wait(10)
            status, stderr = process.returncode, process.stderr.read()
            raise AssertionError(f"worker {process.args[3:]} exited with {status}: {stderr}")
        return json.loads(line)

    def run(self, backend: Backend, store: Any, jobs: list[list[str]]) -> list[dict[str, Any]]:
        """Start every job, release them at once, and return what each reported."""
        if not backend.shared:
            return self._run_threads(store, jobs)
        started = [self.spawn(backend, *job) for job in jobs]
        for process in started:
            assert self.read_line(process)["ready"]
        for process in started:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = []
        for process in started:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, f"worker {process.args[3:]} failed: {err}"
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results

    @staticmethod
    def _run_threads(store: Any, jobs: list[list[str]]) -> list[dict[str, Any]]:
        barrier = threading.Barrier(len(jobs))
        results: list[Any] = [None] * len(jobs)

        def work(index: int, command: str, *args: str) -> None:
            writer = f"thread-{index}"
            barrier.wait(10)
            try:
                results[index] = {"writer": writer}
                results[index].update(worker.run_command(store, command, list(args), writer))
            except BaseException as exc:
                results[index] = exc

        threads = [threading.Thread(target=work, args=(i, *job)) for i, job in enumerate(jobs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(10)
            for pipe in (process.stdin, process.stdout, process.stderr):
                if pipe and not pipe.closed:
                    pipe.close()


@pytest.fixture
def writers(subprocess_env: dict[str, str]) -> Iterator[Writers]:
    """Concurrent writers; any process still running at the end of the test is killed."""
    env = {**subprocess_env, "PYTHONUNBUFFERED": "1"}
    env.pop(worker.CONFIG_ENV, None)
    pool = Writers(env)
    yield pool
    pool.close()


def run_async(coroutine: Any) -> Any:
    """``asyncio.run``, then close the database connection of asgiref's thread."""

    async def main() -> Any:
        from asgiref.sync import sync_to_async
        from django.db import connections

        try:
            return await coroutine
        finally:
            await sync_to_async(connections.close_all)()

    return asyncio.run(main())


# --- cache drivers with similarity search (semantic cache, memory) -------------------------

SIMILARITY_KINDS = ("memory", "lru", "sqlite", "postgres16", "postgres15")


def cache_params(kinds: tuple[str, ...]) -> list[Any]:
    """One param per cache driver kind, with the database and service marks it needs."""
    params = []
    for kind in kinds:
        marks: list[Any] = []
        if kind in DB_ALIASES:
            marks.append(pytest.mark.django_db(databases=[DB_ALIASES[kind]], transaction=True))
        if kind in DB_ALIASES or kind == "redis":
            marks.append(pytest.mark.services)
        params.append(pytest.param(kind, id=kind, marks=marks))
    return params


@pytest.fixture(params=cache_params(SIMILARITY_KINDS))
def store(request: pytest.FixtureRequest) -> Any:
    """A cache driver with similarity search, on each kind (8 dimensions in process)."""
    import warlock_ai as ai

    kind = request.param
    if kind == "memory":
        return ai.cache.memory(dimensions=8)
    if kind == "lru":
        return ai.cache.lru(max_entries=500, dimensions=8)
    return ai.cache.db(using=DB_ALIASES[kind])


@pytest.fixture
def embedder(store: Any) -> Any:
    """A topic embedder of the store's size (tests/embedders.py)."""
    from tests.embedders import TopicEmbedder

    return TopicEmbedder(dimensions=store.dimensions)

"""Real services for the test suite: PostgreSQL 16 + pgvector, PostgreSQL 15, Redis.

Importable without Django. Each finder returns a URL, starting the service at most once per
process and exporting the URL in ``os.environ`` so that child processes (``manage.py`` in crash
tests) reuse the same server instead of starting their own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

PG_URL_ENV = "WARLOCK_TEST_PG_URL"
PG15_URL_ENV = "WARLOCK_TEST_PG15_URL"
REDIS_URL_ENV = "WARLOCK_TEST_REDIS_URL"

DEFAULT_PG15_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"

_lock = threading.RLock()
# Handles kept alive for the whole process: pgserver stops its server when its handle is cleaned up.
_pgserver: Any = None
_redis_process: subprocess.Popen[bytes] | None = None
_checked_pg_urls: set[str] = set()


def postgres_url() -> str:
    """URL of a PostgreSQL with pgvector: ``$WARLOCK_TEST_PG_URL`` or a session-wide pgserver."""
    with _lock:
        url = os.environ.get(PG_URL_ENV)
        if url:
            _check_pgvector(url, source=f"${PG_URL_ENV}")
            return url
        url = _start_pgserver()
        _check_pgvector(url, source="pgserver")
        os.environ[PG_URL_ENV] = url
        return url


def started_pgserver() -> bool:
    """Whether this process started the pgserver behind ``postgres_url()``."""
    return _pgserver is not None


def _start_pgserver() -> str:
    global _pgserver
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); harmless here.
            warnings.simplefilter("ignore")
            import pgserver
    except ImportError as exc:
        raise RuntimeError(
            "No PostgreSQL with pgvector for the tests: install pgserver "
            "(`pip install pgserver`, CPython <= 3.12 wheels; part of the `dev` extra) or set "
            f"{PG_URL_ENV}=postgresql://user:pass@host:port/dbname pointing at a PostgreSQL "
            "server with the pgvector extension available."
        ) from exc
    pgdata = tempfile.mkdtemp(prefix="warlock-pg-")
    try:
        # cleanup_mode="delete": pgserver stops the server and removes pgdata at interpreter exit.
        _pgserver = pgserver.get_server(pgdata, cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(pgdata, ignore_errors=True)
        raise RuntimeError(
            f"pgserver could not start PostgreSQL in {pgdata}; set {PG_URL_ENV} to use an "
            f"existing PostgreSQL with pgvector instead. pgserver said: {exc}"
        ) from exc
    return _pgserver.get_uri()


def _check_pgvector(url: str, *, source: str) -> None:
    import psycopg

    if url in _checked_pg_urls:
        return
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"PostgreSQL from {source} ({url}) is not usable for the tests: {PG_URL_ENV} must "
            "point at a PostgreSQL server with pgvector installed and a user allowed to "
            f"CREATE EXTENSION vector. The server said: {exc}"
        ) from exc
    _checked_pg_urls.add(url)


def postgres15_url() -> str:
    """URL of the machine's PostgreSQL 15 (no pgvector): ``$WARLOCK_TEST_PG15_URL`` or local."""
    import psycopg

    url = os.environ.get(PG15_URL_ENV) or DEFAULT_PG15_URL
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise RuntimeError(
            f"PostgreSQL 15 does not answer at {url}: install and start it "
            "(`apt-get install postgresql-15`, trust auth for 127.0.0.1) or set "
            f"{PG15_URL_ENV}. The connection said: {exc}"
        ) from exc
    return url


def redis_url() -> str:
    """URL of a Redis: ``$WARLOCK_TEST_REDIS_URL``, the local one on 6379, or a started one."""
    with _lock:
        url = os.environ.get(REDIS_URL_ENV)
        if url:
            if not _redis_answers(url):
                raise RuntimeError(f"Redis from ${REDIS_URL_ENV} ({url}) does not answer PING.")
            return url
        url = DEFAULT_REDIS_URL if _redis_answers(DEFAULT_REDIS_URL) else start_redis_server()
        os.environ[REDIS_URL_ENV] = url
        return url


def _redis_answers(url: str) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def start_redis_server() -> str:
    """Start a private ``redis-server`` (no persistence) for this process; return its URL."""
    global _redis_process
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "No Redis for the tests: nothing answers at "
            f"{DEFAULT_REDIS_URL} and `redis-server` is not installed. "
            f"Run `apt-get install redis-server` (make test does) or set {REDIS_URL_ENV}."
        )
    workdir = tempfile.mkdtemp(prefix="warlock-redis-")
    atexit.register(shutil.rmtree, workdir, ignore_errors=True)
    for _attempt in range(3):
        port = _free_port()
        args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
        args += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir
        )
        url = f"redis://127.0.0.1:{port}/15"
        if _wait_for_redis(url, process):
            _redis_process = process
            atexit.register(_stop_process, process)
            return url
        _stop_process(process)
    raise RuntimeError(f"redis-server ({binary}) did not start; try running it by hand.")


def _wait_for_redis(url: str, process: subprocess.Popen[bytes], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False  # exited early, e.g. the port was taken meanwhile
        if _redis_answers(url):
            return True
        time.sleep(0.05)
    return False


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_settings(url: str) -> dict[str, Any]:
    """``sqlite:///abs/path`` or ``postgresql://user:pass@host:port/db`` -> a DATABASES entry.

    PostgreSQL URLs may carry libpq parameters as a query; ``?host=/socket/dir`` (what pgserver
    returns, ``postgresql://postgres:@/postgres?host=/tmp/...``) selects a Unix socket, anything
    else goes to OPTIONS.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        # "sqlite:///abs/path" is the documented form; tolerate "sqlite:////abs/path" too.
        path = "/" + unquote(parts.path).lstrip("/") if parts.path else ""
        if not path or path == "/":
            raise ValueError(f"sqlite URL needs an absolute file path: {url!r}")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ValueError(f"unsupported database URL scheme {parts.scheme!r} in {url!r}")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    from_query = {key: query.pop(key, "") for key in ("dbname", "user", "password", "host", "port")}
    name = unquote(parts.path.lstrip("/")) or from_query["dbname"] or "postgres"
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": unquote(parts.username or "") or from_query["user"],
        "PASSWORD": unquote(parts.password or "") or from_query["password"],
        "HOST": from_query["host"] or parts.hostname or "",
        "PORT": str(from_query["port"] or parts.port or ""),
        "OPTIONS": query,
        "TEST": {"NAME": f"test_{name}"},
    }


def database_url(pg_url: str, name: str) -> str:
    """``pg_url`` with its database name replaced by ``name`` (query such as ``?host=`` kept)."""
    parts = urlsplit(pg_url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def create_database(pg_url: str, name: str) -> str:
    """Create an empty database ``name`` on the server of ``pg_url``; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(pg_url, name)


def drop_database(pg_url: str, name: str) -> None:
    """Drop database ``name`` on the server of ``pg_url``, closing any connection left to it."""
    import psycopg
    from psycopg import sql

    # FORCE: a SIGKILLed child's backend may still hold a connection for a moment.
    statement = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    with psycopg.connect(pg_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)

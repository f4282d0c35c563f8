"""Real services for the test suite: PostgreSQL 16 + pgvector, PostgreSQL 15, Redis.

Importable without Django, and importing it starts nothing. Each finder returns a URL, starting
the service at most once per process and exporting the URL in ``os.environ`` so that child
processes (``manage.py`` in crash tests) reuse the same server instead of starting their own.
The finders are called only for the tests that need a server (the ``pg`` / ``pg15`` databases
of tests/settings.py are filled in by tests/conftest.py once a collected test asks for them);
``requested()`` says which ones this process has called.

- PostgreSQL 16 + pgvector: ``$WARLOCK_TEST_PG_URL``, else a pgserver of this process.
- PostgreSQL 15 without pgvector: ``$WARLOCK_TEST_PG15_URL``, else the machine's on
  127.0.0.1:5432, else a private cluster of this process from the installed server binaries
  (``/usr/lib/postgresql/*/bin``, Debian's ``postgresql`` package).
- Redis: ``$WARLOCK_TEST_REDIS_URL``, else the machine's on 127.0.0.1:6379, else a private
  ``redis-server`` of this process.

``WARLOCK_TEST_PG15_PROBE_URL`` / ``WARLOCK_TEST_REDIS_PROBE_URL`` replace the machine's
addresses above (point them at a closed port to test the fallbacks on a machine that has the
services). ``python tests/services.py apt-packages`` prints the Debian packages that are missing
for the fallbacks (``make services`` installs them).
"""

from __future__ import annotations

import atexit
import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

PG_URL_ENV = "WARLOCK_TEST_PG_URL"
PG15_URL_ENV = "WARLOCK_TEST_PG15_URL"
REDIS_URL_ENV = "WARLOCK_TEST_REDIS_URL"
# Where the machine's own servers are looked for before a private one is started.
PG15_PROBE_URL_ENV = "WARLOCK_TEST_PG15_PROBE_URL"
REDIS_PROBE_URL_ENV = "WARLOCK_TEST_REDIS_PROBE_URL"

DEFAULT_PG15_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
# Debian's layout (postgresql-common): one directory of server binaries per major version.
PG_BIN_GLOB = "/usr/lib/postgresql/*/bin"

_lock = threading.RLock()
# Handles kept alive for the whole process: pgserver stops its server when its handle is cleaned up.
_pgserver: Any = None
_redis_process: subprocess.Popen[bytes] | None = None
_checked_pg_urls: set[str] = set()
_clusters: list[PostgresCluster] = []
_requested: list[str] = []


def requested() -> list[str]:
    """What this process has asked for so far, each once, in order: ``"pg"``, ``"pg15"``,
    ``"redis"`` (the finders, whether they found a server or started one), ``"pg-cluster"``,
    ``"redis-server"`` (private servers started directly)."""
    with _lock:
        return list(_requested)


def _note(name: str) -> None:
    with _lock:
        if name not in _requested:
            _requested.append(name)


def postgres_url() -> str:
    """URL of a PostgreSQL with pgvector: ``$WARLOCK_TEST_PG_URL`` or a session-wide pgserver."""
    with _lock:
        _note("pg")
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
    """URL of a PostgreSQL 15 without pgvector.

    ``$WARLOCK_TEST_PG15_URL``; else the machine's (``$WARLOCK_TEST_PG15_PROBE_URL``, default
    127.0.0.1:5432) when it answers; else a private cluster started by this process
    (``start_postgres_cluster()``), its URL exported in ``$WARLOCK_TEST_PG15_URL``.
    """
    with _lock:
        _note("pg15")
        url = os.environ.get(PG15_URL_ENV)
        if url:
            error = _pg_error(url)
            if error is not None:
                raise RuntimeError(
                    f"PostgreSQL 15 from ${PG15_URL_ENV} ({url}) does not answer: {error}"
                )
            return url
        probe = _pg15_probe_url()
        url = probe if _pg_error(probe) is None else start_postgres_cluster().url
        os.environ[PG15_URL_ENV] = url
        return url


def _pg15_probe_url() -> str:
    return os.environ.get(PG15_PROBE_URL_ENV) or DEFAULT_PG15_URL


def _pg_error(url: str) -> str | None:
    """None when a PostgreSQL answers at ``url``, else what the connection said."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip() or type(exc).__name__
    return None


def postgres_bin_dirs() -> list[Path]:
    """Installed PostgreSQL server binaries (initdb, pg_ctl), version 15 first, then newest."""
    dirs = []
    for bindir in Path("/").glob(PG_BIN_GLOB.lstrip("/")):
        match = re.fullmatch(r"\d+", bindir.parent.name)
        if match and all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            dirs.append((int(bindir.parent.name), bindir))
    dirs.sort(key=lambda item: (item[0] != 15, -item[0]))
    return [bindir for _version, bindir in dirs]


class PostgresCluster:
    """A throwaway PostgreSQL cluster: its own data directory and socket in a temp dir, a free
    port on 127.0.0.1, trust authentication, no durability. Run as the ``postgres`` user (or
    ``nobody``) when this process is root, since initdb refuses to run as root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.workdir = Path(tempfile.mkdtemp(prefix="warlock-pg15-"))
        self.datadir = self.workdir / "data"
        self.logfile = self.workdir / "postgres.log"
        self.port = 0
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.user = _unprivileged_user()
            os.chown(self.workdir, self.user.pw_uid, self.user.pw_gid)
        self.started = False
        self.owner_pid = os.getpid()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, *args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        for name in ("PGDATA", "PGPORT", "PGHOST", "PGUSER", "PGDATABASE", "PGOPTIONS"):
            env.pop(name, None)
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env.update(HOME=str(self.workdir), USER=self.user.pw_name, LOGNAME=self.user.pw_name)
        return subprocess.run(
            [str(arg) for arg in args],
            cwd=self.workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,
        )

    def init(self) -> None:
        result = self.run(
            self.bindir / "initdb",
            *("-D", self.datadir, "-U", "postgres", "-A", "trust", "-E", "UTF8"),
            "--no-locale",
            "--no-sync",
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb ({self.bindir}) failed in {self.datadir}: {_last_lines(result)}"
            )
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# warlock_ai tests: a private, throwaway server\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.workdir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )

    def start(self) -> None:
        """Start on a free port (a few tries, in case another process takes it meanwhile)."""
        for _attempt in range(3):
            self.port = _free_port()
            result = self.run(
                self.bindir / "pg_ctl",
                *("start", "-w", "-t", "60", "-D", self.datadir, "-l", self.logfile),
                *("-o", f"-p {self.port}"),
            )
            if result.returncode == 0:
                self.started = True
                return
        log = self.logfile.read_text(errors="replace") if self.logfile.exists() else ""
        raise RuntimeError(
            f"PostgreSQL ({self.bindir}) did not start in {self.datadir}: "
            f"{_last_lines(result)} {log[-1000:]}"
        )

    def stop(self) -> None:
        if self.started:
            self.run(self.bindir / "pg_ctl", "stop", "-D", self.datadir, "-m", "immediate", "-w")
            self.started = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_at_exit(self) -> None:
        # Only the process that started it: a forked child inherits the atexit hooks.
        if os.getpid() == self.owner_pid:
            self.stop()

    def query(self, sql: str) -> Any:
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(sql).fetchone()
        return row[0] if row else None


def _unprivileged_user() -> pwd.struct_passwd:
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError(
        "Running as root and neither a `postgres` nor a `nobody` user exists to own a private "
        f"PostgreSQL cluster (initdb refuses root); set {PG15_URL_ENV}."
    )


def _last_lines(result: subprocess.CompletedProcess[str], count: int = 5) -> str:
    lines = (result.stderr or result.stdout or "").strip().splitlines()
    return " | ".join(lines[-count:]) or f"exit status {result.returncode}"


def start_postgres_cluster() -> PostgresCluster:
    """Start a private PostgreSQL (15 preferred) without pgvector for this process. It is
    stopped and its directory removed by ``stop()`` or, at the latest, when this process exits."""
    _note("pg-cluster")
    bindirs = postgres_bin_dirs()
    if not bindirs:
        raise RuntimeError(
            "No PostgreSQL 15 for the tests: nothing answers at "
            f"{_pg15_probe_url()} and no PostgreSQL server is installed ({PG_BIN_GLOB}). Run "
            f"`apt-get install postgresql` (make test does) or set {PG15_URL_ENV}."
        )
    refused = []
    for bindir in bindirs:
        cluster = PostgresCluster(bindir)
        try:
            cluster.init()
            cluster.start()
            has_vector = cluster.query(
                "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'"
            )
        except BaseException:
            cluster.stop()
            raise
        if has_vector:
            cluster.stop()
            refused.append(str(bindir))
            continue
        _clusters.append(cluster)
        atexit.register(cluster.stop_at_exit)
        return cluster
    raise RuntimeError(
        f"Every installed PostgreSQL ({', '.join(refused)}) has pgvector available; the tests "
        f"need one without it. Set {PG15_URL_ENV} to a PostgreSQL 15 without pgvector."
    )


def redis_url() -> str:
    """URL of a Redis: ``$WARLOCK_TEST_REDIS_URL``, the local one on 6379, or a started one."""
    with _lock:
        _note("redis")
        url = os.environ.get(REDIS_URL_ENV)
        if url:
            if not _redis_answers(url):
                raise RuntimeError(f"Redis from ${REDIS_URL_ENV} ({url}) does not answer PING.")
            return url
        probe = _redis_probe_url()
        url = probe if _redis_answers(probe) else start_redis_server()
        os.environ[REDIS_URL_ENV] = url
        return url


def _redis_probe_url() -> str:
    return os.environ.get(REDIS_PROBE_URL_ENV) or DEFAULT_REDIS_URL


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
    _note("redis-server")
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "No Redis for the tests: nothing answers at "
            f"{_redis_probe_url()} and `redis-server` is not installed. "
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


def unstarted_database_settings(alias: str) -> dict[str, Any]:
    """A PostgreSQL DATABASES entry for ``alias`` that names no server yet: tests/conftest.py
    fills in the real one (``database_settings(url)``, all but ``TEST``) when a collected test
    asks for the alias. Until then a connection fails at once, on a socket path saying why."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": f"/nonexistent/warlock-tests/{alias}-not-started",
        "PORT": "",
        "OPTIONS": {},
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


CHROMIUM = os.environ.get("WARLOCK_TEST_CHROMIUM", "/usr/bin/chromium")


def missing_apt_packages() -> list[str]:
    """Debian packages the test suite needs on this machine and that are not installed."""
    packages = []
    # Not only a fallback for 127.0.0.1:6379: tests/stores/test_store_outage.py starts and stops
    # a redis-server of its own, so the binary is needed even when a Redis answers.
    if shutil.which("redis-server") is None:
        packages.append("redis-server")
    # An explicit $WARLOCK_TEST_PG15_URL is used or reported as it is, never replaced.
    if (
        not os.environ.get(PG15_URL_ENV)
        and not postgres_bin_dirs()
        and _pg_error(_pg15_probe_url()) is not None
    ):
        packages.append("postgresql")  # Debian 12: PostgreSQL 15, without pgvector
    # The admin's browser tests drive Debian's Chromium through Playwright (never
    # `playwright install`, which downloads a browser).
    if not os.path.exists(CHROMIUM):
        packages.append("chromium")
    # Root runs the machines-in-namespaces soak (tests/workers/hosts.py): it starts a
    # PostgreSQL of its own in a network namespace, and sets the namespaces up with ip/sysctl.
    if os.geteuid() == 0:
        if not postgres_bin_dirs() and "postgresql" not in packages:
            packages.append("postgresql")
        for tool, package in (("ip", "iproute2"), ("sysctl", "procps"), ("nsenter", "util-linux")):
            if shutil.which(tool) is None:
                packages.append(package)
    return packages


def serve_postgres() -> None:
    """Print the URL of a PostgreSQL with pgvector (``postgres_url()``: one found, or a
    pgserver started here), then keep it until standard input closes. ``make test-matrix``
    shares one server this way with interpreters that have no pgserver wheel (3.13)."""
    print(postgres_url(), flush=True)
    sys.stdin.read()


if __name__ == "__main__":
    commands = {"apt-packages": None, "serve-postgres": serve_postgres}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} apt-packages | serve-postgres")
    if sys.argv[1] == "serve-postgres":
        serve_postgres()
    else:
        print(" ".join(missing_apt_packages()))

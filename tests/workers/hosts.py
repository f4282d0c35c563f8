"""Three machines on this one: network namespaces joined by veth pairs (needs root).

``db`` runs PostgreSQL and Redis; each worker machine (``a``, ``b``) has a veth pair to it
(10.77.<n>.2 on the machine, 10.77.<n>.1 on ``db``) and no other route, and its processes
also get a UTS namespace with its own hostname, so their lease owners name that host and no
other machine can see them die. :meth:`Hosts.cut` takes a machine's link down on ``db``'s
side: its connections hang, as a pulled cable leaves them, until :meth:`Hosts.mend`. With
``answers_only`` only what ``db`` sends it is lost (a blackhole route on ``db``): its
requests arrive and are carried out, their answers come when the cut is mended.

This process (the test) stays on the host's network and reaches PostgreSQL and Redis through
their Unix sockets, which live in a directory, not on a network.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.services import PostgresCluster, postgres_bin_dirs

PG_PORT = 5432
REDIS_PORT = 6379


def ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")


class Machine:
    """A worker machine: its namespace, hostname, address of ``db`` and the settings its
    processes get (the database and Redis over its own link)."""

    def __init__(self, hosts: Hosts, letter: str, subnet: int) -> None:
        self.hosts = hosts
        self.netns = f"w{letter}-{hosts.token}"
        self.hostname = f"host-{letter}"
        self.db_address = f"10.77.{subnet}.1"
        self.address = f"10.77.{subnet}.2"
        self.link_on_db = f"v{letter}{hosts.token}d"  # at most 15 characters
        self.link_here = f"v{letter}{hosts.token}h"
        self.env: dict[str, str] = {}

    def wrap(self, args: list[str]) -> list[str]:
        """``args`` run on this machine: its network, its hostname."""
        return [
            "nsenter", f"--net=/run/netns/{self.netns}",
            "unshare", "--uts", "--",
            "sh", "-c", 'hostname "$0" && exec "$@"', self.hostname, *args,
        ]  # fmt: skip

    def connect(self) -> None:
        db = self.hosts.db_netns
        ip("netns", "add", self.netns)
        ip("link", "add", self.link_on_db, "type", "veth", "peer", "name", self.link_here)
        ip("link", "set", self.link_on_db, "netns", db)
        ip("link", "set", self.link_here, "netns", self.netns)
        ip("-n", db, "addr", "add", f"{self.db_address}/24", "dev", self.link_on_db)
        ip("-n", db, "link", "set", self.link_on_db, "up")
        self.hosts.sysctl(f"net.ipv4.conf.{self.link_on_db}.rp_filter=0")
        ip("-n", self.netns, "addr", "add", f"{self.address}/24", "dev", self.link_here)
        ip("-n", self.netns, "link", "set", self.link_here, "up")
        ip("-n", self.netns, "link", "set", "lo", "up")


class Hosts:
    """The three machines, PostgreSQL and Redis on ``db``; :meth:`close` removes it all."""

    def __init__(self, tmp: Path) -> None:
        self.token = uuid.uuid4().hex[:6]
        self.db_netns = f"wdb-{self.token}"
        self.dir = Path(tempfile.mkdtemp(prefix="warlock-hosts-"))
        self.machines = {"a": Machine(self, "a", 1), "b": Machine(self, "b", 2)}
        self.cluster: PostgresCluster | None = None
        self.redis: subprocess.Popen[bytes] | None = None
        self.tmp = tmp
        self.netns_made: list[str] = []

    # --- setting up -----------------------------------------------------------------------

    def start(self, database: str) -> None:
        ip("netns", "add", self.db_netns)
        self.netns_made.append(self.db_netns)
        ip("-n", self.db_netns, "link", "set", "lo", "up")
        # No reverse-path filter on db: a machine whose answers are blackholed still reaches it.
        self.sysctl("net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        for machine in self.machines.values():
            self.netns_made.append(machine.netns)
            machine.connect()
        self._start_postgres(database)
        self._start_redis()
        for machine in self.machines.values():
            machine.env = {
                "WARLOCK_DB_URL": f"postgresql://postgres@{machine.db_address}:{PG_PORT}/{database}",
                "WARLOCK_TEST_RQ_URL": f"redis://{machine.db_address}:{REDIS_PORT}/0",
            }

    def sysctl(self, *settings: str) -> None:
        done = subprocess.run(
            self.on_db(["sysctl", "-q", "-w", *settings]), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"sysctl {' '.join(settings)} on db: {done.stderr.strip()}")

    def on_db(self, args: list[str]) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.db_netns}", *args]

    def _start_postgres(self, database: str) -> None:
        """A throwaway cluster (``tests.services.PostgresCluster``: initdb as an unprivileged
        user, no durability) started on ``db``'s network, listening on every address there."""
        bindirs = postgres_bin_dirs()
        if not bindirs:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.cluster = cluster = PostgresCluster(bindirs[0])
        cluster.init()
        with (cluster.datadir / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '*'\nport = {PG_PORT}\n"
                # What deployment.md asks for: a worker cut off inside a transaction does not
                # hold its row locks until TCP gives up on it (hours).
                "idle_in_transaction_session_timeout = '5s'\n"
            )
        with (cluster.datadir / "pg_hba.conf").open("a") as hba:
            hba.write("host all all 10.77.0.0/16 trust\n")
        user = cluster.user or pwd.getpwuid(os.geteuid())
        done = subprocess.run(
            self.on_db([
                "setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups",
                str(cluster.bindir / "pg_ctl"), "start", "-w", "-t", "60",
                "-D", str(cluster.datadir), "-l", str(cluster.logfile),
            ]),
            cwd=cluster.workdir, env={**os.environ, "LC_ALL": "C", "LANG": "C"},
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        if done.returncode != 0:
            log = cluster.logfile.read_text(errors="replace")[-1000:]
            raise RuntimeError(f"PostgreSQL on {self.db_netns}: {done.stderr.strip()} {log}")
        cluster.started, cluster.port = True, PG_PORT  # cluster.stop() stops it
        import psycopg

        with psycopg.connect(self.local_pg_url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("no redis-server (apt-get install redis-server)")
        socket = self.dir / "redis.sock"
        self.redis = subprocess.Popen(
            self.on_db([
                redis_server, "--port", str(REDIS_PORT), "--bind", "0.0.0.0",
                "--protected-mode", "no", "--save", "", "--appendonly", "no",
                "--unixsocket", str(socket), "--unixsocketperm", "777",
                "--dir", str(self.dir),
            ]),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not socket.exists():
            if self.redis.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on {self.db_netns} did not start")
            time.sleep(0.02)

    # --- from this process -----------------------------------------------------------------

    def local_pg_url(self, database: str) -> str:
        assert self.cluster is not None
        return f"postgresql://postgres@/{database}?host={self.cluster.workdir}&port={PG_PORT}"

    def local_redis_url(self) -> str:
        return f"unix://{self.dir / 'redis.sock'}?db=0"

    # --- a network cut ------------------------------------------------------------------------

    def cut(self, letter: str, answers_only: bool = False) -> None:
        machine = self.machines[letter]
        if answers_only:
            ip("-n", self.db_netns, "route", "add", "blackhole", f"{machine.address}/32")
        else:
            ip("-n", self.db_netns, "link", "set", machine.link_on_db, "down")

    def mend(self, letter: str, answers_only: bool = False) -> None:
        machine = self.machines[letter]
        if answers_only:
            ip("-n", self.db_netns, "route", "del", "blackhole", f"{machine.address}/32")
        else:
            ip("-n", self.db_netns, "link", "set", machine.link_on_db, "up")

    # --- tearing down ---------------------------------------------------------------------

    def close(self) -> None:
        """Stop PostgreSQL and Redis, remove the namespaces (their links go with them) and
        the directory; each step is tried even when one before it failed."""
        steps = [self._stop_postgres, self._stop_redis, self._remove_network]
        for step in steps:
            try:
                step()
            except Exception as exc:  # the next steps still run
                print(f"hosts: {step.__name__} failed: {exc}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def _stop_postgres(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()

    def _stop_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait(10)

    def _remove_network(self) -> None:
        for netns in reversed(self.netns_made):
            subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)
        for machine in self.machines.values():  # a link made but not yet moved into one
            for link in (machine.link_on_db, machine.link_here):
                subprocess.run(["ip", "link", "del", link], capture_output=True, timeout=30)

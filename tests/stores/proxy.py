"""A TCP proxy a test can cut and restore: the network between a worker and its database.

``cut()`` closes every connection through it and refuses new ones (as a dropped link or a
restarting server does: the client's next statement fails, a reconnect is refused);
``restore()`` accepts again on the same port. The upstream is a TCP address or a PostgreSQL
Unix socket directory (what pgserver listens on).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any


class CuttableProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream_host, self.upstream_port = upstream_host, upstream_port
        self.port = 0
        self.listener: socket.socket | None = None
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.connections = 0  # accepted since start, for the test's own checks
        self.cuts = 0

    @classmethod
    def for_database(cls, settings_dict: dict[str, Any]) -> CuttableProxy:
        host = settings_dict.get("HOST") or "/var/run/postgresql"
        port = int(settings_dict.get("PORT") or 5432)
        return cls(host, port)

    def _upstream(self) -> socket.socket:
        if self.upstream_host.startswith("/"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(os.path.join(self.upstream_host, f".s.PGSQL.{self.upstream_port}"))
            return sock
        return socket.create_connection((self.upstream_host, self.upstream_port), timeout=5)

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut or stopped
            try:
                upstream = self._upstream()
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets.update((client, upstream))
                self.connections += 1
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            with self.lock:
                self.sockets.difference_update((source, target))

    def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore()``."""
        self.cuts += 1
        if self.listener is not None:
            with contextlib.suppress(OSError):  # wakes the thread blocked in accept()
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            sockets, self.sockets = list(self.sockets), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()

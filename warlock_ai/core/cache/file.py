"""``FileCacheDriver``: one JSON file per entry under a directory, written atomically (a
temporary file in the same directory, then ``os.replace``). No similarity search."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ..runs.serialization import loads
from .base import DEFAULT_NAMESPACE, CacheDriver


def _name(text: str) -> str:
    # Hashed: keys and namespaces may hold "/", ".." or characters a filesystem refuses.
    return hashlib.sha256(text.encode()).hexdigest()


class FileCacheDriver(CacheDriver):
    """Entries as files below ``path``: ``<sha256(namespace)>/<sha256(key)>.json``.

    Shared by every process that can read ``path``; expiry uses the wall clock.
    """

    supports_similarity = False

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def _file(self, namespace: str, key: str) -> Path:
        return self.path / _name(namespace) / f"{_name(key)}.json"

    def get(self, key: str, *, namespace: str = DEFAULT_NAMESPACE, scope: str | None = None) -> Any:
        file = self._file(namespace, key)
        try:
            entry = loads(file.read_bytes())
        except FileNotFoundError:
            return None
        expires_at = entry.get("expires_at")
        if expires_at is not None and time.time() > expires_at:
            file.unlink(missing_ok=True)
            return None
        return entry["value"] if entry.get("scope") == scope else None

    def _store(
        self,
        key: str,
        text: str,
        *,
        namespace: str,
        vector: tuple[float, ...] | None,
        ttl: float | None,
        scope: str | None,
    ) -> None:
        head = json.dumps(
            {
                "namespace": namespace,
                "key": key,
                "scope": scope,
                "expires_at": None if ttl is None else time.time() + ttl,
            },
            ensure_ascii=False,
        )
        file = self._file(namespace, key)
        file.parent.mkdir(parents=True, exist_ok=True)
        # The value's text is spliced in as encoded, not decoded and encoded again.
        self._write(file, f'{head[:-1]},"value":{text}}}')

    @staticmethod
    def _write(file: Path, text: str) -> None:
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self._file(namespace, key).unlink(missing_ok=True)

    def remove_namespace(self, namespace: str) -> None:
        shutil.rmtree(self.path / _name(namespace), ignore_errors=True)

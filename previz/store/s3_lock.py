"""Mutual exclusion on S3 without conditional writes, for services that ignore `If-None-Match`.

Each writer PUTs its own lock object `<key>.lock-<token>` and then lists `<key>.lock-`. It holds
the lock only if its own lock is the one live lock listed; otherwise it deletes its lock, backs
off with jitter and tries again. With S3's strong read-after-write and list consistency two
writers can never both see themselves alone: whichever listed second sees the other's lock.
A lock older than the lease (by the service's own clock, compared to our lock's timestamp) is
from a crashed writer and is removed; a live holder refreshes its lock well within the lease.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, Protocol

from previz.store.errors import StoreError

__all__ = ["LOCK_MARK", "LockObjects", "LockableStore"]

LOCK_MARK = ".lock-"
log = logging.getLogger("previz.store")


class LockableStore(Protocol):
    """What the locks need of a store (the S3 store has it): plain writes, deletes and a
    listing with each object's age."""

    uri: str
    settings: Any  # lock_lease_s, lock_wait_s

    def put_bytes(self, key: str, data: bytes) -> Any: ...

    def delete(self, key: str) -> None: ...

    def list_entries(self, prefix: str) -> list[dict[str, Any]]: ...


class LockObjects:
    """Per-key locks made of objects in the store itself."""

    def __init__(self, store: LockableStore):
        self._store = store
        self._random = random.Random()

    @contextlib.contextmanager
    def held(self, key: str) -> Iterator[None]:
        lock_key = self._acquire(key)
        stop = threading.Event()
        refresher = threading.Thread(
            target=self._refresh, args=(lock_key, stop), name="previz-s3-lock", daemon=True
        )
        refresher.start()
        try:
            yield
        finally:
            stop.set()
            refresher.join()
            with contextlib.suppress(StoreError):
                self._store.delete(lock_key)

    def _acquire(self, key: str) -> str:
        store = self._store
        lease = store.settings.lock_lease_s
        lock_key = f"{key}{LOCK_MARK}{uuid.uuid4().hex}"
        payload = json.dumps({"host": socket.gethostname(), "created": time.time()}).encode()
        deadline = time.monotonic() + store.settings.lock_wait_s
        delay = 0.02
        while True:
            store.put_bytes(lock_key, payload)
            entries = store.list_entries(key + LOCK_MARK)
            mine = next((e for e in entries if e["Key"] == lock_key), None)
            rivals = []
            for entry in entries:
                if mine is None or entry["Key"] == lock_key:
                    continue
                age = (mine["LastModified"] - entry["LastModified"]).total_seconds()
                if age > lease:
                    log.info("%s: removing an expired lock on %s", store.uri, key)
                    store.delete(entry["Key"])
                else:
                    rivals.append(entry)
            if mine is not None and not rivals:
                return lock_key
            store.delete(lock_key)
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{store.uri}: {key} stayed locked by another writer for "
                    f"{store.settings.lock_wait_s:g}s — retry later (a crashed writer's lock "
                    f"expires after {lease:g}s)"
                )
            time.sleep(self._random.uniform(0, delay))
            delay = min(delay * 2, 1.0)

    def _refresh(self, lock_key: str, stop: threading.Event) -> None:
        # Keep a long upload's lock younger than the lease so nobody takes it as abandoned.
        interval = self._store.settings.lock_lease_s / 3
        while not stop.wait(interval):
            with contextlib.suppress(StoreError):
                self._store.put_bytes(lock_key, b"{}")

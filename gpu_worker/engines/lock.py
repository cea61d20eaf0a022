"""A build lock in the object store: one builder per (model version, platform) across the fleet.

Taken with a create-only write (`if_none_match`); it names its owner and an expiry. A lock past its
expiry (its holder died) is taken over with a write conditional on the etag that was read
(`if_match`), so of several agents seeing the same stale lock exactly one wins. The holder renews
the expiry while it builds, also by `if_match`, and learns that way if it lost the lock.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectStore

log = logging.getLogger(__name__)


def default_owner(prefix: str = "agent") -> str:
    """Unique per process and instance: two agents on one host never mistake each other's lock."""
    return f"{prefix}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LockRecord:
    owner: str
    host: str
    acquired_at: float
    expires_at: float

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LockRecord | None:
        try:
            raw = json.loads(data)
            return cls(str(raw["owner"]), str(raw.get("host", "")), float(raw["acquired_at"]), float(raw["expires_at"]))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as stale, so a corrupt lock cannot block a platform forever


class BuildLock:
    def __init__(
        self, store: ObjectStore, key: str, owner: str, *, ttl_s: float = 900.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.key = key
        self.owner = owner
        self.ttl_s = ttl_s
        self.clock = clock
        self._etag: str | None = None

    @property
    def held(self) -> bool:
        return self._etag is not None

    def _record(self) -> LockRecord:
        now = self.clock()
        return LockRecord(owner=self.owner, host=socket.gethostname(), acquired_at=now, expires_at=now + self.ttl_s)

    def holder(self) -> tuple[LockRecord | None, str] | None:
        """(record, etag) of the current lock, or None when there is none."""
        try:
            etag = self.store.head(self.key).etag
            data = self.store.get_bytes(self.key)
        except FileNotFoundError:
            return None
        return LockRecord.from_bytes(data), etag

    def try_acquire(self) -> bool:
        """Take the lock if free or stale; False when someone else holds a live one."""
        try:
            self._etag = self.store.put_bytes(self.key, self._record().to_bytes(), if_none_match=True).etag
            return True
        except PreconditionFailed:
            pass
        current = self.holder()
        if current is None:
            return self.try_acquire_once_more()
        record, etag = current
        if record is not None and record.expires_at > self.clock():
            return False
        log.warning("build lock %s held by %s expired; taking it over", self.key, record.owner if record else "?")
        try:
            # The etag came from head() before get_bytes(): if the lock changed in between, this fails safely.
            self._etag = self.store.put_bytes(self.key, self._record().to_bytes(), if_match=etag).etag
            return True
        except PreconditionFailed:
            return False

    def try_acquire_once_more(self) -> bool:
        """The lock vanished between our write and our read (released): one more create-only try."""
        try:
            self._etag = self.store.put_bytes(self.key, self._record().to_bytes(), if_none_match=True).etag
            return True
        except PreconditionFailed:
            return False

    def renew(self) -> bool:
        """Push the expiry forward; False (and no longer held) if another agent took the lock."""
        if self._etag is None:
            return False
        try:
            self._etag = self.store.put_bytes(self.key, self._record().to_bytes(), if_match=self._etag).etag
            return True
        except (PreconditionFailed, FileNotFoundError):
            self._etag = None
            return False

    def release(self) -> None:
        """Delete the lock if it is still ours (same etag as our last write)."""
        if self._etag is None:
            return
        try:
            if self.store.head(self.key).etag == self._etag:
                self.store.delete(self.key)
        except FileNotFoundError:
            pass
        finally:
            self._etag = None

    @contextmanager
    def renewing(self, every_s: float | None = None) -> Iterator[threading.Event]:
        """While held: renew in a thread. The yielded event is set if the lock was lost."""
        lost = threading.Event()
        stop = threading.Event()
        interval = every_s if every_s is not None else max(self.ttl_s / 3, 0.05)

        def loop() -> None:
            while not stop.wait(interval):
                if not self.renew():
                    lost.set()
                    return

        thread = threading.Thread(target=loop, name=f"lock-renew-{self.key}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            stop.set()
            thread.join()

"""SQLite plumbing shared by the local queue and ledger: WAL mode, one short transaction per call.

Each thread keeps its own connection (reopened after a fork, since SQLite connections must not cross
one). Closing the last connection would checkpoint and delete the WAL on every call, so they stay open.
`BEGIN IMMEDIATE` takes the write lock up front so two processes never interleave read-then-write;
readers use a plain `BEGIN` and never wait for writers (WAL).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gpu_worker.ports.exceptions import AdapterUnavailable

BUSY_TIMEOUT_S = 30.0
_INHERITED: list[sqlite3.Connection] = []  # parents' connections seen after fork(): kept, never used or closed


class SqliteDatabase:
    def __init__(self, path: Path, schema: str) -> None:
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AdapterUnavailable(f"SQLite database {self.path}: cannot create its folder: {exc}") from exc
        with self.transaction() as conn:
            for statement in filter(str.strip, schema.split(";")):
                conn.execute(statement)

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction, IMMEDIATE for writes: committed on success, rolled back on any error.

        sqlite3 errors (locked past the busy timeout, unreadable file) become AdapterUnavailable.
        """
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            self._discard()
            raise AdapterUnavailable(f"SQLite database {self.path}: {exc}") from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback(conn)
            raise AdapterUnavailable(f"SQLite database {self.path}: {exc}") from exc
        except BaseException:
            self._rollback(conn)
            raise

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            return conn
        if conn is not None:
            _INHERITED.append(conn)
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def _rollback(self, conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            self._discard()

    def _discard(self) -> None:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None and self._local.pid == os.getpid():
            conn.close()

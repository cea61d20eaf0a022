"""Job queue in a SQLite file (WAL): visibility leases, receive counts and dead letters with a reason.

Each receive hands out a fresh lease token as the receipt. A receipt stays valid until the message
is acknowledged, released or leased again by someone else (after its visibility timeout ran out),
so a worker whose lease was taken over gets `LeaseLost` instead of acknowledging another's work.
Every operation is one `BEGIN IMMEDIATE` transaction, which makes it safe across processes.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

from gpu_worker.adapters._sqlite import SqliteDatabase
from gpu_worker.ports.exceptions import LeaseLost
from gpu_worker.ports.queue import DeadLetter, JobQueue, ReceivedMessage

MAX_VISIBILITY_S = 43200  # same bound as SQS, so settings behave alike in both worlds
_POLL_INTERVAL_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    sent_at REAL NOT NULL,
    visible_at REAL NOT NULL,
    receive_count INTEGER NOT NULL DEFAULT 0,
    lease_token TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS queue_messages_ready ON queue_messages (queue, visible_at);
CREATE TABLE IF NOT EXISTS queue_dead_letters (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    message_id TEXT NOT NULL,
    body TEXT NOT NULL,
    receive_count INTEGER NOT NULL,
    reason TEXT,
    dead_at REAL NOT NULL
);
"""


def _check_visibility(seconds: float) -> float:
    if not 0 <= seconds <= MAX_VISIBILITY_S:
        raise ValueError(f"visibility timeout must be within 0..{MAX_VISIBILITY_S} s, got {seconds}")
    return seconds


class SqliteJobQueue(JobQueue):
    def __init__(
        self, db_path: Path, name: str = "jobs", *, visibility_timeout_s: float = 900, max_receives: int = 3
    ) -> None:
        if max_receives < 1:
            raise ValueError(f"max_receives must be >= 1, got {max_receives}")
        self.name = name
        self.visibility_timeout_s = _check_visibility(visibility_timeout_s)
        self.max_receives = max_receives
        self._db = SqliteDatabase(db_path, _SCHEMA)

    def send(self, body: str, *, delay_s: int = 0) -> str:
        message_id = uuid.uuid4().hex
        now = time.time()
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO queue_messages (queue, message_id, body, sent_at, visible_at) VALUES (?, ?, ?, ?, ?)",
                (self.name, message_id, body, now, now + max(0, delay_s)),
            )
        return message_id

    def receive(self, *, wait_s: float = 0.0, visibility_timeout_s: int | None = None) -> ReceivedMessage | None:
        timeout = _check_visibility(self.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s)
        deadline = time.monotonic() + wait_s
        while True:
            message = self._try_receive(timeout)
            if message is not None or time.monotonic() >= deadline:
                return message
            time.sleep(min(_POLL_INTERVAL_S, max(0.0, deadline - time.monotonic())))

    def ack(self, message: ReceivedMessage) -> None:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "DELETE FROM queue_messages WHERE queue = ? AND message_id = ? AND lease_token = ?",
                (self.name, message.message_id, message.receipt),
            )
            if cursor.rowcount == 0:
                raise self._lease_lost(message)

    def extend(self, message: ReceivedMessage, visibility_timeout_s: int) -> None:
        timeout = _check_visibility(visibility_timeout_s)
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE queue_messages SET visible_at = ? WHERE queue = ? AND message_id = ? AND lease_token = ?",
                (time.time() + timeout, self.name, message.message_id, message.receipt),
            )
            if cursor.rowcount == 0:
                raise self._lease_lost(message)

    def release(self, message: ReceivedMessage, *, delay_s: int = 0, error: str | None = None) -> None:
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT * FROM queue_messages WHERE queue = ? AND message_id = ? AND lease_token = ?",
                (self.name, message.message_id, message.receipt),
            ).fetchone()
            if row is None:
                raise self._lease_lost(message)
            if row["receive_count"] >= self.max_receives:
                # It may not be delivered again, so it goes to the dead letters now, reason and all.
                reason = error or f"released after {row['receive_count']} receives without success"
                self._dead_letter(conn, row, reason)
                return
            conn.execute(
                "UPDATE queue_messages SET visible_at = ?, lease_token = NULL, last_error = COALESCE(?, last_error) "
                "WHERE seq = ?",
                (time.time() + min(max(0, delay_s), MAX_VISIBILITY_S), error, row["seq"]),
            )

    def dead_letters(self) -> list[DeadLetter]:
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT message_id, body, receive_count, reason FROM queue_dead_letters WHERE queue = ? ORDER BY seq",
                (self.name,),
            ).fetchall()
        return [DeadLetter(row["message_id"], row["body"], row["receive_count"], row["reason"]) for row in rows]

    def approximate_depth(self) -> int:
        with self._db.transaction(write=False) as conn:
            row = conn.execute("SELECT COUNT(*) FROM queue_messages WHERE queue = ?", (self.name,)).fetchone()
        return int(row[0])

    # Internals

    def _try_receive(self, visibility_timeout_s: float) -> ReceivedMessage | None:
        # Idle consumers poll; a read first keeps them from taking the write lock for nothing.
        with self._db.transaction(write=False) as conn:
            ready = conn.execute(
                "SELECT 1 FROM queue_messages WHERE queue = ? AND visible_at <= ? LIMIT 1", (self.name, time.time())
            ).fetchone()
        if ready is None:
            return None
        with self._db.transaction() as conn:
            while True:
                now = time.time()
                row = conn.execute(
                    "SELECT * FROM queue_messages WHERE queue = ? AND visible_at <= ? ORDER BY seq LIMIT 1",
                    (self.name, now),
                ).fetchone()
                if row is None:
                    return None
                if row["receive_count"] >= self.max_receives:
                    # Leased max_receives times and never acknowledged nor released: a worker died with it.
                    reason = f"no acknowledgement after {row['receive_count']} receives"
                    if row["last_error"]:
                        reason += f" (last error: {row['last_error']})"
                    self._dead_letter(conn, row, reason)
                    continue
                token = uuid.uuid4().hex
                conn.execute(
                    "UPDATE queue_messages SET receive_count = receive_count + 1, lease_token = ?, visible_at = ? "
                    "WHERE seq = ?",
                    (token, now + visibility_timeout_s, row["seq"]),
                )
                return ReceivedMessage(
                    message_id=row["message_id"],
                    body=row["body"],
                    receipt=token,
                    receive_count=row["receive_count"] + 1,
                )

    def _dead_letter(self, conn: sqlite3.Connection, row: sqlite3.Row, reason: str) -> None:
        conn.execute(
            "INSERT INTO queue_dead_letters (queue, message_id, body, receive_count, reason, dead_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (self.name, row["message_id"], row["body"], row["receive_count"], reason, time.time()),
        )
        conn.execute("DELETE FROM queue_messages WHERE seq = ?", (row["seq"],))

    def _lease_lost(self, message: ReceivedMessage) -> LeaseLost:
        return LeaseLost(
            f"queue {self.name!r}: the lease on message {message.message_id} expired and was taken over, "
            "or the message was already acknowledged, released or dead-lettered"
        )

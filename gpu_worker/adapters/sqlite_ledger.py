"""Job ledger in a SQLite file (WAL); may share the queue's file (its own table)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from gpu_worker.adapters._ledger_codec import iso, stage_to_dict, stages_from_dict, to_utc
from gpu_worker.adapters._sqlite import SqliteDatabase
from gpu_worker.ports.ledger import JobLedger, JobRecord, StageRecord
from peoplenet_contracts import JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_jobs (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    job_json TEXT NOT NULL,
    dataset TEXT NOT NULL DEFAULT '',
    reason TEXT,
    model_version TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_expires_at REAL,
    stages TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS ledger_jobs_created ON ledger_jobs (created_at);
"""


class SqliteJobLedger(JobLedger):
    def __init__(self, db_path: Path) -> None:
        self._db = SqliteDatabase(db_path, _SCHEMA)

    def create(self, record: JobRecord) -> bool:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO ledger_jobs (job_id, status, created_at, updated_at, job_json, dataset, "
                "reason, model_version, attempts, lease_owner, lease_expires_at, stages) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.job_id,
                    str(record.status),
                    iso(record.created_at),
                    iso(record.updated_at),
                    record.job_json,
                    record.dataset,
                    record.reason,
                    record.model_version,
                    record.attempts,
                    record.lease_owner,
                    to_utc(record.lease_expires_at).timestamp() if record.lease_expires_at else None,
                    json.dumps({str(name): stage_to_dict(stage) for name, stage in record.stages.items()}),
                ),
            )
            return cursor.rowcount == 1

    def get(self, job_id: str) -> JobRecord:
        with self._db.transaction(write=False) as conn:
            row = conn.execute("SELECT * FROM ledger_jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            raise KeyError(job_id)
        return _record(row)

    def list_jobs(self, *, limit: int = 50) -> list[JobRecord]:
        with self._db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT * FROM ledger_jobs ORDER BY created_at DESC, rowid DESC LIMIT ?", (limit,)
            ).fetchall()
        return [_record(row) for row in rows]

    def set_status(
        self, job_id: str, status: JobStatus, *, reason: str | None = None, model_version: str | None = None
    ) -> None:
        with self._db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE ledger_jobs SET status = ?, updated_at = ?, reason = COALESCE(?, reason), "
                "model_version = COALESCE(?, model_version) WHERE job_id = ?",
                (str(status), iso(to_utc(None)), reason, model_version, job_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(job_id)

    def set_stage(self, job_id: str, stage: StageRecord) -> None:
        with self._db.transaction() as conn:
            row = conn.execute("SELECT stages FROM ledger_jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            stages = json.loads(row["stages"])
            stages[str(stage.name)] = stage_to_dict(stage)
            conn.execute(
                "UPDATE ledger_jobs SET stages = ?, updated_at = ? WHERE job_id = ?",
                (json.dumps(stages), iso(to_utc(None)), job_id),
            )

    def claim(self, job_id: str, owner: str, lease_s: int, now: datetime | None = None) -> bool:
        moment = to_utc(now).timestamp()
        with self._db.transaction() as conn:
            row = conn.execute(
                "SELECT lease_owner, lease_expires_at FROM ledger_jobs WHERE job_id = ?", (job_id,)
            ).fetchone()
            if row is None:
                raise KeyError(job_id)
            if row["lease_owner"] == owner:  # renewal
                conn.execute("UPDATE ledger_jobs SET lease_expires_at = ? WHERE job_id = ?", (moment + lease_s, job_id))
                return True
            if row["lease_owner"] is not None and row["lease_expires_at"] > moment:
                return False
            conn.execute(
                "UPDATE ledger_jobs SET lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, "
                "updated_at = ? WHERE job_id = ?",
                (owner, moment + lease_s, iso(to_utc(None)), job_id),
            )
            return True

    def release_claim(self, job_id: str, owner: str) -> None:
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE ledger_jobs SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE job_id = ? AND lease_owner = ?",
                (job_id, owner),
            )


def _record(row: sqlite3.Row) -> JobRecord:
    expires = row["lease_expires_at"]
    return JobRecord(
        job_id=row["job_id"],
        status=JobStatus(row["status"]),
        created_at=datetime.fromisoformat(row["created_at"]),
        updated_at=datetime.fromisoformat(row["updated_at"]),
        job_json=row["job_json"],
        dataset=row["dataset"],
        reason=row["reason"],
        model_version=row["model_version"],
        attempts=row["attempts"],
        lease_owner=row["lease_owner"],
        lease_expires_at=None if expires is None else datetime.fromtimestamp(expires, tz=UTC),
        stages=stages_from_dict(json.loads(row["stages"])),
    )

"""Job ledger port: DynamoDB or SQLite. One record per job, with its stages and lineage."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime

from peoplenet_contracts import JobStatus, StageName, StageStatus


@dataclass
class StageRecord:
    name: StageName
    status: StageStatus
    started_at: datetime | None = None
    finished_at: datetime | None = None
    detail: str | None = None  # progress ("epoch 3/10 loss 0.12") or failure reason


@dataclass
class JobRecord:
    job_id: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    job_json: str  # the RetrainJob message
    dataset: str = ""
    reason: str | None = None  # failure or rejection reason
    model_version: str | None = None
    attempts: int = 0
    lease_owner: str | None = None  # worker holding the job (survives SQS's 12 h visibility cap)
    lease_expires_at: datetime | None = None
    stages: dict[StageName, StageRecord] = field(default_factory=dict)


class JobLedger(ABC):
    @abstractmethod
    def create(self, record: JobRecord) -> bool:
        """Insert if absent; False when the job id already exists (idempotent submit)."""

    @abstractmethod
    def get(self, job_id: str) -> JobRecord:
        """Raises KeyError when unknown."""

    @abstractmethod
    def list_jobs(self, *, limit: int = 50) -> list[JobRecord]:
        """Newest first."""

    @abstractmethod
    def set_status(
        self, job_id: str, status: JobStatus, *, reason: str | None = None, model_version: str | None = None
    ) -> None:
        """Set the status (and updated_at); reason/model_version are set when given, else left as they are.

        Raises KeyError when unknown.
        """

    @abstractmethod
    def set_stage(self, job_id: str, stage: StageRecord) -> None:
        """Insert or replace the record of stage.name. Raises KeyError when the job is unknown."""

    @abstractmethod
    def claim(self, job_id: str, owner: str, lease_s: int, now: datetime | None = None) -> bool:
        """Take or renew the job's lease (conditional write): True if owner now holds it.

        Succeeds when unleased, expired, or already held by owner. Also increments attempts on a new claim
        (not on a renewal). Raises KeyError when the job is unknown.
        """

    @abstractmethod
    def release_claim(self, job_id: str, owner: str) -> None:
        """Drop the lease if owner holds it; a no-op otherwise (never steals another worker's lease)."""

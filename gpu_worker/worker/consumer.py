"""The consumer loop. Network I/O, leases and heartbeats live here; the job code lives in the pipeline.

`_settle` is the only place that acknowledges, releases or fails a message.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from gpu_worker.adapters import Adapters
from gpu_worker.backends.base import TrainingBackend
from gpu_worker.config import Settings
from gpu_worker.errors import PermanentJobError
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.runner import JobRunner, Stage, StopRequested
from gpu_worker.ports.exceptions import LeaseLost
from gpu_worker.ports.ledger import JobRecord, StageRecord
from gpu_worker.ports.queue import ReceivedMessage
from gpu_worker.worker.heartbeat import Heartbeat
from gpu_worker.worker.retry import RetryPolicy
from gpu_worker.worker.shutdown import Shutdown
from peoplenet_contracts import JobFailed, JobStarted, JobStatus, RetrainJob, StageName, StageStatus
from peoplenet_contracts.base import utc_now

log = logging.getLogger(__name__)
MAX_DELAY_S = 900  # SQS DelaySeconds limit
PROGRESS_WRITE_INTERVAL_S = 5.0  # ledger writes cost money on DynamoDB; logs get every line


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"  # ack
    ALREADY_FINISHED = "already_finished"  # duplicate delivery of a finished job: ack
    HELD_ELSEWHERE = "held_elsewhere"  # another worker holds the ledger lease: release, don't run twice
    STOPPED = "stopped"  # shutdown at a safe point: release for another worker
    RETRY = "retry"  # transient failure: release with backoff (dead letter once exhausted)
    FAILED = "failed"  # permanent failure recorded in the ledger: ack


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    error: str | None = None


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(
        self,
        settings: Settings,
        adapters: Adapters,
        backend_for: Callable[[RetrainJob], TrainingBackend],
        stages: list[Stage],
        shutdown: Shutdown | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.adapters = adapters
        self.backend_for = backend_for
        self.runner = JobRunner(stages, adapters.ledger)
        self.shutdown = shutdown or Shutdown()
        self.worker_id = worker_id or default_worker_id()
        self.retry = RetryPolicy(settings.queue.max_receives, settings.worker.retry_backoff_s)

    def run(self, *, burst: bool = False, max_jobs: int | None = None) -> int:
        """Consume until stopped (or, in burst mode, until the queue is empty). Returns jobs handled."""
        handled = 0
        while not self.shutdown.requested:
            message = self.adapters.queue.receive(
                wait_s=0 if burst else self.settings.queue.wait_time_s,
                visibility_timeout_s=self.settings.queue.visibility_timeout_s,
            )
            if message is None:
                if burst:
                    break
                continue
            result = self._process(message)
            self._settle(message, result)
            handled += 1
            if result.outcome is Outcome.STOPPED or (max_jobs is not None and handled >= max_jobs):
                break
        return handled

    def _process(self, message: ReceivedMessage) -> Result:
        try:
            job = RetrainJob.from_json(message.body)
        except ValidationError as exc:
            return Result(Outcome.RETRY, f"message is not a RetrainJob: {exc.error_count()} error(s): {exc}")
        ledger = self.adapters.ledger
        self._ensure_record(job)
        record = ledger.get(job.job_id)
        if record.status.is_terminal:
            return Result(Outcome.ALREADY_FINISHED)
        lease_s = self.settings.queue.visibility_timeout_s
        if not ledger.claim(job.job_id, self.worker_id, lease_s):
            return Result(Outcome.HELD_ELSEWHERE)
        ledger.set_status(job.job_id, JobStatus.RUNNING)
        if message.receive_count == 1:
            self.adapters.notifier.publish(
                JobStarted(
                    job_id=job.job_id, dataset=job.dataset, dataset_version=job.dataset_version, worker=self.worker_id
                )
            )
        heartbeat = Heartbeat(
            self.adapters.queue,
            ledger,
            message,
            job.job_id,
            self.worker_id,
            lease_s,
            self.settings.queue.heartbeat_interval_s,
        )
        try:
            with heartbeat:
                values = self.runner.run(self._context(job))
        except StopRequested as exc:
            return Result(Outcome.STOPPED, str(exc))
        except PermanentJobError as exc:
            return Result(Outcome.FAILED, str(exc))
        except Exception as exc:  # unknown failures are retried, then dead-lettered with their reason
            log.error("job failed: %s", "".join(traceback.format_exception(exc)), extra={"job_id": job.job_id})
            return Result(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        finally:
            ledger.release_claim(job.job_id, self.worker_id)
        passed = values.get("evaluate", {}).get("gate_passed") == "true"
        ledger.set_status(
            job.job_id,
            JobStatus.SUCCEEDED if passed else JobStatus.CANDIDATE,
            model_version=values.get("publish", {}).get("model_version"),
            reason=values.get("evaluate", {}).get("gate_reason"),
        )
        return Result(Outcome.SUCCEEDED)

    def _ensure_record(self, job: RetrainJob) -> None:
        now = utc_now()
        self.adapters.ledger.create(
            JobRecord(
                job_id=job.job_id,
                status=JobStatus.QUEUED,
                created_at=now,
                updated_at=now,
                job_json=job.to_json(),
                dataset=f"{job.dataset}/{job.dataset_version}",
            )
        )

    def _context(self, job: RetrainJob) -> PipelineContext:
        work_dir = Path(self.settings.work_dir) / job.job_id
        work_dir.mkdir(parents=True, exist_ok=True)
        ledger = self.adapters.ledger
        last_write = [0.0]

        def progress(stage: str, message: str) -> None:
            log.info(message, extra={"job_id": job.job_id, "stage": stage})
            if stage and time.monotonic() - last_write[0] > PROGRESS_WRITE_INTERVAL_S:
                last_write[0] = time.monotonic()
                ledger.set_stage(job.job_id, StageRecord(StageName(stage), StageStatus.RUNNING, detail=message))

        return PipelineContext(
            job=job,
            store=self.adapters.store,
            settings=self.settings,
            work_dir=work_dir,
            backend=self.backend_for(job),
            notifier=self.adapters.notifier,
            should_stop=lambda: self.shutdown.requested,
            progress=progress,
        )

    def _settle(self, message: ReceivedMessage, result: Result) -> None:
        """The one place a message is acknowledged, released or failed."""
        queue = self.adapters.queue
        job_id = _job_id_or_none(message.body)
        try:
            match result.outcome:
                case Outcome.SUCCEEDED | Outcome.ALREADY_FINISHED:
                    queue.ack(message)
                case Outcome.FAILED:
                    self._record_failure(job_id, result.error or "failed", retryable=False)
                    queue.ack(message)
                case Outcome.HELD_ELSEWHERE | Outcome.STOPPED:
                    # Not a failure: a fresh copy keeps the receive count (and the dead-letter budget) at zero.
                    delay = MAX_DELAY_S if result.outcome is Outcome.HELD_ELSEWHERE else 0
                    queue.send(message.body, delay_s=min(delay, self.settings.queue.visibility_timeout_s))
                    queue.ack(message)
                case Outcome.RETRY:
                    if not self.retry.exhausted(message.receive_count) and job_id is not None:
                        self.adapters.ledger.set_status(
                            job_id, JobStatus.QUEUED, reason=f"attempt {message.receive_count} failed: {result.error}"
                        )
                    if self.retry.exhausted(message.receive_count):
                        self._record_failure(
                            job_id, f"gave up after {message.receive_count} attempts: {result.error}", retryable=True
                        )
                    queue.release(message, delay_s=self.retry.delay_s(message.receive_count), error=result.error)
        except LeaseLost:
            log.warning(
                "lease lost before settling %s (%s); another delivery will handle it",
                message.message_id,
                result.outcome,
                extra={"job_id": job_id},
            )
        log.info("job %s", result.outcome, extra={"job_id": job_id, "reason": result.error})

    def _record_failure(self, job_id: str | None, reason: str, *, retryable: bool) -> None:
        if job_id is None:
            return
        self.adapters.ledger.set_status(job_id, JobStatus.FAILED, reason=reason)
        self.adapters.notifier.publish(
            JobFailed(job_id=job_id, reason=reason, retryable=retryable, stage=self._failed_stage(job_id))
        )

    def _failed_stage(self, job_id: str) -> str | None:
        try:
            record = self.adapters.ledger.get(job_id)
        except KeyError:
            return None
        failed = [name for name, stage in record.stages.items() if stage.status == "FAILED"]
        return str(failed[-1]) if failed else None


def _job_id_or_none(body: str) -> str | None:
    try:
        return RetrainJob.from_json(body).job_id
    except ValidationError:
        return None

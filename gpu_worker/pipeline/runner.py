"""Runs a job's stages in order; each stage done once, its outputs and a done-marker in the store.

A rerun (another worker, a redelivered message) skips every stage whose marker matches its inputs and
continues where the last worker stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.digest import file_digest
from gpu_worker.pipeline.layout import stage_prefix
from gpu_worker.pipeline.markers import StageMarker, hash_inputs, read_marker, write_marker
from gpu_worker.ports.ledger import JobLedger, StageRecord
from peoplenet_contracts import StageName, StageStatus
from peoplenet_contracts.base import utc_now
from peoplenet_contracts.manifests import FileDigest

log = logging.getLogger(__name__)


class StopRequested(Exception):
    """The worker was asked to stop; the job is at a safe point and resumes elsewhere."""


@dataclass
class StageResult:
    values: dict[str, str] = field(default_factory=dict)
    skipped: bool = False
    detail: str | None = None
    upload: bool = True  # False when outputs already live in the store (fetched dataset)


StageFn = Callable[[PipelineContext], StageResult]


@dataclass(frozen=True)
class Stage:
    name: StageName
    run: StageFn


class JobRunner:
    def __init__(self, stages: list[Stage], ledger: JobLedger) -> None:
        self.stages = stages
        self.ledger = ledger

    def run(self, ctx: PipelineContext) -> dict[str, dict[str, str]]:
        job_id = ctx.job.job_id
        previous = hash_inputs(ctx.job.model_dump(mode="json", exclude={"created_at"}))
        for stage in self.stages:
            inputs_hash = hash_inputs(stage.name, previous)
            marker = read_marker(ctx.store, job_id, stage.name)
            if marker is not None and marker.inputs_hash == inputs_hash:
                ctx.values[stage.name] = marker.values
                previous = inputs_hash
                continue
            if ctx.should_stop():
                raise StopRequested(f"stop requested before stage {stage.name}")
            marker = self._run_stage(ctx, stage, inputs_hash)
            ctx.values[stage.name] = marker.values
            previous = inputs_hash
        return ctx.values

    def _run_stage(self, ctx: PipelineContext, stage: Stage, inputs_hash: str) -> StageMarker:
        job_id = ctx.job.job_id
        started = utc_now()
        ctx.current_stage = stage.name
        self.ledger.set_stage(job_id, StageRecord(stage.name, StageStatus.RUNNING, started_at=started))
        log.info("stage started", extra={"job_id": job_id, "stage": stage.name})
        try:
            result = stage.run(ctx)
        except StopRequested:
            self.ledger.set_stage(
                job_id, StageRecord(stage.name, StageStatus.PENDING, started_at=started, detail="stopped; resumes")
            )
            raise
        except Exception as exc:
            self.ledger.set_stage(
                job_id,
                StageRecord(stage.name, StageStatus.FAILED, started, utc_now(), detail=f"{type(exc).__name__}: {exc}"),
            )
            raise
        outputs = self._upload_outputs(ctx, stage.name) if result.upload and not result.skipped else []
        marker = StageMarker(
            stage=stage.name,
            inputs_hash=inputs_hash,
            skipped=result.skipped,
            detail=result.detail,
            outputs=outputs,
            values=result.values,
        )
        write_marker(ctx.store, job_id, marker)
        status = StageStatus.SKIPPED if result.skipped else StageStatus.DONE
        self.ledger.set_stage(job_id, StageRecord(stage.name, status, started, utc_now(), detail=result.detail))
        log.info("stage %s", status.lower(), extra={"job_id": job_id, "stage": stage.name})
        return marker

    @staticmethod
    def _upload_outputs(ctx: PipelineContext, stage: str) -> list[FileDigest]:
        local = ctx.stage_dir(stage)
        prefix = stage_prefix(ctx.job.job_id, stage)
        digests = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            relative = path.relative_to(local).as_posix()
            ctx.store.upload_file(path, prefix + relative)
            digests.append(file_digest(path, relative))
        return digests

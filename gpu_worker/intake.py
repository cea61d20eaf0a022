"""Dataset intake, shared by the Lambda (S3 trigger) and the embedded watchdog trigger.

A dataset whose manifest arrived is validated (manifest against the listing, every label line, image
sizes from headers) and either rejected (a `_validation.json` report + DatasetRejected) or recorded
as QUEUED in the ledger and sent as a RetrainJob. The job id derives from the dataset's content, so
the same upload seen twice starts one job.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from gpu_worker.adapters.factory import Adapters
from gpu_worker.pipeline.layout import job_id_for
from gpu_worker.ports.ledger import JobRecord
from peoplenet_contracts import (
    BaseModelRef,
    DatasetManifest,
    DatasetRejected,
    JobStatus,
    RetrainJob,
)
from peoplenet_contracts.base import utc_now
from peoplenet_contracts.kitti import DatasetSource, validate_dataset
from peoplenet_contracts.kitti.manifest import manifest_mismatches

MANIFEST = "manifest.json"
REPORT = "_validation.json"
DEFAULT_SPEC = "peoplenet_train.txt"
MAX_PROBLEMS_IN_EVENT = 20


@dataclass(frozen=True)
class IntakeResult:
    job_id: str | None
    queued: bool  # False: rejected, or a job for the same data exists already
    message: str
    report_location: str | None = None


def content_digest(manifest: DatasetManifest) -> str:
    """What identifies an upload: its files, sizes and job options, not the time it was written."""
    payload = manifest.model_dump(mode="json", exclude={"created_at", "class_counts", "negative_images"})
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def accept_dataset(
    manifest_raw: bytes,
    manifest_location: str,
    source: DatasetSource,
    adapters: Adapters,
    *,
    write_report: Callable[[bytes], str],
    commit: Callable[[DatasetManifest], str],
) -> IntakeResult:
    """Validate and queue. `write_report(json) -> location`; `commit(manifest) -> dataset prefix in the store`."""
    problems: list[str] = []
    manifest = None
    try:
        manifest = DatasetManifest.from_json(manifest_raw)
    except ValidationError as exc:
        problems = [f"{MANIFEST}:0: {err['loc']}: {err['msg']}" for err in exc.errors()]
    if manifest is not None:
        try:
            BaseModelRef.parse(manifest.base_model)
        except ValueError as exc:
            problems.append(f"{MANIFEST}:0: base_model: {exc}")
        problems += [
            f"{p.split(':', 1)[0]}:0:{p.split(':', 1)[1]}" for p in manifest_mismatches(manifest, source.list_files())
        ]
        report = validate_dataset(source)
        problems += list(report.errors)
    if problems or manifest is None:
        location = write_report(json.dumps({"ok": False, "problems": problems}, indent=2).encode())
        adapters.notifier.publish(
            DatasetRejected(
                dataset_prefix=source.location,
                manifest_key=manifest_location,
                report_key=location,
                problems=problems[:MAX_PROBLEMS_IN_EVENT],
                problem_count=len(problems),
            )
        )
        return IntakeResult(None, False, f"rejected: {len(problems)} problem(s), see {location}", location)

    job_id = job_id_for(manifest.dataset, manifest.version, content_digest(manifest))
    prefix = commit(manifest)
    job = RetrainJob(
        job_id=job_id,
        dataset=manifest.dataset,
        dataset_version=manifest.version,
        dataset_prefix=prefix,
        manifest_key=prefix + MANIFEST,
        spec=manifest.spec or DEFAULT_SPEC,
        base_model=BaseModelRef.parse(manifest.base_model),
        backend=manifest.backend,
        prune=manifest.prune,
    )
    now = utc_now()
    record = JobRecord(
        job_id=job_id,
        status=JobStatus.QUEUED,
        created_at=now,
        updated_at=now,
        job_json=job.to_json(),
        dataset=f"{manifest.dataset}/{manifest.version}",
    )
    if not adapters.ledger.create(record):
        return IntakeResult(job_id, False, f"job {job_id} exists already for this data: nothing new queued")
    adapters.queue.send(job.to_json())
    return IntakeResult(job_id, True, f"queued job {job_id}")

"""One manifest on S3 -> `gpu_worker.intake.accept_dataset` (validate; reject with a report, or queue a job).

Pure of Lambda concerns (no Powertools): the handler wraps `handle_manifest` in idempotency and
metrics. The dataset is already in S3, so "committing" it only names its prefix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from gpu_worker.adapters.factory import Adapters
from gpu_worker.intake import REPORT, accept_dataset
from lambdas.dataset_trigger.events import S3ObjectRef
from lambdas.dataset_trigger.s3_source import S3DatasetSource
from peoplenet_contracts import DatasetManifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class Outcome(StrEnum):
    QUEUED = "queued"
    REJECTED = "rejected"
    ALREADY_QUEUED = "already_queued"  # the same data was queued before (another upload, another delivery)
    SKIPPED = "skipped"  # not a dataset manifest of this bucket, or gone since the event


@dataclass(frozen=True)
class TriggerResult:
    outcome: Outcome
    message: str
    job_id: str | None = None
    report_key: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {key: (str(value) if value is not None else None) for key, value in asdict(self).items()}


def skip_reason(ref: S3ObjectRef, bucket: str) -> str | None:
    """Why this object is none of the trigger's business, or None when it is a dataset manifest to take in."""
    if ref.bucket != bucket:
        return f"s3://{ref.bucket}/{ref.key} is not in the data bucket {bucket}"
    if not ref.is_dataset_manifest:
        return f"{ref.key} is not a datasets/**/manifest.json"
    return None


def handle_manifest(ref: S3ObjectRef, adapters: Adapters, s3: S3Client, bucket: str) -> TriggerResult:
    """Validate the dataset beside the manifest `ref` and queue it, or reject it with `_validation.json`."""
    if (reason := skip_reason(ref, bucket)) is not None:
        return TriggerResult(Outcome.SKIPPED, reason)
    try:
        raw = adapters.store.get_bytes(ref.key)
    except FileNotFoundError:
        # Deleted (or overwritten and deleted) since the event: nothing left to validate.
        return TriggerResult(Outcome.SKIPPED, f"s3://{bucket}/{ref.key} no longer exists")

    prefix = ref.folder
    report_key = prefix + REPORT

    def write_report(body: bytes) -> str:
        adapters.store.put_bytes(report_key, body)
        return report_key

    def commit(manifest: DatasetManifest) -> str:
        return prefix

    source = S3DatasetSource(s3, bucket, prefix)
    result = accept_dataset(raw, ref.key, source, adapters, write_report=write_report, commit=commit)
    if result.report_location is not None:
        outcome = Outcome.REJECTED
    elif result.queued:
        outcome = Outcome.QUEUED
    else:
        outcome = Outcome.ALREADY_QUEUED
    return TriggerResult(outcome, result.message, result.job_id, result.report_location)

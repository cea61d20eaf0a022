"""Status and name enums: StrEnums so they serialise as plain strings and never drift as literals."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    CANDIDATE = "CANDIDATE"  # finished, published, but failed the quality gate
    FAILED = "FAILED"
    REJECTED = "REJECTED"  # dataset refused before any work

    @property
    def is_terminal(self) -> bool:
        return self in {JobStatus.SUCCEEDED, JobStatus.CANDIDATE, JobStatus.FAILED, JobStatus.REJECTED}


class StageName(StrEnum):
    FETCH = "fetch"
    VALIDATE = "validate"
    PREPARE = "prepare"
    TRAIN = "train"
    PRUNE = "prune"
    RETRAIN = "retrain"
    EVALUATE = "evaluate"
    EXPORT = "export"
    BUILD_ENGINE = "build_engine"
    PUBLISH = "publish"
    NOTIFY = "notify"


class StageStatus(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


class Precision(StrEnum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class TrainingBackend(StrEnum):
    TORCH = "torch"
    TAO = "tao"

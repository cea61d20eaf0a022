"""Contracts shared by the Lambda and the GPU worker: pure pydantic, nothing AWS, torch or docker."""

from __future__ import annotations

from peoplenet_contracts.events import (
    DatasetRejected,
    EngineBuilt,
    Event,
    EventType,
    JobFailed,
    JobStarted,
    ModelPublished,
)
from peoplenet_contracts.jobs import BaseModelRef, RetrainJob
from peoplenet_contracts.manifests import (
    DatasetFile,
    DatasetManifest,
    EngineManifest,
    FileDigest,
    ModelManifest,
)
from peoplenet_contracts.status import JobStatus, Precision, StageName, StageStatus, TrainingBackend

SCHEMA_MODELS = (
    DatasetManifest,
    RetrainJob,
    ModelManifest,
    EngineManifest,
    DatasetRejected,
    JobStarted,
    JobFailed,
    ModelPublished,
    EngineBuilt,
)

__all__ = [
    "SCHEMA_MODELS",
    "BaseModelRef",
    "DatasetFile",
    "DatasetManifest",
    "DatasetRejected",
    "EngineBuilt",
    "EngineManifest",
    "Event",
    "EventType",
    "FileDigest",
    "JobFailed",
    "JobStarted",
    "JobStatus",
    "ModelManifest",
    "ModelPublished",
    "Precision",
    "RetrainJob",
    "StageName",
    "StageStatus",
    "TrainingBackend",
]

"""Manifests: what a dataset upload, a published model and a built engine consist of."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from peoplenet_contracts.base import Contract, utc_now
from peoplenet_contracts.status import Precision, TrainingBackend

SHA256_PATTERN = r"^[0-9a-f]{64}$"
# e.g. sm87-trt8.5-aarch64, sm90-trt10.3-x86_64
PLATFORM_KEY_PATTERN = r"^sm\d{2,3}-trt\d+\.\d+-(x86_64|aarch64)$"


def _safe_relative_path(path: str) -> str:
    if path.startswith("/") or "\\" in path or any(part in {"", ".", ".."} for part in path.split("/")):
        raise ValueError(f"path {path!r} must be relative, '/'-separated and stay inside its folder")
    return path


class DatasetFile(Contract):
    path: str = Field(description="Path relative to the dataset root, '/'-separated")
    size: int = Field(ge=0)

    _check_path = field_validator("path")(_safe_relative_path)


class DatasetManifest(Contract):
    """Written LAST into a dataset folder: its presence commits the upload."""

    schema_version: Literal[1] = 1
    dataset: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    created_at: datetime = Field(default_factory=utc_now)
    images: list[DatasetFile]
    labels: list[DatasetFile]
    class_counts: dict[str, int] = Field(default_factory=dict)
    negative_images: int = Field(default=0, ge=0, description="Images without any label line")
    spec: str | None = Field(default=None, description="Spec name under specs/ or a path in the store")
    base_model: str | None = Field(
        default=None, description="'production', a model version, 'peoplenet-tflite:<path>' or 'none'"
    )
    backend: TrainingBackend | None = None
    prune: bool | None = Field(default=None, description="Prune and retrain; None: the worker's setting")

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.images) + sum(f.size for f in self.labels)


class FileDigest(Contract):
    path: str
    sha256: str = Field(pattern=SHA256_PATTERN)
    size: int = Field(ge=0)

    _check_path = field_validator("path")(_safe_relative_path)


class ModelManifest(Contract):
    """Written LAST into models/peoplenet/<model_version>/: readers trust only what it lists."""

    schema_version: Literal[1] = 1
    model_version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    created_at: datetime = Field(default_factory=utc_now)
    source_job: str
    dataset: str | None = None
    base_model: str | None = Field(default=None, description="Lineage: model version or file it started from")
    backend: str = "torch"
    classes: list[str] = Field(min_length=1, description="Class names in output channel order")
    input_dims: tuple[int, int, int] = Field(description="C, H, W")
    metrics: dict[str, float] = Field(default_factory=dict)
    gate_passed: bool | None = None
    gate_reason: str | None = None
    files: list[FileDigest]

    def digest_of(self, path: str) -> FileDigest:
        for digest in self.files:
            if digest.path == path:
                return digest
        raise KeyError(path)


class EngineManifest(Contract):
    """engine.json beside every peoplenet.engine: where, with what and from what it was built."""

    schema_version: Literal[1] = 1
    platform: str = Field(pattern=PLATFORM_KEY_PATTERN)
    model_version: str
    builder: str = Field(description="tensorrt-python | trtexec | tao-deploy | tao-converter")
    tensorrt_version: str
    cuda_version: str | None = None
    gpu_name: str | None = None
    compute_capability: str = Field(pattern=r"^\d+\.\d+$")
    precision: Precision
    input_name: str
    input_dims: tuple[int, int, int] = Field(description="C, H, W")
    min_batch: int = Field(ge=1)
    opt_batch: int = Field(ge=1)
    max_batch: int = Field(ge=1)
    output_names: list[str]
    hardware_compatibility: str | None = None
    source_model_sha256: str = Field(pattern=SHA256_PATTERN)
    engine_sha256: str = Field(pattern=SHA256_PATTERN)
    created_at: datetime = Field(default_factory=utc_now)

    @field_validator("max_batch")
    @classmethod
    def _batch_order(cls, value: int, info: object) -> int:
        data = getattr(info, "data", {})
        if not data.get("min_batch", 1) <= data.get("opt_batch", 1) <= value:
            raise ValueError("batch range must satisfy min_batch <= opt_batch <= max_batch")
        return value


def is_platform_key(value: str) -> bool:
    return re.match(PLATFORM_KEY_PATTERN, value) is not None

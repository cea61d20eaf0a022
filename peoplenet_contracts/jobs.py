"""The queue message that asks a worker to retrain."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from peoplenet_contracts.base import Contract, utc_now
from peoplenet_contracts.status import TrainingBackend


class BaseModelRef(Contract):
    """Where training starts: a published model, an importable file, or nothing (demo only)."""

    kind: Literal["channel", "version", "file", "none"] = "channel"
    value: str | None = Field(default="production", description="channel name, version or store key/path")

    @classmethod
    def parse(cls, text: str | None) -> BaseModelRef:
        """'production' | 'channel:NAME' | 'version:V' | 'file:PATH' | 'none'."""
        if text is None or text in {"", "production"}:
            return cls(kind="channel", value="production")
        if text == "none":
            return cls(kind="none", value=None)
        kind, sep, value = text.partition(":")
        if not sep or kind not in {"channel", "version", "file"} or not value:
            raise ValueError(f"base model {text!r} is not one of: production, none, channel:NAME, version:V, file:PATH")
        return cls.model_validate({"kind": kind, "value": value})

    def __str__(self) -> str:
        return "none" if self.kind == "none" else f"{self.kind}:{self.value}"


class RetrainJob(Contract):
    schema_version: Literal[1] = 1
    job_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    created_at: datetime = Field(default_factory=utc_now)
    dataset: str
    dataset_version: str
    dataset_prefix: str = Field(description="Store key prefix of the dataset folder, ending in '/'")
    manifest_key: str
    manifest_etag: str | None = None
    spec: str = Field(default="peoplenet_train.txt", description="Spec name under specs/ or a store key")
    base_model: BaseModelRef = Field(default_factory=BaseModelRef)
    backend: TrainingBackend | None = Field(default=None, description="None: the worker's configured backend")
    prune: bool | None = Field(default=None, description="None: the worker's `prune.enabled` setting")
    channel: str = "production"

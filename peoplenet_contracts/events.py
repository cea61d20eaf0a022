"""Events sent to downstream subscribers (SNS topic or the local notifier)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter

from peoplenet_contracts.base import Contract, utc_now


class EventType(StrEnum):
    DATASET_REJECTED = "DatasetRejected"
    JOB_STARTED = "JobStarted"
    JOB_FAILED = "JobFailed"
    MODEL_PUBLISHED = "ModelPublished"
    ENGINE_BUILT = "EngineBuilt"


class _EventBase(Contract):
    schema_version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utc_now)

    def attributes(self) -> dict[str, str]:
        """Message attributes for filtering subscribers (SNS filter policies)."""
        attrs = {"event_type": str(getattr(self, "event_type"))}  # noqa: B009 (defined by each subclass)
        for name in ("model_version", "platform", "channel", "job_id"):
            value = getattr(self, name, None)
            if value:
                attrs[name] = str(value)
        return attrs


class DatasetRejected(_EventBase):
    event_type: Literal[EventType.DATASET_REJECTED] = EventType.DATASET_REJECTED
    dataset_prefix: str
    manifest_key: str
    report_key: str | None = None
    problems: list[str] = Field(default_factory=list, description="First problems, 'file:line: what'")
    problem_count: int = 0


class JobStarted(_EventBase):
    event_type: Literal[EventType.JOB_STARTED] = EventType.JOB_STARTED
    job_id: str
    dataset: str
    dataset_version: str
    worker: str | None = None


class JobFailed(_EventBase):
    event_type: Literal[EventType.JOB_FAILED] = EventType.JOB_FAILED
    job_id: str
    stage: str | None = None
    reason: str
    retryable: bool = False


class ModelPublished(_EventBase):
    event_type: Literal[EventType.MODEL_PUBLISHED] = EventType.MODEL_PUBLISHED
    job_id: str
    model_version: str
    model_prefix: str
    channel: str | None = Field(default=None, description="Channel moved to this model, None if candidate")
    gate_passed: bool
    gate_reason: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)


class EngineBuilt(_EventBase):
    event_type: Literal[EventType.ENGINE_BUILT] = EventType.ENGINE_BUILT
    model_version: str
    platform: str
    engine_key: str
    precision: str


Event = Annotated[
    DatasetRejected | JobStarted | JobFailed | ModelPublished | EngineBuilt,
    Field(discriminator="event_type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: str | bytes) -> Event:
    return EVENT_ADAPTER.validate_json(data)

"""Base model for every contract: strict field names, a schema version, JSON helpers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Self

from pydantic import BaseModel, ConfigDict


def utc_now() -> datetime:
    return datetime.now(UTC)


class Contract(BaseModel):
    """A versioned message. Unknown fields are refused so typos in hand-written manifests surface."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True)

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, data: str | bytes) -> Self:
        return cls.model_validate_json(data)

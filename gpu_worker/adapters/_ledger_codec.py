"""Plain-dict form of ledger records, shared by the SQLite (JSON) and DynamoDB (map) ledgers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gpu_worker.ports.ledger import StageRecord
from peoplenet_contracts import StageName, StageStatus


def to_utc(moment: datetime | None) -> datetime:
    """Aware UTC datetime; naive values are taken as UTC; None means now."""
    if moment is None:
        return datetime.now(UTC)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    # Fixed width (always microseconds, always +00:00) so string order is time order.
    return to_utc(moment).isoformat(timespec="microseconds")


def parse_iso(text: str | None) -> datetime | None:
    return None if text is None else to_utc(datetime.fromisoformat(text))


def stage_to_dict(stage: StageRecord) -> dict[str, Any]:
    return {
        "status": str(stage.status),
        "started_at": iso(stage.started_at) if stage.started_at else None,
        "finished_at": iso(stage.finished_at) if stage.finished_at else None,
        "detail": stage.detail,
    }


def stage_from_dict(name: str, data: dict[str, Any]) -> StageRecord:
    return StageRecord(
        name=StageName(name),
        status=StageStatus(data["status"]),
        started_at=parse_iso(data.get("started_at")),
        finished_at=parse_iso(data.get("finished_at")),
        detail=data.get("detail"),
    )


def stages_from_dict(data: dict[str, Any]) -> dict[StageName, StageRecord]:
    stages = (stage_from_dict(name, value) for name, value in data.items())
    return {stage.name: stage for stage in sorted(stages, key=lambda s: list(StageName).index(s.name))}

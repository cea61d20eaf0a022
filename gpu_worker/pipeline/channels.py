"""Channel pointers (`models/peoplenet/channels/<name>.json`), moved by conditional writes only."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gpu_worker.pipeline.layout import channel_key
from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts.base import utc_now


class ChannelPointer(BaseModel):
    channel: str
    model_version: str
    previous_version: str | None = None
    updated_at: datetime = Field(default_factory=utc_now)
    job_id: str | None = None


def read_channel(store: ObjectStore, channel: str) -> tuple[ChannelPointer | None, str | None]:
    """The pointer and its etag, or (None, None) when the channel has never been set."""
    key = channel_key(channel)
    try:
        info = store.head(key)
        return ChannelPointer.model_validate_json(store.get_bytes(key)), info.etag
    except FileNotFoundError:
        return None, None


def move_channel(
    store: ObjectStore, channel: str, model_version: str, job_id: str, attempts: int = 5
) -> ChannelPointer:
    """Point the channel at model_version. Racing writers retry on a fresh read: no update is lost."""
    for _ in range(attempts):
        current, etag = read_channel(store, channel)
        if current is not None and current.model_version == model_version:
            return current
        pointer = ChannelPointer(
            channel=channel,
            model_version=model_version,
            previous_version=current.model_version if current else None,
            job_id=job_id,
        )
        try:
            if etag is None:
                store.put_text(channel_key(channel), pointer.model_dump_json(indent=2), if_none_match=True)
            else:
                store.put_text(channel_key(channel), pointer.model_dump_json(indent=2), if_match=etag)
        except PreconditionFailed:
            continue
        return pointer
    raise PreconditionFailed(f"channel {channel!r} kept changing; gave up after {attempts} attempts")

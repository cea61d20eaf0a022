"""Stage done-markers: `runs/<job_id>/<stage>/_done.json`, written after the stage's outputs."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from pydantic import BaseModel, Field

from gpu_worker.pipeline.layout import done_marker_key
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts.base import utc_now
from peoplenet_contracts.manifests import FileDigest


class StageMarker(BaseModel):
    stage: str
    inputs_hash: str
    skipped: bool = False
    detail: str | None = None
    outputs: list[FileDigest] = Field(default_factory=list)
    values: dict[str, str] = Field(default_factory=dict)  # small results later stages read (paths, flags)
    finished_at: datetime = Field(default_factory=utc_now)


def hash_inputs(*parts: object) -> str:
    """Stable hash of JSON-serialisable inputs (job fields, earlier markers' hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def read_marker(store: ObjectStore, job_id: str, stage: str) -> StageMarker | None:
    try:
        return StageMarker.model_validate_json(store.get_bytes(done_marker_key(job_id, stage)))
    except FileNotFoundError:
        return None


def write_marker(store: ObjectStore, job_id: str, marker: StageMarker) -> None:
    store.put_text(done_marker_key(job_id, marker.stage), marker.model_dump_json(indent=2))

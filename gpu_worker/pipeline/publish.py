"""Immutable publish of a model folder: files first, `manifest.json` (sha256 of each) last.

Readers trust only what the manifest lists, so a crash mid-upload leaves nothing visible.
"""

from __future__ import annotations

from pathlib import Path

from gpu_worker.errors import PermanentJobError
from gpu_worker.pipeline.digest import file_digest
from gpu_worker.pipeline.layout import model_manifest_key, model_prefix
from gpu_worker.ports.exceptions import PreconditionFailed
from gpu_worker.ports.store import ObjectStore
from peoplenet_contracts import ModelManifest


def read_model_manifest(store: ObjectStore, model_version: str) -> ModelManifest | None:
    try:
        return ModelManifest.from_json(store.get_bytes(model_manifest_key(model_version)))
    except FileNotFoundError:
        return None


def publish_model(store: ObjectStore, local_dir: Path, manifest: ModelManifest) -> ModelManifest:
    """Upload every file of local_dir under the model's prefix, then the manifest (create-only).

    Publishing again for the same job returns the existing manifest; another job's version is refused.
    """
    existing = read_model_manifest(store, manifest.model_version)
    if existing is not None:
        if existing.source_job != manifest.source_job:
            raise PermanentJobError(
                f"model version {manifest.model_version} already published by job {existing.source_job}"
            )
        return existing
    prefix = model_prefix(manifest.model_version)
    digests = []
    for path in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        relative = path.relative_to(local_dir).as_posix()
        if relative == "manifest.json":
            continue
        store.upload_file(path, prefix + relative)
        digests.append(file_digest(path, relative))
    final = manifest.model_copy(update={"files": digests})
    try:
        store.put_text(model_manifest_key(manifest.model_version), final.to_json(), if_none_match=True)
    except PreconditionFailed:
        # A racing worker of the same job published first; its manifest is the truth.
        winner = read_model_manifest(store, manifest.model_version)
        if winner is None or winner.source_job != manifest.source_job:
            raise
        return winner
    return final

"""The embedded trigger's intake: a local dataset folder is validated, copied into the store, queued."""

from __future__ import annotations

from pathlib import Path

from gpu_worker.adapters.factory import Adapters
from gpu_worker.intake import MANIFEST, REPORT, IntakeResult, accept_dataset
from gpu_worker.pipeline.layout import dataset_prefix
from peoplenet_contracts import DatasetManifest
from peoplenet_contracts.kitti import LocalDatasetSource


def intake_folder(folder: Path, adapters: Adapters) -> IntakeResult:
    manifest_path = folder / MANIFEST
    try:
        raw = manifest_path.read_bytes()
    except OSError as exc:
        raw = f"unreadable: {exc}".encode()

    def write_report(body: bytes) -> str:
        (folder / REPORT).write_bytes(body)
        return str(folder / REPORT)

    def commit(manifest: DatasetManifest) -> str:
        prefix = dataset_prefix(manifest.dataset, manifest.version)
        for entry in [*manifest.images, *manifest.labels]:
            adapters.store.upload_file(folder / entry.path, prefix + entry.path)
        adapters.store.put_bytes(prefix + MANIFEST, raw)  # last: commits the upload
        return prefix

    return accept_dataset(
        raw, str(manifest_path), LocalDatasetSource(folder), adapters, write_report=write_report, commit=commit
    )

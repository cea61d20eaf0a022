"""fetch -> validate -> prepare: the dataset on local disk, checked, and the job's spec and base model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gpu_worker.errors import PermanentJobError, UserError
from gpu_worker.pipeline.base_model import resolve_base_model
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.runner import StageResult
from gpu_worker.pipeline.spec_files import backend_context, resolve_spec
from peoplenet_contracts import DatasetManifest

DATASET_DIR = "dataset"


def dataset_dir(ctx: PipelineContext) -> Path:
    return ctx.work_dir / DATASET_DIR


def ensure_dataset(ctx: PipelineContext) -> Path:
    """The dataset folder, downloaded again when this worker did not run `fetch` itself."""
    target = dataset_dir(ctx)
    if not (target / "manifest.json").is_file():
        download_dataset(ctx)
    return target


def download_dataset(ctx: PipelineContext) -> DatasetManifest:
    """Download exactly the files the manifest lists (stray uploads are ignored), sizes checked."""
    job = ctx.job
    try:
        manifest = DatasetManifest.from_json(ctx.store.get_bytes(job.manifest_key))
    except FileNotFoundError as exc:
        raise PermanentJobError(f"dataset manifest {job.manifest_key} is missing from the store") from exc
    target = dataset_dir(ctx)
    if target.exists():
        shutil.rmtree(target)
    for entry in [*manifest.images, *manifest.labels]:
        destination = target / entry.path
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            ctx.store.download_file(job.dataset_prefix + entry.path, destination)
        except FileNotFoundError as exc:
            raise PermanentJobError(f"{entry.path} is listed in the manifest but missing from the store") from exc
        if destination.stat().st_size != entry.size:
            raise PermanentJobError(
                f"{entry.path}: {destination.stat().st_size} bytes in the store, manifest says {entry.size}"
            )
    (target / "manifest.json").write_text(manifest.to_json())
    return manifest


def fetch(ctx: PipelineContext) -> StageResult:
    manifest = download_dataset(ctx)
    return StageResult(values={"images": str(len(manifest.images))}, upload=False)


def validate(ctx: PipelineContext) -> StageResult:
    """Full validation with image decoding: the worker is the last line before training."""
    from peoplenet_contracts.kitti import LocalDatasetSource, validate_dataset

    source_dir = ensure_dataset(ctx)
    report = validate_dataset(LocalDatasetSource(source_dir), decode=True)
    out = ctx.stage_dir("validate")
    (out / "validation.json").write_text(report.to_json())
    if not report.ok:
        shown = "; ".join(report.errors[:5])
        raise PermanentJobError(f"dataset failed validation ({len(report.errors)} problems): {shown}")
    return StageResult(values={"boxes": json.dumps(report.boxes_per_class)})


def prepare(ctx: PipelineContext) -> StageResult:
    """Write the job's experiment spec (data paths filled in) and fetch or import its base model."""
    out = ctx.stage_dir("prepare")
    try:
        specs = resolve_spec(ctx, ensure_dataset(ctx), out)
        base = resolve_base_model(ctx, out / "base_model.pt")
    except UserError as exc:
        raise PermanentJobError(str(exc)) from exc
    ctx.backend.prepare(backend_context(ctx, specs))
    values = {"spec": specs.train.name, "retrain_spec": specs.retrain.name, "base_model": base.lineage}
    if base.path is not None:
        values["base_model_file"] = base.path.name
    return StageResult(values=values, detail=f"base model: {base.lineage}")

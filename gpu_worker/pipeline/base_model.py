"""Where a job's training starts: a published model, an imported PeopleNet file, or nothing."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from gpu_worker.errors import UserError
from gpu_worker.pipeline.channels import read_channel
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.layout import model_prefix
from gpu_worker.pipeline.publish import read_model_manifest

NATIVE_MODEL_FILE = "model.pt"  # our checkpoint, published beside model.onnx so later jobs fine-tune it


@dataclass(frozen=True)
class ResolvedBaseModel:
    path: Path | None
    lineage: str  # recorded in the model manifest: "version:m-...", "file:peoplenet.tflite", "none"


def resolve_base_model(ctx: PipelineContext, dest: Path) -> ResolvedBaseModel:
    ref = ctx.job.base_model
    if ref.kind == "none":
        return ResolvedBaseModel(None, "none")
    if ref.kind == "file":
        assert ref.value is not None
        return ResolvedBaseModel(_import_file(ctx, ref.value, dest), f"file:{ref.value}")
    version = ref.value
    if ref.kind == "channel":
        pointer, _ = read_channel(ctx.store, ref.value or "production")
        if pointer is None:
            raise UserError(
                f"base model is the '{ref.value}' channel, but no model has been published to it yet: "
                "submit the first job with a base model file (e.g. --base-model file:peoplenet.tflite)"
            )
        version = pointer.model_version
    assert version is not None
    if read_model_manifest(ctx.store, version) is None:
        raise UserError(f"base model version {version} is not published (no manifest.json)")
    try:
        ctx.store.download_file(model_prefix(version) + NATIVE_MODEL_FILE, dest)
    except FileNotFoundError as exc:
        raise UserError(f"published model {version} has no {NATIVE_MODEL_FILE} to fine-tune from") from exc
    return ResolvedBaseModel(dest, f"version:{version}")


def _import_file(ctx: PipelineContext, source: str, dest: Path) -> Path:
    """A local path or a store key; TFLite/ONNX PeopleNet files are converted to our model file."""
    from gpu_worker.importers import import_weights

    staging = dest.parent / f"source-{Path(source).name}"
    local = Path(source).expanduser()
    if local.is_file():
        shutil.copyfile(local, staging)
    else:
        try:
            ctx.store.download_file(source, staging)
        except FileNotFoundError as exc:
            raise UserError(f"base model file {source!r} is neither a local file nor a key in the store") from exc
    import_weights(staging).save(dest)
    staging.unlink()
    return dest

"""build_engine -> publish -> notify: artefacts out of the worker and into the fleet's hands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gpu_worker.pipeline.base_model import NATIVE_MODEL_FILE
from gpu_worker.pipeline.channels import move_channel
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.layout import model_prefix, model_version_for
from gpu_worker.pipeline.publish import publish_model
from gpu_worker.pipeline.runner import StageResult
from gpu_worker.pipeline.spec_files import TRAIN_SPEC
from gpu_worker.pipeline.stages.model import final_model_stage
from peoplenet_contracts import ModelManifest, ModelPublished

ENGINES_DIR = "engines"


def build_engine(ctx: PipelineContext) -> StageResult:
    """Build for this worker's own platform when a builder exists here; otherwise say so and go on."""
    from gpu_worker.engines.stage import build_local_engine

    out = ctx.stage_dir("build_engine")
    export_dir = ctx.local_stage_dir("export")
    status = build_local_engine(export_dir, out / ENGINES_DIR, model_version_for(ctx.job.job_id))
    (out / "engine_status.json").write_text(json.dumps(status.as_dict(), indent=2))
    return StageResult(
        values={"engine_built": str(status.built).lower(), "engine_status": status.message}, detail=status.message
    )


def _assemble(ctx: PipelineContext, folder: Path) -> None:
    """Everything the published model folder holds, gathered locally first."""
    export_dir = ctx.local_stage_dir("export")
    for name in ("model.onnx", "model.etlt", "model_int8.onnx", "calibration.cache", "labels.txt", "report.html"):
        if (export_dir / name).is_file():
            shutil.copyfile(export_dir / name, folder / name)
    shutil.copyfile(ctx.local_stage_dir(final_model_stage(ctx)) / "model.pt", folder / NATIVE_MODEL_FILE)
    evaluate_dir = ctx.local_stage_dir("evaluate")
    for name in ("metrics.json", "gate.json"):
        shutil.copyfile(evaluate_dir / name, folder / name)
    shutil.copyfile(ctx.local_stage_dir("prepare") / TRAIN_SPEC, folder / "experiment_spec.txt")
    engines = ctx.local_stage_dir("build_engine") / ENGINES_DIR
    if engines.is_dir():
        shutil.copytree(engines, folder / ENGINES_DIR)


def publish(ctx: PipelineContext) -> StageResult:
    from gpu_worker.deepstream import write_deepstream_config

    version = model_version_for(ctx.job.job_id)
    folder = ctx.work_dir / "publish-staging"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _assemble(ctx, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    gate_passed = ctx.value("evaluate", "gate_passed") == "true"
    manifest = ModelManifest(
        model_version=version,
        source_job=ctx.job.job_id,
        dataset=f"{ctx.job.dataset}/{ctx.job.dataset_version}",
        base_model=ctx.value("prepare", "base_model"),
        backend=str(ctx.job.backend or ctx.settings.worker.backend),
        classes=json.loads(ctx.value("export", "classes") or "[]"),
        input_dims=tuple(json.loads(ctx.value("export", "input_dims") or "[3, 544, 960]")),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        gate_passed=gate_passed,
        gate_reason=ctx.value("evaluate", "gate_reason"),
        files=[],
    )
    write_deepstream_config(folder, folder, manifest=manifest)
    published = publish_model(ctx.store, folder, manifest)
    shutil.rmtree(folder)
    channel = None
    if gate_passed:
        move_channel(ctx.store, ctx.job.channel, version, ctx.job.job_id)
        channel = ctx.job.channel
    return StageResult(
        values={"model_version": version, "channel": channel or "", "files": str(len(published.files))},
        detail=f"published {model_prefix(version)}" + (f", {channel} -> {version}" if channel else " as candidate"),
        upload=False,
    )


def notify(ctx: PipelineContext) -> StageResult:
    version = ctx.value("publish", "model_version") or model_version_for(ctx.job.job_id)
    metrics = json.loads((ctx.local_stage_dir("evaluate") / "metrics.json").read_text())
    event = ModelPublished(
        job_id=ctx.job.job_id,
        model_version=version,
        model_prefix=model_prefix(version),
        channel=ctx.value("publish", "channel") or None,
        gate_passed=ctx.value("evaluate", "gate_passed") == "true",
        gate_reason=ctx.value("evaluate", "gate_reason"),
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
    )
    ctx.notifier.publish(event)
    return StageResult(detail=f"ModelPublished {version}", upload=False)

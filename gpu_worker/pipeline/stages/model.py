"""train -> prune -> retrain -> evaluate -> export, through the job's training backend."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from gpu_worker.backends.base import ModelArtifact, StageContext, TrainingStopped
from gpu_worker.pipeline.checkpoint_sync import CheckpointSync
from gpu_worker.pipeline.context import PipelineContext
from gpu_worker.pipeline.gate import decide
from gpu_worker.pipeline.layout import stage_prefix
from gpu_worker.pipeline.runner import StageResult, StopRequested
from gpu_worker.pipeline.spec_files import backend_context

MODEL_FILE = "model.pt"


def _stage_model(ctx: PipelineContext, stage: str) -> ModelArtifact:
    return ModelArtifact(ctx.local_stage_dir(stage) / MODEL_FILE)


def final_model_stage(ctx: PipelineContext) -> str:
    """retrain when pruning ran, else train."""
    return "retrain" if ctx.value("prune", "pruned") == "true" else "train"


def _run_training(ctx: PipelineContext, stage: str, run: Callable[[StageContext], ModelArtifact]) -> StageResult:
    """Run one training call with its checkpoints mirrored to the store (restored first, if any)."""
    out = ctx.stage_dir(stage)
    bctx = backend_context(ctx)
    bctx.extra["results_dir"] = str(out)
    sync = CheckpointSync(ctx.store, out, stage_prefix(ctx.job.job_id, stage))
    restored = sync.restore()
    try:
        with sync:
            artifact = run(bctx)
    except TrainingStopped as stopped:
        raise StopRequested(f"{stage} stopped at checkpoint {stopped.checkpoint.name}") from stopped
    if artifact.path != out / MODEL_FILE:
        shutil.copyfile(artifact.path, out / MODEL_FILE)
    detail = None
    if artifact.resumed_from:
        detail = f"resumed from {artifact.resumed_from}" + (
            f" ({restored} file(s) restored from the store)" if restored else ""
        )
    return StageResult(values={"params": str(artifact.num_params or "")}, detail=detail)


def train(ctx: PipelineContext) -> StageResult:
    prepared = ctx.local_stage_dir("prepare")
    base_name = ctx.value("prepare", "base_model_file")
    base = prepared / base_name if base_name else None
    return _run_training(ctx, "train", lambda bctx: ctx.backend.train(bctx, base))


def prune(ctx: PipelineContext) -> StageResult:
    wanted = ctx.job.prune if ctx.job.prune is not None else ctx.settings.prune.enabled
    if not wanted:
        source = "this job" if ctx.job.prune is not None else "this worker (prune.enabled)"
        return StageResult(values={"pruned": "false"}, skipped=True, detail=f"pruning disabled for {source}")
    out = ctx.stage_dir("prune")
    bctx = backend_context(ctx)
    bctx.extra["results_dir"] = str(out)
    pruned = ctx.backend.prune(bctx, _stage_model(ctx, "train"))
    if pruned.path != out / MODEL_FILE:
        shutil.copyfile(pruned.path, out / MODEL_FILE)
    return StageResult(values={"pruned": "true", "params": str(pruned.num_params or "")})


def retrain(ctx: PipelineContext) -> StageResult:
    if ctx.value("prune", "pruned") != "true":
        return StageResult(skipped=True, detail="nothing pruned, nothing to retrain")
    pruned = ModelArtifact(ctx.local_stage_dir("prune") / MODEL_FILE)
    ctx.local_stage_dir("train")  # the unpruned model: the backend may distil from it
    return _run_training(ctx, "retrain", lambda bctx: ctx.backend.retrain(bctx, pruned))


def evaluate(ctx: PipelineContext) -> StageResult:
    """Metrics of the new model and of the production model on the same validation data; the gate."""
    from gpu_worker.pipeline.production import production_model

    out = ctx.stage_dir("evaluate")
    bctx = backend_context(ctx)
    bctx.extra["results_dir"] = str(out)
    model = _stage_model(ctx, final_model_stage(ctx))
    metrics = ctx.backend.evaluate(bctx, model)
    production = production_model(ctx, out / "production_model.pt")
    production_metrics = None
    if production is not None:
        bctx.extra["results_dir"] = str(out / "production")
        production_metrics = ctx.backend.evaluate(bctx, ModelArtifact(production.path))
        production.path.unlink()
    decision = decide(metrics, production_metrics, ctx.settings.gate.min_ap_change)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    gate = {
        "passed": decision.passed,
        "reason": decision.reason,
        "production_version": production.version if production else None,
        "production_metrics": production_metrics,
    }
    (out / "gate.json").write_text(json.dumps(gate, indent=2))
    return StageResult(
        values={"gate_passed": str(decision.passed).lower(), "gate_reason": decision.reason},
        detail=decision.reason,
    )


def export(ctx: PipelineContext) -> StageResult:
    out = ctx.stage_dir("export")
    bctx = backend_context(ctx)
    bctx.extra["results_dir"] = str(out)
    bctx.extra["final_stage"] = final_model_stage(ctx)  # QAT follows the spec the exported model trained with
    result = ctx.backend.export(bctx, _stage_model(ctx, final_model_stage(ctx)))
    produced = {
        "model.onnx": result.onnx,
        "model.etlt": result.etlt,
        "labels.txt": result.labels,
        "model_int8.onnx": result.int8_onnx,
        "calibration.cache": result.calibration_cache,
    }
    values = {}
    for name, path in produced.items():
        if path is not None:
            if path != out / name:
                shutil.copyfile(path, out / name)
            values[name] = "true"
    values["classes"] = json.dumps(list(result.classes))
    values["input_dims"] = json.dumps(list(result.input_dims))
    if result.onnx is not None:
        _write_report(ctx, out / "model.onnx", out / "report.html")
    return StageResult(values=values)


def _write_report(ctx: PipelineContext, onnx_model: Path, out: Path) -> None:
    from gpu_worker.pipeline.spec_files import TRAIN_SPEC
    from gpu_worker.report.build import build_report, read_history

    evaluate_dir = ctx.local_stage_dir("evaluate")
    metrics = json.loads((evaluate_dir / "metrics.json").read_text())
    history = {stage: read_history(ctx.local_stage_dir(stage) / "history.json") for stage in ("train", "retrain")}
    job = ctx.job
    facts = {
        "job": job.job_id,
        "dataset": f"{job.dataset}/{job.dataset_version}",
        "base model": ctx.value("prepare", "base_model") or "",
        "backend": str(job.backend or ctx.settings.worker.backend),
        "pruned": ctx.value("prune", "pruned") or "false",
        "quality gate": ctx.value("evaluate", "gate_reason") or "",
    }
    build_report(
        onnx_model=onnx_model,
        spec_path=ctx.local_stage_dir("prepare") / TRAIN_SPEC,
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        history={k: v for k, v in history.items() if v},
        facts=facts,
        title=f"peoplenet-retrain run report: {job.job_id}",
        out=out,
    )
